/* mimo-eval: held-out evaluation of a model (and its source) on the CPU reference runtime.
 *
 *   mimo-eval MODEL [--source SRC] (--text FILE ... | --files LIST [--root DIR] | --set NAME=LIST ...)
 *             [options]
 *
 * Per text set: perplexity on non-overlapping windows (and the source's on the same windows, the
 * relative increase and the teacher-forced top-1 agreement), DFlash acceptance length tau with
 * per-position acceptance rates for the model and the source, each with its drafter, and the
 * decode rate of plain decoding against DFlash. Every rule (windows, prompts, rates) is in
 * runtime/eval.h and docs/cli.md ("mimo-eval"). Results go to stdout (text or JSON), progress
 * and errors to stderr. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libquant/libquant.h"
#include "runtime/dflash.h"
#include "runtime/generate.h"
#include "runtime/eval.h"
#include "runtime/tokenizer.h"

#define MAX_SETS 64
#define MAX_TEXT 4096

static void usage(FILE *f)
{
    fprintf(f,
        "usage: mimo-eval MODEL [--source SRC] (--text FILE ... | --files LIST [--root DIR] | --set NAME=LIST ...)\n"
        "                 [options]\n"
        "Held-out evaluation on the CPU reference runtime: perplexity, top-1 agreement with the source,\n"
        "DFlash acceptance (tau, per draft position) and plain vs DFlash decode rate, per text set.\n"
        "Text sets (documents are files read as UTF-8 and encoded with MODEL/tokenizer.json):\n"
        "  --text FILE           a document of the set \"text\" (repeat for more)\n"
        "  --files LIST          a set: LIST holds one path per line ('#' lines and blank lines skipped),\n"
        "                        named after LIST's file name without its extension\n"
        "  --set NAME=LIST       a set named NAME (repeatable; may be combined with --files and --text)\n"
        "  --root DIR            prefix every path of every LIST with DIR (default: paths as written)\n"
        "  --doc-sep TOKEN|none  token put before every document (default <|endoftext|> when the\n"
        "                        tokenizer has it, else none)\n"
        "Perplexity:\n"
        "  --ctx N               window length in tokens, 2..1048576 (default 512)\n"
        "  --ppl-tokens N|all    scored tokens per set, 1..2^40 or all (default 16384)\n"
        "  --no-ppl              skip perplexity\n"
        "  --source SRC          also score SRC on the same windows (same vocabulary required) and\n"
        "                        measure its DFlash acceptance\n"
        "DFlash and speed (greedy, exactly --gen-tokens per prompt, no stop ids):\n"
        "  --prompts N           prompts per set, 1..4096 (default 16)\n"
        "  --prompt-len P        prompt length in tokens, 1..65536 (default 64)\n"
        "  --gen-tokens G        tokens generated per prompt, 1..65536 (default 128)\n"
        "  --block B             draft block, 2..%d (default the model's drafter's block_size)\n"
        "  --seed S              prompt-position seed, 0..2^64-1 (default 1)\n"
        "  --drafter DIR         the model's drafter (default MODEL/dflash; without it tau is skipped)\n"
        "  --source-drafter DIR  the source's drafter (default SRC/dflash, else the model's drafter)\n"
        "  --no-dflash           skip the DFlash passes\n"
        "  --no-speed            skip the plain-decoding pass\n"
        "Other:\n"
        "  --threads N           worker threads, 1..256 (default: all cores); figures do not depend on N\n"
        "  --device D            cpu (default), cuda or cuda:N; a backend this build lacks is an error\n"
        "  --fp32                cuda: fp32 activations and KV cache (the debug mode held to the CPU)\n"
        "  --kv-bf16             cuda: a BF16 KV cache (half the memory) instead of the fp32 default\n"
        "  --format text|json    (default text)\n"
        "  -q, --quiet           no progress on stderr\n"
        "  -h, --help            this text\n"
        "Exit status: 0 ok, 1 greedy DFlash tokens differ from plain decoding, 2 usage error,\n"
        "3 bad input (model, drafter, tokenizer, list, document, a window or prompt that does not fit).\n",
        RT_MAX_BLOCK);
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || e == s || *e || s[0] == '-' || s[0] == ' ' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int quiet;

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
    if (quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("mimo-eval: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int fail(const char *what, const lq_error *err)
{
    char buf[1600];
    fprintf(stderr, "mimo-eval: %s: %s\n", what, lq_error_format(err, buf, sizeof(buf)));
    return 3;
}

/* A text set as given on the command line and what was measured on it. */
typedef struct set_t {
    char name[256];
    const char *list;       /* NULL for the --text set */
    const char **text;      /* the --text files */
    size_t ntext;
    char **paths;
    size_t npaths;
    rt_eval_docs docs;
    /* perplexity */
    int ppl;
    size_t windows, scored, agree;
    double nll[2];
    /* DFlash: [0] model, [1] source; plain decoding of the model */
    int df[2], speed;
    rt_eval_accept acc[2], plain;
    size_t mismatch_prompt, mismatch_token; /* first difference of DFlash and plain tokens */
    int tokens_equal;
    double seconds;
} set_t;

