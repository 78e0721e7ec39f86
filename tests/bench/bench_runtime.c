/* The CPU runtime through rt_generate: open time (model + drafter, the value pass included), prefill
 * tokens/s and plain / DFlash decode tokens/s, one line per run.
 * usage: bench_runtime MODEL THREADS PROMPT_TOKENS GEN_TOKENS
 * (docs/perf.md: old and new binaries interleaved; the old one is this file with 9b25743's
 * rt_model_open(dir, &m, &err), built with -DMIMO_OLD_API.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "libquant/libquant.h"
#include "runtime/model.h"
#include "runtime/dflash.h"
#ifndef MIMO_OLD_API
#include "runtime/generate.h"
#endif
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bench_runtime MODEL THREADS PROMPT_TOKENS GEN_TOKENS\n");
        return 2;
    }
    const char *model = argv[1];
    int threads = atoi(argv[2]);
    size_t np = (size_t)atol(argv[3]), gen = (size_t)atol(argv[4]);
    lq_error err;
    lq_error_clear(&err);
    char eb[1400], dd[1100];
    double t0 = now();
    rt_model *m = NULL;
    rt_drafter *d = NULL;
#ifndef MIMO_OLD_API
    rt_model_opts mo = {.threads = threads};
    lq_status st = rt_model_open(model, &mo, &m, &err);
#else
    lq_status st = rt_model_open(model, &m, &err);
#endif
    snprintf(dd, sizeof(dd), "%s/dflash", model);
    if (st == LQ_OK)
        st = rt_drafter_open(dd, m, NULL, &d, &err);
    double open_s = now() - t0;
    int32_t *ids = malloc(np * sizeof(int32_t)), *out = malloc(gen * sizeof(int32_t));
    if (st != LQ_OK || !ids || !out) {
        fprintf(stderr, "bench_runtime: %s\n", lq_error_format(&err, eb, sizeof(eb)));
        return 3;
    }
    uint32_t V = rt_model_config(m)->vocab_size;
    uint64_t x = 99;
    for (size_t i = 0; i < np; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((x >> 33) % (V > 300 ? V - 300 : V));
    }
    double prefill = 0, rate[2] = {0, 0};
    for (int k = 0; k < 2; k++) { /* plain, then DFlash */
        rt_gen_opts go;
        memset(&go, 0, sizeof(go));
        go.max_tokens = gen;
        go.rt.threads = threads;
        go.block = k ? 0 : 1;
        rt_gen_stats S;
        size_t no = 0;
        if (rt_generate(m, k ? d : NULL, ids, np, &go, out, &no, &S, &err) != LQ_OK) {
            fprintf(stderr, "bench_runtime: %s\n", lq_error_format(&err, eb, sizeof(eb)));
            return 3;
        }
        if (!k)
            prefill = (double)np / S.prefill_s;
        rate[k] = (double)(no - 1) / S.decode_s;
    }
    printf("open_s %.4f prefill_tps %.1f plain_tps %.2f dflash_tps %.2f\n", open_s, prefill, rate[0], rate[1]);
    rt_drafter_close(d);
    rt_model_close(m);
    free(ids), free(out);
    return 0;
}
