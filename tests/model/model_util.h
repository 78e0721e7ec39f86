/* Helpers shared by the tests/model programs: scratch directories, running mimo-mkfixture,
 * copying a directory, JSON files, and rewriting a safetensors file with one change. */
#ifndef MIMO_TESTS_MODEL_UTIL_H
#define MIMO_TESTS_MODEL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "libquant/libquant.h"

/* mkdtemp under $TMPDIR (or /tmp); the path is written to out. Returns 0 on success. */
int mu_mkdtemp(char *out, size_t cap);
/* Removes a tree (files and directories, no symlinks followed). Accepts a missing path. */
void mu_rmtree(const char *path);
/* Runs MKFIXTURE --preset tiny --variant VARIANT --out DIR -q (no shell). Returns its exit
 * status, or -1 if it could not run. */
int mu_mkfixture(const char *mkfixture, const char *variant, const char *dir, int drafter);
/* Copies the regular files of src (one level) into the new directory dst. 0 on success. */
int mu_copy_dir(const char *src, const char *dst);
/* Parses a JSON file with the strict parser (NULL on failure). */
cJSON *mu_read_json(const char *path);
/* Writes root as text to path (does not take ownership). 0 on success. */
int mu_write_json(const char *path, const cJSON *root);
/* Writes raw bytes. 0 on success. */
int mu_write_file(const char *path, const void *data, size_t len);

/* One change to a safetensors file: tensors named `drop` are left out; the tensor named
 * `change` gets dtype/rank/shape (zero-filled data); `add` is appended with add_dtype/rank/
 * shape (zeros). Any field may be NULL/unused. */
typedef struct mu_edit {
    const char *drop;
    const char *change;
    lq_dtype change_dtype;
    uint32_t change_rank;
    uint64_t change_shape[2];
    const char *add;
    lq_dtype add_dtype;
    uint32_t add_rank;
    uint64_t add_shape[2];
} mu_edit;

/* Writes dst_dir/file_name from src_path with the edit applied, and rewrites
 * dst_dir/model.safetensors.index.json to match when with_index. 0 on success. */
int mu_rewrite_st(const char *src_path, const char *dst_dir, const char *file_name,
                  const mu_edit *e, int with_index);

#endif
