/* mimo-quantize end to end: bad inputs and usage errors, and tensor-selection patterns.
 *
 * usage: test_quantize_inputs MKFIXTURE QUANTIZE
 *
 * 1. Each bad input fails with its own rule id on stderr ("file: tensor: RULE: message", the
 *    lq_error_format layout of status.h), exit 3, and leaves no OUT and no work directory (the
 *    run's parent directory is empty afterwards); the broken sources are hard-linked copies of the
 *    fixtures with one file replaced:
 *      a shard deleted (CKPT_SHARD_MISSING), the index naming a tensor no shard holds
 *      (CKPT_TENSOR_MISSING), one BF16 expert value set to NaN 0x7FC0 at a row and column chosen
 *      here (QUANT_NONFINITE, the message giving that row and column), an FP8 expert weight whose
 *      weight_scale_inv was removed from its shard and the index (PLAN_FP8_NO_SCALE), a header
 *      dtype "BF16" patched to "BX16" (ST_DTYPE), OUT inside SRC (PLAN_OUT_IN_SRC, SRC unchanged),
 *      an existing OUT (OUT_EXISTS, left as it was), an --include matching nothing
 *      (PLAN_PATTERN_UNUSED), an --include of a 1-D norm (PLAN_NOT_QUANTIZABLE), an --exclude of
 *      every expert (PLAN_NOTHING). Bad --part and --threads values and other usage errors exit 2
 *      (ranges from --help: 1 <= I <= N <= 4096, threads 1..256).
 * 2. Patterns (plan.h: globs or re: over full names, applied in order, later wins):
 *    --exclude 'model.layers.1.*' keeps layer 1's 48 experts as BF16 source bytes and quantizes
 *    the other 480; --include of the dense layer's gate/up/down by regex then --exclude of its
 *    down_proj quantizes exactly gate_proj and up_proj besides the 528 experts. Both outputs pass
 *    the full verification of qt_verify.h with that selection, and the dry run reports each
 *    pattern's match count as counted here with fnmatch/regexec. */
#include <fnmatch.h>
#include <regex.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../harness.h"
#include "libquant/libquant.h"
#include "qt_util.h"
#include "qt_verify.h"

static const char *MK, *Q;
static char root[512], bf16[1024], fp8[1024];
static char bf16_shard[3][64]; /* the bf16 fixture's first three shard names, from its index */

#define EXTRA(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Runs QUANTIZE SRC PARENT/out -q [extra...] in a fresh PARENT = root/bad-NAME and checks the
 * exit code, the rule and that PARENT is left empty. */
static void expect_refusal(const char *name, const char *srcdir, const char *const *extra, int want_rc, const char *rule)
{
    char par[1100], out[1100], errf[1100];
    qt_fmt(par, sizeof(par), "%s/bad-%s", root, name);
    qt_fmt(out, sizeof(out), "%s/out", par);
    qt_fmt(errf, sizeof(errf), "%s/bad-%s.err", root, name);
    mkdir(par, 0755);
    const char *argv[32] = {Q, srcdir, out, "-q"};
    size_t n = 4;
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int rc = qt_run(argv, &(qt_run_opts){.err_path = errf});
    CHECK_MSG(rc == want_rc, "%s: exit %d, want %d", name, rc, want_rc);
    if (rule)
        CHECK_MSG(qt_file_contains(errf, qt_p(": %s: ", rule)) == 1, "%s: stderr does not name rule %s", name, rule);
    char **left = qt_list(par);
    CHECK_MSG(qt_count_names(left) == 0, "%s: left %s next to OUT", name, left && left[0] ? left[0] : "?");
    qt_free_names(left);
}

/* A hard-linked copy of a fixture; the caller replaces files (unlink, then write). */
static void make_src(const char *name, const char *base, char *out, size_t cap)
{
    qt_fmt(out, cap, "%s/src-%s", root, name);
    CHECK_MSG(qt_link_tree(base, out) == 0, "cannot mirror %s", base);
}

static int replace_file(const char *path, const void *data, size_t len)
{
    unlink(path);
    return qt_write(path, data, len);
}

static void case_missing_shard(void)
{
    char s[1100];
    make_src("noshard", bf16, s, sizeof(s));
    CHECK(unlink(qt_p("%s/%s", s, bf16_shard[2])) == 0);
    expect_refusal("shard-missing", s, NULL, 3, "CKPT_SHARD_MISSING");
}

