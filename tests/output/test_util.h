/* Helpers shared by the tests/output programs: a scratch directory, whole-file reads, and a
 * check that a directory holds no leftover temporaries. */
#ifndef MIMO_TESTS_OUTPUT_UTIL_H
#define MIMO_TESTS_OUTPUT_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Creates a fresh directory under $TMPDIR (or /tmp); returns a malloc'ed path or NULL. */
static inline char *tu_mkdtemp(const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (!base || !base[0])
        base = "/tmp";
    size_t n = strlen(base) + strlen(tag) + 16;
    char *p = malloc(n);
    if (!p)
        return NULL;
    snprintf(p, n, "%s/%s-XXXXXX", base, tag);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

/* Joins dir and name into a static-free, malloc'ed path. */
static inline char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Reads a whole file; returns a malloc'ed buffer (NUL-appended) and its size, or NULL. */
static inline unsigned char *tu_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r < 4096)
            break;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

/* First occurrence of needle in hay (memmem is a GNU extension). */
static inline unsigned char *tu_find(unsigned char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k && i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return hay + i;
    return NULL;
}

static inline int tu_exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Number of entries in dir whose names start with '.' (other than . and ..): our
 * temporaries are hidden files, so this counts leftovers. */
static inline int tu_hidden_count(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Removes every plain file in dir, then dir itself (best effort). */
static inline void tu_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *p = tu_path(dir, e->d_name);
            if (p) {
                struct stat sb;
                if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
                    chmod(p, 0700);
                    tu_rmtree(p);
                } else {
                    unlink(p);
                }
                free(p);
            }
        }
        closedir(d);
    }
    rmdir(dir);
}

#endif
