/* Shared by the GPU tests: the device check and CUDA error handling.
 *
 * gt_device() returns 1 when a CUDA device is present. Where there is none the test exits 77
 * (skipped) unless MIMO_REQUIRE_GPU=1 is set (the GPU host's script sets it), where it fails:
 * on the GPU host a missing device is an error, never a skip. */
#ifndef MIMO_TESTS_GPU_TEST_H
#define MIMO_TESTS_GPU_TEST_H

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>

#define CK(x)                                                                                  \
    do {                                                                                       \
        cudaError_t e_ = (x);                                                                  \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

static inline void gt_device(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) == cudaSuccess && n > 0)
        return;
    const char *req = getenv("MIMO_REQUIRE_GPU");
    if (req && req[0] == '1') {
        fprintf(stderr, "MIMO_REQUIRE_GPU=1 but no CUDA device is usable\n");
        exit(1);
    }
    printf("skipped: no CUDA device\n");
    exit(77);
}

/* xorshift64 for test data; gt_uniform in [-1, 1). */
static inline uint64_t gt_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static inline float gt_uniform(uint64_t *s) { return (float)((double)(gt_next(s) >> 11) / 4503599627370496.0) - 1.0f; }

/* Relative L2 distance ||a - b|| / ||b|| in double (b the reference). */
static inline double gt_rel_l2(const float *a, const float *b, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double x = (double)a[i] - (double)b[i];
        d += x * x;
        r += (double)b[i] * (double)b[i];
    }
    return r > 0 ? sqrt(d / r) : sqrt(d);
}

#endif
