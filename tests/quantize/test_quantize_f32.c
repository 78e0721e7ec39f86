/* mimo-quantize on an F32 source (mimo-mkfixture --variant f32: the bf16 variant's layout stored
 * as F32). usage: test_quantize_f32 MKFIXTURE QUANTIZE
 * - exit 0; kept tensors stay F32 and byte-identical (lm_head, a norm, the router);
 * - every routed expert becomes U8 [N, K/2] + U8 [N, K/32] whose bytes equal lq_mxfp4_quantize
 *   (mse) of the source F32 values: the converter adds nothing between source and codec;
 * - the report's SQNR is within 0.3 dB of 19.05, the Gaussian mse figure of
 *   reference/mxfp4_formats.md 1.8 (the fixture's weights are N(0, 0.02)). */
#include <sys/wait.h>

#include "../harness.h"
#include "libquant/libquant.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_quantize_f32 MKFIXTURE QUANTIZE\n");
        return 2;
    }
    char root[] = "/tmp/mimo-qf32-XXXXXX", cmd[4096], src[256], out[256];
    CHECK(mkdtemp(root) != NULL);
    snprintf(src, sizeof(src), "%s/src", root);
    snprintf(out, sizeof(out), "%s/out", root);
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant f32 --out '%s' -q >/dev/null", argv[1], src);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s' -q --max-shard-size 20M >/dev/null", argv[2], src, out);
    int rc = system(cmd);
    CHECK_MSG(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "conversion failed (%d)", rc);
    lq_ckpt *s = NULL, *o = NULL;
    lq_error err;
    CHECK(lq_ckpt_open(src, NULL, &s, &err) == LQ_OK);
    CHECK(lq_ckpt_open(out, NULL, &o, &err) == LQ_OK);
    size_t experts = 0, kept = 0;
    for (size_t i = 0; s && o && i < lq_ckpt_count(s); i++) {
        lq_ckpt_tensor t = lq_ckpt_at(s, i), q, sc;
        const lq_tensor_info *ti = t.info;
        if (lq_ckpt_find(o, ti->name, &q) != 0) {
            TH_REPORT("%s missing from the output", ti->name);
            continue;
        }
        if (!strstr(ti->name, ".mlp.experts.")) {
            CHECK_MSG(q.info->dtype == ti->dtype && q.info->nbytes == ti->nbytes &&
                          memcmp(lq_st_data(q.file, q.info), lq_st_data(t.file, ti), ti->nbytes) == 0,
                      "%s: kept tensor changed", ti->name);
            kept++;
            continue;
        }
        char sn[300];
        snprintf(sn, sizeof(sn), "%s_scale", ti->name);
        uint64_t N = ti->shape[0], K = ti->shape[1];
        if (lq_ckpt_find(o, sn, &sc) != 0 || q.info->dtype != LQ_DTYPE_U8 || q.info->shape[1] != K / 2 ||
            sc.info->shape[1] != K / 32) {
            TH_REPORT("%s: not MXFP4 in the output", ti->name);
            continue;
        }
        float *w = malloc(N * K * sizeof(float));
        uint8_t *p = malloc(N * K / 2), *e = malloc(N * K / 32);
        memcpy(w, lq_st_data(t.file, ti), N * K * sizeof(float));
        CHECK(lq_mxfp4_quantize(w, N * K, LQ_MX_SCALE_MSE, p, e, NULL, NULL) == LQ_OK);
        CHECK_MSG(memcmp(p, lq_st_data(q.file, q.info), N * K / 2) == 0 &&
                      memcmp(e, lq_st_data(sc.file, sc.info), N * K / 32) == 0,
                  "%s: bytes differ from the codec's", ti->name);
        free(w), free(p), free(e);
        experts++;
    }
    CHECK_EQ_U64(experts, 11 * 16 * 3);
    CHECK(kept > 50);
    cJSON *r = NULL;
    snprintf(cmd, sizeof(cmd), "%s/mimo-quant-report.json", out);
    CHECK(lq_json_parse_file(cmd, 0, NULL, &r, &err) == LQ_OK);
    if (r)
        CHECK_NEAR(cJSON_GetNumberValue(lq_json_get(lq_json_get(r, "summary"), "sqnr_db")), 19.05, 0.3, 0);
    cJSON_Delete(r);
    lq_ckpt_close(s);
    lq_ckpt_close(o);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return th_finish("test_quantize_f32");
}
