/* sync_file_range and O_DIRECT need _GNU_SOURCE, which would also switch strerror_r to its GNU
 * form; so these calls live alone in this file. */
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

int lq_fd_direct(int fd, int on)
{
#ifdef O_DIRECT
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    fl = on ? fl | O_DIRECT : fl & ~O_DIRECT;
    return fcntl(fd, F_SETFL, fl);
#else
    (void)fd;
    return on ? -1 : 0;
#endif
}
