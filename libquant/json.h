/* Strict JSON on top of cJSON.
 *
 * cJSON alone accepts trailing garbage, keeps duplicate keys, looks keys up case-insensitively
 * and turns every number into a double (reference/ecosystem_reliability.md 5.1). This layer
 * parses a buffer of known length and additionally rejects:
 *   - bytes that are not strict UTF-8, and NUL anywhere in the text;
 *   - anything after the value except JSON whitespace (space, tab, LF, CR);
 *   - duplicate keys in any object (compared byte-exactly, case-sensitive);
 *   - nesting deeper than limits.max_depth;
 *   - integer tokens (no fraction, no exponent) whose magnitude exceeds 2^53, which a double
 *     cannot hold exactly; and, with limits.integers_only, any number with a fraction or exponent.
 * Lookups are case-sensitive. Integers are read exactly through lq_json_u64/lq_json_i64. */
#ifndef LIBQUANT_JSON_H
#define LIBQUANT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LQ_JSON_MAX_EXACT_INT 9007199254740992.0 /* 2^53 */

typedef struct lq_json_limits {
    int max_depth;        /* objects/arrays nested deeper than this are rejected (default 64) */
    int integers_only;    /* reject numbers with '.', 'e' or 'E' (safetensors headers) */
} lq_json_limits;

/* Parses buf[0..len) (need not be NUL-terminated). limits may be NULL for defaults.
 * `file` is used in error messages. On success *out owns a tree freed with cJSON_Delete.
 * Errors: LQ_ERR_CORRUPT with rules JSON_UTF8, JSON_NUL, JSON_SYNTAX, JSON_TRAILING,
 * JSON_DUP_KEY, JSON_DEPTH, JSON_INT_RANGE, JSON_NOT_INTEGER. */
lq_status lq_json_parse(const char *buf, size_t len, const lq_json_limits *limits,
                        const char *file, cJSON **out, lq_error *err);

/* Reads and parses a whole file (at most max_bytes; 0 = 64 MiB). */
lq_status lq_json_parse_file(const char *path, size_t max_bytes, const lq_json_limits *limits,
                             cJSON **out, lq_error *err);

/* Case-sensitive member lookup; NULL if absent or obj is not an object. */
const cJSON *lq_json_get(const cJSON *obj, const char *key);

/* Exact integer accessors: the item must be a number with an integral value in range
 * (0..2^53 for u64, -2^53..2^53 for i64). Return 0 on success, -1 otherwise. */
int lq_json_u64(const cJSON *item, uint64_t *out);
int lq_json_i64(const cJSON *item, int64_t *out);

#ifdef __cplusplus
}
#endif
#endif
