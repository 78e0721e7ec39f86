/* mimo-quantize end to end: quality gates, crashes, signals and --resume.
 *
 * usage: test_quantize_resume MKFIXTURE QUANTIZE
 *
 * Every run converts the tiny fp8 fixture with --max-shard-size 4M (7 shards); the reference is
 * one uninterrupted run, and "identical" means the same paths, sizes and SHA-256 for every file.
 *
 * 1. Gates. Thresholds sit far on either side of the per-tensor figures of Gaussian data in
 *    mse mode (reference/mxfp4_formats.md 1.8: 19.05 dB, cosine 0.99376, clip 0.83%): a fresh run
 *    with --min-sqnr 10 --min-cosine 0.99 --max-clip 0.5 passes and equals the reference;
 *    --min-sqnr 25 fails with exit 1, names on stderr exactly the tensors the report shows below
 *    the limit, creates no OUT and writes <OUT>.report.json (the reference's report, byte for
 *    byte); --min-cosine 0.999 and --max-clip 0.001 fail likewise on --resume; the same command
 *    with --resume and passing thresholds then finalizes the kept work directory into an OUT
 *    identical to the reference.
 * 2. kill -9 through MIMO_TEST_KILL_AFTER_BYTES at 7 points placed from the sizes of a finished
 *    work directory (the gated run's): very early (writing the plan), mid first shard, between
 *    shards 1 and 2, mid 4th shard, during the drafter copy, and in finalize (index, manifest).
 *    After each the kill is confirmed to have landed in that phase, then --resume gives an OUT
 *    identical to the reference and nothing else next to it. After the mid-first-shard kill, a
 *    rerun without --resume is refused (RUN_EXISTS, exit 3) and --resume --scale-mode even too
 *    (RUN_MISMATCH), neither changing the work directory; a completed shard with one flipped byte
 *    is refused on resume (RUN_SHARD_DAMAGED) and the work directory is kept, as its message
 *    tells the user to remove it.
 * 3. SIGTERM and SIGINT once the work directory holds a finished shard (the child is stepped
 *    with SIGSTOP/SIGCONT so the signal lands mid-run): exit 143 / 130, no temporary file left,
 *    and --resume completes identically.
 * 4. --resume of a --part into an existing directory that is not a work directory is refused
 *    (RUN_STATE) and leaves that directory's files alone. */
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"
#include "libquant/libquant.h"
#include "qt_util.h"

static const char *MK, *Q;
static char root[512], src[1024], ref[1024];
/* The reference run's shards (names from its index), which every other run must reproduce. */
static int nshards;
static char shard_name[16][64];

/* Runs QUANTIZE SRC OUT --max-shard-size 4M -q [extra...] with an optional kill point. */
static int quant(const char *out, const char *kill_after, const char *errf, const char *const *extra)
{
    const char *argv[32] = {Q, src, out, "--max-shard-size", "4M", "-q"};
    size_t n = 6;
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return qt_run(argv, &(qt_run_opts){.kill_after = kill_after, .err_path = errf});
}

#define EXTRA(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_rule(const char *errf, const char *rule)
{
    CHECK_MSG(qt_file_contains(errf, qt_p(": %s: ", rule)) == 1, "stderr (%s) does not name rule %s", errf, rule);
}

static void expect_same_as_ref(const char *out, const char *what)
{
    char msg[700];
    CHECK_MSG(!qt_dirs_differ(ref, out, msg, sizeof(msg)), "%s: OUT differs from the uninterrupted run: %s", what, msg);
}

/* The parent directory holds exactly the named entries (NULL-terminated). */
static void expect_parent(const char *dir, const char *const *want, const char *what)
{
    char **names = qt_list(dir);
    size_t n = qt_count_names(names), w = 0;
    while (want[w])
        w++;
    int same = n == w;
    for (size_t i = 0; same && i < n; i++) {
        int found = 0;
        for (size_t k = 0; k < w; k++)
            found |= !strcmp(names[i], want[k]);
        same = found;
    }
    if (!same) {
        char list[1500] = "";
        for (size_t i = 0; i < n; i++)
            qt_fmt(list + strlen(list), sizeof(list) - strlen(list), " %s", names[i]);
        TH_REPORT("%s: %s holds [%s ] (want %zu entries)", what, dir, list, w);
    } else {
        th_checks++;
    }
    qt_free_names(names);
}

