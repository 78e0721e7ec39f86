/* The malformed-safetensors corpus (corpus.c) against the strict reader: each case must fail
 * with exactly its status and rule id, name the file (the label in memory, the path on disk)
 * and, where a tensor is at fault, that tensor; valid edge cases must open. Every rule id of
 * safetensors.h and json.h must be hit by some case, so the corpus cannot silently shrink. */
#include "../harness.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corpus.h"
#include "libquant/safetensors.h"

/* Rule ids documented in libquant/safetensors.h and libquant/json.h. JSON_TRAILING is absent:
 * in a header, bytes after the object are ST_HEADER_PAD, checked first (test_json covers it).
 * ST_NOT_OBJECT is reached through a tensor entry; a header that starts with '{' and ends with
 * '}' cannot parse to anything but an object. */
static const char *const all_rules[] = {
    "ST_FILE_SMALL", "ST_HEADER_ZERO", "ST_HEADER_LIMIT", "ST_HEADER_BOUNDS", "ST_HEADER_BRACE",
    "ST_HEADER_PAD", "ST_NOT_OBJECT", "ST_METADATA_TYPE", "ST_ENTRY_KEYS", "ST_DTYPE",
    "ST_SHAPE", "ST_RANK", "ST_NUMEL_OVERFLOW", "ST_SUBBYTE", "ST_OFFSETS", "ST_OFFSET_ORDER",
    "ST_SIZE_MISMATCH", "ST_OFFSET_START", "ST_OFFSET_GAP", "ST_OFFSET_OVERLAP",
    "ST_TRAILING_BYTES", "ST_TRUNCATED", "ST_NAME", "ST_TENSOR_LIMIT", "JSON_UTF8", "JSON_NUL",
    "JSON_SYNTAX", "JSON_DUP_KEY", "JSON_DEPTH", "JSON_INT_RANGE", "JSON_NOT_INTEGER",
    "JSON_LIMIT",
};
#define NRULES (sizeof(all_rules) / sizeof(all_rules[0]))

/* Checks one result against the case; `label` is what err.file must be. */
static void check_case(const corpus_case *k, lq_status st, const lq_st_file *f, const lq_error *err,
                       const char *label, const char *how)
{
    CHECK_MSG(st == k->status, "%s (%s): status %d (%s: %s), want %d", k->name, how, (int)st,
              err->rule, err->msg, (int)k->status);
    if (k->status == LQ_OK) {
        CHECK_MSG(f != NULL, "%s (%s): no file object", k->name, how);
        if (!f)
            return;
        CHECK_EQ_U64(lq_st_count(f), k->ntensors);
        /* The reader's own invariants on a valid file (also asserted by the fuzz target). */
        uint64_t covered = 0;
        for (size_t i = 0; i < lq_st_count(f); i++) {
            const lq_tensor_info *t = lq_st_tensor(f, i);
            CHECK(t->nbytes == t->end - t->begin);
            CHECK(lq_st_find(f, t->name) == t);
            covered += t->nbytes;
        }
        CHECK_EQ_U64(covered, lq_st_file_size(f) - 8 - lq_st_header_len(f));
        return;
    }
    CHECK_MSG(f == NULL, "%s (%s): file object on failure", k->name, how);
    CHECK_MSG(strcmp(err->rule, k->rule) == 0, "%s (%s): rule %s, want %s (%s)", k->name, how,
              err->rule, k->rule, err->msg);
    CHECK_MSG(strcmp(err->file, label) == 0, "%s (%s): file \"%s\", want \"%s\"", k->name, how,
              err->file, label);
    CHECK_MSG(err->msg[0] != '\0', "%s (%s): empty message", k->name, how);
    if (k->tensor) {
        /* lq_error.tensor keeps the first sizeof - 1 bytes of a long name. */
        size_t cap = sizeof(err->tensor) - 1, want = strlen(k->tensor);
        size_t n = want < cap ? want : cap;
        CHECK_MSG(strlen(err->tensor) == n && strncmp(err->tensor, k->tensor, n) == 0,
                  "%s (%s): tensor \"%.40s\", want \"%.40s\"", k->name, how, err->tensor,
                  k->tensor);
    } else {
        CHECK_MSG(err->tensor[0] == '\0', "%s (%s): tensor \"%.40s\", want none", k->name, how,
                  err->tensor);
    }
}

int main(void)
{
    corpus c;
    corpus_build(&c);
    fprintf(stderr, "corpus: %zu cases\n", c.n);
    CHECK(c.n >= 40);

    /* Names are unique (they become file names). */
    for (size_t i = 0; i < c.n; i++)
        for (size_t j = i + 1; j < c.n; j++)
            CHECK_MSG(strcmp(c.cases[i].name, c.cases[j].name) != 0, "duplicate case %s",
                      c.cases[i].name);

    /* In memory. Each image is copied into a block of exactly its size so that ASan sees any
     * read past the end. */
    int hit[NRULES] = {0};
    for (size_t i = 0; i < c.n; i++) {
        const corpus_case *k = &c.cases[i];
        uint8_t *copy = malloc(k->len ? k->len : 1);
        if (k->len)
            memcpy(copy, k->bytes, k->len);
        lq_st_file *f = NULL;
        lq_error err;
        lq_error_clear(&err);
        const lq_st_limits *lim = (k->limits.max_header || k->limits.max_tensors ||
                                   k->limits.max_name || k->limits.max_rank)
                                      ? &k->limits
                                      : NULL;
        lq_status st = lq_st_open_memory(copy, k->len, k->name, lim, &f, &err);
        check_case(k, st, f, &err, k->name, "memory");
        for (size_t r = 0; r < NRULES; r++)
            if (st != LQ_OK && strcmp(err.rule, all_rules[r]) == 0)
                hit[r]++;
        lq_st_close(f);
        free(copy);
    }
    for (size_t r = 0; r < NRULES; r++)
        CHECK_MSG(hit[r] > 0, "no corpus case hits %s", all_rules[r]);

    /* On disk, through mmap: the same outcome, and the error names the path. */
    char dir[] = "/tmp/lqcorpus-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "mkdtemp failed");
    } else {
        CHECK(corpus_write_dir(&c, dir) == (int)c.n);
        for (size_t i = 0; i < c.n; i++) {
            const corpus_case *k = &c.cases[i];
            char path[512];
            snprintf(path, sizeof(path), "%s/%03zu-%s.safetensors", dir, i, k->name);
            lq_st_file *f = NULL;
            lq_error err;
            lq_error_clear(&err);
            lq_status st = lq_st_open(path, &k->limits, &f, &err);
            check_case(k, st, f, &err, path, "file");
            lq_st_close(f);
            CHECK(unlink(path) == 0);
        }
        CHECK(rmdir(dir) == 0);
    }

    corpus_free(&c);
    return th_finish("test_corpus");
}
