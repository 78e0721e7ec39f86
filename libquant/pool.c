/* The process-wide thread pool (pool.h).
 *
 * A loop is a descriptor on its caller's stack: the task function, the task count, an atomic
 * `next` index that every participating thread increments to claim a task (so tasks go out in
 * index order), and an atomic `state` word counting the helpers attached to it. Open loops sit in
 * an intrusive FIFO queue under one mutex. The caller publishes its loop, works on it until
 * `next` passes the end, takes it off the queue if no helper did, and then waits for `state` to
 * fall to zero. A helper attaches only with a claimed task in hand and detaches as soon as a
 * claim fails, so the helpers a caller waits for are running tasks of this very loop and the
 * wait always ends, whatever the nesting (a helper's task may be the caller of a deeper loop,
 * which ends by the same argument, and so on down). A thread that waits never picks up other
 * work, so no thread ever waits on itself.
 *
 * Waking cost: the runtime calls this for every linear layer. Idle workers spin on a generation
 * counter for a short time before sleeping on the condition variable, so back-to-back loops find
 * them awake; the caller wakes sleepers only when too few workers are spinning. At the end the
 * caller spins on `state` and sleeps only when its helpers are slow; the helper that detaches
 * last signals it only when the SLEEPING bit says it sleeps (then, and only then, does that
 * helper touch the descriptor after detaching, and it does so under the mutex the caller must
 * take before it may return). The caller never sleeps while its loop still has tasks.
 *
 * Nothing is allocated per call: the descriptor and its condition variable live on the caller's
 * stack (the condition variable is initialized only when the caller is about to sleep), the
 * queue links are inside the descriptor, and worker handles are a static array. */
#include "pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* How long an idle worker, and a caller waiting for its helpers, spin before sleeping. Long enough
 * to bridge the gap between two linear layers of a decode step; short enough that an idle
 * process stops burning a core within a fraction of a millisecond. */
#define POOL_SPIN_NS 100000L

#define SLEEPING 0x80000000u /* in loop.state: the caller sleeps on loop.cv */

typedef struct loop {
    lq_task_fn fn;
    void *ctx;
    size_t n;
    atomic_size_t next;        /* next task index to hand out; may run past n */
    atomic_uint state;         /* helpers attached, | SLEEPING */
    atomic_int queued;         /* in the open queue (written under the mutex) */
    int max_helpers;           /* threads - 1, capped by n - 1 */
    int joined;                /* helpers that ever attached (under the mutex) */
    int woken;                 /* the last helper has signalled cv (under the mutex) */
    struct loop *qprev, *qnext;
    pthread_cond_t cv;         /* initialized only when the caller sleeps */
} loop;

static struct {
    /* What spinning workers poll, on a cache line of its own so that taking the mutex does not
     * disturb them. */
    _Alignas(64) atomic_uint gen; /* bumped (under mu) whenever a loop is queued */
    atomic_int stop;           /* workers leave when idle */
    _Alignas(64) pthread_mutex_t mu;
    pthread_cond_t work_cv;    /* idle workers sleep here */
    loop *head, *tail;         /* open loops, oldest first */
    int nworkers;              /* started and not joined */
    int limit;                 /* a failed start lowers it: no retry on every call */
    int spinning, sleeping;    /* idle workers in each phase */
    int max_spinning;          /* online CPUs - 1 (set once, before the first loop is queued) */
    int registered;            /* atexit and pthread_atfork handlers installed */
    pthread_t tids[LQ_POOL_MAX - 1];
} P = {.mu = PTHREAD_MUTEX_INITIALIZER, .work_cv = PTHREAD_COND_INITIALIZER, .limit = LQ_POOL_MAX - 1};

static inline void cpu_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- the queue (all under P.mu) ---- */

static void enqueue(loop *L)
{
    L->qnext = NULL;
    L->qprev = P.tail;
    if (P.tail)
        P.tail->qnext = L;
    else
        P.head = L;
    P.tail = L;
    atomic_store_explicit(&L->queued, 1, memory_order_relaxed);
}

/* Release: a caller that reads queued == 0 sees every attach made before the removal. */
static void dequeue(loop *L)
{
    if (L->qprev)
        L->qprev->qnext = L->qnext;
    else
        P.head = L->qnext;
    if (L->qnext)
        L->qnext->qprev = L->qprev;
    else
        P.tail = L->qprev;
    L->qprev = L->qnext = NULL;
    atomic_store_explicit(&L->queued, 0, memory_order_release);
}

/* The oldest open loop with a task left, with this thread attached as one of its helpers and the
 * task it claimed in *first; loops found exhausted are dropped from the queue on the way. NULL
 * when there is none. Claiming under the mutex means a helper is never attached without a task
 * in hand, so the caller never waits on a helper that came too late to do anything. */
