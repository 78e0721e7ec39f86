/* Atomic, durable, hashed output files (outfile.h).
 *
 * The recipe follows reference/ecosystem_reliability.md 4.1: data go to a sibling temporary
 * created with O_EXCL (so two writers never share one), SHA-256 is fed with exactly the bytes
 * handed to write(2), and publication is fsync(file) -> close -> rename -> fsync(directory).
 * Any failure before the rename removes the temporary, so a final name only ever appears with
 * complete, synced content. fsync is never retried: after a failed fsync Linux may already
 * have dropped the dirty pages, and a second fsync would report success over lost data. */
#include "outfile.h"
#include "internal/writeback.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/evp.h>

/* Staged writes (lq_outfile_set_direct): the caller's bytes are copied into STAGE_BUFS aligned
 * buffers of STAGE_BYTES, and a writer thread hashes each full buffer and writes it with
 * O_DIRECT, so the data never pass through the page cache (on this kind of VM the kernel's copy
 * into fresh page-cache pages ran at 0.8 GB/s, a fifth of the converter's CPU time) and hashing
 * and disk writes overlap the caller's work. The last, partial buffer is written padded to the
 * direct-I/O block size and the file cut back to its size before the fsync. */
#define STAGE_BYTES ((size_t)8 << 20)
#define STAGE_BUFS 3
#define DIRECT_ALIGN ((size_t)4096)

typedef struct stage {
    uint8_t *buf[STAGE_BUFS];
    size_t len[STAGE_BUFS];      /* data bytes of a submitted buffer */
    size_t fill;                 /* bytes in the buffer being filled, submitted % STAGE_BUFS */
    uint64_t submitted, done;    /* buffers handed to the writer; buffers it has finished */
    int finishing;               /* no more buffers will come */
    int direct;                  /* O_DIRECT is on */
    int werr;                    /* errno of the writer's first failure, 0 if none */
    uint64_t werr_off;           /* file offset of that write */
    uint64_t disk;               /* bytes the writer has written */
    int thread_started;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} stage;

struct lq_outfile {
    int fd;              /* -1 once closed */
    stage *st;           /* staged writes, or NULL for plain write(2) */
    int failed;          /* a write failed: the temporary is gone, only abort/commit remain */
    uint64_t size;
    char *final_path;
    char *tmp_path;
    char *dir_path;
    EVP_MD_CTX *md;
    uint64_t flushed;    /* bytes handed to writeback early (sync_file_range) */
};

/* Thread-safe errno text (the XSI strerror_r, which _XOPEN_SOURCE selects). */
static const char *errtext(int e, char *buf, size_t n)
{
    if (strerror_r(e, buf, n) != 0)
        snprintf(buf, n, "errno %d", e);
    return buf;
}

static char *dup_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Waits for the writer to finish the buffers already submitted (or, with skip, to drop them)
 * and ends it. */
static void stage_stop(stage *sg, int skip)
{
    if (!sg || !sg->thread_started)
        return;
    pthread_mutex_lock(&sg->mu);
    sg->finishing = 1;
    if (skip && !sg->werr)
        sg->werr = ECANCELED;
    pthread_cond_broadcast(&sg->cv);
    pthread_mutex_unlock(&sg->mu);
    pthread_join(sg->th, NULL);
    sg->thread_started = 0;
}

static void stage_free(stage *sg)
{
    if (!sg)
        return;
    stage_stop(sg, 1);
    pthread_mutex_destroy(&sg->mu);
    pthread_cond_destroy(&sg->cv);
    for (int i = 0; i < STAGE_BUFS; i++)
        free(sg->buf[i]);
    free(sg);
}

static void free_outfile(lq_outfile *f)
{
    if (!f)
        return;
    stage_free(f->st);
    EVP_MD_CTX_free(f->md);
    free(f->final_path);
    free(f->tmp_path);
    free(f->dir_path);
    free(f);
}

/* Closes (if open) and unlinks the temporary; errors here are ignored because the caller is
 * already reporting the failure that made us discard the file. */
