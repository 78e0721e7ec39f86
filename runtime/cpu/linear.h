/* Linear layers read straight from their stored format (weights.h's rt_linear): y = x W^T with W
 * in F32, BF16, F16, block FP8 (with its weight_scale_inv grid, per-shard for fused qkv) or MXFP4
 * (codes + E8M0 scales), decoded RT_ROWS rows at a time into a per-thread buffer; there is never a
 * dequantized copy of a whole weight. Part of the CPU backend, the oracle the CUDA backend is held to.
 *
 * Numerics: each output is one fp32 dot product summed in a fixed order (column order, 8
 * interleaved partial sums combined in a fixed tree), computed by exactly one thread, so results
 * do not depend on the thread count or on how many rows share the call. Threads come from the
 * process pool (libquant/pool.h); the per-thread decode buffer is allocated on a thread's first
 * call and kept, so a warm call allocates nothing. */
#ifndef MIMO_RUNTIME_CPU_LINEAR_H
#define MIMO_RUNTIME_CPU_LINEAR_H

#include <stddef.h>
#include <stdint.h>

#include "libquant/libquant.h"
#include "runtime/weights.h"

/* Decodes rows [r0, r1) into out ((r1 - r0) * cols floats). */
lq_status rt_linear_rows(const rt_linear *l, uint64_t r0, uint64_t r1, float *out);

/* y[t][r] = sum_c x[t][c] * W[r][c] for t < n tokens and rows [r0, r1) of W, written to
 * y[t * ldy + (r - r0)]. threads >= 1. */
lq_status rt_linear_forward(const rt_linear *l, const float *x, size_t n, uint64_t r0, uint64_t r1, float *y,
                            size_t ldy, int threads);

/* How many parts a loop of `work` multiply-adds is split into: one per thread (at most 64) while
 * each part keeps at least 2^16 of them (handing a smaller part to another thread costs more than
 * it saves). Parts decide who computes a result, never how. */
size_t rt_parts(uint64_t work, int threads);

/* A per-thread float buffer of at least n floats, kept for the thread's life (freed at its exit):
 * slot 0 for rt_linear_forward, slot 1 for attention scores. NULL when out of memory. */
float *rt_thread_buf(int slot, size_t n);

#endif
