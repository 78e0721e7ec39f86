/* The evaluation library (runtime/eval.h).
 * usage: test_eval MKFIXTURE GOLDEN_ROOT TOKENIZER_JSON
 * Expected values and where they come from:
 *  - rt_eval_nll on the 48-token golden prompt: the NLL sums computed here from transformers'
 *    float32 logits of the tiny BF16 fixture (fixtures/golden/tiny-bf16) and of the tiny FP8
 *    fixture (fixtures/golden/tiny-fp8), with this file's own log-softmax, and the top-1 agreement
 *    counted from the two golden logit sets' argmaxes. The runtime matches those logits to ~1e-6
 *    relative L2 (tests/runtime/test_golden.c), so the NLL sums (47 terms of ~8.3 nats) agree to
 *    about 1e-5 (measured 1.2e-6 and 4.9e-7): tolerance 2e-4 absolute on each sum;
 *  - a model scored against itself: both sums bit-identical, agreement = every position;
 *  - a 150-token window (three internal steps, beyond the SWA window of 16): the NLL computed here
 *    from one rt_forward of the whole window (a different path: no chunking by the evaluator),
 *    relative 1e-12;
 *  - windows and prompts on small synthetic sets: worked out by hand in the comments below; prompt
 *    starts from the documented rule (rt_rng seeded with the seed, floor(u * (len - P + 1)));
 *  - per-position acceptance rates of a histogram worked out by hand;
 *  - greedy generation on the tiny fixture's drafter: the PyTorch oracle's tokens and per-step
 *    acceptance (fixtures/golden/tiny-dflash: tokens after case_ids[:40], B = 8, no draft ever
 *    accepted; the first 20 here), and plain decoding equal to its greedy_tokens;
 *  - list files and documents: the paths and ids written out here (the tokenizer's own encode),
 *    and the errors naming the file with their rule. */
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "../harness.h"
#include "../runtime/golden_io.h"
#include "libquant/libquant.h"
#include "runtime/eval.h"

static char eb[1600];
#define ERRS(e) lq_error_format(&(e), eb, sizeof(eb))

/* -log softmax(x)[t] in long double, written independently of the evaluator. */
static double ref_nll(const float *x, size_t V, int32_t t)
{
    long double mx = x[0], s = 0;
    for (size_t i = 1; i < V; i++)
        if (x[i] > mx)
            mx = x[i];
    for (size_t i = 0; i < V; i++)
        s += expl((long double)x[i] - mx);
    return (double)(mx + logl(s) - (long double)x[t]);
}

static size_t ref_argmax(const float *x, size_t V)
{
    size_t b = 0;
    for (size_t i = 1; i < V; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

static void write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(text, 1, n, f) == n);
        fclose(f);
    }
}