static void discard_temp(lq_outfile *f)
{
    stage_stop(f->st, 1); /* the writer uses fd */
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    if (f->tmp_path)
        unlink(f->tmp_path);
}

lq_status lq_outfile_open(const char *final_path, lq_outfile **out, lq_error *err)
{
    char eb[128];
    lq_outfile *f = NULL;
    lq_status st = LQ_OK;

    if (out)
        *out = NULL;
    if (!final_path || !final_path[0] || !out)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, final_path, NULL, "OUT_OPEN",
                       "empty output path");
    const char *slash = strrchr(final_path, '/');
    const char *base = slash ? slash + 1 : final_path;
    if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, final_path, NULL, "OUT_OPEN",
                       "output path does not name a file");

    struct stat sb;
    if (stat(final_path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, final_path, NULL, "OUT_EXISTS_DIR",
                       "output path is an existing directory");

    f = calloc(1, sizeof(*f));
    if (!f)
        return lq_fail(err, LQ_ERR_NO_MEMORY, final_path, NULL, "OUT_OPEN", "out of memory");
    f->fd = -1;
    f->final_path = dup_range(final_path, strlen(final_path));
    if (!slash)
        f->dir_path = dup_range(".", 1);
    else if (slash == final_path)
        f->dir_path = dup_range("/", 1);
    else
        f->dir_path = dup_range(final_path, (size_t)(slash - final_path));
    size_t dirlen = (size_t)(base - final_path);
    size_t cap = dirlen + strlen(base) + 64;
    f->tmp_path = malloc(cap);
    f->md = EVP_MD_CTX_new();
    if (!f->final_path || !f->dir_path || !f->tmp_path || !f->md) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, final_path, NULL, "OUT_OPEN", "out of memory");
        goto cleanup;
    }
    if (EVP_DigestInit_ex(f->md, EVP_sha256(), NULL) != 1) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, final_path, NULL, "OUT_OPEN",
                     "cannot initialise SHA-256");
        goto cleanup;
    }

    /* ".<name>.tmp-<pid>", then "-<n>" suffixes: a stale temporary left by a killed run whose
     * pid was reused (common in containers) must not block the next run. */
    long pid = (long)getpid();
    for (int attempt = 0; attempt < 100; attempt++) {
        if (attempt == 0)
            snprintf(f->tmp_path, cap, "%.*s.%s.tmp-%ld", (int)dirlen, final_path, base, pid);
        else
            snprintf(f->tmp_path, cap, "%.*s.%s.tmp-%ld-%d", (int)dirlen, final_path, base, pid,
                     attempt);
        f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (f->fd >= 0 || errno != EEXIST)
            break;
    }
    if (f->fd < 0) {
        int e = errno;
        st = lq_fail(err, LQ_ERR_IO, final_path, NULL, "OUT_OPEN", "create temporary %s: %s",
                     f->tmp_path, errtext(e, eb, sizeof(eb)));
        free(f->tmp_path);
        f->tmp_path = NULL; /* nothing of ours exists on disk */
        goto cleanup;
    }
    *out = f;
    return LQ_OK;

cleanup:
    free_outfile(f);
    return st;
}

/* Writes n bytes at the file position; with O_DIRECT the count is padded to DIRECT_ALIGN (the
 * buffer has room) and, should the file system refuse direct I/O, the file goes back to plain
 * writes. Returns 0 or an errno. */
static int stage_put(lq_outfile *f, stage *sg, uint8_t *b, size_t n)
{
    size_t wn = n;
    if (sg->direct && n % DIRECT_ALIGN) {
        wn = (n + DIRECT_ALIGN - 1) / DIRECT_ALIGN * DIRECT_ALIGN;
        memset(b + n, 0, wn - n);
    }
    size_t off = 0;
    while (off < wn) {
        ssize_t w = write(f->fd, b + off, wn - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EINVAL && sg->direct && off == 0 && lq_fd_direct(f->fd, 0) == 0) {
            sg->direct = 0;
            wn = n;
            continue;
        }
        if (w <= 0)
            return w < 0 ? errno : EIO;
        off += (size_t)w;
    }
    if (!sg->direct)
        lq_start_writeback(f->fd, sg->disk, n);
    return 0;
}

