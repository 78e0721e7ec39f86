/* Test helpers for tests/quantize (qt_util.h). */
#include "qt_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- paths and trees ---- */

int qt_mkroot(char *out, size_t cap)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    int n = snprintf(out, cap, "%s/mimo-quantize-test-XXXXXX", base);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return mkdtemp(out) ? 0 : -1;
}

const char *qt_p(const char *fmt, ...)
{
    static char ring[64][4096];
    static unsigned next;
    char *b = ring[next++ % 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof(ring[0]), fmt, ap);
    va_end(ap);
    return b;
}

void qt_fmt(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void qt_rmtree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return;
    /* A directory left read-only by a test would stop nftw's removals: open it up first. */
    if (S_ISDIR(sb.st_mode))
        chmod(path, 0755);
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int qt_exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

int qt_is_dir(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int qt_link_tree(const char *src, const char *dst)
{
    if (mkdir(dst, 0755) != 0)
        return -1;
    char **names = qt_list(src);
    if (!names)
        return -1;
    int rc = 0;
    for (size_t i = 0; names[i] && rc == 0; i++) {
        char a[4096], b[4096];
        snprintf(a, sizeof(a), "%s/%s", src, names[i]);
        snprintf(b, sizeof(b), "%s/%s", dst, names[i]);
        if (qt_is_dir(a))
            rc = qt_link_tree(a, b);
        else
            rc = link(a, b);
    }
    qt_free_names(names);
    return rc;
}

int qt_copy_file(const char *src, const char *dst)
{
    size_t n = 0;
    uint8_t *d = qt_read(src, &n);
    if (!d)
        return -1;
    int rc = qt_write(dst, d, n);
    free(d);
    return rc;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

char **qt_list(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    size_t n = 0, cap = 16;
    char **v = malloc(cap * sizeof(*v));
    struct dirent *e;
    while (v && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n + 1 >= cap) {
            char **nv = realloc(v, 2 * cap * sizeof(*v));
            if (!nv) {
                v[n] = NULL;
                qt_free_names(v);
                v = NULL;
                break;
            }
            v = nv;
            cap *= 2;
        }
        v[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (!v)
        return NULL;
    v[n] = NULL;
    qsort(v, n, sizeof(*v), cmp_names);
    return v;
}

void qt_free_names(char **names)
{
    for (size_t i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
}

size_t qt_count_names(char *const *names)
{
    size_t n = 0;
    while (names && names[n])
        n++;
    return n;
}

size_t qt_count_matching(const char *dir, const char *needle)
{
    char **names = qt_list(dir);
    size_t n = 0;
    for (size_t i = 0; names && names[i]; i++) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        if (strstr(names[i], needle))
            n++;
        if (qt_is_dir(p))
            n += qt_count_matching(p, needle);
    }
    qt_free_names(names);
    return n;
}

/* ---- files ---- */

uint8_t *qt_read(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return NULL;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    uint8_t *buf = malloc(n + 1);
    while (buf && got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(buf);
            buf = NULL;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (!buf)
        return NULL;
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

int qt_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, len, f) == len;
    ok &= fclose(f) == 0;
    return ok ? 0 : -1;
}

int qt_file_contains(const char *path, const char *needle)
{
    uint8_t *d = qt_read(path, NULL);
    if (!d)
        return -1;
    int r = strstr((const char *)d, needle) != NULL;
    free(d);
    return r;
}

size_t qt_count_lines_with(const char *path, const char *needle)
{
    uint8_t *d = qt_read(path, NULL);
    size_t n = 0;
    for (char *line = (char *)d; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        if (strstr(line, needle))
            n++;
        line = nl ? nl + 1 : NULL;
    }
    free(d);
    return n;
}

int qt_sha256_file(const char *path, char hex[65], uint64_t *size)
{
    size_t n = 0;
    uint8_t *d = qt_read(path, &n);
    if (!d)
        return -1;
    uint8_t sha[32];
    lq_sha256(d, n, sha);
    lq_hex(sha, 32, hex);
    free(d);
    if (size)
        *size = n;
    return 0;
}

cJSON *qt_json(const char *path)
{
    cJSON *j = NULL;
    if (lq_json_parse_file(path, (size_t)512 << 20, NULL, &j, NULL) != LQ_OK)
        return NULL;
    return j;
}

/* ---- tree digests ---- */

static int scan_into(const char *root, const char *rel, qt_tree *t, size_t *cap)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s%s%s", root, rel[0] ? "/" : "", rel);
    char **names = qt_list(dir);
    if (!names)
        return -1;
    int rc = 0;
    for (size_t i = 0; names[i] && rc == 0; i++) {
        char relp[4096], full[8192];
        snprintf(relp, sizeof(relp), "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
        snprintf(full, sizeof(full), "%s/%s", root, relp);
        struct stat sb;
        if (lstat(full, &sb) != 0) {
            rc = -1;
            break;
        }
        if (t->n == *cap) {
            qt_entry *ne = realloc(t->e, 2 * *cap * sizeof(*ne));
            if (!ne) {
                rc = -1;
                break;
            }
            t->e = ne;
            *cap *= 2;
        }
        qt_entry *e = &t->e[t->n++];
        memset(e, 0, sizeof(*e));
        e->path = strdup(relp);
        if (S_ISDIR(sb.st_mode)) {
            e->is_dir = 1;
            rc = scan_into(root, relp, t, cap);
        } else if (S_ISLNK(sb.st_mode)) {
            char target[4096];
            ssize_t l = readlink(full, target, sizeof(target) - 1);
            target[l > 0 ? l : 0] = 0;
            uint8_t sha[32];
            lq_sha256(target, strlen(target), sha);
            lq_hex(sha, 32, e->sha);
            e->size = (uint64_t)strlen(target);
        } else if (S_ISREG(sb.st_mode)) {
            rc = qt_sha256_file(full, e->sha, &e->size);
        } else {
            snprintf(e->sha, sizeof(e->sha), "special");
        }
    }
    qt_free_names(names);
    return rc;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const qt_entry *)a)->path, ((const qt_entry *)b)->path);
}

int qt_tree_scan(const char *dir, qt_tree *t)
{
    size_t cap = 64;
    t->n = 0;
    t->e = malloc(cap * sizeof(*t->e));
    if (!t->e)
        return -1;
    int rc = scan_into(dir, "", t, &cap);
    qsort(t->e, t->n, sizeof(*t->e), cmp_entry);
    return rc;
}

void qt_tree_free(qt_tree *t)
{
    for (size_t i = 0; t && i < t->n; i++)
        free(t->e[i].path);
    if (t)
        free(t->e);
}

int qt_tree_diff(const qt_tree *a, const qt_tree *b, char *msg, size_t cap)
{
    size_t i = 0, j = 0;
    while (i < a->n || j < b->n) {
        int c = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->e[i].path, b->e[j].path);
        if (c < 0) {
            snprintf(msg, cap, "%s only in the first tree", a->e[i].path);
            return 1;
        }
        if (c > 0) {
            snprintf(msg, cap, "%s only in the second tree", b->e[j].path);
            return 1;
        }
        const qt_entry *x = &a->e[i], *y = &b->e[j];
        if (x->is_dir != y->is_dir || x->size != y->size || strcmp(x->sha, y->sha) != 0) {
            snprintf(msg, cap, "%s differs (%llu bytes %.12s vs %llu bytes %.12s)", x->path,
                     (unsigned long long)x->size, x->sha, (unsigned long long)y->size, y->sha);
            return 1;
        }
        i++;
        j++;
    }
    if (msg && cap)
        msg[0] = 0;
    return 0;
}

