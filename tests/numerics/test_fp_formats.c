/* The shared format header (libquant/fp_formats.h), checked code by code against decoders
 * written here from the definitions in reference/mxfp4_formats.md: E2M1 (1.2's table), E8M0
 * (1.3: 2^(b-127), b = 0 the f32 subnormal 0x00400000, 0xFF NaN), E4M3 / E5M2 (4.1: e4m3fn bias
 * 7 with NaN S.1111.111 and no inf; E5M2 bias 15 with IEEE inf / NaN), and the nibble order of
 * 1.8's golden block. Values are compared bit for bit, so the sign of zero counts. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "libquant/dtype.h"
#include "libquant/fp_formats.h"
#include "libquant/mxfp4.h"
#include "tests/harness.h"

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Same value and sign, or both NaN. */
static int same(float a, double want)
{
    if (isnan(want))
        return isnan(a);
    return (double)a == want && !signbit(a) == !signbit(want);
}

static double ref_minifloat(unsigned b, int ebits, int mbits, int bias, int has_inf)
{
    int s = (int)(b >> (ebits + mbits)) & 1;
    int e = (int)(b >> mbits) & ((1 << ebits) - 1), m = (int)b & ((1 << mbits) - 1);
    double v;
    if (has_inf && e == (1 << ebits) - 1)
        v = m ? NAN : INFINITY;
    else if (!has_inf && e == (1 << ebits) - 1 && m == (1 << mbits) - 1)
        v = NAN;
    else if (e == 0)
        v = ldexp((double)m / (1 << mbits), 1 - bias);
    else
        v = ldexp(1.0 + (double)m / (1 << mbits), e - bias);
    return s ? -v : v;
}

int main(void)
{
    /* Block constants. */
    CHECK_EQ_U64(LQ_MXFP4_BLOCK, 32);
    CHECK_EQ_U64(LQ_MXFP4_BLOCK_BYTES, 16);
    CHECK_EQ_U64(LQ_MXFP4_SCALE_BYTES, 1);
    CHECK_EQ_U64(LQ_MX_BLOCK, LQ_MXFP4_BLOCK);

    /* E2M1: the table of 1.2, the same through the exported lq_fp4_values. */
    static const double e2m1[16] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                                    -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0};
    for (unsigned c = 0; c < 16; c++) {
        CHECK_MSG(same(lq_e2m1_decode(c), e2m1[c]), "e2m1 code %u", c);
        CHECK(fbits(lq_e2m1_decode(c)) == fbits(lq_fp4_values[c]));
        CHECK(fbits(lq_e2m1_decode(c + 16)) == fbits(lq_e2m1_decode(c))); /* low 4 bits only */
    }
    CHECK(lq_e2m1_decode(7) == LQ_E2M1_MAX);

    /* Nibble order, reference 1.8 (RNE + FLOOR): bytes FF FF 0F E8 DE CD BC 9A 10 32 44 55 66 66
     * 77 77 hold codes F F F F F 0 8 E E D D C C B A 9 0 1 2 3 4 4 5 5 6 6 6 6 7 7 7 7. */
    static const uint8_t bytes[16] = {0xFF, 0xFF, 0x0F, 0xE8, 0xDE, 0xCD, 0xBC, 0x9A,
                                      0x10, 0x32, 0x44, 0x55, 0x66, 0x66, 0x77, 0x77};
    static const uint8_t codes[32] = {0xF, 0xF, 0xF, 0xF, 0xF, 0x0, 0x8, 0xE, 0xE, 0xD, 0xD,
                                      0xC, 0xC, 0xB, 0xA, 0x9, 0x0, 0x1, 0x2, 0x3, 0x4, 0x4,
                                      0x5, 0x5, 0x6, 0x6, 0x6, 0x6, 0x7, 0x7, 0x7, 0x7};
    for (unsigned i = 0; i < 32; i++)
        CHECK_EQ_U64(lq_mxfp4_code(bytes, i), codes[i]);

    /* E8M0 and its reciprocal. */
    CHECK_EQ_U64(fbits(lq_e8m0_decode(0)), 0x00400000u);
    CHECK_EQ_U64(fbits(lq_e8m0_recip(254)), 0x00400000u);
    CHECK(isnan(lq_e8m0_decode(0xFF)));
    CHECK(isnan(lq_e8m0_recip(0xFF)));
    for (int b = 0; b < 255; b++) {
        CHECK_MSG((double)lq_e8m0_decode((uint8_t)b) == ldexp(1.0, b - 127), "e8m0 %d", b);
        CHECK_MSG((double)lq_e8m0_recip((uint8_t)b) == ldexp(1.0, 127 - b), "e8m0 recip %d", b);
        CHECK(lq_e8m0_decode((uint8_t)b) * lq_e8m0_recip((uint8_t)b) == 1.0f);
        CHECK(fbits(lq_e8m0_to_f32((uint8_t)b)) == fbits(lq_e8m0_decode((uint8_t)b)));
    }

    /* E4M3 and E5M2, all 256 codes. */
    for (unsigned b = 0; b < 256; b++) {
        double w4 = ref_minifloat(b, 4, 3, 7, 0), w5 = ref_minifloat(b, 5, 2, 15, 1);
        CHECK_MSG(same(lq_e4m3_decode((uint8_t)b), w4), "e4m3 0x%02X", b);
        CHECK_MSG(same(lq_e5m2_decode((uint8_t)b), w5), "e5m2 0x%02X", b);
        CHECK_EQ_U64(lq_e4m3_is_nan((uint8_t)b), isnan(w4) ? 1 : 0);
        CHECK_EQ_U64(lq_e5m2_is_nonfinite((uint8_t)b), isfinite(w5) ? 0 : 1);
        /* the public dtype.h decoders are these */
        CHECK(fbits(lq_e4m3_to_f32((uint8_t)b)) == fbits(lq_e4m3_decode((uint8_t)b)));
        CHECK(fbits(lq_e5m2_to_f32((uint8_t)b)) == fbits(lq_e5m2_decode((uint8_t)b)));
        if (isnan(w4)) /* NaN keeps the sign: 0x7FC00000 | sign */
            CHECK_EQ_U64(fbits(lq_e4m3_decode((uint8_t)b)), 0x7FC00000u | ((uint32_t)(b & 0x80) << 24));
        /* magnitude order: b & 0x7F is monotone in |value| for the finite codes */
        if ((b & 0x7F) > 0 && (b & 0x7F) < 0x7F) {
            CHECK(fabsf(lq_e4m3_decode((uint8_t)b)) > fabsf(lq_e4m3_decode((uint8_t)(b - 1))));
            CHECK(fabsf(lq_e5m2_decode((uint8_t)b)) > fabsf(lq_e5m2_decode((uint8_t)(b - 1))) ||
                  isnan(lq_e5m2_decode((uint8_t)b)));
        }
    }
    CHECK(lq_e4m3_decode(0x7E) == LQ_E4M3_MAX);
    CHECK(lq_e5m2_decode(0x7B) == LQ_E5M2_MAX);
    CHECK(isinf(lq_e5m2_decode(0x7C)) && lq_e5m2_decode(0xFC) < 0.0f);
    return th_finish("test_fp_formats");
}
