/* Deterministic JSON writer (jsonw.h).
 *
 * The layout rules are Python's json.dumps with ensure_ascii=False, so a Python peer can
 * reproduce our bytes: with an indent, a non-empty container puts each item on a new line at
 * (level + 1) * indent spaces, separates items with "," at the end of the line, and closes on
 * a new line at level * indent; empty containers stay "{}" / "[]". Only the writer's call
 * sequence decides the bytes: nothing depends on the locale (see format_double), on
 * allocation addresses or on timing. */
#include "jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

typedef struct jw_frame {
    unsigned char is_object;
    unsigned char have_key; /* a key was written and its value is still due */
    size_t count;           /* items (members or elements) begun so far */
} jw_frame;

struct lq_jw {
    char *buf;
    size_t len, cap;
    int indent;
    int depth;        /* open containers */
    int top_started;  /* the single top-level value has been begun */
    int finished;
    size_t nonfinite;
    lq_jw_sink_fn sink;  /* NULL: the text stays in buf */
    void *sink_user;
    size_t sunk;         /* bytes already handed to the sink */
    lq_error err;     /* the first error; err.status == LQ_OK while none */
    jw_frame stack[LQ_JW_MAX_DEPTH];
};

/* Records the first error only: later failures are usually consequences of the first. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static lq_status jw_fail(lq_jw *w, lq_status st, const char *rule, const char *fmt, ...)
{
    if (w->err.status != LQ_OK)
        return w->err.status;
    w->err.status = st;
    snprintf(w->err.rule, sizeof(w->err.rule), "%s", rule);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err.msg, sizeof(w->err.msg), fmt, ap);
    va_end(ap);
    return st;
}

/* Status to hand back before doing anything: NULL writer, earlier error, or finished. */
static lq_status jw_precheck(lq_jw *w)
{
    if (!w)
        return LQ_ERR_NO_MEMORY;
    if (w->err.status != LQ_OK)
        return w->err.status;
    if (w->finished)
        return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", "writer already finished");
    return LQ_OK;
}

/* Hands the buffered text to the sink. */
static void jw_drain(lq_jw *w)
{
    if (!w->sink || w->len == 0 || w->err.status != LQ_OK)
        return;
    lq_error e;
    lq_error_clear(&e);
    lq_status st = w->sink(w->sink_user, w->buf, w->len, &e);
    if (st != LQ_OK) {
        w->err = e;
        w->err.status = st;
        return;
    }
    w->sunk += w->len;
    w->len = 0;
    w->buf[0] = '\0';
}

static void jw_append(lq_jw *w, const char *s, size_t n)
{
    if (w->err.status != LQ_OK)
        return;
    if (w->sink && w->len + n + 1 > LQ_JW_SINK_CHUNK) {
        jw_drain(w);
        if (w->err.status != LQ_OK)
            return;
    }
    if (n > SIZE_MAX - 1 - w->len) {
        jw_fail(w, LQ_ERR_NO_MEMORY, "JW_NOMEM", "text larger than memory");
        return;
    }
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1)
            cap = cap > SIZE_MAX / 2 ? w->len + n + 1 : cap * 2;
        char *nb = realloc(w->buf, cap);
        if (!nb) {
            jw_fail(w, LQ_ERR_NO_MEMORY, "JW_NOMEM", "cannot grow the text to %zu bytes", cap);
            return;
        }
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void jw_puts(lq_jw *w, const char *s)
{
    jw_append(w, s, strlen(s));
}

/* Newline plus `level` indents (pretty mode only). */
static void jw_newline(lq_jw *w, int level)
{
    static const char spaces[] = "                "; /* LQ_JW_MAX_INDENT spaces */
    if (w->indent == 0)
        return;
    jw_append(w, "\n", 1);
    for (int i = 0; i < level; i++)
        jw_append(w, spaces, (size_t)w->indent);
}

/* Separator and indentation before a new item of the innermost container. */
static void jw_item_prefix(lq_jw *w)
{
    jw_frame *f = &w->stack[w->depth - 1];
    if (f->count++ > 0)
        jw_append(w, ",", 1);
    jw_newline(w, w->depth);
}

