/* libquant status codes and error details.
 *
 * Every non-trivial libquant call returns an lq_status and, on failure, fills an lq_error
 * (when the caller passes one) naming the file, the tensor and the rule that was broken, so a
 * tool can print one precise line. Library code never prints and never exits. */
#ifndef LIBQUANT_STATUS_H
#define LIBQUANT_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lq_status {
    LQ_OK = 0,
    LQ_ERR_INVALID_ARGUMENT = 1, /* caller error: bad pointer, size, mode */
    LQ_ERR_UNSUPPORTED = 2,      /* valid input we do not handle (e.g. K not a multiple of 32) */
    LQ_ERR_IO = 3,               /* open/read/write/fsync/rename failed; errno is in the message */
    LQ_ERR_NO_MEMORY = 4,
    LQ_ERR_CORRUPT = 5,          /* input breaks a format rule; lq_error.rule says which */
    LQ_ERR_NUMERIC = 6,          /* non-finite value where a finite one is required */
    LQ_ERR_NOT_FOUND = 7,        /* named tensor, key or file absent */
    LQ_ERR_LIMIT = 8,            /* a resource cap was hit before allocating (header size, tensor count) */
    LQ_ERR_CUDA = 9,
    LQ_ERR_CANCELLED = 10,       /* stopped on request (SIGINT/SIGTERM); completed work is kept */
    LQ_ERR_CHECK_FAILED = 11     /* the work was done but a quality gate failed (e.g. --min-sqnr) */
} lq_status;

/* Short stable name of a status ("ok", "corrupt input", ...). Never NULL. */
const char *lq_status_str(lq_status st);

/* Error details. `rule` is a short stable identifier of the broken rule (for example
 * "ST_OFFSET_GAP"); tests and CI logs match on it. Any field may be empty. */
typedef struct lq_error {
    lq_status status;
    char rule[48];
    char file[512];
    char tensor[256];
    char msg[512];
} lq_error;

/* Resets every field. Accepts NULL. */
void lq_error_clear(lq_error *err);

/* Fills err (if not NULL) and returns st. file, tensor and rule may be NULL. The message is
 * printf-formatted. Returns st so callers can write `return lq_fail(err, ...);`. */
lq_status lq_fail(lq_error *err, lq_status st, const char *file, const char *tensor,
                  const char *rule, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

/* Writes "file: tensor: rule: msg (status)" into buf (always NUL-terminated when n > 0),
 * omitting empty parts. Returns buf. */
const char *lq_error_format(const lq_error *err, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
