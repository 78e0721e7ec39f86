/* The dry run's RAM estimate against the measured peak of the whole run.
 * usage: test_quantize_ram MKFIXTURE QUANTIZE
 * For the tiny BF16 and FP8 fixtures and a tiny BF16 checkpoint widened to 64 layers of 50 experts
 * (10,014 source tensors, as tests/bench/scale.sh makes), `mimo-quantize --dry-run --format json`
 * gives ram_bytes; the same conversion is then run and its peak resident memory read from wait4's
 * ru_maxrss. The estimate must be within 20% of the measured peak (the bound docs/cli.md states;
 * the model's constants come from the measurements in docs/perf.md, not from this test).
 * Sanitizer builds change the memory use entirely: there the test is skipped (exit 77). */
#include <sys/resource.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* Runs argv, returns its exit status and its peak RSS in kB. */
static int run_measured(char *const argv[], long *maxrss_kb)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* meson sets MALLOC_PERTURB_, which makes glibc fill every allocation and so touch the
         * pages of buffers a run never uses: not what a user's run costs. */
        unsetenv("MALLOC_PERTURB_");
        if (!freopen("/dev/null", "w", stdout))
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid)
        return -1;
    *maxrss_kb = ru.ru_maxrss;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void check_one(const char *quantize, const char *src, const char *out, const char *what)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s' --dry-run --format json --threads 2", quantize, src, out);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    /* The JSON lists every tensor: read it whole. */
    size_t n = 0, cap = 1 << 16;
    char *text = malloc(cap), buf[65536];
    size_t r;
    while (p && text && (r = fread(buf, 1, sizeof(buf), p)) > 0) {
        if (n + r + 1 > cap) {
            char *t2 = realloc(text, 2 * (n + r + 1));
            if (!t2)
                break;
            text = t2;
            cap = 2 * (n + r + 1);
        }
        memcpy(text + n, buf, r);
        n += r;
    }
    if (text)
        text[n] = 0;
    if (p)
        CHECK(pclose(p) == 0);
    const char *k = text ? strstr(text, "\"ram_bytes\": ") : NULL;
    CHECK_MSG(k != NULL, "%s: no ram_bytes in the dry run's JSON", what);
    if (!k) {
        free(text);
        return;
    }
    double est = strtod(k + strlen("\"ram_bytes\": "), NULL);
    free(text);
    long kb = 0;
    char *argv[] = {(char *)quantize, (char *)src, (char *)out, "-q", "--threads", "2", NULL};
    int rc = run_measured(argv, &kb);
    CHECK_MSG(rc == 0, "%s: conversion failed (%d)", what, rc);
    double peak = (double)kb * 1024.0;
    double rel = (est - peak) / peak;
    fprintf(stderr, "%s: estimate %.1f MiB, measured peak %.1f MiB (%+.1f%%)\n", what, est / 1048576.0,
            peak / 1048576.0, 100.0 * rel);
    CHECK_MSG(rel <= 0.20 && rel >= -0.20, "%s: estimate %.0f bytes is %+.1f%% of the measured peak %.0f", what,
              est, 100.0 * rel, peak);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", out);
    CHECK(system(cmd) == 0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_quantize_ram MKFIXTURE QUANTIZE\n");
        return 2;
    }
    if (SANITIZED) {
        fprintf(stderr, "skipped: a sanitizer build's memory use is not the product's\n");
        return 77;
    }
    char root[] = "/tmp/mimo-qram-XXXXXX", cmd[4096], src[256], out[256];
    CHECK(mkdtemp(root) != NULL);
    static const char *const variants[][2] = {{"bf16", ""}, {"fp8", ""}, {"bf16", "--experts 50 --layers 64 --no-drafter --threads 2"}};
    for (int v = 0; v < 3; v++) {
        snprintf(src, sizeof(src), "%s/src%d", root, v);
        snprintf(out, sizeof(out), "%s/out%d", root, v);
        snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant %s %s --out '%s' -q >/dev/null", argv[1],
                 variants[v][0], variants[v][1], src);
        CHECK(system(cmd) == 0);
        char what[96];
        snprintf(what, sizeof(what), "tiny %s%s", variants[v][0], v == 2 ? " widened (10,014 tensors)" : "");
        check_one(argv[2], src, out, what);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", src);
        CHECK(system(cmd) == 0);
    }
    rmdir(root);
    return th_finish("test_quantize_ram");
}
