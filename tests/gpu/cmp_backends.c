/* cmp_backends: a device backend's results against the reference backend's on one model.
 *
 * The model is opened twice through rt_model_open: the reference (--ref, default cpu) and the
 * device under test (--dev, default cuda device 0). Over one token sequence (a text set in the
 * held-out list format of fixtures/nano/heldout_*.txt, encoded with MODEL/tokenizer.json, or
 * random ids) both run teacher-forced, RT_STEP_CHUNK positions per step with the logits of every
 * row and the experts each row was routed to, each in its own cache; then, as asked:
 *   --drafter        DFlash acceptance length tau of both (rt_eval_generate, greedy);
 *   --invariance     on the device: a row's fp32 logits byte-identical whatever the step sizes
 *                    (1, 2, 8, 16 rows) and whatever later rows share its step;
 *   --greedy-dflash  on the device: greedy DFlash == greedy plain decoding on held-out prompts.
 * Thresholds are options; every figure is printed next to its threshold. Exit 0 every check asked
 * for passed, 1 one failed (or the device's step failed where the reference's did not), 2 usage,
 * 3 bad input or I/O (the lq_error printed). No test itself: tests/gpu/test_cmp_backends.c and
 * the unit suite run it. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libquant/libquant.h"
#include "runtime/dflash.h"
#include "runtime/eval.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/sample.h"
#include "runtime/tokenizer.h"

#define PROG "cmp_backends"

typedef struct side {
    const char *name; /* "ref" or "dev" */
    const char *backend;
    int device, threads, fp32, kv_bf16;
    rt_model *m;
    rt_drafter *d;
} side;

typedef struct opts {
    const char *model, *tokens, *root, *greedy, *drafter_dir, *format;
    size_t random, positions, prompts, prompt_len, gen, gprompts, gprompt_len;
    uint64_t seed, gseed;
    uint32_t block;
    int drafter, invariance, only_rel_l2;
    double max_rel_l2, min_top1, max_kl, max_ppl, max_tau, max_route; /* max_route < 0: not checked */
} opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " MODEL [--ref cpu] [--dev cuda|cuda:N|cpu] [--threads N]\n"
            "                    [--tokens LIST [--root DIR] | --random N --seed S]\n"
            "                    [--positions N] [--drafter] [--drafter-dir DIR] [--prompts N] [--prompt-len P]\n"
            "                    [--gen-tokens G] [--block B] [--invariance] [--greedy-dflash LIST]\n"
            "                    [--greedy-prompts N] [--greedy-prompt-len P] [--greedy-seed S]\n"
            "                    [--max-rel-l2 X] [--min-top1 PCT] [--max-kl X] [--max-ppl-diff X]\n"
            "                    [--max-tau-diff X] [--max-route-share X] [--format text|json]\n"
            "Compares the device backend (--dev) with the reference (--ref) on MODEL.\n"
            "  --ref D, --dev D      backends: cpu, cuda (device 0) or cuda:N (defaults cpu and cuda)\n"
            "  --threads N           CPU threads, 1..1024 (default 1), of the side named just before it\n"
            "                        (--ref cpu --threads 1 --dev cpu --threads 2), of both before either\n"
            "  --tokens LIST         the sequence: the documents of LIST (one path per line, '#' comments;\n"
            "                        the held-out list format of fixtures/nano/heldout_*.txt), each after\n"
            "                        <|endoftext|> when MODEL/tokenizer.json has it, concatenated\n"
            "  --root DIR            put before every path of a LIST (as mimo-eval --root)\n"
            "  --random N            the sequence: N ids uniform over the vocabulary (default 256), from\n"
            "  --seed S              the runtime's xoshiro256** seeded with S (default 1)\n"
            "  --positions N         positions compared, 2..max_position_embeddings (default: all of\n"
            "                        --random, the first 512 of --tokens)\n"
            "  --drafter             DFlash tau on both backends (greedy, rt_generate): --prompts N\n"
            "                        (default 4) prompts of --prompt-len P ids (default 32) cut from the\n"
            "                        sequence at i * (positions - P) / N, each continued by --gen-tokens G\n"
            "                        (default 128) at block --block B (default the drafter's block_size)\n"
            "  --drafter-dir DIR     the drafter (default MODEL/dflash)\n"
            "  --fp32                the device under test in its fp32 debug mode (rt_model_opts.fp32)\n"
            "  --kv-bf16             the device under test with a BF16 KV cache (rt_model_opts.kv_bf16)\n"
            "  --only-rel-l2         gate the logits on the rel L2 p99 alone; top-1, KL and perplexity\n"
            "                        are reported (info): their thresholds are for trained models, and on\n"
            "                        random-weight fixtures near-uniform outputs make top-1 a toss-up\n"
            "  --invariance          on the device: the logits of every row of the first min(positions,\n"
            "                        40) are byte-identical fed in steps of 1, 2, 8 and 16 rows, and rows\n"
            "                        L/2 and L-1 again inside steps whose later rows are other tokens\n"
            "  --greedy-dflash LIST  on the device: greedy DFlash equals greedy plain decoding for\n"
            "                        --gen-tokens new tokens on every prompt of LIST, cut by mimo-eval's\n"
            "                        rule (--greedy-prompts N, default 16; --greedy-prompt-len P, default\n"
            "                        64; --greedy-seed S, default 1); needs MODEL/tokenizer.json\n"
            "  --max-rel-l2 X        p99 over positions of ||dev - ref|| / ||ref|| of a logits row\n"
            "                        (default 2e-2)\n"
            "  --min-top1 PCT        positions whose argmaxes agree, percent (default 99.7)\n"
            "  --max-kl X            mean KL(ref || dev) over positions, softmax in double (default 1e-4)\n"
            "  --max-ppl-diff X      |ppl_dev / ppl_ref - 1| of the next-token perplexity (default 5e-4)\n"
            "  --max-tau-diff X      |tau_dev - tau_ref| (default 0.05)\n"
            "  --max-route-share X   routing mismatches, the share of (layer, row) pairs of MoE layers\n"
            "                        whose expert sets differ (default: reported, not checked)\n"
            "  --format F            text (default) or json (one object on stdout)\n"
            "Exit status: 0 every check passed, 1 a check failed, 2 usage, 3 bad input.\n");
}

