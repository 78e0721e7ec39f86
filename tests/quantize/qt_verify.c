/* Verification of a mimo-quantize output directory against its source (qt_verify.h).
 *
 * The MXFP4 rules are re-implemented here from their definitions rather than by calling the
 * codec under test: E2M1 values and the round-to-nearest decision points with ties to the even
 * code come from reference/mxfp4_formats.md 1.2 (the same thresholds compressed-tensors uses),
 * the scale candidates and the mse choice from mxfp4.h and reference/mxfp4_formats.md 1.5.
 * Only the final decode of the stored bytes goes through lq_mxfp4_dequantize, because that is
 * what the report's figures are computed from and what a loader would do. */
#include "qt_verify.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../harness.h"
#include "libquant/libquant.h"
#include "qt_util.h"

/* Reference figure of reference/mxfp4_formats.md 1.8: Gaussian data, mse scale mode. */
#define GAUSSIAN_MSE_SQNR_DB 19.05

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

int qt_is_routed_expert(const char *name)
{
    const char *p = strstr(name, ".mlp.experts.");
    if (!p)
        return 0;
    p += strlen(".mlp.experts.");
    const char *d = p;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p == d)
        return 0;
    return !strcmp(p, ".gate_proj.weight") || !strcmp(p, ".up_proj.weight") || !strcmp(p, ".down_proj.weight");
}

/* ---- the MXFP4 rules, from their definitions ---- */

static const double e2m1_mag[8] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0};

/* Nearest E2M1 magnitude, ties to the even code, saturating at 6 (mxfp4_formats.md 1.2:
 * decision points 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5; ties go to codes 0, 2, 2, 4, 4, 6, 6). */
static unsigned ref_mag_code(double a)
{
    if (a <= 0.25)
        return 0;
    if (a < 0.75)
        return 1;
    if (a <= 1.25)
        return 2;
    if (a < 1.75)
        return 3;
    if (a <= 2.5)
        return 4;
    if (a < 3.5)
        return 5;
    if (a <= 5.0)
        return 6;
    return 7;
}

/* Codes of a block at scale 2^e and the squared error of that choice. */
static double ref_encode(const float *x, int e, uint8_t codes[32])
{
    double err = 0;
    for (int i = 0; i < 32; i++) {
        double y = ldexp((double)x[i], -e);
        unsigned m = ref_mag_code(fabs(y));
        int neg = signbit(x[i]) != 0;
        codes[i] = (uint8_t)(m | (neg ? 8u : 0u));
        double q = ldexp(neg ? -e2m1_mag[m] : e2m1_mag[m], e);
        double d = (double)x[i] - q;
        err += d * d;
    }
    return err;
}

static int clamp_exp(int e) { return e < -127 ? -127 : (e > 127 ? 127 : e); }

/* Checks one stored block (16 packed bytes, one scale byte) against the rules. Returns 0 when it
 * is exactly what the rules give, else 1 with the reason in why. */
static int check_block(const float *x, const uint8_t *packed, uint8_t scale, char *why, size_t cap)
{
    uint8_t got[32], want0[32], want1[32];
    for (int j = 0; j < 16; j++) {
        got[2 * j] = packed[j] & 0xF;        /* low nibble = even element */
        got[2 * j + 1] = packed[j] >> 4;
    }
    double amax = 0;
    for (int i = 0; i < 32; i++)
        amax = fmax(amax, fabs((double)x[i]));
    if (amax == 0) {
        /* All-zero block: scale 0x00, codes 0 or 0x8 for -0.0 (mxfp4.h). */
        for (int i = 0; i < 32; i++)
            want0[i] = signbit(x[i]) ? 8 : 0;
        if (scale != 0 || memcmp(got, want0, 32) != 0) {
            snprintf(why, cap, "all-zero block stored with scale %u", scale);
            return 1;
        }
        return 0;
    }
    int E;
    frexp(amax, &E);
    E -= 1; /* floor(log2 amax) */
    int ef = clamp_exp(E - 2), e1 = clamp_exp(E - 1);
    double err0 = ref_encode(x, ef, want0);
    double err1 = ref_encode(x, e1, want1);
    int se = (int)scale - 127;
    if (se != ef && se != e1) {
        snprintf(why, cap, "scale exponent %d is neither floor (%d) nor floor + 1", se, ef);
        return 1;
    }
    /* The library compares the errors exactly; in double they can differ in the last bits, so a
     * near-tie accepts either candidate. */
    int near = fabs(err0 - err1) <= 1e-9 * (err0 + err1);
    if (!near && ((se == ef && err1 < err0) || (se == e1 && err0 <= err1))) {
        snprintf(why, cap, "scale exponent %d is not the mse choice (errors %.9g at %d, %.9g at %d)", se, err0,
                 ef, err1, e1);
        return 1;
    }
    const uint8_t *want = se == ef ? want0 : want1;
    for (int i = 0; i < 32; i++)
        if (got[i] != want[i]) {
            snprintf(why, cap, "element %d: code 0x%X, want 0x%X (x = %.9g, scale 2^%d)", i, got[i], want[i],
                     (double)x[i], se);
            return 1;
        }
    return 0;
}

