/* interop_gen OUTDIR: writes our decodings and encodings as raw little-endian arrays for
 * tests/numerics/interop_mldtypes.py, which checks them against ml_dtypes.
 *
 * Files (count = file size / element size):
 *   dec_<fmt>.f32           our decoding of every code of fmt (e2m1: 0..15, e8m0 / e4m3 / e5m2:
 *                           0..255, bf16 / f16: 0..65535)
 *   enc_in.f32              2^20 + extra inputs: random bit patterns (every class: NaN, inf,
 *                           subnormal, huge), every midpoint between adjacent codes of each
 *                           format and the floats next to it, values beyond each format's range
 *   enc_<fmt>.u8 / .u16     our encoding of enc_in (e4m3: the non-saturating lq_f32_to_e4m3)
 *   mx_<mode>_x.f32         2^20 values per scale mode: random blocks with decision points
 *   mx_<mode>_packed.u8     our packed codes (low nibble first), mx_<mode>_scales.u8 our scales
 *   mx_<mode>_y.f32         x * 2^-e for the block's scale e (exact, via ldexp)
 *   mx_<mode>_deq.f32       our lq_mxfp4_dequantize of packed + scales
 *   mxr_packed.u8, mxr_scales.u8, mxr_deq.f32
 *                           random codes with every scale byte 0..254, and our decoding */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libquant/dtype.h"
#include "libquant/mxfp4.h"

static uint64_t rng = 0x5851F42D4C957F2Dull;

static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const char *outdir;