static loop *attach_some_loop(size_t *first)
{
    loop *L = P.head;
    while (L) {
        loop *nx = L->qnext;
        size_t i = atomic_fetch_add_explicit(&L->next, 1, memory_order_relaxed);
        if (i >= L->n) {
            dequeue(L);
        } else {
            atomic_fetch_add_explicit(&L->state, 1, memory_order_relaxed);
            if (++L->joined >= L->max_helpers)
                dequeue(L);
            *first = i;
            return L;
        }
        L = nx;
    }
    return NULL;
}

/* ---- helpers and workers ---- */

/* Runs task i, then claims and runs tasks until none is left. */
static void run_tasks(loop *L, size_t i)
{
    while (i < L->n) {
        L->fn(L->ctx, i);
        i = atomic_fetch_add_explicit(&L->next, 1, memory_order_relaxed);
    }
}

/* The helper's last touch of L, unless the caller sleeps and this was its last helper. */
static void detach(loop *L)
{
    unsigned old = atomic_fetch_sub_explicit(&L->state, 1, memory_order_acq_rel);
    if (old != (SLEEPING | 1u))
        return;
    pthread_mutex_lock(&P.mu);
    L->woken = 1;
    pthread_cond_signal(&L->cv);
    pthread_mutex_unlock(&P.mu);
}

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&P.mu);
    while (!atomic_load_explicit(&P.stop, memory_order_relaxed)) {
        size_t first;
        loop *L = attach_some_loop(&first);
        if (L) {
            pthread_mutex_unlock(&P.mu);
            run_tasks(L, first);
            detach(L);
            pthread_mutex_lock(&P.mu);
            continue;
        }
        unsigned gen = atomic_load_explicit(&P.gen, memory_order_relaxed);
        if (P.spinning < P.max_spinning) {
            P.spinning++;
            pthread_mutex_unlock(&P.mu);
            long long t0 = now_ns();
            for (unsigned k = 1;; k++) {
                if (atomic_load_explicit(&P.gen, memory_order_relaxed) != gen ||
                    atomic_load_explicit(&P.stop, memory_order_relaxed))
                    break;
                cpu_pause();
                if (k % 64 == 0 && now_ns() - t0 > POOL_SPIN_NS)
                    break;
            }
            pthread_mutex_lock(&P.mu);
            P.spinning--;
            if (atomic_load_explicit(&P.gen, memory_order_relaxed) != gen)
                continue;
        }
        P.sleeping++;
        while (!atomic_load_explicit(&P.stop, memory_order_relaxed) &&
               atomic_load_explicit(&P.gen, memory_order_relaxed) == gen)
            pthread_cond_wait(&P.work_cv, &P.mu);
        P.sleeping--;
    }
    pthread_mutex_unlock(&P.mu);
    return NULL;
}

static void pool_at_exit(void)
{
    lq_pool_shutdown();
}

/* fork() copies only the calling thread: the child has no workers. The mutex is held across the
 * fork so the child's copy is in a known state. A fork from inside a task is not supported. */
static void before_fork(void)
{
    pthread_mutex_lock(&P.mu);
}

static void after_fork_parent(void)
{
    pthread_mutex_unlock(&P.mu);
}

static void after_fork_child(void)
{
    while (P.head)
        dequeue(P.head);
    P.nworkers = 0;
    P.spinning = P.sleeping = 0;
    P.limit = LQ_POOL_MAX - 1;
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.work_cv, NULL);
}

/* Starts workers (under P.mu) until `want` exist or a start fails. Workers block asynchronous
 * signals, so a tool's SIGINT handler runs on one of its own threads, as before the pool. */
