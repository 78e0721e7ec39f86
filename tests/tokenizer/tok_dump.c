/* Helper of interop_tokenizers.py: runs our tokenizer over records and prints the results, one
 * line per record, for the Python side to compare with the tokenizers library.
 *
 *   tok_dump encode TOKENIZER IN OUT   IN: records [u32 LE byte count][UTF-8 bytes]
 *       line: "ids <n> <id> <id> ... | <hex of decode(ids, skip 0)>"  or  "err <RULE>"
 *   tok_dump decode TOKENIZER IN OUT   IN: records [u32 LE id count][i32 LE ids]
 *       line: "<hex of decode(skip 0)> <hex of decode(skip 1)>"  (a single "-" for empty)  or  "err <RULE>"
 * Exit 0 when every record was processed (per-record errors are data), 3 on I/O or open errors. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/tokenizer.h"

static void put_hex(FILE *f, const char *s, size_t n)
{
    if (!n)
        fputc('-', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", (unsigned)(uint8_t)s[i]);
}

static int read_u32(FILE *f, uint32_t *v)
{
    uint8_t b[4];
    if (fread(b, 1, 4, f) != 4)
        return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "encode") && strcmp(argv[1], "decode"))) {
        fprintf(stderr, "usage: tok_dump encode|decode TOKENIZER IN OUT\n");
        return 2;
    }
    int enc = !strcmp(argv[1], "encode");
    lq_error err;
    rt_tokenizer *t = NULL;
    if (rt_tokenizer_open(argv[2], &t, &err) != LQ_OK) {
        char buf[1400];
        fprintf(stderr, "tok_dump: %s\n", lq_error_format(&err, buf, sizeof(buf)));
        return 3;
    }
    FILE *in = fopen(argv[3], "rb"), *out = fopen(argv[4], "w");
    if (!in || !out) {
        fprintf(stderr, "tok_dump: cannot open %s or %s\n", argv[3], argv[4]);
        return 3;
    }
    uint32_t n;
    int rc = 0;
    while (read_u32(in, &n) == 0) {
        size_t bytes = enc ? n : (size_t)n * 4;
        char *buf = malloc(bytes + 1);
        if (!buf || fread(buf, 1, bytes, in) != bytes) {
            fprintf(stderr, "tok_dump: truncated record\n");
            free(buf);
            rc = 3;
            break;
        }
        if (enc) {
            int32_t *ids = NULL;
            size_t nid = 0;
            char *text = NULL;
            size_t tl = 0;
            if (rt_tokenizer_encode(t, buf, n, &ids, &nid, &err) != LQ_OK ||
                rt_tokenizer_decode(t, ids, nid, 0, &text, &tl, &err) != LQ_OK) {
                fprintf(out, "err %s\n", err.rule);
            } else {
                fprintf(out, "ids %zu", nid);
                for (size_t i = 0; i < nid; i++)
                    fprintf(out, " %" PRId32, ids[i]);
                fputs(" | ", out);
                put_hex(out, text, tl);
                fputc('\n', out);
            }
            free(ids);
            free(text);
        } else {
            int32_t *ids = malloc(((size_t)n + 1) * sizeof(int32_t));
            if (!ids) {
                free(buf);
                rc = 3;
                break;
            }
            for (uint32_t i = 0; i < n; i++) {
                const uint8_t *b = (const uint8_t *)buf + 4 * (size_t)i;
                ids[i] = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                                   (uint32_t)b[3] << 24);
            }
            char *a = NULL, *s = NULL;
            size_t al = 0, sl = 0;
            if (rt_tokenizer_decode(t, ids, n, 0, &a, &al, &err) != LQ_OK ||
                rt_tokenizer_decode(t, ids, n, 1, &s, &sl, &err) != LQ_OK) {
                fprintf(out, "err %s\n", err.rule);
            } else {
                put_hex(out, a, al);
                fputc(' ', out);
                put_hex(out, s, sl);
                fputc('\n', out);
            }
            free(a);
            free(s);
            free(ids);
        }
        free(buf);
    }
    fclose(in);
    if (fclose(out) != 0)
        rc = 3;
    rt_tokenizer_close(t);
    return rc;
}
