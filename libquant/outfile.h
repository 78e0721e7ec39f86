/* Atomic, durable, hashed output files.
 *
 * Data go to a temporary sibling ".<name>.tmp-<pid>" (or ".<name>.tmp-<pid>-<n>" when a stale
 * one with that name exists) created with O_EXCL|O_CLOEXEC and mode 0644 less the umask;
 * SHA-256 (libcrypto) is computed over exactly the bytes written. Commit = fsync(file), close,
 * rename onto the final name, fsync(directory); only then does the final name exist with the
 * new content. Any write, fsync, close or rename error aborts: the temporary is removed,
 * nothing is published, a previous file at the final name is left untouched, and the error
 * (with errno text) is returned; fsync is never retried (reference/ecosystem_reliability.md
 * 4.1). Stale temporaries of killed runs are not cleaned here (callers that resume do that).
 * All failures are LQ_ERR_IO unless stated. */
#ifndef LIBQUANT_OUTFILE_H
#define LIBQUANT_OUTFILE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lq_outfile lq_outfile;

/* Creates the temporary for final_path. Rule ids: OUT_OPEN (LQ_ERR_INVALID_ARGUMENT for a path
 * without a file name), OUT_EXISTS_DIR (LQ_ERR_INVALID_ARGUMENT: final_path is a directory). */
lq_status lq_outfile_open(const char *final_path, lq_outfile **out, lq_error *err);
/* Appends len bytes (loops over short writes and EINTR). Rule OUT_WRITE (ENOSPC, EFBIG and EIO
 * included). A failed write removes the temporary at once; every later write and the commit
 * then fail with OUT_WRITE. */
lq_status lq_outfile_write(lq_outfile *f, const void *data, size_t len, lq_error *err);
/* Switches f, before its first write, to staged direct writes for large files: lq_outfile_write
 * copies the bytes into a few 8 MiB buffers that a writer thread hashes and writes with O_DIRECT
 * (plain writes where the file system has no direct I/O), so the data skip the page cache and
 * the hashing runs beside the caller. The file's bytes, digest and size are the same as without.
 * What changes: a failed write is reported by a later lq_outfile_write or by the commit (rule
 * OUT_WRITE, the temporary then removed), not necessarily by the call that handed over the
 * bytes. Holds 24 MiB and one thread until commit or abort. Does nothing when it cannot
 * (allocation or thread creation failed, or bytes were already written). */
void lq_outfile_set_direct(lq_outfile *f);
/* Bytes written so far. */
uint64_t lq_outfile_size(const lq_outfile *f);
/* fsync, close, rename, fsync(dir); frees f in every case. sha256 (32 bytes) and size may be
 * NULL; they are filled once the rename succeeded. Rules OUT_WRITE (an earlier write failed),
 * OUT_FSYNC, OUT_CLOSE, OUT_RENAME: the temporary is removed and nothing is published.
 * OUT_DIRSYNC: the file was renamed into place with synced content, but the directory could
 * not be synced (a file system that cannot sync directories at all, EINVAL/ENOTSUP/EROFS, is
 * not an error). */
lq_status lq_outfile_commit(lq_outfile *f, uint8_t sha256[32], uint64_t *size, lq_error *err);
/* Removes the temporary and frees f. Accepts NULL. */
void lq_outfile_abort(lq_outfile *f);

/* lq_outfile_write in the shape of a JSON writer's sink (jsonw.h, lq_jw_sink_fn): f is the
 * lq_outfile *, so a long JSON text streams into an atomic file. */
lq_status lq_outfile_sink(void *f, const char *text, size_t len, lq_error *err);

/* Writes a whole buffer atomically (open + write + commit). */
lq_status lq_write_file_atomic(const char *final_path, const void *data, size_t len,
                               uint8_t sha256[32], lq_error *err);

/* SHA-256 of a buffer (data may be NULL when len is 0), and lowercase hex of an n-byte digest
 * (out has room for 2n+1 bytes: 65 for SHA-256). */
void lq_sha256(const void *data, size_t len, uint8_t out[32]);
void lq_hex(const uint8_t *digest, size_t n, char *out);

#ifdef __cplusplus
}
#endif
#endif
