/* mimo-eval end to end on the trained nano model (fixtures/nano/bf16, decompressed here) and the
 * tiny fixture.
 * usage: test_mimo_eval MKFIXTURE MIMO_EVAL MIMO_RUN SOURCE_ROOT
 * The text set is a copy of a few of the repository's own files (code and prose the nano model
 * never saw in training), listed by relative path with --root. Expected values and where they come
 * from:
 *  - documents and tokens: this file's own encoding with the model's tokenizer, one
 *    <|endoftext|> before each document;
 *  - perplexity: recomputed here from one rt_forward per window (windows cut by this file from the
 *    documented rule) with this file's own log-softmax, relative 1e-8 (the JSON carries 10
 *    significant digits); the model as its own source: increase exactly 0, top-1 agreement 1;
 *  - DFlash: each prompt (documents and starts chosen here by the documented rule: document
 *    floor(i * ndocs / N), start floor(u * (len - P + 1)) from rt_rng(seed)) run through mimo-run
 *    --prompt-ids --ignore-eos --format json: mimo-eval's histogram and steps equal the sums of
 *    mimo-run's, tau = committed / steps, per-position rates recomputed here from the summed
 *    histogram; the greedy tokens of plain decoding (mimo-run --no-dflash) equal DFlash's;
 *  - sanity of the trained model: perplexity below 1000 (a uniform guess over its 8192 ids gives
 *    8192; a wrong tokenizer or model gives thousands; transformers with the tokenizers library
 *    gives 130.56 on the first 300 tokens of golden_tiny.py, a docstring unlike the training code,
 *    and 8.61 on Python's json/decoder.py), and at least one draft accepted (the trained drafter's
 *    tau is 3-4 on code prompts, MODEL_CARD.md);
 *  - bad input exits 3 naming the file and rule, usage errors exit 2. */
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../harness.h"
#include "../runtime/golden_io.h"
#include "libquant/libquant.h"
#include "runtime/model.h"
#include "runtime/sample.h"
#include "runtime/tokenizer.h"

