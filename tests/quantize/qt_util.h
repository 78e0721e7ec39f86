/* Helpers shared by the mimo-quantize end-to-end tests (tests/quantize): scratch trees, running
 * the tools as child processes (no shell; with the fault-injection variable, a timeout, or
 * stopped at start so a test can step them), and file digests and tree comparisons.
 *
 * Nothing here counts checks: functions return values and the test programs assert on them
 * (tests/harness.h keeps its counters per translation unit). */
#ifndef MIMO_TESTS_QUANTIZE_QT_UTIL_H
#define MIMO_TESTS_QUANTIZE_QT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "libquant/libquant.h"

/* ---- paths and trees ---- */

/* mkdtemp "$TMPDIR/mimo-quantize-test-XXXXXX" (or /tmp). 0 on success. */
int qt_mkroot(char *out, size_t cap);
/* snprintf into a static ring of 64 buffers of 4096 bytes: for paths used at once, never kept. */
const char *qt_p(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* snprintf into buf (truncating silently: the scratch paths are far below any cap). */
void qt_fmt(char *buf, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Removes a tree without following symlinks. Accepts a missing path. */
void qt_rmtree(const char *path);
int qt_exists(const char *path);   /* lstat succeeds */
int qt_is_dir(const char *path);
/* Mirrors the tree src into the new directory dst with hard links (files) and new directories;
 * the source files are only ever replaced, never written in place, so links are safe. */
int qt_link_tree(const char *src, const char *dst);
int qt_copy_file(const char *src, const char *dst);
/* Entries of dir (not "." or ".."), sorted, NULL-terminated; free with qt_free_names. */
char **qt_list(const char *dir);
void qt_free_names(char **names);
size_t qt_count_names(char *const *names);
/* Entries under dir (recursively, all depths) whose name contains needle. */
size_t qt_count_matching(const char *dir, const char *needle);

/* ---- files ---- */

/* Whole file (NUL-terminated for convenience; *len excludes the NUL). NULL on failure. */
uint8_t *qt_read(const char *path, size_t *len);
int qt_write(const char *path, const void *data, size_t len);
/* 1 when the file holds needle, 0 when not, -1 when unreadable. */
int qt_file_contains(const char *path, const char *needle);
/* Lines of the file that contain needle. */
size_t qt_count_lines_with(const char *path, const char *needle);
/* SHA-256 (lowercase hex) and size of a file, through libquant's lq_sha256. 0 on success. */
int qt_sha256_file(const char *path, char hex[65], uint64_t *size);
/* Strict JSON of a file (NULL on failure). */
cJSON *qt_json(const char *path);

/* ---- tree digests ---- */

typedef struct qt_entry {
    char *path;        /* relative to the scanned root, '/'-separated */
    int is_dir;
    uint64_t size;
    char sha[65];      /* files only */
} qt_entry;

typedef struct qt_tree {
    qt_entry *e;
    size_t n;
} qt_tree;

/* Every entry under dir (hidden ones included, symlinks not followed: a link is recorded as a
 * file whose digest is its target text), sorted by path. 0 on success. */
int qt_tree_scan(const char *dir, qt_tree *t);
void qt_tree_free(qt_tree *t);
/* 0 when both trees have the same paths, kinds, sizes and digests; otherwise 1 with the first
 * difference described in msg. */
int qt_tree_diff(const qt_tree *a, const qt_tree *b, char *msg, size_t cap);
/* Scans both directories and compares them (1 also when either cannot be scanned). */
int qt_dirs_differ(const char *a, const char *b, char *msg, size_t cap);

/* ---- processes ---- */

typedef struct qt_run_opts {
    const char *kill_after;   /* MIMO_TEST_KILL_AFTER_BYTES for the child only, or NULL */
    const char *out_path;     /* child's stdout (NULL: /dev/null) */
    const char *err_path;     /* child's stderr (NULL: /dev/null) */
    int timeout_s;            /* qt_run: 0 means 240 */
    int start_stopped;        /* qt_spawn: the child stops itself (SIGSTOP) before exec */
} qt_run_opts;

/* Starts argv[0] (looked up in PATH when it has no '/'). The fault-injection variable is
 * removed from the child's environment unless o->kill_after sets it. -1 on failure. */
pid_t qt_spawn(const char *const *argv, const qt_run_opts *o);
/* Waits for the child: its exit code, 128 + signal when killed by one, -1 on error, or -2 when
 * timeout_s passed (the child is then killed and reaped). */
int qt_wait(pid_t pid, int timeout_s);
/* Spawn and wait. */
int qt_run(const char *const *argv, const qt_run_opts *o);
/* Same with a NULL-terminated list of arguments after o (argv[0] first). */
int qt_runl(const qt_run_opts *o, ...);
/* MKFIXTURE --preset tiny --variant V --out DIR -q; returns its exit status. */
int qt_mkfixture(const char *mkfixture, const char *variant, const char *dir);

#endif
