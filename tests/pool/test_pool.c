/* The process-wide thread pool (libquant/pool.h) against its contract: every index runs exactly
 * once, results do not depend on the thread count, no more than `threads` threads work on a loop,
 * nested loops three levels deep complete even when more parallelism is asked for than workers
 * exist, loops from four external threads at once share the workers, a warm loop allocates
 * nothing, the pool restarts after lq_pool_shutdown, and OpenSSL used first inside a worker
 * leaves nothing behind at exit (the sanitizer build's leak check sees it otherwise).
 *
 * Expected values: every task computes mix(i) (below) into its own slot; the reference is the
 * same function evaluated in a plain serial loop in this file, compared byte for byte.
 *
 * Allocation counting: in the regular build this executable defines malloc, calloc, realloc and
 * free itself, forwarding to glibc's __libc_* entry points (glibc documents replacing malloc this
 * way), so every allocation of the process, libc's own included, passes through the counter.
 * Under ASan or TSan the sanitizer owns malloc; there the counter is a sanitizer malloc hook
 * (__sanitizer_install_malloc_and_free_hooks). Elsewhere the check is skipped with a note. */
#include "../harness.h"
#include "libquant/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <openssl/evp.h>

/* ---- allocation counter ---- */

#include "../alloc_count.h"

/* ---- tasks ---- */

/* A deterministic per-index value with some float work in it (xorshift and a short recurrence). */
static double mix(size_t i)
{
    uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ull + 1;
    double acc = 0;
    for (int k = 0; k < 8; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        acc = acc * 0.75 + (double)(x >> 11) * 0x1p-53;
    }
    return acc;
}

typedef struct once_ctx {
    atomic_int *count;
    double *out;
} once_ctx;

static void once_task(void *arg, size_t i)
{
    once_ctx *c = arg;
    atomic_fetch_add_explicit(&c->count[i], 1, memory_order_relaxed);
    c->out[i] = mix(i);
}

static void case_exactly_once(void)
{
    static const size_t ns[] = {0, 1, 2, 7, 1000, 100000};
    static const int ts[] = {1, 2, 3, 8, 64};
    size_t maxn = 100000;
    atomic_int *count = malloc(maxn * sizeof(*count));
    double *out = malloc(maxn * sizeof(double)), *ref = malloc(maxn * sizeof(double));
    if (!count || !out || !ref) {
        CHECK(0);
        free(count), free(out), free(ref);
        return;
    }
    for (size_t i = 0; i < maxn; i++)
        ref[i] = mix(i);
    for (size_t a = 0; a < sizeof(ns) / sizeof(ns[0]); a++)
        for (size_t b = 0; b < sizeof(ts) / sizeof(ts[0]); b++) {
            size_t n = ns[a];
            for (size_t i = 0; i < maxn; i++)
                atomic_init(&count[i], 0);
            memset(out, 0xA5, maxn * sizeof(double));
            once_ctx c = {count, out};
            lq_parallel_for(n, ts[b], once_task, &c);
            size_t wrong = 0, first = 0;
            for (size_t i = 0; i < maxn; i++)
                if (atomic_load(&count[i]) != (i < n ? 1 : 0) && !wrong++)
                    first = i;
            CHECK_MSG(wrong == 0, "n %zu threads %d: %zu indices not run exactly once (first %zu, run %d times)", n,
                      ts[b], wrong, first, atomic_load(&count[first]));
            CHECK_MSG(memcmp(out, ref, n * sizeof(double)) == 0, "n %zu threads %d: output differs from the serial one",
                      n, ts[b]);
            /* nothing written past n */
            double untouched;
            memset(&untouched, 0xA5, sizeof(untouched));
            CHECK(n == maxn || memcmp(&out[n], &untouched, sizeof(double)) == 0);
        }
    /* Workers started: the largest number a loop needed (threads 64 and n >= 64 ask for 63). */
    CHECK_EQ_U64(lq_pool_workers(), 63);
    free(count), free(out), free(ref);
}

/* ---- at most `threads` threads on a loop ---- */

