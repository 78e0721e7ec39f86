/* SwiGLU activation (act.h): elementwise and memory-bound; blockIdx.y walks rows and the x
 * threads of a row read and write consecutive values (coalesced). No restrict on a, b and out:
 * out may be a or b (each value is read before it is overwritten by the same thread). */
#include "act.h"

#include "kn_dev.cuh"

#define ACT_THREADS 256
#define MAX_GRID_Y 65535u

template <int BF16>
__global__ void __launch_bounds__(ACT_THREADS) swiglu_act_kernel(const float *a, const float *b, void *out, uint32_t n,
                                                                uint64_t I, uint64_t lda, uint64_t ldb, uint64_t ldo)
{
    for (uint64_t t = blockIdx.y; t < n; t += gridDim.y)
        for (uint64_t i = (uint64_t)blockIdx.x * ACT_THREADS + threadIdx.x; i < I; i += (uint64_t)gridDim.x * ACT_THREADS) {
            float x = a[t * lda + i], u = b[t * ldb + i];
            float y = __fmul_rn(x / (1.0f + expf(-x)), u); /* rt_silu(x) * u */
            if (BF16)
                static_cast<uint16_t *>(out)[t * ldo + i] = kn_bf16_bits(y);
            else
                static_cast<float *>(out)[t * ldo + i] = y;
        }
}

extern "C" lq_status kn_swiglu_act(const kn_ctx *k, const kn_swiglu_act_args *a, lq_error *err)
{
    static const char op[] = "swiglu_act";
    if (!k || !a)
        return kn_arg_fail(err, op, "NULL context or arguments");
    if (!a->a || !a->b || !a->out)
        return kn_arg_fail(err, op, "NULL a, b or out");
    if (a->I == 0 || a->lda < a->I || a->ldb < a->I || a->ldo < a->I)
        return kn_arg_fail(err, op, "I %llu (need >= 1) with strides lda %llu, ldb %llu, ldo %llu (need >= I)",
                           (unsigned long long)a->I, (unsigned long long)a->lda, (unsigned long long)a->ldb,
                           (unsigned long long)a->ldo);
    if (a->out_bf16 != 0 && a->out_bf16 != 1)
        return kn_arg_fail(err, op, "out_bf16 %d is not 0 or 1", a->out_bf16);
    if (!KN_ALIGNED(a->out, a->out_bf16 ? 2 : 4))
        return kn_arg_fail(err, op, "out not aligned to its element size");
    if (a->n == 0)
        return LQ_OK;
    unsigned per_row = kn_grid(k, a->I, ACT_THREADS, 4);
    unsigned share = (unsigned)((uint64_t)(k->sms > 0 ? k->sms : 1) * 4 / a->n);
    dim3 grid(per_row < share ? per_row : (share ? share : 1), a->n < MAX_GRID_Y ? a->n : MAX_GRID_Y);
    if (a->out_bf16)
        swiglu_act_kernel<1><<<grid, ACT_THREADS, 0, k->stream>>>(a->a, a->b, a->out, a->n, a->I, a->lda, a->ldb, a->ldo);
    else
        swiglu_act_kernel<0><<<grid, ACT_THREADS, 0, k->stream>>>(a->a, a->b, a->out, a->n, a->I, a->lda, a->ldb, a->ldo);
    return kn_launched(op, err);
}