typedef struct cfg_t {
    const char *model, *source, *root, *doc_sep, *drafter, *source_drafter;
    uint64_t ctx, ppl_tokens, prompts, plen, gen, block, seed, threads;
    const char *backend; /* --device */
    int device;
    int fp32;    /* --fp32 */
    int kv_bf16; /* --kv-bf16 */
    int no_ppl, no_dflash, no_speed, json;
} cfg_t;

/* The list's file name without directories and without its last extension. */
static void set_name_of(const char *list, char *out, size_t cap)
{
    const char *b = strrchr(list, '/');
    b = b ? b + 1 : list;
    snprintf(out, cap, "%s", b);
    char *dot = strrchr(out, '.');
    if (dot && dot != out)
        *dot = 0;
}

/* One set's passes. Returns 0 or the exit status. */
static int run_set(const cfg_t *C, set_t *S, rt_model *const mm[2], rt_drafter *const dr[2], uint32_t B)
{
    lq_error err;
    lq_error_clear(&err);
    char what[400];
    const rt_opts o = {.threads = (int)C->threads};
    const rt_eval_docs *D = &S->docs;
    size_t *len = malloc((D->n ? D->n : 1) * sizeof(size_t));
    if (!len) {
        fprintf(stderr, "mimo-eval: out of memory\n");
        return 3;
    }
    for (size_t i = 0; i < D->n; i++)
        len[i] = D->off[i + 1] - D->off[i];
    int rc = 0;
    rt_eval_span *w = NULL, *pr = NULL;
    int32_t *gen_df = NULL, *gen_pl = NULL;
    double t0 = now_s();
    if (!C->no_ppl) {
        size_t nw = 0, sc = 0;
        if (rt_eval_windows(len, D->n, C->ctx, C->ppl_tokens, &w, &nw, &sc, &err) != LQ_OK) {
            snprintf(what, sizeof(what), "set %.200s: windows", S->name);
            rc = fail(what, &err);
            goto done;
        }
        if (nw == 0) {
            fprintf(stderr, "mimo-eval: set %s: EVAL_NO_WINDOW: no document holds 2 tokens, nothing to score\n", S->name);
            rc = 3;
            goto done;
        }
        double tp = now_s();
        for (size_t i = 0; i < nw; i++) {
            rt_eval_nll_result r;
            if (rt_eval_nll(mm[0], mm[1], D->ids + D->off[w[i].doc] + w[i].start, w[i].len, &o, &r, &err) != LQ_OK) {
                snprintf(what, sizeof(what), "set %.200s: perplexity window %zu (document %zu, tokens %zu..%zu)", S->name, i,
                         w[i].doc, w[i].start, w[i].start + w[i].len - 1);
                rc = fail(what, &err);
                goto done;
            }
            S->nll[0] += r.nll[0];
            S->nll[1] += r.nll[1];
            S->agree += r.agree;
        }
        S->ppl = 1;
        S->windows = nw;
        S->scored = sc;
        progress("set %s: perplexity of %zu windows, %zu tokens scored (%.1f s): model %.4f", S->name, nw, sc,
                 now_s() - tp, exp(S->nll[0] / (double)sc));
    }
    int want_df = dr[0] != NULL, want_pl = !C->no_speed;
    if (want_df || want_pl) {
        const size_t N = C->prompts, P = C->plen, G = C->gen;
        pr = malloc(N * sizeof(*pr));
        gen_df = malloc(N * G * sizeof(int32_t));
        gen_pl = malloc(N * G * sizeof(int32_t));
        if (!pr || !gen_df || !gen_pl) {
            fprintf(stderr, "mimo-eval: out of memory\n");
            rc = 3;
            goto done;
        }
        if (rt_eval_prompts(len, D->n, N, P, C->seed, pr, &err) != LQ_OK) {
            snprintf(what, sizeof(what), "set %.200s: prompts", S->name);
            rc = fail(what, &err);
            goto done;
        }
        for (int k = 0; k < 2; k++) {
            if (!dr[k])
                continue;
            double td = now_s();
            for (size_t i = 0; i < N; i++) {
                const int32_t *p = D->ids + D->off[pr[i].doc] + pr[i].start;
                if (rt_eval_generate(mm[k], dr[k], p, P, G, B, &o, k ? NULL : gen_df + i * G, NULL, &S->acc[k], &err) !=
                    LQ_OK) {
                    snprintf(what, sizeof(what), "set %.200s: DFlash on the %s, prompt %zu", S->name, k ? "source" : "model",
                             i);
                    rc = fail(what, &err);
                    goto done;
                }
            }
            S->df[k] = 1;
            progress("set %s: DFlash on the %s, %zu prompts (%.1f s): tau %.3f over %zu steps", S->name,
                     k ? "source" : "model", N, now_s() - td, rt_eval_tau(&S->acc[k]), S->acc[k].steps);
        }
        if (want_pl) {
            double td = now_s();
            for (size_t i = 0; i < N; i++) {
                const int32_t *p = D->ids + D->off[pr[i].doc] + pr[i].start;
                if (rt_eval_generate(mm[0], NULL, p, P, G, 0, &o, gen_pl + i * G, NULL, &S->plain, &err) != LQ_OK) {
                    snprintf(what, sizeof(what), "set %.200s: plain decoding, prompt %zu", S->name, i);
                    rc = fail(what, &err);
                    goto done;
                }
            }
            S->speed = 1;
            progress("set %s: plain decoding, %zu prompts (%.1f s): %.2f tokens/s", S->name, N, now_s() - td,
                     rt_eval_decode_rate(&S->plain));
            S->tokens_equal = 1;
            if (S->df[0])
                for (size_t i = 0; i < N * G && S->tokens_equal; i++)
                    if (gen_df[i] != gen_pl[i]) {
                        S->tokens_equal = 0;
                        S->mismatch_prompt = i / G;
                        S->mismatch_token = i % G;
                    }
        }
    }
    S->seconds = now_s() - t0;
done:
    free(len);
    free(w);
    free(pr);
    free(gen_df);
    free(gen_pl);
    return rc;
}