/* ---- source decoding, by hand ---- */

static float bf16_bits(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* F8_E4M3 (e4m3fn): bias 7, subnormals m/8 * 2^-6, S.1111.111 is NaN, no infinities. */
static float e4m3_value(uint8_t b)
{
    int s = b >> 7, e = (b >> 3) & 0xF, m = b & 7;
    float v;
    if (e == 0xF && m == 7)
        v = NAN;
    else if (e == 0)
        v = (float)ldexp(m / 8.0, -6);
    else
        v = (float)ldexp(1.0 + m / 8.0, e - 7);
    return s ? -v : v;
}

/* Source weight as f32 (BF16 by its bits, FP8 through its 128x128 scale grid). NULL with a
 * reason when the dtype or grid is not one the fixtures use. */
static float *decode_source(const lq_ckpt *src, lq_ckpt_tensor t, char *why, size_t cap)
{
    const lq_tensor_info *ti = t.info;
    const uint8_t *d = lq_st_data(t.file, ti);
    uint64_t N = ti->shape[0], K = ti->rank == 2 ? ti->shape[1] : 0;
    float *w = malloc((ti->numel ? ti->numel : 1) * sizeof(float));
    if (!w || ti->rank != 2) {
        snprintf(why, cap, "not a 2-D tensor");
        free(w);
        return NULL;
    }
    if (ti->dtype == LQ_DTYPE_BF16) {
        for (uint64_t i = 0; i < ti->numel; i++)
            w[i] = bf16_bits((uint16_t)(d[2 * i] | d[2 * i + 1] << 8));
        return w;
    }
    if (ti->dtype == LQ_DTYPE_F32 || ti->dtype == LQ_DTYPE_F16) {
        if (lq_to_f32(ti->dtype, d, (size_t)ti->numel, w) == LQ_OK)
            return w;
        snprintf(why, cap, "lq_to_f32 failed");
        free(w);
        return NULL;
    }
    if (ti->dtype == LQ_DTYPE_F8_E4M3) {
        char sn[600];
        snprintf(sn, sizeof(sn), "%s_scale_inv", ti->name);
        lq_ckpt_tensor s;
        uint64_t sr = (N + 127) / 128, sc = (K + 127) / 128;
        if (lq_ckpt_find(src, sn, &s) != 0 || s.info->dtype != LQ_DTYPE_F32 || s.info->rank != 2 ||
            s.info->shape[0] != sr || s.info->shape[1] != sc) {
            snprintf(why, cap, "no uniform F32 [%llu, %llu] scale grid %s", (unsigned long long)sr,
                     (unsigned long long)sc, sn);
            free(w);
            return NULL;
        }
        const uint8_t *sd = lq_st_data(s.file, s.info);
        for (uint64_t r = 0; r < N; r++)
            for (uint64_t c = 0; c < K; c++) {
                float scale;
                memcpy(&scale, sd + 4 * ((r / 128) * sc + c / 128), 4);
                w[r * K + c] = e4m3_value(d[r * K + c]) * scale; /* one f32 product */
            }
        return w;
    }
    snprintf(why, cap, "source dtype %s not handled by the test", lq_dtype_name(ti->dtype));
    free(w);
    return NULL;
}

/* ---- per-tensor figures ---- */

typedef struct qstat {
    char *name;
    double sw2, sq2, swq, se2;
    uint64_t n, clipped;
    uint64_t N, K;
    lq_dtype src_dtype;
    int reported;
} qstat;

static double sqnr_of(double sw2, double se2) { return se2 == 0 ? INFINITY : 10.0 * log10(sw2 / se2); }

static int cmp_qstat(const void *a, const void *b) { return strcmp(((const qstat *)a)->name, ((const qstat *)b)->name); }

static const cJSON *jget(const cJSON *o, const char *k) { return lq_json_get(o, k); }

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = jget(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *jstr(const cJSON *o, const char *k) { return cJSON_GetStringValue(jget(o, k)); }

static uint64_t ju64(const cJSON *o, const char *k)
{
    uint64_t v = UINT64_MAX;
    lq_json_u64(jget(o, k), &v);
    return v;
}

/* One quantized weight: output names and shapes, the block rules, libquant's decode and figures. */
static void verify_quantized(const qt_expect *e, const lq_ckpt *src, const lq_ckpt *out, lq_ckpt_tensor st,
                             qstat *qs, qt_result *r)
{
    const lq_tensor_info *si = st.info;
    char wname[600], sname[600], why[700];
    snprintf(wname, sizeof(wname), "%s%s", si->name, e->compressed ? "_packed" : "");
    snprintf(sname, sizeof(sname), "%s_scale", si->name);
    uint64_t N = si->shape[0], K = si->rank == 2 ? si->shape[1] : 0;
    qs->name = strdup(si->name);
    qs->N = N;
    qs->K = K;
    qs->src_dtype = si->dtype;
    lq_ckpt_tensor ow, os;
    if (lq_ckpt_find(out, wname, &ow) != 0 || lq_ckpt_find(out, sname, &os) != 0) {
        TH_REPORT("%s: %s or %s missing from the output", si->name, wname, sname);
        return;
    }
    if (e->compressed)
        CHECK_MSG(lq_ckpt_find(out, si->name, &(lq_ckpt_tensor){0}) != 0,
                  "%s: compressed-tensors output still has the plain weight name", si->name);
    CHECK_MSG(ow.info->dtype == LQ_DTYPE_U8 && ow.info->rank == 2 && ow.info->shape[0] == N &&
                  ow.info->shape[1] == K / 2,
              "%s: packed weight is %s rank %u, want U8 [%llu, %llu]", wname, lq_dtype_name(ow.info->dtype),
              ow.info->rank, (unsigned long long)N, (unsigned long long)(K / 2));
    CHECK_MSG(os.info->dtype == LQ_DTYPE_U8 && os.info->rank == 2 && os.info->shape[0] == N &&
                  os.info->shape[1] == K / 32,
              "%s: scale is %s rank %u, want U8 [%llu, %llu]", sname, lq_dtype_name(os.info->dtype), os.info->rank,
              (unsigned long long)N, (unsigned long long)(K / 32));
    CHECK_MSG(ow.shard == os.shard, "%s: weight and scale in different shards", si->name);
    if (ow.info->nbytes != N * K / 2 || os.info->nbytes != N * K / 32)
        return;
    float *w = decode_source(src, st, why, sizeof(why));
    if (!w) {
        TH_REPORT("%s: %s", si->name, why);
        return;
    }
    const uint8_t *packed = lq_st_data(ow.file, ow.info), *scales = lq_st_data(os.file, os.info);
    /* Block rules, every block. */
    uint64_t nb = N * K / 32, bad = 0;
    for (uint64_t b = 0; b < nb; b++) {
        if (check_block(w + 32 * b, packed + 16 * b, scales[b], why, sizeof(why)) != 0) {
            if (bad == 0)
                TH_REPORT("%s: block %llu (row %llu): %s", si->name, (unsigned long long)b,
                          (unsigned long long)(b / (K / 32)), why);
            bad++;
        }
    }
    th_checks++;
    r->blocks += nb;
    r->bad_blocks += bad;
    /* Decoded by libquant, compared with the source. */
    float *q = malloc(N * K * sizeof(float));
    size_t badblk = 0;
    if (!q || lq_mxfp4_dequantize(packed, scales, (size_t)(N * K), q, &badblk) != LQ_OK) {
        TH_REPORT("%s: lq_mxfp4_dequantize failed (block %zu)", si->name, badblk);
    } else {
        for (uint64_t i = 0; i < N * K; i++) {
            double x = w[i], y = q[i], d = x - y;
            qs->sw2 += x * x;
            qs->sq2 += y * y;
            qs->swq += x * y;
            qs->se2 += d * d;
            if (fabs(ldexp(x, -((int)scales[i / 32] - 127))) > 6.0)
                qs->clipped++;
        }
        qs->n = N * K;
    }
    free(q);
    free(w);
    r->nquant++;
}

/* ---- config.json ---- */

static int in_string_array(const cJSON *arr, const char *s)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (cJSON_IsString(it) && !strcmp(it->valuestring, s))
            return 1;
    }
    return 0;
}

