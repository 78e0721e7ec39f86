/* libFuzzer target for the tokenizer (tokenizer.json loading, encode and decode;
 * runtime/tokenizer.h).
 *
 * Build and run (from the repository root; scripts/fuzz.sh does this for every target):
 *   clang -g -O1 -std=c11 -D_XOPEN_SOURCE=700 -D_DEFAULT_SOURCE -I. -I/usr/include/cjson \
 *     -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     tests/fuzz/fuzz_tokenizer.c runtime/tokenizer.c libquant/json.c libquant/status.c \
 *     -lcjson -lpcre2-8 -lm -o build-fuzz/fuzz_tokenizer
 *   build-fuzz/fuzz_tokenizer -max_total_time=60 -max_len=32768 build-fuzz/work-tokenizer \
 *     tests/fuzz/seeds/tokenizer
 *
 * Input split (fixed rule): the bytes before the first 0x00 byte are tokenizer.json (strict JSON
 * never holds a raw 0x00, so the split point cannot fall inside a valid file); the bytes after
 * it are the text to encode, 0x00 bytes included. An input without 0x00 is all tokenizer.json,
 * and a fixed multi-script sample (below) is encoded instead. The tokenizer is written to a
 * private temporary file (one per process, removed at exit) because the library opens a path.
 *
 * Whatever the input, nothing may crash or leak; a refused tokenizer or text must name the file
 * (or, for the text, carry TOK_INPUT_UTF8) and a TOK_* rule. When the tokenizer loads and the
 * text encodes: every id is below vocab_size and has bytes; decoding (keeping special tokens)
 * succeeds, is NUL-terminated, and equals the concatenated token bytes whenever those are valid
 * UTF-8 (and is valid UTF-8 of at least that length otherwise, the lossy replacement only
 * growing it); text that is not UTF-8 is refused with TOK_INPUT_UTF8; decoding with special
 * tokens skipped gives no more bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_tokenizer: invariant broken: %s (%s)\n", what, detail ? detail : "");
    abort();
}

static const char sample[] = "Hello, world! It's 2026: 3.14 <|im_start|>user\n"
                             "  tokens\t\tand   spaces\r\n"
                             "Grüße, café, 東京, 한국어, 😀👍🏽 <|MASK|><|im_end|>";

static char path[64];

static void cleanup(void) { unlink(path); }

/* Strict UTF-8 (no surrogates, no overlongs, at most U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

static void run_text(const rt_tokenizer *t, const char *text, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = rt_tokenizer_encode(t, text, len, &ids, &n, &err);
    int valid = utf8_valid((const uint8_t *)text, len);
    if (st != LQ_OK) {
        if (ids)
            fail("ids on failure", NULL);
        if (valid && st != LQ_ERR_NO_MEMORY && st != LQ_ERR_LIMIT)
            fail("valid UTF-8 refused", err.rule);
        if (!valid && strcmp(err.rule, "TOK_INPUT_UTF8") != 0)
            fail("bad UTF-8 refused without TOK_INPUT_UTF8", err.rule);
        return;
    }
    if (!valid)
        fail("text that is not UTF-8 encoded", NULL);
    if ((n == 0) != (ids == NULL))
        fail("ids and count disagree", NULL);
    size_t vocab = rt_tokenizer_vocab_size(t), total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t bl = 0;
        if (ids[i] < 0 || (size_t)ids[i] >= vocab || !rt_tokenizer_token_bytes(t, ids[i], &bl))
            fail("id outside the vocabulary or without bytes", NULL);
        total += bl;
    }
    uint8_t *joined = malloc(total + 1);
    if (!joined)
        abort();
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t bl = 0;
        const char *b = rt_tokenizer_token_bytes(t, ids[i], &bl);
        memcpy(joined + at, b, bl);
        at += bl;
    }
    char *out = NULL;
    size_t out_len = 0;
    if (rt_tokenizer_decode(t, ids, n, 0, &out, &out_len, &err) != LQ_OK || !out)
        fail("decode of encoded ids", err.rule);
    if (out[out_len] != '\0' || !utf8_valid((const uint8_t *)out, out_len))
        fail("decoded text not NUL-terminated UTF-8", NULL);
    if (utf8_valid(joined, total) ? (out_len != total || memcmp(out, joined, total) != 0) : out_len < total)
        fail("decode differs from the token bytes", NULL);
    char *skipped = NULL;
    size_t skipped_len = 0;
    if (rt_tokenizer_decode(t, ids, n, 1, &skipped, &skipped_len, &err) != LQ_OK || !skipped)
        fail("decode skipping special tokens", err.rule);
    if (skipped_len > out_len)
        fail("skipping special tokens added bytes", NULL);
    free(skipped);
    free(out);
    free(joined);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof(path), "%s/lqfuzz-tok-XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
        int fd = mkstemp(path);
        if (fd < 0)
            abort();
        close(fd);
        atexit(cleanup);
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, json_len, f) != json_len || fclose(f) != 0)
        abort();

    rt_tokenizer *t = NULL;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = rt_tokenizer_open(path, &t, &err);
    if (st != LQ_OK) {
        if (t)
            fail("tokenizer on failure", NULL);
        if (strncmp(err.rule, "TOK_", 4) != 0 && st != LQ_ERR_NO_MEMORY)
            fail("refusal without a TOK_ rule", err.rule);
        if (strcmp(err.file, path) != 0)
            fail("error does not name the file", err.file);
        return 0;
    }
    if (nul)
        run_text(t, (const char *)nul + 1, size - json_len - 1);
    else
        run_text(t, sample, sizeof(sample) - 1);
    rt_tokenizer_close(t);
    return 0;
}