static void test_windows(void)
{
    /* lengths 5, 1, 12, 2, 7 with ctx 4, by hand: doc 0 -> [0,4) (its last piece, 1 token, is
     * not a window); doc 1 -> none; doc 2 -> [0,4) [4,8) [8,12); doc 3 -> [0,2); doc 4 -> [0,4)
     * [4,7). Scored 3 + 9 + 1 + 3 + 2 = 18. Taken round by round: the first windows of docs 0, 2,
     * 3, 4, then the second windows of docs 2 and 4, then the third of doc 2. */
    const size_t len[5] = {5, 1, 12, 2, 7};
    const rt_eval_span all[7] = {{0, 0, 4}, {2, 0, 4}, {3, 0, 2}, {4, 0, 4}, {2, 4, 4}, {4, 4, 3}, {2, 8, 4}};
    rt_eval_span *w = NULL;
    size_t nw = 0, sc = 0;
    lq_error err;
    CHECK(rt_eval_windows(len, 5, 4, SIZE_MAX, &w, &nw, &sc, &err) == LQ_OK);
    CHECK_EQ_U64(nw, 7);
    CHECK_EQ_U64(sc, 18);
    for (size_t i = 0; i < nw && i < 7 && w; i++)
        CHECK_MSG(w[i].doc == all[i].doc && w[i].start == all[i].start && w[i].len == all[i].len,
                  "window %zu: (%zu, %zu, %zu), expected (%zu, %zu, %zu)", i, w[i].doc, w[i].start, w[i].len,
                  all[i].doc, all[i].start, all[i].len);
    free(w);
    /* a budget of 10: exactly the four first windows (3 + 3 + 1 + 3) */
    CHECK(rt_eval_windows(len, 5, 4, 10, &w, &nw, &sc, &err) == LQ_OK);
    CHECK_EQ_U64(nw, 4);
    CHECK_EQ_U64(sc, 10);
    free(w);
    /* a budget of 11: the fifth window (doc 2 at 4) cut to 2 tokens (1 scored) */
    CHECK(rt_eval_windows(len, 5, 4, 11, &w, &nw, &sc, &err) == LQ_OK);
    CHECK_EQ_U64(nw, 5);
    CHECK_EQ_U64(sc, 11);
    if (w && nw == 5)
        CHECK(w[4].doc == 2 && w[4].start == 4 && w[4].len == 2);
    free(w);
    /* a budget of 9: 3 + 3 + 1, then doc 4's first window cut to 3 tokens (2 scored) */
    CHECK(rt_eval_windows(len, 5, 4, 9, &w, &nw, &sc, &err) == LQ_OK);
    CHECK_EQ_U64(nw, 4);
    CHECK_EQ_U64(sc, 9);
    if (w && nw == 4)
        CHECK(w[3].doc == 4 && w[3].start == 0 && w[3].len == 3);
    free(w);
    /* a budget of 7: three whole windows */
    CHECK(rt_eval_windows(len, 5, 4, 7, &w, &nw, &sc, &err) == LQ_OK);
    CHECK_EQ_U64(nw, 3);
    CHECK_EQ_U64(sc, 7);
    free(w);
    /* more than the set holds: everything */
    CHECK(rt_eval_windows(len, 5, 4, 1000, &w, &nw, &sc, &err) == LQ_OK);
    CHECK_EQ_U64(nw, 7);
    CHECK_EQ_U64(sc, 18);
    free(w);
    /* ctx 2: every pair, e.g. doc 0 of 5 -> [0,2) [2,4) (token 4 alone is dropped) */
    CHECK(rt_eval_windows(len, 1, 2, SIZE_MAX, &w, &nw, &sc, &err) == LQ_OK);
    CHECK_EQ_U64(nw, 2);
    CHECK_EQ_U64(sc, 2);
    free(w);
    CHECK(rt_eval_windows(len, 5, 1, SIZE_MAX, &w, &nw, &sc, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "EVAL_WINDOW");
    const size_t ones[2] = {1, 1};
    CHECK(rt_eval_windows(ones, 2, 4, SIZE_MAX, &w, &nw, &sc, &err) == LQ_OK);
    CHECK(nw == 0 && sc == 0 && w == NULL);
}

static void test_prompts(void)
{
    lq_error err;
    rt_eval_span p[4];
    /* lengths 5, 3, 9, 4, 6, 3 prompts of 4 (documents need 5 tokens), by hand: prompt 0 -> doc
     * floor(0) = 0 (5 tokens, fits); prompt 1 -> floor(5/3) = 1 (3 tokens) -> 2 (9); prompt 2 ->
     * floor(10/3) = 3 (4 tokens) -> 4 (6). */
    const size_t len[5] = {5, 3, 9, 4, 6};
    const size_t doc[3] = {0, 2, 4};
    CHECK(rt_eval_prompts(len, 5, 3, 4, 7, p, &err) == LQ_OK);
    rt_rng r;
    rt_rng_seed(&r, 7);
    for (int i = 0; i < 3; i++) {
        size_t range = len[doc[i]] - 4 + 1;
        size_t s = (size_t)floor(rt_rng_uniform(&r) * (double)range);
        CHECK_MSG(p[i].doc == doc[i] && p[i].start == s && p[i].len == 4, "prompt %d: doc %zu start %zu, expected %zu %zu",
                  i, p[i].doc, p[i].start, doc[i], s);
        CHECK(p[i].start + p[i].len <= len[p[i].doc]);
    }
    /* wrap-around: lengths 6, 2, 3 and 2 prompts of 4: prompt 1 -> floor(3/2) = 1 (2) -> 2 (3) -> 0 */
    const size_t len2[3] = {6, 2, 3};
    CHECK(rt_eval_prompts(len2, 3, 2, 4, 1, p, &err) == LQ_OK);
    CHECK(p[0].doc == 0 && p[1].doc == 0);
    /* more prompts than documents: 4 prompts over 2 documents -> 0, 0, 1, 1 */
    const size_t len3[2] = {10, 10};
    CHECK(rt_eval_prompts(len3, 2, 4, 3, 1, p, &err) == LQ_OK);
    CHECK(p[0].doc == 0 && p[1].doc == 0 && p[2].doc == 1 && p[3].doc == 1);
    /* another seed moves the starts, not the documents (8 values in 0..7 each; equal for 4 of 4
     * with seeds 1 and 2 would be a 1-in-4096 coincidence, and the draws are fixed) */
    rt_eval_span q[4];
    CHECK(rt_eval_prompts(len3, 2, 4, 3, 2, q, &err) == LQ_OK);
    int same = 1;
    for (int i = 0; i < 4; i++) {
        CHECK(q[i].doc == p[i].doc);
        same &= q[i].start == p[i].start;
    }
    CHECK(!same);
    /* nothing fits */
    const size_t len4[2] = {3, 4};
    CHECK(rt_eval_prompts(len4, 2, 1, 4, 1, p, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "EVAL_PROMPT_FIT");
}

static void test_rates(void)
{
    /* B = 4, steps committing 1..4 tokens: 3, 2, 4, 1 (10 steps, 23 tokens). By hand: draft 1
     * accepted in steps committing >= 2: 7 of 10; draft 2: >= 3: 5 of 10; draft 3: >= 4: 1 of 10.
     * Conditional: 7/10, 5/7, 1/5. */
    size_t h[RT_MAX_BLOCK + 1] = {0, 3, 2, 4, 1};
    double rate[3], cond[3];
    rt_eval_accept_rates(h, 4, rate, cond);
    CHECK_NEAR(rate[0], 0.7, 1e-15, 0);
    CHECK_NEAR(rate[1], 0.5, 1e-15, 0);
    CHECK_NEAR(rate[2], 0.1, 1e-15, 0);
    CHECK_NEAR(cond[0], 0.7, 1e-15, 0);
    CHECK_NEAR(cond[1], 5.0 / 7.0, 1e-15, 0);
    CHECK_NEAR(cond[2], 0.2, 1e-15, 0);
    rt_eval_accept a;
    memset(&a, 0, sizeof(a));
    a.block = 4;
    a.steps = 10;
    a.committed = 3 * 1 + 2 * 2 + 4 * 3 + 1 * 4;
    CHECK_NEAR(rt_eval_tau(&a), 2.3, 1e-15, 0);
    /* nothing ever accepted: rates 0, conditionals beyond the first undefined (NaN) */
    size_t z[RT_MAX_BLOCK + 1] = {0, 5, 0, 0, 0};
    rt_eval_accept_rates(z, 4, rate, cond);
    CHECK(rate[0] == 0 && rate[1] == 0 && rate[2] == 0 && cond[0] == 0 && isnan(cond[1]) && isnan(cond[2]));
    size_t e[RT_MAX_BLOCK + 1] = {0};
    rt_eval_accept_rates(e, 4, rate, cond);
    CHECK(isnan(rate[0]) && isnan(cond[0]));
}

static void test_lists_docs(const char *root, const char *tokfile)
{
    char p[8][900];
    lq_error err;
    const char *names[] = {"a.txt", "b.txt", "empty.txt", "bad.txt", "list.txt", "rel.txt", "nul.txt", "none.txt"};
    for (int i = 0; i < 8; i++)
        snprintf(p[i], sizeof(p[i]), "%s/%s", root, names[i]);
    const char *ta = "def f(x):\n    return x + 1\n", *tb = "Hello world<|endoftext|>again";
    write_file(p[0], ta, strlen(ta));
    write_file(p[1], tb, strlen(tb));
    write_file(p[2], "", 0);
    write_file(p[3], "ok \xff\xfe", 5);
    /* comments, blank lines, blanks around a path, CRLF, a line without a final newline */
    char list[2048];
    int ll = snprintf(list, sizeof(list), "# held out\n\n  %s  \r\n\t# indented comment\n%s", p[0], p[1]);
    write_file(p[4], list, (size_t)ll);
    write_file(p[5], "a.txt\n/b.txt\n", 13);
    write_file(p[6], "a.txt\n\0b\n", 9);
    char **paths = NULL;
    size_t n = 0;
    CHECK(rt_eval_list_read(p[4], NULL, &paths, &n, &err) == LQ_OK);
    CHECK_EQ_U64(n, 2);
    if (n == 2) {
        CHECK_STR(paths[0], p[0]);
        CHECK_STR(paths[1], p[1]);
    }
    rt_eval_list_free(paths, n);
    /* root: "a.txt" -> ROOT/a.txt, "/b.txt" -> ROOT/b.txt; a root with a trailing slash too */
    char r2[900];
    snprintf(r2, sizeof(r2), "%s/", root);
    for (int k = 0; k < 2; k++) {
        CHECK(rt_eval_list_read(p[5], k ? r2 : root, &paths, &n, &err) == LQ_OK);
        CHECK_EQ_U64(n, 2);
        if (n == 2) {
            CHECK_STR(paths[0], p[0]);
            CHECK_STR(paths[1], p[1]);
        }
        rt_eval_list_free(paths, n);
    }
    CHECK(rt_eval_list_read(p[7], NULL, &paths, &n, &err) == LQ_ERR_IO);
    CHECK_STR(err.rule, "EVAL_LIST");
    CHECK_STR(err.file, p[7]);
    CHECK(rt_eval_list_read(p[6], NULL, &paths, &n, &err) == LQ_ERR_CORRUPT);
    CHECK_STR(err.rule, "EVAL_LIST_LINE");
    CHECK(strstr(err.msg, "line 2") != NULL);

    rt_tokenizer *t = NULL;
    CHECK_MSG(rt_tokenizer_open(tokfile, &t, &err) == LQ_OK, "%s", ERRS(err));
    if (!t)
        return;
    int32_t sep = rt_tokenizer_find(t, "<|endoftext|>");
    CHECK(sep >= 0);
    int32_t *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    CHECK(rt_tokenizer_encode(t, ta, strlen(ta), &ia, &na, &err) == LQ_OK);
    CHECK(rt_tokenizer_encode(t, tb, strlen(tb), &ib, &nb, &err) == LQ_OK);
    char *two[2] = {p[0], p[1]};
    rt_eval_docs d;
    CHECK(rt_eval_docs_load(t, two, 2, sep, &d, &err) == LQ_OK);
    CHECK_EQ_U64(d.n, 2);
    if (d.off && ia && ib) {
        CHECK(d.off[0] == 0 && d.off[1] == 1 + na && d.off[2] == 2 + na + nb);
        CHECK(d.ids[0] == sep && d.ids[1 + na] == sep);
        CHECK(memcmp(d.ids + 1, ia, na * 4) == 0 && memcmp(d.ids + 2 + na, ib, nb * 4) == 0);
    }
    rt_eval_docs_free(&d);
    /* no separator */
    CHECK(rt_eval_docs_load(t, two, 2, -1, &d, &err) == LQ_OK);
    if (d.off && ia)
        CHECK(d.off[1] == na && d.off[2] == na + nb && memcmp(d.ids, ia, na * 4) == 0);
    rt_eval_docs_free(&d);
    /* errors name the file */
    const struct {
        int idx;
        lq_status st;
        const char *rule;
    } bad[] = {{7, LQ_ERR_IO, "EVAL_READ"}, {2, LQ_ERR_CORRUPT, "EVAL_EMPTY_DOC"}, {3, LQ_ERR_INVALID_ARGUMENT, "TOK_INPUT_UTF8"}};
    for (int k = 0; k < 3; k++) {
        char *one[2] = {p[0], p[bad[k].idx]};
        CHECK(rt_eval_docs_load(t, one, 2, sep, &d, &err) == bad[k].st);
        CHECK_STR(err.rule, bad[k].rule);
        CHECK_STR(err.file, p[bad[k].idx]);
        CHECK(d.ids == NULL && d.off == NULL && d.n == 0);
    }
    free(ia), free(ib);
    rt_tokenizer_close(t);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: test_eval MKFIXTURE GOLDEN_ROOT TOKENIZER_JSON\n");
        return 2;
    }
    (void)rel; /* golden_io.h's comparison helper; this file compares sums instead */
    test_windows();
    test_prompts();
    test_rates();
    char root[] = "/tmp/mimo-eval-XXXXXX", cmd[3000], bf[700], f8[700], gd[3][900];
    CHECK(mkdtemp(root) != NULL);
    test_lists_docs(root, argv[3]);

    snprintf(bf, sizeof(bf), "%s/bf16", root);
    snprintf(f8, sizeof(f8), "%s/fp8", root);
    snprintf(cmd, sizeof(cmd),
             "'%s' --preset tiny --variant bf16 --out '%s' -q >/dev/null && "
             "'%s' --preset tiny --variant fp8 --no-drafter --out '%s' -q >/dev/null",
             argv[1], bf, argv[1], f8);
    CHECK(system(cmd) == 0);
    snprintf(gd[0], sizeof(gd[0]), "%s/tiny-bf16", argv[2]);
    snprintf(gd[1], sizeof(gd[1]), "%s/tiny-fp8", argv[2]);
    snprintf(gd[2], sizeof(gd[2]), "%s/tiny-dflash", argv[2]);
    size_t lp, l0, l1, lc, ldt, lgt;
    int32_t *prompt = load_zst(gd[0], "prompt.i32.zst", &lp), *cids = load_zst(gd[2], "case_ids.i32.zst", &lc),
            *dtok = load_zst(gd[2], "dflash_tokens.i32.zst", &ldt), *gtok = load_zst(gd[2], "greedy_tokens.i32.zst", &lgt);
    float *g0 = load_zst(gd[0], "logits.f32.zst", &l0), *g1 = load_zst(gd[1], "logits.f32.zst", &l1);
    CHECK(prompt && cids && dtok && gtok && g0 && g1);
    lq_error err;
    lq_error_clear(&err);
    rt_model *mb = NULL, *m8 = NULL;
    CHECK_MSG(rt_model_open(bf, NULL, &mb, &err) == LQ_OK, "%s", ERRS(err));
    CHECK_MSG(rt_model_open(f8, NULL, &m8, &err) == LQ_OK, "%s", ERRS(err));
    if (!mb || !m8 || !prompt || !cids || !dtok || !gtok || !g0 || !g1)
        return th_finish("test_eval");
    const size_t V = rt_model_config(mb)->vocab_size, n = lp / 4;
    CHECK_EQ_U64(n, 48);
    CHECK_EQ_U64(l0, n * V * 4);
    CHECK_EQ_U64(l1, n * V * 4);
    rt_opts o = {.threads = 2};

    /* 1. the golden prompt, bf16 model against the fp8 one */
    double e0 = 0, e1 = 0;
    size_t agree = 0;
    for (size_t t = 0; t + 1 < n; t++) {
        e0 += ref_nll(g0 + t * V, V, prompt[t + 1]);
        e1 += ref_nll(g1 + t * V, V, prompt[t + 1]);
        agree += ref_argmax(g0 + t * V, V) == ref_argmax(g1 + t * V, V);
    }
    rt_eval_nll_result r;
    CHECK_MSG(rt_eval_nll(mb, m8, prompt, n, &o, &r, &err) == LQ_OK, "%s", ERRS(err));
    CHECK_EQ_U64(r.scored, 47);
    CHECK_NEAR(r.nll[0], e0, 2e-4, 0);
    CHECK_NEAR(r.nll[1], e1, 2e-4, 0);
    CHECK_EQ_U64(r.agree, agree);
    printf("golden prompt: NLL bf16 %.6f (transformers %.6f, diff %.2e), fp8 %.6f (%.6f, diff %.2e), "
           "top-1 agreement %zu of 47 (goldens: %zu); ppl %.2f / %.2f\n",
           r.nll[0], e0, r.nll[0] - e0, r.nll[1], e1, r.nll[1] - e1, r.agree, agree, exp(r.nll[0] / 47),
           exp(r.nll[1] / 47));
    /* the model alone gives the same first sum */
    rt_eval_nll_result r1;
    CHECK(rt_eval_nll(mb, NULL, prompt, n, &o, &r1, &err) == LQ_OK);
    CHECK(r1.nll[0] == r.nll[0] && r1.nll[1] == 0 && r1.agree == 0 && r1.scored == 47);
    /* against itself: identical sums, every position agrees */
    CHECK(rt_eval_nll(mb, mb, prompt, n, &o, &r1, &err) == LQ_OK);
    CHECK(r1.nll[0] == r1.nll[1] && r1.nll[0] == r.nll[0]);
    CHECK_EQ_U64(r1.agree, 47);

    /* 2. a 150-token window (steps of 64, 64, 22) against one rt_forward of the whole window */
    int32_t w150[150];
    for (int i = 0; i < 150; i++)
        w150[i] = cids[i % 101] ^ (i >= 101 ? 1 : 0);
    float *lg = malloc(150 * V * sizeof(float));
    CHECK(lg && rt_forward(mb, w150, 150, &o, lg, NULL, &err) == LQ_OK);
    double e150 = 0;
    for (size_t t = 0; lg && t < 149; t++)
        e150 += ref_nll(lg + t * V, V, w150[t + 1]);
    CHECK(rt_eval_nll(mb, NULL, w150, 150, &o, &r1, &err) == LQ_OK);
    CHECK_NEAR(r1.nll[0], e150, 0, 1e-12);
    CHECK_EQ_U64(r1.scored, 149);
    printf("150-token window: NLL %.9f, recomputed from one forward %.9f\n", r1.nll[0], e150);
    free(lg);
    /* bad windows */
    CHECK(rt_eval_nll(mb, NULL, prompt, 1, &o, &r1, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "EVAL_WINDOW");
    int32_t out_of_vocab[3] = {1, (int32_t)V, 2};
    CHECK(rt_eval_nll(mb, NULL, out_of_vocab, 3, &o, &r1, &err) != LQ_OK);
    CHECK_STR(err.rule, "RT_TOKEN");

    /* 3. generation against the PyTorch oracle (48 tokens after case_ids[:40], B = 8, no draft ever
     * accepted): greedy output is prefix-consistent, so the first 20 tokens are the oracle's first
     * 20, made in 19 steps of one token (kept short: a verify costs B forwards, slow under ASan) */
    char ddir[800];
    snprintf(ddir, sizeof(ddir), "%s/dflash", bf);
    rt_drafter *dr = NULL;
    CHECK_MSG(rt_drafter_open(ddir, mb, NULL, &dr, &err) == LQ_OK, "%s", ERRS(err));
    int32_t out[20], outp[20];
    rt_gen_stats gs;
    rt_eval_accept acc, pl;
    memset(&acc, 0, sizeof(acc));
    memset(&pl, 0, sizeof(pl));
    if (dr) {
        CHECK_MSG(rt_eval_generate(mb, dr, cids, 40, 20, 8, &o, out, &gs, &acc, &err) == LQ_OK, "%s", ERRS(err));
        CHECK(memcmp(out, dtok, sizeof(out)) == 0);
        CHECK_EQ_U64(gs.steps, 19);
        CHECK_EQ_U64(gs.accept_hist[1], 19);
        /* a second run adds to the sums: 5 tokens, 4 steps */
        CHECK(rt_eval_generate(mb, dr, cids, 40, 5, 0, &o, NULL, &gs, &acc, &err) == LQ_OK);
        CHECK_EQ_U64(gs.steps, 4);
        CHECK_EQ_U64(acc.block, 8);
        CHECK_EQ_U64(acc.runs, 2);
        CHECK_EQ_U64(acc.steps, 23);
        CHECK_EQ_U64(acc.generated, 25);
        CHECK_EQ_U64(acc.committed, 23);
        CHECK_EQ_U64(acc.hist[1], 23);
        CHECK(rt_eval_tau(&acc) == 1.0);
        /* plain decoding equals transformers' greedy generate; adding it to DFlash sums is refused */
        CHECK(rt_eval_generate(mb, NULL, cids, 40, 20, 0, &o, outp, NULL, &pl, &err) == LQ_OK);
        CHECK(memcmp(outp, gtok, sizeof(outp)) == 0);
        CHECK(pl.block == 1 && pl.steps == 19 && pl.committed == 19 && pl.hist[1] == 19);
        CHECK(rt_eval_decode_rate(&pl) > 0);
        CHECK(rt_eval_generate(mb, NULL, cids, 40, 4, 0, &o, NULL, NULL, &acc, &err) == LQ_ERR_INVALID_ARGUMENT);
        CHECK_STR(err.rule, "EVAL_BLOCK");
        CHECK(rt_eval_generate(mb, dr, cids, 40, 0, 0, &o, NULL, NULL, NULL, &err) == LQ_ERR_INVALID_ARGUMENT);
        printf("generation: 20 DFlash tokens equal the oracle's, 19 steps of 1 token; plain equals transformers' "
               "greedy; plain %.1f tokens/s\n", rt_eval_decode_rate(&pl));
    }
    rt_drafter_close(dr);
    rt_model_close(mb);
    rt_model_close(m8);
    free(prompt), free(cids), free(dtok), free(gtok), free(g0), free(g1);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return th_finish("test_eval");
}
