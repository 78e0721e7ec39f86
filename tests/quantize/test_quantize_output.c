/* mimo-quantize end to end: what a finished conversion holds.
 *
 * usage: test_quantize_output MKFIXTURE QUANTIZE
 *
 * 1. Both tiny fixtures (bf16, fp8) convert with --max-shard-size 4M (so OUT has several shards
 *    and an index) and pass the full verification of qt_verify.h: layout of every tensor, every
 *    MXFP4 block against the codec's rules, SQNR against reference/mxfp4_formats.md 1.8 and
 *    against the report, config.json, manifest (sizes, SHA-256, completeness, tensors), dflash/.
 *    Counts come from the tiny geometry of docs/cli.md: 11 MoE layers x 16 experts x 3
 *    projections = 528 MXFP4 weights of 64 x 256 = 16384 elements.
 * 2. --layout compressed-tensors on the bf16 fixture: weight_packed + weight_scale, the
 *    compressed-tensors config, and the same bytes as the mimo layout (one codec, two names);
 *    refused on the fp8 fixture (PLAN_LAYOUT, exit 3), writing nothing.
 * 3. --dry-run --format json: shard names and exact file sizes, tensor counts and total_size
 *    equal the real run's; nothing is written: the runs have a file-size limit of 0 (one byte
 *    written to any file anywhere kills them with SIGXFSZ; stdout is a pipe), TMPDIR points at an
 *    empty directory that stays empty, and neither OUT nor its work directory appears; the text
 *    form prints the same shard sizes.
 * 4. --sign-key with an Ed25519 key made by the openssl CLI: the signature verifies through
 *    lq_sig_read + lq_ed25519_verify_raw and through `openssl pkeyutl -verify -rawin` (the raw
 *    signature taken from the hex in the .sig file); a manifest with one flipped byte fails
 *    both; apart from the .sig file OUT is the unsigned run's. Without the openssl CLI the key
 *    comes from libcrypto and only the openssl sub-checks are skipped, with a message.
 * 5. Pickle safety: pytorch_model.bin in SRC is a FIFO, so opening it would block the tool
 *    (the run has a 60 s limit); it is not copied, nor is optimizer.pt; the JSON extras are.
 *    That run also uses --format json with a double quote in OUT's name: its stdout must be one
 *    strict JSON object naming OUT. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../harness.h"
#include "libquant/libquant.h"
#include "qt_util.h"
#include "qt_verify.h"

static const char *MK, *Q;
static char root[512];

/* docs/cli.md tiny geometry: 12 layers, dense layer 0, 16 experts of 64 over hidden 256. */
#define TINY_EXPERT_WEIGHTS 528u
#define TINY_EXPERT_ELEMENTS (528ull * 64 * 256)
/* --max-shard-size 4M over the outputs' tensors (docs/cli.md: ~46 MB BF16 / ~25 MB FP8 sources,
 * less the experts' 17 MB / 9 MB that shrink to 4.6 MB of MXFP4): at least 5 shards either way;
 * 3 is the floor asserted. */
#define MIN_SHARDS 3

static void expect_rule(const char *errf, const char *rule)
{
    char needle[1024];
    qt_fmt(needle, sizeof(needle), ": %s: ", rule);
    CHECK_MSG(qt_file_contains(errf, needle) == 1, "stderr (%s) does not name rule %s", errf, rule);
}

/* Runs the verification of qt_verify.h and counts its failures here. */
static void verify(const qt_expect *e, qt_result *r, const char *what)
{
    qt_verify(e, r);
    th_checks += r->checks;
    CHECK_MSG(r->failures == 0, "%s: %d of %d output checks failed (listed above)", what, r->failures, r->checks);
}

static void print_result(const char *what, const qt_result *r)
{
    fprintf(stderr,
            "%s: %zu MXFP4 weights, %zu kept, %zu dropped, %zu tensors in %u shards; SQNR %.4f dB (report %.4f), "
            "cosine %.6f, clip %.4f%%; %llu blocks checked, %llu off the rules\n",
            what, r->nquant, r->nkept, r->ndropped, r->nout, r->nshards, r->sqnr_db, r->report_sqnr_db, r->cosine,
            100 * r->clip_frac, (unsigned long long)r->blocks, (unsigned long long)r->bad_blocks);
}

