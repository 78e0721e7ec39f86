/* A prefill's memory grows with its KV cache only: no [n, vocab] logits, no per-token buffers.
 * usage: test_rss MKFIXTURE RSS_PROBE
 * A 2-layer tiny-dimension model with MiMo's real vocabulary (152,576 ids, mimo-mkfixture --vocab)
 * runs prefills of 1024 and 8192 tokens (rss_probe, one process each, the last row's logits only).
 * Before the selection of outputs, the 8192-token prefill alone allocated 8192 x 152,576 floats of
 * logits (5 GB). The rule (issue: "peak RSS of an 8192-token prefill exceeds a 1024-token one by no
 * more than the KV growth plus a few MB"): hwm(8192) - hwm(1024) <= kv(8192) - kv(1024) + 8 MiB.
 * The sanitizer build skips it (ASan's shadow memory and quarantine make RSS meaningless). */
#include "../harness.h"

#if !defined(__SANITIZE_ADDRESS__)
static int probe(const char *exe, const char *model, int n, long *kb, size_t *kv)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s' '%s' %d 2", exe, model, n);
    FILE *p = popen(cmd, "r");
    int ok = p && fscanf(p, "%ld %zu", kb, kv) == 2;
    return (p ? pclose(p) : -1) == 0 && ok;
}
#endif

int main(int argc, char **argv)
{
#if defined(__SANITIZE_ADDRESS__)
    (void)argc, (void)argv;
    printf("skipped: peak RSS is not measurable under AddressSanitizer\n");
    return 77;
#else
    if (argc < 3) {
        fprintf(stderr, "usage: test_rss MKFIXTURE RSS_PROBE\n");
        return 2;
    }
    char root[] = "/tmp/mimo-rss-XXXXXX", cmd[2048], src[600];
    CHECK(mkdtemp(root) != NULL);
    snprintf(src, sizeof(src), "%s/m", root);
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant bf16 --vocab 152576 --layers 2 --no-drafter --out '%s' -q",
             argv[1], src);
    CHECK(system(cmd) == 0);
    long k1 = 0, k8 = 0;
    size_t v1 = 0, v8 = 0;
    CHECK(probe(argv[2], src, 1024, &k1, &v1));
    CHECK(probe(argv[2], src, 8192, &k8, &v8));
    double grow = (double)(k8 - k1) / 1024.0, kvg = (double)(v8 - v1) / 1048576.0;
    printf("peak RSS: 1024 tokens %.1f MiB, 8192 tokens %.1f MiB; growth %.1f MiB, KV growth %.1f MiB "
           "(allowed: KV growth + 8 MiB)\n", k1 / 1024.0, k8 / 1024.0, grow, kvg);
    CHECK(grow <= kvg + 8.0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return th_finish("test_rss");
#endif
}
