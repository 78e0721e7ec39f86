/* The malformed-safetensors corpus: every case is built in code from a small valid file or a
 * hand-written header, with the status, rule id and tensor name the strict reader must report
 * (libquant/safetensors.h, libquant/json.h). Valid edge cases are included too. The same cases
 * seed the fuzz target (tests/fuzz) through corpus_write_dir. */
#ifndef MIMO_TESTS_IO_CORPUS_H
#define MIMO_TESTS_IO_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "libquant/safetensors.h"

typedef struct corpus_case {
    char name[48];          /* file-name safe, unique */
    lq_status status;       /* LQ_OK for valid cases */
    const char *rule;       /* expected lq_error.rule; NULL for valid cases */
    char *tensor;           /* expected lq_error.tensor; NULL: must be empty */
    size_t ntensors;        /* valid cases: tensors in the file */
    lq_st_limits limits;    /* zero: defaults */
    uint8_t *bytes;
    size_t len;
} corpus_case;

typedef struct corpus {
    corpus_case *cases;
    size_t n, cap;
} corpus;

/* Builds every case. Aborts on allocation failure. */
void corpus_build(corpus *c);
void corpus_free(corpus *c);

/* Writes case i as dir/NNN-name.safetensors for every case. Returns the number written, or -1
 * on the first write error. */
int corpus_write_dir(const corpus *c, const char *dir);

#endif
