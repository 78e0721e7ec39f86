/* Block-FP8 tests (libquant/fp8block.h).
 *
 * Shapes come from reference/mimo_arch.md: 6.1 (tiny-MiMo fused qkv, checkpoint TP S = 2:
 * global [2176, 256] with scale [18, 2], SWA [2816, 256] with scale [22, 2]) and 4.4 (V2.5 full
 * layer 13568 rows -> 108 scale rows with S = 4, Pro 27136 -> 216 with S = 8). The mapping
 * "shard s, local row r -> scale row s * ceil(R_s / 128) + r / 128" is 4.4's rule and is
 * re-evaluated in this file. Small dequantization cases are computed by hand. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libquant/dtype.h"
#include "libquant/fp8block.h"
#include "tests/harness.h"

static uint64_t rng = 0xD1B54A32D192ED03ull;

static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t want_scale_row(uint64_t rows, uint64_t shards, uint64_t br, uint64_t r)
{
    uint64_t rs = rows / shards, per = (rs + br - 1) / br;
    return (r / rs) * per + (r % rs) / br;
}

static void test_detect(void)
{
    lq_fp8_grid g;
    lq_error err;

    /* tiny-MiMo global layer: 2 shards of 1088 rows, 9 scale rows each (the ninth half full). */
    CHECK_EQ_U64(lq_fp8_grid_detect(2176, 256, 18, 2, 128, 128, 0, "qkv", &g, &err), LQ_OK);
    CHECK_EQ_U64(g.shards, 2);
    CHECK_EQ_U64(lq_fp8_grid_detect(2176, 256, 18, 2, 128, 128, 2, "qkv", &g, &err), LQ_OK);
    CHECK_EQ_U64(g.shards, 2);
    /* Shard 1 starts a new scale row: row 1087 (last of shard 0) -> 8, row 1088 -> 9 where a
     * uniform grid would say 8, row 2175 -> 17. */
    CHECK_EQ_U64(lq_fp8_grid_scale_row(&g, 1087), 8);
    CHECK_EQ_U64(lq_fp8_grid_scale_row(&g, 1088), 9);
    CHECK_EQ_U64(lq_fp8_grid_scale_row(&g, 1088 + 127), 9);
    CHECK_EQ_U64(lq_fp8_grid_scale_row(&g, 1088 + 128), 10);
    CHECK_EQ_U64(lq_fp8_grid_scale_row(&g, 2175), 17);
    for (uint64_t r = 0; r < 2176; r++)
        CHECK_EQ_U64(lq_fp8_grid_scale_row(&g, r), want_scale_row(2176, 2, 128, r));

    /* tiny-MiMo SWA layer: 1408-row shards are whole blocks, so S = 1 and S = 2 both fit and map
     * every row alike; the search takes the smallest, the hint picks 2. */
    lq_fp8_grid g1, g2;
    CHECK_EQ_U64(lq_fp8_grid_detect(2816, 256, 22, 2, 128, 128, 0, "qkv", &g1, &err), LQ_OK);
    CHECK_EQ_U64(g1.shards, 1);
    CHECK_EQ_U64(lq_fp8_grid_detect(2816, 256, 22, 2, 128, 128, 2, "qkv", &g2, &err), LQ_OK);
    CHECK_EQ_U64(g2.shards, 2);
    for (uint64_t r = 0; r < 2816; r++)
        CHECK_EQ_U64(lq_fp8_grid_scale_row(&g1, r), lq_fp8_grid_scale_row(&g2, r));

    /* V2.5 full layer and Pro (4.4). */
    CHECK_EQ_U64(lq_fp8_grid_detect(13568, 4096, 108, 32, 128, 128, 0, "qkv", &g, &err), LQ_OK);
    CHECK_EQ_U64(g.shards, 4);
    CHECK_EQ_U64(lq_fp8_grid_scale_row(&g, 3392), 27); /* first row of shard 1 */
    CHECK_EQ_U64(lq_fp8_grid_scale_row(&g, 3391), 26);
    CHECK_EQ_U64(lq_fp8_grid_detect(13568, 4096, 108, 32, 128, 128, 3, "qkv", &g, &err), LQ_OK);
    CHECK_EQ_U64(g.shards, 4); /* a hint that does not fit is ignored */
    CHECK_EQ_U64(lq_fp8_grid_detect(27136, 6144, 216, 48, 128, 128, 8, "qkv", &g, &err), LQ_OK);
    CHECK_EQ_U64(g.shards, 8);
    CHECK_EQ_U64(lq_fp8_grid_detect(27136, 6144, 216, 48, 128, 128, 0, "qkv", &g, &err), LQ_OK);
    CHECK_EQ_U64(g.shards, 8);
    CHECK_EQ_U64(lq_fp8_grid_scale_row(&g, 27135), 215);
    /* The uniform grid of the same weight: ceil(13568 / 128) = 106 rows -> S = 1. */
    CHECK_EQ_U64(lq_fp8_grid_detect(13568, 4096, 106, 32, 128, 128, 0, "w", &g, &err), LQ_OK);
    CHECK_EQ_U64(g.shards, 1);
    /* Experts (4.1): [2048, 6144] with [16, 48]; down [6144, 2048] with [48, 16]. */
    CHECK_EQ_U64(lq_fp8_grid_detect(2048, 6144, 16, 48, 128, 128, 0, "gate", &g, &err), LQ_OK);
    CHECK_EQ_U64(lq_fp8_grid_detect(6144, 2048, 48, 16, 128, 128, 0, "down", &g, &err), LQ_OK);

    /* Ambiguous: 384 rows with 4 scale rows fit S = 2 (192-row shards) and S = 4 (96-row
     * shards), which map row 100 to 0 and 1 respectively; the hint decides. */
    CHECK_EQ_U64(lq_fp8_grid_detect(384, 128, 4, 1, 128, 128, 0, "k", &g, &err), LQ_OK);
    CHECK_EQ_U64(g.shards, 2);
    CHECK_EQ_U64(lq_fp8_grid_scale_row(&g, 100), 0);
    CHECK_EQ_U64(lq_fp8_grid_detect(384, 128, 4, 1, 128, 128, 4, "k", &g, &err), LQ_OK);
    CHECK_EQ_U64(g.shards, 4);
    CHECK_EQ_U64(lq_fp8_grid_scale_row(&g, 100), 1);

    /* Errors. */
    lq_error_clear(&err);
    CHECK_EQ_U64(lq_fp8_grid_detect(13568, 4096, 107, 32, 128, 128, 0, "bad.qkv", &g, &err),
                 LQ_ERR_CORRUPT);
    CHECK_STR(err.rule, "FP8_SCALE_SHAPE");
    CHECK_STR(err.tensor, "bad.qkv");
    CHECK_EQ_U64(lq_fp8_grid_detect(13568, 4096, 108, 33, 128, 128, 0, "bad", &g, &err),
                 LQ_ERR_CORRUPT);
    CHECK_STR(err.rule, "FP8_SCALE_SHAPE");
    CHECK_EQ_U64(lq_fp8_grid_detect(13568, 4096, 108, 32, 0, 128, 0, "bad", &g, &err),
                 LQ_ERR_INVALID_ARGUMENT);
    CHECK_EQ_U64(lq_fp8_grid_detect(0, 4096, 0, 32, 128, 128, 0, "empty", &g, &err), LQ_OK);
    CHECK_EQ_U64(g.shards, 1);
    CHECK_EQ_U64(lq_fp8_grid_detect(0, 4096, 1, 32, 128, 128, 0, "empty", &g, &err),
                 LQ_ERR_CORRUPT);
    /* Hostile shapes finish at once: a huge grid that no small S explains. */
    CHECK_EQ_U64(lq_fp8_grid_detect(UINT64_C(1) << 62, 128, (UINT64_C(1) << 55) + 5, 1, 128, 128, 0,
                                    "huge", &g, &err),
                 LQ_ERR_CORRUPT);
    CHECK_EQ_U64(lq_fp8_grid_detect(UINT64_MAX, 128, UINT64_MAX, 1, 1, 128, 0, "huge", &g, &err),
                 LQ_OK);
    CHECK_EQ_U64(g.shards, 1);
}