typedef struct bound_ctx {
    pthread_mutex_t mu;
    pthread_t seen[LQ_POOL_MAX];
    int nseen;
    atomic_int active, max_active;
} bound_ctx;

static void busy_wait_ns(long ns)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < ns);
}

static void bound_task(void *arg, size_t i)
{
    bound_ctx *c = arg;
    (void)i;
    int a = atomic_fetch_add(&c->active, 1) + 1;
    int m = atomic_load(&c->max_active);
    while (a > m && !atomic_compare_exchange_weak(&c->max_active, &m, a))
        ;
    pthread_t self = pthread_self();
    pthread_mutex_lock(&c->mu);
    int known = 0;
    for (int k = 0; k < c->nseen && !known; k++)
        known = pthread_equal(c->seen[k], self);
    if (!known && c->nseen < LQ_POOL_MAX)
        c->seen[c->nseen++] = self;
    pthread_mutex_unlock(&c->mu);
    busy_wait_ns(20000);
    atomic_fetch_sub(&c->active, 1);
}

static void case_thread_bound(void)
{
    static const int ts[] = {2, 3, 8};
    for (size_t b = 0; b < sizeof(ts) / sizeof(ts[0]); b++) {
        bound_ctx c;
        memset(&c, 0, sizeof(c));
        pthread_mutex_init(&c.mu, NULL);
        atomic_init(&c.active, 0);
        atomic_init(&c.max_active, 0);
        lq_parallel_for(64, ts[b], bound_task, &c);
        CHECK_MSG(c.nseen >= 1 && c.nseen <= ts[b], "threads %d: %d distinct threads ran tasks", ts[b], c.nseen);
        CHECK_MSG(atomic_load(&c.max_active) <= ts[b], "threads %d: %d tasks at once", ts[b],
                  atomic_load(&c.max_active));
        pthread_mutex_destroy(&c.mu);
    }
}

/* ---- nesting ---- */

#define NEST_N 6

typedef struct nest_ctx {
    int threads;
    int depth;                 /* 0 = outermost */
    size_t base;               /* flattened index of this loop's first leaf */
    double *out;
    atomic_int *count;
} nest_ctx;

static void nest_task(void *arg, size_t i)
{
    const nest_ctx *c = arg;
    size_t idx = c->base * NEST_N + i;
    if (c->depth == 2) {
        atomic_fetch_add_explicit(&c->count[idx], 1, memory_order_relaxed);
        c->out[idx] = mix(idx);
        return;
    }
    nest_ctx inner = {c->threads, c->depth + 1, idx, c->out, c->count};
    lq_parallel_for(NEST_N, c->threads, nest_task, &inner);
}

static void run_nested(int threads, double *out, atomic_int *count)
{
    for (size_t i = 0; i < NEST_N * NEST_N * NEST_N; i++)
        atomic_init(&count[i], 0);
    nest_ctx top = {threads, 0, 0, out, count};
    lq_parallel_for(NEST_N, threads, nest_task, &top);
}

static void case_nested(void)
{
    enum { LEAVES = NEST_N * NEST_N * NEST_N };
    double ref[LEAVES], out[LEAVES];
    atomic_int count[LEAVES];
    for (size_t i = 0; i < LEAVES; i++)
        ref[i] = mix(i);
    /* 6 x 6 x 6 loops asking for up to 64 threads each: far more than the 63 workers. */
    static const int ts[] = {1, 2, 3, 8, 64};
    for (size_t b = 0; b < sizeof(ts) / sizeof(ts[0]); b++)
        for (int rep = 0; rep < 20; rep++) {
            memset(out, 0, sizeof(out));
            run_nested(ts[b], out, count);
            int wrong = 0;
            for (size_t i = 0; i < LEAVES; i++)
                wrong += atomic_load(&count[i]) != 1;
            CHECK_MSG(wrong == 0, "nested, threads %d: %d leaves not run exactly once", ts[b], wrong);
            CHECK_MSG(memcmp(out, ref, sizeof(out)) == 0, "nested, threads %d: output differs", ts[b]);
        }
}

