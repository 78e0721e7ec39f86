/* Input-file helpers (internal/fileio.h). */
#include "internal/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

lq_status lq_open_regular(const char *path, uint64_t max_size, const char *io_rule,
                          const char *limit_rule, int *fd_out, uint64_t *size_out, lq_error *err)
{
    *fd_out = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return lq_fail(err, e == ENOENT ? LQ_ERR_NOT_FOUND : LQ_ERR_IO, path, NULL, io_rule,
                       "cannot open: %s", strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return lq_fail(err, LQ_ERR_IO, path, NULL, io_rule, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return lq_fail(err, LQ_ERR_IO, path, NULL, io_rule, "not a regular file");
    }
    uint64_t cap = max_size ? max_size : (uint64_t)SIZE_MAX;
    if (sb.st_size < 0 || (uint64_t)sb.st_size > cap) {
        close(fd);
        return lq_fail(err, LQ_ERR_LIMIT, path, NULL, limit_rule,
                       "file is %lld bytes, above the limit of %llu", (long long)sb.st_size,
                       (unsigned long long)cap);
    }
    *fd_out = fd;
    *size_out = (uint64_t)sb.st_size;
    return LQ_OK;
}

lq_status lq_read_file(const char *path, uint64_t max_size, const char *io_rule,
                       const char *limit_rule, uint8_t **buf_out, size_t *size_out, lq_error *err)
{
    *buf_out = NULL;
    int fd;
    uint64_t size64;
    lq_status st = lq_open_regular(path, max_size, io_rule, limit_rule, &fd, &size64, err);
    if (st != LQ_OK)
        return st;
    size_t size = (size_t)size64;
    uint8_t *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, io_rule, "cannot allocate %zu bytes", size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            st = r < 0 ? lq_fail(err, LQ_ERR_IO, path, NULL, io_rule, "read failed: %s", strerror(errno))
                       : lq_fail(err, LQ_ERR_IO, path, NULL, io_rule, "file shrank while reading");
            free(buf);
            close(fd);
            return st;
        }
        got += (size_t)r;
    }
    buf[size] = 0;
    close(fd);
    *buf_out = buf;
    *size_out = size;
    return LQ_OK;
}