/* 4 x 5 weight, 2 x 2 blocks, 3 column blocks (the last one 1 wide), uniform grid.
 * E4M3 bytes: 0x38 = 1, 0x40 = 2, 0xB8 = -1, 0x30 = 0.5, 0x00 = 0. */
static const uint8_t w45[20] = {
    0x38, 0x40, 0xB8, 0x30, 0x38, /* row 0:  1  2 -1 .5  1 */
    0x40, 0x00, 0x38, 0x38, 0xB8, /* row 1:  2  0  1  1 -1 */
    0x30, 0x38, 0x40, 0xB8, 0x38, /* row 2: .5  1  2 -1  1 */
    0xB8, 0x40, 0x00, 0x30, 0x40, /* row 3: -1  2  0 .5  2 */
};
/* Scale grid [[1, 2, 4], [0.5, 0.25, 8]]. Hand-computed products: */
static const float want45[20] = {
    1, 2, -2, 1, 4,      /* row 0: 1*1 2*1 -1*2 .5*2 1*4 */
    2, 0, 2, 2, -4,      /* row 1 */
    0.25f, 0.5f, 0.5f, -0.25f, 8, /* row 2: .5*.5 1*.5 2*.25 -1*.25 1*8 */
    -0.5f, 1, 0, 0.125f, 16,      /* row 3 */
};

