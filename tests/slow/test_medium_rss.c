/* Slow tier: converting the medium fixture (MiMo-V2-Flash layer geometry, 6 layers, 32 experts of
 * 2048; 7.5 GB as FP8) stays under the converter's memory bound.
 *
 * usage: test_medium_rss MKFIXTURE QUANTIZE WORKDIR [bf16|fp8]
 *
 * The bound asserted is 256 MiB of peak resident memory (ru_maxrss of the converter process),
 * from the design in libquant/convert.h: 36 MiB of chunk buffers, the scales of one tensor
 * (8 Mi values / 32 = 256 KiB here), 16 MiB of hashing buffers, the plan, and source pages that
 * are released after each tensor. It is independent of the model's size: a 1 TB model has
 * larger plans (about 0.5 kB per tensor) but the same buffers. Also checks the report's
 * aggregate SQNR against the Gaussian figure of reference/mxfp4_formats.md 1.8 (19.05 dB for
 * mse; 0.3 dB tolerance for the FP8 rounding of the source). Needs about 11 GB of free disk in
 * WORKDIR; not part of scripts/test.sh (suite 'slow'). */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "libquant/libquant.h"

static int run(char *const argv[], long *maxrss_kb, double *secs)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (maxrss_kb)
        *maxrss_kb = ru.ru_maxrss;
    if (secs)
        *secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: test_medium_rss MKFIXTURE QUANTIZE WORKDIR [bf16|fp8]\n");
        return 2;
    }
    const char *variant = argc > 4 ? argv[4] : "fp8";
    char src[1024], out[1024], rep[1100], cmd[4200];
    snprintf(src, sizeof(src), "%s/medium-%s", argv[3], variant);
    snprintf(out, sizeof(out), "%s/medium-%s-fp4", argv[3], variant);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s' '%s.mimo-partial'; mkdir -p '%s'", src, out, out, argv[3]);
    CHECK(system(cmd) == 0);
    /* the backbone only, as measured before medium had a drafter (docs/perf.md) */
    char *gen[] = {argv[1], "--preset", "medium", "--variant", (char *)variant, "--threads", "2", "--no-drafter",
                   "--out", src, "-q", NULL};
    double gsecs = 0, qsecs = 0;
    CHECK_EQ_U64(run(gen, NULL, &gsecs), 0);
    long rss = 0;
    char *conv[] = {argv[2], src, out, "-q", NULL};
    CHECK_EQ_U64(run(conv, &rss, &qsecs), 0);
    fprintf(stderr, "medium %s: generated in %.1f s, converted in %.1f s, converter peak RSS %ld kB\n", variant, gsecs,
            qsecs, rss);
    CHECK_MSG(rss > 0 && rss <= 256 * 1024, "peak RSS %ld kB above the 256 MiB bound", rss);
    snprintf(rep, sizeof(rep), "%s/mimo-quant-report.json", out);
    cJSON *r = NULL;
    lq_error err;
    CHECK(lq_json_parse_file(rep, 0, NULL, &r, &err) == LQ_OK);
    if (r) {
        double s = cJSON_GetNumberValue(lq_json_get(lq_json_get(r, "summary"), "sqnr_db"));
        CHECK_NEAR(s, 19.05, 0.3, 0);
        cJSON_Delete(r);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", src, out);
    CHECK(system(cmd) == 0);
    return th_finish("test_medium_rss");
}
