/* End-to-end checks of mimo-mkfixture and mimo-mxreport on the tiny preset.
 *
 * usage: test_fixture_e2e MKFIXTURE MXREPORT
 *
 * 1. Both variants are written, open cleanly through the strict checkpoint reader, and have the
 *    tensor inventory reference/mimo_arch.md 4.1-4.3 and 6.1 describe (names, dtypes, shapes,
 *    fused qkv rows 2176 / 2816 with scale grids [18, 2] / [22, 2]).
 * 2. Determinism: a second run with the same seed, on 3 generator threads instead of 1, is
 *    byte-identical (SHA-256 of every file); another seed differs.
 * 3. The two variants hold the same weights: every FP8 tensor, decoded through its scale grid,
 *    matches the BF16 variant's tensor, and the fused qkv, de-interleaved per checkpoint-TP shard
 *    (mimo_arch.md 3.3), matches q, k and v. E4M3 keeps 3 mantissa bits, so the FP8 error is at
 *    most 2^-4 relative per element (plus the block scale's subnormal floor); the expected SQNR
 *    of the FP8 copy against the BF16 copy is about 31 dB and we require > 28 dB per tensor. A
 *    wrong interleave or grid gives ~0 dB.
 * 4. The drafter passes the packing rules of DESIGN.md (taps < layers, fc in = taps x hidden,
 *    mask id < vocab) and its mask_embedding.pt reads back through the non-executing reader.
 * 5. mimo-mxreport on the FP8 fixture exits 0, prints valid strict JSON, and its aggregate
 *    SQNR for the mse mode lies within 0.3 dB of the Gaussian figure of
 *    reference/mxfp4_formats.md 1.8 (19.05 dB; the weights are N(0, 0.02) seen through FP8). */
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"
#include "libquant/libquant.h"

static char tmpdir[256];

