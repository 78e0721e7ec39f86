/* The three CLIs under valgrind's memcheck, leak-free and error-free, on the tiny fixture.
 * usage: test_valgrind MKFIXTURE QUANTIZE VERIFY MIMO_RUN TOKENIZER_JSON VG_LEAK
 *
 * Each tool runs as
 *   valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect,possible
 *            --error-exitcode=99 --log-file=LOG TOOL ...
 * with --threads 1 and small inputs: mimo-quantize on the tiny FP8 fixture (made by mimo-mkfixture
 * outside valgrind), mimo-verify of that artifact against its source with a policy whose model
 * section is small (every check runs, the model check included, runtime loads and DFlash), and
 * mimo-run on the artifact plain (a text prompt: the tokenizer too) and with --dflash (4 tokens each).
 * Expected: the tool's own exit status (0, stated per run below, not 99), and from valgrind's log
 * "ERROR SUMMARY: 0 errors" and 0 bytes definitely, indirectly and possibly lost (memcheck's own
 * accounting, the independent judge here); "still reachable" is printed, not judged.
 * Negative control first: vg_leak (tests/hardening/vg_leak.c) loses 64 bytes on purpose, and the
 * same command must exit 99 with "definitely lost: 64 bytes" in its log.
 *
 * Skipped (exit 77):
 *  - when valgrind is not installed (`valgrind --version` cannot run);
 *  - in a sanitizer build: meson compiles this program with -DMIMO_SANITIZER_BUILD=1 when
 *    b_sanitize is not 'none' (tests/hardening/meson.build); the program also checks the
 *    compiler's __SANITIZE_ADDRESS__ / __has_feature(address_sanitizer) for builds made outside
 *    meson, and MIMO_SANITIZER_BUILD=1 in the environment (to skip it by hand). ASan's shadow
 *    memory and interceptors do not run under valgrind, and ASan already checks those binaries. */
#include <sys/stat.h>
#include <unistd.h>

#include "../harness.h"
#include "../quantize/qt_util.h"

#if defined(MIMO_SANITIZER_BUILD) && MIMO_SANITIZER_BUILD
#define TV_ASAN 1
#elif defined(__SANITIZE_ADDRESS__)
#define TV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TV_ASAN 1
#endif
#endif
#ifndef TV_ASAN
#define TV_ASAN 0
#endif

static char root[512];

/* A figure from a valgrind log: the number after the first occurrence of key (commas removed),
 * or -1 when the key is absent. */
static long long vg_figure(const char *log, const char *key)
{
    const char *p = strstr(log, key);
    if (!p)
        return -1;
    p += strlen(key);
    while (*p == ' ')
        p++;
    long long v = 0;
    int digits = 0;
    for (; (*p >= '0' && *p <= '9') || *p == ','; p++)
        if (*p != ',') {
            v = v * 10 + (*p - '0');
            digits++;
        }
    return digits ? v : -1;
}

