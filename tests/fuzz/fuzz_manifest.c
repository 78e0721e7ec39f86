/* libFuzzer target for the artifact manifest (mimo-manifest.json) as mimo-verify reads it.
 *
 * The manifest is read only by tools/mimo-verify.c (its "manifest", "integrity" and "tensors"
 * checks, static functions there), so this file includes that source with its main renamed and
 * drives the same functions in the same order as the tool's main.
 *
 * Build and run (from the repository root; scripts/fuzz.sh does this for every target):
 *   clang -g -O1 -std=c11 -D_XOPEN_SOURCE=700 -D_DEFAULT_SOURCE -I. -I/usr/include/cjson \
 *     -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     tests/fuzz/fuzz_manifest.c libquant/[a-z]*.c runtime/[a-z]*.c \
 *     -lcjson -lcrypto -lpcre2-8 -lpthread -lm -o build-fuzz/fuzz_manifest
 *   build-fuzz/fuzz_manifest -max_total_time=60 -max_len=16384 build-fuzz/work-manifest \
 *     tests/fuzz/seeds/manifest
 *
 * Each process builds one small artifact in a private temporary directory (removed at exit):
 *   config.json         "{}"
 *   model.safetensors   a.weight F32[2] = {1, 2}, b.bias U8[3] = {1, 2, 3}
 *   dflash/extra.bin    "x"
 * and each run writes the input there as mimo-manifest.json, then, as mimo-verify does: parses
 * it (lq_json_parse_file, default limits), checks the schema and every entry
 * (manifest_entries_ok), and when that passes runs the integrity check (sizes and SHA-256 of the
 * listed files, unlisted files, and for a wrong digest of a shard the CRC-32C of each listed
 * tensor: locate_damage) and the tensors check (manifest against the shards). The seeds in
 * tests/fuzz/seeds/manifest describe exactly this artifact, so they pass every check and
 * mutations of them reach every branch. The tool's per-check results (a static table) are reset
 * before every run, so no run sees another's results.
 *
 * Whatever the input, nothing may crash or leak (the hashing runs in-thread: threads = 0 makes
 * the tool's pool call its worker directly). Beyond that: every check that ran has a result line;
 * an accepted manifest lists only paths without a ".." component, not absolute and not empty,
 * each with a 64-digit lowercase SHA-256; and when the integrity check passes, every listed file
 * exists with the listed size, and every file of the artifact is listed. */
#define main mimo_verify_main
int mimo_verify_main(int argc, char **argv);
#include "../../tools/mimo-verify.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_manifest: invariant broken: %s (%s)\n", what, detail ? detail : "");
    abort();
}

static char art[64];

static void put_file(const char *rel, const void *bytes, size_t n)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", art, rel);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "fuzz_manifest: cannot write %s\n", path);
        abort();
    }
}

static void cleanup(void)
{
    static const char *const rels[] = {"config.json", "model.safetensors", "dflash/extra.bin",
                                       "mimo-manifest.json", "dflash"};
    char path[256];
    for (size_t i = 0; i < sizeof(rels) / sizeof(rels[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", art, rels[i]);
        remove(path);
    }
    rmdir(art);
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(art, sizeof(art), "%s/lqfuzz-man-XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    if (!mkdtemp(art))
        abort();
    atexit(cleanup);
    put_file("config.json", "{}", 2);
    static const char header[] = "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                 "\"b.bias\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}";
    uint8_t buf[256] = {0};
    size_t h = strlen(header), hp = (h + 7) / 8 * 8;
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hp >> (8 * i));
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, ' ', hp - h);
    static const uint8_t tensors[11] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40, 1, 2, 3};
    memcpy(buf + 8 + hp, tensors, sizeof(tensors));
    put_file("model.safetensors", buf, 8 + hp + sizeof(tensors));
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/dflash", art);
    if (mkdir(sub, 0700) != 0)
        abort();
    put_file("dflash/extra.bin", "x", 1);
}

/* The tool's own path rule, restated by components: no "..", not absolute, not empty. */
static int path_inside(const char *p)
{
    if (!p || !p[0] || p[0] == '/')
        return 0;
    for (const char *s = p; *s;) {
        size_t n = strcspn(s, "/");
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return 0;
        s += n;
        if (*s == '/')
            s++;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!art[0])
        setup();
    for (size_t i = 0; i < NCHECKS; i++) {
        checks[i].ran = checks[i].passed = 0;
        checks[i].detail[0] = '\0';
    }
    put_file(LQ_MANIFEST_FILE, data, size);

    /* From here to the end of the tensors check: the order and calls of mimo-verify's main. */
    lq_error err;
    int parsed = 0, man_ok = 0, mi = check_index("manifest");
    cJSON *man = check_manifest(art, &parsed, &man_ok);
    if (!parsed && man)
        fail("tree on failure", NULL);
    if (!checks[mi].ran || !checks[mi].detail[0])
        fail("manifest check without a result", NULL);
    if (man_ok) {
        const cJSON *e;
        cJSON_ArrayForEach(e, lq_json_get(man, "files")) {
            const char *p = cJSON_GetStringValue(lq_json_get(e, "path"));
            const char *h = cJSON_GetStringValue(lq_json_get(e, "sha256"));
            if (!path_inside(p))
                fail("accepted path outside the artifact", p);
            if (!h || strlen(h) != 64 || strspn(h, "0123456789abcdef") != 64)
                fail("accepted digest", h);
        }
        check_integrity(art, man, 0);
        int ii = check_index("integrity");
        if (!checks[ii].ran || !checks[ii].detail[0])
            fail("integrity check without a result", NULL);
        if (checks[ii].passed) {
            struct stat sb;
            char path[8192];
            size_t listed = 0;
            cJSON_ArrayForEach(e, lq_json_get(man, "files")) {
                uint64_t want = 0;
                lq_json_u64(lq_json_get(e, "size"), &want);
                snprintf(path, sizeof(path), "%s/%s", art, cJSON_GetStringValue(lq_json_get(e, "path")));
                if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != want)
                    fail("integrity passed a missing or wrong-sized file", path);
                listed++;
            }
            /* The artifact holds 3 files besides the manifest; all must be listed (repeats of a
             * path would let fewer distinct files pass, so count distinct at least 3). */
            if (listed < 3)
                fail("integrity passed with unlisted files", NULL);
        }
        lq_ckpt *ck = NULL;
        lq_error_clear(&err);
        if (lq_ckpt_open(art, NULL, &ck, &err) != LQ_OK)
            fail("the fixed artifact does not open", err.rule);
        check_tensors(ck, man);
        int ti = check_index("tensors");
        if (!checks[ti].ran || !checks[ti].detail[0])
            fail("tensors check without a result", NULL);
        if (checks[ti].passed) {
            /* Passing means the two lists are equal: same count, and (so that a repeated entry
             * cannot stand in for a missing one) distinct names. */
            const cJSON *ts = lq_json_get(man, "tensors"), *a, *b;
            if ((size_t)cJSON_GetArraySize(ts) != lq_ckpt_count(ck))
                fail("tensors passed with a different count", NULL);
            cJSON_ArrayForEach(a, ts) {
                for (b = a->next; b; b = b->next)
                    if (!strcmp(cJSON_GetStringValue(lq_json_get(a, "name")), cJSON_GetStringValue(lq_json_get(b, "name"))))
                        fail("tensors passed with a tensor listed twice", cJSON_GetStringValue(lq_json_get(a, "name")));
            }
        }
        lq_ckpt_close(ck);
    }
    cJSON_Delete(man);
    return 0;
}