static int run(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static const cJSON *jget(const cJSON *o, const char *k) { return lq_json_get(o, k); }

static uint64_t ju(const cJSON *o, const char *k)
{
    uint64_t v = 0;
    if (lq_json_u64(jget(o, k), &v) != 0)
        TH_REPORT("config key %s is not an exact unsigned integer", k);
    return v;
}

static lq_ckpt *open_ck(const char *dir)
{
    lq_ckpt *ck = NULL;
    lq_error err;
    lq_error_clear(&err);
    if (lq_ckpt_open(dir, NULL, &ck, &err) != LQ_OK) {
        char buf[1400];
        TH_REPORT("open %s: %s", dir, lq_error_format(&err, buf, sizeof(buf)));
        return NULL;
    }
    return ck;
}

static const lq_tensor_info *need(const lq_ckpt *ck, const char *name, lq_dtype dt, uint32_t rank,
                                  uint64_t d0, uint64_t d1, lq_ckpt_tensor *out)
{
    lq_ckpt_tensor t;
    if (lq_ckpt_find(ck, name, &t) != 0) {
        TH_REPORT("missing tensor %s", name);
        return NULL;
    }
    const lq_tensor_info *ti = t.info;
    CHECK_MSG(ti->dtype == dt && ti->rank == rank && ti->shape[0] == d0 && (rank < 2 || ti->shape[1] == d1),
              "%s: got %s rank %u [%llu, %llu], want %s rank %u [%llu, %llu]", name,
              lq_dtype_name(ti->dtype), ti->rank, (unsigned long long)ti->shape[0],
              (unsigned long long)(rank > 1 ? ti->shape[1] : 0), lq_dtype_name(dt), rank,
              (unsigned long long)d0, (unsigned long long)d1);
    if (out)
        *out = t;
    return ti;
}

/* Decodes a tensor to f32 (FP8 through its scale partner). */
static float *decode(const lq_ckpt *ck, const char *name, uint64_t *n_out)
{
    lq_ckpt_tensor t;
    if (lq_ckpt_find(ck, name, &t) != 0)
        return NULL;
    const lq_tensor_info *ti = t.info;
    float *out = malloc(ti->numel * sizeof(float));
    if (ti->dtype == LQ_DTYPE_F8_E4M3) {
        char sn[300];
        snprintf(sn, sizeof(sn), "%s_scale_inv", name);
        lq_ckpt_tensor s;
        CHECK(lq_ckpt_find(ck, sn, &s) == 0);
        lq_fp8_grid g;
        lq_error err;
        CHECK(lq_fp8_grid_detect(ti->shape[0], ti->shape[1], s.info->shape[0], s.info->shape[1], 128,
                                 128, 0, name, &g, &err) == LQ_OK);
        CHECK(lq_fp8_block_dequant(&g, ti->dtype, lq_st_data(t.file, ti), s.info->dtype,
                                   lq_st_data(s.file, s.info), 0, ti->shape[0], out, name, &err) == LQ_OK);
    } else {
        CHECK(lq_to_f32(ti->dtype, lq_st_data(t.file, ti), ti->numel, out) == LQ_OK);
    }
    *n_out = ti->numel;
    return out;
}

static double sqnr(const float *ref, const float *x, uint64_t n)
{
    double s = 0, e = 0;
    for (uint64_t i = 0; i < n; i++) {
        s += (double)ref[i] * ref[i];
        e += ((double)ref[i] - x[i]) * ((double)ref[i] - x[i]);
    }
    return e == 0 ? 1e9 : 10 * log10(s / e);
}

/* SHA-256 of every regular file under dir (one level of subdirectories), concatenated by name. */
static void dir_digest(const char *dir, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cd '%s' && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum", dir);
    FILE *p = popen(cmd, "r");
    out[0] = 0;
    if (p) {
        if (!fgets(out, (int)cap, p))
            out[0] = 0;
        pclose(p);
    }
}

static void check_inventory(void)
{
    char bdir[300], fdir[300];
    snprintf(bdir, sizeof(bdir), "%s/bf16", tmpdir);
    snprintf(fdir, sizeof(fdir), "%s/fp8", tmpdir);
    lq_ckpt *b = open_ck(bdir), *f = open_ck(fdir);
    if (!b || !f) {
        lq_ckpt_close(b);
        lq_ckpt_close(f);
        return;
    }
    const cJSON *cb = lq_ckpt_config(b), *cf = lq_ckpt_config(f);
    CHECK_STR(cJSON_GetStringValue(jget(cb, "model_type")), "mimo_v2_flash");
    CHECK_STR(cJSON_GetStringValue(jget(cf, "model_type")), "mimo_v2");
    CHECK_EQ_U64(ju(cf, "hidden_size"), 256);
    CHECK_EQ_U64(ju(cf, "num_hidden_layers"), 12);
    const cJSON *q = jget(cf, "quantization_config");
    CHECK_STR(cJSON_GetStringValue(jget(q, "quant_method")), "fp8");
    CHECK_EQ_U64(cJSON_GetArraySize(jget(q, "ignored_layers")), 12);
    CHECK(lq_ckpt_has_index(b) && lq_ckpt_shard_count(b) > 1);
    CHECK(lq_ckpt_has_index(f) && lq_ckpt_shard_count(f) > 1);
    /* Tensor counts: per layer 2 norms + attention (3 split or 2 fused+scale, + o_proj, + sink on
     * SWA) + MLP; derived from the geometry in mimo_arch.md 6.1 as cut in tools/fixture.c. */
    uint64_t want_b = 3, want_f = 3;
    int pattern[12] = {0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0};
    for (int L = 0; L < 12; L++) {
        uint64_t common = 2 + 1 + (uint64_t)pattern[L];
        uint64_t mlp_b = L == 0 ? 3 : 2 + 16 * 3;
        uint64_t mlp_f = L == 0 ? 6 : 2 + 16 * 6;
        want_b += common + 3 + mlp_b;
        want_f += common + 2 + mlp_f;
    }
    CHECK_EQ_U64(lq_ckpt_count(b), want_b);
    CHECK_EQ_U64(lq_ckpt_count(f), want_f);

    need(b, "model.embed_tokens.weight", LQ_DTYPE_BF16, 2, 4096, 256, NULL);
    need(f, "lm_head.weight", LQ_DTYPE_BF16, 2, 4096, 256, NULL);
    need(b, "model.layers.0.self_attn.q_proj.weight", LQ_DTYPE_BF16, 2, 1536, 256, NULL);
    need(b, "model.layers.0.self_attn.k_proj.weight", LQ_DTYPE_BF16, 2, 384, 256, NULL);
    need(b, "model.layers.1.self_attn.k_proj.weight", LQ_DTYPE_BF16, 2, 768, 256, NULL);
    need(b, "model.layers.1.self_attn.v_proj.weight", LQ_DTYPE_BF16, 2, 512, 256, NULL);
    need(f, "model.layers.0.self_attn.qkv_proj.weight", LQ_DTYPE_F8_E4M3, 2, 2176, 256, NULL);
    need(f, "model.layers.0.self_attn.qkv_proj.weight_scale_inv", LQ_DTYPE_F32, 2, 18, 2, NULL);
    need(f, "model.layers.1.self_attn.qkv_proj.weight", LQ_DTYPE_F8_E4M3, 2, 2816, 256, NULL);
    need(f, "model.layers.1.self_attn.qkv_proj.weight_scale_inv", LQ_DTYPE_F32, 2, 22, 2, NULL);
    need(f, "model.layers.1.self_attn.o_proj.weight", LQ_DTYPE_BF16, 2, 256, 1024, NULL);
    need(f, "model.layers.1.self_attn.attention_sink_bias", LQ_DTYPE_BF16, 1, 8, 0, NULL);
    CHECK(lq_ckpt_find(f, "model.layers.0.self_attn.attention_sink_bias", &(lq_ckpt_tensor){0}) != 0);
    need(f, "model.layers.0.mlp.gate_proj.weight", LQ_DTYPE_F8_E4M3, 2, 1024, 256, NULL);
    need(f, "model.layers.0.mlp.down_proj.weight_scale_inv", LQ_DTYPE_F32, 2, 2, 8, NULL);
    need(f, "model.layers.3.mlp.gate.weight", LQ_DTYPE_F32, 2, 16, 256, NULL);
    need(f, "model.layers.3.mlp.gate.e_score_correction_bias", LQ_DTYPE_F32, 1, 16, 0, NULL);
    need(f, "model.layers.3.mlp.experts.15.gate_proj.weight", LQ_DTYPE_F8_E4M3, 2, 64, 256, NULL);
    need(f, "model.layers.3.mlp.experts.15.gate_proj.weight_scale_inv", LQ_DTYPE_F32, 2, 1, 2, NULL);
    need(f, "model.layers.3.mlp.experts.15.down_proj.weight", LQ_DTYPE_F8_E4M3, 2, 256, 64, NULL);
    need(f, "model.layers.3.mlp.experts.15.down_proj.weight_scale_inv", LQ_DTYPE_F32, 2, 2, 1, NULL);

    /* Same weights in both variants: every FP8 tensor against its BF16 twin. */
    int compared = 0;
    double worst = 1e9;
    for (size_t i = 0; i < lq_ckpt_count(f); i++) {
        lq_ckpt_tensor t = lq_ckpt_at(f, i);
        if (t.info->dtype != LQ_DTYPE_F8_E4M3)
            continue;
        const char *name = t.info->name;
        uint64_t nf = 0;
        float *wf = decode(f, name, &nf);
        const char *fused = strstr(name, "qkv_proj.weight");
        if (!fused) {
            uint64_t nb = 0;
            float *wb = decode(b, name, &nb);
            CHECK_MSG(wb && nb == nf, "%s: no BF16 twin of the same size", name);
            if (wb && nb == nf) {
                double s = sqnr(wb, wf, nf);
                worst = s < worst ? s : worst;
                CHECK_MSG(s > 28.0, "%s: FP8 vs BF16 SQNR %.2f dB", name, s);
            }
            free(wb);
        } else {
            /* De-interleave: shard s holds [q_s | k_s | v_s] (S = num_key_value_heads = 2). */
            char pre[200], nm[260];
            snprintf(pre, sizeof(pre), "%.*s", (int)(fused - name), name);
            uint64_t nq, nk, nv;
            snprintf(nm, sizeof(nm), "%sq_proj.weight", pre);
            float *wq = decode(b, nm, &nq);
            snprintf(nm, sizeof(nm), "%sk_proj.weight", pre);
            float *wk = decode(b, nm, &nk);
            snprintf(nm, sizeof(nm), "%sv_proj.weight", pre);
            float *wv = decode(b, nm, &nv);
            CHECK(wq && wk && wv && nq + nk + nv == nf);
            if (wq && wk && wv && nq + nk + nv == nf) {
                float *ref = malloc(nf * sizeof(float));
                uint64_t o = 0, S = 2;
                for (uint64_t s = 0; s < S; s++) {
                    memcpy(ref + o, wq + s * nq / S, nq / S * sizeof(float)), o += nq / S;
                    memcpy(ref + o, wk + s * nk / S, nk / S * sizeof(float)), o += nk / S;
                    memcpy(ref + o, wv + s * nv / S, nv / S * sizeof(float)), o += nv / S;
                }
                double sq = sqnr(ref, wf, nf);
                worst = sq < worst ? sq : worst;
                CHECK_MSG(sq > 28.0, "%s: fused FP8 vs de-interleaved BF16 SQNR %.2f dB", name, sq);
                free(ref);
            }
            free(wq), free(wk), free(wv);
        }
        free(wf);
        compared++;
    }
    CHECK_EQ_U64(compared, 12 + 3 + 11 * 16 * 3);
    fprintf(stderr, "FP8 vs BF16: %d tensors, worst SQNR %.2f dB\n", compared, worst);

    /* Drafter packing rules (DESIGN.md, Formats). */
    char ddir[320], mpath[360];
    snprintf(ddir, sizeof(ddir), "%s/dflash", bdir);
    lq_ckpt_opts o = {0};
    o.require_config = 1;
    lq_ckpt *d = NULL;
    lq_error err;
    CHECK(lq_ckpt_open(ddir, &o, &d, &err) == LQ_OK);
    if (d) {
        const cJSON *dc = lq_ckpt_config(d), *dd = jget(dc, "dflash_config");
        const cJSON *taps = jget(dd, "target_layer_ids");
        uint64_t ntaps = (uint64_t)cJSON_GetArraySize(taps), layers = ju(cb, "num_hidden_layers");
        for (int i = 0; i < (int)ntaps; i++) {
            uint64_t tap = 0;
            CHECK(lq_json_u64(cJSON_GetArrayItem(taps, i), &tap) == 0 && tap < layers);
        }
        need(d, "fc.weight", LQ_DTYPE_BF16, 2, ju(dc, "hidden_size"), ntaps * ju(cb, "hidden_size"), NULL);
        uint64_t mask = ju(dd, "mask_token_id");
        CHECK(mask < ju(cb, "vocab_size"));
        snprintf(mpath, sizeof(mpath), "%s/mask_embedding.pt", ddir);
        int64_t id = -1;
        uint16_t *emb = NULL;
        uint64_t h = 0;
        CHECK(lq_torchzip_read_mask(mpath, &id, &emb, &h, &err) == LQ_OK);
        CHECK_EQ_U64((uint64_t)id, mask);
        CHECK_EQ_U64(h, ju(dc, "hidden_size"));
        free(emb);
        lq_ckpt_close(d);
    }
    lq_ckpt_close(b);
    lq_ckpt_close(f);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_fixture_e2e MKFIXTURE MXREPORT\n");
        return 2;
    }
    const char *mk = argv[1], *mx = argv[2];
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/mimo-e2e-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant bf16 --out '%s/bf16' -q >/dev/null", mk, tmpdir);
    CHECK_EQ_U64(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant fp8 --out '%s/fp8' -q >/dev/null", mk, tmpdir);
    CHECK_EQ_U64(run(cmd), 0);
    /* Refuses to write into a non-empty directory, and leaves it untouched. */
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant fp8 --out '%s/fp8' -q 2>/dev/null", mk, tmpdir);
    CHECK_EQ_U64(run(cmd), 3);
    snprintf(cmd, sizeof(cmd), "'%s' --preset huge --variant fp8 --out '%s/x' 2>/dev/null", mk, tmpdir);
    CHECK_EQ_U64(run(cmd), 2);

    check_inventory();

    /* Determinism. */
    char d1[200], d2[200], d3[200];
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant fp8 --threads 3 --out '%s/fp8b' -q >/dev/null", mk, tmpdir);
    CHECK_EQ_U64(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant fp8 --seed 2 --out '%s/fp8c' -q >/dev/null", mk, tmpdir);
    CHECK_EQ_U64(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s/fp8", tmpdir);
    dir_digest(cmd, d1, sizeof(d1));
    snprintf(cmd, sizeof(cmd), "%s/fp8b", tmpdir);
    dir_digest(cmd, d2, sizeof(d2));
    snprintf(cmd, sizeof(cmd), "%s/fp8c", tmpdir);
    dir_digest(cmd, d3, sizeof(d3));
    CHECK(d1[0] && strcmp(d1, d2) == 0);
    CHECK(strcmp(d1, d3) != 0);

    /* mimo-mxreport: JSON output, aggregate SQNR near the reference Gaussian figure. */
    snprintf(cmd, sizeof(cmd), "'%s' '%s/fp8' --format json > '%s/report.json'", mx, tmpdir, tmpdir);
    CHECK_EQ_U64(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s/report.json", tmpdir);
    cJSON *rep = NULL;
    lq_error err;
    CHECK(lq_json_parse_file(cmd, 0, NULL, &rep, &err) == LQ_OK);
    if (rep) {
        const cJSON *sum = jget(rep, "summary");
        CHECK_EQ_U64(ju(sum, "tensors"), 11 * 16 * 3);
        CHECK_EQ_U64(cJSON_GetArraySize(jget(rep, "tensors")), 11 * 16 * 3);
        double s = cJSON_GetNumberValue(jget(sum, "sqnr_db"));
        CHECK_NEAR(s, 19.05, 0.3, 0);
        cJSON_Delete(rep);
    }
    snprintf(cmd, sizeof(cmd), "'%s' '%s/fp8' --mode bogus 2>/dev/null", mx, tmpdir);
    CHECK_EQ_U64(run(cmd), 2);
    snprintf(cmd, sizeof(cmd), "'%s' '%s/nonexistent' 2>/dev/null", mx, tmpdir);
    CHECK_EQ_U64(run(cmd), 3);

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    run(cmd);
    return th_finish("test_fixture_e2e");
}
