/* bench_values: single-threaded throughput of the value checks (libquant/values.h).
 *
 * The runtime checks every byte of a model at open, so these numbers set its open-time floor.
 * Each line prints GB/s of tensor bytes and the ratio to the ceiling measured in the same run on
 * the same buffer (one thread reading it, 32-bit words XORed), by wall time and by the thread's
 * CPU time (the second is what the code costs when the machine is shared). Cases:
 *   BF16 and F32 (256 MiB each), without and with a bound, and with statistics;
 *   E4M3 block-FP8 (256 MiB, F32 scale grid), without and with a bound;
 *   MXFP4 (256 MiB of codes + 16 MiB of scales): typical scales (2^-27 .. 2^8), where only the
 *   scale bytes need reading, and a worst case where every block's scale is large enough that its
 *   codes must be read too.
 * Best of `repeats` runs. Timing is printed, never asserted.
 *
 * Usage: bench_values [MiB (default 256)] [repeats (default 3)] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libquant/dtype.h"
#include "libquant/fp8block.h"
#include "libquant/values.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of this thread: on a loaded machine wall time also counts the time other processes
 * held the core, so both are printed. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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

/* Roughly Gaussian weights of scale 0.02 (sum of 4 uniforms), as f32. */
static float weight(void)
{
    double s = 0.0;
    for (int k = 0; k < 4; k++)
        s += (double)(xorshift64() >> 11) * 0x1p-53 - 0.5;
    return (float)(s * 0.035);
}

static volatile uint64_t sink;

/* One read of the buffer: 32-bit words XORed in chunks of a constant 1024 words, a loop gcc
 * vectorizes, so this is the memory's single-thread read rate. */
static void read_pass(const uint8_t *p, size_t bytes)
{
    uint32_t acc = 0;
    size_t i = 0;
    for (; i + 4096 <= bytes; i += 4096) {
        uint32_t a = 0;
        for (unsigned k = 0; k < 1024; k++) {
            uint32_t w;
            memcpy(&w, p + i + 4 * k, 4);
            a ^= w;
        }
        acc ^= a;
    }
    for (; i < bytes; i++)
        acc ^= p[i];
    sink += acc;
}

typedef lq_status (*check_fn)(void *ctx);

static int repeats = 3;

typedef struct timing {
    double wall, cpu;
} timing;

static void keep_best(timing *best, double w0, double c0)
{
    double w = now_s() - w0, c = cpu_s() - c0;
    best->wall = w < best->wall ? w : best->wall;
    best->cpu = c < best->cpu ? c : best->cpu;
}

/* Best wall and CPU times of the check and of the read pass over `bytes` at p, run alternately
 * so that both see the same machine load. */
static void run(const char *what, check_fn fn, void *ctx, const uint8_t *p, size_t bytes)
{
    timing chk = {1e30, 1e30}, rd = {1e30, 1e30};
    lq_status st = LQ_OK;
    for (int r = 0; r < repeats; r++) {
        double w0 = now_s(), c0 = cpu_s();
        read_pass(p, bytes);
        keep_best(&rd, w0, c0);
        w0 = now_s();
        c0 = cpu_s();
        st = fn(ctx);
        keep_best(&chk, w0, c0);
    }
    double gb = (double)bytes * 1e-9;
    printf("%-44s %7.2f GB/s (%4.2fx read %5.2f) | per CPU-s %7.2f GB/s (%4.2fx read %5.2f)  %s\n", what,
           gb / chk.wall, rd.wall / chk.wall, gb / rd.wall, gb / chk.cpu, rd.cpu / chk.cpu, gb / rd.cpu,
           lq_status_str(st));
}

typedef struct fctx {
    lq_dtype dt;
    const void *data;
    uint64_t n;
    double max_abs;
    lq_value_stats *stats;
} fctx;

static lq_status run_float(void *p)
{
    fctx *c = p;
    lq_error err;
    return lq_values_float(c->dt, c->data, c->n, c->max_abs, "bench", "w", c->stats, &err);
}

typedef struct pctx {
    const lq_fp8_grid *g;
    const uint8_t *w;
    const float *scale;
    double max_abs;
} pctx;

static lq_status run_fp8(void *p)
{
    pctx *c = p;
    lq_error err;
    return lq_values_fp8(c->g, LQ_DTYPE_F8_E4M3, c->w, LQ_DTYPE_F32, c->scale, 0, c->g->rows, c->max_abs, "bench",
                         NULL, "w", NULL, &err);
}

typedef struct mctx {
    const uint8_t *codes, *scales;
    uint64_t rows, cols;
    double max_abs;
} mctx;

