/* Per-call cost of the thread pool against pthread_create + pthread_join of one thread per call
 * (what the per-call thread pools before libquant/pool.c paid), for loops of two tasks on two
 * threads:
 * - empty tasks, back to back (the worker awake): what an empty loop costs the caller;
 * - a handoff: task 0 waits until another thread has started task 1, so the worker must take
 *   part: the round trip from publishing the loop to seeing the helper detach;
 * - the same handoff with 1 ms between calls, so the worker has gone to sleep and is woken;
 * - two tasks of 5 us: the ideal is 5 us a call, serial 10 us.
 * Each figure is the median over 21 batches of the mean time per call (a loaded machine preempts
 * some batches); the sleeping case, timed call by call, gives the median and the 90th percentile
 * call (a virtual machine's idle CPU can take milliseconds to wake). A benchmark, not a test: it
 * prints, it asserts nothing. Run build/tests/pool/bench_pool [calls per batch]. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "libquant/pool.h"

#define BATCHES 21

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void empty_task(void *ctx, size_t i)
{
    (void)ctx, (void)i;
}

/* Task 0 waits (at most 10 ms) until task 1 has begun on another thread. */
typedef struct handoff {
    atomic_int started;
    long timeouts;
} handoff;

static void handoff_task(void *ctx, size_t i)
{
    handoff *h = ctx;
    if (i == 1) {
        atomic_store(&h->started, 1);
        return;
    }
    double t0 = now_s();
    while (!atomic_load(&h->started))
        if (now_s() - t0 > 0.01) {
            h->timeouts++;
            break;
        }
}

static void busy_task(void *ctx, size_t i)
{
    (void)ctx, (void)i;
    double t0 = now_s();
    while (now_s() - t0 < 5e-6)
        ;
}

static void *empty_thread(void *arg)
{
    return arg;
}

typedef enum { EMPTY, HANDOFF, HANDOFF_ASLEEP, BUSY, CREATE } bench_kind;

/* Median over BATCHES of the mean time per call, in microseconds; for HANDOFF_ASLEEP the median
 * call, and its 90th percentile in *p90. */
static double measure(bench_kind kind, long calls, long *timeouts, double *p90)
{
    double t[BATCHES];
    double *each = kind == HANDOFF_ASLEEP ? malloc((size_t)(BATCHES * calls) * sizeof(double)) : NULL;
    handoff h = {0};
    for (int b = 0; b < BATCHES; b++) {
        double total = 0;
        for (long k = 0; k < calls; k++) {
            if (kind == HANDOFF_ASLEEP) {
                struct timespec d = {0, 1000000};
                nanosleep(&d, NULL);
            }
            double t0 = kind == HANDOFF_ASLEEP || k == 0 ? now_s() : 0;
            switch (kind) {
            case EMPTY: lq_parallel_for(2, 2, empty_task, NULL); break;
            case HANDOFF:
            case HANDOFF_ASLEEP:
                atomic_store(&h.started, 0);
                lq_parallel_for(2, 2, handoff_task, &h);
                break;
            case BUSY: lq_parallel_for(2, 2, busy_task, NULL); break;
            case CREATE: {
                pthread_t th;
                if (pthread_create(&th, NULL, empty_thread, NULL) == 0)
                    pthread_join(th, NULL);
                empty_task(NULL, 0); /* the caller's own task */
                break;
            }
            }
            if (kind == HANDOFF_ASLEEP) {
                double dt = now_s() - t0;
                total += dt;
                if (each)
                    each[(long)b * calls + k] = dt * 1e6;
            }
            else if (k == 0)
                total = -t0;
        }
        if (kind != HANDOFF_ASLEEP)
            total += now_s();
        t[b] = total / (double)calls * 1e6;
    }
    qsort(t, BATCHES, sizeof(double), cmp_double);
    if (timeouts)
        *timeouts = h.timeouts;
    if (each) {
        long m = (long)BATCHES * calls;
        qsort(each, (size_t)m, sizeof(double), cmp_double);
        double med = each[m / 2];
        if (p90)
            *p90 = each[m * 9 / 10];
        free(each);
        return med;
    }
    return t[BATCHES / 2];
}

int main(int argc, char **argv)
{
    long calls = argc > 1 ? atol(argv[1]) : 2000;
    if (calls < 10)
        calls = 10;
    lq_parallel_for(2, 2, empty_task, NULL); /* starts the worker */
    long to1 = 0, to2 = 0;
    double p90 = 0;
    double empty = measure(EMPTY, calls * 10, NULL, NULL);
    double hand = measure(HANDOFF, calls, &to1, NULL);
    double asleep = measure(HANDOFF_ASLEEP, calls / 20 > 5 ? calls / 20 : 5, &to2, &p90);
    double busy = measure(BUSY, calls, NULL, NULL);
    double create = measure(CREATE, calls / 4 > 5 ? calls / 4 : 5, NULL, NULL);
    printf("lq_parallel_for(n=2, threads=2), empty tasks, back to back: %8.2f us/call\n", empty);
    printf("lq_parallel_for(n=2, threads=2), handoff, worker awake:     %8.2f us/call\n", hand);
    printf("lq_parallel_for(n=2, threads=2), handoff, worker asleep:    %8.2f us/call (90th percentile %.2f)\n", asleep,
           p90);
    printf("lq_parallel_for(n=2, threads=2), two 5 us tasks:            %8.2f us/call (ideal 5, serial 10)\n", busy);
    printf("pthread_create + pthread_join of one thread:                %8.2f us/call\n", create);
    if (to1 || to2)
        printf("(%ld handoffs timed out after 10 ms: no other thread took task 1)\n", to1 + to2);
    return 0;
}