static void *stage_writer(void *arg)
{
    lq_outfile *f = arg;
    stage *sg = f->st;
    for (;;) {
        pthread_mutex_lock(&sg->mu);
        while (sg->done == sg->submitted && !sg->finishing)
            pthread_cond_wait(&sg->cv, &sg->mu);
        if (sg->done == sg->submitted) {
            pthread_mutex_unlock(&sg->mu);
            break;
        }
        int skip = sg->werr != 0;
        size_t k = (size_t)(sg->done % STAGE_BUFS);
        pthread_mutex_unlock(&sg->mu);
        size_t n = sg->len[k];
        int e = 0;
        if (!skip) {
            /* Hashed here, beside the caller's work, in file order (buffers go in order). */
            if (EVP_DigestUpdate(f->md, sg->buf[k], n) != 1)
                e = ENOMEM;
            else
                e = stage_put(f, sg, sg->buf[k], n);
        }
        pthread_mutex_lock(&sg->mu);
        if (e && !sg->werr) {
            sg->werr = e;
            sg->werr_off = sg->disk;
        }
        if (!e)
            sg->disk += n;
        sg->done++;
        pthread_cond_broadcast(&sg->cv);
        pthread_mutex_unlock(&sg->mu);
    }
    return NULL;
}

void lq_outfile_set_direct(lq_outfile *f)
{
    if (!f || f->st || f->fd < 0 || f->failed || f->size != 0)
        return;
    stage *sg = calloc(1, sizeof(*sg));
    if (!sg)
        return;
    for (int i = 0; i < STAGE_BUFS; i++)
        if (posix_memalign((void **)&sg->buf[i], DIRECT_ALIGN, STAGE_BYTES) != 0) {
            sg->buf[i] = NULL;
            goto fail;
        }
    if (pthread_mutex_init(&sg->mu, NULL) != 0)
        goto fail;
    if (pthread_cond_init(&sg->cv, NULL) != 0) {
        pthread_mutex_destroy(&sg->mu);
        goto fail;
    }
    sg->direct = lq_fd_direct(f->fd, 1) == 0;
    f->st = sg;
    if (pthread_create(&sg->th, NULL, stage_writer, f) != 0) {
        if (sg->direct)
            lq_fd_direct(f->fd, 0);
        f->st = NULL;
        stage_free(sg);
        return;
    }
    sg->thread_started = 1;
    return;
fail:
    for (int i = 0; i < STAGE_BUFS; i++)
        free(sg->buf[i]);
    free(sg);
}

/* Hands the buffer being filled to the writer and waits until the next one is free. Returns the
 * writer's failure (an errno), if any. */
static int stage_submit(stage *sg)
{
    pthread_mutex_lock(&sg->mu);
    sg->len[sg->submitted % STAGE_BUFS] = sg->fill;
    sg->submitted++;
    pthread_cond_broadcast(&sg->cv);
    while (sg->submitted - sg->done >= STAGE_BUFS && !sg->werr)
        pthread_cond_wait(&sg->cv, &sg->mu);
    int e = sg->werr;
    pthread_mutex_unlock(&sg->mu);
    sg->fill = 0;
    return e;
}

static lq_status stage_fail(lq_outfile *f, lq_error *err)
{
    char eb[128];
    stage *sg = f->st;
    f->failed = 1;
    discard_temp(f); /* ends the writer first; its first failure stays recorded */
    int e = sg->werr;
    uint64_t off = sg->werr_off;
    return lq_fail(err, e == ENOMEM ? LQ_ERR_NO_MEMORY : LQ_ERR_IO, f->final_path, NULL, "OUT_WRITE",
                   "write at offset %llu failed: %s; nothing published", (unsigned long long)off,
                   errtext(e, eb, sizeof(eb)));
}

static lq_status stage_write(lq_outfile *f, const unsigned char *p, size_t len, lq_error *err)
{
    stage *sg = f->st;
    while (len > 0) {
        size_t take = STAGE_BYTES - sg->fill < len ? STAGE_BYTES - sg->fill : len;
        memcpy(sg->buf[sg->submitted % STAGE_BUFS] + sg->fill, p, take);
        sg->fill += take;
        p += take;
        len -= take;
        f->size += take;
        if (sg->fill == STAGE_BYTES && stage_submit(sg) != 0)
            return stage_fail(f, err);
    }
    return LQ_OK;
}