static void case_convert(const char *variant)
{
    char src[1024];
    qt_fmt(src, sizeof(src), "%s/%s", root, variant);
    char out[1024];
    qt_fmt(out, sizeof(out), "%s/out-%s", root, variant);
    char errf[1024];
    qt_fmt(errf, sizeof(errf), "%s/out-%s.err", root, variant);
    int rc = qt_runl(&(qt_run_opts){.err_path = errf}, Q, src, out, "--max-shard-size", "4M", "-q", (char *)NULL);
    CHECK_MSG(rc == 0, "%s conversion exited %d", variant, rc);
    if (rc != 0)
        return;
    qt_result r;
    qt_expect e = {.src = src, .out = out, .min_shards = MIN_SHARDS};
    verify(&e, &r, variant);
    print_result(variant, &r);
    CHECK_EQ_U64(r.nquant, TINY_EXPERT_WEIGHTS);
    CHECK_EQ_U64(r.elements, TINY_EXPERT_ELEMENTS);
    /* The fp8 fixture's experts each carry a weight_scale_inv (docs/cli.md); bf16 has none. */
    CHECK_EQ_U64(r.ndropped, !strcmp(variant, "fp8") ? TINY_EXPERT_WEIGHTS : 0);
    CHECK(!qt_exists(qt_p("%s.mimo-partial", out)));
    CHECK_EQ_U64(qt_count_matching(root, ".tmp-"), 0);
}

/* One tensor's bytes in an output directory (NULL if absent). */
static const uint8_t *tensor_bytes(const lq_ckpt *ck, const char *name, uint64_t *n)
{
    lq_ckpt_tensor t;
    if (lq_ckpt_find(ck, name, &t) != 0)
        return NULL;
    *n = t.info->nbytes;
    return lq_st_data(t.file, t.info);
}

static void case_compressed(void)
{
    char src[1024];
    qt_fmt(src, sizeof(src), "%s/bf16", root);
    char out[1024];
    qt_fmt(out, sizeof(out), "%s/out-ct", root);
    char errf[1024];
    qt_fmt(errf, sizeof(errf), "%s/ct.err", root);
    int rc = qt_runl(&(qt_run_opts){.err_path = errf}, Q, src, out, "--layout", "compressed-tensors",
                     "--max-shard-size", "4M", "-q", (char *)NULL);
    CHECK_MSG(rc == 0, "compressed-tensors conversion exited %d", rc);
    if (rc == 0) {
        qt_result r;
        qt_expect e = {.src = src, .out = out, .compressed = 1, .min_shards = MIN_SHARDS};
        verify(&e, &r, "bf16 compressed-tensors");
        print_result("bf16 compressed-tensors", &r);
        CHECK_EQ_U64(r.nquant, TINY_EXPERT_WEIGHTS);
        /* Same codec and scale mode as the mimo layout: the packed bytes and scales must match. */
        lq_ckpt *a = NULL, *b = NULL;
        CHECK(lq_ckpt_open(out, NULL, &a, NULL) == LQ_OK);
        CHECK(lq_ckpt_open(qt_p("%s/out-bf16", root), NULL, &b, NULL) == LQ_OK);
        size_t same = 0;
        for (size_t i = 0; a && b && i < lq_ckpt_count(b); i++) {
            const char *nm = lq_ckpt_at(b, i).info->name;
            if (!qt_is_routed_expert(nm))
                continue;
            uint64_t n1 = 0, n2 = 0, n3 = 0, n4 = 0;
            const uint8_t *p1 = tensor_bytes(a, qt_p("%s_packed", nm), &n1), *p2 = tensor_bytes(b, nm, &n2);
            const uint8_t *s1 = tensor_bytes(a, qt_p("%s_scale", nm), &n3), *s2 = tensor_bytes(b, qt_p("%s_scale", nm), &n4);
            same += p1 && p2 && s1 && s2 && n1 == n2 && n3 == n4 && !memcmp(p1, p2, n1) && !memcmp(s1, s2, n3);
        }
        CHECK_EQ_U64(same, TINY_EXPERT_WEIGHTS);
        lq_ckpt_close(a);
        lq_ckpt_close(b);
    }
    /* The fp8 fixture keeps FP8 attention weights, which have no compressed-tensors form. */
    char par[1024];
    qt_fmt(par, sizeof(par), "%s/ct-fp8", root);
    mkdir(par, 0755);
    char o2[1100];
    qt_fmt(o2, sizeof(o2), "%s/out", par);
    char e2[1024];
    qt_fmt(e2, sizeof(e2), "%s/ct-fp8.err", root);
    rc = qt_runl(&(qt_run_opts){.err_path = e2}, Q, qt_p("%s/fp8", root), o2, "--layout", "compressed-tensors",
                 "-q", (char *)NULL);
    CHECK_EQ_U64(rc, 3);
    expect_rule(e2, "PLAN_LAYOUT");
    char **left = qt_list(par);
    CHECK_MSG(qt_count_names(left) == 0, "refused compressed-tensors run left %s", left && left[0] ? left[0] : "?");
    qt_free_names(left);
}

