/* Hugging Face checkpoint directory: config.json + safetensors shards.
 *
 * With `model.safetensors.index.json` present, the index is the only source of shard names
 * (never guessed from file names) and is cross-checked both ways against the shards
 * (reference/ecosystem_reliability.md 3.6 item 6; reference/mxfp4_formats.md 3.4 item 8):
 *   CKPT_CONFIG            config.json missing (LQ_ERR_NOT_FOUND), unreadable (LQ_ERR_IO),
 *                          or not a JSON object; strict-JSON violations keep their JSON_* rule
 *   CKPT_INDEX_SCHEMA      index not {"metadata": {...}?, "weight_map": {name: "file"}} (no
 *                          other top-level keys; metadata.total_size, when present, an integer)
 *   CKPT_SHARD_NAME        a shard name that is empty, absolute, has '/' or '\', is "." or "..",
 *                          or does not end in ".safetensors"
 *   CKPT_SHARD_ESCAPE      a shard that resolves (symlinks followed) outside the directory,
 *                          unless opts->allow_outside
 *   CKPT_SHARD_MISSING     a shard named by the index does not exist (LQ_ERR_NOT_FOUND)
 *   CKPT_TENSOR_MISSING    the index maps a tensor to a shard that does not hold it (also
 *                          when another shard holds it)
 *   CKPT_TENSOR_UNINDEXED  a shard holds a tensor the index does not list (or lists elsewhere)
 *   CKPT_TENSOR_DUPLICATE  the same tensor name in two shards
 *   CKPT_TOTAL_SIZE        metadata.total_size differs from the sum of tensor bytes
 *   CKPT_NO_WEIGHTS        neither an index nor the single-file name exists (LQ_ERR_NOT_FOUND)
 * plus every safetensors rule (safetensors.h) for each shard. Without an index, the single file
 * `model.safetensors` (or opts->single_file) is used, under the same name and escape rules.
 * Shard names are checked before any path is built from them. The cross-checks run in this
 * order: duplicates across shards, then index and shards in tensor-name order, then total_size.
 * Errors name the shard as dir/name (or the index file) and the tensor. */
#ifndef LIBQUANT_CHECKPOINT_H
#define LIBQUANT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "safetensors.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lq_ckpt_opts {
    const char *index_name;   /* default "model.safetensors.index.json" */
    const char *single_file;  /* default "model.safetensors" (used when no index exists) */
    int require_config;       /* 1 (default when opts is NULL): config.json must exist */
    lq_st_limits limits;      /* per shard; zeros mean defaults */
    int allow_outside;        /* 1: shards may resolve outside dir (the Hugging Face cache links
                                 snapshots/<rev>/<file> to ../../blobs/<hash>); default 0 */
} lq_ckpt_opts;

typedef struct lq_ckpt lq_ckpt;

typedef struct lq_ckpt_tensor {
    const lq_tensor_info *info;
    const lq_st_file *file;
    uint32_t shard;           /* index into lq_ckpt_shard() */
} lq_ckpt_tensor;

/* Opens dir, parses config.json and the index, opens and validates every shard, runs the
 * cross-checks. opts may be NULL. On failure *out is NULL and nothing stays open. */
lq_status lq_ckpt_open(const char *dir, const lq_ckpt_opts *opts, lq_ckpt **out, lq_error *err);
void lq_ckpt_close(lq_ckpt *ck); /* accepts NULL */

const char *lq_ckpt_dir(const lq_ckpt *ck);
/* Parsed config.json, or NULL when absent and not required. Owned by ck. */
const cJSON *lq_ckpt_config(const lq_ckpt *ck);
/* Whether the checkpoint has an index file. */
int lq_ckpt_has_index(const lq_ckpt *ck);

size_t lq_ckpt_shard_count(const lq_ckpt *ck);
const lq_st_file *lq_ckpt_shard(const lq_ckpt *ck, size_t i);
/* Shards are in name order. Shard file name as written in the index (or the single file's
 * name). */
const char *lq_ckpt_shard_name(const lq_ckpt *ck, size_t i);

/* All tensors of all shards, in name order. */
size_t lq_ckpt_count(const lq_ckpt *ck);
lq_ckpt_tensor lq_ckpt_at(const lq_ckpt *ck, size_t i);
/* Exact-name lookup. Returns 0 and fills *out when found, -1 otherwise. */
int lq_ckpt_find(const lq_ckpt *ck, const char *name, lq_ckpt_tensor *out);
/* Exact-name lookup by position: the index i of lq_ckpt_at(ck, i) called name, or SIZE_MAX. */
size_t lq_ckpt_index(const lq_ckpt *ck, const char *name);

/* Mapped tensor data: fault the pages of [p, p + n) in with one call before reading them
 * (MADV_POPULATE_READ, Linux 5.14+; older kernels ignore it), and drop them from this process's
 * mapping once used, so resident memory stays bounded however large the model is (the pages stay
 * in the page cache; a later touch faults them back). Only whole pages inside the range are
 * released. Both are hints: they never fail. */
void lq_pages_populate(const void *p, uint64_t n);
void lq_pages_release(const void *p, uint64_t n);

#ifdef __cplusplus
}
#endif
#endif
