/* bench_mxfp4: MXFP4 quantizer throughput and accuracy.
 *
 * Quantizes 64 Mi f32 values (256 MiB) of Gaussian data with every scale mode on 1 and 2
 * threads and prints GB/s of f32 input next to the ratio to the ceiling measured in the same run
 * with the same thread count: a read-only pass over the same buffer (summing its 64-bit words).
 * The quantizer reads 4 bytes and writes 0.53 per value, so reading the input is its bound; a
 * memcpy of the buffer is printed too for scale. Then prints SQNR, clip%,
 * zero% and +1-block% per mode on 2^24 Gaussian and 2^24 Laplace values next to the figures of
 * reference/mxfp4_formats.md 1.8 (which used 524,288 blocks of each distribution).
 *
 * Usage: bench_mxfp4 [log2_values (default 26)] [repeats (default 3)] */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libquant/metrics.h"
#include "libquant/mxfp4.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t xorshift64(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Uniform in (0, 1), never 0 or 1. */
static double uniform01(void)
{
    return ((double)(xorshift64() >> 11) + 0.5) * 0x1p-53;
}

static void fill_gaussian(float *x, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        double r = sqrt(-2.0 * log(uniform01())), t = 2.0 * 3.14159265358979323846 * uniform01();
        x[i] = (float)(r * cos(t));
        x[i + 1] = (float)(r * sin(t));
    }
}

/* Unit-variance Laplace (b = 1/sqrt 2) by inverting the CDF. */
static void fill_laplace(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double u = uniform01() - 0.5;
        double v = -copysign(1.0, u) * log(1.0 - 2.0 * fabs(u)) / sqrt(2.0);
        x[i] = (float)v;
    }
}

typedef struct ref_row {
    const char *dist;
    lq_mx_scale_mode mode;
    double sqnr, clip, zero, plus1; /* percent, reference/mxfp4_formats.md 1.8 */
} ref_row;

static const ref_row refs[] = {
    {"gaussian", LQ_MX_SCALE_FLOOR, 18.79, 2.34, 8.79, 0.0},
    {"gaussian", LQ_MX_SCALE_RCEIL, 18.76, 0.0, 10.68, 29.6},
    {"gaussian", LQ_MX_SCALE_EVEN, 19.03, 0.62, 9.72, 16.9},
    {"gaussian", LQ_MX_SCALE_MSE, 19.05, 0.83, 9.52, 14.1},
    {"laplace", LQ_MX_SCALE_FLOOR, 17.99, 1.92, 16.44, 0.0},
    {"laplace", LQ_MX_SCALE_RCEIL, 17.56, 0.0, 21.11, 39.7},
    {"laplace", LQ_MX_SCALE_EVEN, 18.16, 0.83, 18.43, 18.2},
    {"laplace", LQ_MX_SCALE_MSE, 18.24, 1.11, 17.69, 12.3},
};

/* Touches every page so that first-use page faults are not timed. */
typedef struct read_job {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} read_job;

static void *read_worker(void *arg)
{
    read_job *j = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= j->n; i += 4) {
        a += j->p[i];
        b ^= j->p[i + 1];
        c += j->p[i + 2];
        d ^= j->p[i + 3];
    }
    for (; i < j->n; i++)
        a += j->p[i];
    j->sum = a + b + c + d;
    return NULL;
}

/* Seconds for one read-only pass over bytes of p split over th threads. */
static double read_pass(const void *p, size_t bytes, int th, uint64_t *sink)
{
    pthread_t t[2];
    read_job jobs[2];
    size_t words = bytes / 8, per = words / (size_t)th;
    double t0 = now_s();
    for (int i = 0; i < th; i++) {
        jobs[i].p = (const uint64_t *)p + (size_t)i * per;
        jobs[i].n = i == th - 1 ? words - (size_t)i * per : per;
        if (i > 0)
            pthread_create(&t[i], NULL, read_worker, &jobs[i]);
    }
    read_worker(&jobs[0]);
    for (int i = 1; i < th; i++)
        pthread_join(t[i], NULL);
    double el = now_s() - t0;
    for (int i = 0; i < th; i++)
        *sink += jobs[i].sum;
    return el;
}

static void touch(void *p, size_t bytes)
{
    memset(p, 0, bytes);
}