static uint64_t file_size(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : UINT64_MAX;
}

/* Runs argv with RLIMIT_FSIZE 0, so that writing one byte to any regular file anywhere kills it
 * with SIGXFSZ; its stdout comes through a pipe and is saved to out_path by this process, its
 * stderr goes to /dev/null. The exit code, or 128 + the signal. */
static int run_no_file_writes(const char *const *argv, const char *out_path)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        int dn = open("/dev/null", O_WRONLY);
        if (dn >= 0)
            dup2(dn, STDERR_FILENO);
        struct rlimit rl = {0, 0};
        signal(SIGXFSZ, SIG_DFL);
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    FILE *f = fopen(out_path, "wb");
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && f)
            fwrite(buf, 1, (size_t)n, f);
    close(fds[0]);
    if (f)
        fclose(f);
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

static void case_dry_run(const char *variant)
{
    char src[1024];
    qt_fmt(src, sizeof(src), "%s/%s", root, variant);
    char real[1024];
    qt_fmt(real, sizeof(real), "%s/out-%s", root, variant);
    char par[1024];
    qt_fmt(par, sizeof(par), "%s/dry-%s", root, variant);
    mkdir(par, 0755);
    char out[1100];
    qt_fmt(out, sizeof(out), "%s/out", par);
    char jf[1024];
    qt_fmt(jf, sizeof(jf), "%s/dry-%s.json", root, variant);
    char tf[1024], tmpd[1024];
    qt_fmt(tf, sizeof(tf), "%s/dry-%s.txt", root, variant);
    qt_fmt(tmpd, sizeof(tmpd), "%s/tmpdir-%s", root, variant);
    mkdir(tmpd, 0755);
    const char *old_tmp = getenv("TMPDIR");
    char *saved = old_tmp ? strdup(old_tmp) : NULL;
    setenv("TMPDIR", tmpd, 1);
    int rc = run_no_file_writes((const char *const[]){Q, src, out, "--max-shard-size", "4M", "--dry-run", "--format",
                                                      "json", "-q", NULL}, jf);
    CHECK_MSG(rc == 0, "dry run exited %d%s", rc, rc == 128 + SIGXFSZ ? " (it wrote to a file)" : "");
    int rc2 = run_no_file_writes((const char *const[]){Q, src, out, "--max-shard-size", "4M", "--dry-run", "-q", NULL},
                                 tf);
    CHECK_MSG(rc2 == 0, "dry run (text) exited %d%s", rc2, rc2 == 128 + SIGXFSZ ? " (it wrote to a file)" : "");
    if (saved)
        setenv("TMPDIR", saved, 1);
    else
        unsetenv("TMPDIR");
    free(saved);
    char **left = qt_list(par);
    CHECK_MSG(qt_count_names(left) == 0, "--dry-run wrote %s", left && left[0] ? left[0] : "?");
    qt_free_names(left);
    left = qt_list(tmpd);
    CHECK_MSG(left && qt_count_names(left) == 0, "--dry-run wrote %s in TMPDIR", left && left[0] ? left[0] : "?");
    qt_free_names(left);
    CHECK_MSG(!qt_exists(out) && !qt_exists(qt_p("%s.mimo-partial", out)), "--dry-run created OUT or its work directory");
    cJSON *j = qt_json(jf);
    lq_ckpt *ck = NULL;
    if (!j || lq_ckpt_open(real, NULL, &ck, NULL) != LQ_OK) {
        TH_REPORT("dry run JSON (%s) or the real output %s unreadable", jf, real);
        cJSON_Delete(j);
        return;
    }
    /* Shards: the same names, and each file's exact size. */
    const cJSON *shards = lq_json_get(j, "shards"), *s;
    CHECK_EQ_U64(cJSON_GetArraySize(shards), lq_ckpt_shard_count(ck));
    size_t k = 0;
    cJSON_ArrayForEach(s, shards) {
        const char *nm = cJSON_GetStringValue(lq_json_get(s, "name"));
        uint64_t fb = 0;
        lq_json_u64(lq_json_get(s, "file_bytes"), &fb);
        k++;
        if (!nm) {
            TH_REPORT("dry-run shard %zu has no name", k);
            continue;
        }
        CHECK_STR(nm, k <= lq_ckpt_shard_count(ck) ? lq_ckpt_shard_name(ck, k - 1) : "(none)");
        uint64_t real_size = file_size(qt_p("%s/%s", real, nm));
        CHECK_MSG(fb == real_size, "dry-run size of %s: %llu, real %llu", nm, (unsigned long long)fb,
                  (unsigned long long)real_size);
        CHECK_MSG(qt_file_contains(tf, qt_p("  %s  %llu bytes\n", nm, (unsigned long long)real_size)) == 1,
                  "the text dry run does not print %s with %llu bytes", nm, (unsigned long long)real_size);
    }
    /* Tensor counts against the real output: MXFP4 weights have a U8 *_scale partner. */
    size_t nq = 0;
    for (size_t i = 0; i < lq_ckpt_count(ck); i++) {
        const lq_tensor_info *ti = lq_ckpt_at(ck, i).info;
        if (ti->dtype != LQ_DTYPE_U8)
            continue;
        lq_ckpt_tensor sc;
        nq += lq_ckpt_find(ck, qt_p("%s_scale", ti->name), &sc) == 0 && sc.info->dtype == LQ_DTYPE_U8;
    }
    const cJSON *tj = lq_json_get(j, "tensors");
    uint64_t v = 0;
    CHECK(lq_json_u64(lq_json_get(tj, "output"), &v) == 0 && v == lq_ckpt_count(ck));
    CHECK(lq_json_u64(lq_json_get(tj, "mxfp4"), &v) == 0 && v == nq);
    CHECK(lq_json_u64(lq_json_get(tj, "keep"), &v) == 0 && v == lq_ckpt_count(ck) - 2 * nq);
    CHECK(lq_json_u64(lq_json_get(tj, "dropped"), &v) == 0 && v == (!strcmp(variant, "fp8") ? TINY_EXPERT_WEIGHTS : 0));
    CHECK_EQ_U64(cJSON_GetArraySize(lq_json_get(j, "mxfp4")), nq);
    /* total_size equals the index's metadata.total_size. */
    cJSON *idx = qt_json(qt_p("%s/model.safetensors.index.json", real));
    uint64_t t1 = 0, t2 = 1;
    CHECK(lq_json_u64(lq_json_get(j, "total_size"), &t1) == 0);
    CHECK(idx && lq_json_u64(lq_json_get(lq_json_get(idx, "metadata"), "total_size"), &t2) == 0);
    CHECK_EQ_U64(t1, t2);
    fprintf(stderr, "%s dry run: %d shards, %llu tensor bytes, %llu tensors (%zu MXFP4), as the real run\n", variant,
            cJSON_GetArraySize(shards), (unsigned long long)t1, (unsigned long long)lq_ckpt_count(ck), nq);
    cJSON_Delete(idx);
    cJSON_Delete(j);
    lq_ckpt_close(ck);
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* An Ed25519 key through libcrypto, for machines without the openssl CLI. */
static int keygen_libcrypto(const char *path)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    FILE *f = k ? fopen(path, "wb") : NULL;
    int ok = f && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
    if (f)
        ok &= fclose(f) == 0;
    EVP_PKEY_free(k);
    return ok ? 0 : -1;
}

