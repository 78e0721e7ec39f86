/* MXFP4 codec (OCP Microscaling v1.0, element FP4 E2M1, scale E8M0, block of 32).
 *
 * Layout (gpt-oss / OCP / MiMo-FP4 order): a row of K values becomes K/2 bytes, byte j holding
 * element 2j in the low nibble and element 2j+1 in the high nibble, plus K/32 scale bytes.
 * Decoded value = E2M1(code) * 2^(scale - 127).
 *
 * Encoding rules (docs/formats.md): elements round to nearest, ties to the even code, and
 * saturate at +-6; the sign of zero is kept (-0.0 -> 0x8); an all-zero block gets scale 0x00
 * and codes 0 (or 0x8 for -0.0); the scale is never 0xFF; a non-finite input is an error that
 * reports its index. Output bytes never depend on thread count. */
#ifndef LIBQUANT_MXFP4_H
#define LIBQUANT_MXFP4_H

#include <stddef.h>
#include <stdint.h>

#include "fp_formats.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LQ_MX_BLOCK LQ_MXFP4_BLOCK /* 32, fp_formats.h */

typedef enum lq_mx_scale_mode {
    LQ_MX_SCALE_FLOOR = 0, /* OCP sample: e = floor(log2 amax) - 2 */
    LQ_MX_SCALE_RCEIL = 1, /* e = ceil(log2(amax / 6)): never clips (NVIDIA/OpenAI default) */
    LQ_MX_SCALE_EVEN = 2,  /* amax rounded to 1 mantissa bit, then floor rule (torchao EVEN) */
    LQ_MX_SCALE_MSE = 3    /* per block, the better of floor and floor+1 by squared error (default) */
} lq_mx_scale_mode;

/* "floor", "rceil", "even", "mse". */
const char *lq_mx_scale_mode_name(lq_mx_scale_mode m);
/* Parses the names above; returns LQ_ERR_INVALID_ARGUMENT for anything else. */
lq_status lq_mx_scale_mode_parse(const char *s, lq_mx_scale_mode *out);

/* The 16 E2M1 values, index = code (filled from fp_formats.h LQ_E2M1_VALUES). */
extern const float lq_fp4_values[16];

/* Encodes one already-scaled value: RNE with ties to even code, saturating at +-6, sign kept.
 * NaN input gives an unspecified code (callers reject non-finite values first). */
uint8_t lq_fp4_encode(float v);

/* Counters filled by the quantizer (all optional). */
typedef struct lq_mx_counts {
    uint64_t clipped;   /* elements with |x / X| > 6 (saturated) */
    uint64_t zeroed;    /* non-zero inputs that became +-0 */
    uint64_t plus_one;  /* blocks whose exponent is floor + 1 */
    uint64_t zero_blocks;
} lq_mx_counts;

/* Quantizes n values (n % 32 == 0) into n/2 packed bytes and n/32 scale bytes.
 * On a non-finite input returns LQ_ERR_NUMERIC and stores its index in *bad_index (if given);
 * outputs and counts are then unspecified. counts may be NULL; when given it is added to, not
 * reset. n % 32 != 0, an unknown mode or a NULL buffer with n > 0 -> LQ_ERR_INVALID_ARGUMENT.
 * Scale exponents (E = floor(log2 amax), significand s = amax / 2^E, clamped to [-127, 127]):
 * floor E - 2; rceil E - 2 + (s > 1.5), i.e. exactly ceil(log2(amax / 6)); even E - 2 +
 * (s >= 1.75); mse the one of floor and floor + 1 with the smaller exact squared error, floor
 * on a tie. */
lq_status lq_mxfp4_quantize(const float *x, size_t n, lq_mx_scale_mode mode, uint8_t *packed,
                            uint8_t *scales, lq_mx_counts *counts, size_t *bad_index);

/* Same, split over `threads` POSIX threads (<= 1 means the calling thread only; fewer are used
 * when there are under 1024 blocks per thread). Bytes and counts are identical to the
 * single-threaded call. On several bad inputs the smallest index is reported. */
lq_status lq_mxfp4_quantize_mt(const float *x, size_t n, lq_mx_scale_mode mode, uint8_t *packed,
                               uint8_t *scales, lq_mx_counts *counts, size_t *bad_index, int threads);

/* Decodes n values (n % 32 == 0). A scale byte of 0xFF is NaN by the spec and is rejected
 * with LQ_ERR_CORRUPT (index of the block in *bad_block if given). Each value is the exact
 * product E2M1(code) * 2^(scale - 127); products of 2^128 and up (scale 253 with |code| >= 4,
 * scale 254 with |code| >= 2) are beyond f32 and decode to +-inf. */
lq_status lq_mxfp4_dequantize(const uint8_t *packed, const uint8_t *scales, size_t n, float *out,
                              size_t *bad_block);

/* Re-encodes data that is already MXFP4 (pass-through). Copies packed and scales unchanged after
 * checking that no scale is 0xFF. Exists so converters never round-trip MXFP4 through f32. */
lq_status lq_mxfp4_passthrough(const uint8_t *packed_in, const uint8_t *scales_in, size_t n,
                               uint8_t *packed_out, uint8_t *scales_out, size_t *bad_block);

#ifdef __cplusplus
}
#endif
#endif
