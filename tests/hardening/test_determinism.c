/* Determinism of the tools over thread counts and repeated runs.
 * usage: test_determinism MKFIXTURE QUANTIZE MIMO_RUN MIMO_EVAL TOKENIZER_JSON NANO_DIR
 *
 * Expected values: none are hard-coded. docs/cli.md promises that every mimo-quantize output file
 * is byte-identical for any --threads and across runs, and that mimo-run's and mimo-eval's results
 * do not depend on --threads; the reference for each comparison is the same tool's --threads 1 run
 * on the same input, so any difference at all is a failure (tolerance 0: bytes, token ids, and the
 * printed doubles compared exactly).
 *
 *  1. mimo-quantize on the tiny fixture, BF16 and FP8 variants (mimo-mkfixture, with the fixture
 *     tokenizer): --threads 1, 2, 4 and two more runs at --threads 2. Every file of every output
 *     directory (recursively: shards, index, config, dflash/, tokenizer, mimo-quant-report.json and
 *     mimo-manifest.json) has the same path, size and SHA-256 as in the --threads 1 run. The report
 *     and the manifest are scanned for keys that look like timings or thread counts (seconds, time,
 *     elapsed, duration, date, threads, a "_s" suffix, ...): where any is found it is named on
 *     stdout and that file is compared with those keys removed, otherwise byte for byte.
 *  2. mimo-run --format json, greedy, plain (--no-dflash) and --dflash, on the tiny BF16 fixture
 *     (16 tokens) and the nano model (fixtures/nano/bf16 decompressed with zstd as in
 *     scripts/demo.sh; 32 tokens): --threads 1, 2, 4 and two more runs at --threads 2 give the same
 *     token ids, text, step count, stop reason and acceptance histogram. Greedy DFlash also equals
 *     plain greedy (docs/cli.md: token for token), an independent check of the same ids. mimo-run
 *     prints no logits nor a checksum of them, so two logit-sensitive proxies are compared too:
 *       - a sampled DFlash run (temperature 0.8, top-k 40, top-p 0.95, seed 7) at --threads 1, 2, 4:
 *         the same ids (rejection sampling reads the probabilities, not only the argmax);
 *       - mimo-eval's perplexity and mean NLL (printed with 10 significant digits, computed from the
 *         runtime's fp32 logits) on a fixed text at --threads 1, 2, 4: identical numbers.
 * The nano part is skipped (with a line saying so) when the zstd command is missing.
 *
 * Sanitizer builds (compiled with -DMIMO_SANITIZER_BUILD=1 by tests/hardening/meson.build, or
 * ASan detected from the compiler) run a lighter set to stay near a minute: the FP8 variant only
 * at --threads 1, 2, 4 and once more at 2; mimo-run plain and --dflash at --threads 1, 4 and once
 * more at 2 on both models (no sampled runs, no mimo-eval). MIMO_HARDENING_FULL=1 in the
 * environment runs the full set there too. The full set runs in every other build. */
#include <sys/stat.h>
#include <unistd.h>

#include "../harness.h"
#include "../quantize/qt_util.h"
#include "libquant/libquant.h"

#if defined(MIMO_SANITIZER_BUILD) && MIMO_SANITIZER_BUILD
#define HD_SAN 1
#elif defined(__SANITIZE_ADDRESS__)
#define HD_SAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HD_SAN 1
#endif
#endif
#ifndef HD_SAN
#define HD_SAN 0
#endif

static int light; /* the sanitizer build's smaller set (see the top of the file) */
static const char *MKFIXTURE, *QUANTIZE, *RUN, *EVAL, *TOKENIZER, *NANO;
static char root[512];

/* ---- JSON timing keys ---- */

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* A key that would hold a wall-clock figure, a date or a thread count (none of which may differ
 * between runs only through chance or --threads). */