/* The options that take a value. */
static int known(const char *a)
{
    static const char *const names[] = {"--ref", "--dev", "--threads", "--tokens", "--root", "--random", "--seed",
                                        "--positions", "--drafter-dir", "--prompts", "--prompt-len", "--gen-tokens",
                                        "--block", "--greedy-dflash", "--greedy-prompts", "--greedy-prompt-len",
                                        "--greedy-seed", "--max-rel-l2", "--min-top1", "--max-kl", "--max-ppl-diff",
                                        "--max-tau-diff", "--max-route-share", "--format"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(a, names[i]))
            return 1;
    return 0;
}

static int bad_usage(const char *fmt_, ...)
{
    va_list ap;
    va_start(ap, fmt_);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt_, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

static int parse_size(const char *s, size_t lo, size_t hi, size_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v < lo || v > hi)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v) || v < 0)
        return -1;
    *out = v;
    return 0;
}

static int fail_err(const char *what, const lq_error *err)
{
    char buf[1600];
    fprintf(stderr, PROG ": %s: %s\n", what, lq_error_format(err, buf, sizeof(buf)));
    return 3;
}

/* ---- the sequence ---- */

/* The documents of a list, encoded and concatenated (each after the separator when the tokenizer
 * has <|endoftext|>), as mimo-eval reads a set. */
static int load_list(const char *model, const char *list, const char *root, uint32_t vocab, rt_eval_docs *docs)
{
    char tpath[4200];
    snprintf(tpath, sizeof(tpath), "%s/tokenizer.json", model);
    rt_tokenizer *tok = NULL;
    lq_error err;
    lq_error_clear(&err);
    char **paths = NULL;
    size_t np = 0;
    int rc = 0;
    if (rt_tokenizer_open(tpath, &tok, &err) != LQ_OK) {
        rc = fail_err("the tokenizer", &err);
        goto done;
    }
    int32_t sep = rt_tokenizer_find(tok, "<|endoftext|>");
    if (sep >= 0 && (uint32_t)sep >= vocab)
        sep = -1;
    if (rt_eval_list_read(list, root, &paths, &np, &err) != LQ_OK) {
        rc = fail_err("the list", &err);
        goto done;
    }
    if (np == 0) {
        fprintf(stderr, PROG ": %s: EVAL_EMPTY_SET: the list names no file\n", list);
        rc = 3;
        goto done;
    }
    if (rt_eval_docs_load(tok, paths, np, sep, docs, &err) != LQ_OK) {
        rc = fail_err("the documents", &err);
        goto done;
    }
    for (size_t i = 0; i < docs->off[docs->n]; i++)
        if (docs->ids[i] < 0 || (uint32_t)docs->ids[i] >= vocab) {
            fprintf(stderr, PROG ": %s: EVAL_VOCAB: token %d of the documents is outside the model's %u ids\n", tpath,
                    docs->ids[i], vocab);
            rc = 3;
            goto done;
        }
done:
    rt_eval_list_free(paths, np);
    rt_tokenizer_close(tok);
    return rc;
}

/* ---- teacher-forced comparison ---- */

typedef struct logit_cmp {
    size_t n, agree, route_diff, route_pairs;
    double p50, p99, max, kl_mean, ppl[2], ppl_rel;
    size_t n_same;    /* positions whose routing matched in every MoE layer */
    double p99_same;  /* the rel L2 p99 over those (0 when none): separates rounding from flips */
} logit_cmp;

/* log-sum-exp of a row in double, max-subtracted. */
static double lse(const float *x, uint32_t V)
{
    double mx = x[0];
    for (uint32_t i = 1; i < V; i++)
        if (x[i] > mx)
            mx = x[i];
    double s = 0;
    for (uint32_t i = 0; i < V; i++)
        s += exp((double)x[i] - mx);
    return mx + log(s);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n). */
static double pct(const double *v, size_t n, double q)
{
    size_t r = (size_t)ceil(q * (double)n);
    return v[r ? r - 1 : 0];
}