/* Runs argv (tool first) under memcheck; checks the tool's exit status and the log's figures. */
static void vg_run(const char *name, const char *const *tool_argv, int want_rc)
{
    char logp[700], outp[700], errp[700], logarg[720];
    snprintf(logp, sizeof(logp), "%s/vg-%s.log", root, name);
    snprintf(outp, sizeof(outp), "%s/vg-%s.out", root, name);
    snprintf(errp, sizeof(errp), "%s/vg-%s.err", root, name);
    snprintf(logarg, sizeof(logarg), "--log-file=%s", logp);
    const char *argv[48];
    size_t n = 0;
    argv[n++] = "valgrind";
    argv[n++] = "--leak-check=full";
    argv[n++] = "--errors-for-leak-kinds=definite,indirect,possible";
    argv[n++] = "--error-exitcode=99";
    argv[n++] = logarg;
    for (size_t i = 0; tool_argv[i] && n < 47; i++)
        argv[n++] = tool_argv[i];
    argv[n] = NULL;
    int failed_before = th_failures;
    qt_run_opts o = {.out_path = outp, .err_path = errp, .timeout_s = 900};
    int rc = qt_run(argv, &o);
    CHECK_MSG(rc == want_rc, "%s: exit %d under valgrind, expected %d (99 = memcheck found errors; see %s)", name, rc,
              want_rc, logp);
    size_t len = 0;
    char *log = (char *)qt_read(logp, &len);
    CHECK_MSG(log != NULL, "%s: no valgrind log %s", name, logp);
    if (!log)
        return;
    long long errors = vg_figure(log, "ERROR SUMMARY:");
    long long def = vg_figure(log, "definitely lost:"), ind = vg_figure(log, "indirectly lost:"),
              pos = vg_figure(log, "possibly lost:"), reach = vg_figure(log, "still reachable:");
    long long in_use = vg_figure(log, "in use at exit:"), allocs = vg_figure(log, "total heap usage:");
    /* "All heap blocks were freed -- no leaks are possible": memcheck prints no leak summary then */
    int all_freed = strstr(log, "All heap blocks were freed") != NULL;
    if (all_freed) {
        def = ind = pos = reach = 0;
    }
    CHECK_MSG(errors == 0, "%s: valgrind ERROR SUMMARY %lld errors (see %s)", name, errors, logp);
    CHECK_MSG(def == 0 && ind == 0 && pos == 0, "%s: lost bytes: definitely %lld, indirectly %lld, possibly %lld (see %s)",
              name, def, ind, pos, logp);
    const char *frees_p = strstr(log, "total heap usage:");
    long long frees = -1, bytes = -1;
    if (frees_p) {
        const char *c = strstr(frees_p, "allocs,");
        if (c)
            frees = vg_figure(c, "allocs,");
        const char *b = c ? strstr(c, "frees,") : NULL;
        if (b)
            bytes = vg_figure(b, "frees,");
    }
    printf("%s: exit %d; ERROR SUMMARY %lld errors; in use at exit %lld bytes; %lld allocs, %lld frees, %lld bytes "
           "allocated; lost: definitely %lld, indirectly %lld, possibly %lld; still reachable %lld\n",
           name, rc, errors, in_use, allocs, frees, bytes, def, ind, pos, reach);
    if (th_failures > failed_before) {
        /* the first lines of memcheck's report, for the log of a failing run */
        fprintf(stderr, "---- %s (first 4000 bytes) ----\n%.4000s\n", logp, log);
    }
    free(log);
}

/* policy/default.json's thresholds with a small model section (docs/cli.md, policy keys): one
 * prompt of 16 tokens, 8 continued tokens, 4 DFlash tokens. */
