/* Streaming safetensors writer and sharded-checkpoint index.
 *
 * The header is computed before any data: callers declare every tensor (name, dtype, shape),
 * then lq_stw_begin lays them out exactly as the reference writer does (descending dtype size,
 * then name; back to back with no gaps; header JSON with "__metadata__" first, always holding
 * {"format":"pt"}, space-padded to a multiple of 8) and writes the header through an lq_outfile.
 * Data are then streamed in layout order, in chunks of any size, while SHA-256 runs over the
 * whole file; lq_stw_finish checks that every byte arrived and publishes atomically. So a
 * tensor never has to be held in memory whole, and a killed writer leaves no final file. */
#ifndef LIBQUANT_STWRITER_H
#define LIBQUANT_STWRITER_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "safetensors.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lq_stw lq_stw;

/* Starts a writer for final_path (nothing touches the disk until lq_stw_begin). */
lq_status lq_stw_create(const char *final_path, lq_stw **out, lq_error *err);
/* Declares a tensor. Rules: STW_DUP_NAME, STW_NAME, STW_DTYPE, STW_RANK, ST_NUMEL_OVERFLOW,
 * ST_SUBBYTE (sub-byte dtypes need whole bytes). Only before lq_stw_begin. */
lq_status lq_stw_add(lq_stw *w, const char *name, lq_dtype dt, uint32_t rank,
                     const uint64_t *shape, lq_error *err);
/* Adds a __metadata__ string entry ("format" is always "pt" and cannot be overridden). */
lq_status lq_stw_set_metadata(lq_stw *w, const char *key, const char *value, lq_error *err);
/* Fixes the layout and writes the header to the temporary file. */
lq_status lq_stw_begin(lq_stw *w, lq_error *err);

/* Layout, valid after lq_stw_begin: count, i-th tensor in file order, and the header bytes. */
size_t lq_stw_count(const lq_stw *w);
const lq_tensor_info *lq_stw_tensor(const lq_stw *w, size_t i);
uint64_t lq_stw_header_len(const lq_stw *w);   /* N, the JSON length after padding */
uint64_t lq_stw_total_size(const lq_stw *w);   /* sum of tensor bytes (index total_size share) */

/* Name of the tensor whose bytes are expected next (NULL when all are written). */
const char *lq_stw_next(const lq_stw *w);
/* Appends bytes of the current tensor; a chunk may not run past its end (STW_ORDER). */
lq_status lq_stw_write(lq_stw *w, const void *data, size_t len, lq_error *err);
/* Writes a whole tensor: name must be lq_stw_next() and len its exact size (STW_ORDER,
 * STW_SIZE). */
lq_status lq_stw_write_tensor(lq_stw *w, const char *name, const void *data, size_t len,
                              lq_error *err);
/* Checks completeness (STW_INCOMPLETE), then commits. Frees w in every case. sha256 and
 * file_size may be NULL. */
lq_status lq_stw_finish(lq_stw *w, uint8_t sha256[32], uint64_t *file_size, lq_error *err);
/* Discards the temporary and frees. Accepts NULL. */
void lq_stw_abort(lq_stw *w);

/* ---- sharding and index ---- */

/* Shard assignment as huggingface_hub does it: tensors in the given order fill shards greedily
 * up to max_shard_bytes of tensor data; a tensor larger than the limit gets a shard of its own.
 * shard_of[i] receives the 0-based shard of tensor i; returns the number of shards. */
uint32_t lq_shard_plan(const uint64_t *nbytes, size_t n, uint64_t max_shard_bytes, uint32_t *shard_of);

/* "model-00001-of-00003.safetensors" style name for 0-based shard i of n (n == 1 gives
 * "model.safetensors" only when single_name is set). prefix is "model" for backbones. */
void lq_shard_name(const char *prefix, uint32_t i, uint32_t n, int single_name, char *out, size_t cap);

/* Writes {"metadata":{"total_size":T},"weight_map":{name: file, ...}} atomically, names sorted,
 * integers written exactly. extra_metadata (may be NULL) is a cJSON object whose members are
 * added to "metadata" (e.g. tp_size). */
lq_status lq_index_write(const char *path, const char *const *names, const char *const *files,
                         size_t n, uint64_t total_size, const void *extra_metadata,
                         uint8_t sha256[32], lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
