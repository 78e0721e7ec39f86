/* Atomic, durable, hashed output files.
 *
 * Data go to a temporary sibling ".<name>.tmp-<pid>" created with O_EXCL; SHA-256 (libcrypto)
 * is computed over exactly the bytes written. Commit = fsync(file), close, rename onto the final
 * name, fsync(directory); only then does the final name exist with the new content. Any write,
 * fsync, close or rename error aborts: the temporary is removed, nothing is published, and the
 * error (with errno text) is returned; fsync is never retried (reference/ecosystem_reliability.md
 * 4.1). A file that is neither committed nor aborted is removed by lq_outfile_abort. */
#ifndef LIBQUANT_OUTFILE_H
#define LIBQUANT_OUTFILE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lq_outfile lq_outfile;

/* Creates the temporary for final_path. Rule ids: OUT_OPEN, OUT_EXISTS_DIR. */
lq_status lq_outfile_open(const char *final_path, lq_outfile **out, lq_error *err);
/* Appends len bytes (loops over short writes and EINTR). Rule OUT_WRITE (ENOSPC included). */
lq_status lq_outfile_write(lq_outfile *f, const void *data, size_t len, lq_error *err);
/* Bytes written so far. */
uint64_t lq_outfile_size(const lq_outfile *f);
/* fsync, rename, fsync(dir); frees f in every case. sha256 (32 bytes) and size may be NULL.
 * Rules OUT_FSYNC, OUT_RENAME, OUT_DIRSYNC. On failure the temporary is removed. */
lq_status lq_outfile_commit(lq_outfile *f, uint8_t sha256[32], uint64_t *size, lq_error *err);
/* Removes the temporary and frees f. Accepts NULL. */
void lq_outfile_abort(lq_outfile *f);

/* Writes a whole buffer atomically (open + write + commit). */
lq_status lq_write_file_atomic(const char *final_path, const void *data, size_t len,
                               uint8_t sha256[32], lq_error *err);

/* SHA-256 of a buffer, and lowercase hex of a digest (out has room for 65 bytes). */
void lq_sha256(const void *data, size_t len, uint8_t out[32]);
void lq_hex(const uint8_t *digest, size_t n, char *out);

#ifdef __cplusplus
}
#endif
#endif
