/* Early writeback hint for output files (Linux sync_file_range; a no-op elsewhere), and direct
 * I/O (O_DIRECT) switched on or off on an open file. */
#ifndef LIBQUANT_INTERNAL_WRITEBACK_H
#define LIBQUANT_INTERNAL_WRITEBACK_H

#include <stdint.h>

/* Asks the kernel to start writing [off, off + len) of fd to disk without waiting. Errors are
 * ignored: this only shortens a later fsync, which still decides durability. */
void lq_start_writeback(int fd, uint64_t off, uint64_t len);

/* Sets (on != 0) or clears O_DIRECT on fd: 0 done, -1 not possible (the file system or the
 * platform has no direct I/O; the file stays as it was). */
int lq_fd_direct(int fd, int on);

#endif
