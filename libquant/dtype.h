/* Element types: the safetensors dtype set, bit sizes, and exact scalar conversions.
 *
 * Conversions to f32 are exact for every type here (each is a subset of f32, except F64 and
 * the integers, which convert as C does). Conversions from f32 round to nearest, ties to even,
 * as PyTorch (c10) and ml_dtypes do; where a format has no infinity the `sat` variants clamp
 * to the largest finite value and the plain variants follow ml_dtypes (overflow -> NaN). */
#ifndef LIBQUANT_DTYPE_H
#define LIBQUANT_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every dtype string the safetensors reference accepts (safetensors/src/tensor.rs). */
typedef enum lq_dtype {
    LQ_DTYPE_INVALID = 0,
    LQ_DTYPE_BOOL,
    LQ_DTYPE_F4,          /* two E2M1 values per byte; shape counts elements */
    LQ_DTYPE_F6_E2M3,
    LQ_DTYPE_F6_E3M2,
    LQ_DTYPE_U8,
    LQ_DTYPE_I8,
    LQ_DTYPE_F8_E5M2,
    LQ_DTYPE_F8_E4M3,     /* OCP e4m3fn: no inf, NaN = S.1111.111, max 448 */
    LQ_DTYPE_F8_E8M0,     /* OCP E8M0 scale: 2^(b-127), 0xFF = NaN */
    LQ_DTYPE_F8_E4M3FNUZ,
    LQ_DTYPE_F8_E5M2FNUZ,
    LQ_DTYPE_I16,
    LQ_DTYPE_U16,
    LQ_DTYPE_F16,
    LQ_DTYPE_BF16,
    LQ_DTYPE_I32,
    LQ_DTYPE_U32,
    LQ_DTYPE_F32,
    LQ_DTYPE_C64,
    LQ_DTYPE_F64,
    LQ_DTYPE_I64,
    LQ_DTYPE_U64,
    LQ_DTYPE_COUNT
} lq_dtype;

/* Parses an exact, case-sensitive safetensors dtype name of length n. LQ_DTYPE_INVALID if unknown. */
lq_dtype lq_dtype_from_name(const char *name, size_t n);
/* The safetensors name ("BF16"), or "INVALID". */
const char *lq_dtype_name(lq_dtype dt);
/* Bits per element (4, 6, 8, 16, 32, 64), 0 for LQ_DTYPE_INVALID. */
unsigned lq_dtype_bits(lq_dtype dt);
/* Bytes needed for numel elements (ceil of numel*bits/8). Returns 0 and sets *overflow (if
 * given) when the product does not fit in 64 bits. */
uint64_t lq_dtype_nbytes(lq_dtype dt, uint64_t numel, int *overflow);

/* ---- scalar conversions ---- */
float lq_bf16_to_f32(uint16_t h);
uint16_t lq_f32_to_bf16(float f);        /* RNE; NaN -> 0x7FC0 (sign kept); overflow -> inf */
float lq_f16_to_f32(uint16_t h);         /* exact; NaN keeps its payload bits */
uint16_t lq_f32_to_f16(float f);         /* RNE incl. subnormals; >= 65520 -> inf; NaN -> 0x7E00 | sign */
float lq_e4m3_to_f32(uint8_t b);         /* F8_E4M3 (e4m3fn); 0x7F/0xFF -> 0x7FC00000 | sign */
uint8_t lq_f32_to_e4m3(float f);         /* RNE; 464 -> 448 (tie to even); |f| > 464, +-inf and NaN
                                          * -> NaN 0x7F | sign, as ml_dtypes 0.6 does */
uint8_t lq_f32_to_e4m3_sat(float f);     /* RNE, overflow and +-inf clamp to +-448; NaN -> 0x7F | sign */
float lq_e5m2_to_f32(uint8_t b);         /* F8_E5M2 (IEEE-like, has inf); NaN -> 0x7FC00000 | sign */
uint8_t lq_f32_to_e5m2(float f);         /* RNE; >= 61440 -> inf; NaN -> 0x7E | sign */
float lq_e8m0_to_f32(uint8_t b);         /* 2^(b-127); b = 0 -> 2^-127 (subnormal f32); 0xFF -> NaN */

/* Converts n elements of src (of type dt, little-endian, packed) to f32. Supported dt: F32,
 * F16, BF16, F8_E4M3, F8_E5M2, F8_E8M0, U8, I8 (integers convert to their value). For F8 and
 * F16 inputs NaN/inf are passed through as f32 NaN/inf. Returns LQ_ERR_UNSUPPORTED for other
 * types. */
lq_status lq_to_f32(lq_dtype dt, const void *src, size_t n, float *dst);

/* Converts n f32 values to dt (F32, F16, BF16, F8_E4M3 saturating, F8_E5M2). */
lq_status lq_from_f32(lq_dtype dt, const float *src, size_t n, void *dst);

#ifdef __cplusplus
}
#endif
#endif