/* compressed-tensors target semantics (mxfp4_formats.md 2.6): an exact module name, or "re:"
 * followed by a regex applied with re.match (anchored at the start only). */
static int ct_targeted(const cJSON *targets, const char *module)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, targets) {
        const char *t = cJSON_GetStringValue(it);
        if (!t)
            continue;
        if (strncmp(t, "re:", 3) != 0) {
            if (!strcmp(t, module))
                return 1;
            continue;
        }
        char pat[1100];
        snprintf(pat, sizeof(pat), "^(%s)", t + 3);
        regex_t re;
        if (regcomp(&re, pat, REG_EXTENDED | REG_NOSUB) != 0)
            continue;
        int m = regexec(&re, module, 0, NULL, 0) == 0;
        regfree(&re);
        if (m)
            return 1;
    }
    return 0;
}

static int is_float_dtype(lq_dtype d) { return d == LQ_DTYPE_BF16 || d == LQ_DTYPE_F16 || d == LQ_DTYPE_F32; }

static void verify_config(const qt_expect *e, const lq_ckpt *src, int (*quantized)(const char *))
{
    const cJSON *sc = lq_ckpt_config(src);
    cJSON *oc = qt_json(qt_p("%s/config.json", e->out));
    if (!sc || !oc) {
        TH_REPORT("config.json missing or not strict JSON in %s or %s", e->src, e->out);
        cJSON_Delete(oc);
        return;
    }
    /* Everything but quantization_config is the source's. */
    cJSON *a = cJSON_Duplicate(sc, 1), *b = cJSON_Duplicate(oc, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(a, "quantization_config");
    cJSON_DeleteItemFromObjectCaseSensitive(b, "quantization_config");
    CHECK_MSG(cJSON_Compare(a, b, 1), "%s/config.json: members other than quantization_config differ from the source",
              e->out);
    cJSON_Delete(a);
    cJSON_Delete(b);
    const cJSON *sq = jget(sc, "quantization_config"), *oq = jget(oc, "quantization_config");
    if (!cJSON_IsObject(oq)) {
        TH_REPORT("%s/config.json: no quantization_config object", e->out);
        cJSON_Delete(oc);
        return;
    }
    size_t nsrc = lq_ckpt_count(src);
    if (e->compressed) {
        /* mxfp4_formats.md 2.6: the MXFP4A16 preset's fields. */
        CHECK_STR(jstr(oq, "quant_method"), "compressed-tensors");
        CHECK_STR(jstr(oq, "format"), "mxfp4-pack-quantized");
        CHECK_STR(jstr(oq, "quantization_status"), "compressed");
        const cJSON *g0 = jget(jget(oq, "config_groups"), "group_0");
        const cJSON *wq = jget(g0, "weights");
        CHECK_STR(jstr(g0, "format"), "mxfp4-pack-quantized");
        CHECK_EQ_U64(ju64(wq, "num_bits"), 4);
        CHECK_STR(jstr(wq, "type"), "float");
        CHECK_STR(jstr(wq, "strategy"), "group");
        CHECK_EQ_U64(ju64(wq, "group_size"), 32);
        CHECK(cJSON_IsTrue(jget(wq, "symmetric")));
        CHECK_STR(jstr(wq, "scale_dtype"), "torch.uint8");
        CHECK(cJSON_IsArray(jget(oq, "ignore")));
        const cJSON *targets = jget(g0, "targets");
        CHECK(cJSON_IsArray(targets) && cJSON_GetArraySize(targets) > 0);
        /* Every quantized module is a target; no other 2-D linear is. */
        for (size_t i = 0; i < nsrc; i++) {
            const lq_tensor_info *ti = lq_ckpt_at(src, i).info;
            if (ti->rank != 2 || !ends_with(ti->name, ".weight"))
                continue;
            char mod[600];
            snprintf(mod, sizeof(mod), "%.*s", (int)(strlen(ti->name) - 7), ti->name);
            int want = quantized(ti->name);
            CHECK_MSG(ct_targeted(targets, mod) == want, "compressed-tensors targets %s %s", want ? "miss" : "include",
                      mod);
        }
    } else {
        CHECK_STR(jstr(oq, "store_dtype"), "mxfp4");
        CHECK_EQ_U64(ju64(oq, "mxfp4_block_size"), 32);
        if (cJSON_IsObject(sq)) {
            /* FP8 source: its fields are kept, two are added (mimo_arch.md 2.3, FP4-DFlash). */
            const cJSON *it;
            int extra = 0;
            cJSON_ArrayForEach(it, sq) {
                const cJSON *o = jget(oq, it->string);
                CHECK_MSG(o && cJSON_Compare(it, o, 1), "quantization_config.%s not kept from the source", it->string);
            }
            cJSON_ArrayForEach(it, oq) {
                if (!jget(sq, it->string))
                    extra++;
            }
            CHECK_EQ_U64(extra, 2 - (jget(sq, "store_dtype") != NULL) - (jget(sq, "mxfp4_block_size") != NULL));
        } else {
            /* BF16 source: the FP8 form whose ignored_layers lists every 2-D floating-point
             * linear that stays unquantized (embeddings and lm_head are no FP8 linears), so an
             * FP8 loader reads them as BF16 (plan.c build_config, mimo_arch.md 2.3). */
            CHECK_STR(jstr(oq, "quant_method"), "fp8");
            CHECK_STR(jstr(oq, "fmt"), "e4m3");
            CHECK_STR(jstr(oq, "activation_scheme"), "dynamic");
            const cJSON *blk = jget(oq, "weight_block_size");
            CHECK(cJSON_GetArraySize(blk) == 2 && cJSON_GetArrayItem(blk, 0)->valuedouble == 128 &&
                  cJSON_GetArrayItem(blk, 1)->valuedouble == 128);
            const cJSON *ign = jget(oq, "ignored_layers");
            size_t want = 0;
            for (size_t i = 0; i < nsrc; i++) {
                const lq_tensor_info *ti = lq_ckpt_at(src, i).info;
                if (ti->rank != 2 || !is_float_dtype(ti->dtype) || !ends_with(ti->name, ".weight") ||
                    quantized(ti->name) || strstr(ti->name, "embed_tokens") || !strncmp(ti->name, "lm_head", 7))
                    continue;
                char mod[600];
                snprintf(mod, sizeof(mod), "%.*s", (int)(strlen(ti->name) - 7), ti->name);
                want++;
                CHECK_MSG(in_string_array(ign, mod), "ignored_layers lacks %s", mod);
            }
            CHECK_EQ_U64((uint64_t)cJSON_GetArraySize(ign), want);
        }
    }
    cJSON_Delete(oc);
}

/* ---- report ---- */

static void verify_report(const qt_expect *e, qstat *qs, size_t nq, qt_result *r, int experts_only)
{
    cJSON *rep = qt_json(qt_p("%s/%s", e->out, LQ_REPORT_FILE));
    if (!rep) {
        TH_REPORT("%s/%s missing or not strict JSON", e->out, LQ_REPORT_FILE);
        return;
    }
    const cJSON *sum = jget(rep, "summary");
    CHECK_EQ_U64(ju64(sum, "quantized_tensors"), nq);
    CHECK_EQ_U64(ju64(sum, "elements"), r->elements);
    CHECK_EQ_U64(ju64(sum, "nonfinite"), 0);
    r->report_sqnr_db = jnum(sum, "sqnr_db");
    /* 6 significant digits in the file: 19.0610 is exact to 5e-5 dB. */
    CHECK_NEAR(r->report_sqnr_db, r->sqnr_db, 1e-4, 0);
    CHECK_NEAR(jnum(sum, "cosine"), r->cosine, 1e-7, 0);       /* 8 significant digits */
    CHECK_NEAR(jnum(sum, "clip_frac"), r->clip_frac, 1e-7, 0); /* 6 significant digits of ~0.01 */
    CHECK_STR(jstr(rep, "scale_mode"), "mse");
    if (experts_only) {
        /* 32 four-bit codes plus one 8-bit scale per 32 weights: 4.25 bits (mxfp4_formats.md 1.1). */
        const cJSON *c;
        int found = 0;
        cJSON_ArrayForEach(c, jget(rep, "classes")) {
            if (jstr(c, "class") && !strcmp(jstr(c, "class"), "routed_experts")) {
                found = 1;
                CHECK_NEAR(jnum(c, "bits_per_weight"), 4.25, 1e-12, 0);
                CHECK_EQ_U64(ju64(c, "params"), r->elements);
            }
        }
        CHECK(found);
    }
    size_t nrep = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, jget(rep, "tensors")) {
        nrep++;
        const char *nm = jstr(t, "name");
        /* The report names output tensors: X.weight_packed in the compressed-tensors layout. */
        char base[600];
        if (nm && e->compressed && ends_with(nm, "_packed")) {
            snprintf(base, sizeof(base), "%.*s", (int)(strlen(nm) - 7), nm);
            nm = base;
        }
        qstat key = {.name = (char *)nm};
        qstat *hit = nm ? bsearch(&key, qs, nq, sizeof(*qs), cmp_qstat) : NULL;
        if (!hit) {
            TH_REPORT("report names %s, which is not a quantized tensor", nm ? nm : "(null)");
            continue;
        }
        CHECK_MSG(!hit->reported, "report lists %s twice", nm);
        hit->reported = 1;
        CHECK_NEAR(jnum(t, "sqnr_db"), sqnr_of(hit->sw2, hit->se2), 1e-4, 0);
        const cJSON *shape = jget(t, "shape");
        CHECK_MSG(cJSON_GetArraySize(shape) == 2 && cJSON_GetArrayItem(shape, 0)->valuedouble == (double)hit->N &&
                      cJSON_GetArrayItem(shape, 1)->valuedouble == (double)hit->K,
                  "report shape of %s", nm);
        CHECK_STR(jstr(t, "source_dtype"), lq_dtype_name(hit->src_dtype));
    }
    CHECK_EQ_U64(nrep, nq);
    cJSON_Delete(rep);
}

