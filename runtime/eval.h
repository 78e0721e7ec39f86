/* Held-out evaluation on the CPU runtime (docs/cli.md, mimo-eval): a text set read and tokenized,
 * cut into perplexity windows and sampled for prompts by fixed rules; teacher-forced negative
 * log-likelihood of a window under one model, or under two compared position by position; greedy
 * generation with DFlash acceptance statistics per draft position and decode rates.
 *
 * Every figure is a pure function of the inputs and the documented rules (the runtime's results
 * do not depend on the thread count), except the wall times. */
#ifndef MIMO_RUNTIME_EVAL_H
#define MIMO_RUNTIME_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "libquant/libquant.h"
#include "runtime/dflash.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

/* ---- a text set ---- */

/* Reads a list file: one path per line; leading and trailing blanks (space, tab, CR) are
 * trimmed, and empty lines and lines whose first non-blank character is '#' are skipped. With
 * root (not NULL, not empty) every path becomes root (its trailing slashes dropped) + path, with
 * a '/' between them when the path does not start with one (so root "/mnt/copy" or "/mnt/copy/"
 * and "/usr/lib/a.py" give "/mnt/copy/usr/lib/a.py"; "a.py" gives "/mnt/copy/a.py").
 * *paths: malloc'd array of malloc'd strings (rt_eval_list_free). A list without any path is not
 * an error here (*n = 0). Errors name the list: EVAL_LIST (unreadable), EVAL_LIST_LINE (a NUL
 * byte in a line). */
lq_status rt_eval_list_read(const char *list, const char *root, char ***paths, size_t *n, lq_error *err);
void rt_eval_list_free(char **paths, size_t n); /* accepts NULL */

/* Documents: every file's bytes encoded with the tokenizer, each preceded by sep (when sep >= 0),
 * concatenated. Document i is ids[off[i] .. off[i + 1]); its length counts the separator. */
typedef struct rt_eval_docs {
    size_t n;
    int32_t *ids;
    size_t *off; /* [n + 1] */
} rt_eval_docs;

/* Reads and encodes paths[0..n) in order (text as UTF-8 bytes, rt_tokenizer_encode). Errors
 * name the file: EVAL_READ (cannot open or read), EVAL_EMPTY_DOC (the file encodes to no token),
 * TOK_INPUT_UTF8 (not strict UTF-8, with the byte offset); on error *out owns nothing. */
lq_status rt_eval_docs_load(const rt_tokenizer *t, char *const *paths, size_t n, int32_t sep, rt_eval_docs *out,
                            lq_error *err);
void rt_eval_docs_free(rt_eval_docs *d); /* accepts NULL and a zeroed struct */

/* A piece of document doc: its tokens start .. start + len - 1. */
typedef struct rt_eval_span {
    size_t doc, start, len;
} rt_eval_span;

/* Perplexity windows: every document (lengths len[0..ndocs)) is cut from its start into
 * non-overlapping windows of ctx tokens (ctx >= 2); a document's last, shorter piece is a window
 * when it holds at least 2 tokens. A window scores len - 1 tokens. Windows are taken round by
 * round, so that a budget spreads over the documents: first window 0 of every document in list
 * order, then window 1 of every document that has one, and so on, until max_scored tokens are
 * scored (SIZE_MAX: every window); the window that reaches max_scored is
 * cut short so that exactly max_scored are scored (when the set holds that many).
 * *w malloc'd (NULL when *nw is 0); *scored = the tokens the windows score. */
lq_status rt_eval_windows(const size_t *len, size_t ndocs, size_t ctx, size_t max_scored, rt_eval_span **w, size_t *nw,
                          size_t *scored, lq_error *err);

