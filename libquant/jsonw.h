/* Deterministic JSON writer.
 *
 * Builds JSON text in memory for manifests, reports and state files whose bytes must not depend
 * on the run, the thread count or the locale. The output is a pure function of the call
 * sequence:
 *   - indent 0 (compact): no whitespace at all, separators "," and ":", no trailing newline
 *     (Python's json.dumps(obj, separators=(",", ":"), ensure_ascii=False));
 *   - indent n > 0 (pretty): every member / element on its own line indented n spaces per
 *     level, separators "," (end of line) and ": ", empty containers as "{}" and "[]", and a
 *     final newline (Python's json.dumps(obj, indent=n, ensure_ascii=False) + "\n").
 * Keys appear in call order; duplicate keys are not detected (libquant's strict reader,
 * json.h, rejects them, so callers must not write any).
 *
 * Strings and keys are UTF-8 and must be strictly valid (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). Escaped: '"' and '\' as \" and \\, the control bytes
 * U+0000..U+001F as \b \f \n \r \t where those exist and \u00XX (lowercase hex) otherwise.
 * Everything else, DEL and non-ASCII included, is written raw (Python's ensure_ascii=False).
 *
 * Errors are sticky: the first misuse or failure is recorded, every later call does nothing,
 * and lq_jw_finish reports it. Every call returns the writer's status so far (LQ_OK while
 * nothing went wrong), so callers may check each call or only the final one. A NULL writer
 * (lq_jw_new out of memory) is accepted everywhere and reported as LQ_ERR_NO_MEMORY.
 * Rule ids: JW_MISUSE (LQ_ERR_INVALID_ARGUMENT: key outside an object, two keys in a row, a
 * value without a key inside an object, an end that does not match the open container or
 * leaves a key without value, a second top-level value, a call after finish, NULL text,
 * digits outside 1..17), JW_UTF8 (LQ_ERR_INVALID_ARGUMENT: invalid UTF-8; the message gives
 * the byte offset), JW_RAW (LQ_ERR_INVALID_ARGUMENT: lq_jw_raw text that is not one strict
 * JSON value), JW_DEPTH (LQ_ERR_LIMIT: more than LQ_JW_MAX_DEPTH nested containers),
 * JW_UNBALANCED (LQ_ERR_INVALID_ARGUMENT, from finish: containers left open or no value
 * written), JW_NOMEM (LQ_ERR_NO_MEMORY). A writer is not thread-safe; separate writers are
 * independent. */
#ifndef LIBQUANT_JSONW_H
#define LIBQUANT_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Containers nested deeper than this are refused (the same default as lq_json_parse, so
 * everything written here can be read back with default limits). */
#define LQ_JW_MAX_DEPTH 64
/* Largest accepted indent. */
#define LQ_JW_MAX_INDENT 16

typedef struct lq_jw lq_jw;

/* New writer; indent 0 = compact, 1..LQ_JW_MAX_INDENT = pretty with that many spaces per
 * level. NULL when indent is out of range or memory is exhausted. */
lq_jw *lq_jw_new(int indent);
/* Frees the writer and any text not handed out by lq_jw_finish. Accepts NULL. */
void lq_jw_free(lq_jw *w);

/* Containers. */
lq_status lq_jw_begin_object(lq_jw *w);
lq_status lq_jw_end_object(lq_jw *w);
lq_status lq_jw_begin_array(lq_jw *w);
lq_status lq_jw_end_array(lq_jw *w);

/* The next member's key (NUL-terminated UTF-8); only directly inside an object, and exactly
 * one value must follow. lq_jw_key_n takes a length, so the key may contain NUL (\u0000). */
lq_status lq_jw_key(lq_jw *w, const char *k);
lq_status lq_jw_key_n(lq_jw *w, const char *k, size_t len);

/* Values. A value at the top level, as an array element, or after a key. */
lq_status lq_jw_string(lq_jw *w, const char *s);
lq_status lq_jw_string_n(lq_jw *w, const char *s, size_t len);
/* Exact decimal integers (all 64 bits; readers limited to doubles lose precision above 2^53). */
lq_status lq_jw_u64(lq_jw *w, uint64_t v);
lq_status lq_jw_i64(lq_jw *w, int64_t v);
/* A double with `digits` (1..17) significant digits, formatted as C's "%.*g" would in the C
 * locale whatever the current locale is (so "1.5e+20", "0.001", "-0", "3", never a comma).
 * Integral results carry no decimal point ("3"), which JSON readers may type as integers.
 * Non-finite values (NaN, +-Inf) are written as null and counted (lq_jw_nonfinite); they
 * are not an error. */
lq_status lq_jw_double(lq_jw *w, double v, int digits);
/* "%.17g": enough digits that strtod / Python's float() give back exactly v. Non-finite values
 * as in lq_jw_double. */
lq_status lq_jw_double_exact(lq_jw *w, double v);
lq_status lq_jw_bool(lq_jw *w, int v);
lq_status lq_jw_null(lq_jw *w);
/* A pre-rendered value, inserted verbatim after checking that it is exactly one strict JSON
 * value by lq_json_parse's rules (so integers beyond 2^53 are refused here: use lq_jw_u64)
 * with no whitespace before or after it. Pretty mode does not re-indent it, so for output
 * identical to Python's pass a scalar or an empty container. */
lq_status lq_jw_raw(lq_jw *w, const char *json);

/* How many non-finite doubles were written as null so far (0 for NULL). */
size_t lq_jw_nonfinite(const lq_jw *w);

/* A sink for long texts (manifests, reports, state files at hundreds of thousands of tensors):
 * once set, the writer hands its text to fn in pieces of about LQ_JW_SINK_CHUNK bytes, in order,
 * and keeps only the piece being filled, so the whole text is never held in memory. The bytes
 * are the same as without a sink. fn returns LQ_OK, or a failure status with err filled, which
 * becomes the writer's error (sticky, reported by lq_jw_finish). Set it before the first value;
 * NULL fn goes back to keeping the text. */
#define LQ_JW_SINK_CHUNK ((size_t)64 << 10)
typedef lq_status (*lq_jw_sink_fn)(void *user, const char *text, size_t len, lq_error *err);
lq_status lq_jw_set_sink(lq_jw *w, lq_jw_sink_fn fn, void *user);

/* Ends writing. With a sink, the rest of the text goes to it, *out (out may be NULL) receives
 * NULL and *len the length of the whole text; otherwise as follows. On success (no error recorded, every container closed, exactly one top-level
 * value) *out receives the malloc'ed NUL-terminated text (caller frees) and *len (may be NULL)
 * its length without the NUL; the writer keeps no copy and refuses further calls (JW_MISUSE),
 * but must still be freed. On failure *out is NULL, *len is 0 and the recorded (or the
 * JW_UNBALANCED) error is returned and filled into err. */
lq_status lq_jw_finish(lq_jw *w, char **out, size_t *len, lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