/* ---- manifest ---- */

static void collect_files(const char *root, const char *rel, char ***v, size_t *n)
{
    char **names = qt_list(rel[0] ? qt_p("%s/%s", root, rel) : root);
    for (size_t i = 0; names && names[i]; i++) {
        char p[2048];
        snprintf(p, sizeof(p), "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
        if (qt_is_dir(qt_p("%s/%s", root, p))) {
            collect_files(root, p, v, n);
            continue;
        }
        char **nv = realloc(*v, (*n + 1) * sizeof(char *));
        if (!nv)
            break;
        *v = nv;
        (*v)[(*n)++] = strdup(p);
    }
    qt_free_names(names);
}

static void verify_manifest(const qt_expect *e, const lq_ckpt *src, const lq_ckpt *out)
{
    cJSON *m = qt_json(qt_p("%s/%s", e->out, LQ_MANIFEST_FILE));
    if (!m) {
        TH_REPORT("%s/%s missing or not strict JSON", e->out, LQ_MANIFEST_FILE);
        return;
    }
    CHECK_MSG(qt_exists(qt_p("%s/%s", e->out, LQ_SIGNATURE_FILE)) == e->has_signature, "signature file %s",
              e->has_signature ? "missing" : "present without --sign-key");
    char **files = NULL;
    size_t nfiles = 0;
    collect_files(e->out, "", &files, &nfiles);
    char *listed = calloc(nfiles + 1, 1);
    const cJSON *f;
    size_t nlisted = 0;
    cJSON_ArrayForEach(f, jget(m, "files")) {
        const char *p = jstr(f, "path");
        nlisted++;
        size_t k = 0;
        while (p && k < nfiles && strcmp(files[k], p) != 0)
            k++;
        if (!p || k == nfiles) {
            TH_REPORT("manifest lists %s, which is not a file of OUT", p ? p : "(null)");
            continue;
        }
        CHECK_MSG(!listed[k], "manifest lists %s twice", p);
        listed[k] = 1;
        char hex[65];
        uint64_t size = 0;
        if (qt_sha256_file(qt_p("%s/%s", e->out, p), hex, &size) != 0) {
            TH_REPORT("cannot read %s/%s", e->out, p);
            continue;
        }
        CHECK_MSG(ju64(f, "size") == size, "manifest size of %s: %llu, file has %llu", p,
                  (unsigned long long)ju64(f, "size"), (unsigned long long)size);
        CHECK_MSG(jstr(f, "sha256") && !strcmp(jstr(f, "sha256"), hex), "manifest SHA-256 of %s differs", p);
    }
    for (size_t k = 0; k < nfiles; k++) {
        int own = !strcmp(files[k], LQ_MANIFEST_FILE) || !strcmp(files[k], LQ_SIGNATURE_FILE);
        CHECK_MSG(listed[k] || own, "%s/%s is not in the manifest", e->out, files[k]);
        free(files[k]);
    }
    free(files);
    free(listed);
    CHECK(nlisted > 0);
    /* Tensors: exactly the shards' tensors, each with dtype, shape and file. */
    size_t nt = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, jget(m, "tensors")) {
        nt++;
        const char *nm = jstr(t, "name");
        lq_ckpt_tensor ct;
        if (!nm || lq_ckpt_find(out, nm, &ct) != 0) {
            TH_REPORT("manifest tensor %s is in no shard", nm ? nm : "(null)");
            continue;
        }
        CHECK_STR(jstr(t, "dtype"), lq_dtype_name(ct.info->dtype));
        CHECK_STR(jstr(t, "file"), lq_ckpt_shard_name(out, ct.shard));
        const cJSON *shape = jget(t, "shape");
        int ok = (uint32_t)cJSON_GetArraySize(shape) == ct.info->rank;
        for (uint32_t k = 0; ok && k < ct.info->rank; k++) {
            uint64_t v = 0;
            ok = lq_json_u64(cJSON_GetArrayItem(shape, (int)k), &v) == 0 && v == ct.info->shape[k];
        }
        CHECK_MSG(ok, "manifest shape of %s", nm);
    }
    CHECK_EQ_U64(nt, lq_ckpt_count(out));
    /* Source shards: real sizes and digests. */
    size_t ns = 0;
    const cJSON *sf;
    cJSON_ArrayForEach(sf, jget(jget(m, "source"), "files")) {
        const char *nm = jstr(sf, "name");
        if (!nm || ns >= lq_ckpt_shard_count(src) || strcmp(nm, lq_ckpt_shard_name(src, ns)) != 0) {
            TH_REPORT("manifest source file %zu is %s", ns, nm ? nm : "(null)");
            ns++;
            continue;
        }
        char hex[65];
        uint64_t size = 0;
        CHECK(qt_sha256_file(qt_p("%s/%s", e->src, nm), hex, &size) == 0);
        CHECK_EQ_U64(ju64(sf, "size"), size);
        CHECK_MSG(jstr(sf, "sha256") && !strcmp(jstr(sf, "sha256"), hex), "manifest SHA-256 of source %s", nm);
        ns++;
    }
    CHECK_EQ_U64(ns, lq_ckpt_shard_count(src));
    cJSON_Delete(m);
}