static const char POLICY[] =
    "{\"schema_version\": 1,\n"
    " \"required\": [\"manifest\", \"integrity\", \"container\", \"tensors\", \"inventory\",\n"
    "              \"drafter\", \"accuracy\", \"model\"],\n"
    " \"thresholds\": {\"min_sqnr_db\": 17.0, \"min_cosine\": 0.99, \"max_clip_frac\": 0.05,\n"
    "                \"min_layer_sqnr_db\": 17.5, \"min_top1_agreement\": 0.9, \"max_mean_kl\": 1e-05,\n"
    "                \"max_kl\": 2.5e-05, \"max_ppl_ratio\": 1.005, \"min_layer_hidden_cosine\": 0.9999,\n"
    "                \"min_dflash_tau_ratio\": 0.9},\n"
    " \"model\": {\"prompts\": 1, \"prompt_length\": 16, \"seed\": 1, \"continuation_length\": 8,\n"
    "           \"sample_seed\": 1, \"dflash_tokens\": 4}}\n";

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: test_valgrind MKFIXTURE QUANTIZE VERIFY MIMO_RUN TOKENIZER_JSON VG_LEAK\n");
        return 2;
    }
    const char *san = getenv("MIMO_SANITIZER_BUILD");
    if (TV_ASAN || (san && *san && strcmp(san, "0") != 0)) {
        printf("skipped: sanitizer build (valgrind cannot run ASan binaries; ASan checks them instead)\n");
        return TH_SKIP_EXIT;
    }
    if (qt_runl(NULL, "valgrind", "--version", (char *)NULL) != 0) {
        printf("skipped: valgrind is not installed (apt-get install valgrind; scripts/bootstrap.sh)\n");
        return TH_SKIP_EXIT;
    }
    const char *mkfixture = argv[1], *quantize = argv[2], *verify = argv[3], *run = argv[4], *tok = argv[5];
    CHECK(qt_mkroot(root, sizeof(root)) == 0);
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* negative control: a program that leaks 64 bytes must fail the same command */
    {
        char logp[700], logarg[720];
        snprintf(logp, sizeof(logp), "%s/vg-leak.log", root);
        snprintf(logarg, sizeof(logarg), "--log-file=%s", logp);
        int rc = qt_runl(NULL, "valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect,possible",
                         "--error-exitcode=99", logarg, argv[6], (char *)NULL);
        char *log = (char *)qt_read(logp, NULL);
        long long def = log ? vg_figure(log, "definitely lost:") : -1;
        CHECK_MSG(rc == 99 && def == 64, "control: vg_leak exit %d (expected 99), definitely lost %lld (expected 64)", rc,
                  def);
        printf("control vg_leak: exit %d, definitely lost %lld bytes\n", rc, def);
        free(log);
    }

    char src[600], art[600], pol[600];
    snprintf(src, sizeof(src), "%s/fp8", root);
    snprintf(art, sizeof(art), "%s/mx", root);
    snprintf(pol, sizeof(pol), "%s/policy.json", root);
    CHECK(qt_runl(NULL, mkfixture, "--preset", "tiny", "--variant", "fp8", "--tokenizer", tok, "--out", src, "-q",
                  (char *)NULL) == 0);
    CHECK(qt_write(pol, POLICY, sizeof(POLICY) - 1) == 0);

    const char *q[] = {quantize, src, art, "--threads", "1", "-q", NULL};
    vg_run("mimo-quantize", q, 0);
    /* the converter's artifact must be complete for the next two runs to mean anything */
    CHECK(qt_exists(qt_p("%s/mimo-manifest.json", art)) && qt_exists(qt_p("%s/dflash", art)));

    char report[700];
    snprintf(report, sizeof(report), "%s/verify.json", root);
    const char *v[] = {verify, art, "--source", src, "--policy", pol, "--threads", "1", "--report", report, "-q", NULL};
    vg_run("mimo-verify", v, 0);
    /* the model check ran (not skipped): its lines are in the report */
    cJSON *rep = qt_json(report);
    int model_ran = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, lq_json_get(rep, "checks"))
    {
        const cJSON *nm = lq_json_get(c, "name"), *st = lq_json_get(c, "status");
        if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "model") && cJSON_IsString(st))
            model_ran = !strcmp(st->valuestring, "pass") || !strcmp(st->valuestring, "PASS");
    }
    CHECK_MSG(model_ran, "mimo-verify: the model check did not pass under valgrind (report %s)", report);
    cJSON_Delete(rep);

    const char *r1[] = {run, art, "--prompt", "Once upon a time", "--max-tokens", "4", "--threads", "1", "--no-dflash",
                        NULL};
    vg_run("mimo-run", r1, 0);
    const char *r2[] = {run, art, "--prompt-ids", "10,20,30,40", "--max-tokens", "4", "--threads", "1", "--dflash",
                        "--format", "json", NULL};
    vg_run("mimo-run-dflash", r2, 0);
    /* the DFlash run really decoded with the drafter */
    cJSON *j = qt_json(qt_p("%s/vg-mimo-run-dflash.out", root));
    const cJSON *df = lq_json_get(j, "dflash");
    CHECK_MSG(cJSON_IsTrue(df), "mimo-run --dflash: JSON dflash is not true");
    cJSON_Delete(j);

    if (!th_failures)
        qt_rmtree(root);
    else
        fprintf(stderr, "logs kept in %s\n", root);
    return th_finish("test_valgrind");
}