static void case_index_extra_tensor(void)
{
    char s[1100];
    make_src("idx", bf16, s, sizeof(s));
    const char *ip = qt_p("%s/model.safetensors.index.json", s);
    cJSON *idx = qt_json(ip);
    cJSON *wm = idx ? cJSON_GetObjectItemCaseSensitive(idx, "weight_map") : NULL;
    /* Layer 0 is the dense layer (docs/cli.md): it has no experts, so no shard holds this. */
    CHECK(wm && cJSON_AddStringToObject(wm, "model.layers.0.mlp.experts.0.gate_proj.weight", bf16_shard[0]));
    char *text = idx ? cJSON_Print(idx) : NULL;
    CHECK(text && replace_file(ip, text, strlen(text)) == 0);
    free(text);
    cJSON_Delete(idx);
    expect_refusal("tensor-missing", s, NULL, 3, "CKPT_TENSOR_MISSING");
}

static void case_nan(void)
{
    /* An expert of the last layer, so earlier shards are finished when the NaN is met. */
    const char *name = "model.layers.11.mlp.experts.7.up_proj.weight";
    const uint64_t row = 5, col = 77;
    char s[1100];
    make_src("nan", bf16, s, sizeof(s));
    lq_ckpt *ck = NULL;
    lq_ckpt_tensor t;
    if (lq_ckpt_open(s, NULL, &ck, NULL) != LQ_OK || lq_ckpt_find(ck, name, &t) != 0 || t.info->dtype != LQ_DTYPE_BF16) {
        TH_REPORT("cannot find %s in the bf16 fixture", name);
        lq_ckpt_close(ck);
        return;
    }
    char path[1100];
    qt_fmt(path, sizeof(path), "%s", lq_st_path(t.file));
    /* File offset: 8-byte length, header, then the tensor's data_offsets begin (safetensors). */
    uint64_t off = 8 + lq_st_header_len(t.file) + t.info->begin + 2 * (row * t.info->shape[1] + col);
    lq_ckpt_close(ck);
    size_t n = 0;
    uint8_t *d = qt_read(path, &n);
    CHECK(d && off + 2 <= n);
    if (!d || off + 2 > n) {
        free(d);
        return;
    }
    d[off] = 0xC0; /* BF16 0x7FC0, little-endian: a quiet NaN */
    d[off + 1] = 0x7F;
    CHECK(replace_file(path, d, n) == 0);
    free(d);
    char errf[1100];
    qt_fmt(errf, sizeof(errf), "%s/bad-nan.err", root);
    expect_refusal("nan", s, EXTRA("--max-shard-size", "4M"), 3, "QUANT_NONFINITE");
    CHECK(qt_file_contains(errf, name) == 1);
    CHECK_MSG(qt_file_contains(errf, qt_p("row %llu, column %llu", (unsigned long long)row, (unsigned long long)col)) == 1,
              "QUANT_NONFINITE does not give row %llu, column %llu", (unsigned long long)row, (unsigned long long)col);
}