/* ---- loops from several external threads ---- */

typedef struct ext_ctx {
    int id;
    int failures;
} ext_ctx;

static void *ext_main(void *arg)
{
    ext_ctx *e = arg;
    enum { N = 257 };
    double out[N], ref[N], nout[NEST_N * NEST_N * NEST_N], nref[NEST_N * NEST_N * NEST_N];
    atomic_int count[N], ncount[NEST_N * NEST_N * NEST_N];
    for (size_t i = 0; i < N; i++)
        ref[i] = mix(i);
    for (size_t i = 0; i < NEST_N * NEST_N * NEST_N; i++)
        nref[i] = mix(i);
    for (int rep = 0; rep < 300; rep++) {
        int threads = 2 + (e->id + rep) % 4;
        for (size_t i = 0; i < N; i++)
            atomic_init(&count[i], 0);
        memset(out, 0, sizeof(out));
        once_ctx c = {count, out};
        lq_parallel_for(N, threads, once_task, &c);
        for (size_t i = 0; i < N; i++)
            e->failures += atomic_load(&count[i]) != 1;
        e->failures += memcmp(out, ref, sizeof(out)) != 0;
        if (rep % 10 == 0) {
            memset(nout, 0, sizeof(nout));
            run_nested(threads, nout, ncount);
            for (size_t i = 0; i < NEST_N * NEST_N * NEST_N; i++)
                e->failures += atomic_load(&ncount[i]) != 1;
            e->failures += memcmp(nout, nref, sizeof(nout)) != 0;
        }
    }
    return NULL;
}

static void case_external_threads(void)
{
    pthread_t th[4];
    ext_ctx e[4];
    int started[4];
    for (int t = 0; t < 4; t++) {
        e[t] = (ext_ctx){t, 0};
        started[t] = pthread_create(&th[t], NULL, ext_main, &e[t]) == 0;
        CHECK(started[t]);
    }
    for (int t = 0; t < 4; t++)
        if (started[t]) {
            pthread_join(th[t], NULL);
            CHECK_MSG(e[t].failures == 0, "external thread %d: %d failures", t, e[t].failures);
        }
}

/* ---- a warm loop allocates nothing ---- */

static void empty_task(void *arg, size_t i)
{
    (void)arg, (void)i;
}

/* Task 1 outlasts the caller's spin, so the caller goes to sleep and is woken by its helper. */
static void slow_task(void *arg, size_t i)
{
    (void)arg;
    if (i == 1) {
        struct timespec d = {0, 2000000};
        nanosleep(&d, NULL);
    }
}

static void case_no_allocation(void)
{
    if (!alloc_count_install()) {
        fprintf(stderr, "test_pool: no allocation counter on this platform; allocation check skipped\n");
        return;
    }
    /* the counter itself works */
    atomic_store(&g_allocs, 0);
    atomic_store(&g_counting, 1);
    void *volatile probe = malloc(24);
    atomic_store(&g_counting, 0);
    free(probe);
    CHECK_EQ_U64(atomic_load(&g_allocs), 1);

    enum { LEAVES = NEST_N * NEST_N * NEST_N };
    static double out[LEAVES];
    static atomic_int count[LEAVES];
    static atomic_int ocount[1000];
    static double oout[1000];
    once_ctx c = {ocount, oout};
    /* warm: start every worker the loops below can use */
    lq_parallel_for(1000, 64, empty_task, NULL);
    atomic_store(&g_allocs, 0);
    atomic_store(&g_counting, 1);
    for (int rep = 0; rep < 2000; rep++)
        lq_parallel_for(2, 2, empty_task, NULL);
    for (int rep = 0; rep < 200; rep++) {
        for (size_t i = 0; i < 1000; i++)
            atomic_store_explicit(&ocount[i], 0, memory_order_relaxed);
        lq_parallel_for(1000, 2 + rep % 7, once_task, &c);
    }
    for (int rep = 0; rep < 10; rep++)
        run_nested(8, out, count);
    for (int rep = 0; rep < 5; rep++)
        lq_parallel_for(2, 2, slow_task, NULL);
    atomic_store(&g_counting, 0);
    CHECK_MSG(atomic_load(&g_allocs) == 0, "warm loops allocated %ld times", atomic_load(&g_allocs));
}

