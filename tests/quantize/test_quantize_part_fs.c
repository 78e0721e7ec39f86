/* --part on a real small file system: one part of the real-dimension MiMo-V2.5-Pro replica
 * converts onto a 20 GiB file system although the whole output (about 564 GB) would not fit.
 *
 * usage: test_quantize_part_fs MKFIXTURE QUANTIZE
 *
 * The file system is an ext4 image of 20 GiB (a sparse file under TMPDIR) mounted through a loop
 * device, so the free space is the kernel's answer (statvfs), not MIMO_TEST_FREE_BYTES. Mounting
 * needs root and a loop device: where either is missing the test skips (77) and says why.
 * The source is `mimo-mkfixture --preset pro --variant fp8 --sparse`: every tensor name, shape
 * and dtype of Pro's FP8 checkpoint (159,581 tensors, 1.03 TB), data left as holes except the
 * scale grids (about 300 MB on disk). Part 50 of its 114 output shards is routed experts of the
 * MoE layers, one shard of about 5 GB (8.4 GB of FP8 source read).
 *
 * Checks (expected values: the dry run's own JSON and the file system's statvfs):
 * 1. `--dry-run` of the whole conversion: its disk need exceeds the file system's free space;
 *    the whole run is refused with RUN_DISK, exit 3, and creates nothing on the file system.
 * 2. `--dry-run --part 50/114`: the part's need is below the free space and below 2% of the
 *    whole output; merge's needs are printed (same file system: a small fraction; elsewhere:
 *    the whole output).
 * 3. `--part 50/114` runs (exit 0) and writes exactly the shard the dry run named, at its size;
 *    the file system's used space grows by no more than the part's need. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../harness.h"
#include "libquant/libquant.h"
#include "qt_util.h"

static uint64_t ju64(const cJSON *o, const char *key)
{
    uint64_t v = 0;
    return lq_json_u64(lq_json_get(o, key), &v) == 0 ? v : UINT64_MAX;
}

static int fs_space(const char *dir, uint64_t *free_b, uint64_t *used_b)
{
    struct statvfs v;
    if (statvfs(dir, &v) != 0)
        return -1;
    *free_b = (uint64_t)v.f_bavail * v.f_frsize;
    *used_b = ((uint64_t)v.f_blocks - v.f_bfree) * v.f_frsize;
    return 0;
}

/* The program's path in the system directories (copied into out), or 0 when absent. */
static int have(const char *prog, char *out, size_t cap)
{
    const char *dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
    for (size_t i = 0; i < 4; i++)
        if (access(qt_p("%s/%s", dirs[i], prog), X_OK) == 0) {
            qt_fmt(out, cap, "%s/%s", dirs[i], prog);
            return 1;
        }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MKFIXTURE QUANTIZE\n", argv[0]);
        return 2;
    }
    const char *MK = argv[1], *Q = argv[2];
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: mounting a loop-device file system needs root\n");
        return TH_SKIP_EXIT;
    }
    char mke2fs[64], mount[64], umount[64];
    if (!have("mke2fs", mke2fs, sizeof(mke2fs)) || !have("mount", mount, sizeof(mount)) ||
        !have("umount", umount, sizeof(umount))) {
        fprintf(stderr, "SKIP: mke2fs, mount or umount is missing\n");
        return TH_SKIP_EXIT;
    }
    char root[512];
    if (qt_mkroot(root, sizeof(root)) != 0) {
        perror("mkdtemp");
        return 1;
    }
    char img[1100], mnt[1100], src[1100], errf[1100];
    qt_fmt(img, sizeof(img), "%s/fs.img", root);
    qt_fmt(mnt, sizeof(mnt), "%s/mnt", root);
    qt_fmt(src, sizeof(src), "%s/pro", root);
    qt_fmt(errf, sizeof(errf), "%s/err.txt", root);
    const uint64_t img_bytes = 20ull << 30;
    int rc;
    FILE *f = fopen(img, "wb");
    if (f)
        fclose(f);
    if (!f || mkdir(mnt, 0755) != 0 || truncate(img, (off_t)img_bytes) != 0 ||
        (rc = qt_runl(&(qt_run_opts){.err_path = errf}, mke2fs, "-q", "-F", "-m", "0", "-t", "ext4", img,
                      (char *)NULL)) != 0) {
        fprintf(stderr, "SKIP: cannot make an ext4 image of 20 GiB at %s\n", img);
        qt_rmtree(root);
        return TH_SKIP_EXIT;
    }
    rc = qt_runl(&(qt_run_opts){.err_path = errf}, mount, "-o", "loop", img, mnt, (char *)NULL);
    if (rc != 0) {
        fprintf(stderr, "SKIP: cannot mount the image through a loop device (mount exit %d)\n", rc);
        qt_rmtree(root);
        return TH_SKIP_EXIT;
    }

    rc = qt_runl(&(qt_run_opts){.err_path = errf, .timeout_s = 300}, MK, "--preset", "pro", "--variant", "fp8",
                 "--sparse", "--out", src, "-q", (char *)NULL);
    CHECK_MSG(rc == 0, "mimo-mkfixture --preset pro --sparse: exit %d", rc);
    uint64_t free0 = 0, used0 = 0;
    CHECK(fs_space(mnt, &free0, &used0) == 0);
    CHECK_MSG(free0 > (19ull << 30) && free0 < img_bytes, "free space %llu on a 20 GiB image",
              (unsigned long long)free0);

    /* 1. The whole conversion does not fit and is refused before writing anything. */
    const char *whole_out = qt_p("%s/whole", mnt);
    const char *dj = qt_p("%s/dry-whole.json", root);
    char djw[1100];
    qt_fmt(djw, sizeof(djw), "%s", dj);
    rc = rc == 0 ? qt_runl(&(qt_run_opts){.out_path = djw}, Q, src, whole_out, "--dry-run", "--format", "json",
                           "-q", (char *)NULL)
                 : -1;
    CHECK_MSG(rc == 0, "--dry-run of the whole conversion: exit %d", rc);
    cJSON *jw = qt_json(djw);
    uint64_t whole = ju64(jw, "output_bytes"), whole_need = ju64(jw, "disk_bytes");
    CHECK_MSG(whole != UINT64_MAX && whole_need != UINT64_MAX && whole_need > free0,
              "whole run: need %llu bytes, output %llu, free %llu: the test wants a need above the free space",
              (unsigned long long)whole_need, (unsigned long long)whole, (unsigned long long)free0);
    cJSON_Delete(jw);
    rc = qt_runl(&(qt_run_opts){.err_path = errf}, Q, src, whole_out, "-q", (char *)NULL);
    CHECK_MSG(rc == 3 && qt_file_contains(errf, ": RUN_DISK: ") == 1,
              "whole run onto %llu free bytes: exit %d, want 3 with RUN_DISK", (unsigned long long)free0, rc);
    char **ls = qt_list(mnt);
    size_t nent = 0;
    for (size_t i = 0; ls && ls[i]; i++)
        nent += strcmp(ls[i], "lost+found") != 0;
    qt_free_names(ls);
    CHECK_MSG(nent == 0, "the refused whole run left %zu entries on the file system", nent);

    /* 2. The part's needs. */
    const char *part_out = qt_p("%s/part50", mnt);
    char pout[1100], dp[1100];
    qt_fmt(pout, sizeof(pout), "%s", part_out);
    qt_fmt(dp, sizeof(dp), "%s/dry-part.json", root);
    rc = qt_runl(&(qt_run_opts){.out_path = dp}, Q, src, pout, "--part", "50/114", "--dry-run", "--format", "json",
                 "-q", (char *)NULL);
    CHECK_MSG(rc == 0, "--dry-run --part 50/114: exit %d", rc);
    cJSON *j = qt_json(dp);
    const cJSON *pj = lq_json_get(j, "part"), *mj = lq_json_get(j, "merge");
    uint64_t need = ju64(j, "disk_bytes");
    CHECK_MSG(j && pj && mj && need != UINT64_MAX, "--dry-run --part: no disk_bytes, part or merge in its JSON");
    CHECK_MSG(need < free0 && need < whole / 50, "part 50/114 needs %llu bytes: free %llu, whole output %llu",
              (unsigned long long)need, (unsigned long long)free0, (unsigned long long)whole);
    CHECK(ju64(mj, "disk_bytes_other_fs") == whole && ju64(mj, "disk_bytes_same_fs") < whole / 100);

    /* 3. The part runs on the small file system. */
    rc = qt_runl(&(qt_run_opts){.err_path = errf, .timeout_s = 900}, Q, src, pout, "--part", "50/114", "-q",
                 (char *)NULL);
    CHECK_MSG(rc == 0, "--part 50/114 onto %llu free bytes (needs %llu): exit %d", (unsigned long long)free0,
              (unsigned long long)need, rc);
    uint64_t free1 = 0, used1 = 0;
    CHECK(fs_space(mnt, &free1, &used1) == 0);
    CHECK_MSG(used1 - used0 <= need, "the part used %llu bytes of the file system, more than its need %llu",
              (unsigned long long)(used1 - used0), (unsigned long long)need);
    const cJSON *nm, *sh;
    size_t nshards = 0;
    cJSON_ArrayForEach(nm, lq_json_get(pj, "shards")) {
        const char *n = cJSON_GetStringValue(nm);
        uint64_t want = UINT64_MAX;
        cJSON_ArrayForEach(sh, lq_json_get(j, "shards")) {
            const char *sn = cJSON_GetStringValue(lq_json_get(sh, "name"));
            if (n && sn && !strcmp(sn, n))
                want = ju64(sh, "file_bytes");
        }
        struct stat sb;
        uint64_t got = n && stat(qt_p("%s/%s", pout, n), &sb) == 0 ? (uint64_t)sb.st_size : 0;
        CHECK_MSG(got == want, "%s is %llu bytes, the dry run said %llu", n ? n : "?", (unsigned long long)got,
                  (unsigned long long)want);
        nshards++;
    }
    CHECK_EQ_U64(nshards, 1);
    fprintf(stderr,
            "part 50/114 of the Pro replica on a 20 GiB ext4 loop image: %llu bytes free, the whole output "
            "%llu (refused), the part's need %llu, used %llu\n",
            (unsigned long long)free0, (unsigned long long)whole, (unsigned long long)need,
            (unsigned long long)(used1 - used0));
    cJSON_Delete(j);

    rc = qt_runl(&(qt_run_opts){.err_path = errf}, umount, mnt, (char *)NULL);
    CHECK_MSG(rc == 0, "umount %s: exit %d", mnt, rc);
    if (rc == 0)
        qt_rmtree(root);
    else
        fprintf(stderr, "left %s mounted at %s\n", img, mnt);
    return th_finish("test_quantize_part_fs");
}
