/* Prints the peak RSS of one prefill: rss_probe MODEL N THREADS opens MODEL, runs a prefill of N
 * tokens asking for the last row's logits only (what generation asks for), and prints
 * "hwm_kb KV_BYTES" (VmHWM from /proc/self/status after the step, the context's KV bytes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libquant/libquant.h"
#include "runtime/model.h"

static long hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    size_t n = (size_t)atol(argv[2]);
    rt_model_opts mo = {.threads = atoi(argv[3])};
    rt_model *m = NULL;
    rt_cache *c = NULL;
    lq_error err = {0};
    char eb[1400];
    int32_t *ids = malloc(n * sizeof(int32_t)), id = -1;
    if (!ids || rt_model_open(argv[1], &mo, &m, &err) != LQ_OK || rt_cache_new(m, n + 1, &c, &err) != LQ_OK) {
        fprintf(stderr, "rss_probe: %s\n", lq_error_format(&err, eb, sizeof(eb)));
        return 3;
    }
    uint32_t V = rt_model_config(m)->vocab_size;
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)((i * 2654435761u) % V);
    rt_sel sel = {.rows = 1, .ids = &id};
    if (rt_step_ex(m, c, ids, n, NULL, &sel, &err) != LQ_OK) {
        fprintf(stderr, "rss_probe: %s\n", lq_error_format(&err, eb, sizeof(eb)));
        return 3;
    }
    printf("%ld %zu\n", hwm_kb(), rt_cache_bytes(c));
    rt_cache_free(c);
    rt_model_close(m);
    free(ids);
    return id >= 0 ? 0 : 1;
}