static uint64_t fsize(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* ---- 1. gates ---- */

typedef struct sizes {
    uint64_t plan, srcrec, config, extras_rec, drafter, work_total;
    uint64_t shard[16], rec[16];
    int nshards;
    uint64_t index, report, manifest;
} sizes;

static size_t count_failing(const char *report, const char *metric, double lim, int below)
{
    cJSON *j = qt_json(report);
    size_t n = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, lq_json_get(j, "tensors")) {
        const cJSON *v = lq_json_get(t, metric);
        if (cJSON_IsNumber(v) && (below ? v->valuedouble < lim : v->valuedouble > lim))
            n++;
    }
    cJSON_Delete(j);
    return n;
}

static void check_gate_failure(const char *out, const char *errf, int rc, const char *metric, double lim, int below)
{
    char rep[1100];
    qt_fmt(rep, sizeof(rep), "%s.report.json", out);
    CHECK_MSG(rc == 1, "gate %s %g: exit %d, want 1", metric, lim, rc);
    CHECK_MSG(!qt_exists(out), "gate %s failed but OUT exists", metric);
    CHECK_MSG(qt_exists(rep), "gate %s failed but %s is missing", metric, rep);
    expect_rule(errf, "GATE");
    size_t want = count_failing(rep, metric, lim, below);
    size_t lines = qt_count_lines_with(errf, qt_p(": %s ", metric));
    CHECK_MSG(want > 0 && lines == want, "gate %s %g: %zu tensors named on stderr, the report has %zu beyond the limit",
              metric, lim, lines, want);
    /* A named tensor, e.g. the first of the report. */
    cJSON *j = qt_json(rep);
    const char *first = cJSON_GetStringValue(lq_json_get(cJSON_GetArrayItem(lq_json_get(j, "tensors"), 0), "name"));
    CHECK_MSG(first && qt_file_contains(errf, qt_p("gate: %s: %s ", first, metric)) == 1, "stderr does not name %s",
              first ? first : "(null)");
    cJSON_Delete(j);
}

