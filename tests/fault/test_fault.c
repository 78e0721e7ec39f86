/* mimo-quantize under injected faults: kill -9 anywhere, I/O errors, a double Ctrl-C, a read-only
 * output directory.
 *
 * usage: test_fault MKFIXTURE QUANTIZE FAULT_SHIM.so
 *
 * Every run converts the tiny fp8 fixture with --max-shard-size 4M (7 shards). The expected output
 * is the reference: one uninterrupted run of the same command; "identical" means the same paths,
 * sizes and SHA-256 for every file (tests/quantize/qt_util.c). Invariant checked after every fault
 * ("complete or absent"): OUT is absent or identical to the reference, and every file of the work
 * directory OUT.mimo-partial under a final name (not ".mimo-*" bookkeeping, not a ".NAME.tmp-PID"
 * temporary) is byte-identical to the reference's file of that name.
 *
 * 1. SIGKILL at 25 points: 22 byte offsets through MIMO_TEST_KILL_AFTER_BYTES (libquant/outfile.c),
 *    placed from the sizes of a finished work directory (a run whose quality gate fails keeps it),
 *    from the plan's first byte through the shards (inside a header, mid tensor data, the last
 *    write, and every shard's record, i.e. between shards) and the extras to the index, report
 *    and manifest; and 3 points of the publication, through MIMO_TEST_KILL_AT
 *    (libquant/finalize.c): the publish record written, the bookkeeping dropped (just before the
 *    rename that publishes OUT), and just after the rename, each leaving OUT.mimo-publish.json.
 *    After each: exit 137, the invariant, then --resume exits 0 with OUT identical to the
 *    reference and nothing else left beside it (no work directory, no record).
 * 2. tests/fault/fault_shim.c through LD_PRELOAD: EIO reading a source shard (half way), EIO from
 *    fsync of output shard 3, ENOSPC writing mid 4th shard, ENOSPC writing the report in finalize.
 *    Each: the shim logged the fault, exit 3 (docs/cli.md: bad input or I/O), stderr names the
 *    file and the errno text, no temporary anywhere, OUT absent, the file that failed not under its
 *    final name, the invariant, the source tree unchanged (digests before and after); then --resume
 *    without the shim gives the reference.
 * 3. SIGINT twice, 1 ms apart, once a shard is finished (the second lands while the run unwinds):
 *    exit 130, "interrupted" on stderr, no temporary, OUT absent, then --resume gives the
 *    reference; the same with SIGINT repeated every 250 us until the process has exited (so some
 *    arrive during its cleanup, whenever that runs); and SIGINT twice while the run starts
 *    (before or just after its work directory exists), then --resume or a fresh run (whichever
 *    applies) gives the reference.
 * 4. Parent of OUT mode 0555: exit 3 naming the directory and "Permission denied", nothing
 *    created. Root ignores the mode, so as root the tool runs as uid/gid 65534; skipped (counted
 *    and printed as skipped, not passed) only when that cannot be done. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "../quantize/qt_util.h"
#include "libquant/libquant.h"

static const char *MK, *Q, *SHIM;
static char root[512], src[1024], ref[1024];
static int nshards;
static char shard_name[16][64];
static int skipped;
/* Set while the read-only case runs as root: the child gives up root for uid/gid 65534 (nobody)
 * before exec, since root may create files in a mode 0555 directory. */
static int as_nobody;

/* ---- running mimo-quantize ---- */

/* Starts QUANTIZE SRC OUT --max-shard-size 4M -q [extra...] with env ("K=V" strings) added to
 * the child's environment; stderr to errf. Fault variables not in env are removed. */