static void case_fp8_no_scale(void)
{
    const char *drop = "model.layers.2.mlp.experts.3.down_proj.weight_scale_inv";
    char s[1100];
    make_src("noscale", fp8, s, sizeof(s));
    lq_ckpt *ck = NULL;
    lq_ckpt_tensor t;
    lq_error err;
    lq_error_clear(&err);
    if (lq_ckpt_open(s, NULL, &ck, &err) != LQ_OK || lq_ckpt_find(ck, drop, &t) != 0) {
        TH_REPORT("cannot find %s in the fp8 fixture", drop);
        lq_ckpt_close(ck);
        return;
    }
    /* Rewrite its shard without it (the writer lays the rest out afresh), then the index. */
    char path[1100], tmp[1100];
    qt_fmt(path, sizeof(path), "%s", lq_st_path(t.file));
    qt_fmt(tmp, sizeof(tmp), "%s/rewritten.safetensors", root);
    const lq_st_file *f = t.file;
    uint64_t dropped_bytes = t.info->nbytes;
    lq_stw *w = NULL;
    lq_status st = lq_stw_create(tmp, &w, &err);
    for (size_t i = 0; st == LQ_OK && i < lq_st_count(f); i++) {
        const lq_tensor_info *ti = lq_st_tensor(f, i);
        if (strcmp(ti->name, drop) != 0)
            st = lq_stw_add(w, ti->name, ti->dtype, ti->rank, ti->shape, &err);
    }
    if (st == LQ_OK)
        st = lq_stw_begin(w, &err);
    for (size_t i = 0; st == LQ_OK && i < lq_stw_count(w); i++) {
        const lq_tensor_info *ti = lq_stw_tensor(w, i);
        const lq_tensor_info *si = lq_st_find(f, ti->name);
        st = lq_stw_write_tensor(w, ti->name, lq_st_data(f, si), (size_t)si->nbytes, &err);
    }
    if (st == LQ_OK)
        st = lq_stw_finish(w, NULL, NULL, &err);
    else
        lq_stw_abort(w);
    lq_ckpt_close(ck);
    CHECK_MSG(st == LQ_OK, "rewriting the shard failed");
    CHECK(unlink(path) == 0 && rename(tmp, path) == 0);
    const char *ip = qt_p("%s/model.safetensors.index.json", s);
    cJSON *idx = qt_json(ip);
    cJSON *wm = idx ? cJSON_GetObjectItemCaseSensitive(idx, "weight_map") : NULL;
    cJSON *md = idx ? cJSON_GetObjectItemCaseSensitive(idx, "metadata") : NULL;
    cJSON *ts = md ? cJSON_GetObjectItemCaseSensitive(md, "total_size") : NULL;
    CHECK(wm && ts && cJSON_GetObjectItemCaseSensitive(wm, drop));
    if (wm && ts) {
        cJSON_DeleteItemFromObjectCaseSensitive(wm, drop);
        cJSON_SetNumberValue(ts, ts->valuedouble - (double)dropped_bytes);
        char *text = cJSON_PrintUnformatted(idx);
        CHECK(text && replace_file(ip, text, strlen(text)) == 0);
        free(text);
    }
    cJSON_Delete(idx);
    /* The copy must still open: the only fault is the missing scale. */
    lq_error_clear(&err);
    CHECK(lq_ckpt_open(s, NULL, &ck, &err) == LQ_OK);
    lq_ckpt_close(ck);
    char errf[1100];
    qt_fmt(errf, sizeof(errf), "%s/bad-fp8-no-scale.err", root);
    expect_refusal("fp8-no-scale", s, NULL, 3, "PLAN_FP8_NO_SCALE");
    CHECK(qt_file_contains(errf, "model.layers.2.mlp.experts.3.down_proj.weight") == 1);
}

static void case_bad_dtype(void)
{
    char s[1100], path[1100];
    make_src("dtype", bf16, s, sizeof(s));
    qt_fmt(path, sizeof(path), "%s/%s", s, bf16_shard[1]);
    size_t n = 0;
    uint8_t *d = qt_read(path, &n);
    uint64_t hl = 0;
    if (d && n >= 8)
        for (int i = 7; i >= 0; i--)
            hl = hl << 8 | d[i];
    /* First "BF16" inside the header, patched to a same-length unknown name. */
    uint8_t *hit = NULL;
    for (uint64_t i = 8; d && hl < n && i + 6 <= 8 + hl; i++)
        if (!memcmp(d + i, "\"BF16\"", 6)) {
            hit = d + i;
            break;
        }
    CHECK_MSG(hit != NULL, "no \"BF16\" in the header of %s", path);
    if (hit) {
        memcpy(hit, "\"BX16\"", 6);
        CHECK(replace_file(path, d, n) == 0);
        expect_refusal("dtype", s, NULL, 3, "ST_DTYPE");
    }
    free(d);
}

static void case_out_in_src(void)
{
    char s[1100], out[1100], errf[1100];
    make_src("outin", bf16, s, sizeof(s));
    char **before = qt_list(s);
    qt_fmt(out, sizeof(out), "%s/converted", s);
    qt_fmt(errf, sizeof(errf), "%s/out-in-src.err", root);
    int rc = qt_runl(&(qt_run_opts){.err_path = errf}, Q, s, out, "-q", (char *)NULL);
    CHECK_MSG(rc == 3, "OUT inside SRC: exit %d, want 3", rc);
    CHECK(qt_file_contains(errf, ": PLAN_OUT_IN_SRC: ") == 1);
    char **after = qt_list(s);
    size_t nb = qt_count_names(before), na = qt_count_names(after);
    int same = nb == na;
    for (size_t i = 0; same && i < nb; i++)
        same = !strcmp(before[i], after[i]);
    CHECK_MSG(same, "OUT inside SRC: SRC's entries changed");
    qt_free_names(before);
    qt_free_names(after);
}

