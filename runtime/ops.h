/* Small building blocks shared by the target (model.c) and the DFlash drafter (dflash.c). */
#ifndef MIMO_RUNTIME_OPS_H
#define MIMO_RUNTIME_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/linear.h"

/* y = w * x / sqrt(mean(x^2) + eps), the mean taken in double. */
void rt_rmsnorm(const float *x, const float *w, uint64_t n, double eps, float *y);
/* Rotate-half (NeoX) RoPE on the first rd dims of one head at position pos: element i pairs with
 * i + rd/2, frequency theta^(-2i/rd), in f32 as transformers computes it. */
void rt_rope(float *x, uint32_t rd, double theta, uint64_t pos);
float rt_silu(float x);
/* out[n, d.rows] = d(silu(g x) * (u x)), the SwiGLU MLP. */
lq_status rt_swiglu(const rt_linear *g, const rt_linear *u, const rt_linear *d, const float *x, size_t n, int threads,
                    float *out);

#endif
