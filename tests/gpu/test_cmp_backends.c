/* Runs cmp_backends on a fixture made here.
 * usage: test_cmp_backends CMP MKFIXTURE QUANTIZE SOURCE_ROOT FIXTURE [CMP_ARGS...]
 *   FIXTURE: tiny-bf16, tiny-fp8 (mimo-mkfixture, with the fixture tokenizer), tiny-mxfp4 (tiny-fp8
 *   converted by mimo-quantize), nano or nano-prose (fixtures/nano/bf16 decompressed, drafter
 *   included). In CMP_ARGS, @LIST becomes a text list: for nano the held-out code list
 *   (fixtures/nano/heldout_code.txt), for nano-prose the held-out prose list (heldout_prose.txt),
 *   when every file it names is readable on this machine (the training host's paths), else, and
 *   for the tiny fixtures, a list of repository files.
 * The backend named by --dev (default cuda) is opened once first: a build without it (RT_BACKEND)
 * or no such device (RT_DEVICE) skips the test (77), unless MIMO_REQUIRE_GPU=1, where it fails, as
 * tests/gpu/gpu_test.h does. The result is cmp_backends' exit status (its thresholds are its
 * defaults unless CMP_ARGS set them); a usage or input error (2, 3) fails the test. */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"
#include "../runtime/golden_io.h"
#include "libquant/libquant.h"
#include "runtime/model.h"

static char root[] = "/tmp/mimo-cmpb-XXXXXX";

