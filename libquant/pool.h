/* One persistent thread pool for the whole process: libquant's conversion, the runtime and the
 * tools all run their parallel loops through lq_parallel_for, so no call creates or joins a
 * thread (before this, every linear layer and every conversion batch started its own threads).
 *
 * Contract:
 * - lq_parallel_for(n, threads, fn, ctx) calls fn(ctx, i) exactly once for every i in [0, n) and
 *   returns when every call has returned. At most `threads` threads work on the loop, the calling
 *   thread included; threads <= 1 or n <= 1 runs every task inline on the caller, in index order.
 * - Tasks are handed out in index order to whichever participating thread is free. What a task
 *   computes must not depend on which thread runs it; then results do not depend on `threads`.
 * - Nested use is safe: a task may itself call lq_parallel_for. The caller of a loop always works
 *   on its own loop until no task is left, so a loop completes even when every worker is busy
 *   (no deadlock, whatever the nesting depth).
 * - Workers are started on first need, at most LQ_POOL_MAX - 1 of them, and then kept for the
 *   life of the process; an atexit handler joins them (leak checkers see no thread). A worker that
 *   cannot be started only means fewer threads: the loop still completes.
 * - A call allocates nothing once its workers exist (the runtime's steps count allocations).
 * - Thread-safe: loops started from different threads at once share the workers. */
#ifndef LIBQUANT_POOL_H
#define LIBQUANT_POOL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LQ_POOL_MAX 256

typedef void (*lq_task_fn)(void *ctx, size_t i);

void lq_parallel_for(size_t n, int threads, lq_task_fn fn, void *ctx);

/* Workers alive now (0 before the first parallel loop). */
int lq_pool_workers(void);

/* Joins every worker now (they are restarted by the next loop that needs them). Must not be
 * called while a loop runs. */
void lq_pool_shutdown(void);

#ifdef __cplusplus
}
#endif
#endif
