/* Strict JSON on top of cJSON.
 *
 * cJSON alone accepts trailing garbage, keeps duplicate keys, looks keys up case-insensitively,
 * treats every control byte as whitespace, accepts "01" and "1." and turns every number into a
 * double (reference/ecosystem_reliability.md 5.1). This layer parses a buffer of known length
 * and additionally rejects:
 *   - bytes that are not strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
 *     U+10FFFF), lone surrogates written as \u escapes, and NUL anywhere in the text (also as
 *     \u0000, which no C string can hold);
 *   - unescaped control bytes inside strings, control bytes other than JSON whitespace (space,
 *     tab, LF, CR) outside them, numbers outside the RFC 8259 grammar (leading zeros, "1.",
 *     "+1", "-") and number tokens longer than 63 characters (cJSON's own limit);
 *   - anything after the value except JSON whitespace;
 *   - duplicate keys in any object (compared byte-exactly, case-sensitive, after unescaping);
 *   - nesting deeper than limits.max_depth, checked before cJSON recurses;
 *   - integer tokens (no fraction, no exponent) whose magnitude exceeds 2^53, which a double
 *     cannot hold exactly; and, with limits.integers_only, any number with a fraction or exponent;
 *   - more than limits.max_values values (keys included), checked before cJSON allocates.
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
    int max_depth;        /* objects/arrays nested deeper than this are rejected; the top-level
                             value counts as depth 1. <= 0 means the default 64; values above
                             1000 (cJSON's compile-time nesting limit) act as 1000 */
    int integers_only;    /* reject numbers with '.', 'e' or 'E' (safetensors headers) */
    uint64_t max_values;  /* most values (objects, arrays, keys, strings, numbers, literals) the
                             text may hold; 0 = no limit */
} lq_json_limits;

/* Parses buf[0..len) (need not be NUL-terminated). limits may be NULL for defaults.
 * `file` is used in error messages, which give the byte offset of the problem. On success *out
 * owns a tree freed with cJSON_Delete; on failure *out is NULL.
 * Errors: LQ_ERR_CORRUPT with rules JSON_UTF8, JSON_NUL, JSON_SYNTAX, JSON_TRAILING,
 * JSON_DUP_KEY, JSON_DEPTH, JSON_INT_RANGE, JSON_NOT_INTEGER; LQ_ERR_LIMIT with JSON_LIMIT
 * (max_values); LQ_ERR_NO_MEMORY. For JSON_DUP_KEY, lq_error.tensor holds the top-level key the
 * duplicate lies under (the duplicated key itself when it is a top-level key): in a safetensors
 * header that is the tensor name. */
lq_status lq_json_parse(const char *buf, size_t len, const lq_json_limits *limits,
                        const char *file, cJSON **out, lq_error *err);

/* Reads and parses a whole file (at most max_bytes; 0 = 64 MiB). A missing file gives
 * LQ_ERR_NOT_FOUND, other open/read failures LQ_ERR_IO, a larger file LQ_ERR_LIMIT with rule
 * JSON_LIMIT; then the rules of lq_json_parse with `path` as the file name. */
lq_status lq_json_parse_file(const char *path, size_t max_bytes, const lq_json_limits *limits,
                             cJSON **out, lq_error *err);

/* Large arrays one element at a time. lq_json_parse_file_split reads path like
 * lq_json_parse_file, except that each array named in splits (a path of object keys from the
 * top-level object, e.g. {"plan", "tensors"}) is not built into the returned tree, where it is
 * left empty: its elements are parsed one by one and handed, in order, to each(user, index,
 * element, err), which must not keep the element. The file is mapped, and each pass over it
 * drops the pages it has passed, so peak memory is about 1 MiB of the text, the rest of the tree
 * and one element, neither the whole text nor the array's tree (about 80 bytes per JSON value);
 * an empty or unmappable file is read into memory instead. The same text is
 * accepted and the same errors given as by lq_json_parse_file; a text the splitter does not
 * follow (an array missing, escapes in a key of the path, nesting past the depth limit) is
 * parsed whole and its arrays' elements handed over from that tree. A callback's failure stops
 * the parse and is returned; elements before it may have been handed over already. */
typedef lq_status (*lq_json_each_fn)(void *user, size_t index, const cJSON *elem, lq_error *err);
typedef struct lq_json_split {
    const char *const *keys;
    size_t nkeys;
    lq_json_each_fn each;
    void *user;
} lq_json_split;
lq_status lq_json_parse_file_split(const char *path, size_t max_bytes, const lq_json_limits *limits,
                                   const lq_json_split *splits, size_t nsplits, cJSON **out, lq_error *err);

/* Case-sensitive member lookup; NULL if absent or obj is not an object. */
const cJSON *lq_json_get(const cJSON *obj, const char *key);

/* Exact integer accessors: the item must be a number with an integral value in range
 * (0..2^53 for u64, -2^53..2^53 for i64). Return 0 on success, -1 otherwise (then *out is
 * left unchanged). Never use cJSON's valueint, which saturates at INT_MAX. */
int lq_json_u64(const cJSON *item, uint64_t *out);
int lq_json_i64(const cJSON *item, int64_t *out);

#ifdef __cplusplus
}
#endif
#endif