static int timing_key(const char *k)
{
    static const char *const words[] = {"second", "time", "elapsed", "duration", "date", "thread", "clock", "rate"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strstr(k, words[i]))
            return 1;
    return ends_with(k, "_s") || ends_with(k, "_ms") || ends_with(k, "_us") || strcmp(k, "s") == 0;
}

/* Removes timing keys everywhere under j; appends each removed key's name (once) to found. */
static void strip_timing(cJSON *j, char *found, size_t cap)
{
    if (!j)
        return;
    if (cJSON_IsObject(j)) {
        cJSON *c = j->child;
        while (c) {
            cJSON *next = c->next;
            if (c->string && timing_key(c->string)) {
                char quoted[300];
                snprintf(quoted, sizeof(quoted), " %s", c->string);
                if (!strstr(found, quoted) && strlen(found) + strlen(quoted) < cap)
                    strcat(found, quoted);
                cJSON_Delete(cJSON_DetachItemViaPointer(j, c));
            } else {
                strip_timing(c, found, cap);
            }
            c = next;
        }
    } else if (cJSON_IsArray(j)) {
        cJSON *c;
        cJSON_ArrayForEach(c, j) strip_timing(c, found, cap);
    }
}

/* ---- 1. mimo-quantize ---- */

static int is_meta_json(const char *rel)
{
    return !strcmp(rel, "mimo-quant-report.json") || !strcmp(rel, "mimo-manifest.json");
}

