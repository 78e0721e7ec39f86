/* The conversion plan: every output tensor, its rule, its shard, decided from headers alone.
 *
 * Shapes and dtypes are known before any weight is read, so the plan fixes the whole output
 * up front: which source tensors become MXFP4, the names, dtypes, shapes and byte sizes of all
 * output tensors, their shards, and therefore every output header. That single fact gives
 * streaming writes, --dry-run, resume and --part/merge (DESIGN.md, Data flow).
 *
 * Rules: a routed-expert projection (`*.mlp.experts.E.{gate,up,down}_proj.weight`, 2-D,
 * K % 32 == 0, BF16/F16/F32 or F8_E4M3/F8_E5M2 with a `weight_scale_inv` partner) becomes
 * MXFP4; `--include` / `--exclude` patterns, applied in order (later wins), add or remove
 * tensors; a source that is already MXFP4 (U8 `weight` [N, K/2] with U8 `weight_scale`
 * [N, K/32]) passes through unchanged; the `weight_scale_inv` of a quantized FP8 weight is
 * dropped; everything else is kept byte for byte.
 *
 * Output order: tensors follow the source (shard in index order, then offset), a quantized
 * weight and its scale are kept in the same output shard, and shards fill greedily up to
 * max_shard_bytes of tensor data. Following the source lets a conversion read each source file
 * roughly front to back, so the reader and the source hashing share the page cache. */
#ifndef LIBQUANT_PLAN_H
#define LIBQUANT_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "checkpoint.h"
#include "dtype.h"
#include "fp8block.h"
#include "mxfp4.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lq_layout {
    LQ_LAYOUT_MIMO = 0,        /* `weight` U8 [N, K/2] + `weight_scale` U8 [N, K/32], store_dtype mxfp4 */
    LQ_LAYOUT_COMPRESSED = 1   /* compressed-tensors mxfp4-pack-quantized: `weight_packed` + `weight_scale` */
} lq_layout;

typedef enum lq_rule {
    LQ_RULE_KEEP = 0,          /* copied byte for byte */
    LQ_RULE_MXFP4 = 1,         /* quantized; the plan tensor is the packed weight */
    LQ_RULE_MXFP4_SCALE = 2,   /* the E8M0 scales of the preceding MXFP4 weight */
    LQ_RULE_PASSTHROUGH = 3    /* already MXFP4 in the source: copied after checking scales */
} lq_rule;

typedef struct lq_pattern {
    const char *text;          /* as given: glob (* ? [..]) over the full name, or "re:" + POSIX ERE (full match) */
    int include;               /* 1 = --include, 0 = --exclude */
    uint64_t matched;          /* filled by lq_plan_build */
} lq_pattern;

typedef struct lq_plan_opts {
    lq_layout layout;
    lq_mx_scale_mode scale_mode;
    uint64_t max_shard_bytes;  /* 0 = 5,000,000,000 */
    lq_pattern *patterns;      /* in command-line order; matched counts are written back */
    size_t npatterns;
    uint32_t qkv_shards_hint;  /* checkpoint-TP shards for FP8 grids (0 = num_key_value_heads) */
} lq_plan_opts;

/* One output tensor. The plan holds one per output tensor for the whole run, so it is kept small
 * (120 bytes): the name and shape point at the source's where they are the same (they live as
 * long as the source checkpoint, which must outlive the plan), otherwise into the plan's own
 * storage; the FP8 grid is held only by the weights that have one. */
typedef struct lq_plan_tensor {
    const char *name;          /* output name */
    const uint64_t *shape;     /* rank values */
    const lq_fp8_grid *grid;   /* FP8 sources of MXFP4 weights; NULL otherwise */
    uint64_t nbytes;
    size_t quant;              /* MXFP4 / MXFP4_SCALE: index of the quantized weight (0..nquant) */
    lq_ckpt_tensor src;        /* source tensor (for MXFP4_SCALE: the source weight) */
    lq_ckpt_tensor src_scale;  /* FP8 sources of MXFP4 weights: weight_scale_inv; PASSTHROUGH: weight_scale */
    lq_dtype dtype;
    uint32_t rank;
    lq_rule rule;
    uint32_t shard;
    int has_src_scale;
    int mclass;                /* module class, see lq_plan_class_name */
} lq_plan_tensor;

typedef struct lq_plan {
    lq_plan_tensor *t;         /* output order */
    size_t n;
    size_t nquant;             /* MXFP4 weights */
    uint32_t nshards;
    char **shard_names;        /* nshards names */
    uint64_t *shard_bytes;     /* tensor bytes per shard */
    uint64_t total_bytes;      /* sum of tensor bytes (index total_size) */
    uint64_t src_bytes;        /* sum of source tensor bytes read */
    size_t ndropped;
    char **dropped;            /* source tensors not written (scale_inv of quantized FP8 weights) */
    lq_layout layout;
    lq_mx_scale_mode scale_mode;
    uint64_t max_shard_bytes;
    uint64_t max_quant_numel;  /* largest quantized tensor (element count) */
    uint64_t max_quant_cols;
    cJSON *config;             /* output config.json (owned) */
    uint64_t *qshapes;         /* 4 per MXFP4 weight: its shape and its scales' shape */
    lq_fp8_grid *grids;        /* one per MXFP4 weight with an FP8 source */
    size_t ngrids;
    char **name_blocks;        /* output names that are not the source's */
    size_t nname_blocks, name_used, name_cap;
} lq_plan;

#define LQ_PLAN_NCLASSES 8
/* "routed_experts", "attention", "dense_mlp", "router", "embeddings", "lm_head", "norms", "other" */
const char *lq_plan_class_name(int c);
/* Module class of a tensor name. */
int lq_plan_classify(const char *name);
/* The layer a tensor belongs to, for per-layer reports: the name up to the layer number
 * ("model.layers.12.mlp.x" -> "model.layers.12"), or "other". */
void lq_plan_layer_key(const char *name, char *out, size_t cap);

/* Builds the plan for the source checkpoint. Errors (all LQ_ERR_CORRUPT or LQ_ERR_INVALID_ARGUMENT,
 * naming file and tensor): PLAN_PATTERN (bad pattern syntax), PLAN_PATTERN_UNUSED (a pattern
 * matching no tensor), PLAN_NOT_QUANTIZABLE (an included tensor that is not 2-D floating point
 * with K % 32 == 0), PLAN_FP8_NO_SCALE (FP8 weight without a 2-D weight_scale_inv), FP8_SCALE_SHAPE,
 * PLAN_MXFP4_SCALE (already-MXFP4 weight without a matching weight_scale), PLAN_NAME_CLASH (an
 * output name that also exists in the source), PLAN_LAYOUT (compressed-tensors with FP8 tensors
 * that stay FP8), PLAN_NOTHING (no tensor would be quantized). */
lq_status lq_plan_build(const lq_ckpt *src, const lq_plan_opts *opts, lq_plan **out, lq_error *err);
void lq_plan_free(lq_plan *p);

/* Glob / regex matching as used by the patterns; returns 1 on a match, 0 otherwise, -1 on a bad pattern. */
int lq_pattern_match(const char *pattern, const char *name);

#ifdef __cplusplus
}
#endif
#endif
