/* mimo-verify's model check: artifact and source end to end through the CPU runtime.
 * usage: test_verify_model MKFIXTURE QUANTIZE VERIFY
 *
 * Fixtures: the tiny FP8 fixture (seed 1) and its MXFP4 artifact (mimo-quantize defaults), and a
 * second tiny FP8 fixture from seed 2 (same geometry, other weights).
 *  1. The shipped default policy (built in) passes on the real artifact. The figures it prints are
 *     those docs/cli.md reports (measured when the defaults were chosen: top-1 agreement 0.9922,
 *     KL mean 2.94e-6 / max 5.25e-6 nats, perplexity ratio 1.0001, lowest hidden-state cosine
 *     0.999971); they are asserted against the default thresholds, and hidden states the MXFP4
 *     conversion cannot touch (the embeddings, the output of dense layer 0) against exactly 1.
 *     The report holds the new fields, the HTML the cosine series.
 *  2. The report's figures are recomputed here from the runtime (rt_forward, rt_step) with this
 *     file's own fp64 arithmetic and sampler written from the documentation: top-1 agreement, KL,
 *     per-layer cosine, the sampled continuation and both perplexities; and the figures do not
 *     depend on --threads.
 *  3. Thresholds tightened just beyond the measured figures fail, each naming its figure, where
 *     (prompt, position, layer) and the threshold; loosened just short of them, they pass.
 *  4. A source from another seed collapses top-1 agreement and fails; a source that cannot be
 *     loaded or is another model fails the check (exit 1), never crashes.
 *  5. Policy validation: unknown keys and bad values exit 2 naming the key and the rule; the
 *     built-in policy equals policy/default.json. */
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"
#include "libquant/libquant.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

static char root[] = "/tmp/mimo-vmodel-XXXXXX";
static const char *VER;

