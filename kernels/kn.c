/* The launchers' shared context and error convention (kn.h). */
#include "kn.h"

#include <stdarg.h>
#include <stdio.h>

lq_status kn_ctx_init(kn_ctx *k, int device, cudaStream_t stream, lq_error *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || (e == cudaSuccess && n == 0))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_DEVICE", "cuda:%d: this machine has no CUDA device (%s)",
                       device, e == cudaSuccess ? "none found" : cudaGetErrorString(e));
    if (e != cudaSuccess)
        return kn_cuda_fail(e, "cudaGetDeviceCount", err);
    if (device < 0 || device >= n)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_DEVICE", "cuda:%d: this machine has %d CUDA device%s (cuda:0..%d)",
                       device, n, n == 1 ? "" : "s", n - 1);
    if ((e = cudaSetDevice(device)) != cudaSuccess)
        return kn_cuda_fail(e, "cudaSetDevice", err);
    int sms = 0, optin = 0, l2 = 0;
    if ((e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device)) != cudaSuccess)
        return kn_cuda_fail(e, "cudaDeviceGetAttribute", err);
    k->device = device, k->sms = sms, k->smem_optin = (size_t)optin, k->l2_bytes = (size_t)l2, k->stream = stream;
    return LQ_OK;
}

lq_status kn_cuda_fail(cudaError_t e, const char *what, lq_error *err)
{
    if (e == cudaErrorMemoryAllocation)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, "RT_DEVICE_OOM", "%s: %s", what, cudaGetErrorString(e));
    return lq_fail(err, LQ_ERR_CUDA, NULL, NULL, "CUDA", "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

lq_status kn_launched(const char *what, lq_error *err)
{
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? LQ_OK : kn_cuda_fail(e, what, err);
}

lq_status kn_arg_fail(lq_error *err, const char *op, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "KN_ARG", "%s: %s", op, msg);
}

unsigned kn_grid(const kn_ctx *k, uint64_t work, unsigned per_block, unsigned waves)
{
    uint64_t want = per_block ? (work + per_block - 1) / per_block : 1, cap = (uint64_t)(k->sms > 0 ? k->sms : 1) * waves;
    if (want < 1)
        want = 1;
    return (unsigned)(want < cap ? want : cap);
}