static int sh(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* dir/name.zst decompressed into out. */
static int unzst(const char *dir, const char *name, const char *out)
{
    size_t n = 0;
    void *b = load_zst(dir, name, &n);
    if (!b)
        return -1;
    FILE *f = fopen(out, "wb");
    int rc = f && fwrite(b, 1, n, f) == n ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    free(b);
    return rc;
}

/* 1 when every path of the list file is readable. */
static int list_readable(const char *list)
{
    FILE *f = fopen(list, "r");
    if (!f)
        return 0;
    char line[4096];
    int ok = 1, any = 0;
    while (ok && fgets(line, sizeof(line), f)) {
        size_t l = strcspn(line, "\r\n");
        line[l] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        any = 1;
        ok = access(line, R_OK) == 0;
    }
    fclose(f);
    return ok && any;
}

static void cleanup(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (sh(cmd) != 0)
        fprintf(stderr, "test_cmp_backends: could not remove %s\n", root);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: test_cmp_backends CMP MKFIXTURE QUANTIZE SOURCE_ROOT FIXTURE [CMP_ARGS...]\n");
        return 2;
    }
    (void)rel; /* golden_io.h is used for its zstd loader only */
    const char *cmp = argv[1], *mk = argv[2], *quant = argv[3], *src = argv[4], *fx = argv[5];
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    char model[700], list[700], cmd[8192];
    snprintf(model, sizeof(model), "%s/model", root);
    snprintf(list, sizeof(list), "%s/set.txt", root);
    int made = -1;
    if (!strcmp(fx, "tiny-bf16") || !strcmp(fx, "tiny-fp8")) {
        snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant %s --tokenizer '%s/fixtures/tokenizer/tokenizer.json' "
                 "--out '%s' -q > /dev/null", mk, fx + 5, src, model);
        made = sh(cmd);
    } else if (!strcmp(fx, "tiny-mxfp4")) {
        snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant fp8 --tokenizer '%s/fixtures/tokenizer/tokenizer.json' "
                 "--out '%s/fp8' -q > /dev/null && '%s' '%s/fp8' '%s' -q > /dev/null", mk, src, root, quant, root, model);
        made = sh(cmd);
    } else if (!strcmp(fx, "nano") || !strcmp(fx, "nano-prose")) {
        char nsrc[700], ndf[800], o1[800], o2[800];
        snprintf(nsrc, sizeof(nsrc), "%s/fixtures/nano/bf16", src);
        snprintf(ndf, sizeof(ndf), "%s/dflash", nsrc);
        snprintf(o1, sizeof(o1), "%s/model.safetensors", model);
        snprintf(o2, sizeof(o2), "%s/dflash/dflash_draft_model.safetensors", model);
        snprintf(cmd, sizeof(cmd),
                 "mkdir -p '%s/dflash' && cp '%s/config.json' '%s/tokenizer.json' '%s/' && cp '%s/config.json' "
                 "'%s/mask_embedding.pt' '%s/model.safetensors.index.json' '%s/dflash/'",
                 model, nsrc, nsrc, model, ndf, ndf, ndf, model);
        made = sh(cmd) == 0 && unzst(nsrc, "model.safetensors.zst", o1) == 0 &&
                       unzst(ndf, "dflash_draft_model.safetensors.zst", o2) == 0
                   ? 0
                   : 1;
    } else {
        fprintf(stderr, "test_cmp_backends: unknown fixture '%s' (tiny-bf16, tiny-fp8, tiny-mxfp4, nano, nano-prose)\n",
                fx);
        return 2;
    }
    if (made != 0) {
        fprintf(stderr, "test_cmp_backends: could not make the %s fixture in %s\n", fx, model);
        return 1;
    }

    /* the text list */
    char held[700];
    const int prose = !strcmp(fx, "nano-prose");
    snprintf(held, sizeof(held), "%s/fixtures/nano/heldout_%s.txt", src, prose ? "prose" : "code");
    const char *text = list;
    if (!strncmp(fx, "nano", 4) && list_readable(held)) {
        text = held;
    } else {
        /* code and prose of the repository (what the nano model's held-out list holds, taken from here) */
        static const char *const files[] = {"tools/oracle/golden_tiny.py", "tools/oracle/make_tokenizer.py",
                                            "tools/train/mimo_hub.py",     "tools/train/corpus.py",
                                            "docs/tokenizer.md",           "docs/formats.md"};
        FILE *f = fopen(list, "w");
        for (size_t i = 0; f && i < sizeof(files) / sizeof(files[0]); i++)
            fprintf(f, "%s/%s\n", src, files[i]);
        if (!f || fclose(f) != 0) {
            fprintf(stderr, "test_cmp_backends: cannot write %s\n", list);
            return 1;
        }
    }
    printf("fixture %s in %s; text list %s\n", fx, model, text);

    /* the device under test: present? */
    const char *dev = "cuda";
    for (int i = 6; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--dev"))
            dev = argv[i + 1];
    rt_model_opts mo = {0};
    if (rt_parse_device(dev, &mo.backend, &mo.device)) {
        fprintf(stderr, "test_cmp_backends: --dev %s is not a device\n", dev);
        return 2;
    }
    rt_model *m = NULL;
    lq_error err;
    lq_error_clear(&err);
    if (rt_model_open(model, &mo, &m, &err) != LQ_OK) {
        char buf[1600];
        lq_error_format(&err, buf, sizeof(buf));
        if (!strcmp(err.rule, "RT_BACKEND") || !strcmp(err.rule, "RT_DEVICE")) {
            const char *req = getenv("MIMO_REQUIRE_GPU");
            if (req && req[0] == '1') {
                fprintf(stderr, "MIMO_REQUIRE_GPU=1 but %s cannot be used: %s\n", dev, buf);
                return 1;
            }
            printf("skipped: %s cannot be used here: %s\n", dev, buf);
            return TH_SKIP_EXIT;
        }
        fprintf(stderr, "test_cmp_backends: %s\n", buf); /* cmp_backends reports it again, as a failure */
    }
    rt_model_close(m);

    /* cmp_backends MODEL CMP_ARGS, @LIST replaced */
    char **av = calloc((size_t)argc, sizeof(char *));
    if (!av)
        return 1;
    int k = 0;
    av[k++] = (char *)cmp;
    av[k++] = model;
    for (int i = 6; i < argc; i++)
        av[k++] = !strcmp(argv[i], "@LIST") ? (char *)text : argv[i];
    av[k] = NULL;
    printf("%s", cmp);
    for (int i = 1; i < k; i++)
        printf(" %s", av[i]);
    printf("\n");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execv(cmp, av);
        perror("execv");
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        perror("fork");
        free(av);
        return 1;
    }
    free(av);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (rc != 0)
        fprintf(stderr, "test_cmp_backends: cmp_backends exited %d (%s)\n", rc,
                rc == 1 ? "a check failed" : rc == 2 ? "usage error" : rc == 3 ? "bad input" : "did not finish");
    return rc == 0 ? 0 : 1;
}
