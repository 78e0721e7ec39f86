/* Golden files for the runtime tests: zstd-compressed raw arrays, and the relative L2 error the
 * tests compare with. */
#ifndef MIMO_TESTS_RUNTIME_GOLDEN_IO_H
#define MIMO_TESTS_RUNTIME_GOLDEN_IO_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>

/* dir/name decompressed into a malloc'd buffer (*len bytes), or NULL. */
static void *load_zst(const char *dir, const char *name, size_t *len)
{
    char p[1200];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *c = malloc((size_t)n);
    size_t got = fread(c, 1, (size_t)n, f);
    fclose(f);
    unsigned long long size = ZSTD_getFrameContentSize(c, got);
    void *out = size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN ? malloc(size) : NULL;
    if (out && ZSTD_isError(ZSTD_decompress(out, size, c, got))) {
        free(out);
        out = NULL;
    }
    free(c);
    *len = out ? size : 0;
    return out;
}

static double rel(const float *a, const float *b, size_t n)
{
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(e / (s > 0 ? s : 1));
}

#endif
