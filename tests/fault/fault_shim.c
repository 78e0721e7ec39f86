/* I/O fault injection for tests/fault/test_fault.c, loaded with LD_PRELOAD into mimo-quantize.
 *
 * Selected by the environment (all off when unset):
 *   FAULT_READ_PATH=S  FAULT_READ_AFTER=N    read()/pread() on a file whose path contains S fail
 *                                            with EIO once N bytes have been read from such files
 *   FAULT_FSYNC_PATH=S                       fsync()/fdatasync() on a file whose path contains S
 *                                            fail with EIO
 *   FAULT_WRITE_PATH=S FAULT_WRITE_AFTER=N   write()/pwrite() to a file whose path contains S
 *                                            fail with ENOSPC once N bytes have been written to
 *                                            such files (a write crossing N is cut short at N,
 *                                            as on a file system that fills up)
 * The path of a descriptor is read from /proc/self/fd at each call, so nothing has to follow
 * open/close. Every injected failure appends one line ("read PATH", "fsync PATH", "write PATH")
 * to the file named by FAULT_LOG, so the test can tell that the fault it asked for was hit. */
/* Both pread and pread64 (pwrite, pwrite64) are defined here, so the 64-bit redirect of the
 * headers must be off in this file. */
#undef _FILE_OFFSET_BITS
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*sync_fn)(int);

static _Atomic uint64_t read_total, write_total;

/* The next definition of a function (libc's, or a sanitizer's interceptor). ISO C has no cast
 * from an object pointer to a function pointer, hence the copy. */
#define NEXT(sym, var)                                                           \
    do {                                                                         \
        void *p_ = dlsym(RTLD_NEXT, (sym));                                      \
        if (!p_)                                                                 \
            abort(); /* cannot happen with glibc: every wrapped function exists */ \
        memcpy(&(var), &p_, sizeof(var));                                        \
    } while (0)

/* 1 when fd's path contains the text of environment variable var (set and non-empty). */
static int fd_matches(int fd, const char *var, char *path, size_t cap)
{
    const char *want = getenv(var);
    if (!want || !*want || fd < 0)
        return 0;
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, cap - 1);
    if (n <= 0)
        return 0;
    path[n] = 0;
    return strstr(path, want) != NULL;
}

static uint64_t env_u64(const char *var)
{
    const char *v = getenv(var);
    return v && *v ? strtoull(v, NULL, 10) : 0;
}

static void log_fault(const char *what, const char *path)
{
    const char *logp = getenv("FAULT_LOG");
    if (!logp || !*logp)
        return;
    int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    char line[4200];
    int n = snprintf(line, sizeof(line), "%s %s\n", what, path);
    if (n > 0) {
        write_fn real;
        NEXT("write", real);
        ssize_t w = real(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
        (void)w;
    }
    close(fd);
}

/* How many of len bytes a call on fd may move when fd is the file named by $pathvar and *total
 * bytes have moved so far: all up to $aftervar, then 0 with errno set to err (the fault, logged
 * as what). -1: not the chosen file. */
static ssize_t budget(int fd, size_t len, const char *pathvar, const char *aftervar, _Atomic uint64_t *total,
                      int err, const char *what)
{
    char path[4096];
    if (!fd_matches(fd, pathvar, path, sizeof(path)))
        return -1;
    uint64_t after = env_u64(aftervar);
    uint64_t done = atomic_load(total);
    if (done >= after) {
        log_fault(what, path);
        errno = err;
        return 0;
    }
    uint64_t left = after - done;
    return (ssize_t)(len < left ? len : left);
}

static ssize_t read_budget(int fd, size_t len)
{
    return budget(fd, len, "FAULT_READ_PATH", "FAULT_READ_AFTER", &read_total, EIO, "read");
}

ssize_t read(int fd, void *buf, size_t len)
{
    static read_fn real;
    if (!real)
        NEXT("read", real);
    ssize_t b = read_budget(fd, len);
    if (b == 0 && len > 0)
        return -1;
    ssize_t r = real(fd, buf, b < 0 ? len : (size_t)b);
    if (b >= 0 && r > 0)
        atomic_fetch_add(&read_total, (uint64_t)r);
    return r;
}

static ssize_t pread_common(const char *sym, int fd, void *buf, size_t len, off_t off)
{
    pread_fn real;
    NEXT(sym, real);
    ssize_t b = read_budget(fd, len);
    if (b == 0 && len > 0)
        return -1;
    ssize_t r = real(fd, buf, b < 0 ? len : (size_t)b, off);
    if (b >= 0 && r > 0)
        atomic_fetch_add(&read_total, (uint64_t)r);
    return r;
}

ssize_t pread(int fd, void *buf, size_t len, off_t off) { return pread_common("pread", fd, buf, len, off); }
ssize_t pread64(int fd, void *buf, size_t len, off64_t off) { return pread_common("pread64", fd, buf, len, off); }

static ssize_t write_budget(int fd, size_t len)
{
    return budget(fd, len, "FAULT_WRITE_PATH", "FAULT_WRITE_AFTER", &write_total, ENOSPC, "write");
}

ssize_t write(int fd, const void *buf, size_t len)
{
    static write_fn real;
    if (!real)
        NEXT("write", real);
    ssize_t b = write_budget(fd, len);
    if (b == 0 && len > 0)
        return -1;
    ssize_t r = real(fd, buf, b < 0 ? len : (size_t)b);
    if (b >= 0 && r > 0)
        atomic_fetch_add(&write_total, (uint64_t)r);
    return r;
}

static ssize_t pwrite_common(const char *sym, int fd, const void *buf, size_t len, off_t off)
{
    pwrite_fn real;
    NEXT(sym, real);
    ssize_t b = write_budget(fd, len);
    if (b == 0 && len > 0)
        return -1;
    ssize_t r = real(fd, buf, b < 0 ? len : (size_t)b, off);
    if (b >= 0 && r > 0)
        atomic_fetch_add(&write_total, (uint64_t)r);
    return r;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off) { return pwrite_common("pwrite", fd, buf, len, off); }
ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t off) { return pwrite_common("pwrite64", fd, buf, len, off); }

static int sync_common(const char *sym, int fd)
{
    char path[4096];
    if (fd_matches(fd, "FAULT_FSYNC_PATH", path, sizeof(path))) {
        log_fault("fsync", path);
        errno = EIO;
        return -1;
    }
    sync_fn real;
    NEXT(sym, real);
    return real(fd);
}

int fsync(int fd) { return sync_common("fsync", fd); }
int fdatasync(int fd) { return sync_common("fdatasync", fd); }