/* Submits the last buffer, waits for the writer and cuts the padding of direct writes. */
static lq_status stage_finish(lq_outfile *f, lq_error *err)
{
    char eb[128];
    stage *sg = f->st;
    if (sg->fill > 0 && stage_submit(sg) != 0)
        return stage_fail(f, err);
    stage_stop(sg, 0);
    if (sg->werr)
        return stage_fail(f, err);
    if (sg->direct && ftruncate(f->fd, (off_t)f->size) != 0) {
        int e = errno;
        f->failed = 1;
        discard_temp(f);
        return lq_fail(err, LQ_ERR_IO, f->final_path, NULL, "OUT_WRITE",
                       "cutting %s to %llu bytes failed: %s; nothing published", f->tmp_path,
                       (unsigned long long)f->size, errtext(e, eb, sizeof(eb)));
    }
    return LQ_OK;
}

/* Fault injection for the crash tests: with MIMO_TEST_KILL_AFTER_BYTES=N in the environment the
 * process kills itself with SIGKILL once N bytes have been written through outfiles, so the
 * tests can stop a conversion at chosen points without racing a timer. Off (and one branch)
 * otherwise. */
static int64_t kill_after = -2; /* -2 unread, -1 off */
static _Atomic uint64_t written_total;

static void maybe_kill(size_t len)
{
    if (kill_after == -2) {
        const char *v = getenv("MIMO_TEST_KILL_AFTER_BYTES");
        kill_after = v && *v ? (int64_t)strtoll(v, NULL, 10) : -1;
    }
    if (kill_after < 0)
        return;
    if (atomic_fetch_add(&written_total, (uint64_t)len) + len >= (uint64_t)kill_after)
        raise(SIGKILL);
}

lq_status lq_outfile_write(lq_outfile *f, const void *data, size_t len, lq_error *err)
{
    char eb[128];
    maybe_kill(len);
    if (!f || (len && !data))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, f ? f->final_path : NULL, NULL, "OUT_WRITE",
                       "invalid write arguments");
    if (f->failed || f->fd < 0)
        return lq_fail(err, LQ_ERR_IO, f->final_path, NULL, "OUT_WRITE",
                       "an earlier write failed; the output was discarded");
    const unsigned char *p = data;
    if (f->st)
        return stage_write(f, p, len, err);
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(f->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            f->failed = 1;
            discard_temp(f);
            return lq_fail(err, LQ_ERR_IO, f->final_path, NULL, "OUT_WRITE",
                           "write of %zu bytes at offset %llu failed: %s; nothing published",
                           left, (unsigned long long)f->size, errtext(e, eb, sizeof(eb)));
        }
        /* Hash what the kernel accepted, so the digest always describes the file's bytes. */
        if (EVP_DigestUpdate(f->md, p, (size_t)w) != 1) {
            f->failed = 1;
            discard_temp(f);
            return lq_fail(err, LQ_ERR_NO_MEMORY, f->final_path, NULL, "OUT_WRITE",
                           "SHA-256 update failed; nothing published");
        }
        p += w;
        left -= (size_t)w;
        f->size += (uint64_t)w;
    }
    /* Start writeback of every full 64 MiB behind us, so the final fsync finds little left to
     * flush and the disk works while we compute (durability still comes from that fsync). */
    const uint64_t step = (uint64_t)64 << 20;
    if (f->size - f->flushed >= step) {
        uint64_t span = (f->size - f->flushed) / step * step;
        lq_start_writeback(f->fd, f->flushed, span);
        f->flushed += span;
    }
    return LQ_OK;
}

uint64_t lq_outfile_size(const lq_outfile *f)
{
    return f ? f->size : 0;
}