static int sh(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Runs mimo-verify on root/ART against root/SRC with extra args; stdout and stderr go to
 * root/LOG.log; returns the exit code. */
static int verify(const char *log, const char *art, const char *src, const char *extra)
{
    char s[1200] = "";
    if (src)
        snprintf(s, sizeof(s), "--source '%s/%s'", root, src);
    return sh("'%s' '%s/%s' %s %s > '%s/%s.log' 2>&1", VER, root, art, s, extra ? extra : "", root, log);
}

static int log_has(const char *log, const char *needle)
{
    char p[700];
    snprintf(p, sizeof(p), "%s/%s.log", root, log);
    FILE *f = fopen(p, "rb");
    if (!f)
        return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

static void show_log(const char *log)
{
    sh("echo '--- %s.log:' >&2; cat '%s/%s.log' >&2", log, root, log);
}

static void write_text(const char *name, const char *text)
{
    char p[700];
    snprintf(p, sizeof(p), "%s/%s", root, name);
    FILE *f = fopen(p, "w");
    CHECK(f && fputs(text, f) >= 0);
    if (f)
        fclose(f);
}

static cJSON *read_json(const char *name)
{
    char p[700];
    snprintf(p, sizeof(p), "%s/%s", root, name);
    cJSON *j = NULL;
    lq_error err;
    CHECK_MSG(lq_json_parse_file(p, 0, NULL, &j, &err) == LQ_OK, "%s does not parse", p);
    return j;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = lq_json_get(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* ---- this file's own figures, from the runtime ---- */

static void lsm(const float *x, size_t n, double *out)
{
    double mx = -INFINITY, z = 0;
    for (size_t i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    for (size_t i = 0; i < n; i++)
        z += exp((double)x[i] - mx);
    for (size_t i = 0; i < n; i++)
        out[i] = (double)x[i] - mx - log(z);
}

static uint64_t mix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct figures {
    double top1, mean_kl, max_kl, ppl_src, ppl_art;
    double cos[64];
    int32_t seq[64];
    size_t nseq;
} figures;

/* One prompt of n ids, continuation of cont tokens sampled from the source as docs/cli.md says
 * (temperature 1, fp64 softmax, u = top 53 bits of splitmix64(sample_seed) / 2^53, first id whose
 * cumulative probability exceeds u). */
static int own_figures(const char *art, const char *src, const int32_t *ids, size_t n, size_t cont, uint64_t sseed,
                       figures *F)
{
    char pa[700], ps[700];
    snprintf(pa, sizeof(pa), "%s/%s", root, art);
    snprintf(ps, sizeof(ps), "%s/%s", root, src);
    rt_model *ma = NULL, *ms = NULL;
    lq_error err;
    rt_opts o = {.threads = 2};
    int ok = rt_model_open(pa, NULL, &ma, &err) == LQ_OK && rt_model_open(ps, NULL, &ms, &err) == LQ_OK;
    if (!ok) {
        rt_model_close(ma);
        return -1;
    }
    const lq_mimo_config *c = rt_model_config(ma);
    size_t V = c->vocab_size, H = c->hidden_size, NH = c->num_hidden_layers + 1;
    float *la = malloc((n + cont) * V * sizeof(float)), *ls = malloc((n + cont) * V * sizeof(float));
    float *ha = malloc(NH * n * H * sizeof(float)), *hs = malloc(NH * n * H * sizeof(float));
    double *a = malloc(V * sizeof(double)), *b = malloc(V * sizeof(double));
    ok = la && ls && ha && hs && a && b && NH <= 64 && n + cont <= 64 &&
         rt_forward(ma, ids, n, &o, la, ha, &err) == LQ_OK && rt_forward(ms, ids, n, &o, ls, hs, &err) == LQ_OK;
    size_t agree = 0;
    double klsum = 0;
    F->max_kl = 0;
    for (size_t t = 0; ok && t < n; t++) {
        size_t ia = 0, is = 0;
        for (size_t i = 1; i < V; i++) {
            ia = la[t * V + i] > la[t * V + ia] ? i : ia;
            is = ls[t * V + i] > ls[t * V + is] ? i : is;
        }
        agree += ia == is;
        lsm(ls + t * V, V, b);
        lsm(la + t * V, V, a);
        double kl = 0;
        for (size_t i = 0; i < V; i++)
            kl += exp(b[i]) * (b[i] - a[i]);
        klsum += kl;
        F->max_kl = t == 0 || kl > F->max_kl ? kl : F->max_kl;
    }
    F->top1 = (double)agree / (double)n;
    F->mean_kl = klsum / (double)n;
    for (size_t l = 0; ok && l < NH; l++) {
        double d = 0, x = 0, y = 0;
        for (size_t i = 0; i < n * H; i++) {
            d += (double)ha[l * n * H + i] * hs[l * n * H + i];
            x += (double)ha[l * n * H + i] * ha[l * n * H + i];
            y += (double)hs[l * n * H + i] * hs[l * n * H + i];
        }
        F->cos[l] = d / sqrt(x * y);
    }
    /* The continuation: source logits of the last prompt position, then one decode step per token. */
    rt_cache *kv = NULL;
    ok = ok && rt_cache_new(ms, n + cont, &kv, &err) == LQ_OK && rt_step(ms, kv, ids, n, &o, ls, NULL, &err) == LQ_OK;
    memcpy(F->seq, ids, n * sizeof(int32_t));
    uint64_t st = sseed;
    const float *lg = ls + (n - 1) * V;
    for (size_t k = 0; ok && k < cont; k++) {
        lsm(lg, V, b);
        double u = (double)(mix(&st) >> 11) * 0x1p-53, cum = 0;
        size_t pick = V - 1;
        for (size_t i = 0; i < V; i++) {
            cum += exp(b[i]);
            if (cum > u) {
                pick = i;
                break;
            }
        }
        F->seq[n + k] = (int32_t)pick;
        if (k + 1 < cont) {
            ok = rt_step(ms, kv, &F->seq[n + k], 1, &o, ls, NULL, &err) == LQ_OK;
            lg = ls;
        }
    }
    F->nseq = n + cont;
    rt_cache_free(kv);
    /* Perplexities of the continuation, teacher-forced. */
    for (int m = 0; ok && m < 2; m++) {
        float *lo = m ? la : ls;
        ok = rt_forward(m ? ma : ms, F->seq, n + cont, &o, lo, NULL, &err) == LQ_OK;
        double nll = 0;
        for (size_t t = n; ok && t < n + cont; t++) {
            lsm(lo + (t - 1) * V, V, a);
            nll -= a[F->seq[t]];
        }
        *(m ? &F->ppl_art : &F->ppl_src) = exp(nll / (double)cont);
    }
    free(la), free(ls), free(ha), free(hs), free(a), free(b);
    rt_model_close(ma);
    rt_model_close(ms);
    return ok ? 0 : -1;
}

/* A policy with the default thresholds' keys set from th (NAN: left out) and a model section. */
static void write_policy(const char *name, const double th[5], const char *model)
{
    static const char *const keys[5] = {"min_top1_agreement", "max_mean_kl", "max_kl", "max_ppl_ratio",
                                        "min_layer_hidden_cosine"};
    char t[4096];
    int l = snprintf(t, sizeof(t), "{\"schema_version\": 1, \"required\": [], \"thresholds\": {");
    int first = 1;
    for (int k = 0; k < 5; k++)
        if (!isnan(th[k])) {
            l += snprintf(t + l, sizeof(t) - (size_t)l, "%s\"%s\": %.17g", first ? "" : ", ", keys[k], th[k]);
            first = 0;
        }
    snprintf(t + l, sizeof(t) - (size_t)l, "}, \"model\": %s}", model);
    write_text(name, t);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: test_verify_model MKFIXTURE QUANTIZE VERIFY\n");
        return 2;
    }
    VER = argv[3];
    CHECK(mkdtemp(root) != NULL);
    CHECK(sh("'%s' --preset tiny --variant fp8 --out '%s/src' -q > /dev/null", argv[1], root) == 0);
    CHECK(sh("'%s' --preset tiny --variant fp8 --seed 2 --out '%s/src2' -q > /dev/null", argv[1], root) == 0);
    CHECK(sh("'%s' '%s/src' '%s/art' -q > /dev/null", argv[2], root, root) == 0);
    char extra[2048];
    const cJSON *e;

    /* 1. The default policy on the real artifact. */
    snprintf(extra, sizeof(extra), "--only accuracy,model --threads 2 --report '%s/r.json' --html '%s/v.html'", root,
             root);
    int rc = verify("default", "art", "src", extra);
    CHECK_EQ_U64(rc, 0);
    CHECK(log_has("default", "model      PASS  4 prompts, 128 positions: top-1 agreement "));
    if (rc)
        show_log("default");
    sh("grep '^model' '%s/default.log' >&2", root); /* the figures, for the test log */
    cJSON *r = read_json("r.json");
    const cJSON *m = lq_json_get(r, "model");
    CHECK(cJSON_IsObject(m));
    if (m) {
        double top1 = num(m, "top1_agreement"), mkl = num(m, "mean_kl"), xkl = num(m, "max_kl");
        const cJSON *pp = lq_json_get(m, "perplexity"), *hc = lq_json_get(m, "hidden_cosine");
        CHECK_EQ_U64(num(m, "positions"), 128);
        CHECK_EQ_U64(cJSON_GetArraySize(lq_json_get(m, "prompts")), 4);
        /* Default thresholds (policy/default.json). */
        CHECK(top1 >= 0.9 && top1 <= 1);
        CHECK(mkl > 0 && mkl <= 1e-5);
        CHECK(xkl >= mkl && xkl <= 2.5e-5);
        CHECK_STR(cJSON_GetStringValue(lq_json_get(pp, "origin")), "sampled_from_source");
        CHECK_EQ_U64(num(pp, "prefix_tokens"), 32);
        CHECK_EQ_U64(num(pp, "tokens"), 32);
        CHECK_EQ_U64(cJSON_GetArraySize(lq_json_get(pp, "ids")), 64);
        /* Near-uniform outputs of the random fixture: perplexity close to the vocabulary (4096). */
        CHECK(num(pp, "source") > 2000 && num(pp, "source") < 8192);
        CHECK(num(pp, "ratio") <= 1.005 && num(pp, "ratio") >= 0.995);
        CHECK_NEAR(num(pp, "ratio"), num(pp, "artifact") / num(pp, "source"), 1e-6, 0);
        /* 13 hidden states: embeddings, layers 0..10, final norm. Embeddings and dense layer 0 are
         * not quantized (only routed experts are), so they are identical: cosine 1 up to fp64
         * rounding of the pooled sums. Every MoE layer after them differs, above the threshold. */
        CHECK_EQ_U64(cJSON_GetArraySize(hc), 13);
        CHECK_STR(cJSON_GetStringValue(lq_json_get(cJSON_GetArrayItem(hc, 0), "state")), "embeddings");
        CHECK_STR(cJSON_GetStringValue(lq_json_get(cJSON_GetArrayItem(hc, 1), "state")), "model.layers.0");
        CHECK_STR(cJSON_GetStringValue(lq_json_get(cJSON_GetArrayItem(hc, 12), "state")), "final_norm");
        CHECK_NEAR(num(cJSON_GetArrayItem(hc, 0), "cosine"), 1, 1e-12, 0);
        CHECK_NEAR(num(cJSON_GetArrayItem(hc, 1), "cosine"), 1, 1e-12, 0);
        for (int l = 2; l < 13; l++) {
            double cv = num(cJSON_GetArrayItem(hc, l), "cosine");
            CHECK_MSG(cv >= 0.9999 && cv < 1 - 1e-9, "hidden state %d: cosine %.9f", l, cv);
            CHECK(num(cJSON_GetArrayItem(hc, l), "min_position_cosine") <= cv);
        }
        /* DFlash: the artifact's drafter on both models, 4 prompts x 16 tokens, block 8. The
         * fixture's drafter is random: no draft is accepted on either side, so tau is exactly 1
         * (one committed token per verify step, 15 steps per prompt) and the ratio 1. */
        const cJSON *df = lq_json_get(m, "dflash");
        CHECK(cJSON_IsObject(df));
        CHECK_EQ_U64(num(df, "block_size"), 8);
        for (int side = 0; side < 2; side++) {
            const cJSON *sd = lq_json_get(df, side ? "artifact" : "source");
            CHECK_EQ_U64(num(sd, "steps"), 60);
            CHECK_EQ_U64(num(sd, "tokens"), 60);
            CHECK_NEAR(num(sd, "tau"), 1.0, 0, 0);
            const cJSON *h0 = cJSON_GetArrayItem(lq_json_get(sd, "accept_hist"), 0);
            CHECK(cJSON_IsNumber(h0) && h0->valuedouble == 60);
        }
        CHECK_NEAR(num(df, "tau_ratio"), 1.0, 0, 0);
        CHECK(log_has("default", "DFlash tau artifact 1.000 / source 1.000 (block 8, 60 + 60 steps)"));
        fprintf(stderr, "tiny FP8 -> MXFP4, default policy: top-1 %.6f, KL mean %.4g max %.4g, perplexity source %.6g "
                        "artifact %.6g ratio %.6f, %.3f s; hidden-state cosines:", top1, mkl, xkl, num(pp, "source"),
                num(pp, "artifact"), num(pp, "ratio"), num(m, "seconds"));
        cJSON_ArrayForEach(e, hc)
            fprintf(stderr, " %.7f", num(e, "cosine"));
        fputc('\n', stderr);
    }
    /* The policy in force is in the report, with the model section. */
    const cJSON *pth = lq_json_get(lq_json_get(r, "policy"), "thresholds");
    CHECK_NEAR(num(pth, "min_layer_hidden_cosine"), 0.9999, 1e-12, 0);
    CHECK_NEAR(num(pth, "max_ppl_ratio"), 1.005, 1e-12, 0);
    CHECK_EQ_U64(num(lq_json_get(lq_json_get(r, "policy"), "model"), "prompts"), 4);
    /* HTML: the SQNR bars of the 11 MoE layers and the cosine line over the 13 hidden states. */
    CHECK(sh("grep -q 'hidden-state cosine (artifact vs source)' '%s/v.html'", root) == 0);
    CHECK(sh("grep -q '<polyline class=\"cosine\"' '%s/v.html'", root) == 0);
    CHECK(sh("grep -q 'class=\"cosine-threshold\"' '%s/v.html'", root) == 0);
    CHECK(sh("test $(grep -c '<circle' '%s/v.html') -eq 13", root) == 0);
    CHECK(sh("test $(grep -c '^<rect' '%s/v.html') -eq 11", root) == 0);
    CHECK(sh("grep -q 'model.layers.5: hidden-state cosine' '%s/v.html'", root) == 0);

    /* A prompt that ends where artifact and source disagree at the last position: the position's
     * logits depend on the tokens up to it only, so the cut keeps the disagreement. */
    int32_t cut[64];
    size_t ncut = 0;
    cJSON_ArrayForEach(e, lq_json_get(m, "prompts")) {
        const cJSON *fd = lq_json_get(e, "first_disagreement");
        if (ncut || !cJSON_IsNumber(fd))
            continue;
        size_t upto = (size_t)fd->valuedouble + 1, i = 0;
        const cJSON *id;
        cJSON_ArrayForEach(id, lq_json_get(e, "ids")) {
            if (i < upto && i < 64)
                cut[i] = (int32_t)id->valuedouble;
            i++;
        }
        ncut = upto < 64 ? upto : 64;
    }
    CHECK_MSG(ncut > 0, "the default run has no top-1 disagreement (measured: 127 of 128 positions agree)");
    /* Give the cut prompt some length before the disagreement is not possible (causality), so
     * put a second, 8-token prompt (from the run's prompt 0) first: the perplexity prefix. */
    int32_t p0[8];
    size_t i0 = 0;
    cJSON_ArrayForEach(e, lq_json_get(cJSON_GetArrayItem(lq_json_get(m, "prompts"), 0), "ids"))
        if (i0 < 8)
            p0[i0++] = (int32_t)e->valuedouble;
    char model_sec[2048];
    int l = snprintf(model_sec, sizeof(model_sec), "{\"prompt_ids\": [[");
    for (size_t i = 0; i < 8; i++)
        l += snprintf(model_sec + l, sizeof(model_sec) - (size_t)l, "%s%d", i ? ", " : "", p0[i]);
    l += snprintf(model_sec + l, sizeof(model_sec) - (size_t)l, "], [");
    for (size_t i = 0; i < ncut; i++)
        l += snprintf(model_sec + l, sizeof(model_sec) - (size_t)l, "%s%d", i ? ", " : "", cut[i]);
    snprintf(model_sec + l, sizeof(model_sec) - (size_t)l,
             "]], \"continuation_length\": 4, \"sample_seed\": 7, \"dflash_tokens\": 0}");
    cJSON_Delete(r);

    /* 2. This file's own figures for the first prompt, and thread independence. */
    const double none[5] = {NAN, NAN, NAN, NAN, NAN};
    char one_prompt[600];
    l = snprintf(one_prompt, sizeof(one_prompt), "{\"prompt_ids\": [[");
    for (size_t i = 0; i < 8; i++)
        l += snprintf(one_prompt + l, sizeof(one_prompt) - (size_t)l, "%s%d", i ? ", " : "", p0[i]);
    snprintf(one_prompt + l, sizeof(one_prompt) - (size_t)l,
             "]], \"continuation_length\": 4, \"sample_seed\": 7, \"dflash_tokens\": 0}");
    write_policy("one.json", none, one_prompt);
    snprintf(extra, sizeof(extra), "--only model --threads 1 --policy '%s/one.json' --report '%s/t1.json'", root, root);
    CHECK_EQ_U64(verify("t1", "art", "src", extra), 0);
    snprintf(extra, sizeof(extra), "--only model --threads 2 --policy '%s/one.json' --report '%s/t2.json'", root, root);
    CHECK_EQ_U64(verify("t2", "art", "src", extra), 0);
    cJSON *t1 = read_json("t1.json"), *t2 = read_json("t2.json");
    cJSON *m1 = cJSON_DetachItemFromObject(t1, "model"), *m2 = cJSON_DetachItemFromObject(t2, "model");
    cJSON_DeleteItemFromObject(m1, "seconds");
    cJSON_DeleteItemFromObject(m2, "seconds");
    CHECK_MSG(m1 && m2 && cJSON_Compare(m1, m2, 1), "the model figures differ between --threads 1 and 2");
    figures F;
    memset(&F, 0, sizeof(F));
    CHECK(own_figures("art", "src", p0, 8, 4, 7, &F) == 0);
    if (m1) {
        CHECK_NEAR(num(m1, "top1_agreement"), F.top1, 1e-12, 0);
        CHECK_NEAR(num(m1, "mean_kl"), F.mean_kl, 1e-12, 1e-6);
        CHECK_NEAR(num(m1, "max_kl"), F.max_kl, 1e-12, 1e-6);
        const cJSON *pp = lq_json_get(m1, "perplexity");
        CHECK_NEAR(num(pp, "source"), F.ppl_src, 0, 1e-6);
        CHECK_NEAR(num(pp, "artifact"), F.ppl_art, 0, 1e-6);
        size_t i = 0;
        cJSON_ArrayForEach(e, lq_json_get(pp, "ids")) {
            CHECK_MSG(i < F.nseq && (int32_t)e->valuedouble == F.seq[i], "perplexity sequence id %zu differs", i);
            i++;
        }
        CHECK_EQ_U64(i, 12);
        i = 0;
        cJSON_ArrayForEach(e, lq_json_get(m1, "hidden_cosine")) {
            CHECK_NEAR(num(e, "cosine"), F.cos[i], 1e-9, 0);
            i++;
        }
        CHECK_EQ_U64(i, 13);
    }
    cJSON_Delete(m1), cJSON_Delete(m2), cJSON_Delete(t1), cJSON_Delete(t2);

    /* 3. Thresholds beyond the measured figures (two prompts: the 8-token one and the cut one
     * with its disagreement) fail, each named; just short of them they pass. */
    write_policy("cut.json", none, model_sec);
    snprintf(extra, sizeof(extra), "--only model --policy '%s/cut.json' --report '%s/c.json'", root, root);
    CHECK_EQ_U64(verify("cut", "art", "src", extra), 0);
    cJSON *c = read_json("c.json");
    const cJSON *cm = lq_json_get(c, "model");
    double got[5] = {num(cm, "top1_agreement"), num(cm, "mean_kl"), num(cm, "max_kl"),
                     num(lq_json_get(cm, "perplexity"), "ratio"), 1};
    size_t lo = 0, nlow = 0;
    const cJSON *hc = lq_json_get(cm, "hidden_cosine");
    for (int k = 0; k < cJSON_GetArraySize(hc); k++)
        if (num(cJSON_GetArrayItem(hc, k), "cosine") < got[4]) {
            got[4] = num(cJSON_GetArrayItem(hc, k), "cosine");
            lo = (size_t)k;
        }
    CHECK(got[0] < 1); /* the cut prompt's last position disagrees */
    /* Tight: top-1 1.0, KL at 0.9x, ratio at 0.999x, cosine halfway between the lowest and 1. */
    double tight[5] = {1.0, got[1] * 0.9, got[2] * 0.9, got[3] * 0.999, (got[4] + 1) / 2};
    for (int k = 0; k < cJSON_GetArraySize(hc); k++)
        nlow += num(cJSON_GetArrayItem(hc, k), "cosine") < tight[4];
    write_policy("tight.json", tight, model_sec);
    snprintf(extra, sizeof(extra), "--only model --policy '%s/tight.json'", root);
    rc = verify("tight", "art", "src", extra);
    CHECK_EQ_U64(rc, 1);
    CHECK(log_has("tight", "model      FAIL  5 of 5 model criteria failed"));
    char want[600];
    snprintf(want, sizeof(want), "top-1 agreement %.4f below 1.0000 (%zu of %zu positions; worst prompt 1: ", got[0],
             (size_t)(got[0] * (double)(8 + ncut) + 0.5), 8 + ncut);
    CHECK_MSG(log_has("tight", want), "missing: %s", want);
    snprintf(want, sizeof(want), "first disagreement at position %zu)", ncut - 1);
    CHECK_MSG(log_has("tight", want), "missing: %s", want);
    snprintf(want, sizeof(want), "mean KL(source||artifact) %.6g above %.6g nats (largest at prompt %d position %d",
             got[1], tight[1], (int)num(cm, "max_kl_prompt"), (int)num(cm, "max_kl_position"));
    CHECK_MSG(log_has("tight", want), "missing: %s", want);
    snprintf(want, sizeof(want), "KL(source||artifact) %.6g above %.6g nats at prompt %d position %d", got[2], tight[2],
             (int)num(cm, "max_kl_prompt"), (int)num(cm, "max_kl_position"));
    CHECK_MSG(log_has("tight", want), "missing: %s", want);
    snprintf(want, sizeof(want), "perplexity ratio artifact/source %.4f above %.4f", got[3], tight[3]);
    CHECK_MSG(log_has("tight", want), "missing: %s", want);
    /* The first hidden state under the threshold, counted from the report. */
    size_t first_low = 0;
    while (first_low < 13 && !(num(cJSON_GetArrayItem(hc, (int)first_low), "cosine") < tight[4]))
        first_low++;
    snprintf(want, sizeof(want), "hidden-state cosine below %.8f in %zu of 13 hidden states; first: %s (hidden state %zu)",
             tight[4], nlow, cJSON_GetStringValue(lq_json_get(cJSON_GetArrayItem(hc, (int)first_low), "state")), first_low);
    CHECK_MSG(log_has("tight", want), "missing: %s", want);
    snprintf(want, sizeof(want), "hidden state %2zu %-18s cosine %.8f", lo,
             cJSON_GetStringValue(lq_json_get(cJSON_GetArrayItem(hc, (int)lo), "state")), got[4]);
    CHECK_MSG(log_has("tight", want), "missing: %s", want); /* the per-layer table on stderr */
    if (rc != 1)
        show_log("tight");
    /* Just short of the figures: every criterion passes. */
    /* (The report rounds to 8 significant digits, cosines to 10: the margins cover that.) */
    double loose[5] = {got[0] - 1e-6, got[1] * 1.0001, got[2] * 1.0001, got[3] * 1.0001, got[4] - 1e-8};
    write_policy("loose.json", loose, model_sec);
    snprintf(extra, sizeof(extra), "--only model --policy '%s/loose.json'", root);
    CHECK_EQ_U64(verify("loose", "art", "src", extra), 0);
    CHECK(log_has("loose", "model      PASS"));
    cJSON_Delete(c);

    /* DFlash thresholds: an absolute tau the random drafter cannot reach fails, named. */
    write_text("tau.json", "{\"schema_version\": 1, \"required\": [], \"thresholds\": {\"min_dflash_tau\": 1.5, "
                           "\"min_dflash_tau_ratio\": 0.9}, \"model\": {\"prompts\": 1, \"prompt_length\": 8, "
                           "\"dflash_tokens\": 6}}");
    snprintf(extra, sizeof(extra), "--only model --policy '%s/tau.json'", root);
    CHECK_EQ_U64(verify("tau", "art", "src", extra), 1);
    CHECK(log_has("tau", "DFlash acceptance length on the artifact 1.000 below 1.500 (5 steps, block 8)"));
    /* The count names the criteria this policy sets (two), not every criterion there is. */
    CHECK(log_has("tau", "model      FAIL  1 of 2 model criteria failed"));
    CHECK(!log_has("tau", "x the source's"));

    /* Perplexity on a text: the policy's text, encoded with the artifact's tokenizer.json (the
     * fixture tokenizer copied into a copy of the artifact); the same ids as the tokenizer gives. */
    const char *top0 = getenv("MIMO_SOURCE_ROOT") ? getenv("MIMO_SOURCE_ROOT") : ".";
    CHECK(sh("cp -r '%s/art' '%s/art_tok' && cp '%s/fixtures/tokenizer/tokenizer.json' '%s/art_tok/'", root, root, top0,
             root) == 0);
    write_text("text.json", "{\"schema_version\": 1, \"required\": [], \"thresholds\": {\"max_ppl_ratio\": 1.005}, "
                            "\"model\": {\"prompts\": 1, \"prompt_length\": 8, \"dflash_tokens\": 0, \"text\": "
                            "\"The keeper climbed the stairs, lit the lamp and wrote: wind, weather, ships.\"}}");
    snprintf(extra, sizeof(extra), "--only model --policy '%s/text.json' --report '%s/tx.json'", root, root);
    CHECK_EQ_U64(verify("text", "art_tok", "src", extra), 0);
    cJSON *tx = read_json("tx.json");
    const cJSON *tpp = lq_json_get(lq_json_get(tx, "model"), "perplexity");
    CHECK_STR(cJSON_GetStringValue(lq_json_get(tpp, "origin")), "text");
    {
        char tkp[1200];
        snprintf(tkp, sizeof(tkp), "%s/fixtures/tokenizer/tokenizer.json", top0);
        rt_tokenizer *tk = NULL;
        int32_t *tid = NULL;
        size_t tn = 0;
        lq_error terr;
        const char *txt = "The keeper climbed the stairs, lit the lamp and wrote: wind, weather, ships.";
        CHECK(rt_tokenizer_open(tkp, &tk, &terr) == LQ_OK);
        CHECK(tk && rt_tokenizer_encode(tk, txt, strlen(txt), &tid, &tn, &terr) == LQ_OK);
        const cJSON *tids = lq_json_get(tpp, "ids");
        CHECK_EQ_U64(cJSON_GetArraySize(tids), tn);
        CHECK_EQ_U64(num(tpp, "tokens"), tn - 1);
        for (size_t i = 0; i < tn && i < (size_t)cJSON_GetArraySize(tids); i++)
            CHECK(cJSON_GetArrayItem(tids, (int)i)->valuedouble == tid[i]);
        CHECK(num(tpp, "ratio") > 0.995 && num(tpp, "ratio") < 1.005);
        free(tid);
        rt_tokenizer_close(tk);
    }
    cJSON_Delete(tx);
    /* without a tokenizer in the artifact the check fails and says why */
    CHECK_EQ_U64(verify("notok", "art", "src", extra), 1);
    CHECK(log_has("notok", "the policy's model.text needs the artifact's tokenizer"));

    /* 4. A source from another seed: other weights, same geometry. Top-1 agreement collapses
     * (chance level is 1/4096 per position) and the check fails with the default thresholds. */
    const double dflt[5] = {0.9, 1e-5, 2.5e-5, 1.005, 0.9999};
    write_policy("seed2.json", dflt, one_prompt);
    snprintf(extra, sizeof(extra), "--only model --policy '%s/seed2.json' --report '%s/s2.json'", root, root);
    CHECK_EQ_U64(verify("seed2", "art", "src2", extra), 1);
    CHECK(log_has("seed2", "model      FAIL"));
    CHECK(log_has("seed2", "below 0.9000 (0 of 8 positions") || log_has("seed2", "below 0.9000 (1 of 8 positions"));
    CHECK(log_has("seed2", "in 13 of 13 hidden states; first: embeddings (hidden state 0)"));
    cJSON *s2 = read_json("s2.json");
    CHECK(num(lq_json_get(s2, "model"), "top1_agreement") <= 0.125);
    CHECK(fabs(num(cJSON_GetArrayItem(lq_json_get(lq_json_get(s2, "model"), "hidden_cosine"), 0), "cosine")) < 0.2);
    cJSON_Delete(s2);
    /* A source that cannot be loaded: missing directory, missing shard. */
    snprintf(extra, sizeof(extra), "--only model --policy '%s/seed2.json'", root);
    CHECK_EQ_U64(verify("nosrc", "art", "nonexistent", extra), 1);
    CHECK(log_has("nosrc", "model      FAIL  --source"));
    CHECK(log_has("nosrc", "cannot be loaded by the runtime"));
    CHECK(sh("cp -r '%s/src' '%s/broken' && rm '%s'/broken/model-00003-of-*.safetensors", root, root, root) == 0);
    CHECK_EQ_U64(verify("broken", "art", "broken", extra), 1);
    CHECK(log_has("broken", "cannot be loaded by the runtime"));
    CHECK(log_has("broken", "CKPT_SHARD_MISSING"));
    /* Another model: the same shards under a config with 11 layers. */
    CHECK(sh("cp -r '%s/src' '%s/eleven'", root, root) == 0);
    char cp[700];
    snprintf(cp, sizeof(cp), "%s/eleven/config.json", root);
    cJSON *cfg = NULL;
    lq_error err;
    CHECK(lq_json_parse_file(cp, 0, NULL, &cfg, &err) == LQ_OK);
    if (cfg) {
        cJSON_ReplaceItemInObject(cfg, "num_hidden_layers", cJSON_CreateNumber(11));
        cJSON_DeleteItemFromArray(cJSON_GetObjectItem(cfg, "hybrid_layer_pattern"), 11);
        cJSON_DeleteItemFromArray(cJSON_GetObjectItem(cfg, "moe_layer_freq"), 11);
        char *t = cJSON_Print(cfg);
        write_text("eleven/config.json", t ? t : "");
        free(t);
        cJSON_Delete(cfg);
    }
    CHECK_EQ_U64(verify("eleven", "art", "eleven", extra), 1);
    CHECK(log_has("eleven", "is another model: vocab_size 4096, hidden_size 256, num_hidden_layers 11; the artifact has "
                            "4096, 256, 12"));
    /* A prompt id outside the vocabulary fails the check naming it. */
    write_policy("oov.json", none, "{\"prompt_ids\": [[1, 4096, 3]]}");
    snprintf(extra, sizeof(extra), "--only model --policy '%s/oov.json'", root);
    CHECK_EQ_U64(verify("oov", "art", "src", extra), 1);
    CHECK(log_has("oov", "model.prompt_ids[0][1]: POLICY_VALUE: token 4096 outside the vocabulary of 4096"));

    /* When the check does not run. */
    CHECK_EQ_U64(verify("nosource", "art", NULL, "--only model"), 0);
    CHECK(log_has("nosource", "model      SKIP  no --source given"));
    write_text("nomodel.json", "{\"schema_version\": 1, \"required\": [], \"thresholds\": {}}");
    snprintf(extra, sizeof(extra), "--only model --policy '%s/nomodel.json'", root);
    CHECK_EQ_U64(verify("nomodel", "art", "src", extra), 0);
    CHECK(log_has("nomodel", "model      SKIP  the policy has no \"model\" section"));
    write_text("req.json", "{\"schema_version\": 1, \"required\": [\"model\"], \"thresholds\": {}, \"model\": {}}");
    snprintf(extra, sizeof(extra), "--only model --policy '%s/req.json'", root);
    CHECK_EQ_U64(verify("req", "art", NULL, extra), 1);
    CHECK(log_has("req", "model      FAIL  required by the policy but not run (no --source given)"));

    /* 5. Policy validation: exit 2, the file, the key and the rule on stderr. */
    static const struct { const char *text, *needle; } bad[] = {
        {"{\"schema_version\": 1, \"required\": [], \"thresholds\": {\"min_top1\": 0.9}}",
         "thresholds.min_top1: POLICY_UNKNOWN_KEY"},
        {"{\"schema_version\": 1, \"required\": [], \"thresholds\": {\"min_top1_agreement\": 1.5}}",
         "thresholds.min_top1_agreement: POLICY_VALUE: must be a number in 0..1"},
        {"{\"schema_version\": 1, \"required\": [], \"thresholds\": {\"max_mean_kl\": -1}}",
         "thresholds.max_mean_kl: POLICY_VALUE"},
        {"{\"schema_version\": 1, \"required\": [], \"thresholds\": {\"min_layer_hidden_cosine\": \"0.99\"}}",
         "thresholds.min_layer_hidden_cosine: POLICY_VALUE"},
        {"{\"schema_version\": 1, \"required\": [], \"thresholds\": {}, \"modle\": {}}", "modle: POLICY_UNKNOWN_KEY"},
        {"{\"schema_version\": 1, \"required\": [], \"thresholds\": {}, \"model\": {\"prompt\": 3}}",
         "model.prompt: POLICY_UNKNOWN_KEY"},
        {"{\"schema_version\": 1, \"required\": [], \"thresholds\": {}, \"model\": {\"prompts\": 0}}",
         "model.prompts: POLICY_VALUE: must be an integer in 1..256"},
        {"{\"schema_version\": 1, \"required\": [], \"thresholds\": {}, \"model\": {\"prompt_length\": 2.5}}",
         "model.prompt_length: POLICY_VALUE"},
        {"{\"schema_version\": 1, \"required\": [], \"thresholds\": {}, \"model\": {\"continuation_length\": 5000}}",
         "model.continuation_length: POLICY_VALUE"},
        {"{\"schema_version\": 1, \"required\": [], \"thresholds\": {}, \"model\": []}", "model: POLICY_VALUE"},
        {"{\"schema_version\": 1, \"required\": [], \"thresholds\": {}, \"model\": {\"seed\": 2, \"prompt_ids\": [[1]]}}",
         "model.prompt_ids: POLICY_CONFLICT"},
        {"{\"schema_version\": 1, \"required\": [], \"thresholds\": {}, \"model\": {\"prompt_ids\": [[1], []]}}",
         "model.prompt_ids[1]: POLICY_VALUE"},
        {"{\"schema_version\": 1, \"required\": [], \"thresholds\": {}, \"model\": {\"prompt_ids\": [[1, -2]]}}",
         "model.prompt_ids[0][1]: POLICY_VALUE"},
        {"{\"schema_version\": 1, \"required\": [\"modell\"], \"thresholds\": {}}",
         "required[0]: POLICY_UNKNOWN_CHECK: unknown check \"modell\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_text("bad.json", bad[i].text);
        snprintf(extra, sizeof(extra), "--only model --policy '%s/bad.json'", root);
        CHECK_EQ_U64(verify("bad", "art", "src", extra), 2);
        char needle[300];
        snprintf(needle, sizeof(needle), "/bad.json: %s", bad[i].needle);
        CHECK_MSG(log_has("bad", needle), "policy %zu: missing \"%s\"", i, needle);
    }

    /* The built-in policy equals policy/default.json: the same policy in force in the report. */
    const char *top = getenv("MIMO_SOURCE_ROOT") ? getenv("MIMO_SOURCE_ROOT") : ".";
    snprintf(extra, sizeof(extra), "--only manifest --report '%s/pb.json'", root);
    CHECK_EQ_U64(verify("pb", "art", NULL, extra), 0);
    snprintf(extra, sizeof(extra), "--only manifest --report '%s/pf.json' --policy '%s/policy/default.json'", root, top);
    CHECK_EQ_U64(verify("pf", "art", NULL, extra), 0);
    cJSON *pb = read_json("pb.json"), *pf = read_json("pf.json");
    CHECK_MSG(pb && pf && cJSON_Compare(lq_json_get(pb, "policy"), lq_json_get(pf, "policy"), 1),
              "the built-in policy and policy/default.json differ");
    const cJSON *pol = lq_json_get(pb, "policy");
    CHECK_EQ_U64(cJSON_GetArraySize(lq_json_get(pol, "thresholds")), 11);
    CHECK_NEAR(num(lq_json_get(pol, "thresholds"), "min_dflash_tau_ratio"), 0.9, 1e-12, 0);
    CHECK_EQ_U64(num(lq_json_get(pol, "model"), "dflash_tokens"), 16);
    CHECK(cJSON_IsObject(lq_json_get(pol, "model")));
    cJSON_Delete(pb), cJSON_Delete(pf);

    if (!th_failures)
        CHECK(sh("rm -rf '%s'", root) == 0);
    else
        fprintf(stderr, "kept %s for inspection\n", root);
    return th_finish("test_verify_model");
}