static void case_sign(void)
{
    char key[1024], pub[1024], out[1024], sigpath[1100], manpath[1100];
    qt_fmt(key, sizeof(key), "%s/ed25519.pem", root);
    qt_fmt(pub, sizeof(pub), "%s/ed25519.pub.pem", root);
    qt_fmt(out, sizeof(out), "%s/out-signed", root);
    qt_fmt(sigpath, sizeof(sigpath), "%s/%s", out, LQ_SIGNATURE_FILE);
    qt_fmt(manpath, sizeof(manpath), "%s/%s", out, LQ_MANIFEST_FILE);
    int cli = qt_runl(&(qt_run_opts){0}, "openssl", "version", (char *)NULL) == 0;
    if (cli) {
        CHECK(qt_runl(&(qt_run_opts){0}, "openssl", "genpkey", "-algorithm", "ed25519", "-out", key, (char *)NULL) == 0);
        CHECK(qt_runl(&(qt_run_opts){0}, "openssl", "pkey", "-in", key, "-pubout", "-out", pub, (char *)NULL) == 0);
    } else {
        fprintf(stderr, "test_quantize_output: the openssl CLI is not installed: key made through libcrypto, "
                        "openssl pkeyutl checks skipped\n");
        CHECK(keygen_libcrypto(key) == 0);
    }
    int rc = qt_runl(&(qt_run_opts){.err_path = qt_p("%s/signed.err", root)}, Q, qt_p("%s/fp8", root), out,
                     "--max-shard-size", "4M", "--sign-key", key, "-q", (char *)NULL);
    CHECK_MSG(rc == 0, "signed conversion exited %d", rc);
    if (rc != 0)
        return;
    /* Apart from the signature, OUT is the unsigned run's (the manifest does not list the .sig). */
    qt_tree a = {0}, b = {0};
    char msg[600];
    CHECK(qt_tree_scan(out, &a) == 0 && qt_tree_scan(qt_p("%s/out-fp8", root), &b) == 0);
    size_t w = 0, had_sig = 0;
    for (size_t i = 0; i < a.n; i++) {
        if (!strcmp(a.e[i].path, LQ_SIGNATURE_FILE)) {
            had_sig = 1;
            free(a.e[i].path);
            continue;
        }
        a.e[w++] = a.e[i];
    }
    a.n = w;
    CHECK(had_sig);
    CHECK_MSG(!qt_tree_diff(&a, &b, msg, sizeof(msg)), "signed OUT differs from the unsigned one: %s", msg);
    qt_tree_free(&a);
    qt_tree_free(&b);

    size_t mlen = 0, slen = 0;
    uint8_t *man = qt_read(manpath, &mlen);
    uint8_t sig[64], pk[32], pk_key[32], pk_pem[32], raw[64];
    CHECK_EQ_U64(file_size(sigpath), LQ_SIG_FILE_BYTES);
    CHECK(lq_sig_read(sigpath, sig, pk, NULL) == LQ_OK);
    /* The embedded key is the signer's (derived from the private key). */
    CHECK(lq_ed25519_public_from_private(key, pk_key, NULL) == LQ_OK && !memcmp(pk, pk_key, 32));
    CHECK(man && lq_ed25519_verify_raw(pk, man, mlen, sig, NULL) == LQ_OK);
    /* The raw signature, from the hex of the .sig file (sign.h format). */
    uint8_t *stext = qt_read(sigpath, &slen);
    const char *hexsig = stext ? strstr((const char *)stext, "\nsignature ") : NULL;
    CHECK(hexsig && unhex(hexsig + 11, raw, 64) == 0 && !memcmp(raw, sig, 64));
    const char *sigbin = qt_p("%s/manifest.sig.bin", root), *bad = qt_p("%s/manifest-flipped.json", root);
    CHECK(qt_write(sigbin, raw, 64) == 0);
    if (cli) {
        /* openssl verifies the same bytes independently (pure Ed25519, sign.h). */
        CHECK(lq_ed25519_public_from_pem(pub, pk_pem, NULL) == LQ_OK && !memcmp(pk, pk_pem, 32));
        rc = qt_runl(&(qt_run_opts){0}, "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in",
                     manpath, "-sigfile", sigbin, (char *)NULL);
        CHECK_MSG(rc == 0, "openssl pkeyutl -verify of the manifest exited %d", rc);
    }
    /* One flipped byte: every verifier refuses. */
    if (man && mlen > 100) {
        man[mlen / 2] ^= 0x01;
        CHECK(lq_ed25519_verify_raw(pk, man, mlen, sig, NULL) != LQ_OK);
        CHECK(qt_write(bad, man, mlen) == 0);
        if (cli) {
            rc = qt_runl(&(qt_run_opts){0}, "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in",
                         bad, "-sigfile", sigbin, (char *)NULL);
            CHECK_MSG(rc != 0, "openssl accepted a flipped manifest (exit %d)", rc);
        }
    }
    free(man);
    free(stext);
    fprintf(stderr, "signing: the manifest signature verifies (lq_ed25519_verify_raw%s) and fails with one byte "
                    "flipped\n", cli ? ", openssl pkeyutl" : "");
}