static void case_out_exists(void)
{
    char par[1100], out[1100], errf[1100];
    qt_fmt(par, sizeof(par), "%s/exists", root);
    qt_fmt(out, sizeof(out), "%s/out", par);
    qt_fmt(errf, sizeof(errf), "%s/exists.err", root);
    mkdir(par, 0755);
    mkdir(out, 0755);
    CHECK(qt_write(qt_p("%s/keep.txt", out), "mine\n", 5) == 0);
    int rc = qt_runl(&(qt_run_opts){.err_path = errf}, Q, bf16, out, "-q", (char *)NULL);
    CHECK_MSG(rc == 3, "existing OUT: exit %d, want 3", rc);
    CHECK(qt_file_contains(errf, ": OUT_EXISTS: ") == 1);
    char **in_out = qt_list(out), **in_par = qt_list(par);
    CHECK_MSG(qt_count_names(in_out) == 1 && qt_count_names(in_par) == 1, "existing OUT or its parent changed");
    CHECK(qt_file_contains(qt_p("%s/keep.txt", out), "mine") == 1);
    qt_free_names(in_out);
    qt_free_names(in_par);
}

static void case_usage(void)
{
    static const char *const parts[] = {"0/3", "4/3", "1/0", "1/3x", "abc", "2/5000", ""};
    static const char *const threads[] = {"0", "257", "-1", "x", "2k", ""};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        expect_refusal(qt_p("part-%zu", i), bf16, EXTRA("--part", parts[i]), 2, NULL);
    for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++)
        expect_refusal(qt_p("threads-%zu", i), bf16, EXTRA("--threads", threads[i]), 2, NULL);
    expect_refusal("unknown-option", bf16, EXTRA("--bogus"), 2, NULL);
    expect_refusal("scale-mode", bf16, EXTRA("--scale-mode", "nearest"), 2, NULL);
    expect_refusal("layout", bf16, EXTRA("--layout", "gguf"), 2, NULL);
    expect_refusal("shard-size", bf16, EXTRA("--max-shard-size", "0"), 2, NULL);
    /* Missing OUT: usage. */
    int rc = qt_runl(&(qt_run_opts){0}, Q, bf16, (char *)NULL);
    CHECK_MSG(rc == 2, "SRC without OUT: exit %d, want 2", rc);
}

/* ---- patterns ---- */

static int not_layer1(const char *name) { return qt_is_routed_expert(name) && strncmp(name, "model.layers.1.", 15) != 0; }

static int dense_gate_up(const char *name)
{
    return qt_is_routed_expert(name) || !strcmp(name, "model.layers.0.mlp.gate_proj.weight") ||
           !strcmp(name, "model.layers.0.mlp.up_proj.weight");
}

/* Weight tensors of the fixture a pattern selects, counted here (glob: fnmatch without flags;
 * re: POSIX ERE matched against the whole name; only names ending in ".weight": plan.h). */
static uint64_t count_matches(const char *pat)
{
    lq_ckpt *ck = NULL;
    if (lq_ckpt_open(bf16, NULL, &ck, NULL) != LQ_OK)
        return UINT64_MAX;
    regex_t re;
    int is_re = !strncmp(pat, "re:", 3);
    if (is_re && regcomp(&re, qt_p("^(%s)$", pat + 3), REG_EXTENDED | REG_NOSUB) != 0) {
        lq_ckpt_close(ck);
        return UINT64_MAX;
    }
    uint64_t n = 0;
    for (size_t i = 0; i < lq_ckpt_count(ck); i++) {
        const char *nm = lq_ckpt_at(ck, i).info->name;
        size_t l = strlen(nm);
        if (l < 7 || strcmp(nm + l - 7, ".weight") != 0)
            continue;
        n += is_re ? regexec(&re, nm, 0, NULL, 0) == 0 : fnmatch(pat, nm, 0) == 0;
    }
    if (is_re)
        regfree(&re);
    lq_ckpt_close(ck);
    return n;
}