static void case_gates(sizes *sz)
{
    char out[1100], errf[1100], rep[1100];
    /* All three gates, passing. */
    qt_fmt(out, sizeof(out), "%s/gate-pass/out", root);
    mkdir(qt_p("%s/gate-pass", root), 0755);
    int rc = quant(out, NULL, NULL, EXTRA("--min-sqnr", "10", "--min-cosine", "0.99", "--max-clip", "0.5"));
    CHECK_MSG(rc == 0, "passing gates: exit %d", rc);
    expect_same_as_ref(out, "passing gates");
    expect_parent(qt_p("%s/gate-pass", root), EXTRA("out"), "passing gates");

    mkdir(qt_p("%s/gate", root), 0755);
    qt_fmt(out, sizeof(out), "%s/gate/out", root);
    qt_fmt(rep, sizeof(rep), "%s.report.json", out);
    qt_fmt(errf, sizeof(errf), "%s/gate-sqnr.err", root);
    rc = quant(out, NULL, errf, EXTRA("--min-sqnr", "25"));
    check_gate_failure(out, errf, rc, "sqnr_db", 25, 1);
    char h1[65] = "", h2[65] = "-";
    qt_sha256_file(rep, h1, NULL);
    qt_sha256_file(qt_p("%s/%s", ref, LQ_REPORT_FILE), h2, NULL);
    CHECK_MSG(!strcmp(h1, h2), "%s differs from the reference run's %s", rep, LQ_REPORT_FILE);

    /* The kept work directory gives the kill points their byte offsets (see case_kills). */
    char work[1100];
    qt_fmt(work, sizeof(work), "%s.mimo-partial", out);
    memset(sz, 0, sizeof(*sz));
    sz->plan = fsize(qt_p("%s/.mimo-plan.json", work));
    sz->extras_rec = fsize(qt_p("%s/.mimo-extras.json", work));
    sz->config = fsize(qt_p("%s/config.json", work));
    sz->drafter = fsize(qt_p("%s/dflash/dflash_draft_model.safetensors", work));
    for (int j = 0; j < 16; j++)
        sz->srcrec += fsize(qt_p("%s/.mimo-src-%d.json", work, j));
    qt_tree t = {0};
    qt_tree_scan(work, &t);
    for (size_t i = 0; i < t.n; i++)
        sz->work_total += t.e[i].is_dir ? 0 : t.e[i].size;
    qt_tree_free(&t);
    for (int s = 0; s < nshards; s++) {
        sz->shard[s] = fsize(qt_p("%s/%s", work, shard_name[s]));
        sz->rec[s] = fsize(qt_p("%s/.mimo-done-%s.json", work, shard_name[s]));
        sz->nshards += sz->shard[s] > 0 && sz->rec[s] > 0;
    }
    sz->index = fsize(qt_p("%s/model.safetensors.index.json", ref));
    sz->report = fsize(qt_p("%s/%s", ref, LQ_REPORT_FILE));
    sz->manifest = fsize(qt_p("%s/%s", ref, LQ_MANIFEST_FILE));
    CHECK_EQ_U64(sz->nshards, nshards); /* every shard finished before the gate failed */
    fprintf(stderr, "work directory: plan %llu, %d shards, work total %llu bytes; finalize: index %llu, report %llu, "
                    "manifest %llu\n", (unsigned long long)sz->plan, sz->nshards, (unsigned long long)sz->work_total,
            (unsigned long long)sz->index, (unsigned long long)sz->report, (unsigned long long)sz->manifest);

    qt_fmt(errf, sizeof(errf), "%s/gate-cos.err", root);
    rc = quant(out, NULL, errf, EXTRA("--resume", "--min-cosine", "0.999"));
    check_gate_failure(out, errf, rc, "cosine", 0.999, 1);
    qt_fmt(errf, sizeof(errf), "%s/gate-clip.err", root);
    rc = quant(out, NULL, errf, EXTRA("--resume", "--max-clip", "0.001"));
    check_gate_failure(out, errf, rc, "clip_frac", 0.001, 0);
    /* The same command with passing thresholds finalizes the kept work. */
    rc = quant(out, NULL, NULL, EXTRA("--resume", "--min-sqnr", "10", "--min-cosine", "0.99", "--max-clip", "0.5"));
    CHECK_MSG(rc == 0, "resume with passing gates: exit %d", rc);
    expect_same_as_ref(out, "gates then --resume");
    CHECK(!qt_exists(work));
}

/* ---- 2. kills ---- */

static size_t done_records(const char *work) { return qt_count_matching(work, ".mimo-done-"); }

typedef struct kill_point {
    const char *what;
    uint64_t at;
    int min_done, max_done;  /* completed shard records expected after the kill */
    int extras_done;         /* .mimo-extras.json expected (1), absent (0), either (-1) */
} kill_point;

