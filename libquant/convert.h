/* Running a conversion plan: parts, resume, and the final assembly of OUT.
 *
 * A conversion is split into N parts (N = 1 for a single machine). Part i writes the output
 * shards assigned to it (a contiguous range) into its own work directory, one shard at a time:
 * each tensor is read from the source mmap, MXFP4 tensors are decoded to f32 and quantized in
 * bounded row chunks by a pool of threads, and every shard is streamed through the safetensors
 * writer (SHA-256 while writing, atomic publish). After each completed shard the part's state
 * file (`.mimo-state.json`) is rewritten atomically: it holds the plan, a fingerprint of the
 * inputs and options, each finished shard's size and SHA-256 and the error accumulators of its
 * MXFP4 tensors, and the SHA-256 of the source files this part hashed. So a killed part resumes
 * from its completed shards, and refuses to when the fingerprint differs.
 *
 * lq_finalize assembles OUT from the parts' work directories (one for a single run): it checks
 * that they come from the same plan and together cover every shard exactly once, then writes the
 * index, the error report (`mimo-quant-report.json`) and the manifest (`mimo-manifest.json`,
 * optionally signed), and renames the assembled directory onto OUT. Nothing in OUT depends on
 * the number of threads or parts, so a merged result is byte-identical to a single run.
 *
 * Peak memory: the source is mapped, not read into memory; besides that a part holds one chunk of
 * f32 rows (at most LQ_CONVERT_CHUNK_ELEMS values, plus their MXFP4 codes), the E8M0 scales of
 * the tensor being quantized (numel / 32 bytes), per-row error accumulators, an 8 MiB copy
 * buffer per thread for hashing, and, while a shard of 64 MiB or more is written, three 8 MiB
 * staging buffers of its direct writes (outfile.h). */
#ifndef LIBQUANT_CONVERT_H
#define LIBQUANT_CONVERT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "metrics.h"
#include "plan.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LQ_CONVERT_CHUNK_ELEMS ((uint64_t)8 << 20) /* f32 values per quantization chunk (32 MiB) */
#define LQ_STATE_FILE ".mimo-state.json"
#define LQ_REPORT_FILE "mimo-quant-report.json"
#define LQ_MANIFEST_FILE "mimo-manifest.json"
/* The most bytes a reader accepts in the converter's own JSON outputs (manifest, report, plan and
 * shard records): they grow by about 210 bytes per output tensor, 68 MB for the real model's
 * 159,581 tensors (319k output tensors), beyond the JSON reader's 64 MiB default. */
#define LQ_OUTPUT_JSON_MAX_BYTES ((size_t)512 << 20)
#define LQ_SIGNATURE_FILE "mimo-manifest.json.sig"

/* One finished tensor, reported to the progress callback. */
typedef struct lq_tensor_event {
    const lq_plan_tensor *t;
    uint64_t in_bytes;        /* source bytes read for it */
    uint64_t out_bytes;       /* bytes written (for MXFP4: packed weight + scales) */
    int quantized;
    lq_metrics m;             /* quantized tensors only */
    uint64_t done_bytes;      /* source bytes of this part done so far (resumed shards included) */
    uint64_t total_bytes;     /* source bytes of this part */
    size_t done_tensors, total_tensors;
} lq_tensor_event;

typedef void (*lq_progress_fn)(void *user, const lq_tensor_event *ev);

/* A file copied from the source directory into OUT by part 1 (tokenizer, generation config...). */
typedef struct lq_extra_file {
    const char *src_path;
    const char *out_name;     /* relative to OUT, may contain one directory level ("dflash/x") */
} lq_extra_file;