lq_status lq_outfile_commit(lq_outfile *f, uint8_t sha256[32], uint64_t *size, lq_error *err)
{
    char eb[128];
    lq_status st = LQ_OK;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!f)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "OUT_WRITE", "no output file");
    if (f->failed || f->fd < 0) {
        st = lq_fail(err, LQ_ERR_IO, f->final_path, NULL, "OUT_WRITE",
                     "an earlier write failed; nothing published");
        discard_temp(f);
        goto cleanup;
    }
    if (f->st && (st = stage_finish(f, err)) != LQ_OK)
        goto cleanup;
    if (fsync(f->fd) != 0) {
        int e = errno;
        st = lq_fail(err, LQ_ERR_IO, f->final_path, NULL, "OUT_FSYNC",
                     "fsync of %s failed: %s; nothing published", f->tmp_path,
                     errtext(e, eb, sizeof(eb)));
        discard_temp(f);
        goto cleanup;
    }
    int fd = f->fd;
    f->fd = -1;
    if (close(fd) != 0) {
        int e = errno;
        st = lq_fail(err, LQ_ERR_IO, f->final_path, NULL, "OUT_CLOSE",
                     "close of %s failed: %s; nothing published", f->tmp_path,
                     errtext(e, eb, sizeof(eb)));
        discard_temp(f);
        goto cleanup;
    }
    if (EVP_DigestFinal_ex(f->md, md, &mdlen) != 1 || mdlen != 32) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, f->final_path, NULL, "OUT_FSYNC",
                     "SHA-256 finalisation failed; nothing published");
        discard_temp(f);
        goto cleanup;
    }
    if (rename(f->tmp_path, f->final_path) != 0) {
        int e = errno;
        st = lq_fail(err, LQ_ERR_IO, f->final_path, NULL, "OUT_RENAME",
                     "rename of %s failed: %s; nothing published", f->tmp_path,
                     errtext(e, eb, sizeof(eb)));
        discard_temp(f);
        goto cleanup;
    }
    if (sha256)
        memcpy(sha256, md, 32);
    if (size)
        *size = f->size;

    /* The rename is only durable once the directory is synced. EINVAL/ENOTSUP/EROFS mean the
     * file system cannot sync directories at all (nothing to retry or undo). Any other
     * failure is reported; the file is already published with complete, synced content. */
    int dfd = open(f->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int dsync_rc = dfd < 0 ? -1 : fsync(dfd);
    int de = dsync_rc != 0 ? errno : 0;
    if (dfd >= 0)
        close(dfd);
    if (dsync_rc != 0 && de != EINVAL && de != ENOTSUP && de != EROFS)
        st = lq_fail(err, LQ_ERR_IO, f->final_path, NULL, "OUT_DIRSYNC",
                     "fsync of directory %s failed: %s (the file was renamed into place but the "
                     "rename may not survive a crash)",
                     f->dir_path, errtext(de, eb, sizeof(eb)));

cleanup:
    free_outfile(f);
    return st;
}

void lq_outfile_abort(lq_outfile *f)
{
    if (!f)
        return;
    discard_temp(f);
    free_outfile(f);
}

lq_status lq_write_file_atomic(const char *final_path, const void *data, size_t len,
                               uint8_t sha256[32], lq_error *err)
{
    lq_outfile *f = NULL;
    lq_status st = lq_outfile_open(final_path, &f, err);
    if (st != LQ_OK)
        return st;
    st = lq_outfile_write(f, data, len, err);
    if (st != LQ_OK) {
        lq_outfile_abort(f);
        return st;
    }
    return lq_outfile_commit(f, sha256, NULL, err);
}

void lq_sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    static const unsigned char empty = 0;
    /* EVP_Digest only fails on allocation failure; a zero digest then cannot match anything. */
    if (EVP_Digest(data ? data : &empty, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        memset(out, 0, 32);
}

void lq_hex(const uint8_t *digest, size_t n, char *out)
{
    static const char hexd[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexd[digest[i] >> 4];
        out[2 * i + 1] = hexd[digest[i] & 15];
    }
    out[2 * n] = '\0';
}

lq_status lq_outfile_sink(void *f, const char *text, size_t len, lq_error *err)
{
    return lq_outfile_write(f, text, len, err);
}