/* ---- output ---- */

static void jw_num_or_null(lq_jw *w, int have, double v)
{
    if (have)
        lq_jw_double(w, v, 10);
    else
        lq_jw_null(w);
}

static void jw_accept(lq_jw *w, const rt_eval_accept *a, const char *drafter)
{
    double rate[RT_MAX_BLOCK], cond[RT_MAX_BLOCK];
    rt_eval_accept_rates(a->hist, a->block, rate, cond);
    lq_jw_begin_object(w);
    lq_jw_key(w, "drafter");
    lq_jw_string(w, drafter);
    lq_jw_key(w, "tau");
    lq_jw_double(w, rt_eval_tau(a), 10);
    lq_jw_key(w, "steps");
    lq_jw_u64(w, a->steps);
    lq_jw_key(w, "generated");
    lq_jw_u64(w, a->generated);
    lq_jw_key(w, "committed");
    lq_jw_u64(w, a->committed);
    lq_jw_key(w, "accept_rate");
    lq_jw_begin_array(w);
    for (uint32_t k = 1; k < a->block; k++)
        lq_jw_double(w, rate[k - 1], 10);
    lq_jw_end_array(w);
    lq_jw_key(w, "cond_accept_rate");
    lq_jw_begin_array(w);
    for (uint32_t k = 1; k < a->block; k++)
        lq_jw_double(w, cond[k - 1], 10);
    lq_jw_end_array(w);
    lq_jw_key(w, "hist");
    lq_jw_begin_array(w);
    for (uint32_t i = 1; i <= a->block; i++)
        lq_jw_u64(w, a->hist[i]);
    lq_jw_end_array(w);
    lq_jw_key(w, "decode_tok_s");
    lq_jw_double(w, rt_eval_decode_rate(a), 8);
    lq_jw_key(w, "decode_s");
    lq_jw_double(w, a->decode_s, 6);
    lq_jw_key(w, "draft_s");
    lq_jw_double(w, a->draft_s, 6);
    lq_jw_key(w, "verify_s");
    lq_jw_double(w, a->verify_s, 6);
    lq_jw_end_object(w);
}

