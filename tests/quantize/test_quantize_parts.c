/* mimo-quantize end to end: determinism, and distributed conversion (--part + merge).
 *
 * usage: test_quantize_parts MKFIXTURE QUANTIZE
 *
 * All runs convert the tiny bf16 fixture with --max-shard-size 4M (10 shards). "Identical"
 * means the same paths, sizes and SHA-256 for every file of OUT (convert.h: nothing in OUT
 * depends on the thread count or on the number of parts).
 * 1. --threads 1, 2 and 3, and a second --threads 2 run: identical.
 * 2. --part 1/3, 2/3, 3/3 and `merge OUT P3 P1 P2`: identical to the single run; the part
 *    directories are gone afterwards. Before that, each broken merge fails with its rule, exit 3,
 *    writes no OUT (nor OUT.mimo-merge) and leaves the parts as they were: part 3 killed mid-run
 *    (MERGE_SHARDS: a shard no part finished), a missing part (MERGE_PARTS), part 2 made with
 *    --scale-mode even (MERGE_PLAN), part 2 given twice (MERGE_PARTS, "given twice"). Part 3 then
 *    completes with --part 3/3 --resume. With 1000 bytes free (MIMO_TEST_FREE_BYTES) merge is
 *    refused with RUN_DISK, writing nothing.
 * 3. A merge killed (MIMO_TEST_KILL_AFTER_BYTES=1: at its first written byte, the index, after
 *    the shards were moved) is completed by running the same merge again, as a killed conversion
 *    is by --resume (convert.h: a kill at any instant leaves work that can be finished).
 * 4. Disk space of a part (MIMO_TEST_FREE_BYTES stands for the file system's free space):
 *    `--dry-run --part I/3 --format json` gives the part's need (disk_bytes), below the whole
 *    output (output_bytes), and merge's needs; with free space between the two the part runs,
 *    writes exactly the shards and sizes the dry run named, and uses no more than the need; with
 *    one byte less than the need it exits 3 with RUN_DISK naming the need and creates nothing.
 *    A single run with the same free space (below the whole output) is refused. Parts 1 (with
 *    config, copied files and drafter) and 2. */
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../harness.h"
#include "libquant/libquant.h"
#include "qt_util.h"

static const char *MK, *Q;
static char root[512], src[1024];

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

static void expect_same(const char *a, const char *b, const char *what)
{
    char msg[700];
    CHECK_MSG(!qt_dirs_differ(a, b, msg, sizeof(msg)), "%s: %s", what, msg);
}

static void case_threads(const char *ref)
{
    static const char *const threads[] = {"1", "3", "2"};
    for (int i = 0; i < 3; i++) {
        char out[1100];
        qt_fmt(out, sizeof(out), "%s/threads-%s%s", root, threads[i], i == 2 ? "-again" : "");
        int rc = quant(out, NULL, NULL, EXTRA("--threads", threads[i]));
        CHECK_MSG(rc == 0, "--threads %s: exit %d", threads[i], rc);
        expect_same(ref, out, qt_p("--threads %s%s vs --threads 2", threads[i], i == 2 ? " (second run)" : ""));
    }
    char h[65] = "";
    qt_sha256_file(qt_p("%s/%s", ref, LQ_MANIFEST_FILE), h, NULL);
    fprintf(stderr, "threads 1, 2, 3 and a second run: manifest %.16s... in all four\n", h);
}