static int compare_logits(side *s, const int32_t *seq, size_t n, logit_cmp *out)
{
    const lq_mimo_config *c = rt_model_config(s[0].m);
    const uint32_t V = c->vocab_size, L = c->num_hidden_layers, K = c->num_experts_per_tok ? c->num_experts_per_tok : 1;
    const size_t C = RT_STEP_CHUNK;
    float *lg[2] = {malloc(C * (size_t)V * sizeof(float)), malloc(C * (size_t)V * sizeof(float))};
    int32_t *ex[2] = {malloc((size_t)L * C * K * sizeof(int32_t)), malloc((size_t)L * C * K * sizeof(int32_t))};
    double *rel = malloc(n * sizeof(double)), *rel_same = malloc(n * sizeof(double));
    unsigned char *flip = calloc(n, 1);
    rt_cache *kv[2] = {NULL, NULL};
    lq_error err;
    lq_error_clear(&err);
    int rc = 0;
    double kl = 0, nll[2] = {0, 0};
    memset(out, 0, sizeof(*out));
    out->n = n;
    if (!lg[0] || !lg[1] || !ex[0] || !ex[1] || !rel || !rel_same || !flip) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = 3;
        goto done;
    }
    for (int k = 0; k < 2; k++)
        if (rt_cache_new(s[k].m, n, &kv[k], &err) != LQ_OK) {
            rc = k ? 1 : 3;
            fail_err(k ? "dev: cache" : "ref: cache", &err);
            goto done;
        }
    for (size_t p = 0; p < n; p += C) {
        size_t m = n - p < C ? n - p : C;
        for (int k = 0; k < 2; k++) {
            rt_sel sel = {.rows = m, .logits = lg[k], .experts = ex[k]};
            if (rt_step_ex(s[k].m, kv[k], seq + p, m, NULL, &sel, &err) != LQ_OK) {
                char what[96];
                snprintf(what, sizeof(what), "%s: step at position %zu", s[k].name, p);
                rc = k ? 1 : 3; /* the device failing where the reference did not is a finding */
                fail_err(what, &err);
                goto done;
            }
        }
        for (size_t r = 0; r < m; r++) {
            const float *a = lg[0] + r * V, *b = lg[1] + r * V;
            double dd = 0, rr = 0;
            for (uint32_t i = 0; i < V; i++) {
                double x = (double)b[i] - (double)a[i];
                dd += x * x;
                rr += (double)a[i] * (double)a[i];
            }
            rel[p + r] = rr > 0 ? sqrt(dd / rr) : sqrt(dd);
            out->agree += rt_argmax(a, V) == rt_argmax(b, V);
            double la = lse(a, V), lb = lse(b, V), k1 = 0;
            for (uint32_t i = 0; i < V; i++) {
                double lpa = (double)a[i] - la;
                k1 += exp(lpa) * (lpa - ((double)b[i] - lb));
            }
            kl += k1;
            if (p + r + 1 < n) {
                int32_t t = seq[p + r + 1];
                nll[0] += la - (double)a[t];
                nll[1] += lb - (double)b[t];
            }
        }
        for (uint32_t l = 0; l < L; l++)
            for (size_t r = 0; r < m; r++) {
                int32_t *ea = ex[0] + ((size_t)l * m + r) * K, *eb = ex[1] + ((size_t)l * m + r) * K;
                if (ea[0] < 0 && eb[0] < 0)
                    continue; /* a dense layer */
                out->route_pairs++;
                qsort(ea, K, sizeof(int32_t), cmp_i32);
                qsort(eb, K, sizeof(int32_t), cmp_i32);
                const int d = memcmp(ea, eb, K * sizeof(int32_t)) != 0;
                out->route_diff += d;
                flip[p + r] |= d;
            }
    }
    for (size_t i = 0; i < n; i++)
        if (!flip[i])
            rel_same[out->n_same++] = rel[i];
    if (out->n_same) {
        qsort(rel_same, out->n_same, sizeof(double), cmp_double);
        out->p99_same = pct(rel_same, out->n_same, 0.99);
    }
    qsort(rel, n, sizeof(double), cmp_double);
    out->p50 = pct(rel, n, 0.50);
    out->p99 = pct(rel, n, 0.99);
    out->max = rel[n - 1];
    out->kl_mean = kl / (double)n;
    out->ppl[0] = exp(nll[0] / (double)(n - 1));
    out->ppl[1] = exp(nll[1] / (double)(n - 1));
    out->ppl_rel = fabs(out->ppl[1] / out->ppl[0] - 1);
done:
    free(rel_same);
    free(flip);
    for (int k = 0; k < 2; k++) {
        free(lg[k]);
        free(ex[k]);
        rt_cache_free(kv[k]);
    }
    free(rel);
    return rc;
}

/* ---- DFlash acceptance ---- */

/* Opens the drafter on sides first..first+count-1. */
static int open_drafters(side *s, int count, int first, const char *dir)
{
    lq_error err;
    lq_error_clear(&err);
    for (int k = first; k < first + count; k++)
        if (!s[k].d && rt_drafter_open(dir, s[k].m, NULL, &s[k].d, &err) != LQ_OK) {
            char what[80];
            snprintf(what, sizeof(what), "%s: the drafter", s[k].name);
            return fail_err(what, &err);
        }
    return 0;
}

static int measure_tau(side *s, const opts *o, const int32_t *seq, size_t n, double tau[2], uint32_t *block)
{
    lq_error err;
    lq_error_clear(&err);
    for (int k = 0; k < 2; k++) {
        rt_eval_accept acc;
        memset(&acc, 0, sizeof(acc));
        rt_opts ro = {0};
        for (size_t i = 0; i < o->prompts; i++) {
            size_t start = i * (n - o->prompt_len) / o->prompts;
            if (rt_eval_generate(s[k].m, s[k].d, seq + start, o->prompt_len, o->gen, o->block, &ro, NULL, NULL, &acc,
                                 &err) != LQ_OK) {
                char what[96];
                snprintf(what, sizeof(what), "%s: DFlash on prompt %zu", s[k].name, i);
                fail_err(what, &err);
                return k ? 1 : 3;
            }
        }
        tau[k] = rt_eval_tau(&acc);
        *block = acc.block;
    }
    return 0;
}

