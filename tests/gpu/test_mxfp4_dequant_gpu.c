/* GPU MXFP4 decode against the CPU codec: bit-identical f32 output, and bf16 output equal to the
 * CPU value rounded with lq_f32_to_bf16 (the CPU decode is the oracle; it is itself checked
 * against ml_dtypes by the interop suite). Edge cases: every code with every scale byte 0..254,
 * and random blocks. With `--bench` it also prints decode bandwidth next to a device-to-device
 * copy measured in the same process. Exits 77 (skipped) when no CUDA device is present. */
#include <cuda_runtime_api.h>

#include "../harness.h"
#include "gpu_test.h"
#include "kernels/mxfp4_dequant.h"
#include "libquant/libquant.h"


static uint64_t rng = 0x1234567887654321ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void run_case(size_t n, const uint8_t *packed, const uint8_t *scales)
{
    float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    uint16_t *got16 = malloc(n * 2);
    CHECK(lq_mxfp4_dequantize(packed, scales, n, ref, NULL) == LQ_OK);
    uint8_t *dp, *ds;
    void *dout;
    CK(cudaMalloc((void **)&dp, n / 2));
    CK(cudaMalloc((void **)&ds, n / 32));
    CK(cudaMalloc(&dout, n * sizeof(float)));
    CK(cudaMemcpy(dp, packed, n / 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(ds, scales, n / 32, cudaMemcpyHostToDevice));
    kn_mxfp4_dequant_args a = {dp, ds, dout, n, 0};
    CHECK(kn_mxfp4_dequant(&a, 0) == LQ_OK);
    CK(cudaMemcpy(got, dout, n * sizeof(float), cudaMemcpyDeviceToHost));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += memcmp(&ref[i], &got[i], 4) != 0;
    CHECK_MSG(bad == 0, "f32 decode: %zu of %zu values differ from the CPU codec", bad, n);
    a.out_bf16 = 1;
    CHECK(kn_mxfp4_dequant(&a, 0) == LQ_OK);
    CK(cudaMemcpy(got16, dout, n * 2, cudaMemcpyDeviceToHost));
    bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += got16[i] != lq_f32_to_bf16(ref[i]);
    CHECK_MSG(bad == 0, "bf16 decode: %zu of %zu values differ", bad, n);
    CK(cudaFree(dp));
    CK(cudaFree(ds));
    CK(cudaFree(dout));
    free(ref), free(got), free(got16);
}

static void bench(void)
{
    size_t n = (size_t)1 << 30; /* 1 Gi elements: 512 MiB packed, 4 GiB f32 out */
    uint8_t *dp, *ds;
    void *dout, *dcopy;
    CK(cudaMalloc((void **)&dp, n / 2));
    CK(cudaMalloc((void **)&ds, n / 32));
    CK(cudaMalloc(&dout, n * 2));
    CK(cudaMalloc(&dcopy, n * 2));
    CK(cudaMemset(dp, 0x5A, n / 2));
    CK(cudaMemset(ds, 0x7F, n / 32));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    kn_mxfp4_dequant_args a = {dp, ds, dout, n, 1};
    float ms_dq = 1e30f, ms_cp = 1e30f, ms;
    for (int rep = 0; rep < 10; rep++) {
        CK(cudaEventRecord(e0, 0));
        kn_mxfp4_dequant(&a, 0);
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&ms, e0, e1));
        ms_dq = ms < ms_dq ? ms : ms_dq;
        CK(cudaEventRecord(e0, 0));
        CK(cudaMemcpyAsync(dcopy, dout, n * 2, cudaMemcpyDeviceToDevice, 0));
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&ms, e0, e1));
        ms_cp = ms < ms_cp ? ms : ms_cp;
    }
    double dq_bytes = (double)n / 2 + (double)n / 32 + (double)n * 2, cp_bytes = 2.0 * (double)n * 2;
    double dq_gbs = dq_bytes / (ms_dq * 1e-3) / 1e9, cp_gbs = cp_bytes / (ms_cp * 1e-3) / 1e9;
    printf("mxfp4 -> bf16 decode: %.1f GB/s (read+write) ; device copy %.1f GB/s (read+write) ; ratio %.3f\n",
           dq_gbs, cp_gbs, dq_gbs / cp_gbs);
    CK(cudaFree(dp));
    CK(cudaFree(ds));
    CK(cudaFree(dout));
    CK(cudaFree(dcopy));
}

int main(int argc, char **argv)
{
    gt_device();
    /* Every (code, scale) pair: 255 scales x one block holding all 16 codes twice. */
    size_t n = 255 * 32;
    uint8_t *packed = malloc(n / 2), *scales = malloc(n / 32);
    for (size_t b = 0; b < 255; b++) {
        scales[b] = (uint8_t)b;
        for (int j = 0; j < 16; j++)
            packed[b * 16 + j] = (uint8_t)((j & 15) | ((15 - j) << 4));
    }
    run_case(n, packed, scales);
    free(packed), free(scales);
    /* Random blocks, a size that is not a multiple of the launch width. */
    n = 32 * 100003;
    packed = malloc(n / 2), scales = malloc(n / 32);
    for (size_t i = 0; i < n / 2; i++)
        packed[i] = (uint8_t)next();
    for (size_t i = 0; i < n / 32; i++)
        scales[i] = (uint8_t)(100 + next() % 50);
    run_case(n, packed, scales);
    free(packed), free(scales);
    /* Launcher validation. */
    kn_mxfp4_dequant_args bad = {NULL, NULL, NULL, 33, 0};
    CHECK(kn_mxfp4_dequant(&bad, 0) == LQ_ERR_INVALID_ARGUMENT);
    if (argc > 1 && !strcmp(argv[1], "--bench"))
        bench();
    return th_finish("test_mxfp4_dequant_gpu");
}