typedef struct lq_run_opts {
    int threads;              /* >= 1 */
    uint32_t part, nparts;    /* part is 1-based; 1/1 for a single run */
    int resume;               /* continue a work directory with the same fingerprint */
    volatile sig_atomic_t *cancel; /* checked between chunks; non-zero stops with LQ_ERR_CANCELLED */
    lq_progress_fn progress;
    void *user;
    const lq_extra_file *extras;   /* written by part 1 */
    size_t nextras;
    const lq_ckpt *drafter;        /* DFlash drafter, re-written by part 1 into dflash/ (may be NULL) */
    const char *drafter_file;      /* its weights file name in OUT/dflash ("dflash_draft_model.safetensors") */
    const char *options_json;      /* canonical options, recorded in the manifest and fingerprint */
    const char *source_fingerprint_extra; /* e.g. the drafter's fingerprint; may be NULL */
    const char *out;               /* a single run's OUT, or NULL: with resume, a publication that a
                                    * kill interrupted is finished (lq_publish_resume) and *published
                                    * set to 1, with nothing else done */
    int *published;
} lq_run_opts;

/* The output shards part (1-based) of nparts writes: the contiguous range [*first, *last) of
 * 0..nshards (empty when there are more parts than shards). Source files are split the same way
 * for hashing (nshards = the number of source files). */
void lq_part_range(uint32_t n, uint32_t part, uint32_t nparts, uint32_t *first, uint32_t *last);

/* The work directory of a run whose output is `out` ("<out>.mimo-partial"). */
void lq_work_dir_name(const char *out, char *buf, size_t cap);

/* Runs one part into work_dir (created if missing). Errors: RUN_EXISTS (a work directory from
 * an earlier run without --resume), RUN_MISMATCH (resume with other inputs or options),
 * RUN_SHARD_DAMAGED (a completed shard no longer matches its recorded size or SHA-256),
 * QUANT_NONFINITE (NaN/inf in a weight to quantize, with row and column), the value rules of
 * values.h for every source tensor before it is used (VAL_NONFINITE, VAL_RANGE above
 * LQ_VALUES_MAX_ABS, VAL_FP8_NAN, VAL_SCALE_INV, VAL_E8M0 for an already-MXFP4 source whose scale
 * is 0xFF or decodes beyond the float range), and the writer's and reader's rules. */
lq_status lq_run_part(const lq_ckpt *src, const lq_plan *plan, const char *work_dir,
                      const lq_run_opts *o, lq_error *err);

typedef struct lq_gate {
    double min_sqnr_db;       /* NAN = off */
    double min_cosine;        /* NAN = off */
    double max_clip;          /* fraction; NAN = off */
} lq_gate;

typedef struct lq_finalize_opts {
    const char *sign_key;     /* Ed25519 PEM private key, or NULL */
    lq_gate gate;
    /* Failing tensors are reported here (name, metric, value) for the tool to print. */
    void (*gate_fail)(void *user, const char *tensor, const char *metric, double value, double limit);
    void *user;
} lq_finalize_opts;

/* Assembles OUT from the work directories of all parts (in any order). With one work directory
 * that is OUT's own ("<out>.mimo-partial"), it is finalized in place and renamed. Merge errors:
 * MERGE_PLAN (parts of different plans), MERGE_PARTS (missing or duplicate parts), MERGE_SHARDS
 * (a shard missing or done twice). A failed gate returns LQ_ERR_CHECK_FAILED after writing the
 * report next to OUT as "<out>.report.json"; OUT is then not created. */
lq_status lq_finalize(const char *out, const char *const *work_dirs, size_t nwork,
                      const lq_finalize_opts *o, lq_error *err);

/* The publish record of OUT ("<out>.mimo-publish.json"): lq_finalize writes it, synced, before it
 * drops the run's bookkeeping and renames the assembly directory to OUT, and removes it after. */
void lq_publish_record_name(const char *out, char *buf, size_t cap);
int lq_publish_record_exists(const char *out);

/* Finishes a publication that a killed lq_finalize left: with a record for OUT whose fingerprint
 * is fp, renames the directory it names to OUT after checking the manifest is the recorded one
 * and every file it lists is there at its size, or, when the rename already happened (OUT's
 * manifest is the recorded one), only removes the record. LQ_ERR_NOT_FOUND when OUT has no
 * record, or a stale one (neither OUT nor the directory exists: it is removed). Errors:
 * RUN_MISMATCH (another plan's record), RUN_STATE (a malformed record, a damaged directory),
 * OUT_EXISTS (OUT is not the recorded output), OUT_PUBLISH (I/O). */
lq_status lq_publish_resume(const char *out, const char *fp, lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