static void case_pickle(void)
{
    char src[1024];
    qt_fmt(src, sizeof(src), "%s/fp8-pickle", root);
    CHECK(qt_link_tree(qt_p("%s/fp8", root), src) == 0);
    /* A FIFO: any open for reading would block until a writer appears, which never happens. */
    CHECK(mkfifo(qt_p("%s/pytorch_model.bin", src), 0644) == 0);
    static const char pk[] = "\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00\x8c\x01x\x94.";
    CHECK(qt_write(qt_p("%s/optimizer.pt", src), pk, sizeof(pk) - 1) == 0);
    static const char gen[] = "{\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n";
    static const char tok[] = "{\"version\": \"1.0\", \"model\": {\"type\": \"BPE\"}}\n";
    CHECK(qt_write(qt_p("%s/generation_config.json", src), gen, sizeof(gen) - 1) == 0);
    CHECK(qt_write(qt_p("%s/tokenizer.json", src), tok, sizeof(tok) - 1) == 0);
    /* OUT's name has a double quote, which the JSON result line on stdout must escape. */
    char out[1024];
    qt_fmt(out, sizeof(out), "%s/out \"pickle\"", root);
    char errf[1024], jf[1024];
    qt_fmt(errf, sizeof(errf), "%s/pickle.err", root);
    qt_fmt(jf, sizeof(jf), "%s/pickle.json", root);
    int rc = qt_runl(&(qt_run_opts){.err_path = errf, .out_path = jf, .timeout_s = 60}, Q, src, out,
                     "--max-shard-size", "4M", "--format", "json", (char *)NULL);
    CHECK_MSG(rc == 0, "conversion with pickles in SRC exited %d (-2: timed out, i.e. blocked opening the FIFO)", rc);
    if (rc != 0)
        return;
    cJSON *res = qt_json(jf);
    CHECK_MSG(res != NULL, "--format json: the result on stdout is not strict JSON (OUT has a '\"' in its name)");
    CHECK_STR(res ? cJSON_GetStringValue(lq_json_get(res, "out")) : NULL, out);
    cJSON_Delete(res);
    CHECK(qt_file_contains(errf, "pytorch_model.bin: not copied (pickle files are never read)") == 1);
    CHECK(qt_file_contains(errf, "optimizer.pt: not copied (pickle files are never read)") == 1);
    qt_result r;
    qt_expect e = {.src = src, .out = out, .min_shards = MIN_SHARDS};
    verify(&e, &r, "fp8 with pickles and extras"); /* extras copied byte for byte, pickles absent */
    print_result("fp8 with pickles and extras", &r);
    CHECK(!qt_exists(qt_p("%s/pytorch_model.bin", out)) && !qt_exists(qt_p("%s/optimizer.pt", out)));
    CHECK(qt_exists(qt_p("%s/generation_config.json", out)) && qt_exists(qt_p("%s/tokenizer.json", out)));
    /* The shards are those of the run without extras: pickles and extras change no tensor. */
    char plain[1100];
    qt_fmt(plain, sizeof(plain), "%s/out-fp8", root);
    char **names = qt_list(plain);
    size_t nsh = 0;
    for (size_t i = 0; names && names[i]; i++) {
        size_t l = strlen(names[i]);
        if (l < 12 || strcmp(names[i] + l - 12, ".safetensors") != 0)
            continue;
        char h1[65] = "", h2[65] = "-";
        qt_sha256_file(qt_p("%s/%s", out, names[i]), h1, NULL);
        qt_sha256_file(qt_p("%s/%s", plain, names[i]), h2, NULL);
        CHECK_MSG(!strcmp(h1, h2), "%s differs from the run without extras", names[i]);
        nsh++;
    }
    CHECK_EQ_U64(nsh, r.nshards);
    qt_free_names(names);
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
    int ok = qt_mkfixture(MK, "bf16", qt_p("%s/bf16", root)) == 0 && qt_mkfixture(MK, "fp8", qt_p("%s/fp8", root)) == 0;
    CHECK_MSG(ok, "mimo-mkfixture failed");
    if (ok) {
        case_convert("bf16");
        case_convert("fp8");
        case_compressed();
        case_dry_run("bf16");
        case_dry_run("fp8");
        case_sign();
        case_pickle();
    }
    qt_rmtree(root);
    return th_finish("test_quantize_output");
}