/* ---- files travelling with the model ---- */

static int is_pickle_name(const char *n)
{
    return ends_with(n, ".bin") || ends_with(n, ".pt") || ends_with(n, ".pth") || ends_with(n, ".pkl");
}

static void verify_files(const qt_expect *e, const lq_ckpt *src)
{
    /* dflash/: the source drafter's files, byte for byte, and nothing else. */
    char sd[1024], od[1024];
    snprintf(sd, sizeof(sd), "%s/dflash", e->src);
    snprintf(od, sizeof(od), "%s/dflash", e->out);
    if (qt_is_dir(sd)) {
        char msg[600];
        static const char *const need[] = {"config.json", "dflash_draft_model.safetensors", "model.safetensors.index.json",
                                           "mask_embedding.pt"};
        for (int k = 0; k < 4; k++)
            CHECK_MSG(qt_exists(qt_p("%s/%s", od, need[k])), "%s/%s missing", od, need[k]);
        CHECK_MSG(!qt_dirs_differ(sd, od, msg, sizeof(msg)), "dflash/ differs from the source: %s", msg);
    } else {
        CHECK_MSG(!qt_exists(qt_p("%s/dflash", e->out)), "dflash/ written without a source drafter");
    }
    /* Top level: copied extras identical, pickles absent, shards and the rest as expected. */
    char **names = qt_list(e->src);
    for (size_t i = 0; names && names[i]; i++) {
        const char *nm = names[i], *sp = qt_p("%s/%s", e->src, nm);
        struct stat sb;
        int shard = 0;
        for (size_t k = 0; k < lq_ckpt_shard_count(src); k++)
            shard |= !strcmp(lq_ckpt_shard_name(src, k), nm);
        if (nm[0] == '.' || shard || !strcmp(nm, "config.json") || !strcmp(nm, "model.safetensors.index.json") ||
            lstat(sp, &sb) != 0 || S_ISDIR(sb.st_mode))
            continue;
        const char *op = qt_p("%s/%s", e->out, nm);
        if (is_pickle_name(nm) || ends_with(nm, ".safetensors") || !S_ISREG(sb.st_mode)) {
            CHECK_MSG(!qt_exists(op), "%s was copied into OUT", nm);
            continue;
        }
        char h1[65], h2[65];
        CHECK_MSG(qt_sha256_file(sp, h1, NULL) == 0 && qt_sha256_file(op, h2, NULL) == 0 && !strcmp(h1, h2),
                  "extra file %s not copied byte for byte", nm);
    }
    qt_free_names(names);
    CHECK(qt_exists(qt_p("%s/config.json", e->out)));
    CHECK(qt_exists(qt_p("%s/%s", e->out, LQ_REPORT_FILE)));
    CHECK(qt_exists(qt_p("%s/%s", e->out, LQ_MANIFEST_FILE)));
}

