/* The CPU forward against transformers' MiMoV2FlashForCausalLM in float32: fixtures/golden/tiny-bf16
 * (tools/oracle/golden_tiny.py), tiny-fp8 and tiny-mxfp4 (tools/oracle/golden_quant.py, which
 * dequantizes the FP8 fixture and its MXFP4 artifact with its own decoders, written from the format
 * specs, and runs transformers on the result).
 * usage: test_golden MKFIXTURE GOLDEN_DIR [bf16 | fp8 | mxfp4 QUANTIZE]
 * The runtime reads the FP8 / MXFP4 weights in their stored format (decoded row by row).
 * Teacher-forced logits at every one of the 48 positions (longer than the SWA window of 16):
 * relative L2 error <= 1e-4 per position (fp32 against fp32; the two sum in different orders, so
 * about 1e-6 is expected, and 1e-4 leaves room for libm differences in exp/cos); every hidden
 * state likewise; prefill + single-token decode (and a rollback) bit-identical to one forward;
 * and the 32 greedy tokens identical, decoded with the KV cache. */
#include "../harness.h"
#include "golden_io.h"
#include "libquant/libquant.h"
#include "runtime/model.h"

int main(int argc, char **argv)
{
    const char *variant = argc > 3 ? argv[3] : "bf16";
    int mx = strcmp(variant, "mxfp4") == 0;
    if (argc < 3 || (mx && argc < 5) || (!mx && strcmp(variant, "bf16") && strcmp(variant, "fp8"))) {
        fprintf(stderr, "usage: test_golden MKFIXTURE GOLDEN_DIR [bf16 | fp8 | mxfp4 QUANTIZE]\n");
        return 2;
    }
    char root[] = "/tmp/mimo-golden-XXXXXX", cmd[2048], src[800];
    CHECK(mkdtemp(root) != NULL);
    snprintf(src, sizeof(src), "%s/b", root);
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant %s --no-drafter --out '%s' -q > /dev/null", argv[1],
             mx ? "fp8" : variant, src);
    CHECK(system(cmd) == 0);
    if (mx) {
        char art[700];
        snprintf(art, sizeof(art), "%s/mx", root);
        snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s' -q > /dev/null", argv[4], src, art);
        CHECK(system(cmd) == 0);
        snprintf(src, sizeof(src), "%s", art);
    }
    fprintf(stderr, "variant %s\n", variant);
    size_t lp, ll, lh, lg;
    int32_t *prompt = load_zst(argv[2], "prompt.i32.zst", &lp), *greedy = load_zst(argv[2], "greedy.i32.zst", &lg);
    float *glog = load_zst(argv[2], "logits.f32.zst", &ll), *ghid = load_zst(argv[2], "hidden.f32.zst", &lh);
    CHECK(prompt && greedy && glog && ghid);
    rt_model *m = NULL;
    lq_error err;
    lq_error_clear(&err);
    char eb[1400];
    CHECK_MSG(rt_model_open(src, NULL, &m, &err) == LQ_OK, "open: %s", lq_error_format(&err, eb, sizeof(eb)));
    if (!m || !prompt || !glog || !ghid || !greedy)
        return th_finish("test_golden");
    const lq_mimo_config *c = rt_model_config(m);
    size_t n = lp / 4, V = c->vocab_size, H = c->hidden_size, NL = c->num_hidden_layers;
    CHECK_EQ_U64(n, 48);
    CHECK_EQ_U64(ll, n * V * 4);
    CHECK_EQ_U64(lh, (NL + 1) * n * H * 4);
    float *logits = malloc(n * V * sizeof(float)), *hidden = malloc((NL + 1) * n * H * sizeof(float));
    rt_opts o = {.threads = 2};
    CHECK(rt_forward(m, prompt, n, &o, logits, hidden, &err) == LQ_OK);
    double worst = 0;
    for (size_t t = 0; t < n; t++) {
        double e = rel(logits + t * V, glog + t * V, V);
        worst = e > worst ? e : worst;
    }
    CHECK_MSG(worst <= 1e-4, "logits: worst per-position relative L2 %.3g", worst);
    fprintf(stderr, "logits: worst per-position relative L2 %.3g\n", worst);
    for (size_t l = 0; l <= NL; l++) {
        double e = rel(hidden + l * n * H, ghid + l * n * H, n * H);
        CHECK_MSG(e <= 1e-4, "hidden state %zu: relative L2 %.3g", l, e);
    }
    /* One path for prefill and decode: 40 tokens then 8 single steps give bit-identical logits to
     * the one forward of 48; a rollback of 4 positions and 4 new steps give them again. */
    rt_cache *kv = NULL;
    float *lg2 = malloc((n + 64) * V * sizeof(float));
    CHECK(rt_cache_new(m, n + 64, &kv, &err) == LQ_OK);
    CHECK(rt_step(m, kv, prompt, 40, &o, lg2, NULL, &err) == LQ_OK);
    for (size_t t = 40; t < n; t++)
        CHECK(rt_step(m, kv, prompt + t, 1, &o, lg2 + t * V, NULL, &err) == LQ_OK);
    CHECK(memcmp(lg2, logits, n * V * sizeof(float)) == 0);
    rt_cache_truncate(kv, 44);
    CHECK_EQ_U64(rt_cache_len(kv), 44);
    for (size_t t = 44; t < n; t++)
        CHECK(rt_step(m, kv, prompt + t, 1, &o, lg2 + t * V, NULL, &err) == LQ_OK);
    CHECK(memcmp(lg2, logits, n * V * sizeof(float)) == 0);
    /* Greedy with the cache: argmax of the last position, fed back, 32 times. */
    size_t total = n + lg / 4, same = 0;
    int32_t *seq = malloc(total * sizeof(int32_t));
    memcpy(seq, prompt, n * sizeof(int32_t));
    const float *last = logits + (n - 1) * V;
    float *step = malloc(V * sizeof(float));
    for (size_t s = n; s < total; s++) {
        size_t best = 0;
        for (size_t v = 1; v < V; v++)
            best = last[v] > last[best] ? v : best;
        seq[s] = (int32_t)best;
        same += seq[s] == greedy[s - n];
        CHECK(rt_step(m, kv, seq + s, 1, &o, step, NULL, &err) == LQ_OK);
        last = step;
    }
    CHECK_EQ_U64(same, total - n);
    fprintf(stderr, "greedy: %zu of %zu tokens equal\n", same, total - n);
    free(step);
    rt_cache_free(kv);
    free(seq), free(lg2), free(logits), free(hidden);
    free(prompt), free(greedy), free(glog), free(ghid);
    rt_model_close(m);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return th_finish("test_golden");
}