/* A merge that must fail: rule on stderr, exit 3, no OUT, parts untouched. */
static void bad_merge(const char *const *dirs, size_t n, const char *rule, const char *what)
{
    char out[1100], errf[1100], msg[700];
    qt_fmt(out, sizeof(out), "%s/merged-bad", root);
    qt_fmt(errf, sizeof(errf), "%s/merge-%s.err", root, rule);
    qt_tree before[4] = {{0}}, after = {0};
    for (size_t i = 0; i < n; i++)
        qt_tree_scan(dirs[i], &before[i]);
    const char *argv[12] = {Q, "merge", out};
    for (size_t i = 0; i < n; i++)
        argv[3 + i] = dirs[i];
    argv[3 + n] = NULL;
    int rc = qt_run(argv, &(qt_run_opts){.err_path = errf});
    CHECK_MSG(rc == 3, "merge with %s: exit %d, want 3", what, rc);
    CHECK_MSG(qt_file_contains(errf, qt_p(": %s: ", rule)) == 1, "merge with %s: stderr does not name %s", what, rule);
    CHECK_MSG(!qt_exists(out) && !qt_exists(qt_p("%s.mimo-merge", out)), "merge with %s left OUT or OUT.mimo-merge", what);
    for (size_t i = 0; i < n; i++) {
        qt_tree_scan(dirs[i], &after);
        CHECK_MSG(!qt_tree_diff(&before[i], &after, msg, sizeof(msg)), "merge with %s changed %s: %s", what, dirs[i], msg);
        qt_tree_free(&after);
        qt_tree_free(&before[i]);
    }
}

