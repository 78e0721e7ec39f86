/* Test-side safetensors image assembly (st_build.h). */
#include "st_build.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "st_build: out of memory\n");
        abort();
    }
    return q;
}

void stb_put(stb_buf *b, const void *src, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
    b->p[b->len] = 0; /* keeps text buffers printable; not part of len */
}

void stb_puts(stb_buf *b, const char *s)
{
    stb_put(b, s, strlen(s));
}

void stb_printf(stb_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    char *tmp = xrealloc(NULL, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    stb_put(b, tmp, (size_t)n);
    free(tmp);
}

void stb_free(stb_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

unsigned stb_dtype_bits(const char *dtype)
{
    static const struct {
        const char *name;
        unsigned bits;
    } table[] = {
        {"BOOL", 8},     {"F4", 4},       {"F6_E2M3", 6},     {"F6_E3M2", 6},
        {"U8", 8},       {"I8", 8},       {"F8_E5M2", 8},     {"F8_E4M3", 8},
        {"F8_E8M0", 8},  {"F8_E4M3FNUZ", 8}, {"F8_E5M2FNUZ", 8}, {"I16", 16},
        {"U16", 16},     {"F16", 16},     {"BF16", 16},       {"I32", 32},
        {"U32", 32},     {"F32", 32},     {"C64", 64},        {"F64", 64},
        {"I64", 64},     {"U64", 64},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(table[i].name, dtype) == 0)
            return table[i].bits;
    return 0;
}

uint64_t stb_tensor_bytes(const stb_tensor *t)
{
    uint64_t numel = 1;
    for (unsigned i = 0; i < t->rank; i++)
        numel *= t->shape[i];
    return numel * stb_dtype_bits(t->dtype) / 8;
}

uint8_t stb_pattern(uint64_t k)
{
    return (uint8_t)((k * 131u + 7u) ^ (k >> 8));
}

uint8_t *stb_raw(uint64_t len_field, const void *header, size_t hlen, const void *data,
                 size_t dlen, size_t *out_len)
{
    size_t n = 8 + hlen + dlen;
    uint8_t *img = xrealloc(NULL, n);
    for (int i = 0; i < 8; i++)
        img[i] = (uint8_t)(len_field >> (8 * i));
    if (hlen)
        memcpy(img + 8, header, hlen);
    for (size_t k = 0; k < dlen; k++)
        img[8 + hlen + k] = data ? ((const uint8_t *)data)[k] : stb_pattern(k);
    *out_len = n;
    return img;
}

uint8_t *stb_image(const char *header, size_t dlen, size_t *out_len)
{
    size_t hlen = strlen(header);
    return stb_raw(hlen, header, hlen, NULL, dlen, out_len);
}

uint8_t *stb_build(const stb_tensor *t, size_t n, const char *metadata_json, int pad8,
                   size_t *out_len, char **header_out)
{
    stb_buf h = {0};
    stb_puts(&h, "{");
    int first = 1;
    if (metadata_json) {
        stb_printf(&h, "\"__metadata__\":%s", metadata_json);
        first = 0;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t nb = stb_tensor_bytes(&t[i]);
        stb_printf(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", first ? "" : ",", t[i].name,
                   t[i].dtype);
        for (unsigned r = 0; r < t[i].rank; r++)
            stb_printf(&h, "%s%llu", r ? "," : "", (unsigned long long)t[i].shape[r]);
        stb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                   (unsigned long long)(off + nb));
        off += nb;
        first = 0;
    }
    stb_puts(&h, "}");
    while (pad8 && h.len % 8)
        stb_puts(&h, " ");
    uint8_t *img = stb_raw(h.len, h.p, h.len, NULL, (size_t)off, out_len);
    if (header_out) {
        *header_out = xrealloc(NULL, h.len + 1);
        memcpy(*header_out, h.p, h.len + 1);
    }
    stb_free(&h);
    return img;
}

int stb_write_file(const char *path, const void *bytes, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t w = len ? fwrite(bytes, 1, len, fp) : 0;
    int rc = fclose(fp);
    return (w == len && rc == 0) ? 0 : -1;
}
