/* mimo-run end to end on the tiny FP8 fixture (with its drafter and the fixture tokenizer) and its
 * MXFP4 artifact.
 * usage: test_mimo_run MKFIXTURE QUANTIZE MIMO_RUN TOKENIZER_JSON
 *  - --format json: one strict JSON object with tokens, text, tau, rates; the greedy tokens with
 *    --dflash equal those with --no-dflash, for block sizes 2, 4 and 8; the text equals the
 *    tokenizer's decode of the tokens; tau >= 1, the histogram sums to the steps;
 *  - text format streams exactly the JSON's text (the streaming decode is byte-identical);
 *  - a sampled run is reproducible from its seed;
 *  - --stop with the 6th greedy token ends the output right after its first occurrence;
 *  - bad input exits 2 (usage) or 3 (model, prompt) with a message naming what is wrong. */
#include <string.h>

#include "../harness.h"
#include "libquant/libquant.h"
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

typedef struct res {
    int32_t tok[256];
    size_t n;
    char text[8192];
    double tau;
    uint64_t steps, hist_sum;
} res;

static int parse(const char *out, res *r)
{
    cJSON *j = NULL;
    lq_error err;
    memset(r, 0, sizeof(*r));
    if (!out || lq_json_parse(out, strlen(out), NULL, "mimo-run output", &j, &err) != LQ_OK)
        return -1;
    const cJSON *t = lq_json_get(j, "tokens"), *x = lq_json_get(j, "text"), *tau = lq_json_get(j, "tau"),
                *st = lq_json_get(j, "steps"), *h = lq_json_get(j, "accept_hist");
    int ok = cJSON_IsArray(t) && cJSON_IsNumber(tau) && cJSON_IsArray(h) && lq_json_u64(st, &r->steps) == 0 &&
             cJSON_IsNumber(lq_json_get(j, "decode_tokens_per_s")) && cJSON_IsNumber(lq_json_get(j, "prefill_tokens_per_s"));
    const cJSON *e;
    cJSON_ArrayForEach(e, t)
    {
        int64_t v;
        if (lq_json_i64(e, &v) == 0 && r->n < 256)
            r->tok[r->n++] = (int32_t)v;
    }
    cJSON_ArrayForEach(e, h)
    {
        uint64_t v;
        if (lq_json_u64(e, &v) == 0)
            r->hist_sum += v;
    }
    if (cJSON_IsString(x))
        snprintf(r->text, sizeof(r->text), "%s", x->valuestring);
    r->tau = ok ? tau->valuedouble : 0;
    cJSON_Delete(j);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: test_mimo_run MKFIXTURE QUANTIZE MIMO_RUN TOKENIZER_JSON\n");
        return 2;
    }
    const char *run_bin = argv[3];
    char root[] = "/tmp/mimo-run-XXXXXX", cmd[4096], fx[600], art[600];
    CHECK(mkdtemp(root) != NULL);
    snprintf(fx, sizeof(fx), "%s/fp8", root);
    snprintf(art, sizeof(art), "%s/mx", root);
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant fp8 --tokenizer '%s' --out '%s' -q >/dev/null && '%s' '%s' '%s' -q",
             argv[1], argv[4], fx, argv[2], fx, art);
    CHECK(system(cmd) == 0);
    rt_tokenizer *tk = NULL;
    lq_error err;
    char tp[700];
    snprintf(tp, sizeof(tp), "%s/tokenizer.json", art); /* the converter carries it over */
    CHECK(rt_tokenizer_open(tp, &tk, &err) == LQ_OK);
    const char *prompt = "Once upon a time, in a quiet village by the sea, there lived an old clockmaker.";
    int rc;
    res plain, r;
    snprintf(cmd, sizeof(cmd), "'%s' '%s' --prompt '%s' --max-tokens 24 --threads 2 --no-dflash --format json", run_bin,
             art, prompt);
    char *o = run(cmd, &rc);
    CHECK_EQ_U64(rc, 0);
    CHECK(parse(o, &plain) == 0);
    free(o);
    CHECK(plain.n >= 1 && plain.n <= 24);
    CHECK(plain.tau == 1.0);
    CHECK_EQ_U64(plain.hist_sum, plain.steps);
    if (tk) {
        char *dec = NULL;
        size_t dl = 0;
        CHECK(rt_tokenizer_decode(tk, plain.tok, plain.n, 1, &dec, &dl, &err) == LQ_OK);
        CHECK_STR(plain.text, dec ? dec : "");
        free(dec);
    }
    printf("plain: %zu tokens: %s\n", plain.n, plain.text);
    const int blocks[3] = {2, 4, 8};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof(cmd), "'%s' '%s' --prompt '%s' --max-tokens 24 --threads 2 --dflash --block-size %d --format json",
                 run_bin, art, prompt, blocks[i]);
        o = run(cmd, &rc);
        CHECK_EQ_U64(rc, 0);
        CHECK(parse(o, &r) == 0);
        free(o);
        CHECK_EQ_U64(r.n, plain.n);
        CHECK(memcmp(r.tok, plain.tok, plain.n * sizeof(int32_t)) == 0);
        CHECK(r.tau >= 1.0 && r.tau <= blocks[i]);
        CHECK_EQ_U64(r.hist_sum, r.steps);
        printf("dflash B=%d: tokens %s plain, tau %.3f, %llu steps\n", blocks[i],
               r.n == plain.n && !memcmp(r.tok, plain.tok, plain.n * 4) ? "==" : "!=", r.tau, (unsigned long long)r.steps);
    }
    /* text format streams the same text */
    snprintf(cmd, sizeof(cmd), "'%s' '%s' --prompt '%s' --max-tokens 24 --threads 2 -q", run_bin, art, prompt);
    o = run(cmd, &rc);
    CHECK_EQ_U64(rc, 0);
    if (o) {
        size_t l = strlen(o);
        if (l && o[l - 1] == '\n')
            o[l - 1] = 0;
        CHECK_STR(o, plain.text);
    }
    free(o);
    /* sampling: the same seed gives the same tokens */
    res s1, s2;
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof(cmd),
                 "'%s' '%s' --prompt-ids 10,20,30,40 --max-tokens 16 --temperature 0.9 --top-k 40 --top-p 0.95 "
                 "--seed 7 --format json",
                 run_bin, art);
        o = run(cmd, &rc);
        CHECK_EQ_U64(rc, 0);
        CHECK(parse(o, k ? &s2 : &s1) == 0);
        free(o);
    }
    CHECK_EQ_U64(s1.n, s2.n);
    CHECK(memcmp(s1.tok, s2.tok, s1.n * sizeof(int32_t)) == 0);
    /* --stop */
    if (plain.n >= 6) {
        size_t first = 0;
        while (plain.tok[first] != plain.tok[5])
            first++;
        snprintf(cmd, sizeof(cmd), "'%s' '%s' --prompt '%s' --max-tokens 24 --stop %d --format json", run_bin, art,
                 prompt, plain.tok[5]);
        o = run(cmd, &rc);
        CHECK_EQ_U64(rc, 0);
        CHECK(parse(o, &r) == 0);
        free(o);
        CHECK_EQ_U64(r.n, first + 1);
    }
    /* bad input */
    struct {
        const char *args;
        int rc;
        const char *msg;
    } bad[] = {
        {"", 2, "exactly one of"},
        {"--prompt x --prompt-ids 1", 2, "exactly one of"},
        {"--prompt-ids 1,x", 2, "--prompt-ids"},
        {"--prompt-ids 99999", 3, "outside the vocabulary"},
        {"--prompt-ids 1 --block-size 1", 2, "--block-size"},
        {"--prompt-ids 1 --top-p 0", 2, "--top-p"},
        {"--prompt-ids 1 --drafter /nonexistent --dflash", 3, "drafter"},
        {"--prompt-ids 1 --frobnicate", 2, "unknown option"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(cmd, sizeof(cmd), "'%s' '%s' %s 2>&1 >/dev/null", run_bin, art, bad[i].args);
        o = run(cmd, &rc);
        CHECK_MSG(rc == bad[i].rc, "'%s': exit %d, expected %d", bad[i].args, rc, bad[i].rc);
        CHECK_MSG(o && strstr(o, bad[i].msg), "'%s': message '%s' lacks '%s'", bad[i].args, o ? o : "", bad[i].msg);
        free(o);
    }
    /* a model without tokenizer.json: --prompt is refused, --prompt-ids works */
    snprintf(cmd, sizeof(cmd), "rm '%s/tokenizer.json' && '%s' '%s' --prompt hi 2>&1 >/dev/null", art, run_bin, art);
    o = run(cmd, &rc);
    CHECK_EQ_U64(rc, 3);
    CHECK(o && strstr(o, "no tokenizer.json"));
    free(o);
    snprintf(cmd, sizeof(cmd), "'%s' '%s' /nonexistent --prompt-ids 1 2>&1", run_bin, art);
    o = run(cmd, &rc);
    CHECK_EQ_U64(rc, 2);
    free(o);
    snprintf(cmd, sizeof(cmd), "'%s' /nonexistent --prompt-ids 1 2>&1 >/dev/null", run_bin);
    o = run(cmd, &rc);
    CHECK_EQ_U64(rc, 3);
    CHECK(o && strstr(o, "mimo-run: model"));
    free(o);
    rt_tokenizer_close(tk);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return th_finish("test_mimo_run");
}
