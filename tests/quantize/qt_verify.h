/* Full verification of one mimo-quantize output directory against its source checkpoint, used
 * by every test that checks a finished conversion (tests/quantize).
 *
 * What is proven (each item names where the expectation comes from):
 *   - OUT opens through libquant's strict checkpoint reader, which cross-checks the index and
 *     the shards both ways and metadata.total_size (libquant/checkpoint.h);
 *   - every source tensor is accounted for: a quantized weight becomes U8 [N, K/2] (`weight`, or
 *     `weight_packed` for compressed-tensors) plus U8 `weight_scale` [N, K/32] (plan.h, layouts of
 *     reference/mxfp4_formats.md 2.6 and mimo_arch.md 2.3); the `weight_scale_inv` of a quantized
 *     FP8 weight is gone; every other tensor has its source dtype, shape and bytes exactly;
 *   - every MXFP4 block is the one an independent re-implementation of the codec's rules gives
 *     (mxfp4.h: scale = floor(log2 amax) - 2 or one more, whichever has the smaller squared
 *     error, floor on a tie; elements round to nearest E2M1 value, ties to the even code,
 *     saturating at 6, sign kept; low nibble = even element, reference/mxfp4_formats.md 1.2,
 *     2.6); sources are decoded here from BF16 bits or the FP8 E4M3 grid by hand (w = e4m3 *
 *     scale_inv of its 128x128 block, reference/mxfp4_formats.md 4.1);
 *   - the values lq_mxfp4_dequantize decodes give a whole-model SQNR within 0.3 dB of the 19.05 dB
 *     of reference/mxfp4_formats.md 1.8 (mse mode, Gaussian data: the fixtures' experts are
 *     N(0, 0.02), docs/cli.md), and the report's summary and per-tensor figures equal the ones
 *     recomputed here (SQNR to 1e-4 dB: the report prints 6 significant digits);
 *   - config.json: the source config with only quantization_config changed, as plan.c documents
 *     (FP8 fields kept plus store_dtype "mxfp4" and mxfp4_block_size 32; for a BF16 source the FP8
 *     form with every remaining 2-D floating-point linear in ignored_layers; or the
 *     compressed-tensors form of reference/mxfp4_formats.md 2.6);
 *   - the manifest lists every file of OUT but itself and its signature, each with its real size
 *     and SHA-256, lists every tensor with its dtype, shape and shard, and gives the source
 *     shards' real sizes and digests;
 *   - dflash/ and the copied extra files are byte-identical to the source's; pickle files are not
 *     copied. */
#ifndef MIMO_TESTS_QUANTIZE_QT_VERIFY_H
#define MIMO_TESTS_QUANTIZE_QT_VERIFY_H

#include <stddef.h>
#include <stdint.h>

typedef struct qt_expect {
    const char *src;
    const char *out;
    int compressed;                       /* --layout compressed-tensors */
    /* Source weights expected in MXFP4; NULL: exactly the routed experts (plan.h rule). */
    int (*quantized)(const char *name);
    uint32_t min_shards;                  /* at least this many output shards */
    int has_signature;                    /* mimo-manifest.json.sig expected */
} qt_expect;

typedef struct qt_result {
    int failures, checks;
    size_t nquant;                        /* MXFP4 weights */
    size_t nkept;                         /* tensors copied unchanged */
    size_t ndropped;                      /* scale_inv of quantized FP8 weights */
    size_t nout;                          /* tensors in OUT */
    uint32_t nshards;
    uint64_t elements;                    /* quantized elements */
    double sqnr_db, cosine, clip_frac;    /* recomputed here, whole model */
    double report_sqnr_db;
    uint64_t blocks, bad_blocks;          /* blocks checked against the reference rules */
} qt_result;

/* The routed-expert rule of plan.h: `*.mlp.experts.<digits>.{gate,up,down}_proj.weight`. */
int qt_is_routed_expert(const char *name);

/* Verifies e->out against e->src; fills *r. Returns the number of failed checks (their
 * file:line and details are printed on stderr). */
int qt_verify(const qt_expect *e, qt_result *r);

#endif
