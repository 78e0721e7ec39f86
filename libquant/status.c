/* Status names and error-detail helpers (status.h). */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *lq_status_str(lq_status st)
{
    switch (st) {
    case LQ_OK: return "ok";
    case LQ_ERR_INVALID_ARGUMENT: return "invalid argument";
    case LQ_ERR_UNSUPPORTED: return "unsupported";
    case LQ_ERR_IO: return "I/O error";
    case LQ_ERR_NO_MEMORY: return "out of memory";
    case LQ_ERR_CORRUPT: return "corrupt input";
    case LQ_ERR_NUMERIC: return "numeric error";
    case LQ_ERR_NOT_FOUND: return "not found";
    case LQ_ERR_LIMIT: return "limit exceeded";
    case LQ_ERR_CUDA: return "CUDA error";
    case LQ_ERR_CANCELLED: return "cancelled";
    case LQ_ERR_CHECK_FAILED: return "check failed";
    }
    return "unknown status";
}

void lq_error_clear(lq_error *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

/* Copies at most cap-1 bytes, always terminating; truncation is acceptable for messages. */
static void copy_field(char *dst, size_t cap, const char *src)
{
    if (!src) {
        dst[0] = '\0';
        return;
    }
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

lq_status lq_fail(lq_error *err, lq_status st, const char *file, const char *tensor,
                  const char *rule, const char *fmt, ...)
{
    if (!err)
        return st;
    err->status = st;
    copy_field(err->file, sizeof(err->file), file);
    copy_field(err->tensor, sizeof(err->tensor), tensor);
    copy_field(err->rule, sizeof(err->rule), rule);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    } else {
        err->msg[0] = '\0';
    }
    return st;
}

const char *lq_error_format(const lq_error *err, char *buf, size_t n)
{
    if (!buf || n == 0)
        return buf;
    buf[0] = '\0';
    if (!err)
        return buf;
    size_t used = 0;
    const char *parts[4] = {err->file, err->tensor, err->rule, err->msg};
    for (int i = 0; i < 4; i++) {
        if (!parts[i][0] || used + 1 >= n)
            continue;
        int w = snprintf(buf + used, n - used, "%s%s", used ? ": " : "", parts[i]);
        if (w < 0)
            break;
        used += (size_t)w < n - used ? (size_t)w : n - used - 1;
    }
    if (used + 1 < n)
        snprintf(buf + used, n - used, "%s(%s)", used ? " " : "", lq_status_str(err->status));
    return buf;
}