static int write_file(const char *name, const void *p, size_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    int ok = fwrite(p, 1, bytes, f) == bytes;
    ok &= fclose(f) == 0;
    if (!ok)
        perror(path);
    return ok ? 0 : -1;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Appends the midpoints between adjacent finite codes of a decoder (ascending codes 0..n-1 have
 * ascending values), the floats either side of them, and the codes themselves. */
static size_t add_midpoints(float *in, size_t k, float (*dec)(uint32_t), uint32_t n)
{
    for (uint32_t c = 0; c + 1 < n; c++) {
        float a = dec(c), b = dec(c + 1);
        float mid = (float)(((double)a + (double)b) / 2);
        float p[4] = {a, mid, nextafterf(mid, -INFINITY), nextafterf(mid, INFINITY)};
        for (int j = 0; j < 4; j++) {
            in[k++] = p[j];
            in[k++] = -p[j];
        }
    }
    return k;
}

static float dec_bf16(uint32_t c) { return lq_bf16_to_f32((uint16_t)c); }
static float dec_f16(uint32_t c) { return lq_f16_to_f32((uint16_t)c); }
static float dec_e4m3(uint32_t c) { return lq_e4m3_to_f32((uint8_t)c); }
static float dec_e5m2(uint32_t c) { return lq_e5m2_to_f32((uint8_t)c); }

static float random_element(int base)
{
    uint64_t r = next_u64();
    int kind = (int)(r % 6);
    float v;
    if (kind == 0) {
        static const float t[9] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f, 7.0f};
        v = t[(r >> 8) % 9];
        if ((r >> 16) % 3 == 0)
            v = nextafterf(v, 0.0f);
        else if ((r >> 16) % 3 == 1)
            v = nextafterf(v, 100.0f);
        v = ldexpf(v, base);
    } else if (kind == 1) {
        v = 0.0f;
    } else {
        v = ldexpf((float)((double)(next_u64() >> 11) * 0x1p-53 * 8.0), base);
    }
    return (r >> 40) & 1 ? -v : v;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: interop_gen OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    int rc = 1;
    static float dec[65536];
    size_t nin = ((size_t)1 << 20) + 8 * (65535 + 65535 + 255 + 255);
    float *in = malloc(nin * sizeof(float));
    uint8_t *e8 = malloc(nin);
    uint16_t *e16 = malloc(nin * 2);
    size_t nmx = (size_t)1 << 20;
    float *x = malloc(nmx * sizeof(float)), *y = malloc(nmx * sizeof(float)),
          *deq = malloc(nmx * sizeof(float));
    uint8_t *packed = malloc(nmx / 2), *scales = malloc(nmx / 32);
    if (!in || !e8 || !e16 || !x || !y || !deq || !packed || !scales) {
        fprintf(stderr, "interop_gen: out of memory\n");
        goto out;
    }

    /* Decoders. */
    for (int c = 0; c < 16; c++)
        dec[c] = lq_fp4_values[c];
    if (write_file("dec_e2m1.f32", dec, 16 * 4))
        goto out;
    for (int c = 0; c < 256; c++)
        dec[c] = lq_e8m0_to_f32((uint8_t)c);
    if (write_file("dec_e8m0.f32", dec, 256 * 4))
        goto out;
    for (int c = 0; c < 256; c++)
        dec[c] = lq_e4m3_to_f32((uint8_t)c);
    if (write_file("dec_e4m3.f32", dec, 256 * 4))
        goto out;
    for (int c = 0; c < 256; c++)
        dec[c] = lq_e5m2_to_f32((uint8_t)c);
    if (write_file("dec_e5m2.f32", dec, 256 * 4))
        goto out;
    for (int c = 0; c < 65536; c++)
        dec[c] = lq_bf16_to_f32((uint16_t)c);
    if (write_file("dec_bf16.f32", dec, 65536 * 4))
        goto out;
    for (int c = 0; c < 65536; c++)
        dec[c] = lq_f16_to_f32((uint16_t)c);
    if (write_file("dec_f16.f32", dec, 65536 * 4))
        goto out;

    /* Encoder inputs. */
    size_t k = 0;
    for (size_t i = 0; i < ((size_t)1 << 20); i++) {
        uint32_t u = (uint32_t)next_u64();
        switch (i % 4) {
        case 0: break; /* any pattern */
        case 1: u = (u & 0x80FFFFFFu) | ((uint32_t)(100 + next_u64() % 48) << 23); break; /* FP8 range */
        case 2: u = (u & 0x80FFFFFFu) | ((uint32_t)(90 + next_u64() % 60) << 23); break; /* F16 range */
        default: u = (u & 0x807FE000u) | 0x00001000u | ((uint32_t)(next_u64() % 256) << 23); break; /* bf16 ties */
        }
        in[k++] = from_bits(u);
    }
    k = add_midpoints(in, k, dec_bf16, 0x7F80); /* codes 0 .. 0x7F7F, plus the overflow tie */
    k = add_midpoints(in, k, dec_f16, 0x7C00);
    k = add_midpoints(in, k, dec_e4m3, 0x7F);
    k = add_midpoints(in, k, dec_e5m2, 0x7C);
    /* Halfway past the largest finite value of each format, and beyond. */
    const float edges[] = {464.0f,   480.0f,   500.0f,   61440.0f, 65520.0f,
                           from_bits(0x7F7F8000u), 3.4e38f, INFINITY, NAN};
    for (size_t j = 0; j < sizeof edges / sizeof edges[0] && k + 2 <= nin; j++) {
        in[k++] = edges[j];
        in[k++] = -edges[j];
    }
    nin = k;
    if (write_file("enc_in.f32", in, nin * 4))
        goto out;
    for (size_t i = 0; i < nin; i++)
        e8[i] = lq_f32_to_e4m3(in[i]);
    if (write_file("enc_e4m3.u8", e8, nin))
        goto out;
    for (size_t i = 0; i < nin; i++)
        e8[i] = lq_f32_to_e5m2(in[i]);
    if (write_file("enc_e5m2.u8", e8, nin))
        goto out;
    for (size_t i = 0; i < nin; i++)
        e16[i] = lq_f32_to_bf16(in[i]);
    if (write_file("enc_bf16.u16", e16, nin * 2))
        goto out;
    for (size_t i = 0; i < nin; i++)
        e16[i] = lq_f32_to_f16(in[i]);
    if (write_file("enc_f16.u16", e16, nin * 2))
        goto out;

    /* MXFP4 blocks per scale mode. */
    for (int m = 0; m <= LQ_MX_SCALE_MSE; m++) {
        for (size_t b = 0; b < nmx / 32; b++) {
            uint64_t r = next_u64() % 10;
            int base = r == 0 ? -150 + (int)(next_u64() % 30)
                       : r == 1 ? 100 + (int)(next_u64() % 26)
                                : -20 + (int)(next_u64() % 40);
            for (int i = 0; i < 32; i++)
                x[b * 32 + (size_t)i] = random_element(base);
        }
        lq_mx_scale_mode mode = (lq_mx_scale_mode)m;
        if (lq_mxfp4_quantize(x, nmx, mode, packed, scales, NULL, NULL) != LQ_OK ||
            lq_mxfp4_dequantize(packed, scales, nmx, deq, NULL) != LQ_OK) {
            fprintf(stderr, "interop_gen: codec failed\n");
            goto out;
        }
        for (size_t i = 0; i < nmx; i++)
            y[i] = ldexpf(x[i], 127 - scales[i / 32]);
        char name[64];
        const char *mn = lq_mx_scale_mode_name(mode);
        snprintf(name, sizeof name, "mx_%s_x.f32", mn);
        if (write_file(name, x, nmx * 4))
            goto out;
        snprintf(name, sizeof name, "mx_%s_y.f32", mn);
        if (write_file(name, y, nmx * 4))
            goto out;
        snprintf(name, sizeof name, "mx_%s_packed.u8", mn);
        if (write_file(name, packed, nmx / 2))
            goto out;
        snprintf(name, sizeof name, "mx_%s_scales.u8", mn);
        if (write_file(name, scales, nmx / 32))
            goto out;
        snprintf(name, sizeof name, "mx_%s_deq.f32", mn);
        if (write_file(name, deq, nmx * 4))
            goto out;
    }
    /* Random valid blocks over every scale byte (254 included: values past 2^128 become inf). */
    for (size_t b = 0; b < nmx / 32; b++)
        scales[b] = (uint8_t)(b % 255);
    for (size_t j = 0; j < nmx / 2; j++)
        packed[j] = (uint8_t)next_u64();
    if (lq_mxfp4_dequantize(packed, scales, nmx, deq, NULL) != LQ_OK)
        goto out;
    if (write_file("mxr_packed.u8", packed, nmx / 2) || write_file("mxr_scales.u8", scales, nmx / 32) ||
        write_file("mxr_deq.f32", deq, nmx * 4))
        goto out;
    rc = 0;
out:
    free(in);
    free(e8);
    free(e16);
    free(x);
    free(y);
    free(deq);
    free(packed);
    free(scales);
    return rc;
}