static void start_workers(int want)
{
    if (want > LQ_POOL_MAX - 1)
        want = LQ_POOL_MAX - 1;
    if (P.nworkers >= want || P.nworkers >= P.limit || atomic_load_explicit(&P.stop, memory_order_relaxed))
        return;
    if (!P.registered) {
        /* Tasks hash with OpenSSL, which frees a thread's state when the thread exits, but not
         * once its own atexit cleanup has run; it registers that cleanup when first initialized.
         * Initializing it here, as its first use would (loading its configuration), before
         * registering ours makes ours run first: the workers exit, and free their OpenSSL state,
         * before OpenSSL is torn down (else leak checkers see a worker's error queue lost). */
        OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL);
        if (atexit(pool_at_exit) != 0)
            return; /* workers nobody would join: run inline instead */
        pthread_atfork(before_fork, after_fork_parent, after_fork_child);
        /* Spinning helps only while a core is free for each spinner, besides the caller's. */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        P.max_spinning = cpus < 1 ? 1 : (int)(cpus > LQ_POOL_MAX ? LQ_POOL_MAX : cpus) - 1;
        P.registered = 1;
    }
    sigset_t block, old;
    sigfillset(&block);
    static const int sync_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
    for (size_t k = 0; k < sizeof(sync_signals) / sizeof(sync_signals[0]); k++)
        sigdelset(&block, sync_signals[k]);
    pthread_sigmask(SIG_SETMASK, &block, &old);
    while (P.nworkers < want && P.nworkers < P.limit) {
        if (pthread_create(&P.tids[P.nworkers], NULL, worker_main, NULL) != 0) {
            P.limit = P.nworkers;
            break;
        }
        P.nworkers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---- the caller ---- */

/* Returns once no helper is attached to L (L is off the queue, so none can attach any more). */
static void wait_helpers(loop *L)
{
    if (atomic_load_explicit(&L->state, memory_order_acquire) == 0)
        return;
    long long t0 = now_ns();
    for (unsigned k = 1; P.max_spinning > 0; k++) {
        cpu_pause();
        if (atomic_load_explicit(&L->state, memory_order_acquire) == 0)
            return;
        if (k % 64 == 0 && now_ns() - t0 > POOL_SPIN_NS)
            break;
    }
    pthread_mutex_lock(&P.mu);
    pthread_cond_init(&L->cv, NULL);
    L->woken = 0;
    unsigned s = atomic_load_explicit(&L->state, memory_order_acquire);
    while (s != 0) {
        /* Fails when a helper detached meanwhile (s is reloaded); succeeds only while one is attached. */
        if (atomic_compare_exchange_weak_explicit(&L->state, &s, s | SLEEPING, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            while (!L->woken)
                pthread_cond_wait(&L->cv, &P.mu);
            break;
        }
    }
    pthread_mutex_unlock(&P.mu);
    pthread_cond_destroy(&L->cv);
}

void lq_parallel_for(size_t n, int threads, lq_task_fn fn, void *ctx)
{
    if (threads > LQ_POOL_MAX)
        threads = LQ_POOL_MAX;
    if (threads <= 1 || n <= 1) {
        for (size_t i = 0; i < n; i++)
            fn(ctx, i);
        return;
    }
    int want = (size_t)(threads - 1) < n - 1 ? threads - 1 : (int)(n - 1);
    loop L = {.fn = fn, .ctx = ctx, .n = n, .max_helpers = want};
    atomic_init(&L.next, 0);
    atomic_init(&L.state, 0);
    atomic_init(&L.queued, 0);

    pthread_mutex_lock(&P.mu);
    start_workers(want);
    if (P.nworkers == 0) {
        pthread_mutex_unlock(&P.mu);
        for (size_t i = 0; i < n; i++)
            fn(ctx, i);
        return;
    }
    enqueue(&L);
    atomic_fetch_add_explicit(&P.gen, 1, memory_order_relaxed);
    int wake = want - P.spinning;
    if (wake > P.sleeping)
        wake = P.sleeping;
    pthread_mutex_unlock(&P.mu);
    for (int k = 0; k < wake; k++)
        pthread_cond_signal(&P.work_cv);

    run_tasks(&L, atomic_fetch_add_explicit(&L.next, 1, memory_order_relaxed));

    if (atomic_load_explicit(&L.queued, memory_order_acquire)) {
        pthread_mutex_lock(&P.mu);
        if (atomic_load_explicit(&L.queued, memory_order_relaxed))
            dequeue(&L);
        pthread_mutex_unlock(&P.mu);
    }
    wait_helpers(&L);
}

int lq_pool_workers(void)
{
    pthread_mutex_lock(&P.mu);
    int n = P.nworkers;
    pthread_mutex_unlock(&P.mu);
    return n;
}

void lq_pool_shutdown(void)
{
    pthread_mutex_lock(&P.mu);
    int n = P.nworkers;
    if (n == 0) {
        pthread_mutex_unlock(&P.mu);
        return;
    }
    atomic_store_explicit(&P.stop, 1, memory_order_relaxed);
    pthread_cond_broadcast(&P.work_cv);
    pthread_mutex_unlock(&P.mu);
    pthread_t self = pthread_self();
    for (int i = 0; i < n; i++)
        if (!pthread_equal(P.tids[i], self)) /* exit() called from inside a task */
            pthread_join(P.tids[i], NULL);
    pthread_mutex_lock(&P.mu);
    P.nworkers = 0;
    P.limit = LQ_POOL_MAX - 1;
    atomic_store_explicit(&P.stop, 0, memory_order_relaxed);
    pthread_mutex_unlock(&P.mu);
}