static void test_dequant_small(void)
{
    lq_fp8_grid g;
    lq_error err;
    CHECK_EQ_U64(lq_fp8_grid_detect(4, 5, 2, 3, 2, 2, 0, "w", &g, &err), LQ_OK);
    float out[20];

    const float s32[6] = {1, 2, 4, 0.5f, 0.25f, 8};
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, w45, LQ_DTYPE_F32, s32, 0, 4, out, "w", &err),
                 LQ_OK);
    CHECK(memcmp(out, want45, sizeof out) == 0);

    /* BF16 scales: 1 = 0x3F80, 2 = 0x4000, 4 = 0x4080, 0.5 = 0x3F00, 0.25 = 0x3E80, 8 = 0x4100,
     * stored little-endian. */
    const uint8_t sbf[12] = {0x80, 0x3F, 0x00, 0x40, 0x80, 0x40, 0x00, 0x3F, 0x80, 0x3E, 0x00, 0x41};
    memset(out, 0, sizeof out);
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, w45, LQ_DTYPE_BF16, sbf, 0, 4, out, "w", &err),
                 LQ_OK);
    CHECK(memcmp(out, want45, sizeof out) == 0);

    /* E8M0 scales: 2^(b - 127): 127, 128, 129, 126, 125, 130. */
    const uint8_t se8[6] = {127, 128, 129, 126, 125, 130};
    memset(out, 0, sizeof out);
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, w45, LQ_DTYPE_F8_E8M0, se8, 0, 4, out, "w", &err),
                 LQ_OK);
    CHECK(memcmp(out, want45, sizeof out) == 0);

    /* A row range: rows 1..2 land at out[0..9]. */
    memset(out, 0, sizeof out);
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, w45, LQ_DTYPE_F32, s32, 1, 3, out, "w", &err),
                 LQ_OK);
    CHECK(memcmp(out, want45 + 5, 10 * sizeof(float)) == 0);
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, w45, LQ_DTYPE_F32, s32, 2, 2, out, "w", &err),
                 LQ_OK);

    /* E5M2 weights: 0x3C = 1, 0x40 = 2, 0xBC = -1. */
    const uint8_t w5[20] = {0x3C, 0x40, 0xBC, 0x3C, 0x3C, 0, 0, 0, 0, 0,
                            0,    0,    0,    0,    0,    0, 0, 0, 0, 0};
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E5M2, w5, LQ_DTYPE_F32, s32, 0, 1, out, "w", &err),
                 LQ_OK);
    CHECK(out[0] == 1 && out[1] == 2 && out[2] == -2 && out[3] == 2 && out[4] == 4);

    /* Errors with rules. */
    uint8_t wbad[20];
    memcpy(wbad, w45, 20);
    wbad[13] = 0x7F; /* E4M3 NaN at row 2, column 3 */
    lq_error_clear(&err);
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, wbad, LQ_DTYPE_F32, s32, 0, 4, out, "w.bad", &err),
                 LQ_ERR_NUMERIC);
    CHECK_STR(err.rule, "FP8_NONFINITE");
    CHECK_STR(err.tensor, "w.bad");
    CHECK(strstr(err.msg, "element 13") != NULL);
    wbad[13] = 0x7C; /* E5M2 inf */
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E5M2, wbad, LQ_DTYPE_F32, s32, 0, 4, out, "w", &err),
                 LQ_ERR_NUMERIC);
    CHECK_STR(err.rule, "FP8_NONFINITE");
    const float sneg[6] = {1, 2, 4, 0.5f, -0.25f, 8}, snan[6] = {1, NAN, 4, 0.5f, 0.25f, 8};
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, w45, LQ_DTYPE_F32, sneg, 0, 4, out, "w", &err),
                 LQ_ERR_NUMERIC);
    CHECK_STR(err.rule, "FP8_BAD_SCALE");
    CHECK(strstr(err.msg, "scale element 4") != NULL);
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, w45, LQ_DTYPE_F32, snan, 0, 4, out, "w", &err),
                 LQ_ERR_NUMERIC);
    CHECK_STR(err.rule, "FP8_BAD_SCALE");
    const uint8_t se8bad[6] = {127, 128, 129, 126, 255, 130};
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, w45, LQ_DTYPE_F8_E8M0, se8bad, 0, 4, out, "w", &err),
                 LQ_ERR_NUMERIC);
    CHECK_STR(err.rule, "FP8_BAD_SCALE");
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_BF16, w45, LQ_DTYPE_F32, s32, 0, 4, out, "w", &err),
                 LQ_ERR_UNSUPPORTED);
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, w45, LQ_DTYPE_F16, s32, 0, 4, out, "w", &err),
                 LQ_ERR_UNSUPPORTED);
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, w45, LQ_DTYPE_F32, s32, 3, 5, out, "w", &err),
                 LQ_ERR_INVALID_ARGUMENT);
    lq_fp8_grid broken = g;
    broken.srows = 3;
    CHECK_EQ_U64(lq_fp8_block_dequant(&broken, LQ_DTYPE_F8_E4M3, w45, LQ_DTYPE_F32, s32, 0, 4, out, "w", &err),
                 LQ_ERR_INVALID_ARGUMENT);
}

