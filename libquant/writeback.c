/* sync_file_range needs _GNU_SOURCE, which would also switch strerror_r to its GNU form; so the
 * one call lives alone in this file. */
#define _GNU_SOURCE
#include <fcntl.h>

#include "internal/writeback.h"

void lq_start_writeback(int fd, uint64_t off, uint64_t len)
{
#ifdef SYNC_FILE_RANGE_WRITE
    (void)sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd;
    (void)off;
    (void)len;
#endif
}
