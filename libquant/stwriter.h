/* Streaming safetensors writer and sharded-checkpoint index.
 *
 * The header is computed before any data: callers declare every tensor (name, dtype, shape),
 * then lq_stw_begin lays them out exactly as the reference writer (Python safetensors 0.8)
 * does: ordered by the reference Dtype enum descending (the lq_dtype order: U64, I64, F64, C64,
 * F32, U32, I32, BF16, F16, U16, I16, F8_E5M2FNUZ, F8_E4M3FNUZ, F8_E8M0, F8_E4M3, F8_E5M2, I8,
 * U8, F6_E3M2, F6_E2M3, F4, BOOL), then by name byte-wise; back to back with no gaps; header JSON with "__metadata__"
 * first, always holding {"format":"pt"} (other keys follow, sorted), space-padded to a multiple
 * of 8. For the same tensors and metadata {"format":"pt"} the file is byte-identical to
 * safetensors.serialize. Data are then streamed in layout order, in chunks of any size, while
 * SHA-256 runs over the whole file; lq_stw_finish checks that every byte arrived and publishes
 * atomically (outfile.h). So a tensor never has to be held in memory whole, and a killed
 * writer leaves no final file.
 *
 * Rule ids and statuses: caller errors are LQ_ERR_INVALID_ARGUMENT with STW_NAME (empty, over
 * 1024 bytes, invalid UTF-8 or "__metadata__"), STW_DUP_NAME, STW_DTYPE, STW_RANK,
 * ST_NUMEL_OVERFLOW, ST_SUBBYTE, STW_METADATA, STW_STATE (call out of sequence), STW_ORDER,
 * STW_SIZE, STW_INCOMPLETE, STW_FAILED (the writer was already discarded by an earlier error);
 * a header above 100,000,000 bytes is LQ_ERR_LIMIT/ST_HEADER_LIMIT; I/O errors carry the
 * OUT_* rules of outfile.h. Any error after lq_stw_begin discards the temporary at once: the
 * writer accepts nothing more, and lq_stw_finish (or lq_stw_abort) only frees it. */
#ifndef LIBQUANT_STWRITER_H
#define LIBQUANT_STWRITER_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

/* Shards of at least this many bytes are written through staged direct writes
 * (lq_outfile_set_direct: 24 MiB of buffers and a writer thread while the shard is open). */
#define LQ_STW_DIRECT_MIN ((uint64_t)64 << 20)
#define LQ_STW_DIRECT_BUFFER_BYTES ((uint64_t)24 << 20)
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
/* Room for ntensors tensors holding ndims shape values in all, allocated once instead of grown
 * by doubling as lq_stw_add goes (a writer of many tensors then holds no spare capacity). More
 * may still be declared. Only before lq_stw_begin; fewer than 2^32 tensors (STW_STATE). */
lq_status lq_stw_reserve(lq_stw *w, size_t ntensors, size_t ndims, lq_error *err);
/* From now on lq_stw_add keeps the name it is given instead of a copy: the caller keeps every
 * declared name valid and unchanged until lq_stw_finish or lq_stw_abort (lq_stw_tensor and
 * lq_stw_next then return the caller's pointers). Only before the first lq_stw_add (STW_STATE). */
lq_status lq_stw_borrow_names(lq_stw *w, lq_error *err);
/* Adds a __metadata__ string entry ("format" is always "pt": setting it to "pt" is a no-op,
 * to anything else STW_METADATA). Setting a key again replaces its value. */
lq_status lq_stw_set_metadata(lq_stw *w, const char *key, const char *value, lq_error *err);
/* Lays the tensors out exactly as lq_stw_begin would and returns the padded header length N
 * (the file is 8 + N + *total bytes) and the data size, touching no file: sizes for a plan
 * that writes nothing. The writer may still be begun (or aborted) afterwards. Rules as
 * lq_stw_begin (ST_NUMEL_OVERFLOW, ST_HEADER_LIMIT, STW_STATE). */
lq_status lq_stw_measure(lq_stw *w, uint64_t *header_len, uint64_t *total, lq_error *err);
/* Fixes the layout and writes the header to the temporary file. */
lq_status lq_stw_begin(lq_stw *w, lq_error *err);