/* Per-shard grid by hand: 6 rows in S = 2 shards of 3, 2-row blocks -> 2 scale rows per shard
 * (rows 0-1 -> 0, row 2 -> 1, rows 3-4 -> 2, row 5 -> 3); one column. A uniform grid would give
 * row 3 scale row 1 instead of 2. */
static void test_dequant_shards(void)
{
    lq_fp8_grid g;
    lq_error err;
    CHECK_EQ_U64(lq_fp8_grid_detect(6, 1, 4, 1, 2, 2, 2, "s", &g, &err), LQ_OK);
    CHECK_EQ_U64(g.shards, 2);
    const uint8_t w[6] = {0x38, 0x38, 0x38, 0x38, 0x38, 0x38};
    const float s[4] = {1, 2, 4, 8};
    float out[6];
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, w, LQ_DTYPE_F32, s, 0, 6, out, "s", &err), LQ_OK);
    const float want[6] = {1, 1, 2, 4, 4, 8};
    CHECK(memcmp(out, want, sizeof want) == 0);
}

/* tiny-MiMo global qkv at full size: every row, ragged last block of each shard included,
 * against fp8 * scale[s * 9 + local / 128][c / 128] evaluated here. Then quantize and check
 * the block rule (scale = amax / 448, the largest element of each block becomes +-448). */