static void case_kills(const sizes *sz)
{
    uint64_t before[16];
    uint64_t acc = sz->plan + sz->srcrec;
    for (int s = 0; s < sz->nshards; s++) {
        before[s] = acc;
        acc += sz->shard[s] + sz->rec[s];
    }
    /* Bytes go through the library's output files in this order (convert.c, finalize.c): the
     * plan, each shard and its record (the source-hash records, srcrec in all, are written by a
     * side thread at times that vary: `before` counts them early, so a point is at most srcrec
     * bytes late), then config.json, the drafter's weights, its index, the other copied files
     * and the extras record (work_total in all), then the index, report and manifest. */
    const kill_point pts[] = {
        {"very early (writing the plan)", 1, -1, -1, 0},
        {"mid first shard", sz->plan + sz->shard[0] / 2, 0, 0, 0},
        {"between shards 1 and 2", before[1] + 64, 1, 1, 0},
        {"mid 4th shard", before[3] + sz->shard[3] / 2, 3, 3, 0},
        {"during the drafter copy", acc + sz->config + sz->drafter / 2, nshards, nshards, 0},
        {"finalize: index", sz->work_total + sz->index / 2, nshards, nshards, 1},
        {"finalize: manifest", sz->work_total + sz->index + sz->report + sz->manifest / 2, nshards, nshards, 1},
    };
    for (size_t k = 0; k < sizeof(pts) / sizeof(pts[0]); k++) {
        const kill_point *p = &pts[k];
        char par[1100], out[1100], work[1100], errf[1100], at[32];
        qt_fmt(par, sizeof(par), "%s/kill%zu", root, k);
        qt_fmt(out, sizeof(out), "%s/out", par);
        qt_fmt(work, sizeof(work), "%s/out.mimo-partial", par);
        qt_fmt(at, sizeof(at), "%llu", (unsigned long long)p->at);
        mkdir(par, 0755);
        int rc = quant(out, at, NULL, NULL);
        CHECK_MSG(rc == 128 + SIGKILL, "kill %s (at byte %s): exit %d, want %d", p->what, at, rc, 128 + SIGKILL);
        CHECK_MSG(!qt_exists(out), "kill %s: OUT exists", p->what);
        if (p->min_done >= 0) {
            size_t d = done_records(work);
            CHECK_MSG(qt_is_dir(work) && d >= (size_t)p->min_done && d <= (size_t)p->max_done,
                      "kill %s: %zu finished shards in the work directory, want %d..%d", p->what, d, p->min_done,
                      p->max_done);
            if (p->extras_done >= 0)
                CHECK_MSG(qt_exists(qt_p("%s/.mimo-extras.json", work)) == p->extras_done,
                          "kill %s: extras record %s", p->what, p->extras_done ? "missing" : "already written");
        } else {
            /* Killed while the work directory was still being set up under a temporary name:
             * there is nothing to resume yet (the leftover must be gone after the resume). */
            CHECK_MSG(!qt_exists(work), "kill %s: the work directory already exists", p->what);
        }
        if (k == 1) {
            /* Reruns that must not touch the kept work. */
            char msg[700];
            qt_tree t0 = {0}, t1 = {0};
            qt_tree_scan(work, &t0);
            qt_fmt(errf, sizeof(errf), "%s/rerun.err", root);
            rc = quant(out, NULL, errf, NULL);
            CHECK_MSG(rc == 3, "rerun without --resume: exit %d, want 3", rc);
            expect_rule(errf, "RUN_EXISTS");
            qt_fmt(errf, sizeof(errf), "%s/mismatch.err", root);
            rc = quant(out, NULL, errf, EXTRA("--resume", "--scale-mode", "even"));
            CHECK_MSG(rc == 3, "--resume --scale-mode even: exit %d, want 3", rc);
            expect_rule(errf, "RUN_MISMATCH");
            qt_tree_scan(work, &t1);
            CHECK_MSG(!qt_tree_diff(&t0, &t1, msg, sizeof(msg)), "refused reruns changed the work directory: %s", msg);
            CHECK(!qt_exists(out));
            qt_tree_free(&t0);
            qt_tree_free(&t1);
        }
        rc = quant(out, NULL, NULL, EXTRA("--resume"));
        CHECK_MSG(rc == 0, "resume after kill %s: exit %d", p->what, rc);
        expect_same_as_ref(out, p->what);
        expect_parent(par, EXTRA("out"), p->what);
    }
}