static int print_json(const cfg_t *C, set_t *sets, size_t ns, const char *dpath[2], uint32_t B, const char *sep_tok,
                      int32_t sep_id, const char *note)
{
    lq_jw *w = lq_jw_new(2);
    lq_jw_begin_object(w);
    lq_jw_key(w, "model");
    lq_jw_string(w, C->model);
    lq_jw_key(w, "source");
    if (C->source)
        lq_jw_string(w, C->source);
    else
        lq_jw_null(w);
    lq_jw_key(w, "settings");
    lq_jw_begin_object(w);
    lq_jw_key(w, "ctx");
    lq_jw_u64(w, C->ctx);
    lq_jw_key(w, "ppl_tokens");
    if (C->ppl_tokens == SIZE_MAX)
        lq_jw_null(w); /* --ppl-tokens all */
    else
        lq_jw_u64(w, C->ppl_tokens);
    lq_jw_key(w, "perplexity");
    lq_jw_bool(w, !C->no_ppl);
    lq_jw_key(w, "prompts");
    lq_jw_u64(w, C->prompts);
    lq_jw_key(w, "prompt_len");
    lq_jw_u64(w, C->plen);
    lq_jw_key(w, "gen_tokens");
    lq_jw_u64(w, C->gen);
    lq_jw_key(w, "block");
    if (B > 1)
        lq_jw_u64(w, B);
    else
        lq_jw_null(w);
    lq_jw_key(w, "seed");
    lq_jw_u64(w, C->seed);
    lq_jw_key(w, "doc_sep");
    if (sep_id >= 0)
        lq_jw_string(w, sep_tok);
    else
        lq_jw_null(w);
    lq_jw_key(w, "doc_sep_id");
    if (sep_id >= 0)
        lq_jw_i64(w, sep_id);
    else
        lq_jw_null(w);
    lq_jw_key(w, "root");
    if (C->root)
        lq_jw_string(w, C->root);
    else
        lq_jw_null(w);
    lq_jw_key(w, "drafter");
    if (dpath[0])
        lq_jw_string(w, dpath[0]);
    else
        lq_jw_null(w);
    lq_jw_key(w, "source_drafter");
    if (dpath[1])
        lq_jw_string(w, dpath[1]);
    else
        lq_jw_null(w);
    lq_jw_key(w, "speed");
    lq_jw_bool(w, !C->no_speed);
    lq_jw_key(w, "threads");
    lq_jw_u64(w, C->threads);
    lq_jw_end_object(w);
    lq_jw_key(w, "notes");
    lq_jw_begin_array(w);
    if (note[0])
        lq_jw_string(w, note);
    lq_jw_end_array(w);
    lq_jw_key(w, "sets");
    lq_jw_begin_array(w);
    for (size_t s = 0; s < ns; s++) {
        set_t *S = &sets[s];
        lq_jw_begin_object(w);
        lq_jw_key(w, "name");
        lq_jw_string(w, S->name);
        lq_jw_key(w, "list");
        if (S->list)
            lq_jw_string(w, S->list);
        else
            lq_jw_null(w);
        lq_jw_key(w, "files");
        lq_jw_u64(w, S->npaths);
        lq_jw_key(w, "documents");
        lq_jw_u64(w, S->docs.n);
        lq_jw_key(w, "tokens");
        lq_jw_u64(w, S->docs.off ? S->docs.off[S->docs.n] : 0);
        lq_jw_key(w, "ppl");
        if (!S->ppl)
            lq_jw_null(w);
        else {
            double pm = exp(S->nll[0] / (double)S->scored), ps = exp(S->nll[1] / (double)S->scored);
            int src = C->source != NULL;
            lq_jw_begin_object(w);
            lq_jw_key(w, "windows");
            lq_jw_u64(w, S->windows);
            lq_jw_key(w, "scored");
            lq_jw_u64(w, S->scored);
            lq_jw_key(w, "model");
            lq_jw_double(w, pm, 10);
            lq_jw_key(w, "source");
            jw_num_or_null(w, src, ps);
            lq_jw_key(w, "rel_increase");
            jw_num_or_null(w, src, pm / ps - 1);
            lq_jw_key(w, "top1_agreement");
            jw_num_or_null(w, src, (double)S->agree / (double)S->scored);
            lq_jw_key(w, "agree");
            if (src)
                lq_jw_u64(w, S->agree);
            else
                lq_jw_null(w);
            lq_jw_key(w, "loss_model");
            lq_jw_double(w, S->nll[0] / (double)S->scored, 10);
            lq_jw_key(w, "loss_source");
            jw_num_or_null(w, src, S->nll[1] / (double)S->scored);
            lq_jw_end_object(w);
        }
        lq_jw_key(w, "dflash");
        if (!S->df[0])
            lq_jw_null(w);
        else {
            lq_jw_begin_object(w);
            lq_jw_key(w, "prompts");
            lq_jw_u64(w, C->prompts);
            lq_jw_key(w, "prompt_len");
            lq_jw_u64(w, C->plen);
            lq_jw_key(w, "gen_tokens");
            lq_jw_u64(w, C->gen);
            lq_jw_key(w, "block");
            lq_jw_u64(w, B);
            lq_jw_key(w, "model");
            jw_accept(w, &S->acc[0], dpath[0]);
            lq_jw_key(w, "source");
            if (S->df[1])
                jw_accept(w, &S->acc[1], dpath[1]);
            else
                lq_jw_null(w);
            lq_jw_key(w, "tau_drop");
            jw_num_or_null(w, S->df[1], rt_eval_tau(&S->acc[1]) - rt_eval_tau(&S->acc[0]));
            lq_jw_end_object(w);
        }
        lq_jw_key(w, "speed");
        if (!S->speed)
            lq_jw_null(w);
        else {
            double pl = rt_eval_decode_rate(&S->plain), df = rt_eval_decode_rate(&S->acc[0]);
            lq_jw_begin_object(w);
            lq_jw_key(w, "plain_tok_s");
            lq_jw_double(w, pl, 8);
            lq_jw_key(w, "dflash_tok_s");
            jw_num_or_null(w, S->df[0], df);
            lq_jw_key(w, "ratio");
            jw_num_or_null(w, S->df[0] && pl > 0, df / pl);
            lq_jw_key(w, "plain_decode_s");
            lq_jw_double(w, S->plain.decode_s, 6);
            lq_jw_key(w, "tokens_equal");
            if (S->df[0])
                lq_jw_bool(w, S->tokens_equal);
            else
                lq_jw_null(w);
            lq_jw_end_object(w);
        }
        lq_jw_key(w, "seconds");
        lq_jw_double(w, S->seconds, 6);
        lq_jw_end_object(w);
    }
    lq_jw_end_array(w);
    lq_jw_end_object(w);
    char *js = NULL;
    size_t jl = 0;
    lq_error err;
    lq_status st = lq_jw_finish(w, &js, &jl, &err);
    lq_jw_free(w);
    if (st != LQ_OK)
        return fail("json", &err);
    fwrite(js, 1, jl, stdout);
    free(js);
    return 0;
}