/* Layout, valid after lq_stw_begin: count, i-th tensor in file order, and the header bytes.
 * lq_stw_tensor fills one description held by the writer: the pointer is valid until the next
 * lq_stw_tensor call on the same writer (the writer keeps each tensor in 40 bytes, not as an
 * lq_tensor_info). */
size_t lq_stw_count(const lq_stw *w);
const lq_tensor_info *lq_stw_tensor(const lq_stw *w, size_t i);
uint64_t lq_stw_header_len(const lq_stw *w);   /* N, the JSON length after padding */
uint64_t lq_stw_total_size(const lq_stw *w);   /* sum of tensor bytes (index total_size share) */

/* CRC-32C (crc32c.h) of the bytes written so far for the i-th tensor in file order: once every
 * byte is written and before lq_stw_finish, the checksum of the whole tensor. 0 before begin. */
uint32_t lq_stw_crc32c(const lq_stw *w, size_t i);

/* Name of the tensor whose bytes are expected next (NULL when all are written). */
const char *lq_stw_next(const lq_stw *w);
/* Appends bytes of the current tensor; a chunk may not run past its end (STW_ORDER).
 * Zero-byte tensors need no call: lq_stw_next never names them. */
lq_status lq_stw_write(lq_stw *w, const void *data, size_t len, lq_error *err);
/* Writes a whole tensor: name must be lq_stw_next() and len its exact size (STW_ORDER,
 * STW_SIZE). A zero-byte tensor is accepted by name at any time (len 0, data may be NULL), so
 * callers can walk lq_stw_tensor(0..count-1) and write each. */
lq_status lq_stw_write_tensor(lq_stw *w, const char *name, const void *data, size_t len,
                              lq_error *err);
/* Checks completeness (STW_INCOMPLETE), then commits. Frees w in every case. sha256 and
 * file_size may be NULL. */
lq_status lq_stw_finish(lq_stw *w, uint8_t sha256[32], uint64_t *file_size, lq_error *err);
/* Discards the temporary and frees. Accepts NULL. */
void lq_stw_abort(lq_stw *w);

/* ---- sharding and index ---- */

/* Shard assignment as huggingface_hub does it (split_state_dict_into_shards_factory): tensors
 * in the given order fill shards greedily up to max_shard_bytes of tensor data; a tensor larger
 * than the limit gets a shard of its own, numbered when it is met (so before the shard still
 * being filled). shard_of[i] receives the 0-based shard of tensor i; returns the number of
 * shards (0 for n == 0). */
uint32_t lq_shard_plan(const uint64_t *nbytes, size_t n, uint64_t max_shard_bytes, uint32_t *shard_of);

/* "model-00001-of-00003.safetensors" style name for 0-based shard i of n (n == 1 gives
 * "model.safetensors" only when single_name is set). prefix is "model" for backbones. */
void lq_shard_name(const char *prefix, uint32_t i, uint32_t n, int single_name, char *out, size_t cap);

/* Writes {"metadata":{"total_size":T},"weight_map":{name: file, ...}} atomically, formatted as
 * transformers writes it: json.dumps(index, indent=2, sort_keys=True) + "\n" (2-space indent,
 * ": " and "," separators, keys sorted at every level, non-ASCII escaped as \uXXXX), with
 * total_size written exactly. extra_metadata (may be NULL) is a cJSON object whose members are
 * added to "metadata" (e.g. tp_size); integral numbers are written as integers. Rules
 * (LQ_ERR_INVALID_ARGUMENT): IDX_NAME (bad tensor name), IDX_DUP_NAME, IDX_FILE (a shard name
 * that is empty, ".", ".." or holds '/' or '\\'), IDX_METADATA (not an object, duplicate or
 * non-UTF-8 keys, non-finite numbers, or a "total_size" member); I/O errors as outfile.h. */
lq_status lq_index_write(const char *path, const char *const *names, const char *const *files,
                         size_t n, uint64_t total_size, const void *extra_metadata,
                         uint8_t sha256[32], lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
