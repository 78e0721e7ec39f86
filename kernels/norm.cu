/* RMSNorm (norm.h). Memory-bound and small (a few rows of a few thousand values): one block per
 * row reads its row twice (the second pass from L1/L2) and writes it once or twice. Each thread
 * keeps the sum of squares of elements tid, tid + 256, ... in double; the 256 partial sums are
 * combined by a fixed butterfly within each warp and then warp 0..7 in index order, so the
 * result depends on dim alone. */
#include "norm.h"

#include "kn_dev.cuh"

#define NORM_THREADS 256

__global__ void __launch_bounds__(NORM_THREADS) rmsnorm_kernel(float *h, const float *__restrict__ add,
                                                              const float *__restrict__ w, float *y32, uint16_t *y16,
                                                              uint32_t dim, uint64_t ldh, uint64_t ld_add, uint64_t ldy,
                                                              double eps)
{
    __shared__ double part[NORM_THREADS / 32];
    __shared__ float rs;
    const uint64_t t = blockIdx.x;
    float *x = h + t * ldh;
    double ss = 0;
    if (add) {
        const float *ad = add + t * ld_add;
        for (uint32_t i = threadIdx.x; i < dim; i += NORM_THREADS) {
            float v = __fadd_rn(x[i], ad[i]);
            x[i] = v;
            ss += (double)v * (double)v;
        }
    } else {
        for (uint32_t i = threadIdx.x; i < dim; i += NORM_THREADS) {
            float v = x[i];
            ss += (double)v * (double)v;
        }
    }
    ss = kn_warp_sum_d(ss);
    if ((threadIdx.x & 31) == 0)
        part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0;
        for (int i = 0; i < NORM_THREADS / 32; i++)
            s += part[i];
        rs = (float)(1.0 / sqrt(s / (double)dim + eps));
    }
    __syncthreads();
    const float r = rs;
    /* Each thread reads back only the elements it wrote above, so y32 may be h. */
    for (uint32_t i = threadIdx.x; i < dim; i += NORM_THREADS) {
        float v = __fmul_rn(w[i], __fmul_rn(x[i], r));
        if (y32)
            y32[t * ldy + i] = v;
        if (y16)
            y16[t * ldy + i] = kn_bf16_bits(v);
    }
}

extern "C" lq_status kn_rmsnorm(const kn_ctx *k, const kn_rmsnorm_args *a, lq_error *err)
{
    static const char op[] = "rmsnorm";
    if (!k || !a)
        return kn_arg_fail(err, op, "NULL context or arguments");
    if (!a->h || !a->w)
        return kn_arg_fail(err, op, "NULL h or w");
    if (!a->y_f32 && !a->y_bf16)
        return kn_arg_fail(err, op, "no output (y_f32 and y_bf16 are both NULL)");
    if (a->dim == 0 || a->dim > (1u << 20))
        return kn_arg_fail(err, op, "dim %u outside 1..%u", a->dim, 1u << 20);
    if (a->ldh < a->dim || a->ldy < a->dim || (a->add && a->ld_add < a->dim))
        return kn_arg_fail(err, op, "a row stride (ldh %llu, ld_add %llu, ldy %llu) is below dim %u",
                           (unsigned long long)a->ldh, (unsigned long long)a->ld_add, (unsigned long long)a->ldy, a->dim);
    if (a->y_f32 && a->y_f32 == a->h && a->ldy != a->ldh)
        return kn_arg_fail(err, op, "in-place y_f32 with ldy %llu != ldh %llu", (unsigned long long)a->ldy,
                           (unsigned long long)a->ldh);
    if (!(a->eps >= 0))
        return kn_arg_fail(err, op, "eps %g is not >= 0", a->eps);
    if (a->n > 0x7FFFFFFFu)
        return kn_arg_fail(err, op, "n %u above the grid limit", a->n);
    if (a->n == 0)
        return LQ_OK;
    rmsnorm_kernel<<<a->n, NORM_THREADS, 0, k->stream>>>(a->h, a->add, a->w, a->y_f32, a->y_bf16, a->dim, a->ldh,
                                                         a->ld_add, a->ldy, a->eps);
    return kn_launched(op, err);
}