static char *run(const char *cmd, int *rc)
{
    FILE *p = popen(cmd, "r");
    if (!p) {
        *rc = -1;
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, got;
    char *b = malloc(cap + 1);
    while (b && (got = fread(b + n, 1, cap - n, p)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(b, (cap *= 2) + 1);
            if (!nb)
                break;
            b = nb;
        }
    }
    int st = pclose(p);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (b)
        b[n] = 0;
    return b;
}

static int unzst(const char *dir, const char *name, const char *out)
{
    size_t n = 0;
    void *b = load_zst(dir, name, &n);
    FILE *f = b ? fopen(out, "wb") : NULL;
    int ok = f && fwrite(b, 1, n, f) == n;
    if (f)
        ok &= fclose(f) == 0;
    free(b);
    return ok ? 0 : -1;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = b ? fread(b, 1, (size_t)n, f) : 0;
    fclose(f);
    if (b)
        b[*len] = 0;
    return b;
}

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

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = lq_json_get(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

typedef struct runres {
    int32_t tok[256];
    size_t n, steps, hist[65];
} runres;

static int parse_run(const char *out, runres *r)
{
    cJSON *j = NULL;
    lq_error err;
    memset(r, 0, sizeof(*r));
    if (!out || lq_json_parse(out, strlen(out), NULL, "mimo-run output", &j, &err) != LQ_OK)
        return -1;
    const cJSON *e, *t = lq_json_get(j, "tokens"), *h = lq_json_get(j, "accept_hist");
    uint64_t v;
    size_t i = 1;
    cJSON_ArrayForEach(e, t) if (lq_json_u64(e, &v) == 0 && r->n < 256) r->tok[r->n++] = (int32_t)v;
    cJSON_ArrayForEach(e, h) if (lq_json_u64(e, &v) == 0 && i < 65) r->hist[i++] = v;
    int ok = lq_json_u64(lq_json_get(j, "steps"), &v) == 0;
    r->steps = ok ? v : 0;
    cJSON_Delete(j);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: test_mimo_eval MKFIXTURE MIMO_EVAL MIMO_RUN SOURCE_ROOT\n");
        return 2;
    }
    (void)rel; /* golden_io.h is used for its zstd loader only */
    const char *mk = argv[1], *ev = argv[2], *mr = argv[3], *src = argv[4];
    char root[] = "/tmp/mimo-evale2e-XXXXXX", cmd[8192], nano[600], nsrc[700], docs[600], list[600], tp[800];
    CHECK(mkdtemp(root) != NULL);
    snprintf(nano, sizeof(nano), "%s/nano", root);
    snprintf(nsrc, sizeof(nsrc), "%s/fixtures/nano/bf16", src);
    snprintf(docs, sizeof(docs), "%s/docs", root);
    snprintf(list, sizeof(list), "%s/set.txt", root);
    /* the nano model, decompressed next to its small files */
    snprintf(cmd, sizeof(cmd),
             "mkdir -p '%s/dflash' '%s' && cp '%s/config.json' '%s/tokenizer.json' '%s/' && "
             "cp '%s/dflash/config.json' '%s/dflash/mask_embedding.pt' '%s/dflash/model.safetensors.index.json' "
             "'%s/dflash/'",
             nano, docs, nsrc, nsrc, nano, nsrc, nsrc, nsrc, nano);
    CHECK(system(cmd) == 0);
    char o1[800], o2[800], d1[800];
    snprintf(o1, sizeof(o1), "%s/model.safetensors", nano);
    snprintf(o2, sizeof(o2), "%s/dflash/dflash_draft_model.safetensors", nano);
    snprintf(d1, sizeof(d1), "%s/dflash", nsrc);
    CHECK(unzst(nsrc, "model.safetensors.zst", o1) == 0);
    CHECK(unzst(d1, "dflash_draft_model.safetensors.zst", o2) == 0);
    /* the documents: copies, so that edits to the repository during the run change nothing */
    const char *files[4] = {"tools/oracle/golden_tiny.py", "tools/oracle/make_tokenizer.py", "tools/train/mimo_hub.py",
                            "docs/tokenizer.md"};
    FILE *lf = fopen(list, "w");
    CHECK(lf != NULL);
    if (lf)
        fprintf(lf, "# repository files, relative to --root\n\n");
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof(cmd), "cp '%s/%s' '%s/doc%d.txt'", src, files[i], docs, i);
        CHECK(system(cmd) == 0);
        if (lf)
            fprintf(lf, "doc%d.txt\n", i);
    }
    if (lf)
        fclose(lf);

    /* the documents as the tool should see them */
    rt_tokenizer *tk = NULL;
    lq_error err;
    lq_error_clear(&err);
    snprintf(tp, sizeof(tp), "%s/tokenizer.json", nano);
    CHECK(rt_tokenizer_open(tp, &tk, &err) == LQ_OK);
    rt_model *m = NULL;
    CHECK(rt_model_open(nano, NULL, &m, &err) == LQ_OK);
    if (!tk || !m)
        return th_finish("test_mimo_eval");
    const size_t V = rt_model_config(m)->vocab_size;
    int32_t sep = rt_tokenizer_find(tk, "<|endoftext|>");
    CHECK_EQ_U64(sep, 8190); /* MODEL_CARD.md: the document separator */
    int32_t *dids[4];
    size_t dlen[4], total = 0;
    for (int i = 0; i < 4; i++) {
        char p[700];
        size_t n = 0, k = 0;
        snprintf(p, sizeof(p), "%s/doc%d.txt", docs, i);
        char *t = slurp(p, &n);
        int32_t *ids = NULL;
        CHECK(t && rt_tokenizer_encode(tk, t, n, &ids, &k, &err) == LQ_OK);
        free(t);
        dids[i] = malloc((k + 1) * sizeof(int32_t));
        dids[i][0] = sep;
        if (k)
            memcpy(dids[i] + 1, ids, k * sizeof(int32_t));
        free(ids);
        dlen[i] = k + 1;
        total += k + 1;
    }

    /* 1. the main run: the model with itself as the source */
    const size_t CTX = 96, BUDGET = 200, N = 2, P = 32, G = 16;
    snprintf(cmd, sizeof(cmd),
             "'%s' '%s' --source '%s' --files '%s' --root '%s' --ctx %zu --ppl-tokens %zu --prompts %zu "
             "--prompt-len %zu --gen-tokens %zu --seed 5 --threads 2 --format json -q",
             ev, nano, nano, list, docs, CTX, BUDGET, N, P, G);
    int rc;
    char *out = run(cmd, &rc);
    CHECK_EQ_U64(rc, 0);
    cJSON *j = NULL;
    CHECK_MSG(out && lq_json_parse(out, strlen(out), NULL, "mimo-eval output", &j, &err) == LQ_OK, "output: %s",
              out ? out : "(none)");
    free(out);
    const cJSON *set = j ? cJSON_GetArrayItem(lq_json_get(j, "sets"), 0) : NULL;
    const cJSON *ppl = lq_json_get(set, "ppl"), *df = lq_json_get(set, "dflash"), *sp = lq_json_get(set, "speed");
    const cJSON *dm = lq_json_get(df, "model"), *ds = lq_json_get(df, "source");
    CHECK(set && ppl && df && sp && dm && ds);
    if (!set || !ppl || !df || !sp || !dm || !ds)
        return th_finish("test_mimo_eval");
    CHECK_STR(lq_json_get(set, "name")->valuestring, "set");
    CHECK_EQ_U64(num(set, "documents"), 4);
    CHECK_EQ_U64(num(set, "tokens"), total);

    /* perplexity from one forward per window, windows cut here */
    size_t scored = 0, nw = 0;
    double nll = 0;
    float *lg = malloc(CTX * V * sizeof(float));
    rt_opts o = {.threads = 2};
    /* round by round: window r of every document that has one (docs/cli.md) */
    for (size_t a = 0; a < 1u << 20 && scored < BUDGET; a += CTX)
        for (int d = 0; d < 4 && scored < BUDGET; d++) {
            if (a + 1 >= dlen[d])
                continue;
            size_t l = dlen[d] - a < CTX ? dlen[d] - a : CTX;
            if (scored + l - 1 > BUDGET)
                l = BUDGET - scored + 1;
            CHECK(rt_forward(m, dids[d] + a, l, &o, lg, NULL, &err) == LQ_OK);
            for (size_t t = 0; t + 1 < l; t++)
                nll += ref_nll(lg + t * V, V, dids[d][a + t + 1]);
            scored += l - 1;
            nw++;
        }
    free(lg);
    double ppl_ref = exp(nll / (double)scored);
    CHECK_EQ_U64(num(ppl, "scored"), scored);
    CHECK_EQ_U64(num(ppl, "windows"), nw);
    CHECK_NEAR(num(ppl, "model"), ppl_ref, 0, 1e-8);
    CHECK(num(ppl, "source") == num(ppl, "model"));
    CHECK(num(ppl, "rel_increase") == 0);
    CHECK(num(ppl, "top1_agreement") == 1);
    CHECK(num(ppl, "model") > 1 && num(ppl, "model") < 1000);
    printf("perplexity %.4f over %zu tokens in %zu windows (recomputed %.4f)\n", num(ppl, "model"), scored, nw, ppl_ref);

    /* DFlash: the same prompts through mimo-run, one by one */
    size_t hist[65] = {0}, steps = 0;
    rt_rng r;
    rt_rng_seed(&r, 5);
    for (size_t i = 0; i < N; i++) {
        size_t d = i * 4 / N;
        while (dlen[d] < P + 1)
            d = (d + 1) % 4;
        size_t s = (size_t)floor(rt_rng_uniform(&r) * (double)(dlen[d] - P + 1));
        char ids[4096];
        size_t k = 0;
        for (size_t t = 0; t < P; t++)
            k += (size_t)snprintf(ids + k, sizeof(ids) - k, "%s%d", t ? "," : "", dids[d][s + t]);
        runres a, b;
        snprintf(cmd, sizeof(cmd),
                 "'%s' '%s' --prompt-ids %s --max-tokens %zu --ignore-eos --dflash --block-size 8 --threads 2 "
                 "--format json", mr, nano, ids, G);
        out = run(cmd, &rc);
        CHECK(rc == 0 && parse_run(out, &a) == 0);
        free(out);
        snprintf(cmd, sizeof(cmd), "'%s' '%s' --prompt-ids %s --max-tokens %zu --ignore-eos --no-dflash --threads 2 "
                                   "--format json", mr, nano, ids, G);
        out = run(cmd, &rc);
        CHECK(rc == 0 && parse_run(out, &b) == 0);
        free(out);
        CHECK_EQ_U64(a.n, G);
        CHECK(a.n == b.n && memcmp(a.tok, b.tok, a.n * sizeof(int32_t)) == 0);
        steps += a.steps;
        for (int h = 1; h <= 8; h++)
            hist[h] += a.hist[h];
    }
    size_t committed = 0;
    for (int h = 1; h <= 8; h++)
        committed += (size_t)h * hist[h];
    CHECK_EQ_U64(committed, N * (G - 1));
    for (int w = 0; w < 2; w++) {
        const cJSON *x = w ? ds : dm, *h = lq_json_get(x, "hist"), *ar = lq_json_get(x, "accept_rate"),
                    *cr = lq_json_get(x, "cond_accept_rate");
        CHECK_EQ_U64(num(x, "steps"), steps);
        CHECK_EQ_U64(cJSON_GetArraySize(h), 8);
        CHECK_EQ_U64(cJSON_GetArraySize(ar), 7);
        for (int i = 1; i <= 8; i++)
            CHECK_EQ_U64(cJSON_GetArrayItem(h, i - 1)->valuedouble, hist[i]);
        CHECK_NEAR(num(x, "tau"), (double)committed / (double)steps, 0, 1e-9);
        for (int k = 1; k < 8; k++) {
            size_t ge1 = 0, ge = 0;
            for (int i = k; i <= 8; i++) {
                ge += hist[i];
                ge1 += i > k ? hist[i] : 0;
            }
            const cJSON *a = cJSON_GetArrayItem(ar, k - 1), *c = cJSON_GetArrayItem(cr, k - 1);
            CHECK_NEAR(a->valuedouble, (double)ge1 / (double)steps, 0, 1e-9);
            if (ge)
                CHECK_NEAR(c->valuedouble, (double)ge1 / (double)ge, 0, 1e-9);
            else
                CHECK(cJSON_IsNull(c));
        }
    }
    CHECK(num(df, "tau_drop") == 0);
    CHECK(num(dm, "tau") > 1.0);
    CHECK(cJSON_IsTrue(lq_json_get(sp, "tokens_equal")));
    CHECK(num(sp, "plain_tok_s") > 0);
    CHECK_NEAR(num(sp, "ratio"), num(sp, "dflash_tok_s") / num(sp, "plain_tok_s"), 0, 1e-6);
    printf("dflash: tau %.4f over %zu steps (mimo-run: %zu committed / %zu steps), hist", num(dm, "tau"), steps, committed,
           steps);
    for (int i = 1; i <= 8; i++)
        printf(" %zu", hist[i]);
    printf("; plain %.1f tok/s, dflash %.1f tok/s\n", num(sp, "plain_tok_s"), num(sp, "dflash_tok_s"));
    cJSON_Delete(j);

    /* 2. without the separator: each document one token shorter, windows start at its first token */
    snprintf(cmd, sizeof(cmd),
             "'%s' '%s' --set code=%s --root '%s' --doc-sep none --ctx %zu --ppl-tokens %zu --no-dflash --no-speed "
             "--format json -q", ev, nano, list, docs, CTX, (size_t)50);
    out = run(cmd, &rc);
    CHECK_EQ_U64(rc, 0);
    j = NULL;
    CHECK(out && lq_json_parse(out, strlen(out), NULL, "mimo-eval output", &j, &err) == LQ_OK);
    free(out);
    set = j ? cJSON_GetArrayItem(lq_json_get(j, "sets"), 0) : NULL;
    CHECK(set && !strcmp(lq_json_get(set, "name")->valuestring, "code"));
    CHECK_EQ_U64(num(set, "tokens"), total - 4);
    CHECK(cJSON_IsNull(lq_json_get(set, "dflash")) && cJSON_IsNull(lq_json_get(set, "speed")));
    /* expected: the first 51 tokens of document 0 without its separator, one window (50 < CTX) */
    {
        float *l2 = malloc(51 * V * sizeof(float));
        double n2 = 0;
        CHECK(l2 && dlen[0] > 52 && rt_forward(m, dids[0] + 1, 51, &o, l2, NULL, &err) == LQ_OK);
        for (size_t t = 0; l2 && t < 50; t++)
            n2 += ref_nll(l2 + t * V, V, dids[0][t + 2]);
        free(l2);
        CHECK(set && num(lq_json_get(set, "ppl"), "scored") == 50 && num(lq_json_get(set, "ppl"), "windows") == 1);
        CHECK_NEAR(set ? num(lq_json_get(set, "ppl"), "model") : 0, exp(n2 / 50), 0, 1e-8);
    }
    cJSON_Delete(j);

    /* 3. text format, two sets (--text files and a list) */
    snprintf(cmd, sizeof(cmd),
             "'%s' '%s' --text '%s/doc0.txt' --text '%s/doc1.txt' --set other=%s --root '%s' --ppl-tokens 40 "
             "--no-dflash --no-speed -q",
             ev, nano, docs, docs, list, docs);
    out = run(cmd, &rc);
    CHECK_EQ_U64(rc, 0);
    CHECK(out && strstr(out, "set text: 2 files, 2 documents") && strstr(out, "set other: 4 files, 4 documents") &&
          strstr(out, "perplexity (1 windows of <= 512 tokens, 40 scored)"));
    free(out);

    /* 4. bad input and usage */
    char tiny[700], tinyt[700], empty[700], miss[700], lmiss[700], lempty[700], lnone[700];
    snprintf(tiny, sizeof(tiny), "%s/tiny", root);
    snprintf(tinyt, sizeof(tinyt), "%s/tinyt", root);
    snprintf(cmd, sizeof(cmd),
             "'%s' --preset tiny --variant bf16 --no-drafter --out '%s' -q >/dev/null && "
             "'%s' --preset tiny --variant bf16 --no-drafter --tokenizer '%s/fixtures/tokenizer/tokenizer.json' "
             "--out '%s' -q >/dev/null",
             mk, tiny, mk, src, tinyt);
    CHECK(system(cmd) == 0);
    snprintf(empty, sizeof(empty), "%s/empty.txt", docs);
    snprintf(miss, sizeof(miss), "%s/missing.txt", docs);
    snprintf(lmiss, sizeof(lmiss), "%s/lmiss.txt", root);
    snprintf(lempty, sizeof(lempty), "%s/lempty.txt", root);
    snprintf(lnone, sizeof(lnone), "%s/lnone.txt", root);
    snprintf(cmd, sizeof(cmd),
             ": > '%s' && printf 'doc0.txt\\nmissing.txt\\n' > '%s' && printf '# nothing\\n\\n' > '%s'", empty, lmiss,
             lempty);
    CHECK(system(cmd) == 0);
    struct {
        const char *model, *args;
        int rc;
        const char *msg, *msg2;
    } bad[] = {
        {nano, "--files LMISS --root DOCS --no-dflash --no-speed", 3, "EVAL_READ", "missing.txt"},
        {nano, "--text EMPTY --no-dflash --no-speed", 3, "EVAL_EMPTY_DOC", "empty.txt"},
        {nano, "--files LEMPTY", 3, "EVAL_EMPTY_SET", "lempty.txt"},
        {nano, "--files LNONE", 3, "EVAL_LIST", "lnone.txt"},
        {nano, "--source TINY --files LIST --root DOCS", 3, "EVAL_VOCAB", "tiny/config.json"},
        {nano, "--files LIST --root DOCS --ctx 9000", 3, "EVAL_CTX_FIT", "max_position_embeddings 8192"},
        {nano, "--files LIST --root DOCS --prompt-len 8000 --gen-tokens 500", 3, "EVAL_PROMPT_FIT", "config.json"},
        {nano, "--files LIST --root DOCS --no-ppl --prompt-len 8000 --gen-tokens 1", 3, "EVAL_PROMPT_FIT", "8001"},
        {nano, "--files LIST --root DOCS --doc-sep '<|nope|>'", 3, "EVAL_DOC_SEP", "tokenizer.json"},
        {tiny, "--files LIST --root DOCS", 3, "EVAL_TOKENIZER", "no tokenizer.json"},
        {nano, "", 2, "at least one text set", NULL},
        {nano, "--set foo", 2, "NAME=LIST", NULL},
        {nano, "--files LIST --block 1", 2, "--block", NULL},
        {nano, "--files LIST --set set=LIST", 2, "two sets named 'set'", NULL},
        {nano, "--files LIST --frobnicate 1", 2, "unknown option", NULL},
        {nano, "--files LIST --format xml", 2, "--format", NULL},
        {nano, "--files LIST --no-ppl --no-dflash --no-speed", 2, "nothing to measure", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* placeholders -> paths */
        char args[4096] = "";
        const char *s = bad[i].args;
        while (*s) {
            const char *rep = NULL;
            size_t skip = 0;
            const struct {
                const char *k, *v;
            } ph[] = {{"LMISS", lmiss}, {"LEMPTY", lempty}, {"LNONE", lnone}, {"LIST", list},
                      {"DOCS", docs},   {"EMPTY", empty},   {"TINY", tiny}};
            for (size_t p = 0; p < sizeof(ph) / sizeof(ph[0]) && !rep; p++)
                if (!strncmp(s, ph[p].k, strlen(ph[p].k)))
                    rep = ph[p].v, skip = strlen(ph[p].k);
            size_t l = strlen(args);
            if (rep) {
                snprintf(args + l, sizeof(args) - l, "'%s'", rep);
                s += skip;
            } else if (l + 1 < sizeof(args)) {
                args[l] = *s++;
                args[l + 1] = 0;
            }
        }
        snprintf(cmd, sizeof(cmd), "'%s' '%s' %s -q 2>&1 >/dev/null", ev, bad[i].model, args);
        out = run(cmd, &rc);
        CHECK_MSG(rc == bad[i].rc, "'%s': exit %d, expected %d (%s)", bad[i].args, rc, bad[i].rc, out ? out : "");
        CHECK_MSG(out && strstr(out, bad[i].msg) && (!bad[i].msg2 || strstr(out, bad[i].msg2)),
                  "'%s': message '%s' lacks '%s' / '%s'", bad[i].args, out ? out : "", bad[i].msg,
                  bad[i].msg2 ? bad[i].msg2 : "");
        if (i == 0 && out)
            printf("missing list entry: %s", out);
        free(out);
    }
    /* a model without dflash/: DFlash skipped with a note, exit 0 */
    snprintf(cmd, sizeof(cmd),
             "'%s' '%s' --text '%s/doc0.txt' --ppl-tokens 30 --no-speed --threads 2 --format json -q", ev, tinyt, docs);
    out = run(cmd, &rc);
    CHECK_EQ_U64(rc, 0);
    j = NULL;
    CHECK(out && lq_json_parse(out, strlen(out), NULL, "mimo-eval output", &j, &err) == LQ_OK);
    free(out);
    const cJSON *notes = lq_json_get(j, "notes");
    CHECK(cJSON_GetArraySize(notes) == 1 && strstr(cJSON_GetArrayItem(notes, 0)->valuestring, "no drafter"));
    set = j ? cJSON_GetArrayItem(lq_json_get(j, "sets"), 0) : NULL;
    CHECK(set && cJSON_IsNull(lq_json_get(set, "dflash")) && num(lq_json_get(set, "ppl"), "scored") == 30);
    cJSON_Delete(j);

    for (int i = 0; i < 4; i++)
        free(dids[i]);
    rt_model_close(m);
    rt_tokenizer_close(tk);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return th_finish("test_mimo_eval");
}