/* ---- the whole check ---- */

int qt_verify(const qt_expect *e, qt_result *r)
{
    int f0 = th_failures, c0 = th_checks;
    memset(r, 0, sizeof(*r));
    int (*quantized)(const char *) = e->quantized ? e->quantized : qt_is_routed_expert;
    lq_ckpt *src = NULL, *out = NULL;
    lq_error err;
    char buf[1600];
    lq_error_clear(&err);
    if (lq_ckpt_open(e->src, NULL, &src, &err) != LQ_OK) {
        TH_REPORT("source %s: %s", e->src, lq_error_format(&err, buf, sizeof(buf)));
        goto done;
    }
    lq_error_clear(&err);
    /* The strict reader cross-checks index <-> shards and total_size (checkpoint.h). */
    if (lq_ckpt_open(e->out, NULL, &out, &err) != LQ_OK) {
        TH_REPORT("output %s: %s", e->out, lq_error_format(&err, buf, sizeof(buf)));
        goto done;
    }
    r->nshards = (uint32_t)lq_ckpt_shard_count(out);
    r->nout = lq_ckpt_count(out);
    CHECK_MSG(r->nshards >= e->min_shards, "%u output shards, want at least %u", r->nshards, e->min_shards);
    CHECK_MSG(lq_ckpt_has_index(out) == (r->nshards > 1), "index present: %d with %u shards", lq_ckpt_has_index(out),
              r->nshards);
    for (uint32_t s = 0; s < r->nshards; s++) {
        char want[64];
        if (r->nshards == 1)
            snprintf(want, sizeof(want), "model.safetensors");
        else
            snprintf(want, sizeof(want), "model-%05u-of-%05u.safetensors", s + 1, r->nshards);
        CHECK_STR(lq_ckpt_shard_name(out, s), want);
    }

    size_t nsrc = lq_ckpt_count(src);
    qstat *qs = calloc(nsrc + 1, sizeof(*qs));
    size_t nq = 0;
    for (size_t i = 0; qs && i < nsrc; i++) {
        lq_ckpt_tensor st = lq_ckpt_at(src, i);
        const char *nm = st.info->name;
        if (quantized(nm)) {
            verify_quantized(e, src, out, st, &qs[nq++], r);
            continue;
        }
        if (ends_with(nm, "_scale_inv")) {
            char wn[600];
            snprintf(wn, sizeof(wn), "%.*s", (int)(strlen(nm) - 10), nm);
            lq_ckpt_tensor wt;
            if (quantized(wn) && lq_ckpt_find(src, wn, &wt) == 0 && wt.info->dtype == LQ_DTYPE_F8_E4M3) {
                CHECK_MSG(lq_ckpt_find(out, nm, &(lq_ckpt_tensor){0}) != 0, "%s kept though its weight is MXFP4", nm);
                r->ndropped++;
                continue;
            }
        }
        lq_ckpt_tensor ot;
        if (lq_ckpt_find(out, nm, &ot) != 0) {
            TH_REPORT("%s missing from the output", nm);
            continue;
        }
        const lq_tensor_info *a = st.info, *b = ot.info;
        int same = a->dtype == b->dtype && a->rank == b->rank && a->nbytes == b->nbytes &&
                   !memcmp(a->shape, b->shape, sizeof(a->shape[0]) * a->rank) &&
                   !memcmp(lq_st_data(st.file, a), lq_st_data(ot.file, b), (size_t)a->nbytes);
        CHECK_MSG(same, "%s is not byte-identical to its source tensor", nm);
        r->nkept++;
    }
    CHECK_EQ_U64(r->nout, r->nkept + 2 * r->nquant);
    CHECK(r->nquant > 0);

    /* Whole-model figures. */
    double sw2 = 0, sq2 = 0, swq = 0, se2 = 0;
    uint64_t clipped = 0;
    for (size_t k = 0; k < nq; k++) {
        sw2 += qs[k].sw2;
        sq2 += qs[k].sq2;
        swq += qs[k].swq;
        se2 += qs[k].se2;
        clipped += qs[k].clipped;
        r->elements += qs[k].n;
    }
    r->sqnr_db = sqnr_of(sw2, se2);
    r->cosine = swq / sqrt(sw2 * sq2);
    r->clip_frac = r->elements ? (double)clipped / (double)r->elements : 0;
    CHECK_MSG(r->bad_blocks == 0, "%llu of %llu MXFP4 blocks break the codec's rules", (unsigned long long)r->bad_blocks,
              (unsigned long long)r->blocks);
    CHECK_NEAR(r->sqnr_db, GAUSSIAN_MSE_SQNR_DB, 0.3, 0);
    qsort(qs, nq, sizeof(*qs), cmp_qstat);
    /* The class figure is 4.25 only when the class holds MXFP4 weights alone. */
    int experts_only = 1;
    size_t nexperts = 0;
    for (size_t k = 0; k < nq; k++)
        experts_only &= qt_is_routed_expert(qs[k].name);
    for (size_t i = 0; i < nsrc; i++)
        nexperts += qt_is_routed_expert(lq_ckpt_at(src, i).info->name);
    experts_only &= nexperts == nq;
    verify_report(e, qs, nq, r, experts_only);
    verify_config(e, src, quantized);
    verify_manifest(e, src, out);
    verify_files(e, src);
    for (size_t k = 0; k < nq; k++)
        free(qs[k].name);
    free(qs);
done:
    lq_ckpt_close(src);
    lq_ckpt_close(out);
    r->failures = th_failures - f0;
    r->checks = th_checks - c0;
    return r->failures;
}