/* ---- batch invariance on the device ---- */

typedef struct inv_result {
    size_t rows, cases, bytes_diff, cases_diff;
} inv_result;

static size_t bytes_differ(const float *a, const float *b, size_t n)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    size_t d = 0;
    for (size_t i = 0; i < n * sizeof(float); i++)
        d += x[i] != y[i];
    return d;
}

/* Feeds seq[0..L) in steps of `step` rows from a fresh cache, the logits of every row into out
 * [L, V]. */
static lq_status feed(const rt_model *m, const int32_t *seq, size_t L, size_t step, float *out, lq_error *err)
{
    const uint32_t V = rt_model_config(m)->vocab_size;
    rt_cache *kv = NULL;
    lq_status st = rt_cache_new(m, L, &kv, err);
    for (size_t p = 0; st == LQ_OK && p < L; p += step) {
        size_t k = L - p < step ? L - p : step;
        rt_sel sel = {.rows = k, .logits = out + p * V};
        st = rt_step_ex(m, kv, seq + p, k, NULL, &sel, err);
    }
    rt_cache_free(kv);
    return st;
}

static int invariance(const side *dev, const int32_t *seq, size_t n, uint64_t seed, inv_result *r)
{
    const uint32_t V = rt_model_config(dev->m)->vocab_size;
    const size_t L = n < 40 ? n : 40, steps[4] = {1, 2, 8, 16};
    float *base = malloc(L * (size_t)V * sizeof(float)), *got = malloc((L + 16) * (size_t)V * sizeof(float));
    int32_t *mix = malloc((L + 16) * sizeof(int32_t));
    lq_error err;
    lq_error_clear(&err);
    int rc = 0;
    memset(r, 0, sizeof(*r));
    r->rows = L;
    if (!base || !got || !mix) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = 3;
        goto done;
    }
    for (int i = 0; i < 4; i++) {
        if (feed(dev->m, seq, L, steps[i], i ? got : base, &err) != LQ_OK) {
            char what[96];
            snprintf(what, sizeof(what), "dev: invariance, steps of %zu", steps[i]);
            fail_err(what, &err);
            rc = 1;
            goto done;
        }
        if (i) {
            size_t d = bytes_differ(base, got, L * (size_t)V);
            r->cases++;
            r->bytes_diff += d;
            r->cases_diff += d != 0;
            if (d)
                fprintf(stderr, PROG ": invariance: steps of %zu: %zu bytes of %zu rows' logits differ from steps of 1\n",
                        steps[i], d, L);
        }
    }
    /* Target row t inside one step: j rows of the same prefix before it, k rows of other tokens
     * after it (positions t+1..t+k hold ids the sequence does not). */
    static const size_t jk[5][2] = {{0, 1}, {0, 7}, {3, 12}, {0, 15}, {7, 8}};
    const size_t targets[2] = {L / 2, L - 1};
    rt_rng rng;
    rt_rng_seed(&rng, seed ^ 0x5DEECE66Dull);
    for (int ti = 0; ti < 2; ti++)
        for (int c = 0; c < 5; c++) {
            size_t t = targets[ti], j = jk[c][0] > t ? t : jk[c][0], k = jk[c][1], p0 = t - j;
            memcpy(mix, seq, (t + 1) * sizeof(int32_t));
            for (size_t q = t + 1; q <= t + k; q++) {
                int32_t x = (int32_t)(rt_rng_next(&rng) % V);
                mix[q] = (q < n && x == seq[q]) ? (int32_t)((x + 1) % V) : x;
            }
            rt_cache *kv = NULL;
            lq_status st = rt_cache_new(dev->m, t + k + 1, &kv, &err);
            if (st == LQ_OK && p0) {
                rt_sel none = {0};
                st = rt_step_ex(dev->m, kv, mix, p0, NULL, &none, &err);
            }
            if (st == LQ_OK) {
                rt_sel sel = {.rows = j + 1 + k, .logits = got};
                st = rt_step_ex(dev->m, kv, mix + p0, j + 1 + k, NULL, &sel, &err);
            }
            rt_cache_free(kv);
            if (st != LQ_OK) {
                fail_err("dev: invariance with companion rows", &err);
                rc = 1;
                goto done;
            }
            size_t d = bytes_differ(base + t * V, got + j * V, V);
            r->cases++;
            r->bytes_diff += d;
            r->cases_diff += d != 0;
            if (d)
                fprintf(stderr,
                        PROG ": invariance: row %zu in a step of %zu rows (%zu before it, %zu other tokens after): %zu "
                             "bytes differ\n",
                        t, j + 1 + k, j, k, d);
        }
done:
    free(base);
    free(got);
    free(mix);
    return rc;
}

/* ---- greedy DFlash == greedy plain on the device ---- */

typedef struct prompt_set {
    rt_eval_docs docs;
    rt_eval_span *pr;
    size_t n;
} prompt_set;

/* The prompts of LIST by mimo-eval's rule (rt_eval_prompts). */
static int load_prompts(const opts *o, uint32_t vocab, prompt_set *ps)
{
    lq_error err;
    lq_error_clear(&err);
    int rc = load_list(o->model, o->greedy, o->root, vocab, &ps->docs);
    if (rc)
        return rc;
    size_t *len = malloc(ps->docs.n * sizeof(size_t));
    ps->pr = malloc(o->gprompts * sizeof(*ps->pr));
    if (!len || !ps->pr) {
        free(len);
        fprintf(stderr, PROG ": out of memory\n");
        return 3;
    }
    for (size_t i = 0; i < ps->docs.n; i++)
        len[i] = ps->docs.off[i + 1] - ps->docs.off[i];
    if (rt_eval_prompts(len, ps->docs.n, o->gprompts, o->gprompt_len, o->gseed, ps->pr, &err) != LQ_OK)
        rc = fail_err("greedy-dflash prompts", &err);
    else
        ps->n = o->gprompts;
    free(len);
    return rc;
}