static void case_damaged(const sizes *sz)
{
    char par[1100], out[1100], work[1100], errf[1100], at[32], shard[1100];
    qt_fmt(par, sizeof(par), "%s/damaged", root);
    qt_fmt(out, sizeof(out), "%s/out", par);
    qt_fmt(work, sizeof(work), "%s.mimo-partial", out);
    qt_fmt(errf, sizeof(errf), "%s/damaged.err", root);
    qt_fmt(shard, sizeof(shard), "%s/%s", work, shard_name[1]);
    mkdir(par, 0755);
    uint64_t mid4 = sz->plan + sz->srcrec;
    for (int s = 0; s < 3; s++)
        mid4 += sz->shard[s] + sz->rec[s];
    qt_fmt(at, sizeof(at), "%llu", (unsigned long long)(mid4 + sz->shard[3] / 2));
    int rc = quant(out, at, NULL, NULL);
    CHECK_EQ_U64(rc, 128 + SIGKILL);
    size_t n = 0;
    uint8_t *d = qt_read(shard, &n);
    CHECK_MSG(d && n > 1000, "shard 2 not finished before the kill");
    if (!d || n <= 1000) {
        free(d);
        return;
    }
    /* Replace (not rewrite in place) with a copy whose middle byte is flipped. */
    d[n / 2] ^= 0x40;
    unlink(shard);
    CHECK(qt_write(shard, d, n) == 0);
    free(d);
    rc = quant(out, NULL, errf, EXTRA("--resume"));
    CHECK_MSG(rc == 3, "resume over a damaged shard: exit %d, want 3", rc);
    expect_rule(errf, "RUN_SHARD_DAMAGED");
    CHECK(qt_file_contains(errf, shard_name[1]) == 1);
    CHECK(!qt_exists(out));
    /* "remove the work directory to start over": the tool must leave that to the user. */
    CHECK_MSG(qt_is_dir(work) && qt_exists(qt_p("%s/.mimo-plan.json", work)),
              "RUN_SHARD_DAMAGED: the work directory was deleted although the message asks the user to remove it");
    qt_rmtree(work);
    rc = quant(out, NULL, NULL, NULL);
    CHECK_MSG(rc == 0, "fresh run after removing the damaged work: exit %d", rc);
    expect_same_as_ref(out, "fresh run after a damaged shard");
}

/* ---- 3. signals ---- */

static void case_signal(int sig, int want_rc)
{
    char par[1100], out[1100], work[1100], errf[1100];
    qt_fmt(par, sizeof(par), "%s/sig%d", root, sig);
    qt_fmt(out, sizeof(out), "%s/out", par);
    qt_fmt(work, sizeof(work), "%s.mimo-partial", out);
    qt_fmt(errf, sizeof(errf), "%s/sig%d.err", root, sig);
    mkdir(par, 0755);
    const char *argv[] = {Q, src, out, "--max-shard-size", "4M", "-q", NULL};
    pid_t pid = qt_spawn(argv, &(qt_run_opts){.err_path = errf, .start_stopped = 1});
    int st = 0, rc = -1, sent = 0;
    if (pid < 0 || waitpid(pid, &st, WUNTRACED) != pid || !WIFSTOPPED(st)) {
        TH_REPORT("could not start the child stopped");
        return;
    }
    /* Step the child in 2 ms slices until a shard is finished but not all of them are. */
    for (int step = 0; step < 100000; step++) {
        kill(pid, SIGCONT);
        usleep(2000);
        kill(pid, SIGSTOP);
        pid_t r;
        while ((r = waitpid(pid, &st, WUNTRACED)) < 0 && errno == EINTR)
            ;
        if (r != pid || !WIFSTOPPED(st)) {
            TH_REPORT("signal %d: the run ended before a shard was finished", sig);
            return;
        }
        size_t d = done_records(work);
        if (d >= 1 && d < (size_t)nshards) {
            kill(pid, sig);
            kill(pid, SIGCONT);
            sent = 1;
            rc = qt_wait(pid, 120);
            break;
        }
    }
    if (!sent) {
        kill(pid, SIGKILL);
        qt_wait(pid, 10);
        TH_REPORT("signal %d: no stop point found", sig);
        return;
    }
    CHECK_MSG(rc == want_rc, "signal %d: exit %d, want %d", sig, rc, want_rc);
    CHECK(qt_file_contains(errf, "interrupted") == 1);
    CHECK(!qt_exists(out));
    CHECK_MSG(done_records(work) >= 1, "signal %d: finished shards not kept", sig);
    CHECK_MSG(qt_count_matching(par, ".tmp-") == 0 && qt_count_matching(par, ".init-") == 0,
              "signal %d: temporary files left", sig);
    fprintf(stderr, "signal %d: exit %d with %zu of %d shards kept\n", sig, rc, done_records(work), nshards);
    rc = quant(out, NULL, NULL, EXTRA("--resume"));
    CHECK_MSG(rc == 0, "resume after signal %d: exit %d", sig, rc);
    expect_same_as_ref(out, sig == SIGTERM ? "SIGTERM then --resume" : "SIGINT then --resume");
    expect_parent(par, EXTRA("out"), "after the signal and --resume");
}