static void check_dry_matches(const char *const *pats, size_t npats)
{
    char par[1100], jf[1100];
    qt_fmt(par, sizeof(par), "%s/dry-patterns-%zu", root, npats);
    qt_fmt(jf, sizeof(jf), "%s/dry-patterns-%zu.json", root, npats);
    mkdir(par, 0755);
    const char *argv[16] = {Q, bf16, qt_p("%s/out", par), "--dry-run", "--format", "json", "-q"};
    size_t n = 7;
    for (size_t i = 0; i < npats; i++) {
        argv[n++] = pats[2 * i];
        argv[n++] = pats[2 * i + 1];
    }
    argv[n] = NULL;
    int rc = qt_run(argv, &(qt_run_opts){.out_path = jf});
    CHECK_MSG(rc == 0, "dry run with patterns: exit %d", rc);
    cJSON *j = qt_json(jf);
    const cJSON *arr = lq_json_get(j, "patterns");
    CHECK_EQ_U64(cJSON_GetArraySize(arr), npats);
    for (size_t i = 0; i < npats; i++) {
        const cJSON *o = cJSON_GetArrayItem(arr, (int)i);
        const char *kind = pats[2 * i] + 2; /* "include" / "exclude" */
        uint64_t m = UINT64_MAX;
        lq_json_u64(lq_json_get(o, "matched"), &m);
        CHECK_STR(cJSON_GetStringValue(lq_json_get(o, kind)), pats[2 * i + 1]);
        CHECK_MSG(m == count_matches(pats[2 * i + 1]), "--%s %s: dry run says %llu matches, counted %llu", kind,
                  pats[2 * i + 1], (unsigned long long)m, (unsigned long long)count_matches(pats[2 * i + 1]));
    }
    cJSON_Delete(j);
}

static void run_pattern_case(const char *tag, int (*pred)(const char *), const char *const *pats, size_t npats,
                             size_t want_quant, const char *stderr_note)
{
    char out[1100], errf[1100];
    qt_fmt(out, sizeof(out), "%s/out-%s", root, tag);
    qt_fmt(errf, sizeof(errf), "%s/%s.err", root, tag);
    const char *argv[16] = {Q, bf16, out, "--max-shard-size", "4M"};
    size_t n = 5;
    for (size_t i = 0; i < 2 * npats; i++)
        argv[n++] = pats[i];
    argv[n] = NULL;
    int rc = qt_run(argv, &(qt_run_opts){.err_path = errf});
    CHECK_MSG(rc == 0, "%s: exit %d", tag, rc);
    if (rc != 0)
        return;
    if (stderr_note)
        CHECK_MSG(qt_file_contains(errf, stderr_note) == 1, "%s: stderr lacks \"%s\"", tag, stderr_note);
    qt_result r;
    qt_expect e = {.src = bf16, .out = out, .quantized = pred, .min_shards = 3 /* as in test_quantize_output.c */};
    qt_verify(&e, &r);
    th_checks += r.checks;
    CHECK_MSG(r.failures == 0, "%s: %d output checks failed (listed above)", tag, r.failures);
    CHECK_EQ_U64(r.nquant, want_quant);
    fprintf(stderr, "%s: %zu MXFP4 weights, %zu kept byte for byte, SQNR %.4f dB (report %.4f)\n", tag, r.nquant,
            r.nkept, r.sqnr_db, r.report_sqnr_db);
    check_dry_matches(pats, npats);
}

static void case_patterns(void)
{
    /* 11 MoE layers x 16 experts x 3 (docs/cli.md) = 528; layer 1 holds 48 of them. */
    run_pattern_case("exclude-layer1", not_layer1, EXTRA("--exclude", "model.layers.1.*"), 1, 480, NULL);
    run_pattern_case("dense-gate-up", dense_gate_up,
                     EXTRA("--include", "re:model\\.layers\\.0\\.mlp\\.(gate|up|down)_proj\\.weight", "--exclude",
                           "model.layers.0.mlp.down_proj.weight"),
                     2, 530, "model.layers.0.mlp.gate_proj.weight is not a routed expert");
    /* The dense layer (docs/cli.md: intermediate 1024, hidden 256): up_proj [1024, 256] becomes
     * U8 [1024, 128] + [1024, 8]; down_proj [256, 1024] stays BF16. */
    lq_ckpt *ck = NULL;
    lq_ckpt_tensor t;
    if (lq_ckpt_open(qt_p("%s/out-dense-gate-up", root), NULL, &ck, NULL) == LQ_OK) {
        CHECK(lq_ckpt_find(ck, "model.layers.0.mlp.up_proj.weight", &t) == 0 && t.info->dtype == LQ_DTYPE_U8 &&
              t.info->shape[0] == 1024 && t.info->shape[1] == 128);
        CHECK(lq_ckpt_find(ck, "model.layers.0.mlp.up_proj.weight_scale", &t) == 0 && t.info->shape[1] == 8);
        CHECK(lq_ckpt_find(ck, "model.layers.0.mlp.down_proj.weight", &t) == 0 && t.info->dtype == LQ_DTYPE_BF16 &&
              t.info->shape[0] == 256 && t.info->shape[1] == 1024);
        CHECK(lq_ckpt_find(ck, "model.layers.0.mlp.down_proj.weight_scale", &t) != 0);
    } else {
        TH_REPORT("cannot open the dense-gate-up output");
    }
    lq_ckpt_close(ck);
}