/* ---- OpenSSL first used on a worker ---- */

/* Task 1 hashes "abc" (FIPS 180-2's example: SHA-256 ba7816bf...15ad); task 0 waits (at most 1 s)
 * until task 1 has started, so a worker, not the caller, is the first thread of the process to
 * use OpenSSL. OpenSSL keeps per-thread state that is freed when the thread exits only while
 * OpenSSL is not yet cleaned up: the pool's atexit handler must run before OpenSSL's (checked by
 * the sanitizer build's leak check at exit; without the pool's care a worker's 904-byte error
 * queue is reported lost). */
typedef struct sha_ctx {
    atomic_int started;
    unsigned char digest[32];
    int ok;
} sha_ctx;

static void sha_task(void *arg, size_t i)
{
    sha_ctx *c = arg;
    if (i == 1) {
        atomic_store(&c->started, 1);
        unsigned int len = 0;
        c->ok = EVP_Digest("abc", 3, c->digest, &len, EVP_sha256(), NULL) == 1 && len == 32;
        return;
    }
    for (int k = 0; k < 1000 && !atomic_load(&c->started); k++) {
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
}

static void case_openssl_in_worker(void)
{
    static const unsigned char want[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                           0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                           0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    sha_ctx c = {.ok = 0};
    atomic_init(&c.started, 0);
    lq_parallel_for(2, 2, sha_task, &c);
    CHECK(c.ok);
    CHECK(memcmp(c.digest, want, 32) == 0);
}

/* ---- shutdown and reuse ---- */

static void case_shutdown_reuse(void)
{
    enum { N = 1000 };
    static atomic_int count[N];
    static double out[N], ref[N];
    for (size_t i = 0; i < N; i++)
        ref[i] = mix(i);
    once_ctx c = {count, out};
    for (int round = 0; round < 3; round++) {
        lq_pool_shutdown();
        CHECK_EQ_U64(lq_pool_workers(), 0);
        lq_pool_shutdown(); /* a second shutdown is harmless */
        /* n = 3 needs 2 helpers whatever `threads` asks for (clamped to LQ_POOL_MAX too) */
        for (size_t i = 0; i < N; i++)
            atomic_init(&count[i], 0);
        lq_parallel_for(3, 1000, once_task, &c);
        CHECK_EQ_U64(lq_pool_workers(), 2);
        for (size_t i = 0; i < 3; i++)
            CHECK(atomic_load(&count[i]) == 1);
        /* then grows to what a wider loop needs */
        for (size_t i = 0; i < N; i++)
            atomic_init(&count[i], 0);
        memset(out, 0, sizeof(out));
        lq_parallel_for(N, 5, once_task, &c);
        CHECK_EQ_U64(lq_pool_workers(), 4);
        int wrong = 0;
        for (size_t i = 0; i < N; i++)
            wrong += atomic_load(&count[i]) != 1;
        CHECK(wrong == 0);
        CHECK(memcmp(out, ref, sizeof(out)) == 0);
    }
    /* inline cases start nothing */
    lq_pool_shutdown();
    lq_parallel_for(N, 1, once_task, &c);
    lq_parallel_for(1, 64, once_task, &c);
    CHECK_EQ_U64(lq_pool_workers(), 0);
}

int main(void)
{
    case_exactly_once();
    case_thread_bound();
    case_nested();
    case_external_threads();
    case_no_allocation();
    case_shutdown_reuse();
    /* Last, after the last lq_pool_shutdown above and before anything else used OpenSSL: the
     * worker that runs it is joined only by the pool's atexit handler. */
    case_openssl_in_worker();
    /* workers are left running: the pool's atexit handler joins them (ASan's leak check and
     * valgrind see no thread) */
    lq_parallel_for(64, 8, empty_task, NULL);
    return th_finish("test_pool");
}