static int greedy_identity(side *dev, const opts *o, const prompt_set *ps, size_t *matched)
{
    int32_t *a = malloc(o->gen * sizeof(int32_t)), *b = malloc(o->gen * sizeof(int32_t));
    lq_error err;
    lq_error_clear(&err);
    int rc = 0;
    *matched = 0;
    if (!a || !b) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = 3;
        goto done;
    }
    rt_opts ro = {0};
    for (size_t i = 0; i < ps->n; i++) {
        const rt_eval_span *q = &ps->pr[i];
        const int32_t *p = ps->docs.ids + ps->docs.off[q->doc] + q->start;
        if (rt_eval_generate(dev->m, NULL, p, q->len, o->gen, 0, &ro, a, NULL, NULL, &err) != LQ_OK ||
            rt_eval_generate(dev->m, dev->d, p, q->len, o->gen, o->block, &ro, b, NULL, NULL, &err) != LQ_OK) {
            char what[96];
            snprintf(what, sizeof(what), "dev: greedy generation, prompt %zu", i);
            fail_err(what, &err);
            rc = 1;
            goto done;
        }
        size_t first = 0;
        while (first < o->gen && a[first] == b[first])
            first++;
        if (first == o->gen)
            (*matched)++;
        else
            fprintf(stderr,
                    PROG ": greedy-dflash: prompt %zu (document %zu, start %zu): DFlash differs from plain at token "
                         "%zu (%d vs %d)\n",
                    i, q->doc, q->start, first, b[first], a[first]);
    }
done:
    free(a);
    free(b);
    return rc;
}

/* ---- report ---- */

static const char *verdict(int pass) { return pass ? "pass" : "FAIL"; }

/* One line of the text table. */
static void row(const char *check, const char *value, const char *threshold, const char *result)
{
    printf("  %-33s %-34s %-13s %s\n", check, value, threshold, result);
}

static cJSON *check_obj(double value, double threshold, const char *rel, int pass)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "value", value);
    cJSON_AddNumberToObject(o, "threshold", threshold);
    cJSON_AddStringToObject(o, "check", rel);
    cJSON_AddBoolToObject(o, "pass", pass);
    return o;
}

