/* Checkpoint -> weight descriptors, for the target model and its DFlash drafter: every tensor the
 * forward reads is found, its shape and format checked, and every stored value checked
 * (libquant/values.h) once, at open; a backend then reads the descriptors and never re-checks.
 *
 * Descriptors point into the mapped files (nothing is decoded or copied here): a backend decodes on
 * the fly (CPU) or uploads them as stored (CUDA). The value pass reads every byte of the model once,
 * spread over the process thread pool tensor by tensor; the CUDA backend folds the same checks into
 * its upload instead (rt_weights_opts.check_values = 0 there). */
#ifndef MIMO_RUNTIME_WEIGHTS_H
#define MIMO_RUNTIME_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "libquant/libquant.h"

typedef enum rt_wfmt {
    RT_W_FLOAT = 0, /* F32, F16 or BF16 (dtype says which) */
    RT_W_FP8 = 1,   /* F8_E4M3 / F8_E5M2 with a 128x128 scale grid */
    RT_W_MXFP4 = 2  /* U8 codes [rows, cols/2] + U8 E8M0 scales [rows, cols/32] */
} rt_wfmt;

/* A 2-D weight as stored: y = x W^T with W [rows, cols]. */
typedef struct rt_linear {
    rt_wfmt fmt;
    lq_dtype dtype; /* element dtype of w (RT_W_FLOAT, RT_W_FP8) */
    uint64_t rows, cols;
    const uint8_t *w;
    const uint8_t *mx_scales; /* RT_W_MXFP4 */
    const void *fp8_scale;    /* RT_W_FP8 */
    lq_dtype fp8_scale_dtype;
    lq_fp8_grid grid;
    const char *name; /* for errors */
    const char *file;
    const char *scale_file;   /* RT_W_FP8, RT_W_MXFP4: the scale tensor's file */
} rt_linear;

/* A small float tensor as stored (norm weights, sinks, router, biases); n = 0: absent. */
typedef struct rt_vec {
    lq_dtype dtype;
    uint64_t n;
    const void *data;
    const char *name;
    const char *file;
} rt_vec;

typedef struct rt_wlayer {
    int swa, moe, fused;
    uint32_t nq, nkv, dqk, dv, rope_dim;
    double theta;
    rt_vec in_norm, post_norm, sinks;
    rt_linear qkv, q, k, v, o;     /* qkv when fused, else q, k, v */
    rt_linear gate, up, down;      /* dense MLP */
    rt_vec router, e_bias;         /* MoE: [E, H], [E] */
    rt_linear *eg, *eu, *ed;       /* MoE experts [E] */
} rt_wlayer;

typedef struct rt_weights {
    lq_ckpt *ck;
    lq_mimo_config cfg;
    int have_cfg;
    uint32_t qkv_shards;
    rt_linear embed, lm_head;
    rt_vec final_norm;
    rt_wlayer *L;
} rt_weights;

/* The default bound of rt_weights_opts.max_abs: libquant's (the largest finite IEEE half). */
#define RT_MAX_ABS_DEFAULT LQ_VALUES_MAX_ABS

typedef struct rt_weights_opts {
    int threads;       /* threads of the value pass (>= 1) */
    double max_abs;    /* 0: RT_MAX_ABS_DEFAULT; < 0: no magnitude bound */
    int check_values;  /* 1: the value pass (the CPU backend); 0: the backend checks while uploading */
} rt_weights_opts;

/* Opens the checkpoint directory (config.json in either dialect, any weight format), binds and
 * checks every weight. Errors name the file, tensor and rule: RT_NO_TENSOR, RT_FORMAT, RT_SHAPE,
 * CFG_* (config.json: every size the forward depends on is validated there), VAL_* (values). */
lq_status rt_weights_open(const char *dir, const rt_weights_opts *o, rt_weights **out, lq_error *err);
void rt_weights_close(rt_weights *w);

/* Binds weight `name` of a checkpoint in whatever format it is stored (any shape): a float tensor,
 * an FP8 tensor with `name`_scale_inv, or MXFP4 `name` (U8) with `name`_scale (U8). qkv_shards is
 * the checkpoint-TP shard hint for FP8 grids (0 = none). Errors: RT_NO_TENSOR, RT_FORMAT. Values
 * are not checked (rt_linear_check). */
lq_status rt_linear_bind(const lq_ckpt *ck, const char *name, uint32_t qkv_shards, rt_linear *out, lq_error *err);

/* The values of one descriptor (libquant/values.h's rules), for backends that check on upload. */
lq_status rt_linear_check(const rt_linear *l, double max_abs, lq_error *err);
lq_status rt_vec_check(const rt_vec *v, double max_abs, lq_error *err);

/* ---- the drafter ---- */

typedef struct rt_dwlayer {
    int swa, causal;
    rt_vec in_norm, post_norm, q_norm, k_norm, sinks;
    rt_vec qb, kb, vb, ob; /* biases (attention_bias) */
    rt_linear q, k, v, o, gate, up, down;
} rt_dwlayer;

typedef struct rt_dweights {
    lq_drafter *dr;
    const lq_drafter_config *c;
    uint32_t Ht; /* the target's hidden size */
    rt_linear fc;
    rt_vec hidden_norm, norm;
    rt_vec mask_emb; /* BF16 [hidden] */
    rt_dwlayer *L;
} rt_dweights;

/* Opens DIR (e.g. MODEL/dflash) for target t: lq_drafter_open's checks (DF_* rules, the values of
 * every drafter tensor and of the mask embedding included) and the runtime's (RT_*). */
lq_status rt_dweights_open(const char *dir, const rt_weights *t, const rt_weights_opts *o, rt_dweights **out,
                           lq_error *err);
void rt_dweights_close(rt_dweights *d);

#endif