static void print_rates(const char *who, const rt_eval_accept *a, int conditional)
{
    double rate[RT_MAX_BLOCK], cond[RT_MAX_BLOCK];
    rt_eval_accept_rates(a->hist, a->block, rate, cond);
    printf("    %-22s", who);
    for (uint32_t k = 1; k < a->block; k++) {
        double v = conditional ? cond[k - 1] : rate[k - 1];
        if (isnan(v))
            printf(" %6s", "-"); /* no step reached draft k - 1 */
        else
            printf(" %6.3f", v);
    }
    putchar('\n');
}

static void print_text(const cfg_t *C, const set_t *sets, size_t ns, const char *dpath[2], uint32_t B, const char *note)
{
    printf("model  %s\n", C->model);
    if (C->source)
        printf("source %s\n", C->source);
    if (note[0])
        printf("note: %s\n", note);
    for (size_t s = 0; s < ns; s++) {
        const set_t *S = &sets[s];
        printf("\nset %s: %zu files, %zu documents, %zu tokens\n", S->name, S->npaths, S->docs.n,
               S->docs.off ? S->docs.off[S->docs.n] : 0);
        if (S->ppl) {
            double pm = exp(S->nll[0] / (double)S->scored);
            printf("  perplexity (%zu windows of <= %" PRIu64 " tokens, %zu scored)\n", S->windows, C->ctx, S->scored);
            printf("    model %.4f", pm);
            if (C->source) {
                double ps = exp(S->nll[1] / (double)S->scored);
                printf("  source %.4f  increase %+.3f%%  top-1 agreement %.4f (%zu of %zu)", ps, 100 * (pm / ps - 1),
                       (double)S->agree / (double)S->scored, S->agree, S->scored);
            }
            putchar('\n');
        }
        if (S->df[0]) {
            printf("  dflash: block %u, %" PRIu64 " prompts of %" PRIu64 " tokens, %" PRIu64 " generated each\n", B,
                   C->prompts, C->plen, C->gen);
            for (int k = 0; k < 2; k++)
                if (S->df[k])
                    printf("    %-6s tau %.3f (%zu steps)  drafter %s\n", k ? "source" : "model",
                           rt_eval_tau(&S->acc[k]), S->acc[k].steps, dpath[k]);
            if (S->df[1])
                printf("    tau drop (source - model) %.3f\n", rt_eval_tau(&S->acc[1]) - rt_eval_tau(&S->acc[0]));
            printf("    %-22s", "draft position");
            for (uint32_t k = 1; k < B; k++)
                printf(" %6u", k);
            putchar('\n');
            for (int k = 0; k < 2; k++)
                if (S->df[k]) {
                    print_rates(k ? "source accepted" : "model accepted", &S->acc[k], 0);
                    print_rates(k ? "source P(k | k-1)" : "model P(k | k-1)", &S->acc[k], 1);
                }
        }
        if (S->speed) {
            double pl = rt_eval_decode_rate(&S->plain);
            printf("  decode (%" PRIu64 " threads): plain %.2f tokens/s", C->threads, pl);
            if (S->df[0]) {
                double df = rt_eval_decode_rate(&S->acc[0]);
                printf(", dflash %.2f tokens/s, ratio %.3f; greedy tokens %s", df, pl > 0 ? df / pl : 0.0,
                       S->tokens_equal ? "equal" : "DIFFER");
            }
            putchar('\n');
        }
    }
}