int main(int argc, char **argv)
{
    opts o = {.random = 0, .prompts = 4, .prompt_len = 32, .gen = 128, .gprompts = 16, .gprompt_len = 64, .seed = 1,
              .gseed = 1, .format = "text", .max_rel_l2 = 2e-2, .min_top1 = 99.7, .max_kl = 1e-4, .max_ppl = 5e-4,
              .max_tau = 0.05, .max_route = -1};
    side s[2] = {{.name = "ref", .backend = "cpu", .device = 0, .threads = 1},
                 {.name = "dev", .backend = "cuda", .device = 0, .threads = 1}};
    /* --threads after --ref or --dev sets that side's (threads[0] / [1]), before either both (threads[2]) */
    int threads[3] = {0, 0, 0}, last_side = -1, have_seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (a[0] != '-') {
            if (o.model)
                return bad_usage("one MODEL only (also got '%s')", a);
            o.model = a;
            takes = 0;
        } else if (!strcmp(a, "--drafter")) {
            o.drafter = 1;
            takes = 0;
        } else if (!strcmp(a, "--invariance")) {
            o.invariance = 1;
            takes = 0;
        } else if (!strcmp(a, "--fp32")) {
            s[1].fp32 = 1; /* the device under test in its fp32 debug mode */
            takes = 0;
        } else if (!strcmp(a, "--kv-bf16")) {
            s[1].kv_bf16 = 1; /* the device under test with a BF16 KV cache */
            takes = 0;
        } else if (!strcmp(a, "--only-rel-l2")) {
            o.only_rel_l2 = 1;
            takes = 0;
        } else if (!known(a)) {
            fprintf(stderr, PROG ": unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!v) {
            return bad_usage("%s needs a value (--help lists the options)", a);
        } else if (!strcmp(a, "--ref") || !strcmp(a, "--dev")) {
            last_side = a[2] == 'd';
            side *x = &s[last_side];
            if (rt_parse_device(v, &x->backend, &x->device))
                return bad_usage("%s: cpu, cuda or cuda:N (N 0..255), not '%s'", a, v);
        } else if (!strcmp(a, "--threads")) {
            size_t th = 0;
            if (parse_size(v, 1, 1024, &th))
                return bad_usage("%s: need 1..1024, not '%s'", a, v);
            threads[last_side < 0 ? 2 : last_side] = (int)th;
        } else if (!strcmp(a, "--tokens")) {
            o.tokens = v;
        } else if (!strcmp(a, "--root")) {
            o.root = v;
        } else if (!strcmp(a, "--random")) {
            if (parse_size(v, 2, (size_t)1 << 24, &o.random))
                return bad_usage("--random: need 2..16777216, not '%s'", v);
        } else if (!strcmp(a, "--seed")) {
            if (parse_u64(v, &o.seed))
                return bad_usage("--seed: not an unsigned integer: '%s'", v);
            have_seed = 1;
        } else if (!strcmp(a, "--positions")) {
            if (parse_size(v, 2, (size_t)1 << 24, &o.positions))
                return bad_usage("--positions: need 2..16777216, not '%s'", v);
        } else if (!strcmp(a, "--drafter-dir")) {
            o.drafter_dir = v;
        } else if (!strcmp(a, "--prompts")) {
            if (parse_size(v, 1, 4096, &o.prompts))
                return bad_usage("--prompts: need 1..4096, not '%s'", v);
        } else if (!strcmp(a, "--prompt-len")) {
            if (parse_size(v, 1, (size_t)1 << 20, &o.prompt_len))
                return bad_usage("--prompt-len: need 1..1048576, not '%s'", v);
        } else if (!strcmp(a, "--gen-tokens")) {
            if (parse_size(v, 1, (size_t)1 << 20, &o.gen))
                return bad_usage("--gen-tokens: need 1..1048576, not '%s'", v);
        } else if (!strcmp(a, "--block")) {
            size_t b = 0;
            if (parse_size(v, 2, RT_MAX_BLOCK, &b))
                return bad_usage("--block: need 2..%d, not '%s'", RT_MAX_BLOCK, v);
            o.block = (uint32_t)b;
        } else if (!strcmp(a, "--greedy-dflash")) {
            o.greedy = v;
        } else if (!strcmp(a, "--greedy-prompts")) {
            if (parse_size(v, 1, 4096, &o.gprompts))
                return bad_usage("--greedy-prompts: need 1..4096, not '%s'", v);
        } else if (!strcmp(a, "--greedy-prompt-len")) {
            if (parse_size(v, 1, (size_t)1 << 20, &o.gprompt_len))
                return bad_usage("--greedy-prompt-len: need 1..1048576, not '%s'", v);
        } else if (!strcmp(a, "--greedy-seed")) {
            if (parse_u64(v, &o.gseed))
                return bad_usage("--greedy-seed: not an unsigned integer: '%s'", v);
        } else if (!strcmp(a, "--max-rel-l2") || !strcmp(a, "--min-top1") || !strcmp(a, "--max-kl") ||
                   !strcmp(a, "--max-ppl-diff") || !strcmp(a, "--max-tau-diff") || !strcmp(a, "--max-route-share")) {
            double x;
            double *dst = !strcmp(a, "--max-rel-l2") ? &o.max_rel_l2
                          : !strcmp(a, "--min-top1") ? &o.min_top1
                          : !strcmp(a, "--max-kl")   ? &o.max_kl
                          : !strcmp(a, "--max-ppl-diff") ? &o.max_ppl
                          : !strcmp(a, "--max-tau-diff") ? &o.max_tau
                                                         : &o.max_route;
            if (parse_double(v, &x) || (dst == &o.min_top1 && x > 100))
                return bad_usage("%s: need a non-negative number%s, not '%s'", a, dst == &o.min_top1 ? " <= 100" : "", v);
            *dst = x;
        } else if (!strcmp(a, "--format")) {
            if (strcmp(v, "text") && strcmp(v, "json"))
                return bad_usage("--format: text or json, not '%s'", v);
            o.format = v;
        } else {
            fprintf(stderr, PROG ": unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i += takes;
    }
    if (!o.model)
        return bad_usage("MODEL is required (--help lists the options)");
    for (int k = 0; k < 2; k++)
        s[k].threads = threads[k] ? threads[k] : threads[2] ? threads[2] : 1;
    if (o.tokens && (o.random || have_seed))
        return bad_usage("--tokens and --random/--seed exclude each other");
    if (o.root && !o.tokens && !o.greedy)
        return bad_usage("--root goes with --tokens or --greedy-dflash");
    const int json = !strcmp(o.format, "json");

    int rc = 0;
    lq_error err;
    lq_error_clear(&err);
    rt_eval_docs docs;
    memset(&docs, 0, sizeof(docs));
    prompt_set gp;
    memset(&gp, 0, sizeof(gp));
    int32_t *seq = NULL;
    cJSON *out = cJSON_CreateObject();
    char dpath[4200];
    snprintf(dpath, sizeof(dpath), "%s/dflash", o.model);
    const char *ddir = o.drafter_dir ? o.drafter_dir : dpath;
    for (int k = 0; k < 2; k++) {
        rt_model_opts mo = {0};
        mo.backend = s[k].backend;
        mo.device = s[k].device;
        mo.threads = s[k].threads;
        mo.fp32 = s[k].fp32;
        mo.kv_bf16 = s[k].kv_bf16;
        if (rt_model_open(o.model, &mo, &s[k].m, &err) != LQ_OK) {
            char what[96];
            snprintf(what, sizeof(what), "%s: opening on %s:%d", s[k].name, s[k].backend, s[k].device);
            rc = fail_err(what, &err);
            goto done;
        }
    }
    const lq_mimo_config *cfg = rt_model_config(s[0].m);
    const uint32_t V = cfg->vocab_size;
    const uint64_t maxpos = cfg->max_position_embeddings;

    /* the sequence */
    size_t n = 0;
    if (o.tokens) {
        if ((rc = load_list(o.model, o.tokens, o.root, V, &docs)) != 0)
            goto done;
        n = docs.off[docs.n];
        size_t want = o.positions ? o.positions : 512;
        if (n < want && o.positions) {
            fprintf(stderr, PROG ": %s: the documents hold %zu tokens, fewer than --positions %zu\n", o.tokens, n, want);
            rc = 3;
            goto done;
        }
        n = n < want ? n : want;
        seq = malloc(n * sizeof(int32_t));
        if (seq)
            memcpy(seq, docs.ids, n * sizeof(int32_t));
    } else {
        size_t total = o.random ? o.random : 256;
        n = o.positions && o.positions < total ? o.positions : total;
        seq = malloc(n * sizeof(int32_t));
        rt_rng r;
        rt_rng_seed(&r, o.seed);
        for (size_t i = 0; seq && i < n; i++)
            seq[i] = (int32_t)(rt_rng_next(&r) % V);
    }
    if (!seq) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = 3;
        goto done;
    }
    if (n < 2 || (maxpos && n > maxpos)) {
        fprintf(stderr, PROG ": %s/config.json: %zu positions, need 2..max_position_embeddings %llu\n", o.model, n,
                (unsigned long long)maxpos);
        rc = 3;
        goto done;
    }
    if (o.drafter && (o.prompt_len > n || (maxpos && o.prompt_len + o.gen > maxpos))) {
        fprintf(stderr, PROG ": --prompt-len %zu must fit the %zu positions and, with --gen-tokens %zu, "
                        "max_position_embeddings %llu\n",
                o.prompt_len, n, o.gen, (unsigned long long)maxpos);
        rc = 3;
        goto done;
    }

    if ((o.drafter || o.greedy) && (rc = open_drafters(s, o.drafter ? 2 : 1, o.drafter ? 0 : 1, ddir)) != 0)
        goto done;
    if (o.greedy && (rc = load_prompts(&o, V, &gp)) != 0)
        goto done;
    if (o.greedy && maxpos && o.gprompt_len + o.gen > maxpos) {
        fprintf(stderr, PROG ": --greedy-prompt-len %zu + --gen-tokens %zu is above max_position_embeddings %llu\n",
                o.gprompt_len, o.gen, (unsigned long long)maxpos);
        rc = 3;
        goto done;
    }

    cJSON_AddStringToObject(out, "model", o.model);
    for (int k = 0; k < 2; k++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "backend", rt_model_backend(s[k].m));
        cJSON_AddNumberToObject(b, "device", s[k].device);
        cJSON_AddNumberToObject(b, "threads", s[k].threads);
        cJSON_AddItemToObject(out, s[k].name, b);
    }
    cJSON_AddStringToObject(out, "sequence", o.tokens ? o.tokens : "random");
    cJSON_AddNumberToObject(out, "positions", (double)n);
    if (!json)
        printf("%s: ref %s:%d (%d threads) vs dev %s:%d (%d threads), %zu positions of %s\n", o.model,
               rt_model_backend(s[0].m), s[0].device, s[0].threads, rt_model_backend(s[1].m), s[1].device, s[1].threads,
               n, o.tokens ? o.tokens : "random ids");

    int all = 1;
    /* teacher-forced logits and routing */
    logit_cmp lc;
    if ((rc = compare_logits(s, seq, n, &lc)) != 0)
        goto done;
    {
        const double top1 = 100.0 * (double)lc.agree / (double)n;
        const double share = lc.route_pairs ? (double)lc.route_diff / (double)lc.route_pairs : 0.0;
        const int p1 = lc.p99 <= o.max_rel_l2, p2 = o.only_rel_l2 || top1 >= o.min_top1,
                  p3 = o.only_rel_l2 || lc.kl_mean <= o.max_kl, p4 = o.only_rel_l2 || lc.ppl_rel <= o.max_ppl,
                  p5 = o.max_route < 0 || share <= o.max_route;
        all &= p1 && p2 && p3 && p4 && p5;
        cJSON *l = cJSON_CreateObject();
        cJSON *r = check_obj(lc.p99, o.max_rel_l2, "p99 <=", p1);
        cJSON_AddNumberToObject(r, "p50", lc.p50);
        cJSON_AddNumberToObject(r, "p99", lc.p99);
        cJSON_AddNumberToObject(r, "max", lc.max);
        cJSON_AddNumberToObject(r, "positions_same_routing", (double)lc.n_same);
        cJSON_AddNumberToObject(r, "p99_same_routing", lc.p99_same);
        cJSON_AddItemToObject(l, "rel_l2", r);
        cJSON_AddBoolToObject(l, "only_rel_l2_gated", o.only_rel_l2);
        cJSON_AddItemToObject(l, "top1_agreement_pct", check_obj(top1, o.min_top1, ">=", p2));
        cJSON_AddItemToObject(l, "mean_kl", check_obj(lc.kl_mean, o.max_kl, "<=", p3));
        cJSON *pp = check_obj(lc.ppl_rel, o.max_ppl, "<=", p4);
        cJSON_AddNumberToObject(pp, "ref", lc.ppl[0]);
        cJSON_AddNumberToObject(pp, "dev", lc.ppl[1]);
        cJSON_AddItemToObject(l, "perplexity_rel_diff", pp);
        cJSON *ro = o.max_route < 0 ? cJSON_CreateObject() : check_obj(share, o.max_route, "<=", p5);
        cJSON_AddNumberToObject(ro, "mismatches", (double)lc.route_diff);
        cJSON_AddNumberToObject(ro, "pairs", (double)lc.route_pairs);
        cJSON_AddNumberToObject(ro, "share", share);
        cJSON_AddItemToObject(l, "routing", ro);
        cJSON_AddItemToObject(out, "logits", l);
        if (!json) {
            char v[96], t[32];
            row("check", "value", "threshold", "result");
            snprintf(v, sizeof(v), "p50 %.3g, p99 %.3g, max %.3g", lc.p50, lc.p99, lc.max);
            snprintf(t, sizeof(t), "p99 <= %.3g", o.max_rel_l2);
            row("logits rel L2", v, t, verdict(p1));
            snprintf(v, sizeof(v), "p99 %.3g over %zu of %zu positions", lc.p99_same, lc.n_same, n);
            row("  where routing matched", v, "-", "info");
            snprintf(v, sizeof(v), "%.4f", top1);
            snprintf(t, sizeof(t), ">= %.4g", o.min_top1);
            row("top-1 agreement (%)", v, o.only_rel_l2 ? "-" : t, o.only_rel_l2 ? "info" : verdict(p2));
            snprintf(v, sizeof(v), "%.3g", lc.kl_mean);
            snprintf(t, sizeof(t), "<= %.3g", o.max_kl);
            row("mean KL(ref || dev)", v, o.only_rel_l2 ? "-" : t, o.only_rel_l2 ? "info" : verdict(p3));
            snprintf(v, sizeof(v), "%.3g (%.6g / %.6g)", lc.ppl_rel, lc.ppl[0], lc.ppl[1]);
            snprintf(t, sizeof(t), "<= %.3g", o.max_ppl);
            row("perplexity rel diff (ref / dev)", v, o.only_rel_l2 ? "-" : t, o.only_rel_l2 ? "info" : verdict(p4));
            snprintf(v, sizeof(v), "%zu of %zu (share %.4g)", lc.route_diff, lc.route_pairs, share);
            if (o.max_route < 0)
                snprintf(t, sizeof(t), "-");
            else
                snprintf(t, sizeof(t), "<= %.3g", o.max_route);
            row("routing mismatches (layer, row)", v, t, o.max_route < 0 ? "info" : verdict(p5));
        }
    }
    /* DFlash tau on both */
    if (o.drafter) {
        double tau[2];
        uint32_t B = 0;
        if ((rc = measure_tau(s, &o, seq, n, tau, &B)) != 0)
            goto done;
        const double diff = fabs(tau[1] - tau[0]);
        const int p = diff <= o.max_tau;
        all &= p;
        cJSON *d = check_obj(diff, o.max_tau, "<=", p);
        cJSON_AddNumberToObject(d, "tau_ref", tau[0]);
        cJSON_AddNumberToObject(d, "tau_dev", tau[1]);
        cJSON_AddNumberToObject(d, "block", B);
        cJSON_AddNumberToObject(d, "prompts", (double)o.prompts);
        cJSON_AddNumberToObject(d, "prompt_len", (double)o.prompt_len);
        cJSON_AddNumberToObject(d, "gen_tokens", (double)o.gen);
        cJSON_AddItemToObject(out, "dflash_tau", d);
        if (!json) {
            char v[96], t[32];
            snprintf(v, sizeof(v), "%.4g (%.4f / %.4f)", diff, tau[0], tau[1]);
            snprintf(t, sizeof(t), "<= %.3g", o.max_tau);
            row("DFlash |tau diff| (ref / dev)", v, t, verdict(p));
        }
    }
    /* batch invariance on the device */
    if (o.invariance) {
        inv_result ir;
        if ((rc = invariance(&s[1], seq, n, o.seed, &ir)) != 0)
            goto done;
        const int p = ir.bytes_diff == 0;
        all &= p;
        cJSON *iv = check_obj((double)ir.bytes_diff, 0, "==", p);
        cJSON_AddNumberToObject(iv, "rows", (double)ir.rows);
        cJSON_AddNumberToObject(iv, "cases", (double)ir.cases);
        cJSON_AddNumberToObject(iv, "cases_differing", (double)ir.cases_diff);
        cJSON_AddItemToObject(out, "invariance_bytes_differing", iv);
        if (!json) {
            char v[96];
            snprintf(v, sizeof(v), "%zu (%zu of %zu cases differ)", ir.bytes_diff, ir.cases_diff, ir.cases);
            row("invariance: differing bytes", v, "== 0", verdict(p));
        }
    }
    /* greedy DFlash == plain on the device */
    if (o.greedy) {
        size_t np = gp.n, nm = 0;
        if ((rc = greedy_identity(&s[1], &o, &gp, &nm)) != 0)
            goto done;
        const int p = nm == np;
        all &= p;
        cJSON *g = check_obj((double)nm, (double)np, "==", p);
        cJSON_AddNumberToObject(g, "prompts", (double)np);
        cJSON_AddNumberToObject(g, "gen_tokens", (double)o.gen);
        cJSON_AddItemToObject(out, "greedy_dflash_matched", g);
        if (!json) {
            char v[96], t[32];
            snprintf(v, sizeof(v), "%zu of %zu prompts", nm, np);
            snprintf(t, sizeof(t), "== %zu", np);
            row("greedy DFlash == plain", v, t, verdict(p));
        }
    }
    cJSON_AddBoolToObject(out, "pass", all);
    if (json) {
        char *t = cJSON_PrintUnformatted(out);
        if (t)
            printf("%s\n", t);
        free(t);
    } else {
        printf("%s\n", all ? "all checks pass" : "a check FAILED");
    }
    rc = all ? 0 : 1;
done:
    cJSON_Delete(out);
    free(seq);
    rt_eval_docs_free(&docs);
    rt_eval_docs_free(&gp.docs);
    free(gp.pr);
    for (int k = 0; k < 2; k++) {
        rt_drafter_close(s[k].d);
        rt_model_close(s[k].m);
    }
    return rc;
}
