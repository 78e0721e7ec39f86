/* Counting allocations in a test program (include it in exactly one file of the executable).
 * g_counting on: every malloc, calloc, realloc, aligned_alloc and posix_memalign of the process, libc's
 * own included, adds one to g_allocs. The regular build defines those functions here and forwards
 * to glibc's __libc_* allocator; under ASan or TSan the sanitizer's allocator hooks count instead
 * (a sanitizer owns malloc there). alloc_count_install() returns 0 where neither is possible. */
#ifndef MIMO_TESTS_ALLOC_COUNT_H
#define MIMO_TESTS_ALLOC_COUNT_H

#include <stdatomic.h>
#include <stddef.h>

static atomic_int g_counting;
static atomic_long g_allocs;

static void count_alloc(void)
{
    if (atomic_load_explicit(&g_counting, memory_order_relaxed))
        atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ALLOC_COUNT_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ALLOC_COUNT_SANITIZER 1
#endif

#if defined(ALLOC_COUNT_SANITIZER)
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
static void on_malloc(const volatile void *p, size_t n)
{
    (void)p, (void)n;
    count_alloc();
}
static void on_free(const volatile void *p) { (void)p; }
static int alloc_count_install(void) { return __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) != 0; }
#elif defined(__GLIBC__)
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);
void *malloc(size_t n)
{
    count_alloc();
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t size)
{
    count_alloc();
    return __libc_calloc(n, size);
}
void *realloc(void *p, size_t n)
{
    count_alloc();
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t align, size_t n)
{
    count_alloc();
    return __libc_memalign(align, n);
}
int posix_memalign(void **p, size_t align, size_t n)
{
    count_alloc();
    *p = __libc_memalign(align, n);
    return *p ? 0 : 12; /* ENOMEM */
}
void free(void *p) { __libc_free(p); }
static int alloc_count_install(void) { return 1; }
#else
static int alloc_count_install(void) { return 0; }
#endif

#endif
