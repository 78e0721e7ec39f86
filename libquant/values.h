/* Value checks of stored weights: the runtime runs them over every tensor at open, and
 * mimo-verify reuses them, so a NaN, an Inf or an absurd magnitude in a well-formed file is
 * refused with the file, the tensor, the rule and the first bad position named (DESIGN.md,
 * "Reliability rules").
 *
 * Rules (lq_error.rule); every failure returns LQ_ERR_NUMERIC:
 *   VAL_NONFINITE  a float element is NaN or +-inf
 *   VAL_RANGE      a decoded |value| exceeds max_abs (checked when max_abs > 0); for FP8 also a
 *                  code * scale product that overflows f32
 *   VAL_FP8_NAN    an FP8 weight byte is NaN (E4M3 0x7F / 0xFF) or inf / NaN (E5M2)
 *   VAL_SCALE_INV  an FP8 weight_scale_inv element is not finite or not > 0
 *   VAL_E8M0       an MXFP4 scale byte is 0xFF (NaN), or a block's largest code times its scale
 *                  is not finite in f32
 * Invalid arguments (NULL buffers with elements to check, cols % 32, a wrong dtype, an
 * inconsistent grid or row range) return LQ_ERR_INVALID_ARGUMENT with rule "VAL_ARG".
 *
 * The first bad element in row-major order decides the error (for FP8 the scale elements are
 * checked before the weights). Messages start with "element <flat index>" followed by the row
 * and column where the tensor has them, so a failure can be located without the statistics.
 *
 * Speed: without statistics each function is one pass of integer bit tests over fixed-size
 * chunks (compiled to SIMD compares), allocates nothing, and locates the first bad element only
 * inside the chunk that failed. MXFP4 codes have no invalid pattern, so its check reads a block's
 * codes only when its scale byte is so large that the block could overflow or exceed max_abs.
 *
 * Threads: the functions are single-threaded and keep no state; callers parallelise over
 * tensors, or over row ranges with lq_values_fp8's r0 / r1 and lq_values_mxfp4_rows. */
#ifndef LIBQUANT_VALUES_H
#define LIBQUANT_VALUES_H

#include <stdint.h>

#include "dtype.h"
#include "fp8block.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The magnitude bound the tools apply by default: the largest finite IEEE half. A weight beyond it
 * cannot be served by a half-precision engine and no trained MiMo tensor comes near it, so a finite
 * 1e30 is refused as a value, not taken as a weight (the runtime's --max-abs changes it). */
#define LQ_VALUES_MAX_ABS 65504.0

/* Statistics over the decoded values of the elements checked, filled (not added to) by every
 * call that gets one; NULL selects the fast path. With statistics the whole tensor (or row range)
 * is scanned even after a failure, so the counts are complete; the status and error still name
 * the first bad element. absmax and sumsq cover the finite values only. */
typedef struct lq_value_stats {   /* optional (NULL = fast path without statistics) */
    uint64_t count, zeros, nonfinite;
    double absmax, sumsq;         /* over the decoded values */
    uint64_t first_bad;           /* flat index of the element the error names; UINT64_MAX if none */
} lq_value_stats;

/* a += b, for the statistics of parts of one tensor (row ranges): counts and sumsq add, absmax is
 * the larger, first_bad the smaller. */
void lq_value_stats_merge(lq_value_stats *a, const lq_value_stats *b);

/* Float tensor (F32, F16, BF16) of n elements: every element finite (rule VAL_NONFINITE, the
   message gives the first bad flat index and its value) and |x| <= max_abs when max_abs > 0
   (rule VAL_RANGE, first index and value). data needs no alignment. */
lq_status lq_values_float(lq_dtype dt, const void *data, uint64_t n, double max_abs, const char *file,
                          const char *tensor, lq_value_stats *stats, lq_error *err);

/* Block-FP8 weight (F8_E4M3 or F8_E5M2 [rows, cols]) with its weight_scale_inv grid (dtype F32, BF16
   or F8_E8M0, grid as lq_fp8_grid_detect fills it), over weight rows [r0, r1): w and scale point at
   the whole weight and the whole grid (as for lq_fp8_block_dequant), so positions in messages are
   those of the whole tensor; r0 = 0, r1 = g->rows checks all of it.
   First every scale element of the scale rows those weight rows use must be finite and > 0
   -> VAL_SCALE_INV (scale row, col, value; reported against scale_file, or file when scale_file
   is NULL, and the tensor name tensor + "_scale_inv"). Then no NaN code (E4M3 0x7F/0xFF; E5M2
   inf/NaN) -> VAL_FP8_NAN (flat index, row, col); and no element whose decoded value
   fp8 * scale (one f32 product, as lq_fp8_block_dequant forms it) has |value| > max_abs (when
   max_abs > 0) or overflows f32 -> VAL_RANGE (flat index, row, col, value): that is, no block
   whose largest |code value| * scale exceeds the bound. */
lq_status lq_values_fp8(const lq_fp8_grid *g, lq_dtype wdt, const uint8_t *w, lq_dtype sdt, const void *scale,
                        uint64_t r0, uint64_t r1, double max_abs, const char *file, const char *scale_file,
                        const char *tensor, lq_value_stats *stats, lq_error *err);

/* MXFP4 weight: codes U8 [rows, cols/2], E8M0 scales U8 [rows, cols/32], cols % 32 == 0.
   A scale 0xFF -> VAL_E8M0 (always); a block whose largest |E2M1 value| * 2^(s-127) is not
   finite in f32 (e.g. 0xFE or 0xFD with a code of +-6; 0xFD with +-4 too: 4 * 2^126 = 2^128) ->
   VAL_E8M0, the message giving row, block, scale byte and the largest code; with max_abs > 0,
   a block decoding above max_abs -> VAL_RANGE. Decoded values are exact (E2M1 * 2^(s-127)), so
   both tests are exact. The element a message names is the block's first element whose code
   breaks the rule (the block's first element for 0xFF). */
lq_status lq_values_mxfp4(const uint8_t *codes, const uint8_t *scales, uint64_t rows, uint64_t cols, double max_abs,
                          const char *file, const char *tensor, lq_value_stats *stats, lq_error *err);

/* lq_values_mxfp4 over rows [r0, r1) of a weight of `rows` rows; codes and scales point at the
   whole tensor, and messages give positions in the whole tensor. (Passing codes + r0 * cols / 2,
   scales + r0 * cols / 32 and rows = r1 - r0 to lq_values_mxfp4 checks the same bytes but
   reports positions relative to row r0.) */
lq_status lq_values_mxfp4_rows(const uint8_t *codes, const uint8_t *scales, uint64_t rows, uint64_t cols,
                               uint64_t r0, uint64_t r1, double max_abs, const char *file, const char *tensor,
                               lq_value_stats *stats, lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
