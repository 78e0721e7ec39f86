/* Minimal test harness: each test program runs its cases, counts failed checks, prints the
 * first failures with file:line, and exits 0 (pass), 1 (fail) or 77 (skip, meson's convention).
 * Expected values in tests always say where they come from. */
#ifndef MIMO_TESTS_HARNESS_H
#define MIMO_TESTS_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int th_checks, th_failures;

#define TH_REPORT(...)                                                                        \
    do {                                                                                      \
        th_failures++;                                                                        \
        if (th_failures <= 20) {                                                              \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
        }                                                                                     \
    } while (0)

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        th_checks++;                                                                          \
        if (!(cond))                                                                          \
            TH_REPORT("check failed: %s", #cond);                                             \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                  \
    do {                                                                                      \
        th_checks++;                                                                          \
        if (!(cond))                                                                          \
            TH_REPORT(__VA_ARGS__);                                                           \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                                    \
    do {                                                                                      \
        unsigned long long th_a = (unsigned long long)(a), th_b = (unsigned long long)(b);    \
        th_checks++;                                                                          \
        if (th_a != th_b)                                                                     \
            TH_REPORT("%s == %s failed: %llu vs %llu", #a, #b, th_a, th_b);                   \
    } while (0)

#define CHECK_STR(a, b)                                                                       \
    do {                                                                                      \
        const char *th_a = (a), *th_b = (b);                                                  \
        th_checks++;                                                                          \
        if (!th_a || !th_b || strcmp(th_a, th_b) != 0)                                        \
            TH_REPORT("%s == %s failed: \"%s\" vs \"%s\"", #a, #b, th_a ? th_a : "(null)",    \
                      th_b ? th_b : "(null)");                                                \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_NEAR(a, b, atol, rtol)                                                          \
    do {                                                                                      \
        double th_a = (double)(a), th_b = (double)(b);                                        \
        th_checks++;                                                                          \
        if (!(fabs(th_a - th_b) <= (atol) + (rtol)*fabs(th_b)))                               \
            TH_REPORT("%s ~ %s failed: %.9g vs %.9g (atol %g rtol %g)", #a, #b, th_a, th_b,    \
                      (double)(atol), (double)(rtol));                                        \
    } while (0)

/* Ends the program: prints a one-line summary, returns the exit status for main. */
static inline int th_finish(const char *name)
{
    fprintf(stderr, "%s: %d checks, %d failed\n", name, th_checks, th_failures);
    return th_failures ? 1 : 0;
}

#define TH_SKIP_EXIT 77

#endif
