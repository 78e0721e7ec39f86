/* Sampling for the CPU runtime: a seeded generator, the target distribution of one logits row
 * under temperature / top-k / top-p, and speculative acceptance of deterministic (argmax)
 * proposals, the rule DFlash uses (reference/dflash.md 3.4, 3.6).
 *
 * The distribution is computed in double: softmax(logits / T) over the vocabulary, then top-k
 * keeps the k most probable tokens (ties: lower id first), then top-p keeps the smallest prefix
 * of those, most probable first, whose mass reaches top_p (at least one token), then renormalises
 * (the order transformers applies its logits warpers in). T == 0 is greedy: all mass on the
 * argmax (lowest id on ties). NaN logits get no mass; a row without a number or with +inf logits
 * puts all mass on rt_argmax. */
#ifndef MIMO_RUNTIME_SAMPLE_H
#define MIMO_RUNTIME_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_sampling {
    double temperature; /* 0 = greedy */
    uint32_t top_k;     /* 0 = off */
    double top_p;       /* 1 = off; (0, 1] */
    uint64_t seed;
} rt_sampling;

/* xoshiro256** seeded through splitmix64. */
typedef struct rt_rng {
    uint64_t s[4];
} rt_rng;
void rt_rng_seed(rt_rng *r, uint64_t seed);
uint64_t rt_rng_next(rt_rng *r);
double rt_rng_uniform(rt_rng *r); /* [0, 1), 53 bits */

/* The id of the largest logit: ties go to the lowest id, a NaN never wins over a number (all NaN:
 * id 0). */
int32_t rt_argmax(const float *logits, uint32_t V);

/* probs[V] = the distribution above; idx[V] is scratch. Returns the number of tokens with
 * non-zero mass. */
uint32_t rt_dist(const float *logits, uint32_t V, const rt_sampling *s, double *probs, uint32_t *idx);

/* The token whose cumulative mass first exceeds u * total (inverse CDF over ids in order). */
int32_t rt_pick(const double *probs, uint32_t V, double u);

/* Samples one token from a logits row (one uniform draw; argmax when greedy). */
int32_t rt_sample(const float *logits, uint32_t V, const rt_sampling *s, rt_rng *r, double *probs, uint32_t *idx);

/* Speculative acceptance of k deterministic proposals drafts[0..k) against the target rows
 * logits[0..k] ([k + 1, V]; row i is the target's distribution for the position drafts[i] is
 * proposed at). Greedy: a = the length of the longest prefix with drafts[i] == argmax(row i), and
 * the bonus is argmax(row a). Sampling: draft i is accepted with probability P_i(drafts[i]); at the
 * first rejection the bonus is drawn from P_i with drafts[i] removed and renormalised; when all k
 * are accepted the bonus is drawn from P_k. Every emitted token is then distributed exactly as
 * sampling the target one token at a time. Returns a; *bonus set. probs / idx: scratch of V. */
uint32_t rt_accept(const float *logits, uint32_t V, const int32_t *drafts, uint32_t k, const rt_sampling *s, rt_rng *r,
                   int32_t *bonus, double *probs, uint32_t *idx);

#endif