int main(int argc, char **argv)
{
    cfg_t C;
    memset(&C, 0, sizeof(C));
    C.ctx = 512;
    C.ppl_tokens = 16384;
    C.prompts = 16;
    C.plen = 64;
    C.gen = 128;
    C.seed = 1;
    static set_t sets[MAX_SETS];
    static const char *texts[MAX_TEXT];
    size_t ns = 0, ntext = 0;
    int text_set = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0, used = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--no-ppl"))
            C.no_ppl = 1, used = 0;
        else if (!strcmp(a, "--no-dflash"))
            C.no_dflash = 1, used = 0;
        else if (!strcmp(a, "--no-speed"))
            C.no_speed = 1, used = 0;
        else if (!strcmp(a, "--fp32"))
            C.fp32 = 1, used = 0;
        else if (!strcmp(a, "--kv-bf16"))
            C.kv_bf16 = 1, used = 0;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
            quiet = 1, used = 0;
        else if (a[0] == '-' && a[1] == '-' && !v) {
            fprintf(stderr, "mimo-eval: %s: unknown option, or its value is missing\n", a);
            return 2;
        } else if (!strcmp(a, "--source"))
            C.source = v;
        else if (!strcmp(a, "--root"))
            C.root = v;
        else if (!strcmp(a, "--doc-sep"))
            C.doc_sep = v;
        else if (!strcmp(a, "--drafter"))
            C.drafter = v;
        else if (!strcmp(a, "--source-drafter"))
            C.source_drafter = v;
        else if (!strcmp(a, "--text") || !strcmp(a, "--files") || !strcmp(a, "--set")) {
            int is_text = !strcmp(a, "--text");
            if (is_text && ntext == MAX_TEXT) {
                fprintf(stderr, "mimo-eval: more than %d --text files (use --files LIST)\n", MAX_TEXT);
                return 2;
            }
            if (is_text)
                texts[ntext++] = v;
            if (!is_text || text_set < 0) {
                if (ns == MAX_SETS) {
                    fprintf(stderr, "mimo-eval: more than %d sets\n", MAX_SETS);
                    return 2;
                }
                set_t *S = &sets[ns];
                if (is_text) {
                    snprintf(S->name, sizeof(S->name), "text");
                    text_set = (int)ns;
                } else if (!strcmp(a, "--files")) {
                    S->list = v;
                    set_name_of(v, S->name, sizeof(S->name));
                } else {
                    const char *eq = strchr(v, '=');
                    if (!eq || eq == v || !eq[1] || (size_t)(eq - v) >= sizeof(S->name)) {
                        fprintf(stderr, "mimo-eval: --set: expected NAME=LIST, got '%s'\n", v);
                        return 2;
                    }
                    memcpy(S->name, v, (size_t)(eq - v));
                    S->list = eq + 1;
                }
                for (size_t k = 0; k < ns; k++)
                    if (!strcmp(sets[k].name, S->name)) {
                        fprintf(stderr, "mimo-eval: two sets named '%s' (name them with --set NAME=LIST)\n", S->name);
                        return 2;
                    }
                ns++;
            }
        } else if (!strcmp(a, "--ctx"))
            bad = parse_u64(v, 2, 1u << 20, &C.ctx);
        else if (!strcmp(a, "--ppl-tokens")) {
            if (!strcmp(v, "all"))
                C.ppl_tokens = SIZE_MAX;
            else
                bad = parse_u64(v, 1, UINT64_C(1) << 40, &C.ppl_tokens);
        } else if (!strcmp(a, "--prompts"))
            bad = parse_u64(v, 1, 4096, &C.prompts);
        else if (!strcmp(a, "--prompt-len"))
            bad = parse_u64(v, 1, 65536, &C.plen);
        else if (!strcmp(a, "--gen-tokens"))
            bad = parse_u64(v, 1, 65536, &C.gen);
        else if (!strcmp(a, "--block"))
            bad = parse_u64(v, 2, RT_MAX_BLOCK, &C.block);
        else if (!strcmp(a, "--seed"))
            bad = parse_u64(v, 0, UINT64_MAX, &C.seed);
        else if (!strcmp(a, "--threads"))
            bad = parse_u64(v, 1, 256, &C.threads);
        else if (!strcmp(a, "--device"))
            bad = rt_parse_device(v, &C.backend, &C.device);
        else if (!strcmp(a, "--format")) {
            if (!strcmp(v, "json"))
                C.json = 1;
            else if (strcmp(v, "text"))
                bad = 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "mimo-eval: unknown option %s\n", a);
            return 2;
        } else if (!C.model) {
            C.model = a;
            used = 0;
        } else {
            fprintf(stderr, "mimo-eval: more than one MODEL (%s)\n", a);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "mimo-eval: bad value for %s: '%s'\n", a, v);
            return 2;
        }
        i += used;
    }
    if (!C.model || ns == 0) {
        usage(stderr);
        fprintf(stderr, "mimo-eval: give MODEL and at least one text set (--text, --files or --set)\n");
        return 2;
    }
    if (C.no_ppl && C.no_dflash && C.no_speed) {
        fprintf(stderr, "mimo-eval: --no-ppl, --no-dflash and --no-speed together leave nothing to measure\n");
        return 2;
    }
    if (text_set >= 0) {
        sets[text_set].text = texts;
        sets[text_set].ntext = ntext;
    }
    if (!C.threads) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        C.threads = nc > 0 ? (uint64_t)(nc < 256 ? nc : 256) : 1;
    }

    lq_error err;
    lq_error_clear(&err);
    int rc = 0;
    rt_model *mm[2] = {NULL, NULL};
    rt_tokenizer *tok = NULL, *stok = NULL;
    rt_drafter *dr[2] = {NULL, NULL};
    char dpath[2][4200] = {"", ""}, tpath[4200], note[700] = "", what[4400];
    const char *dp[2] = {NULL, NULL};
    int32_t sep_id = -1;
    const char *sep_tok = NULL;
    uint32_t B = 1;

    const rt_model_opts mo = {.backend = C.backend, .device = C.device, .threads = (int)C.threads, .world = 1,
                              .fp32 = C.fp32, .kv_bf16 = C.kv_bf16};
    if (rt_model_open(C.model, &mo, &mm[0], &err) != LQ_OK) {
        rc = fail("model", &err);
        goto done;
    }
    const lq_mimo_config *mc = rt_model_config(mm[0]);
    snprintf(tpath, sizeof(tpath), "%s/tokenizer.json", C.model);
    if (access(tpath, F_OK) != 0) {
        fprintf(stderr, "mimo-eval: %s: EVAL_TOKENIZER: no tokenizer.json: text sets cannot be encoded\n", C.model);
        rc = 3;
        goto done;
    }
    if (rt_tokenizer_open(tpath, &tok, &err) != LQ_OK) {
        rc = fail("tokenizer", &err);
        goto done;
    }
    if (rt_tokenizer_vocab_size(tok) > mc->vocab_size) {
        fprintf(stderr, "mimo-eval: %s: EVAL_VOCAB: the tokenizer has ids up to %zu, the model's vocabulary is %u\n", tpath,
                rt_tokenizer_vocab_size(tok) - 1, mc->vocab_size);
        rc = 3;
        goto done;
    }
    if (C.source) {
        if (rt_model_open(C.source, &mo, &mm[1], &err) != LQ_OK) {
            rc = fail("source", &err);
            goto done;
        }
        const lq_mimo_config *sc = rt_model_config(mm[1]);
        if (sc->vocab_size != mc->vocab_size) {
            fprintf(stderr, "mimo-eval: %s/config.json: EVAL_VOCAB: vocabulary of %u, the model's (%s) is %u\n", C.source,
                    sc->vocab_size, C.model, mc->vocab_size);
            rc = 3;
            goto done;
        }
        /* A source tokenizer, when present, must give every id the same bytes: perplexities of
         * two vocabularies are not comparable even at one size. */
        char sp[4200];
        snprintf(sp, sizeof(sp), "%s/tokenizer.json", C.source);
        if (access(sp, F_OK) == 0) {
            if (rt_tokenizer_open(sp, &stok, &err) != LQ_OK) {
                rc = fail("source tokenizer", &err);
                goto done;
            }
            size_t tv = rt_tokenizer_vocab_size(tok);
            if (rt_tokenizer_vocab_size(stok) != tv) {
                fprintf(stderr, "mimo-eval: %s: EVAL_VOCAB: tokenizer of %zu ids, the model's (%s) has %zu\n", sp,
                        rt_tokenizer_vocab_size(stok), tpath, tv);
                rc = 3;
                goto done;
            }
            for (size_t id = 0; id < tv; id++) {
                size_t la = 0, lb = 0;
                const char *a = rt_tokenizer_token_bytes(tok, (int32_t)id, &la),
                           *b = rt_tokenizer_token_bytes(stok, (int32_t)id, &lb);
                if (la != lb || (la && memcmp(a, b, la)) ||
                    rt_tokenizer_is_special(tok, (int32_t)id) != rt_tokenizer_is_special(stok, (int32_t)id)) {
                    fprintf(stderr, "mimo-eval: %s: EVAL_VOCAB: token %zu differs from the model's tokenizer (%s)\n", sp,
                            id, tpath);
                    rc = 3;
                    goto done;
                }
            }
        }
    }
    /* fit: every window and every prompt plus its generation within the position limit */
    for (int k = 0; k < 2; k++) {
        if (!mm[k])
            continue;
        uint64_t mp = rt_model_config(mm[k])->max_position_embeddings;
        const char *dir = k ? C.source : C.model;
        if (mp && !C.no_ppl && C.ctx > mp) {
            fprintf(stderr, "mimo-eval: %s/config.json: EVAL_CTX_FIT: --ctx %" PRIu64
                            " is above max_position_embeddings %" PRIu64 "\n", dir, C.ctx, mp);
            rc = 3;
            goto done;
        }
        if (mp && (!C.no_dflash || !C.no_speed) && C.plen + C.gen > mp) {
            fprintf(stderr, "mimo-eval: %s/config.json: EVAL_PROMPT_FIT: --prompt-len %" PRIu64 " + --gen-tokens %" PRIu64
                            " is above max_position_embeddings %" PRIu64 "\n", dir, C.plen, C.gen, mp);
            rc = 3;
            goto done;
        }
    }
    /* document separator */
    sep_tok = C.doc_sep ? C.doc_sep : "<|endoftext|>";
    if (!C.doc_sep || strcmp(C.doc_sep, "none")) {
        sep_id = rt_tokenizer_find(tok, sep_tok);
        if (sep_id < 0 && C.doc_sep) {
            fprintf(stderr, "mimo-eval: %s: EVAL_DOC_SEP: no token '%s' (--doc-sep)\n", tpath, C.doc_sep);
            rc = 3;
            goto done;
        }
        if (sep_id >= 0 && (uint32_t)sep_id >= mc->vocab_size) {
            fprintf(stderr, "mimo-eval: %s: EVAL_DOC_SEP: '%s' is id %d, outside the model's vocabulary of %u\n", tpath,
                    sep_tok, sep_id, mc->vocab_size);
            rc = 3;
            goto done;
        }
    }
    /* drafters */
    if (!C.no_dflash) {
        if (C.drafter)
            snprintf(dpath[0], sizeof(dpath[0]), "%s", C.drafter);
        else
            snprintf(dpath[0], sizeof(dpath[0]), "%s/dflash", C.model);
        if (!C.drafter && !is_dir(dpath[0])) {
            snprintf(note, sizeof(note), "no drafter (%.500s is not a directory): DFlash acceptance skipped", dpath[0]);
            dpath[0][0] = 0;
        } else {
            if (rt_drafter_open(dpath[0], mm[0], NULL, &dr[0], &err) != LQ_OK) {
                rc = fail("drafter", &err);
                goto done;
            }
            B = C.block ? (uint32_t)C.block : rt_drafter_config(dr[0])->block_size;
            if (B < 2 || B > RT_MAX_BLOCK) {
                fprintf(stderr, "mimo-eval: %s: EVAL_BLOCK: block_size %u outside 2..%d (give --block)\n", dpath[0], B,
                        RT_MAX_BLOCK);
                rc = 3;
                goto done;
            }
            dp[0] = dpath[0];
            if (mm[1]) {
                if (C.source_drafter)
                    snprintf(dpath[1], sizeof(dpath[1]), "%s", C.source_drafter);
                else {
                    snprintf(dpath[1], sizeof(dpath[1]), "%s/dflash", C.source);
                    if (!is_dir(dpath[1])) {
                        snprintf(note, sizeof(note), "the source has no dflash/: its DFlash acceptance uses the model's "
                                                     "drafter %.500s", dpath[0]);
                        snprintf(dpath[1], sizeof(dpath[1]), "%s", dpath[0]);
                    }
                }
                if (rt_drafter_open(dpath[1], mm[1], NULL, &dr[1], &err) != LQ_OK) {
                    rc = fail("source drafter", &err);
                    goto done;
                }
                dp[1] = dpath[1];
            }
        }
    }
    if (!C.no_dflash && !dr[0] && C.no_speed && C.no_ppl) {
        fprintf(stderr, "mimo-eval: %s; nothing else to measure\n", note);
        rc = 3;
        goto done;
    }
    if (note[0])
        progress("%s", note);
    /* every set's documents first: a bad list or file stops the run before any long pass */
    for (size_t s = 0; s < ns; s++) {
        set_t *S = &sets[s];
        double t0 = now_s();
        if (S->list) {
            if (rt_eval_list_read(S->list, C.root, &S->paths, &S->npaths, &err) != LQ_OK) {
                snprintf(what, sizeof(what), "set %s", S->name);
                rc = fail(what, &err);
                goto done;
            }
        } else {
            S->paths = calloc(S->ntext, sizeof(char *));
            for (size_t i = 0; S->paths && i < S->ntext; i++)
                if ((S->paths[S->npaths] = strdup(S->text[i])) != NULL)
                    S->npaths++;
            if (!S->paths || S->npaths != S->ntext) {
                fprintf(stderr, "mimo-eval: out of memory\n");
                rc = 3;
                goto done;
            }
        }
        if (S->npaths == 0) {
            fprintf(stderr, "mimo-eval: %s: EVAL_EMPTY_SET: set %s lists no file\n", S->list ? S->list : "--text",
                    S->name);
            rc = 3;
            goto done;
        }
        if (rt_eval_docs_load(tok, S->paths, S->npaths, sep_id, &S->docs, &err) != LQ_OK) {
            snprintf(what, sizeof(what), "set %.255s%s%.4000s", S->name, S->list ? ", list " : "", S->list ? S->list : "");
            rc = fail(what, &err);
            goto done;
        }
        progress("set %s: %zu documents, %zu tokens (%.1f s)", S->name, S->docs.n, S->docs.off[S->docs.n],
                 now_s() - t0);
    }
    for (size_t s = 0; s < ns && rc == 0; s++)
        rc = run_set(&C, &sets[s], mm, dr, B);
    if (rc)
        goto done;
    if (C.json)
        rc = print_json(&C, sets, ns, dp, B, sep_tok, sep_id, note);
    else
        print_text(&C, sets, ns, dp, B, note);
    fflush(stdout);
    for (size_t s = 0; s < ns && rc == 0; s++)
        if (sets[s].speed && sets[s].df[0] && !sets[s].tokens_equal) {
            fprintf(stderr, "mimo-eval: set %s: greedy DFlash tokens differ from plain decoding (prompt %zu, token %zu)\n",
                    sets[s].name, sets[s].mismatch_prompt, sets[s].mismatch_token);
            rc = 1;
        }
done:
    for (size_t s = 0; s < ns; s++) {
        rt_eval_list_free(sets[s].paths, sets[s].npaths);
        rt_eval_docs_free(&sets[s].docs);
    }
    rt_drafter_close(dr[0]);
    rt_drafter_close(dr[1]);
    rt_tokenizer_close(tok);
    rt_tokenizer_close(stok);
    rt_model_close(mm[0]);
    rt_model_close(mm[1]);
    return rc;
}
