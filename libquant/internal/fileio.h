/* Reading input files: one place for open, the regular-file check, the size limit and the
 * EINTR / short-read loop, so every reader reports these failures the same way. */
#ifndef LIBQUANT_INTERNAL_FILEIO_H
#define LIBQUANT_INTERNAL_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "../status.h"

/* Opens path read-only and checks it is a regular file of at most max_size bytes (0: any size
 * that fits in size_t). On success *fd_out is open and *size_out holds the size. Failures:
 * LQ_ERR_NOT_FOUND (ENOENT) or LQ_ERR_IO with rule io_rule; LQ_ERR_LIMIT with rule limit_rule. */
lq_status lq_open_regular(const char *path, uint64_t max_size, const char *io_rule,
                          const char *limit_rule, int *fd_out, uint64_t *size_out, lq_error *err);

/* lq_open_regular, then reads the whole file into a malloc'ed buffer (*buf_out, free() it; one
 * extra byte is allocated and set to 0 so text can be used as a C string). */
lq_status lq_read_file(const char *path, uint64_t max_size, const char *io_rule,
                       const char *limit_rule, uint8_t **buf_out, size_t *size_out, lq_error *err);

#endif