/* ---- 4. a directory that is no work directory ---- */

static void case_foreign_dir(void)
{
    char dir[1100], errf[1100];
    qt_fmt(dir, sizeof(dir), "%s/not-a-work-dir", root);
    qt_fmt(errf, sizeof(errf), "%s/foreign.err", root);
    mkdir(dir, 0755);
    CHECK(qt_write(qt_p("%s/notes.txt", dir), "keep me\n", 8) == 0);
    CHECK(qt_write(qt_p("%s/data.bin", dir), "\x01\x02\x03", 3) == 0);
    qt_tree t0 = {0}, t1 = {0};
    qt_tree_scan(dir, &t0);
    int rc = quant(dir, NULL, errf, EXTRA("--part", "1/2", "--resume"));
    CHECK_MSG(rc == 3, "--part --resume into a foreign directory: exit %d, want 3", rc);
    expect_rule(errf, "RUN_STATE");
    char msg[700] = "cannot scan";
    CHECK_MSG(qt_tree_scan(dir, &t1) == 0 && !qt_tree_diff(&t0, &t1, msg, sizeof(msg)),
              "a refused --resume changed a directory that is not a work directory: %s", msg);
    qt_tree_free(&t0);
    qt_tree_free(&t1);
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
    qt_fmt(src, sizeof(src), "%s/fp8", root);
    qt_fmt(ref, sizeof(ref), "%s/ref", root);
    int ok = qt_mkfixture(MK, "fp8", src) == 0;
    CHECK_MSG(ok, "mimo-mkfixture failed");
    int rc = ok ? quant(ref, NULL, NULL, NULL) : -1;
    CHECK_MSG(rc == 0, "reference run: exit %d", rc);
    lq_ckpt *ck = NULL;
    if (rc == 0 && lq_ckpt_open(ref, NULL, &ck, NULL) == LQ_OK) {
        nshards = (int)lq_ckpt_shard_count(ck);
        for (int s = 0; s < nshards && s < 16; s++)
            qt_fmt(shard_name[s], sizeof(shard_name[s]), "%s", lq_ckpt_shard_name(ck, s));
    }
    lq_ckpt_close(ck);
    /* 4M shards of the fixture's ~24 MB of output tensors: several; the kill points need 5+. */
    CHECK_MSG(nshards >= 5 && nshards <= 16, "reference run has %d shards", nshards);
    if (ok && rc == 0 && nshards >= 5 && nshards <= 16) {
        sizes sz;
        case_gates(&sz);
        if (sz.nshards == nshards && sz.plan > 0) {
            case_kills(&sz);
            case_damaged(&sz);
        }
        case_signal(SIGTERM, 143);
        case_signal(SIGINT, 130);
        case_foreign_dir();
    }
    qt_rmtree(root);
    return th_finish("test_quantize_resume");
}