static lq_status run_mxfp4(void *p)
{
    mctx *c = p;
    lq_error err;
    return lq_values_mxfp4(c->codes, c->scales, c->rows, c->cols, c->max_abs, "bench", "w", NULL, &err);
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 256;
    repeats = argc > 2 ? atoi(argv[2]) : 3;
    if (mib < 1 || repeats < 1) {
        fprintf(stderr, "usage: bench_values [MiB >= 1] [repeats >= 1]\n");
        return 2;
    }
    size_t bytes = mib << 20;
    uint8_t *buf = malloc(bytes + (bytes >> 4));
    if (!buf) {
        fprintf(stderr, "bench_values: out of memory\n");
        return 3;
    }
    printf("bench_values: %zu MiB per tensor, best of %d, one thread\n", mib, repeats);

    /* BF16 */
    uint64_t n16 = bytes / 2;
    for (uint64_t i = 0; i < n16; i++) {
        uint16_t h = lq_f32_to_bf16(weight());
        memcpy(buf + 2 * i, &h, 2);
    }
    lq_value_stats stats;
    fctx fc = {LQ_DTYPE_BF16, buf, n16, 0.0, NULL};
    run("BF16 finite", run_float, &fc, buf, bytes);
    fc.max_abs = 1.0;
    run("BF16 finite, |x| <= 1", run_float, &fc, buf, bytes);
    fc.stats = &stats;
    run("BF16 finite, |x| <= 1, with statistics", run_float, &fc, buf, bytes);

    /* F32 */
    uint64_t n32 = bytes / 4;
    for (uint64_t i = 0; i < n32; i++) {
        float f = weight();
        memcpy(buf + 4 * i, &f, 4);
    }
    fctx f32c = {LQ_DTYPE_F32, buf, n32, 0.0, NULL};
    run("F32 finite", run_float, &f32c, buf, bytes);
    f32c.max_abs = 1.0;
    run("F32 finite, |x| <= 1", run_float, &f32c, buf, bytes);

    /* E4M3 block FP8: [bytes / 8192, 8192] with a 128 x 128 F32 grid. */
    lq_fp8_grid g;
    uint64_t cols = 8192, rows = bytes / cols;
    uint64_t srows = (rows + 127) / 128, scols = cols / 128;
    float *scale = malloc(srows * scols * sizeof(float));
    if (!scale || lq_fp8_grid_detect(rows, cols, srows, scols, 128, 128, 0, "w", &g, NULL) != LQ_OK) {
        fprintf(stderr, "bench_values: FP8 setup failed\n");
        return 3;
    }
    for (uint64_t i = 0; i < rows * cols; i++) {
        uint8_t b = (uint8_t)xorshift64();
        buf[i] = (b & 0x7F) == 0x7F ? 0x7E : b;
    }
    for (uint64_t i = 0; i < srows * scols; i++)
        scale[i] = 1e-4f * (float)(1 + i % 7);
    pctx pc = {&g, buf, scale, 0.0};
    run("F8_E4M3 block: no NaN, scales > 0", run_fp8, &pc, buf, bytes);
    pc.max_abs = 1.0;
    run("F8_E4M3 block: ... and |w| <= 1", run_fp8, &pc, buf, bytes);
    free(scale);

    /* MXFP4: codes [rows, cols / 2] then scales [rows, cols / 32] in the same buffer. */
    mctx mc;
    mc.cols = 8192;
    mc.rows = bytes / (mc.cols / 2);
    mc.codes = buf;
    mc.scales = buf + bytes;
    size_t nscale = mc.rows * mc.cols / 32, mx_bytes = bytes + nscale;
    for (size_t i = 0; i < bytes; i++)
        buf[i] = (uint8_t)xorshift64();
    for (size_t i = 0; i < nscale; i++)
        buf[bytes + i] = (uint8_t)(100 + xorshift64() % 36); /* 2^-27 .. 2^8 */
    mc.max_abs = 0.0;
    run("MXFP4 typical scales", run_mxfp4, &mc, buf, mx_bytes);
    mc.max_abs = 65536.0;
    run("MXFP4 typical scales, |w| <= 65536", run_mxfp4, &mc, buf, mx_bytes);
    /* Worst case: every scale 120 (2^-7) and a bound of 4 * 2^-7, so a code of 6 would fail and
     * every block's codes are read; codes stay within 4 so all pass. */
    for (size_t i = 0; i < bytes; i++) {
        uint8_t b = (uint8_t)xorshift64();
        buf[i] = (uint8_t)(b & 0xEE); /* magnitudes 0, 2, 4, 6 -> values 0, 1, 2, 4 */
    }
    memset(buf + bytes, 120, nscale);
    mc.max_abs = 4.0 * 0x1p-7;
    run("MXFP4 worst case (every block's codes read)", run_mxfp4, &mc, buf, mx_bytes);
    free(buf);
    return 0;
}