int qt_dirs_differ(const char *a, const char *b, char *msg, size_t cap)
{
    qt_tree ta = {0}, tb = {0};
    int rc;
    if (qt_tree_scan(a, &ta) != 0 || qt_tree_scan(b, &tb) != 0) {
        snprintf(msg, cap, "cannot scan %s or %s", a, b);
        rc = 1;
    } else {
        rc = qt_tree_diff(&ta, &tb, msg, cap);
    }
    qt_tree_free(&ta);
    qt_tree_free(&tb);
    return rc;
}

/* ---- processes ---- */

static void redirect(int fd, const char *path)
{
    int f = open(path ? path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f >= 0) {
        dup2(f, fd);
        close(f);
    }
}

pid_t qt_spawn(const char *const *argv, const qt_run_opts *o)
{
    static const qt_run_opts none = {0};
    if (!o)
        o = &none;
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* Child. The test programs are single-threaded, so setenv and friends are safe here. */
    redirect(STDOUT_FILENO, o->out_path);
    redirect(STDERR_FILENO, o->err_path);
    if (o->kill_after)
        setenv("MIMO_TEST_KILL_AFTER_BYTES", o->kill_after, 1);
    else
        unsetenv("MIMO_TEST_KILL_AFTER_BYTES");
    if (o->start_stopped)
        raise(SIGSTOP);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

int qt_wait(pid_t pid, int timeout_s)
{
    if (pid < 0)
        return -1;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long sleep_us = 200;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            if (WIFSIGNALED(st))
                return 128 + WTERMSIG(st);
            continue;
        }
        if (r < 0 && errno != EINTR)
            return -1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (timeout_s > 0 && now.tv_sec - t0.tv_sec >= timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -2;
        }
        usleep((useconds_t)sleep_us);
        if (sleep_us < 20000)
            sleep_us *= 2;
    }
}

int qt_run(const char *const *argv, const qt_run_opts *o)
{
    pid_t pid = qt_spawn(argv, o);
    return qt_wait(pid, o && o->timeout_s ? o->timeout_s : 240);
}

int qt_runl(const qt_run_opts *o, ...)
{
    const char *argv[64];
    size_t n = 0;
    va_list ap;
    va_start(ap, o);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 63)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return qt_run(argv, o);
}

int qt_mkfixture(const char *mkfixture, const char *variant, const char *dir)
{
    return qt_runl(NULL, mkfixture, "--preset", "tiny", "--variant", variant, "--out", dir, "-q", (char *)NULL);
}