static void case_parts(const char *ref)
{
    char p[3][1100], pe2[1100];
    for (int i = 0; i < 3; i++)
        qt_fmt(p[i], sizeof(p[i]), "%s/part%d", root, i + 1);
    qt_fmt(pe2, sizeof(pe2), "%s/part2-even", root);
    for (int i = 0; i < 2; i++) {
        int rc = quant(p[i], NULL, NULL, EXTRA("--part", qt_p("%d/3", i + 1)));
        CHECK_MSG(rc == 0, "--part %d/3: exit %d", i + 1, rc);
    }
    /* Part 3 killed a few MB in: its first shard is unfinished. */
    int rc = quant(p[2], "2000000", NULL, EXTRA("--part", "3/3"));
    CHECK_MSG(rc == 128 + SIGKILL, "--part 3/3 with a kill point: exit %d", rc);
    bad_merge((const char *const[]){p[0], p[1], p[2]}, 3, "MERGE_SHARDS", "an unfinished part");
    rc = quant(p[2], NULL, NULL, EXTRA("--part", "3/3", "--resume"));
    CHECK_MSG(rc == 0, "--part 3/3 --resume: exit %d", rc);
    rc = quant(pe2, NULL, NULL, EXTRA("--part", "2/3", "--scale-mode", "even"));
    CHECK_MSG(rc == 0, "--part 2/3 --scale-mode even: exit %d", rc);
    bad_merge((const char *const[]){p[0], p[1]}, 2, "MERGE_PARTS", "a missing part");
    bad_merge((const char *const[]){p[0], pe2, p[2]}, 3, "MERGE_PLAN", "a part made with other options");
    bad_merge((const char *const[]){p[0], p[1], p[1]}, 3, "MERGE_PARTS", "the same part twice");
    /* A merge killed at its first written byte (the index: every shard has been moved into the
     * assembly directory by then) is finished by running the same merge again. Hard-linked
     * copies of the parts keep the originals for the merge below. */
    char k[3][1100], kout[1100];
    for (int i = 0; i < 3; i++) {
        qt_fmt(k[i], sizeof(k[i]), "%s/kpart%d", root, i + 1);
        CHECK(qt_link_tree(p[i], k[i]) == 0);
    }
    qt_fmt(kout, sizeof(kout), "%s/merged-after-kill", root);
    const char *kerr = qt_p("%s/merge-rerun.err", root);
    rc = qt_runl(&(qt_run_opts){.kill_after = "1"}, Q, "merge", kout, k[0], k[1], k[2], "-q", (char *)NULL);
    CHECK_MSG(rc == 128 + SIGKILL, "merge with a kill point: exit %d", rc);
    CHECK(!qt_exists(kout));
    rc = qt_runl(&(qt_run_opts){.err_path = kerr}, Q, "merge", kout, k[0], k[1], k[2], "-q", (char *)NULL);
    CHECK_MSG(rc == 0, "the same merge after a kill: exit %d (%s)", rc,
              qt_file_contains(kerr, "MERGE_DIR") == 1 ? "MERGE_DIR: the killed merge's directory blocks it" : "see stderr");
    if (rc == 0)
        expect_same(ref, kout, "merge rerun after a kill vs one run");
    /* A merge killed while publishing (MIMO_TEST_KILL_AT, libquant/finalize.c: the bookkeeping
     * dropped before the rename, or just after the rename) is finished by the same merge again,
     * from the publish record: OUT equal to one run, no parts, no record, no assembly directory. */
    static const char *const phases[] = {"publish", "published"};
    for (int ph = 0; ph < 2; ph++) {
        char kp[3][1100], po[1100];
        for (int i = 0; i < 3; i++) {
            qt_fmt(kp[i], sizeof(kp[i]), "%s/ppart%d-%d", root, ph, i + 1);
            CHECK(qt_link_tree(p[i], kp[i]) == 0);
        }
        qt_fmt(po, sizeof(po), "%s/merged-kill-%s", root, phases[ph]);
        setenv("MIMO_TEST_KILL_AT", phases[ph], 1);
        rc = qt_runl(&(qt_run_opts){0}, Q, "merge", po, kp[0], kp[1], kp[2], "-q", (char *)NULL);
        unsetenv("MIMO_TEST_KILL_AT");
        CHECK_MSG(rc == 128 + SIGKILL, "merge killed at %s: exit %d", phases[ph], rc);
        CHECK_MSG(qt_exists(qt_p("%s.mimo-publish.json", po)), "merge killed at %s: no publish record", phases[ph]);
        rc = qt_runl(&(qt_run_opts){.err_path = kerr}, Q, "merge", po, kp[0], kp[1], kp[2], "-q", (char *)NULL);
        CHECK_MSG(rc == 0, "the same merge after a kill at %s: exit %d", phases[ph], rc);
        if (rc == 0)
            expect_same(ref, po, "merge rerun after a kill while publishing vs one run");
        for (int i = 0; i < 3; i++)
            CHECK_MSG(!qt_exists(kp[i]), "%s left after the merge (kill at %s)", kp[i], phases[ph]);
        CHECK_MSG(!qt_exists(qt_p("%s.mimo-publish.json", po)) && !qt_exists(qt_p("%s.mimo-merge", po)),
                  "merge killed at %s: record or assembly directory left", phases[ph]);
    }
    /* Too little disk on OUT's file system for the index, manifest and report merge writes (the
     * parts are on the same file system: shards are renamed): refused with RUN_DISK before
     * anything moves. */
    setenv("MIMO_TEST_FREE_BYTES", "1000", 1);
    bad_merge((const char *const[]){p[2], p[0], p[1]}, 3, "RUN_DISK", "1000 bytes free");
    unsetenv("MIMO_TEST_FREE_BYTES");
    /* Parts in any order give the single run's bytes. */
    char out[1100];
    qt_fmt(out, sizeof(out), "%s/merged", root);
    rc = qt_runl(&(qt_run_opts){0}, Q, "merge", out, p[2], p[0], p[1], "-q", (char *)NULL);
    CHECK_MSG(rc == 0, "merge P3 P1 P2: exit %d", rc);
    expect_same(ref, out, "merge of 3 parts vs one run");
    for (int i = 0; i < 3; i++)
        CHECK_MSG(!qt_exists(p[i]), "%s left after the merge", p[i]);
    CHECK_MSG(!qt_exists(qt_p("%s.mimo-merge", out)), "merge directory left");
    fprintf(stderr, "parts: 3 parts merged in the order 3, 1, 2 equal one run; 4 broken merges refused; merges "
                    "killed at a byte, before and after the publishing rename finished by a rerun\n");
}