/* Checks that a value may start here and writes what precedes it. */
static lq_status jw_begin_value(lq_jw *w, const char *what)
{
    lq_status st = jw_precheck(w);
    if (st != LQ_OK)
        return st;
    if (w->depth == 0) {
        if (w->top_started)
            return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE",
                           "%s after the top-level value", what);
        w->top_started = 1;
        return LQ_OK;
    }
    jw_frame *f = &w->stack[w->depth - 1];
    if (f->is_object) {
        if (!f->have_key)
            return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE",
                           "%s inside an object without a key", what);
        f->have_key = 0;
        return LQ_OK;
    }
    jw_item_prefix(w);
    return w->err.status;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is invalid (RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC0 && c < 0xE0) {
        len = 2, cp = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c < 0xF0) {
        len = 3, cp = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c < 0xF8) {
        len = 4, cp = c & 0x07u, min = 0x10000;
    } else {
        return 0; /* continuation byte or 0xF8..0xFF as a lead byte */
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Writes s[0..n) as a quoted JSON string. Runs of bytes that need no escape are appended in
 * one piece. */
static void jw_quoted(lq_jw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0; /* start of the pending raw run */
    jw_append(w, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        const char *esc = NULL;
        char ubuf[7];
        if (c >= 0x80) {
            size_t k = utf8_seq(u + i, n - i);
            if (k == 0) {
                jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_UTF8",
                        "invalid UTF-8 at byte %zu of a %zu-byte string", i, n);
                return;
            }
            i += k;
            continue;
        }
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                memcpy(ubuf, "\\u00", 4);
                ubuf[4] = hex[c >> 4];
                ubuf[5] = hex[c & 15];
                ubuf[6] = '\0';
                esc = ubuf;
            }
        }
        if (esc) {
            jw_append(w, s + run, i - run);
            jw_puts(w, esc);
            run = i + 1;
        }
        i++;
    }
    jw_append(w, s + run, n - run);
    jw_append(w, "\"", 1);
}

lq_jw *lq_jw_new(int indent)
{
    if (indent < 0 || indent > LQ_JW_MAX_INDENT)
        return NULL;
    lq_jw *w = calloc(1, sizeof(*w));
    if (w)
        w->indent = indent;
    return w;
}

void lq_jw_free(lq_jw *w)
{
    if (!w)
        return;
    free(w->buf);
    free(w);
}

static lq_status jw_begin(lq_jw *w, int is_object)
{
    const char *what = is_object ? "object" : "array";
    lq_status st = jw_begin_value(w, what);
    if (st != LQ_OK)
        return st;
    if (w->depth >= LQ_JW_MAX_DEPTH)
        return jw_fail(w, LQ_ERR_LIMIT, "JW_DEPTH", "more than %d nested containers",
                       LQ_JW_MAX_DEPTH);
    jw_append(w, is_object ? "{" : "[", 1);
    w->stack[w->depth++] = (jw_frame){.is_object = (unsigned char)is_object};
    return w->err.status;
}

static lq_status jw_end(lq_jw *w, int is_object)
{
    const char *what = is_object ? "object" : "array";
    lq_status st = jw_precheck(w);
    if (st != LQ_OK)
        return st;
    if (w->depth == 0)
        return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", "end of %s with no open container",
                       what);
    jw_frame *f = &w->stack[w->depth - 1];
    if (f->is_object != is_object)
        return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", "end of %s inside an %s", what,
                       f->is_object ? "object" : "array");
    if (f->have_key)
        return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE",
                       "end of object after a key without value");
    w->depth--;
    if (f->count > 0)
        jw_newline(w, w->depth);
    jw_append(w, is_object ? "}" : "]", 1);
    return w->err.status;
}

lq_status lq_jw_begin_object(lq_jw *w) { return jw_begin(w, 1); }
lq_status lq_jw_end_object(lq_jw *w) { return jw_end(w, 1); }
lq_status lq_jw_begin_array(lq_jw *w) { return jw_begin(w, 0); }
lq_status lq_jw_end_array(lq_jw *w) { return jw_end(w, 0); }

lq_status lq_jw_key_n(lq_jw *w, const char *k, size_t len)
{
    lq_status st = jw_precheck(w);
    if (st != LQ_OK)
        return st;
    if (!k)
        return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", "NULL key");
    if (w->depth == 0 || !w->stack[w->depth - 1].is_object)
        return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", "key outside an object");
    jw_frame *f = &w->stack[w->depth - 1];
    if (f->have_key)
        return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", "key after a key without value");
    jw_item_prefix(w);
    jw_quoted(w, k, len);
    jw_puts(w, w->indent ? ": " : ":");
    f->have_key = 1;
    return w->err.status;
}

lq_status lq_jw_key(lq_jw *w, const char *k)
{
    return lq_jw_key_n(w, k, k ? strlen(k) : 0);
}

lq_status lq_jw_string_n(lq_jw *w, const char *s, size_t len)
{
    lq_status st = jw_begin_value(w, "string");
    if (st != LQ_OK)
        return st;
    if (!s)
        return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", "NULL string");
    jw_quoted(w, s, len);
    return w->err.status;
}

lq_status lq_jw_string(lq_jw *w, const char *s)
{
    return lq_jw_string_n(w, s, s ? strlen(s) : 0);
}

/* Writes an already formatted scalar token. */
static lq_status jw_token(lq_jw *w, const char *what, const char *tok)
{
    lq_status st = jw_begin_value(w, what);
    if (st != LQ_OK)
        return st;
    jw_puts(w, tok);
    return w->err.status;
}

lq_status lq_jw_u64(lq_jw *w, uint64_t v)
{
    char b[24];
    snprintf(b, sizeof(b), "%" PRIu64, v);
    return jw_token(w, "number", b);
}

lq_status lq_jw_i64(lq_jw *w, int64_t v)
{
    char b[24];
    snprintf(b, sizeof(b), "%" PRId64, v);
    return jw_token(w, "number", b);
}

