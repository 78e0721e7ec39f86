/* Strict safetensors reader (reference/mxfp4_formats.md 3.3-3.4,
 * reference/ecosystem_reliability.md 3.6 items 1-5 and 8).
 *
 * A file is mapped read-only; tensor data are pointers into the mapping. Every rule below is
 * checked before any tensor is exposed, and each violation has its own rule id in lq_error:
 *   ST_FILE_SMALL       file shorter than 8 bytes
 *   ST_HEADER_ZERO      header length 0
 *   ST_HEADER_LIMIT     header length above limits.max_header (default 100,000,000)
 *   ST_HEADER_BOUNDS    8 + header length beyond the file (or overflowing)
 *   ST_HEADER_BRACE     header does not start with '{'
 *   ST_HEADER_PAD       bytes after the JSON object other than JSON whitespace (space, tab,
 *                       LF, CR; writers pad with spaces); NUL padding is rejected here
 *   JSON_*              strict JSON rules (json.h): UTF-8, NUL, syntax, duplicates (the
 *                       duplicated tensor name is in lq_error.tensor), depth (at most 3: header,
 *                       entry, shape/offsets array), integers only, |int| <= 2^53; JSON_LIMIT
 *                       (LQ_ERR_LIMIT) for more than 24 * max_tensors + 4096 JSON values, which
 *                       bounds cJSON's allocations before they happen
 *   ST_NOT_OBJECT       top level (or a tensor entry) is not an object
 *   ST_METADATA_TYPE    __metadata__ not an object of string values
 *   ST_ENTRY_KEYS       tensor entry keys other than exactly dtype, shape, data_offsets
 *   ST_DTYPE            unknown dtype string
 *   ST_SHAPE            shape not an array of non-negative integers
 *   ST_RANK             rank above limits.max_rank (default 8)
 *   ST_NUMEL_OVERFLOW   product of the shape (multiplied left to right, as the reference
 *                       reader does), or its size in bits, overflows 64 bits
 *   ST_SUBBYTE          element count times bits not a multiple of 8
 *   ST_OFFSETS          data_offsets not exactly two non-negative integers
 *   ST_OFFSET_ORDER     begin > end
 *   ST_SIZE_MISMATCH    end - begin differs from the size implied by dtype and shape
 *   ST_OFFSET_START     the first tensor (by offset) does not start at 0
 *   ST_OFFSET_GAP       a gap between consecutive tensors
 *   ST_OFFSET_OVERLAP   overlapping or aliased tensors (zero-length tensors may share their
 *                       offset with the tensor that starts there, or lie at the very end)
 *   ST_TRAILING_BYTES   the data section is longer than the last tensor's end
 *   ST_TRUNCATED        the last tensor ends beyond the end of the file
 *   ST_NAME             empty name or name longer than limits.max_name (default 1024)
 *   ST_TENSOR_LIMIT     more tensors than limits.max_tensors (default 1,000,000)
 * Status is LQ_ERR_CORRUPT except for ST_HEADER_LIMIT, ST_TENSOR_LIMIT and JSON_LIMIT
 * (LQ_ERR_LIMIT). Names and __metadata__ are checked first, then each entry on its own in header
 * order (keys, dtype, shape, sizes, offsets), then the offset rules in offset order, naming the
 * tensor where the rule breaks.
 * Tensor data need not be aligned (files without alignment exist); callers that need aligned
 * access copy. */
#ifndef LIBQUANT_SAFETENSORS_H
#define LIBQUANT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LQ_MAX_RANK 8

typedef struct lq_st_limits {
    uint64_t max_header;   /* bytes; default 100,000,000 */
    uint64_t max_tensors;  /* default 1,000,000 */
    uint32_t max_name;     /* bytes; default 1024 */
    uint32_t max_rank;     /* default 8; larger values act as LQ_MAX_RANK */
} lq_st_limits;

typedef struct lq_tensor_info {
    const char *name;        /* NUL-terminated, owned by the file object */
    lq_dtype dtype;
    uint32_t rank;
    uint64_t shape[LQ_MAX_RANK];
    uint64_t numel;
    uint64_t nbytes;
    uint64_t begin, end;     /* relative to the start of the data section */
} lq_tensor_info;

typedef struct lq_st_file lq_st_file;

/* Opens and validates a file, mapped read-only (MAP_PRIVATE). limits may be NULL; zero fields
 * mean defaults. A missing file gives LQ_ERR_NOT_FOUND, other open/stat/mmap failures
 * LQ_ERR_IO. If another process truncates the file while it is mapped, touching the lost pages
 * raises SIGBUS; files being rewritten in place are not supported. */
lq_status lq_st_open(const char *path, const lq_st_limits *limits, lq_st_file **out, lq_error *err);

/* Validates an in-memory image (the bytes are borrowed and must outlive the object). `label`
 * names it in errors. Used by the fuzz target and tests. */
lq_status lq_st_open_memory(const void *buf, size_t len, const char *label,
                            const lq_st_limits *limits, lq_st_file **out, lq_error *err);

/* Unmaps and frees. Accepts NULL. */
void lq_st_close(lq_st_file *f);

const char *lq_st_path(const lq_st_file *f);
uint64_t lq_st_file_size(const lq_st_file *f);
uint64_t lq_st_header_len(const lq_st_file *f);

/* Tensors in name order (byte-wise strcmp). */
size_t lq_st_count(const lq_st_file *f);
const lq_tensor_info *lq_st_tensor(const lq_st_file *f, size_t i);
/* Binary search by exact name; NULL if absent. */
const lq_tensor_info *lq_st_find(const lq_st_file *f, const char *name);
/* Pointer to the tensor's first byte inside the mapping (not necessarily aligned). */
const uint8_t *lq_st_data(const lq_st_file *f, const lq_tensor_info *t);

/* __metadata__ entries; NULL if absent. */
const char *lq_st_metadata(const lq_st_file *f, const char *key);
size_t lq_st_metadata_count(const lq_st_file *f);
/* i-th metadata key/value in key order. */
int lq_st_metadata_at(const lq_st_file *f, size_t i, const char **key, const char **value);

#ifdef __cplusplus
}
#endif
#endif