static uint64_t tree_bytes(const char *dir)
{
    qt_tree t = {0};
    uint64_t n = 0;
    if (qt_tree_scan(dir, &t) != 0)
        return UINT64_MAX;
    for (size_t i = 0; i < t.n; i++)
        n += t.e[i].is_dir ? 0 : t.e[i].size;
    qt_tree_free(&t);
    return n;
}

static uint64_t ju64(const cJSON *o, const char *key)
{
    uint64_t v = 0;
    return lq_json_u64(lq_json_get(o, key), &v) == 0 ? v : UINT64_MAX;
}

static void case_part_disk(const char *ref)
{
    for (int part = 1; part <= 2; part++) {
        char jf[1100], out[1100], errf[1100];
        qt_fmt(jf, sizeof(jf), "%s/disk-dry-%d.json", root, part);
        qt_fmt(out, sizeof(out), "%s/disk-part%d", root, part);
        qt_fmt(errf, sizeof(errf), "%s/disk-part%d.err", root, part);
        const char *pa = qt_p("%d/3", part);
        int rc = qt_runl(&(qt_run_opts){.out_path = jf}, Q, src, out, "--max-shard-size", "4M", "--part", pa,
                         "--dry-run", "--format", "json", "-q", (char *)NULL);
        CHECK_MSG(rc == 0, "--dry-run --part %s: exit %d", pa, rc);
        cJSON *j = qt_json(jf);
        const cJSON *pj = lq_json_get(j, "part"), *mj = lq_json_get(j, "merge");
        uint64_t need = ju64(j, "disk_bytes"), whole = ju64(j, "output_bytes");
        if (!j || !pj || !mj || need == UINT64_MAX || whole == UINT64_MAX) {
            TH_REPORT("--dry-run --part %s: no disk_bytes, output_bytes, part or merge in its JSON", pa);
            cJSON_Delete(j);
            continue;
        }
        CHECK_MSG(need < whole / 2, "part %s needs %llu bytes, the whole output %llu", pa, (unsigned long long)need,
                  (unsigned long long)whole);
        CHECK_EQ_U64(ju64(pj, "index"), (uint64_t)part);
        CHECK(ju64(mj, "disk_bytes_other_fs") == whole && ju64(mj, "disk_bytes_same_fs") < whole / 4);
        /* Merge needs (an estimate) at least the index, manifest and report of one run. */
        uint64_t meta = 0;
        for (const char *const *f = (const char *const[]){"model.safetensors.index.json", LQ_MANIFEST_FILE,
                                                            LQ_REPORT_FILE, NULL}; *f; f++) {
            uint64_t sz = 0;
            qt_sha256_file(qt_p("%s/%s", ref, *f), (char[65]){0}, &sz);
            meta += sz;
        }
        CHECK_MSG(ju64(mj, "disk_bytes_same_fs") >= meta, "merge same-fs need %llu below the %llu bytes merge writes",
                  (unsigned long long)ju64(mj, "disk_bytes_same_fs"), (unsigned long long)meta);
        CHECK_MSG(whole >= tree_bytes(ref), "whole output %llu below the real one's %llu", (unsigned long long)whole,
                  (unsigned long long)tree_bytes(ref));
        /* One byte short: refused, naming the need; nothing created. */
        char nb[32];
        snprintf(nb, sizeof(nb), "%llu", (unsigned long long)(need - 1));
        setenv("MIMO_TEST_FREE_BYTES", nb, 1);
        rc = quant(out, NULL, errf, EXTRA("--part", pa));
        CHECK_MSG(rc == 3, "--part %s with %s bytes free: exit %d, want 3", pa, nb, rc);
        CHECK_MSG(qt_file_contains(errf, ": RUN_DISK: ") == 1 &&
                      qt_file_contains(errf, qt_p("needs %llu bytes", (unsigned long long)need)) == 1,
                  "--part %s with %s bytes free: stderr does not name RUN_DISK and the need %llu", pa, nb,
                  (unsigned long long)need);
        CHECK_MSG(!qt_exists(out), "--part %s refused for disk space but created %s", pa, out);
        /* Between the part's need and the whole output: the part runs; a single run does not. */
        snprintf(nb, sizeof(nb), "%llu", (unsigned long long)(need + (whole - need) / 2));
        setenv("MIMO_TEST_FREE_BYTES", nb, 1);
        rc = quant(out, NULL, errf, EXTRA("--part", pa));
        CHECK_MSG(rc == 0, "--part %s with %s bytes free (needs %llu, whole output %llu): exit %d", pa, nb,
                  (unsigned long long)need, (unsigned long long)whole, rc);
        if (part == 1) {
            const char *one = qt_p("%s/disk-single", root);
            rc = quant(one, NULL, errf, NULL);
            CHECK_MSG(rc == 3 && qt_file_contains(errf, ": RUN_DISK: ") == 1,
                      "a single run with %s bytes free (whole output %llu): exit %d, want 3 with RUN_DISK", nb,
                      (unsigned long long)whole, rc);
            CHECK(!qt_exists(one) && !qt_exists(qt_p("%s.mimo-partial", one)));
        }
        unsetenv("MIMO_TEST_FREE_BYTES");
        uint64_t used = tree_bytes(out);
        CHECK_MSG(used <= need, "part %s wrote %llu bytes, more than its need %llu", pa, (unsigned long long)used,
                  (unsigned long long)need);
        /* Exactly the shards the dry run named for the part, at the sizes it printed. */
        const cJSON *names = lq_json_get(pj, "shards"), *nm, *sh;
        size_t nshards = 0;
        cJSON_ArrayForEach(nm, names) {
            const char *n = cJSON_GetStringValue(nm);
            uint64_t want = UINT64_MAX, got = 0;
            cJSON_ArrayForEach(sh, lq_json_get(j, "shards")) {
                const char *sn = cJSON_GetStringValue(lq_json_get(sh, "name"));
                if (n && sn && !strcmp(sn, n))
                    want = ju64(sh, "file_bytes");
            }
            struct stat sb;
            got = n && stat(qt_p("%s/%s", out, n), &sb) == 0 ? (uint64_t)sb.st_size : 0;
            CHECK_MSG(got == want, "part %s: %s is %llu bytes, the dry run said %llu", pa, n ? n : "?",
                      (unsigned long long)got, (unsigned long long)want);
            nshards++;
        }
        char **ls = qt_list(out);
        size_t nfiles = 0;
        for (size_t i = 0; ls && ls[i]; i++) {
            size_t l = strlen(ls[i]);
            nfiles += ls[i][0] != '.' && l > 12 && !strcmp(ls[i] + l - 12, ".safetensors");
        }
        qt_free_names(ls);
        CHECK_EQ_U64(nfiles, nshards);
        CHECK(nshards > 0);
        fprintf(stderr, "disk: part %s needs %llu bytes (wrote %llu), the whole output %llu: runs with %s free, "
                        "refused with one byte less than its need\n", pa, (unsigned long long)need,
                (unsigned long long)used, (unsigned long long)whole, nb);
        cJSON_Delete(j);
    }
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
    qt_fmt(src, sizeof(src), "%s/bf16", root);
    char ref[1100];
    qt_fmt(ref, sizeof(ref), "%s/threads-2", root);
    int ok = qt_mkfixture(MK, "bf16", src) == 0;
    CHECK_MSG(ok, "mimo-mkfixture failed");
    int rc = ok ? quant(ref, NULL, NULL, EXTRA("--threads", "2")) : -1;
    CHECK_MSG(rc == 0, "reference run: exit %d", rc);
    if (rc == 0) {
        case_threads(ref);
        case_parts(ref);
        case_part_disk(ref);
    }
    qt_rmtree(root);
    return th_finish("test_quantize_parts");
}