/* "%.*g" in the C locale. printf's decimal point follows LC_NUMERIC (a comma, or even a
 * multi-byte string, in some locales), and uselocale() would need a locale object per call
 * or per thread; instead the output is repaired: %g produces only a sign, digits, the decimal
 * point, 'e' and the exponent sign, so any run of other bytes is the decimal point and becomes
 * one '.'. Integers are never affected by the locale without the ' flag. */
static int is_g_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e';
}

static void format_double(char *out, size_t cap, double v, int digits)
{
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%.*g", digits, v);
    size_t o = 0;
    for (size_t i = 0; tmp[i] && o + 1 < cap;) {
        if (is_g_char(tmp[i])) {
            out[o++] = tmp[i++];
            continue;
        }
        out[o++] = '.';
        while (tmp[i] && !is_g_char(tmp[i]))
            i++;
    }
    out[o] = '\0';
}

lq_status lq_jw_double(lq_jw *w, double v, int digits)
{
    lq_status st = jw_precheck(w);
    if (st != LQ_OK)
        return st;
    if (digits < 1 || digits > 17)
        return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE",
                       "%d significant digits (allowed 1..17)", digits);
    if (!isfinite(v)) {
        st = jw_token(w, "number", "null");
        if (st == LQ_OK)
            w->nonfinite++;
        return st;
    }
    char b[64];
    format_double(b, sizeof(b), v, digits);
    return jw_token(w, "number", b);
}

lq_status lq_jw_double_exact(lq_jw *w, double v)
{
    return lq_jw_double(w, v, 17);
}

lq_status lq_jw_bool(lq_jw *w, int v)
{
    return jw_token(w, "boolean", v ? "true" : "false");
}

lq_status lq_jw_null(lq_jw *w)
{
    return jw_token(w, "null", "null");
}

lq_status lq_jw_raw(lq_jw *w, const char *json)
{
    lq_status st = jw_precheck(w);
    if (st != LQ_OK)
        return st;
    if (!json)
        return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", "NULL raw text");
    /* Surrounding whitespace would be copied into the output and make it non-canonical. */
    size_t n = strlen(json);
    if (n == 0 || strchr(" \t\r\n", json[0]) || strchr(" \t\r\n", json[n - 1]))
        return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_RAW",
                       "raw text is empty or has surrounding whitespace");
    /* A pre-rendered value must be one strict JSON value: anything else would make the whole
     * document unreadable by our own strict reader. */
    cJSON *tree = NULL;
    lq_error perr;
    lq_error_clear(&perr);
    st = lq_json_parse(json, n, NULL, NULL, &tree, &perr);
    cJSON_Delete(tree);
    if (st == LQ_ERR_NO_MEMORY)
        return jw_fail(w, st, "JW_NOMEM", "out of memory checking raw text");
    if (st != LQ_OK)
        return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_RAW", "raw text is not one JSON value: %s: %s",
                       perr.rule, perr.msg);
    return jw_token(w, "raw value", json);
}

lq_status lq_jw_set_sink(lq_jw *w, lq_jw_sink_fn fn, void *user)
{
    lq_status st = jw_precheck(w);
    if (st != LQ_OK)
        return st;
    if (w->top_started)
        return jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", "sink set after the first value");
    w->sink = fn;
    w->sink_user = user;
    return LQ_OK;
}

size_t lq_jw_nonfinite(const lq_jw *w)
{
    return w ? w->nonfinite : 0;
}

lq_status lq_jw_finish(lq_jw *w, char **out, size_t *len, lq_error *err)
{
    if (out)
        *out = NULL;
    if (len)
        *len = 0;
    if (!w)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, "JW_NOMEM", "no writer (out of memory)");
    if (!out && !w->sink)
        jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", "NULL output pointer");
    lq_status st = jw_precheck(w);
    if (st == LQ_OK && w->depth > 0)
        st = jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_UNBALANCED", "%d container%s still open",
                     w->depth, w->depth == 1 ? "" : "s");
    if (st == LQ_OK && !w->top_started)
        st = jw_fail(w, LQ_ERR_INVALID_ARGUMENT, "JW_UNBALANCED", "no value written");
    if (st == LQ_OK && w->indent)
        jw_append(w, "\n", 1);
    if (w->sink)
        jw_drain(w);
    st = w->err.status;
    if (st != LQ_OK) {
        if (w->err.file[0] || w->err.tensor[0]) /* a sink's error, with its place */
            return lq_fail(err, st, w->err.file, w->err.tensor[0] ? w->err.tensor : NULL, w->err.rule, "%s",
                           w->err.msg);
        return lq_fail(err, st, NULL, NULL, w->err.rule, "%s", w->err.msg);
    }
    if (w->sink) {
        if (len)
            *len = w->sunk;
        w->finished = 1;
        return LQ_OK;
    }
    *out = w->buf;
    if (len)
        *len = w->len;
    w->buf = NULL;
    w->len = w->cap = 0;
    w->finished = 1;
    return LQ_OK;
}