/* Stripped, unformatted JSON text of a file (malloc'd), or NULL. */
static char *stripped_json(const char *path, char *found, size_t cap)
{
    cJSON *j = qt_json(path);
    if (!j)
        return NULL;
    strip_timing(j, found, cap);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* Compares run dir b with reference dir a: same entries; every file byte-identical, except that
 * the report and the manifest are compared without timing keys when they have any. Returns the
 * number of files compared; *bytes gets their total size and *diffs the number of differences
 * (each described on stderr when loud). */
static size_t compare_outputs(const char *a, const char *b, const char *label, uint64_t *bytes, size_t *diffs, int loud)
{
    qt_tree ta = {0}, tb = {0};
    size_t files = 0, d = 0;
    *bytes = 0;
#define HD_DIFF(...)                                                                          \
    do {                                                                                      \
        d++;                                                                                  \
        if (loud) {                                                                           \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
        }                                                                                     \
    } while (0)
    if (qt_tree_scan(a, &ta) != 0 || qt_tree_scan(b, &tb) != 0)
        HD_DIFF("%s: cannot scan %s or %s", label, a, b);
    if (ta.n != tb.n)
        HD_DIFF("%s: %zu entries in %s, %zu in %s", label, ta.n, a, tb.n, b);
    for (size_t i = 0; i < ta.n && i < tb.n; i++) {
        const qt_entry *x = &ta.e[i], *y = &tb.e[i];
        if (strcmp(x->path, y->path) != 0 || x->is_dir != y->is_dir) {
            HD_DIFF("%s: entry %zu is %s in %s, %s in %s", label, i, x->path, a, y->path, b);
            continue;
        }
        if (x->is_dir)
            continue;
        files++;
        *bytes += x->size;
        char found[1024] = "";
        if (is_meta_json(x->path)) {
            char *sa = stripped_json(qt_p("%s/%s", a, x->path), found, sizeof(found));
            char fb[1024] = "";
            char *sb = stripped_json(qt_p("%s/%s", b, y->path), fb, sizeof(fb));
            if (!sa || !sb)
                HD_DIFF("%s: %s is not strict JSON", label, x->path);
            if (found[0] || fb[0]) {
                printf("  %s: %s holds timing-like keys:%s%s; compared without them\n", label, x->path, found, fb);
                if (!sa || !sb || strcmp(sa, sb) != 0)
                    HD_DIFF("%s: %s differs (timing keys removed) between %s and %s", label, x->path, a, b);
                free(sa);
                free(sb);
                continue;
            }
            free(sa);
            free(sb);
        }
        if (x->size != y->size || strcmp(x->sha, y->sha) != 0)
            HD_DIFF("%s: %s differs: %llu bytes sha256 %s in %s, %llu bytes %s in %s", label, x->path,
                    (unsigned long long)x->size, x->sha, a, (unsigned long long)y->size, y->sha, b);
    }
#undef HD_DIFF
    qt_tree_free(&ta);
    qt_tree_free(&tb);
    *diffs = d;
    return files;
}

/* Negative control: the comparison is not vacuous. A hard-linked copy of the reference with one
 * byte of the report changed (a new file replaces the link) and one byte of the shard changed
 * must show exactly 2 differences. */
static void control_compare(const char *ref, const char *variant)
{
    char copy[600];
    snprintf(copy, sizeof(copy), "%s/%s-control", root, variant);
    CHECK(qt_link_tree(ref, copy) == 0);
    const char *const victims[] = {"mimo-quant-report.json", "model.safetensors"};
    for (int v = 0; v < 2; v++) {
        char path[700];
        snprintf(path, sizeof(path), "%s/%s", copy, victims[v]);
        size_t len = 0;
        uint8_t *b = qt_read(path, &len);
        CHECK(b != NULL && len > 100);
        if (!b)
            continue;
        /* the report: a digit of a figure in the middle; the shard: its last byte (tensor data) */
        size_t at = len - 1;
        if (v == 0)
            for (at = len / 2; at < len && !(b[at] >= '1' && b[at] <= '8'); at++)
                ;
        if (at < len)
            b[at] = (uint8_t)(b[at] + 1);
        CHECK(unlink(path) == 0 && qt_write(path, b, len) == 0);
        free(b);
    }
    uint64_t bytes;
    size_t diffs = 0;
    compare_outputs(ref, copy, "control", &bytes, &diffs, 0);
    CHECK_MSG(diffs == 2, "%s control: %zu differences found, 2 planted", variant, diffs);
    printf("%s control: 2 planted one-byte changes (report, shard) -> %zu differences found\n", variant, diffs);
    qt_rmtree(copy);
}

static void quantize_variant(const char *variant)
{
    const char *src = qt_p("%s/%s-src", root, variant);
    char srcb[600];
    snprintf(srcb, sizeof(srcb), "%s", src);
    int rc = qt_runl(NULL, MKFIXTURE, "--preset", "tiny", "--variant", variant, "--tokenizer", TOKENIZER, "--out", srcb,
                     "-q", (char *)NULL);
    CHECK_MSG(rc == 0, "mimo-mkfixture %s: exit %d", variant, rc);
    /* run 0 is the reference (--threads 1) */
    static const char *const threads[] = {"1", "2", "4", "2", "2"};
    char ref[600];
    snprintf(ref, sizeof(ref), "%s/%s-q0-t1", root, variant);
    for (int r = 0; r < (light ? 4 : 5); r++) {
        char out[600];
        snprintf(out, sizeof(out), "%s/%s-q%d-t%s", root, variant, r, threads[r]);
        rc = qt_runl(NULL, QUANTIZE, srcb, out, "--threads", threads[r], "-q", (char *)NULL);
        CHECK_MSG(rc == 0, "mimo-quantize %s --threads %s: exit %d", variant, threads[r], rc);
        if (r == 0) {
            /* the reference must hold what is compared */
            CHECK(qt_exists(qt_p("%s/mimo-quant-report.json", out)) && qt_exists(qt_p("%s/mimo-manifest.json", out)));
            char f1[64] = "", f2[64] = "";
            char *s1 = stripped_json(qt_p("%s/mimo-quant-report.json", out), f1, sizeof(f1));
            char *s2 = stripped_json(qt_p("%s/mimo-manifest.json", out), f2, sizeof(f2));
            printf("%s: report timing-like keys:%s; manifest timing-like keys:%s\n", variant, f1[0] ? f1 : " none",
                   f2[0] ? f2 : " none");
            free(s1);
            free(s2);
            continue;
        }
        uint64_t bytes;
        char label[128];
        snprintf(label, sizeof(label), "%s run %d (--threads %s)", variant, r, threads[r]);
        size_t diffs = 0;
        size_t files = compare_outputs(ref, out, label, &bytes, &diffs, 1);
        CHECK_MSG(diffs == 0, "%s: %zu files differ from the --threads 1 run", label, diffs);
        CHECK(files >= 6); /* model shard(s), config, report, manifest, dflash/ files, tokenizer */
        char mh[65] = "";
        uint64_t ms = 0;
        qt_sha256_file(qt_p("%s/mimo-manifest.json", out), mh, &ms);
        printf("%s --threads %s (run %d) vs --threads 1: %zu files, %llu bytes compared; manifest sha256 %.16s...\n",
               variant, threads[r], r, files, (unsigned long long)bytes, mh);
    }
    control_compare(ref, variant);
}

/* ---- 2. mimo-run and mimo-eval ---- */

typedef struct gen {
    int32_t tok[256];
    size_t n;
    uint64_t steps;
    uint64_t hist[64];
    size_t nhist;
    char stopped[64];
    char *text;
    int ok;
} gen;

static void gen_free(gen *g)
{
    free(g->text);
    g->text = NULL;
}

/* Runs mimo-run with the given extra arguments (NULL-terminated list) and parses its JSON. */
static gen run_gen(const char *model, const char *threads, const char *const *extra)
{
    gen g;
    memset(&g, 0, sizeof(g));
    const char *argv[40];
    size_t n = 0;
    argv[n++] = RUN;
    argv[n++] = model;
    for (size_t i = 0; extra[i] && n < 34; i++)
        argv[n++] = extra[i];
    argv[n++] = "--threads";
    argv[n++] = threads;
    argv[n++] = "--format";
    argv[n++] = "json";
    argv[n] = NULL;
    char outp[600];
    snprintf(outp, sizeof(outp), "%s/run.json", root);
    qt_run_opts o = {.out_path = outp, .err_path = NULL, .timeout_s = 300};
    int rc = qt_run(argv, &o);
    CHECK_MSG(rc == 0, "mimo-run %s --threads %s: exit %d", model, threads, rc);
    cJSON *j = qt_json(outp);
    CHECK_MSG(j != NULL, "mimo-run %s: output is not strict JSON", model);
    if (!j)
        return g;
    const cJSON *t = lq_json_get(j, "tokens"), *h = lq_json_get(j, "accept_hist"), *sb = lq_json_get(j, "stopped_by"),
                *tx = lq_json_get(j, "text"), *e;
    g.ok = cJSON_IsArray(t) && cJSON_IsArray(h) && cJSON_IsString(sb) && lq_json_u64(lq_json_get(j, "steps"), &g.steps) == 0;
    cJSON_ArrayForEach(e, t)
    {
        int64_t v;
        if (lq_json_i64(e, &v) == 0 && g.n < 256)
            g.tok[g.n++] = (int32_t)v;
        else
            g.ok = 0;
    }
    cJSON_ArrayForEach(e, h)
    {
        uint64_t v;
        if (lq_json_u64(e, &v) == 0 && g.nhist < 64)
            g.hist[g.nhist++] = v;
        else
            g.ok = 0;
    }
    if (cJSON_IsString(sb))
        snprintf(g.stopped, sizeof(g.stopped), "%s", sb->valuestring);
    if (cJSON_IsString(tx))
        g.text = strdup(tx->valuestring);
    cJSON_Delete(j);
    CHECK_MSG(g.ok, "mimo-run %s: JSON lacks tokens/steps/accept_hist/stopped_by", model);
    return g;
}

static int same_gen(const gen *a, const gen *b)
{
    return a->ok && b->ok && a->n == b->n && !memcmp(a->tok, b->tok, a->n * sizeof(int32_t)) && a->steps == b->steps &&
           a->nhist == b->nhist && !memcmp(a->hist, b->hist, a->nhist * sizeof(uint64_t)) &&
           !strcmp(a->stopped, b->stopped) && ((!a->text && !b->text) || (a->text && b->text && !strcmp(a->text, b->text)));
}

static size_t first_diff(const gen *a, const gen *b)
{
    size_t i = 0;
    while (i < a->n && i < b->n && a->tok[i] == b->tok[i])
        i++;
    return i;
}

/* Plain, DFlash and sampled-DFlash generation of one model over the thread counts. */
static void runtime_model(const char *label, const char *model, const char *const *prompt, size_t max_tokens)
{
    char mt[16];
    snprintf(mt, sizeof(mt), "%zu", max_tokens);
    static const char *const threads[] = {"1", "2", "4", "2", "2"};
    static const char *const threads_light[] = {"1", "4", "2"};
    const char *modes[3] = {"--no-dflash", "--dflash", "sampled"};
    gen ref[3];
    memset(ref, 0, sizeof(ref));
    for (int m = 0; m < (light ? 2 : 3); m++) {
        const char *extra[20];
        size_t n = 0;
        for (size_t i = 0; prompt[i]; i++)
            extra[n++] = prompt[i];
        extra[n++] = "--max-tokens";
        extra[n++] = mt;
        extra[n++] = m == 0 ? "--no-dflash" : "--dflash";
        if (m == 2) {
            static const char *const samp[] = {"--temperature", "0.8", "--top-k", "40", "--top-p", "0.95", "--seed", "7"};
            for (size_t i = 0; i < 8; i++)
                extra[n++] = samp[i];
        }
        extra[n] = NULL;
        int runs = light ? 3 : m == 2 ? 3 : 5; /* sampled: --threads 1, 2, 4 only */
        const char *const *th = light ? threads_light : threads;
        size_t equal = 0;
        for (int r = 0; r < runs; r++) {
            gen g = run_gen(model, th[r], extra);
            if (r == 0) {
                ref[m] = g;
                CHECK_MSG(g.n == max_tokens || strcmp(g.stopped, "max tokens") != 0, "%s %s: %zu tokens", label, modes[m], g.n);
                continue;
            }
            int same = same_gen(&ref[m], &g);
            equal += same;
            CHECK_MSG(same,
                      "%s %s: --threads %s (run %d) differs from --threads 1: %zu vs %zu tokens, first differing "
                      "index %zu, steps %llu vs %llu, stopped by '%s' vs '%s'",
                      label, modes[m], th[r], r, g.n, ref[m].n, first_diff(&g, &ref[m]),
                      (unsigned long long)g.steps, (unsigned long long)ref[m].steps, g.stopped, ref[m].stopped);
            gen_free(&g);
        }
        char hist[256] = "";
        for (size_t i = 0; i < ref[m].nhist && strlen(hist) < 200; i++)
            snprintf(hist + strlen(hist), sizeof(hist) - strlen(hist), "%s%llu", i ? "," : "",
                     (unsigned long long)ref[m].hist[i]);
        printf("%s %s: %zu tokens, %llu steps, hist [%s], first ids %d %d %d ...; %zu of %d other runs identical\n",
               label, modes[m], ref[m].n, (unsigned long long)ref[m].steps, hist, ref[m].n > 0 ? ref[m].tok[0] : -1,
               ref[m].n > 1 ? ref[m].tok[1] : -1, ref[m].n > 2 ? ref[m].tok[2] : -1, equal, runs - 1);
    }
    /* negative control: sampling really sampled (a greedy-only run would make its thread check a
     * repeat of the greedy one) */
    if (!light)
        CHECK_MSG(ref[2].n != ref[0].n || memcmp(ref[2].tok, ref[0].tok, ref[0].n * sizeof(int32_t)) != 0,
                  "%s: sampled ids equal the greedy ids", label);
    /* greedy DFlash == plain greedy (docs/cli.md), ids only: steps and histogram differ by design */
    CHECK_MSG(ref[0].n == ref[1].n && !memcmp(ref[0].tok, ref[1].tok, ref[0].n * sizeof(int32_t)),
              "%s: greedy DFlash differs from plain greedy at token %zu", label, first_diff(&ref[0], &ref[1]));
    for (int m = 0; m < 3; m++)
        gen_free(&ref[m]);
}

/* Text scored by mimo-eval: fixed here so the figures compare like with like. */
static const char EVAL_TEXT[] =
    "def merge_sorted(a, b):\n"
    "    \"\"\"Merge two sorted lists into one sorted list.\"\"\"\n"
    "    out = []\n"
    "    i = j = 0\n"
    "    while i < len(a) and j < len(b):\n"
    "        if a[i] <= b[j]:\n"
    "            out.append(a[i])\n"
    "            i += 1\n"
    "        else:\n"
    "            out.append(b[j])\n"
    "            j += 1\n"
    "    out.extend(a[i:])\n"
    "    out.extend(b[j:])\n"
    "    return out\n"
    "\n"
    "The lighthouse keeper climbed the stairs every evening, counting the steps as his father had,\n"
    "and lit the lamp a little before the sun touched the water. Ships passed far out, their lights\n"
    "small and steady, and he wrote each one into the log with the hour and the wind.\n";

/* mimo-eval perplexity and loss at --threads 1, 2, 4: printed numbers compared exactly. */
static void eval_model(const char *label, const char *model)
{
    char text[600], outp[600];
    snprintf(text, sizeof(text), "%s/eval.txt", root);
    snprintf(outp, sizeof(outp), "%s/eval.json", root);
    if (!qt_exists(text))
        CHECK(qt_write(text, EVAL_TEXT, sizeof(EVAL_TEXT) - 1) == 0);
    static const char *const threads[] = {"1", "2", "4"};
    double ppl0 = 0, loss0 = 0;
    uint64_t scored0 = 0;
    int same = 0;
    for (int r = 0; r < 3; r++) {
        int rc = qt_runl(&(qt_run_opts){.out_path = outp, .timeout_s = 300}, EVAL, model, "--text", text, "--ctx", "64",
                         "--ppl-tokens", "160", "--no-dflash", "--no-speed", "--threads", threads[r], "--format", "json",
                         "-q", (char *)NULL);
        CHECK_MSG(rc == 0, "mimo-eval %s --threads %s: exit %d", label, threads[r], rc);
        cJSON *j = qt_json(outp);
        const cJSON *ppl = lq_json_get(cJSON_GetArrayItem(lq_json_get(j, "sets"), 0), "ppl");
        const cJSON *pm = lq_json_get(ppl, "model"), *lm = lq_json_get(ppl, "loss_model");
        uint64_t scored = 0;
        int ok = cJSON_IsNumber(pm) && cJSON_IsNumber(lm) && lq_json_u64(lq_json_get(ppl, "scored"), &scored) == 0;
        CHECK_MSG(ok, "mimo-eval %s: JSON lacks sets[0].ppl.model/loss_model/scored", label);
        if (ok && r == 0) {
            ppl0 = pm->valuedouble;
            loss0 = lm->valuedouble;
            scored0 = scored;
            CHECK(scored == 160);
            CHECK(isfinite(ppl0) && ppl0 > 1);
        } else if (ok) {
            /* exact: the same 10-digit text parses to the same double */
            CHECK_MSG(pm->valuedouble == ppl0 && lm->valuedouble == loss0 && scored == scored0,
                      "mimo-eval %s --threads %s: ppl %.10g loss %.10g (%llu scored) vs --threads 1: ppl %.10g loss %.10g",
                      label, threads[r], pm->valuedouble, lm->valuedouble, (unsigned long long)scored, ppl0, loss0);
            same += pm->valuedouble == ppl0 && lm->valuedouble == loss0;
        }
        cJSON_Delete(j);
    }
    printf("%s mimo-eval: ppl %.10g, loss %.10g nats over %llu tokens at --threads 1; %d of 2 other thread counts identical\n",
           label, ppl0, loss0, (unsigned long long)scored0, same);
}

/* fixtures/nano/bf16 -> dst, *.zst decompressed with the zstd command (scripts/demo.sh's way). */
static int decompress_nano(const char *dst)
{
    static const char *const plain[] = {"config.json", "tokenizer.json", "dflash/config.json", "dflash/mask_embedding.pt",
                                        "dflash/model.safetensors.index.json"};
    static const char *const zst[] = {"model.safetensors", "dflash/dflash_draft_model.safetensors"};
    if (mkdir(dst, 0755) || mkdir(qt_p("%s/dflash", dst), 0755))
        return -1;
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        if (qt_copy_file(qt_p("%s/bf16/%s", NANO, plain[i]), qt_p("%s/%s", dst, plain[i])))
            return -1;
    for (size_t i = 0; i < sizeof(zst) / sizeof(zst[0]); i++) {
        char in[1200], out[1200];
        snprintf(in, sizeof(in), "%s/bf16/%s.zst", NANO, zst[i]);
        snprintf(out, sizeof(out), "%s/%s", dst, zst[i]);
        if (qt_runl(NULL, "zstd", "-dq", in, "-o", out, (char *)NULL) != 0)
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: test_determinism MKFIXTURE QUANTIZE MIMO_RUN MIMO_EVAL TOKENIZER_JSON NANO_DIR\n");
        return 2;
    }
    MKFIXTURE = argv[1];
    QUANTIZE = argv[2];
    RUN = argv[3];
    EVAL = argv[4];
    TOKENIZER = argv[5];
    NANO = argv[6];
    CHECK(qt_mkroot(root, sizeof(root)) == 0);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *full = getenv("MIMO_HARDENING_FULL");
    light = HD_SAN && !(full && !strcmp(full, "1"));
    if (light)
        printf("sanitizer build: the lighter set (MIMO_HARDENING_FULL=1 runs the full one)\n");

    /* the BF16 source is also the runtime's tiny model below */
    const char *const *variants = (const char *const[]){"bf16", "fp8"};
    if (light) {
        CHECK(qt_runl(NULL, MKFIXTURE, "--preset", "tiny", "--variant", "bf16", "--tokenizer", TOKENIZER, "--out",
                      qt_p("%s/bf16-src", root), "-q", (char *)NULL) == 0);
        quantize_variant(variants[1]);
    } else {
        quantize_variant(variants[0]);
        quantize_variant(variants[1]);
    }
    /* the quantize outputs are no longer needed: keep the scratch small */
    for (int r = 0; r < 5; r++) {
        static const char *const t[] = {"1", "2", "4", "2", "2"};
        qt_rmtree(qt_p("%s/bf16-q%d-t%s", root, r, t[r]));
        qt_rmtree(qt_p("%s/fp8-q%d-t%s", root, r, t[r]));
    }

    char tiny[600];
    snprintf(tiny, sizeof(tiny), "%s/bf16-src", root);
    static const char *const tiny_prompt[] = {"--prompt-ids", "10,20,30,40,50,60,70,80", NULL};
    runtime_model("tiny-bf16", tiny, tiny_prompt, 16);
    if (!light)
        eval_model("tiny-bf16", tiny);

    if (qt_runl(NULL, "zstd", "--version", (char *)NULL) != 0) {
        printf("nano: skipped (the zstd command is missing; scripts/bootstrap.sh installs it)\n");
    } else {
        char nano[600];
        snprintf(nano, sizeof(nano), "%s/nano-bf16", root);
        int ok = decompress_nano(nano) == 0;
        CHECK_MSG(ok, "cannot decompress %s/bf16 into %s", NANO, nano);
        if (ok) {
            /* scripts/demo.sh's default prompt: the trained drafter accepts several tokens a step */
            static const char *const nano_prompt[] = {
                "--prompt", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:", NULL};
            runtime_model("nano", nano, nano_prompt, 32);
            if (!light)
                eval_model("nano", nano);
        }
    }
    qt_rmtree(root);
    return th_finish("test_determinism");
}