static pid_t spawn_q(const char *out, const char *const *env, const char *errf, int stopped, const char *const *extra)
{
    const char *argv[32] = {Q, src, out, "--max-shard-size", "4M", "-q"};
    size_t n = 6;
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fd = open(errf ? errf : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0)
        dup2(fd, STDERR_FILENO);
    if (nul >= 0)
        dup2(nul, STDOUT_FILENO);
    static const char *const vars[] = {"MIMO_TEST_KILL_AFTER_BYTES", "MIMO_TEST_KILL_AT", "LD_PRELOAD",
                                       "FAULT_READ_PATH", "FAULT_READ_AFTER", "FAULT_FSYNC_PATH",
                                       "FAULT_WRITE_PATH", "FAULT_WRITE_AFTER", "FAULT_LOG"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    if (as_nobody && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
        _exit(126);
    for (size_t i = 0; env && env[i]; i++)
        putenv((char *)env[i]);
    if (stopped)
        raise(SIGSTOP);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

static int quant(const char *out, const char *const *env, const char *errf, const char *const *extra)
{
    return qt_wait(spawn_q(out, env, errf, 0, extra), 240);
}

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- checks ---- */

static void expect_same_as_ref(const char *out, const char *what)
{
    char msg[700];
    CHECK_MSG(!qt_dirs_differ(ref, out, msg, sizeof(msg)), "%s: OUT differs from the uninterrupted run: %s", what, msg);
}

/* The parent directory holds exactly the entry "out". */
static void expect_only_out(const char *par, const char *what)
{
    char **names = qt_list(par);
    int ok = names && qt_count_names(names) == 1 && !strcmp(names[0], "out");
    if (!ok) {
        char list[1500] = "";
        for (size_t i = 0; names && names[i]; i++)
            qt_fmt(list + strlen(list), sizeof(list) - strlen(list), " %s", names[i]);
        TH_REPORT("%s: %s holds [%s ], want [ out ]", what, par, list);
    } else {
        th_checks++;
    }
    qt_free_names(names);
}

static int is_temp(const char *base)
{
    return base[0] == '.' && (strstr(base, ".tmp-") != NULL);
}

/* The invariant of the header: OUT absent or identical, work files complete. Returns the number of
 * complete final files found in the work directory (for the printout). */
static size_t expect_complete_or_absent(const char *out, const char *what)
{
    char msg[700];
    if (qt_exists(out))
        CHECK_MSG(!qt_dirs_differ(ref, out, msg, sizeof(msg)), "%s: OUT exists but is not complete: %s", what, msg);
    char work[1100];
    qt_fmt(work, sizeof(work), "%s.mimo-partial", out);
    qt_tree t = {0};
    size_t complete = 0;
    if (qt_is_dir(work) && qt_tree_scan(work, &t) == 0) {
        for (size_t i = 0; i < t.n; i++) {
            const qt_entry *e = &t.e[i];
            const char *base = strrchr(e->path, '/') ? strrchr(e->path, '/') + 1 : e->path;
            if (e->is_dir || !strncmp(base, ".mimo-", 6) || is_temp(base))
                continue;
            char rsha[65] = "";
            uint64_t rsize = 0;
            int have = qt_sha256_file(qt_p("%s/%s", ref, e->path), rsha, &rsize) == 0;
            CHECK_MSG(have && rsize == e->size && !strcmp(rsha, e->sha),
                      "%s: %s in the work directory is under its final name but not complete (%llu bytes, "
                      "reference %llu)", what, e->path, (unsigned long long)e->size, (unsigned long long)rsize);
            complete++;
        }
    }
    qt_tree_free(&t);
    return complete;
}

static uint64_t fsize(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* ---- 1. kills ---- */

typedef struct sizes {
    uint64_t plan, srcrec, config, drafter, work_total;
    uint64_t shard[16], rec[16];
    uint64_t index, report, manifest;
} sizes;

/* A run whose gate fails keeps its finished work directory: the sizes of everything written. */
static int measure(sizes *sz)
{
    char out[1100], work[1100];
    mkdir(qt_p("%s/measure", root), 0755);
    qt_fmt(out, sizeof(out), "%s/measure/out", root);
    qt_fmt(work, sizeof(work), "%s.mimo-partial", out);
    int rc = quant(out, NULL, NULL, LIST("--min-sqnr", "900"));
    CHECK_MSG(rc == 1, "gate-failing run for the sizes: exit %d, want 1", rc);
    memset(sz, 0, sizeof(*sz));
    sz->plan = fsize(qt_p("%s/.mimo-plan.json", work));
    sz->config = fsize(qt_p("%s/config.json", work));
    sz->drafter = fsize(qt_p("%s/dflash/dflash_draft_model.safetensors", work));
    for (int j = 0; j < 16; j++)
        sz->srcrec += fsize(qt_p("%s/.mimo-src-%d.json", work, j));
    qt_tree t = {0};
    qt_tree_scan(work, &t);
    for (size_t i = 0; i < t.n; i++)
        sz->work_total += t.e[i].is_dir ? 0 : t.e[i].size;
    qt_tree_free(&t);
    int ok = sz->plan > 0 && sz->drafter > 0;
    for (int s = 0; s < nshards; s++) {
        sz->shard[s] = fsize(qt_p("%s/%s", work, shard_name[s]));
        sz->rec[s] = fsize(qt_p("%s/.mimo-done-%s.json", work, shard_name[s]));
        ok &= sz->shard[s] > 0 && sz->rec[s] > 0;
    }
    sz->index = fsize(qt_p("%s/model.safetensors.index.json", ref));
    sz->report = fsize(qt_p("%s/%s", ref, LQ_REPORT_FILE));
    sz->manifest = fsize(qt_p("%s/%s", ref, LQ_MANIFEST_FILE));
    CHECK_MSG(ok, "the gate-failing run did not leave a finished work directory");
    fprintf(stderr, "sizes: plan %llu, source records %llu, work directory %llu bytes; index %llu, report %llu, "
                    "manifest %llu\n", (unsigned long long)sz->plan, (unsigned long long)sz->srcrec,
            (unsigned long long)sz->work_total, (unsigned long long)sz->index, (unsigned long long)sz->report,
            (unsigned long long)sz->manifest);
    qt_rmtree(qt_p("%s/measure", root));
    return ok;
}

typedef struct kill_point {
    char what[96];
    uint64_t at;         /* byte offset, or 0 with phase */
    const char *phase;   /* MIMO_TEST_KILL_AT */
} kill_point;

static void case_kills(const sizes *sz)
{
    kill_point pts[40];
    size_t np = 0;
#define PT(at_, ...)                                                              \
    do {                                                                          \
        pts[np].at = (at_);                                                       \
        pts[np].phase = NULL;                                                     \
        qt_fmt(pts[np].what, sizeof(pts[np].what), __VA_ARGS__);                  \
        np++;                                                                     \
    } while (0)
    /* Bytes go through the library's output files in this order (libquant/convert.c, finalize.c):
     * the plan, each shard then its record, config.json, the drafter's files and the other copied
     * files, the extras record (work_total in all), then the index, report and manifest. The
     * source-hash records (srcrec bytes) come from a side thread at varying times, so a point
     * after the plan lands up to srcrec bytes later in the sequence than computed. */
    uint64_t acc = sz->plan + sz->srcrec;
    PT(1, "plan: first byte (before the first header)");
    PT(sz->plan, "plan: last write");
    for (int s = 0; s < nshards; s++) {
        if (s == 0 || s == nshards - 1)
            PT(acc + 8, "shard %d: inside its header", s + 1);
        if (s == 0 || s == 2 || s == 3 || s == nshards - 1)
            PT(acc + sz->shard[s] / 2, "shard %d: mid tensor data", s + 1);
        if (s == 0)
            PT(acc + sz->shard[s] - 1, "shard %d: last write", s + 1);
        acc += sz->shard[s];
        PT(acc + sz->rec[s] / 2, "shard %d: its record (between shards)", s + 1);
        acc += sz->rec[s];
    }
    PT(acc + sz->config / 2, "config.json");
    PT(acc + sz->config + sz->drafter / 2, "drafter weights");
    PT(sz->work_total - 1, "extras record");
    PT(sz->work_total + sz->index / 2, "finalize: index");
    PT(sz->work_total + sz->index + sz->report / 2, "finalize: report");
    PT(sz->work_total + sz->index + sz->report + sz->manifest / 2, "finalize: manifest");
    pts[np] = (kill_point){.what = "finalize: publish record written", .phase = "record"};
    np++;
    pts[np] = (kill_point){.what = "finalize: before the publishing rename", .phase = "publish"};
    np++;
    pts[np] = (kill_point){.what = "finalize: after the publishing rename", .phase = "published"};
    np++;
#undef PT
    fprintf(stderr, "kill points: %zu\n", np);
    for (size_t k = 0; k < np; k++) {
        const kill_point *p = &pts[k];
        char par[1100], out[1100], work[1100], env1[128], errf[1100];
        qt_fmt(par, sizeof(par), "%s/kill%02zu", root, k);
        qt_fmt(out, sizeof(out), "%s/out", par);
        qt_fmt(work, sizeof(work), "%s.mimo-partial", out);
        qt_fmt(errf, sizeof(errf), "%s/kill%02zu.err", root, k);
        if (p->phase)
            qt_fmt(env1, sizeof(env1), "MIMO_TEST_KILL_AT=%s", p->phase);
        else
            qt_fmt(env1, sizeof(env1), "MIMO_TEST_KILL_AFTER_BYTES=%llu", (unsigned long long)p->at);
        mkdir(par, 0755);
        int rc = quant(out, LIST(env1), NULL, NULL);
        CHECK_MSG(rc == 128 + SIGKILL, "kill %s (%s): exit %d, want %d", p->what, env1, rc, 128 + SIGKILL);
        size_t complete = expect_complete_or_absent(out, p->what);
        size_t done = qt_count_matching(work, ".mimo-done-");
        int out_there = qt_exists(out);
        if (p->phase) {
            /* Killed in publication: the publish record names the finished directory (or OUT,
             * once renamed), and --resume completes the publication from it. */
            char rec[1200];
            qt_fmt(rec, sizeof(rec), "%s.mimo-publish.json", out);
            CHECK_MSG(qt_exists(rec), "kill %s: no publish record %s", p->what, rec);
        }
        rc = quant(out, NULL, errf, LIST("--resume"));
        CHECK_MSG(rc == 0, "resume after kill %s: exit %d", p->what, rc);
        if (rc != 0 && !out_there) {
            uint8_t *e = qt_read(errf, NULL);
            fprintf(stderr, "  resume stderr: %s", e ? (char *)e : "(none)\n");
            free(e);
        }
        expect_same_as_ref(out, p->what);
        expect_only_out(par, p->what);
        fprintf(stderr, "kill %2zu %-44s %-36s -> exit 137, OUT %s, work: %zu final files, %zu shard records; "
                        "--resume exit %d\n", k + 1, p->what, env1, out_there ? "complete" : "absent", complete,
                done, rc);
        qt_rmtree(par);
    }
}

/* A publication interrupted before its rename, then resumed against a changed state: other
 * options (RUN_MISMATCH), a finished file truncated (RUN_STATE), OUT created by someone else in
 * the meantime beside a record whose rename has not happened (OUT_EXISTS without --resume). Each:
 * exit 3 naming the rule, nothing renamed, the work directory and the record left as they were;
 * and the untouched case then resumes to the reference. Then a record whose directory was
 * removed by hand: a fresh run is not stopped by it and leaves none. */
static void case_publish_record(void)
{
    char par[1100], out[1100], work[1100], rec[1100], errf[1100], victim[1200];
    qt_fmt(par, sizeof(par), "%s/pubrec", root);
    qt_fmt(out, sizeof(out), "%s/out", par);
    qt_fmt(work, sizeof(work), "%s.mimo-partial", out);
    qt_fmt(rec, sizeof(rec), "%s.mimo-publish.json", out);
    qt_fmt(errf, sizeof(errf), "%s/pubrec.err", root);
    mkdir(par, 0755);
    int rc = quant(out, LIST("MIMO_TEST_KILL_AT=publish"), NULL, NULL);
    CHECK_MSG(rc == 128 + SIGKILL, "publish record: kill exit %d", rc);
    CHECK_MSG(qt_exists(rec) && qt_is_dir(work) && !qt_exists(out), "publish record: not the state of a kill "
              "before the rename");

    rc = quant(out, NULL, errf, LIST("--resume", "--scale-mode", "floor"));
    CHECK_MSG(rc == 3 && qt_file_contains(errf, ": RUN_MISMATCH: ") == 1,
              "publish record, other options: --resume exit %d, want 3 with RUN_MISMATCH", rc);
    CHECK_MSG(qt_exists(rec) && qt_is_dir(work) && !qt_exists(out), "publish record, other options: state changed");

    /* Truncate the last shard by one byte (a copy is kept to restore it). */
    qt_fmt(victim, sizeof(victim), "%s/%s", work, shard_name[nshards - 1]);
    size_t len = 0;
    uint8_t *keep = qt_read(victim, &len);
    CHECK_MSG(keep && len > 1, "publish record: cannot read %s", victim);
    if (keep && len > 1) {
        CHECK_MSG(truncate(victim, (off_t)(len - 1)) == 0, "truncate %s", victim);
        rc = quant(out, NULL, errf, LIST("--resume"));
        CHECK_MSG(rc == 3 && qt_file_contains(errf, ": RUN_STATE: ") == 1 &&
                  qt_file_contains(errf, shard_name[nshards - 1]) == 1,
                  "publish record, truncated shard: --resume exit %d, want 3 with RUN_STATE naming %s", rc,
                  shard_name[nshards - 1]);
        CHECK_MSG(qt_exists(rec) && qt_is_dir(work) && !qt_exists(out), "publish record, truncated shard: "
                  "something was published");
        CHECK_MSG(qt_write(victim, keep, len) == 0, "restore %s", victim);
    }
    free(keep);

    CHECK_MSG(mkdir(out, 0755) == 0, "mkdir %s", out);
    rc = quant(out, NULL, errf, LIST("--resume"));
    CHECK_MSG(rc == 3 && qt_file_contains(errf, ": RUN_STATE: ") == 1,
              "publish record, OUT and the directory both there: --resume exit %d, want 3 with RUN_STATE", rc);
    CHECK_MSG(qt_exists(rec) && qt_is_dir(work), "publish record, OUT there: state changed");
    rmdir(out);

    rc = quant(out, NULL, errf, LIST("--resume"));
    CHECK_MSG(rc == 0, "publish record: --resume of the untouched state exit %d", rc);
    expect_same_as_ref(out, "publish record");
    expect_only_out(par, "publish record");
    qt_rmtree(out);

    /* The work directory removed by hand after a kill before the rename, the record left: a
     * fresh run (no --resume) is not stopped by the stale record and leaves none. */
    rc = quant(out, LIST("MIMO_TEST_KILL_AT=publish"), NULL, NULL);
    CHECK_MSG(rc == 128 + SIGKILL && qt_exists(rec), "publish record, stale: kill exit %d", rc);
    qt_rmtree(work);
    rc = quant(out, NULL, errf, NULL);
    CHECK_MSG(rc == 0, "publish record, stale: a fresh run exit %d", rc);
    expect_same_as_ref(out, "publish record, stale: fresh run");
    expect_only_out(par, "publish record, stale: fresh run");
    fprintf(stderr, "publish record: other options RUN_MISMATCH, truncated shard RUN_STATE, OUT in the way "
                    "RUN_STATE, then --resume exit 0; a stale record does not stop a fresh run (exit %d)\n", rc);
    qt_rmtree(par);
}

/* ---- 2. I/O faults through the shim ---- */

static int asan_preload_refused(const char *errf)
{
    return qt_file_contains(errf, "does not come first in initial library list") == 1 ||
           qt_file_contains(errf, "ASan runtime") == 1;
}

typedef struct io_case {
    const char *what;
    const char *env[4];      /* fault selection */
    const char *log_kind;    /* the shim's log line prefix */
    const char *failed_file; /* final path (relative to the work directory) that must not exist, or NULL */
    const char *names;       /* text stderr must contain: the file */
    const char *errtext;     /* strerror text on stderr */
} io_case;

static void run_io_case(const io_case *c, size_t k)
{
    char par[1100], out[1100], work[1100], errf[1100], logf[1100], pre[1200], logv[1200], msg[700];
    qt_fmt(par, sizeof(par), "%s/io%zu", root, k);
    qt_fmt(out, sizeof(out), "%s/out", par);
    qt_fmt(work, sizeof(work), "%s.mimo-partial", out);
    qt_fmt(errf, sizeof(errf), "%s/err-io%zu", root, k);
    qt_fmt(logf, sizeof(logf), "%s/log-io%zu", root, k);
    qt_fmt(pre, sizeof(pre), "LD_PRELOAD=%s", SHIM);
    qt_fmt(logv, sizeof(logv), "FAULT_LOG=%s", logf);
    mkdir(par, 0755);
    qt_tree s0 = {0}, s1 = {0};
    qt_tree_scan(src, &s0);
    const char *env[10] = {pre, logv};
    size_t ne = 2;
    for (size_t i = 0; c->env[i]; i++)
        env[ne++] = c->env[i];
#if defined(__SANITIZE_ADDRESS__)
    /* The shim comes before the sanitizer runtime in the library list; ASan accepts that when
     * told not to verify the order (its interceptors still resolve through the shim). */
    env[ne++] = "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:verify_asan_link_order=0";
#endif
    env[ne] = NULL;
    int rc = quant(out, env, errf, NULL);
    if (rc != 3 && asan_preload_refused(errf)) {
        fprintf(stderr, "SKIP io %s: LD_PRELOAD conflicts with the sanitizer runtime\n", c->what);
        skipped++;
        qt_tree_free(&s0);
        qt_rmtree(par);
        return;
    }
    size_t hits = qt_count_lines_with(logf, c->log_kind);
    CHECK_MSG(hits >= 1, "io %s: the shim never injected its fault (%s)", c->what, logf);
    CHECK_MSG(rc == 3, "io %s: exit %d, want 3", c->what, rc);
    CHECK_MSG(qt_file_contains(errf, c->names) == 1, "io %s: stderr does not name %s", c->what, c->names);
    CHECK_MSG(qt_file_contains(errf, c->errtext) == 1, "io %s: stderr lacks \"%s\"", c->what, c->errtext);
    CHECK_MSG(qt_file_contains(errf, "mimo-quantize: error: ") == 1, "io %s: no error line", c->what);
    size_t temps = qt_count_matching(par, ".tmp-") + qt_count_matching(par, ".init-");
    CHECK_MSG(temps == 0, "io %s: %zu temporary files left", c->what, temps);
    CHECK_MSG(!qt_exists(out), "io %s: OUT was published", c->what);
    if (c->failed_file)
        CHECK_MSG(!qt_exists(qt_p("%s/%s", work, c->failed_file)), "io %s: %s exists under its final name", c->what,
                  c->failed_file);
    size_t complete = expect_complete_or_absent(out, c->what);
    CHECK_MSG(qt_tree_scan(src, &s1) == 0 && !qt_tree_diff(&s0, &s1, msg, sizeof(msg)), "io %s: source changed: %s",
              c->what, msg);
    uint8_t *e = qt_read(errf, NULL);
    char *line = e ? strstr((char *)e, "mimo-quantize: error: ") : NULL;
    char *nl = line ? strchr(line, '\n') : NULL;
    if (nl)
        *nl = 0;
    fprintf(stderr, "io %-34s -> exit %d, %zu faults injected, %zu temporaries, OUT %s, %zu complete files kept\n"
                    "   %s\n", c->what, rc, hits, temps, qt_exists(out) ? "present" : "absent", complete,
            line ? line : "(no error line)");
    free(e);
    rc = quant(out, NULL, NULL, LIST("--resume"));
    CHECK_MSG(rc == 0, "io %s: --resume without the fault: exit %d", c->what, rc);
    expect_same_as_ref(out, c->what);
    expect_only_out(par, c->what);
    qt_tree_free(&s0);
    qt_tree_free(&s1);
    qt_rmtree(par);
}

static void case_io(const sizes *sz)
{
    static char ipath[1200], mpath[1200], mafter[64], fpath[200], wpath[1200], wafter[64], wafter2[64];
    static char srcindex[1100], srcmask[1100], shard3[300], shard4[300];
    /* The source is read through mappings (a failing page would be SIGBUS, not EIO); read(2) is
     * used for its JSON files and for the files copied as they are. The source index fails on its
     * first read (while opening the source, before any output exists); the drafter's
     * mask_embedding.pt is read whole once while the drafter is validated and again when it is
     * copied after the last shard: that copy fails half way. */
    qt_fmt(srcindex, sizeof(srcindex), "%s/model.safetensors.index.json", src);
    qt_fmt(ipath, sizeof(ipath), "FAULT_READ_PATH=%s", srcindex);
    qt_fmt(srcmask, sizeof(srcmask), "%s/dflash/mask_embedding.pt", src);
    qt_fmt(mpath, sizeof(mpath), "FAULT_READ_PATH=%s", srcmask);
    qt_fmt(mafter, sizeof(mafter), "FAULT_READ_AFTER=%llu", (unsigned long long)(fsize(srcmask) * 3 / 2));
    /* fsync of output shard 3's temporary (".NAME.tmp-PID"). */
    qt_fmt(fpath, sizeof(fpath), "FAULT_FSYNC_PATH=.%s.tmp-", shard_name[2]);
    qt_fmt(shard3, sizeof(shard3), "%s", shard_name[2]);
    /* Writes under the cases' directories: everything mimo-quantize writes there. */
    qt_fmt(wpath, sizeof(wpath), "FAULT_WRITE_PATH=%s/io", root);
    uint64_t mid4 = sz->plan + sz->srcrec;
    for (int s = 0; s < 3; s++)
        mid4 += sz->shard[s] + sz->rec[s];
    qt_fmt(wafter, sizeof(wafter), "FAULT_WRITE_AFTER=%llu", (unsigned long long)(mid4 + sz->shard[3] / 2));
    qt_fmt(shard4, sizeof(shard4), "%s", shard_name[3]);
    qt_fmt(wafter2, sizeof(wafter2), "FAULT_WRITE_AFTER=%llu",
           (unsigned long long)(sz->work_total + sz->index + sz->report / 2));
    const io_case cases[] = {
        {"EIO reading the source index", {ipath, "FAULT_READ_AFTER=0", NULL}, "read ", NULL, srcindex,
         "Input/output error"},
        {"EIO copying dflash/mask_embedding.pt", {mpath, mafter, NULL}, "read ", "dflash/mask_embedding.pt", srcmask,
         "Input/output error"},
        {"EIO from fsync of output shard 3", {fpath, NULL}, "fsync ", shard3, shard3, "Input/output error"},
        {"ENOSPC writing output shard 4", {wpath, wafter, NULL}, "write ", shard4, shard4, "No space left on device"},
        {"ENOSPC writing the report", {wpath, wafter2, NULL}, "write ", LQ_REPORT_FILE, LQ_REPORT_FILE,
         "No space left on device"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
        run_io_case(&cases[k], k);
}

/* ---- 3. SIGINT twice ---- */

static int step_until(pid_t pid, const char *work, size_t min_done, int max_steps)
{
    int st;
    for (int step = 0; step < max_steps; step++) {
        kill(pid, SIGCONT);
        usleep(2000);
        kill(pid, SIGSTOP);
        pid_t r;
        while ((r = waitpid(pid, &st, WUNTRACED)) < 0 && errno == EINTR)
            ;
        if (r != pid || !WIFSTOPPED(st))
            return -1;
        if (min_done == 0 || qt_count_matching(work, ".mimo-done-") >= min_done)
            return 0;
    }
    return -1;
}

static void case_double_sigint(int early, int burst)
{
    char par[1100], out[1100], work[1100], errf[1100];
    int rc_burst = -1;
    const char *what = early ? "double SIGINT at start" : burst ? "SIGINT burst mid-run" : "double SIGINT mid-run";
    qt_fmt(par, sizeof(par), "%s/int%d%d", root, early, burst);
    qt_fmt(out, sizeof(out), "%s/out", par);
    qt_fmt(work, sizeof(work), "%s.mimo-partial", out);
    qt_fmt(errf, sizeof(errf), "%s/int%d%d.err", root, early, burst);
    mkdir(par, 0755);
    pid_t pid = spawn_q(out, NULL, errf, 1, NULL);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, WUNTRACED) != pid || !WIFSTOPPED(st)) {
        TH_REPORT("%s: could not start the child stopped", what);
        return;
    }
    /* Early: after a few 2 ms slices (planning or creating the work directory); mid-run: once a
     * shard is finished and more remain. */
    if (step_until(pid, work, early ? 0 : 1, early ? 40 : 100000) != 0) {
        kill(pid, SIGKILL);
        qt_wait(pid, 10);
        TH_REPORT("%s: the run ended before the signal point", what);
        return;
    }
    size_t done_before = qt_count_matching(work, ".mimo-done-");
    kill(pid, SIGINT);
    kill(pid, SIGCONT);
    usleep(1000);
    int second = kill(pid, SIGINT) == 0; /* the first is being handled: cleanup is under way */
    int sent = 2;
    if (burst) {
        /* Then one every 250 us until the process is gone, so some arrive whatever the moment
         * its cleanup runs. */
        int st2;
        while (waitpid(pid, &st2, WNOHANG) == 0 && sent < 100000) {
            kill(pid, SIGINT);
            sent++;
            usleep(250);
        }
        /* Reaped above: give qt_wait a status it can read back. */
        pid = -1;
        rc_burst = WIFEXITED(st2) ? WEXITSTATUS(st2) : WIFSIGNALED(st2) ? 128 + WTERMSIG(st2) : -1;
    }
    int rc = burst ? rc_burst : qt_wait(pid, 120);
    int work_there = qt_is_dir(work);
    CHECK_MSG(rc == 130, "%s: exit %d, want 130", what, rc);
    CHECK_MSG(second, "%s: the child was gone before the second SIGINT", what);
    if (!early || work_there)
        CHECK_MSG(qt_file_contains(errf, "interrupted") == 1, "%s: no \"interrupted\" on stderr", what);
    CHECK(!qt_exists(out));
    size_t temps = qt_count_matching(par, ".tmp-") + qt_count_matching(par, ".init-");
    CHECK_MSG(temps == 0, "%s: %zu temporary files left", what, temps);
    size_t complete = expect_complete_or_absent(out, what);
    size_t done = qt_count_matching(work, ".mimo-done-");
    if (!early)
        CHECK_MSG(done >= 1 && done >= done_before, "%s: finished shards not kept (%zu)", what, done);
    fprintf(stderr, "%s: %d SIGINTs, exit %d, %zu of %d shards kept, %zu complete files, %zu temporaries; next: %s\n",
            what, sent, rc, done, nshards, complete, temps, work_there ? "--resume" : "fresh run");
    rc = quant(out, NULL, NULL, work_there ? LIST("--resume") : NULL);
    CHECK_MSG(rc == 0, "%s: %s exit %d", what, work_there ? "--resume" : "fresh run", rc);
    expect_same_as_ref(out, what);
    expect_only_out(par, what);
    qt_rmtree(par);
}

/* ---- 4. read-only parent ---- */

static void case_readonly(void)
{
    char par[1100], out[1100], errf[1100];
    qt_fmt(par, sizeof(par), "%s/ro", root);
    qt_fmt(out, sizeof(out), "%s/out", par);
    qt_fmt(errf, sizeof(errf), "%s/ro.err", root);
    mkdir(par, 0755);
    chmod(par, 0555);
    char probe[1200];
    qt_fmt(probe, sizeof(probe), "%s/probe", par);
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
        close(fd);
        unlink(probe);
        if (geteuid() != 0) {
            fprintf(stderr, "SKIP read-only output directory: a file can still be created in a mode 0555 "
                            "directory, so the case cannot be produced\n");
            skipped++;
            chmod(par, 0755);
            qt_rmtree(par);
            return;
        }
        /* Root ignores the mode: run mimo-quantize as nobody, which needs the scratch directory
         * (mkdtemp: 0700) to be searchable; the fixture's files are world-readable. */
        as_nobody = 1;
        chmod(root, 0755);
    }
    int rc = quant(out, NULL, errf, NULL);
    if (as_nobody) {
        as_nobody = 0;
        chmod(root, 0700);
        if (rc == 126 || rc == 127) {
            fprintf(stderr, "SKIP read-only output directory: running as root, and the tool could not be run as "
                            "uid 65534 (exit %d: setuid or exec refused)\n", rc);
            skipped++;
            chmod(par, 0755);
            qt_rmtree(par);
            return;
        }
        fprintf(stderr, "read-only parent: run as uid 65534 (the test runs as root)\n");
    }
    char **names = qt_list(par);
    size_t n = qt_count_names(names);
    qt_free_names(names);
    chmod(par, 0755);
    CHECK_MSG(rc == 3, "read-only parent: exit %d, want 3", rc);
    CHECK_MSG(qt_file_contains(errf, par) == 1, "read-only parent: stderr does not name %s", par);
    CHECK_MSG(qt_file_contains(errf, "Permission denied") == 1, "read-only parent: no \"Permission denied\"");
    CHECK_MSG(n == 0, "read-only parent: %zu entries created", n);
    fprintf(stderr, "read-only parent: exit %d, %zu entries created\n", rc, n);
    qt_rmtree(par);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MKFIXTURE QUANTIZE FAULT_SHIM\n", argv[0]);
        return 2;
    }
    MK = argv[1];
    Q = argv[2];
    SHIM = argv[3];
    if (qt_mkroot(root, sizeof(root)) != 0) {
        perror("mkdtemp");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
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
    /* 4M shards of the fixture's ~24 MB of output: 7 (the kill points need at least 4). */
    CHECK_MSG(nshards >= 4 && nshards <= 16, "reference run has %d shards", nshards);
    sizes sz;
    if (ok && rc == 0 && nshards >= 4 && nshards <= 16 && measure(&sz)) {
        case_kills(&sz);
        case_publish_record();
        case_io(&sz);
    }
    if (ok && rc == 0 && nshards >= 4) {
        case_double_sigint(0, 0);
        case_double_sigint(0, 1);
        case_double_sigint(1, 0);
        case_readonly();
    }
    qt_rmtree(root);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "test_fault: %.1f s, %d case(s) skipped\n",
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), skipped);
    return th_finish("test_fault");
}