static void test_tiny_mimo_roundtrip(void)
{
    const uint64_t rows = 2176, cols = 256, srows = 18, scols = 2;
    uint8_t *w = malloc(rows * cols);
    float *scale = malloc(srows * scols * sizeof(float)), *out = malloc(rows * cols * sizeof(float));
    float *wf = malloc(rows * cols * sizeof(float));
    uint8_t *q = malloc(rows * cols);
    float *qs = malloc(srows * scols * sizeof(float));
    CHECK(w && scale && out && wf && q && qs);
    if (!w || !scale || !out || !wf || !q || !qs)
        goto out;
    for (uint64_t i = 0; i < rows * cols; i++) {
        uint8_t b = (uint8_t)next_u64();
        w[i] = (b & 0x7F) == 0x7F ? 0x00 : b;
    }
    for (uint64_t i = 0; i < srows * scols; i++)
        scale[i] = (float)(1e-3 * (double)(1 + next_u64() % 1000));
    lq_fp8_grid g;
    lq_error err;
    CHECK_EQ_U64(lq_fp8_grid_detect(rows, cols, srows, scols, 128, 128, 0, "qkv", &g, &err), LQ_OK);
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, w, LQ_DTYPE_F32, scale, 0, rows, out, "qkv", &err),
                 LQ_OK);
    size_t bad = 0;
    for (uint64_t r = 0; r < rows; r++) {
        uint64_t sr = (r / 1088) * 9 + (r % 1088) / 128;
        for (uint64_t c = 0; c < cols; c++)
            bad += out[r * cols + c] != lq_e4m3_to_f32(w[r * cols + c]) * scale[sr * scols + c / 128];
    }
    CHECK_EQ_U64(bad, 0);
    /* Rows of shard 1 alone. */
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, w, LQ_DTYPE_F32, scale, 1088, 1100, wf, "qkv", &err),
                 LQ_OK);
    CHECK(memcmp(wf, out + 1088 * cols, 12 * cols * sizeof(float)) == 0);

    /* Quantize a Gaussian-ish weight on the same grid. */
    for (uint64_t i = 0; i < rows * cols; i++)
        wf[i] = (float)(((double)(next_u64() >> 11) * 0x1p-53 - 0.5) * 0.04);
    wf[5] = 0.0f;
    CHECK_EQ_U64(lq_fp8_block_quant(&g, wf, q, qs), LQ_OK);
    for (uint64_t sh = 0; sh < 2; sh++) {
        for (uint64_t rb = 0; rb < 9; rb++) {
            uint64_t r0 = sh * 1088 + rb * 128, r1 = r0 + 128 < (sh + 1) * 1088 ? r0 + 128 : (sh + 1) * 1088;
            for (uint64_t cb = 0; cb < 2; cb++) {
                float amax = 0;
                for (uint64_t r = r0; r < r1; r++)
                    for (uint64_t c = cb * 128; c < cb * 128 + 128; c++)
                        amax = fmaxf(amax, fabsf(wf[r * cols + c]));
                CHECK(qs[(sh * 9 + rb) * 2 + cb] == amax / 448.0f);
                int has448 = 0;
                for (uint64_t r = r0; r < r1; r++)
                    for (uint64_t c = cb * 128; c < cb * 128 + 128; c++)
                        has448 |= (q[r * cols + c] & 0x7F) == 0x7E;
                CHECK(has448);
            }
        }
    }
    /* Dequantized values are within half an E4M3 step (relative 2^-4) of the input, plus the
     * subnormal step 2^-9 * scale near zero. */
    CHECK_EQ_U64(lq_fp8_block_dequant(&g, LQ_DTYPE_F8_E4M3, q, LQ_DTYPE_F32, qs, 0, rows, out, "qkv", &err),
                 LQ_OK);
    bad = 0;
    for (uint64_t r = 0; r < rows; r++) {
        for (uint64_t c = 0; c < cols; c++) {
            double sc = qs[lq_fp8_grid_scale_row(&g, r) * scols + c / 128];
            double d = fabs((double)out[r * cols + c] - (double)wf[r * cols + c]);
            bad += d > fabs((double)wf[r * cols + c]) * (0x1p-4 + 0x1p-20) + 0x1p-10 * sc;
        }
    }
    CHECK_EQ_U64(bad, 0);
    CHECK_EQ_U64(q[5], 0);

    /* All-zero block -> scale 1; a non-finite weight -> LQ_ERR_NUMERIC; bad grid rejected. */
    lq_fp8_grid gs;
    CHECK_EQ_U64(lq_fp8_grid_detect(2, 3, 1, 1, 128, 128, 0, "z", &gs, &err), LQ_OK);
    float z[6] = {0, 0, 0, 0, 0, 0}, zs = 0;
    uint8_t zq[6];
    CHECK_EQ_U64(lq_fp8_block_quant(&gs, z, zq, &zs), LQ_OK);
    CHECK(zs == 1.0f);
    z[4] = INFINITY;
    CHECK_EQ_U64(lq_fp8_block_quant(&gs, z, zq, &zs), LQ_ERR_NUMERIC);
    gs.scols = 2;
    CHECK_EQ_U64(lq_fp8_block_quant(&gs, z, zq, &zs), LQ_ERR_INVALID_ARGUMENT);
