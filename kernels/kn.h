/* What every kernel launcher shares: a context made once per device and passed to every launch
 * (the stream, the SM count and the shared-memory limit are never queried per launch), and one
 * error convention.
 *
 * Launchers (kernels/<op>.h) are plain C: `lq_status kn_<op>(const kn_ctx *k, const kn_<op>_args
 * *a, lq_error *err)`. Each checks its arguments (non-NULL device pointers, shapes, alignment)
 * before launching and fails with LQ_ERR_INVALID_ARGUMENT, rule KN_ARG, naming the op and the
 * broken rule; then launches on k->stream and returns kn_launched(): a launch failure carries the
 * CUDA error text. Launchers never synchronize, never allocate and never query the device, so
 * every launch can be captured into a CUDA graph. Values that change between replays of a graph
 * (the step's first position) are read on the device from the pointers the args name. */
#ifndef MIMO_KERNELS_KN_H
#define MIMO_KERNELS_KN_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "libquant/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_ctx {
    int device;
    int sms;           /* multiprocessors */
    size_t smem_optin; /* the most shared memory one block may opt into */
    size_t l2_bytes;
    cudaStream_t stream;
} kn_ctx;

/* Selects `device` on the calling thread and fills k (stream: the one launches go to; 0 is the
 * legacy default stream). A device index outside the machine's -> LQ_ERR_INVALID_ARGUMENT, rule
 * RT_DEVICE, naming how many devices there are. */
lq_status kn_ctx_init(kn_ctx *k, int device, cudaStream_t stream, lq_error *err);

/* A CUDA error as the project's status: out of device memory -> LQ_ERR_NO_MEMORY, rule
 * RT_DEVICE_OOM; anything else -> LQ_ERR_CUDA, rule CUDA; the message is "what: <CUDA's text>". */
lq_status kn_cuda_fail(cudaError_t e, const char *what, lq_error *err);
/* cudaGetLastError after a launch: LQ_OK or kn_cuda_fail(e, what). */
lq_status kn_launched(const char *what, lq_error *err);
/* An argument check failed: LQ_ERR_INVALID_ARGUMENT, rule KN_ARG, "op: message". */
lq_status kn_arg_fail(lq_error *err, const char *op, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The number of blocks a grid-stride kernel of `work` items of `per_block` each should use: enough
 * to fill the machine `waves` times over, never more than the work needs. */
unsigned kn_grid(const kn_ctx *k, uint64_t work, unsigned per_block, unsigned waves);

#define KN_ALIGNED(p, a) ((((uintptr_t)(p)) % (a)) == 0)

#ifdef __cplusplus
}
#endif
#endif