int main(int argc, char **argv)
{
    int lg = argc > 1 ? atoi(argv[1]) : 26;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    if (lg < 10 || lg > 30 || reps < 1) {
        fprintf(stderr, "usage: bench_mxfp4 [log2_values 10..30] [repeats >= 1]\n");
        return 2;
    }
    size_t n = (size_t)1 << lg;
    size_t bytes = n * sizeof(float);
    int rc = 1;
    float *x = malloc(bytes), *copy = malloc(bytes), *deq = NULL;
    uint8_t *packed = malloc(n / 2), *scales = malloc(n / 32);
    if (!x || !copy || !packed || !scales) {
        fprintf(stderr, "bench_mxfp4: out of memory\n");
        goto cleanup;
    }
    fill_gaussian(x, n);
    touch(copy, bytes);
    touch(packed, n / 2);
    touch(scales, n / 32);

    /* Called through a volatile pointer so the compiler cannot drop the unread copy. */
    void *(*volatile copy_fn)(void *, const void *, size_t) = memcpy;
    double best_copy = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        copy_fn(copy, x, bytes);
        double t = now_s() - t0;
        best_copy = t < best_copy ? t : best_copy;
    }
    double copy_gbs = (double)bytes / best_copy / 1e9;
    printf("MXFP4 quantize, %zu f32 values (%.0f MiB), best of %d\n", n, (double)bytes / 1048576.0,
           reps);
    printf("memcpy of the same buffer: %.2f GB/s\n", copy_gbs);
    double read_gbs[3] = {0, 0, 0};
    uint64_t sink = 0;
    for (int th = 1; th <= 2; th++) {
        double best_read = 1e30;
        for (int r = 0; r < reps; r++) {
            double t = read_pass(x, bytes, th, &sink);
            best_read = t < best_read ? t : best_read;
        }
        read_gbs[th] = (double)bytes / best_read / 1e9;
        printf("read-only pass, %d thread%s: %.2f GB/s (the ceiling)\n", th, th > 1 ? "s" : "", read_gbs[th]);
    }
    printf("(checksum %llx)\n\n", (unsigned long long)sink);
    printf("%-6s %7s %10s %9s %12s\n", "mode", "threads", "seconds", "GB/s", "vs read");
    for (int m = 0; m <= LQ_MX_SCALE_MSE; m++) {
        for (int th = 1; th <= 2; th++) {
            double best = 1e30;
            for (int r = 0; r < reps; r++) {
                double t0 = now_s();
                lq_status st = lq_mxfp4_quantize_mt(x, n, (lq_mx_scale_mode)m, packed, scales, NULL,
                                                    NULL, th);
                double t = now_s() - t0;
                if (st != LQ_OK) {
                    fprintf(stderr, "bench_mxfp4: quantize failed (%d)\n", (int)st);
                    goto cleanup;
                }
                best = t < best ? t : best;
            }
            double gbs = (double)bytes / best / 1e9;
            printf("%-6s %7d %10.4f %9.2f %11.1f%%\n", lq_mx_scale_mode_name((lq_mx_scale_mode)m),
                   th, best, gbs, 100.0 * gbs / read_gbs[th]);
        }
    }

    /* Accuracy on 2^24 values of each distribution, as in the reference simulation. */
    size_t na = n < ((size_t)1 << 24) ? n : ((size_t)1 << 24);
    deq = malloc(na * sizeof(float));
    if (!deq) {
        fprintf(stderr, "bench_mxfp4: out of memory\n");
        goto cleanup;
    }
    printf("\naccuracy on %zu values; reference/mxfp4_formats.md 1.8 in brackets\n", na);
    printf("%-9s %-6s %16s %14s %16s %16s\n", "data", "mode", "SQNR dB", "clip %", "zero %",
           "+1 blocks %");
    for (int d = 0; d < 2; d++) {
        if (d == 0)
            fill_gaussian(x, na);
        else
            fill_laplace(x, na);
        for (int m = 0; m <= LQ_MX_SCALE_MSE; m++) {
            lq_mx_counts cnt = {0};
            lq_err_acc acc;
            lq_metrics met;
            if (lq_mxfp4_quantize_mt(x, na, (lq_mx_scale_mode)m, packed, scales, &cnt, NULL, 2) !=
                    LQ_OK ||
                lq_mxfp4_dequantize(packed, scales, na, deq, NULL) != LQ_OK) {
                fprintf(stderr, "bench_mxfp4: codec failed\n");
                goto cleanup;
            }
            lq_err_acc_init(&acc);
            lq_err_acc_add(&acc, x, deq, na, scales);
            lq_err_acc_finish(&acc, &met);
            const ref_row *ref = &refs[d * 4 + m];
            printf("%-9s %-6s %7.3f [%5.2f] %5.2f [%4.2f] %6.2f [%5.2f] %6.2f [%4.1f]\n", ref->dist,
                   lq_mx_scale_mode_name((lq_mx_scale_mode)m), met.sqnr_db, ref->sqnr,
                   100.0 * met.clip_frac, ref->clip, 100.0 * met.zero_frac, ref->zero,
                   100.0 * (double)cnt.plus_one / (double)(na / 32), ref->plus1);
        }
    }
    rc = 0;
cleanup:
    free(x);
    free(copy);
    free(deq);
    free(packed);
    free(scales);
    return rc;
}