out:
    free(w);
    free(scale);
    free(out);
    free(wf);
    free(q);
    free(qs);
}

/* The SIMD decode and the table path give the same bytes: every code of both FP8 formats under
 * scales of each dtype (powers of two, odd mantissas, zero, tiny and huge values), in rows whose
 * width is not a multiple of the 32-code vector step, and the same error for a NaN code wherever
 * it sits (vector body or tail). Expected values: the table path itself, which
 * test_dequant_small checks by hand. */
static void test_dequant_simd_matches_table(void)
{
    const uint64_t rows = 256, cols = 200; /* two column blocks of 128 and 72 codes */
    lq_fp8_grid g;
    lq_error err;
    CHECK_EQ_U64(lq_fp8_grid_detect(rows, cols, 2, 2, 128, 128, 0, "w", &g, &err), LQ_OK);
    uint8_t *w = malloc(rows * cols);
    float *a = malloc(rows * cols * sizeof(float)), *b = malloc(rows * cols * sizeof(float));
    if (!w || !a || !b) {
        CHECK(0);
        goto out;
    }
    const float fscales[4] = {1.0f, 0x1.7p-9f, 0.0f, 0x1.fffffep+90f};
    const uint16_t bscales[4] = {0x3F80, 0x3B41, 0x0001, 0x7F00};
    const uint8_t escales[4] = {127, 1, 200, 0};
    for (int e5 = 0; e5 < 2; e5++) {
        lq_dtype wdt = e5 ? LQ_DTYPE_F8_E5M2 : LQ_DTYPE_F8_E4M3;
        unsigned nm = e5 ? 0x7C : 0x7F;
        /* every code, skipping the non-finite ones (they fail, checked below) */
        uint64_t k = 0;
        for (uint64_t i = 0; i < rows * cols; i++) {
            uint8_t v;
            do
                v = (uint8_t)(k++ * 37 + (next_u64() & 1));
            while ((v & nm) == nm);
            w[i] = v;
        }
        for (int sd = 0; sd < 3; sd++) {
            lq_dtype sdt = sd == 0 ? LQ_DTYPE_F32 : sd == 1 ? LQ_DTYPE_BF16 : LQ_DTYPE_F8_E8M0;
            const void *sc = sd == 0 ? (const void *)fscales : sd == 1 ? (const void *)bscales : (const void *)escales;
            memset(a, 0xAB, rows * cols * sizeof(float));
            memset(b, 0xCD, rows * cols * sizeof(float));
            CHECK_EQ_U64(lq_fp8_block_dequant(&g, wdt, w, sdt, sc, 0, rows, a, "w", &err), LQ_OK);
            CHECK_EQ_U64(lq_fp8_block_dequant_portable(&g, wdt, w, sdt, sc, 0, rows, b, "w", &err), LQ_OK);
            CHECK(memcmp(a, b, rows * cols * sizeof(float)) == 0);
        }
        /* a NaN code in the vector body, then in the tail: same status, rule and message */
        const uint64_t spots[2] = {3 * cols + 40, 7 * cols + 190};
        for (int k2 = 0; k2 < 2; k2++) {
            uint8_t keep = w[spots[k2]];
            w[spots[k2]] = (uint8_t)(nm | 0x80);
            lq_error e1, e2;
            lq_status s1 = lq_fp8_block_dequant(&g, wdt, w, LQ_DTYPE_F32, fscales, 0, rows, a, "w", &e1);
            lq_status s2 = lq_fp8_block_dequant_portable(&g, wdt, w, LQ_DTYPE_F32, fscales, 0, rows, b, "w", &e2);
            CHECK_EQ_U64(s1, LQ_ERR_NUMERIC);
            CHECK_EQ_U64(s2, LQ_ERR_NUMERIC);
            CHECK_STR(e1.rule, "FP8_NONFINITE");
            CHECK_STR(e1.msg, e2.msg);
            w[spots[k2]] = keep;
        }
    }
out:
    free(w);
    free(a);
    free(b);
}

int main(void)
{
    test_detect();
    test_dequant_small();
    test_dequant_shards();
    test_tiny_mimo_roundtrip();
    test_dequant_simd_matches_table();
    return th_finish("test_fp8block");
}
