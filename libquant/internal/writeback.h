/* Early writeback hint for output files (Linux sync_file_range; a no-op elsewhere). */
#ifndef LIBQUANT_INTERNAL_WRITEBACK_H
#define LIBQUANT_INTERNAL_WRITEBACK_H

#include <stdint.h>

/* Asks the kernel to start writing [off, off + len) of fd to disk without waiting. Errors are
 * ignored: this only shortens a later fsync, which still decides durability. */
void lq_start_writeback(int fd, uint64_t off, uint64_t len);

#endif