/* An I/O error while writing (a 1 MiB file-size limit makes write(2) fail with EFBIG, as a full
 * disk makes it fail with ENOSPC): exit 3 naming the file and the rule OUT_WRITE, no OUT, no
 * temporary left in the work directory, and --resume afterwards (without the limit) produces
 * exactly the output of an undisturbed run (reference/ecosystem_reliability.md 4.4 item 2). */
static void case_write_error(void)
{
    char par[1100], out[1100], ref[1100], work[1200], errf[1100], msg[512];
    qt_fmt(par, sizeof(par), "%s/ioerr", root);
    qt_fmt(out, sizeof(out), "%s/out", par);
    qt_fmt(ref, sizeof(ref), "%s/ref", par);
    qt_fmt(work, sizeof(work), "%s/out.mimo-partial", par);
    qt_fmt(errf, sizeof(errf), "%s/ioerr.err", root);
    mkdir(par, 0755);
    CHECK_EQ_U64(qt_runl(NULL, Q, bf16, ref, "-q", "--max-shard-size", "3M", NULL), 0);
    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = (rlim_t)1 << 20;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN); /* inherited by the child: write fails, no signal */
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    const char *argv[] = {Q, bf16, out, "-q", "--max-shard-size", "3M", NULL};
    int rc = qt_run(argv, &(qt_run_opts){.err_path = errf});
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK_MSG(rc == 3, "write error: exit %d, want 3", rc);
    CHECK_MSG(qt_file_contains(errf, ": OUT_WRITE: ") == 1, "write error: stderr does not name OUT_WRITE");
    CHECK_MSG(qt_file_contains(errf, ".safetensors: ") == 1, "write error: stderr does not name the file");
    CHECK(!qt_exists(out));
    CHECK_MSG(qt_is_dir(work), "write error: the work directory (kept for --resume) is gone");
    CHECK_EQ_U64(qt_count_matching(work, ".tmp-"), 0);
    CHECK_EQ_U64(qt_runl(NULL, Q, bf16, out, "-q", "--max-shard-size", "3M", "--resume", NULL), 0);
    CHECK_MSG(qt_dirs_differ(ref, out, msg, sizeof(msg)) == 0, "write error then --resume: %s", msg);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MKFIXTURE QUANTIZE\n", argv[0]);
        return 2;
    }
    MK = argv[1];
    Q = argv[2];
    if (qt_mkroot(root, sizeof(root)) != 0) {
        perror("mkdtemp");
        return 1;
    }
    qt_fmt(bf16, sizeof(bf16), "%s/bf16", root);
    qt_fmt(fp8, sizeof(fp8), "%s/fp8", root);
    int ok = qt_mkfixture(MK, "bf16", bf16) == 0 && qt_mkfixture(MK, "fp8", fp8) == 0;
    CHECK_MSG(ok, "mimo-mkfixture failed");
    lq_ckpt *ck = NULL;
    if (ok && lq_ckpt_open(bf16, NULL, &ck, NULL) == LQ_OK && lq_ckpt_shard_count(ck) >= 3) {
        for (int i = 0; i < 3; i++)
            qt_fmt(bf16_shard[i], sizeof(bf16_shard[i]), "%s", lq_ckpt_shard_name(ck, (size_t)i));
    } else {
        TH_REPORT("the bf16 fixture does not open with 3 or more shards (docs/cli.md: tiny has several)");
        ok = 0;
    }
    lq_ckpt_close(ck);
    if (ok) {
        case_missing_shard();
        case_index_extra_tensor();
        case_nan();
        case_fp8_no_scale();
        case_bad_dtype();
        case_out_in_src();
        case_out_exists();
        case_write_error();
        expect_refusal("pattern-unused", bf16, EXTRA("--include", "model.nothing.*"), 3, "PLAN_PATTERN_UNUSED");
        expect_refusal("norm", bf16, EXTRA("--include", "model.layers.0.input_layernorm.weight"), 3,
                       "PLAN_NOT_QUANTIZABLE");
        expect_refusal("nothing", bf16, EXTRA("--exclude", "*.mlp.experts.*"), 3, "PLAN_NOTHING");
        case_usage();
        case_patterns();
    }
    qt_rmtree(root);
    return th_finish("test_quantize_inputs");
}