/* Prompts: prompt i (0 <= i < count) comes from document floor(i * ndocs / count), or when that
 * document holds fewer than plen + 1 tokens the next one that holds enough (after the last
 * document comes the first). Its start is floor(u * (len - plen + 1)), u = rt_rng_uniform of an
 * rt_rng seeded with seed, one draw per prompt in prompt order, so start is in [0, len - plen].
 * out[count] receives {doc, start, plen}. Error EVAL_PROMPT_FIT (LQ_ERR_INVALID_ARGUMENT) when
 * no document holds plen + 1 tokens. */
lq_status rt_eval_prompts(const size_t *len, size_t ndocs, size_t count, size_t plen, uint64_t seed, rt_eval_span *out,
                          lq_error *err);

/* ---- teacher-forced scoring ---- */

typedef struct rt_eval_nll_result {
    size_t scored;  /* n - 1: tokens ids[1..n) */
    double nll[2];  /* sum over t = 1..n-1 of -log p(ids[t] | ids[0..t)) in nats: [0] m, [1] other */
    size_t agree;   /* with other: positions t = 0..n-2 whose argmaxes agree (ties: the lowest id) */
} rt_eval_nll_result;

/* Scores the window ids[0..n) (n >= 2) under m and, when other is not NULL, under other as well,
 * each from a fresh KV cache at positions 0..n-1, RT_STEP_CHUNK positions per step. The logits
 * of positions 0..n-2 are log-softmaxed in double (max-subtracted log-sum-exp). Errors:
 * EVAL_WINDOW (n < 2), EVAL_VOCAB (other's vocabulary differs), EVAL_NONFINITE (a non-finite
 * log-likelihood, naming the model and position), and the runtime's (RT_TOKEN, ...). */
lq_status rt_eval_nll(const rt_model *m, const rt_model *other, const int32_t *ids, size_t n, const rt_opts *o,
                      rt_eval_nll_result *out, lq_error *err);

/* ---- generation and acceptance ---- */

/* Sums over greedy generations (rt_eval_generate). tau = committed / steps: tokens committed by
 * the verify steps (every generated token but the first, which comes from the prefill's logits)
 * per step, the bonus token included, so 1 <= tau <= block. */
typedef struct rt_eval_accept {
    uint32_t block;                 /* 1 for plain decoding */
    size_t runs, steps, generated, committed;
    size_t hist[RT_MAX_BLOCK + 1];  /* hist[i]: steps that committed i tokens, i = 1..block */
    double prefill_s, decode_s, draft_s, verify_s;
} rt_eval_accept;

/* Greedy generation of exactly gen_tokens tokens after prompt[0..n) (no stop ids; rt_generate):
 * plain decoding when d is NULL, else DFlash with block B (0: the drafter's block_size; the last
 * step is clipped to the budget, as rt_generate does). out: NULL or [gen_tokens]. stats: NULL or
 * the run's rt_gen_stats. acc: NULL, or the run is added to it (acc->block 0 takes B; another B
 * than acc->block is EVAL_BLOCK). */
lq_status rt_eval_generate(const rt_model *m, const rt_drafter *d, const int32_t *prompt, size_t n, size_t gen_tokens,
                           uint32_t block, const rt_opts *o, int32_t *out, rt_gen_stats *stats, rt_eval_accept *acc,
                           lq_error *err);

/* tau of acc (0 without steps). */
double rt_eval_tau(const rt_eval_accept *acc);
/* Decode rate: acc->committed / acc->decode_s, the tokens made after the prefill per second of
 * decoding (0 without decode time). */
double rt_eval_decode_rate(const rt_eval_accept *acc);

/* Per-position acceptance from hist[1..block] (block 2..RT_MAX_BLOCK), for draft positions
 * k = 1..block-1: rate[k-1] = the fraction of steps in which draft k was accepted (the step
 * committed at least k + 1 tokens); cond[k-1] = P(k accepted | k - 1 accepted) = steps committing
 * >= k + 1 over steps committing >= k (cond[0] = rate[0]). NaN where the denominator is 0. */
void rt_eval_accept_rates(const size_t *hist, uint32_t block, double *rate, double *cond);

#endif
