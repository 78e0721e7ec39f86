/* Strict JSON (json.h): a byte-level pre-scan, then cJSON, then a tree walk.
 *
 * The pre-scan runs before cJSON sees the text so that cJSON's leniencies never decide anything
 * (reference/ecosystem_reliability.md 5.1): it validates UTF-8 and escapes, rejects NUL and
 * stray control bytes (cJSON skips every byte <= 0x20 as whitespace), checks every number token
 * against the RFC 8259 grammar and the 2^53 bound, counts values, and bounds the nesting depth
 * so that cJSON's recursion stays shallow. It tracks whether it is inside a string, so brackets,
 * quotes and digits inside strings (escaped quotes included) are never mistaken for structure.
 *
 * cJSON is then given a NUL-terminated copy (it must see the terminator to stop, and
 * cJSON_ParseWithLengthOpts on a non-terminated buffer treats padding the wrong way round), and
 * what follows the parsed value is checked here. Duplicate keys are found by sorting each
 * object's keys, since cJSON keeps duplicates and its plain lookup is case-insensitive. */
#include "json.h"

#include "internal/fileio.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DEFAULT_DEPTH 64
/* cJSON's CJSON_NESTING_LIMIT in the packaged build; deeper text fails inside cJSON. */
#define CJSON_DEPTH_CAP 1000
/* cJSON copies a number token into a 64-byte buffer and silently parses only its prefix. */
#define MAX_NUMBER_TOKEN 63
#define DEFAULT_FILE_CAP (64u * 1024u * 1024u)
/* Objects with at most this many members are checked pairwise, without allocating. */
#define SMALL_OBJECT 8

static const char *label_of(const char *file)
{
    return file ? file : "<json>";
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Length of the well-formed UTF-8 sequence starting at s[0] (RFC 3629, table in section 4),
 * or 0 when it is malformed, overlong, a surrogate, above U+10FFFF or cut off by the end. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* below: overlong */
        else if (c == 0xED)
            hi = 0x9F; /* above: UTF-16 surrogates D800-DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* below: overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above: beyond U+10FFFF */
    } else {
        return 0; /* continuation byte, C0/C1 (always overlong), F5-FF */
    }
    if (avail < n)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

typedef struct scan_ctx {
    const unsigned char *s;
    size_t n;
    const char *file;
    int max_depth;
    int integers_only;
    uint64_t max_values;
    uint64_t values;
    lq_error *err;
} scan_ctx;

static lq_status scan_fail(const scan_ctx *c, lq_status st, const char *rule, size_t at,
                           const char *what)
{
    return lq_fail(c->err, st, label_of(c->file), NULL, rule, "%s at byte %zu", what, at);
}

static lq_status count_value(scan_ctx *c, size_t at)
{
    c->values++;
    if (c->max_values && c->values > c->max_values)
        return lq_fail(c->err, LQ_ERR_LIMIT, label_of(c->file), NULL, "JSON_LIMIT",
                       "more than %llu JSON values (byte %zu)",
                       (unsigned long long)c->max_values, at);
    return LQ_OK;
}

/* Reads the 4 hex digits of a \u escape at s[i] (just after "\u"). -1 if malformed. */
static long read_u4(const scan_ctx *c, size_t i)
{
    if (c->n - i < 4)
        return -1;
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = hex_value(c->s[i + k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Scans the string whose opening quote is at *pos; leaves *pos after the closing quote. */
static lq_status scan_string(scan_ctx *c, size_t *pos)
{
    size_t start = *pos;
    size_t i = start + 1;
    while (i < c->n) {
        unsigned char ch = c->s[i];
        if (ch == '"') {
            *pos = i + 1;
            return LQ_OK;
        }
        if (ch == 0)
            return scan_fail(c, LQ_ERR_CORRUPT, "JSON_NUL", i, "NUL byte in string");
        if (ch < 0x20)
            return scan_fail(c, LQ_ERR_CORRUPT, "JSON_SYNTAX", i,
                             "unescaped control character in string");
        if (ch >= 0x80) {
            size_t k = utf8_seq(c->s + i, c->n - i);
            if (!k)
                return scan_fail(c, LQ_ERR_CORRUPT, "JSON_UTF8", i, "invalid UTF-8");
            i += k;
            continue;
        }
        if (ch != '\\') {
            i++;
            continue;
        }
        /* An escape: the byte after the backslash is consumed here, so an escaped quote never
         * ends the string and an escaped backslash never escapes the next byte. */
        if (i + 1 >= c->n)
            break;
        unsigned char e = c->s[i + 1];
        if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
            e == 't') {
            i += 2;
            continue;
        }
        if (e != 'u')
            return scan_fail(c, LQ_ERR_CORRUPT, "JSON_SYNTAX", i, "invalid escape in string");
        long u = read_u4(c, i + 2);
        if (u < 0)
            return scan_fail(c, LQ_ERR_CORRUPT, "JSON_SYNTAX", i, "malformed \\u escape");
        if (u == 0)
            return scan_fail(c, LQ_ERR_CORRUPT, "JSON_NUL", i, "\\u0000 in string");
        if (u >= 0xDC00 && u <= 0xDFFF)
            return scan_fail(c, LQ_ERR_CORRUPT, "JSON_UTF8", i, "lone low surrogate escape");
        if (u >= 0xD800 && u <= 0xDBFF) {
            /* A high surrogate must be followed at once by an escaped low surrogate. */
            long lo = -1;
            if (c->n - (i + 6) >= 2 && c->s[i + 6] == '\\' && c->s[i + 7] == 'u')
                lo = read_u4(c, i + 8);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return scan_fail(c, LQ_ERR_CORRUPT, "JSON_UTF8", i, "lone high surrogate escape");
            i += 12;
            continue;
        }
        i += 6;
    }
    return scan_fail(c, LQ_ERR_CORRUPT, "JSON_SYNTAX", start, "unterminated string starting");
}

/* Scans the number token at *pos (which holds '-' or a digit) by the RFC 8259 grammar
 * -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? and classifies it. */
static lq_status scan_number(scan_ctx *c, size_t *pos)
{
    const unsigned char *s = c->s;
    size_t n = c->n, start = *pos, i = *pos;
    if (s[i] == '-')
        i++;
    size_t int_start = i;
    if (i >= n || !is_digit(s[i]))
        return scan_fail(c, LQ_ERR_CORRUPT, "JSON_SYNTAX", start, "malformed number");
    if (s[i] == '0') {
        i++;
    } else {
        while (i < n && is_digit(s[i]))
            i++;
    }
    size_t int_digits = i - int_start;
    int is_integer = 1;
    if (i < n && s[i] == '.') {
        is_integer = 0;
        i++;
        if (i >= n || !is_digit(s[i]))
            return scan_fail(c, LQ_ERR_CORRUPT, "JSON_SYNTAX", start, "malformed number");
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        is_integer = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !is_digit(s[i]))
            return scan_fail(c, LQ_ERR_CORRUPT, "JSON_SYNTAX", start, "malformed number");
        while (i < n && is_digit(s[i]))
            i++;
    }
    /* Anything that cJSON would still take as part of the number ("01", "1.2.3", "1e5e5")
     * is outside the grammar. */
    if (i < n && (is_digit(s[i]) || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '+' ||
                  s[i] == '-'))
        return scan_fail(c, LQ_ERR_CORRUPT, "JSON_SYNTAX", start, "malformed number");
    if (i - start > MAX_NUMBER_TOKEN)
        return scan_fail(c, LQ_ERR_CORRUPT, "JSON_SYNTAX", start,
                         "number token longer than 63 characters");
    if (is_integer) {
        /* No leading zeros remain, so comparing digit counts, then digits, compares values. */
        static const char two53[] = "9007199254740992";
        if (int_digits > 16 ||
            (int_digits == 16 && memcmp(s + int_start, two53, 16) > 0))
            return scan_fail(c, LQ_ERR_CORRUPT, "JSON_INT_RANGE", start,
                             "integer magnitude above 2^53");
    } else if (c->integers_only) {
        return scan_fail(c, LQ_ERR_CORRUPT, "JSON_NOT_INTEGER", start,
                         "number with a fraction or exponent where only integers are allowed");
    }
    *pos = i;
    return LQ_OK;
}

static lq_status prescan(scan_ctx *c)
{
    const unsigned char *s = c->s;
    int depth = 0;
    size_t i = 0;
    lq_status st;
    while (i < c->n) {
        unsigned char ch = s[i];
        if (is_ws(ch) || ch == ',' || ch == ':') {
            i++;
        } else if (ch == '"') {
            if ((st = count_value(c, i)) != LQ_OK)
                return st;
            if ((st = scan_string(c, &i)) != LQ_OK)
                return st;
        } else if (ch == '{' || ch == '[') {
            if (++depth > c->max_depth)
                return lq_fail(c->err, LQ_ERR_CORRUPT, label_of(c->file), NULL, "JSON_DEPTH",
                               "nesting deeper than %d at byte %zu", c->max_depth, i);
            if ((st = count_value(c, i)) != LQ_OK)
                return st;
            i++;
        } else if (ch == '}' || ch == ']') {
            /* Unbalanced closers are left for cJSON to report. */
            if (depth > 0)
                depth--;
            i++;
        } else if (ch == '-' || is_digit(ch)) {
            if ((st = count_value(c, i)) != LQ_OK)
                return st;
            if ((st = scan_number(c, &i)) != LQ_OK)
                return st;
        } else if (ch == 0) {
            return scan_fail(c, LQ_ERR_CORRUPT, "JSON_NUL", i, "NUL byte");
        } else if (ch < 0x20 || ch == 0x7F) {
            return scan_fail(c, LQ_ERR_CORRUPT, "JSON_SYNTAX", i,
                             "control character outside a string");
        } else if (ch >= 0x80) {
            /* Never valid outside a string (this also rejects a byte-order mark, which cJSON
             * would skip); invalid UTF-8 is still reported as such. */
            if (!utf8_seq(s + i, c->n - i))
                return scan_fail(c, LQ_ERR_CORRUPT, "JSON_UTF8", i, "invalid UTF-8");
            return scan_fail(c, LQ_ERR_CORRUPT, "JSON_SYNTAX", i,
                             "non-ASCII character outside a string");
        } else if (ch >= 'a' && ch <= 'z') {
            /* true, false, null (cJSON checks the spelling). */
            if ((st = count_value(c, i)) != LQ_OK)
                return st;
            while (i < c->n && s[i] >= 'a' && s[i] <= 'z')
                i++;
        } else {
            /* Other printable ASCII: a syntax error or trailing garbage, which cJSON and the
             * trailing check tell apart. */
            i++;
        }
    }
    return LQ_OK;
}

static int cmp_key_ptr(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    return strcmp(x, y);
}

/* Finds a duplicate member name in obj. Returns LQ_OK and sets *dup (NULL when none). */
static lq_status find_duplicate(const cJSON *obj, const char **dup)
{
    size_t n = 0;
    *dup = NULL;
    for (const cJSON *ch = obj->child; ch; ch = ch->next)
        n++;
    if (n < 2)
        return LQ_OK;
    if (n <= SMALL_OBJECT) {
        for (const cJSON *a = obj->child; a; a = a->next)
            for (const cJSON *b = a->next; b; b = b->next)
                if (strcmp(a->string, b->string) == 0) {
                    *dup = a->string;
                    return LQ_OK;
                }
        return LQ_OK;
    }
    const char **keys = malloc(n * sizeof(*keys));
    if (!keys)
        return LQ_ERR_NO_MEMORY;
    size_t k = 0;
    for (const cJSON *ch = obj->child; ch; ch = ch->next)
        keys[k++] = ch->string;
    /* strcmp orders by unsigned bytes, so equal neighbours are byte-exact duplicates. */
    qsort(keys, n, sizeof(*keys), cmp_key_ptr);
    for (size_t i = 1; i < n; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            *dup = keys[i];
            break;
        }
    free(keys);
    return LQ_OK;
}

/* Depth-first walk; recursion depth is bounded by the pre-scan's depth limit. */
static lq_status walk(const cJSON *node, int depth, const char *top_key, const scan_ctx *c)
{
    if ((cJSON_IsObject(node) || cJSON_IsArray(node)) && depth > c->max_depth)
        return lq_fail(c->err, LQ_ERR_CORRUPT, label_of(c->file), top_key, "JSON_DEPTH",
                       "nesting deeper than %d", c->max_depth);
    if (cJSON_IsObject(node)) {
        for (const cJSON *ch = node->child; ch; ch = ch->next)
            if (!ch->string)
                return lq_fail(c->err, LQ_ERR_CORRUPT, label_of(c->file), top_key,
                               "JSON_SYNTAX", "object member without a key");
        const char *dup = NULL;
        if (find_duplicate(node, &dup) != LQ_OK)
            return lq_fail(c->err, LQ_ERR_NO_MEMORY, label_of(c->file), NULL, NULL,
                           "out of memory checking keys");
        if (dup)
            return lq_fail(c->err, LQ_ERR_CORRUPT, label_of(c->file), depth == 1 ? dup : top_key,
                           "JSON_DUP_KEY", "duplicate key \"%.200s\"%s", dup,
                           depth == 1 ? " at the top level" : "");
    }
    if (cJSON_IsObject(node) || cJSON_IsArray(node)) {
        for (const cJSON *ch = node->child; ch; ch = ch->next) {
            const char *tk = depth == 1 && cJSON_IsObject(node) ? ch->string : top_key;
            lq_status st = walk(ch, depth + 1, tk, c);
            if (st != LQ_OK)
                return st;
        }
    }
    return LQ_OK;
}

lq_status lq_json_parse(const char *buf, size_t len, const lq_json_limits *limits,
                        const char *file, cJSON **out, lq_error *err)
{
    if (out)
        *out = NULL;
    if (!out || (!buf && len))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, label_of(file), NULL, NULL,
                       "lq_json_parse: NULL argument");
    if (len == SIZE_MAX)
        return lq_fail(err, LQ_ERR_LIMIT, label_of(file), NULL, "JSON_LIMIT", "text too large");

    scan_ctx c = {0};
    c.s = (const unsigned char *)buf;
    c.n = len;
    c.file = file;
    c.err = err;
    c.max_depth = DEFAULT_DEPTH;
    if (limits) {
        if (limits->max_depth > 0)
            c.max_depth = limits->max_depth;
        c.integers_only = limits->integers_only;
        c.max_values = limits->max_values;
    }
    if (c.max_depth > CJSON_DEPTH_CAP)
        c.max_depth = CJSON_DEPTH_CAP;

    lq_status st = prescan(&c);
    if (st != LQ_OK)
        return st;

    char *copy = malloc(len + 1);
    if (!copy)
        return lq_fail(err, LQ_ERR_NO_MEMORY, label_of(file), NULL, NULL,
                       "cannot allocate %zu bytes for JSON text", len + 1);
    if (len)
        memcpy(copy, buf, len);
    copy[len] = '\0';

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 0);
    if (!root) {
        size_t at = end && end >= copy && end <= copy + len ? (size_t)(end - copy) : 0;
        st = lq_fail(err, LQ_ERR_CORRUPT, label_of(file), NULL, "JSON_SYNTAX",
                     len ? "invalid JSON near byte %zu" : "empty text (byte %zu)", at);
        goto cleanup;
    }
    for (size_t i = (size_t)(end - copy); i < len; i++) {
        if (!is_ws((unsigned char)copy[i])) {
            st = lq_fail(err, LQ_ERR_CORRUPT, label_of(file), NULL, "JSON_TRAILING",
                         "data after the JSON value at byte %zu", i);
            goto cleanup;
        }
    }
    st = walk(root, 1, NULL, &c);

cleanup:
    free(copy);
    if (st != LQ_OK) {
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return LQ_OK;
}

lq_status lq_json_parse_file(const char *path, size_t max_bytes, const lq_json_limits *limits,
                             cJSON **out, lq_error *err)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, NULL,
                       "lq_json_parse_file: NULL argument");
    if (max_bytes == 0)
        max_bytes = DEFAULT_FILE_CAP;

    uint8_t *buf = NULL;
    size_t size = 0;
    lq_status st = lq_read_file(path, max_bytes, NULL, "JSON_LIMIT", &buf, &size, err);
    if (st != LQ_OK)
        return st;
    st = lq_json_parse((const char *)buf, size, limits, path, out, err);
    free(buf);
    return st;
}

/* ---- splitting large arrays out of a text (lq_json_parse_file_split) ----
 * A skipper that follows JSON structure only as far as needed to find value boundaries: strings
 * (with escapes), objects, arrays and scalar tokens. It never decides validity; every byte it
 * passes over is parsed strictly afterwards, in the rest of the text or in one element. */

#define SPLIT_MAX_DEPTH 200

/* A split text is mapped, not read into memory, and each pass over it drops the pages it has
 * passed (a shard record or plan of 300,000 tensors is about 50 MB of text): pages are read
 * back from the page cache by the next pass, so at most about SK_DROP_STEP of it is resident.
 * base NULL: the text is a buffer, nothing to drop. */
#define SK_DROP_STEP ((size_t)1 << 20)
typedef struct sk_drop {
    const char *base;
    size_t from; /* start of the pages not dropped yet in this pass */
} sk_drop;

static void sk_release(sk_drop *d, size_t upto)
{
    if (!d || !d->base || upto < d->from + SK_DROP_STEP)
        return;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), a = (d->from + pg - 1) / pg * pg, e = upto / pg * pg;
    if (e > a)
        madvise((void *)(d->base + a), e - a, MADV_DONTNEED);
    d->from = upto;
}

/* A new pass starts at `at`. */
static void sk_pass(sk_drop *d, size_t at)
{
    if (d)
        d->from = at;
}

static size_t sk_ws(const char *b, size_t n, size_t i)
{
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
        i++;
    return i;
}

/* End of the string starting at b[i] == '"', or SIZE_MAX. */
static size_t sk_string(const char *b, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (b[i] == '\\')
            i++;
        else if (b[i] == '"')
            return i + 1;
    }
    return SIZE_MAX;
}

/* End of the value starting at b[i], or SIZE_MAX. Passed pages go (d, at the outer levels). */
static size_t sk_value(const char *b, size_t n, size_t i, int depth, sk_drop *d)
{
    if (i >= n || depth > SPLIT_MAX_DEPTH)
        return SIZE_MAX;
    if (b[i] == '"')
        return sk_string(b, n, i);
    if (b[i] == '{' || b[i] == '[') {
        char close = b[i] == '{' ? '}' : ']';
        int obj = b[i] == '{';
        i = sk_ws(b, n, i + 1);
        if (i < n && b[i] == close)
            return i + 1;
        for (;;) {
            if (obj) {
                if (i >= n || b[i] != '"' || (i = sk_string(b, n, i)) == SIZE_MAX)
                    return SIZE_MAX;
                i = sk_ws(b, n, i);
                if (i >= n || b[i] != ':')
                    return SIZE_MAX;
                i = sk_ws(b, n, i + 1);
            }
            if ((i = sk_value(b, n, i, depth + 1, d)) == SIZE_MAX)
                return SIZE_MAX;
            if (depth <= 3)
                sk_release(d, i);
            i = sk_ws(b, n, i);
            if (i < n && b[i] == ',') {
                i = sk_ws(b, n, i + 1);
                continue;
            }
            return i < n && b[i] == close ? i + 1 : SIZE_MAX;
        }
    }
    size_t s = i;
    while (i < n && !strchr(",]}: \t\r\n\"{[", b[i]))
        i++;
    return i > s ? i : SIZE_MAX;
}

/* The value at keys[0..nkeys) from the object starting at b[i]: [*vb, *ve). 0 found, -1 not. */
static int sk_find(const char *b, size_t n, size_t i, const char *const *keys, size_t nkeys, size_t *vb, size_t *ve,
                   sk_drop *d)
{
    if (i >= n || b[i] != '{')
        return -1;
    size_t kl = strlen(keys[0]);
    i = sk_ws(b, n, i + 1);
    if (i < n && b[i] == '}')
        return -1;
    for (;;) {
        if (i >= n || b[i] != '"')
            return -1;
        size_t ks = i + 1, ke = sk_string(b, n, i);
        if (ke == SIZE_MAX)
            return -1;
        i = sk_ws(b, n, ke);
        if (i >= n || b[i] != ':')
            return -1;
        i = sk_ws(b, n, i + 1);
        size_t e = sk_value(b, n, i, 1, d);
        if (e == SIZE_MAX)
            return -1;
        if (ke - 1 - ks == kl && !memcmp(b + ks, keys[0], kl) && !memchr(b + ks, '\\', kl)) {
            if (nkeys == 1) {
                *vb = i;
                *ve = e;
                return 0;
            }
            return sk_find(b, n, i, keys + 1, nkeys - 1, vb, ve, d);
        }
        i = sk_ws(b, n, e);
        if (i < n && b[i] == ',') {
            i = sk_ws(b, n, i + 1);
            continue;
        }
        return -1;
    }
}

typedef struct split_range {
    size_t b, e;
    const lq_json_split *sp;
} split_range;

static int cmp_range(const void *x, const void *y)
{
    const split_range *a = x, *c = y;
    return a->b < c->b ? -1 : a->b > c->b;
}

/* The whole text as one tree, its arrays' elements handed over from it. */
static lq_status split_whole(const char *buf, size_t size, const lq_json_limits *limits, const char *path,
                             const lq_json_split *splits, size_t nsplits, cJSON **out, lq_error *err)
{
    cJSON *root = NULL;
    lq_status st = lq_json_parse(buf, size, limits, path, &root, err);
    for (size_t k = 0; st == LQ_OK && k < nsplits; k++) {
        cJSON *a = root;
        for (size_t j = 0; a && j < splits[k].nkeys; j++)
            a = (cJSON *)lq_json_get(a, splits[k].keys[j]);
        if (!cJSON_IsArray(a))
            continue;
        size_t idx = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, a) {
            if ((st = splits[k].each(splits[k].user, idx++, e, err)) != LQ_OK)
                break;
        }
        while (st == LQ_OK && a->child)
            cJSON_Delete(cJSON_DetachItemViaPointer(a, a->child));
    }
    if (st != LQ_OK) {
        cJSON_Delete(root);
        root = NULL;
    }
    *out = root;
    return st;
}

static void text_free(uint8_t *raw, size_t size, int mapped)
{
    if (mapped)
        munmap(raw, size);
    else
        free(raw);
}

lq_status lq_json_parse_file_split(const char *path, size_t max_bytes, const lq_json_limits *limits,
                                   const lq_json_split *splits, size_t nsplits, cJSON **out, lq_error *err)
{
    if (out)
        *out = NULL;
    if (!path || !out || (nsplits && !splits) || nsplits > 8)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, NULL, "lq_json_parse_file_split: bad argument");
    if (max_bytes == 0)
        max_bytes = DEFAULT_FILE_CAP;
    uint8_t *raw = NULL;
    size_t size = 0;
    int fd = -1;
    uint64_t fsize = 0;
    lq_status st = lq_open_regular(path, max_bytes, NULL, "JSON_LIMIT", &fd, &fsize, err);
    if (st != LQ_OK)
        return st;
    void *map = fsize > 0 ? mmap(NULL, (size_t)fsize, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close(fd);
    if (map != MAP_FAILED) {
        raw = map;
        size = (size_t)fsize;
    } else {
        map = NULL; /* empty, or not mappable: read */
        if ((st = lq_read_file(path, max_bytes, NULL, "JSON_LIMIT", &raw, &size, err)) != LQ_OK)
            return st;
    }
    const char *buf = (const char *)raw;
    sk_drop drop = {map ? buf : NULL, 0};
    split_range r[8];
    int ok = !(limits && limits->max_values); /* a limit on the whole text's values: parsed whole */
    size_t top = sk_ws(buf, size, 0);
    for (size_t k = 0; ok && k < nsplits; k++) {
        r[k].sp = &splits[k];
        sk_pass(&drop, 0);
        ok = splits[k].nkeys > 0 &&
             sk_find(buf, size, top, splits[k].keys, splits[k].nkeys, &r[k].b, &r[k].e, &drop) == 0 &&
             buf[r[k].b] == '[';
    }
    if (ok && nsplits > 1) {
        qsort(r, nsplits, sizeof(*r), cmp_range);
        for (size_t k = 1; k < nsplits; k++)
            ok = ok && r[k].b >= r[k - 1].e;
    }
    char *rest = ok ? malloc(size + 2 * nsplits + 1) : NULL;
    if (!rest) {
        st = split_whole(buf, size, limits, path, splits, nsplits, out, err);
        text_free(raw, size, map != NULL);
        return st;
    }
    /* The rest of the text, each array written as [] (its depth and position unchanged). */
    size_t rl = 0, at = 0;
    for (size_t k = 0; k < nsplits; k++) {
        memcpy(rest + rl, buf + at, r[k].b - at);
        rl += r[k].b - at;
        memcpy(rest + rl, "[]", 2);
        rl += 2;
        at = r[k].e;
    }
    memcpy(rest + rl, buf + at, size - at);
    rl += size - at;
    cJSON *root = NULL;
    lq_error e2;
    lq_error_clear(&e2);
    ok = lq_json_parse(rest, rl, limits, path, &root, &e2) == LQ_OK;
    free(rest);
    /* Each path must lead to the empty array written in place of ours, and every element must
     * have boundaries the skipper finds; else the text is parsed whole. */
    for (size_t k = 0; ok && k < nsplits; k++) {
        const cJSON *a = root;
        for (size_t j = 0; a && j < r[k].sp->nkeys; j++)
            a = lq_json_get(a, r[k].sp->keys[j]);
        ok = cJSON_IsArray(a) && !a->child;
        size_t i = sk_ws(buf, r[k].e, r[k].b + 1);
        sk_pass(&drop, r[k].b);
        while (ok && i < r[k].e && buf[i] != ']') {
            size_t ve = sk_value(buf, r[k].e, i, (int)r[k].sp->nkeys + 1, &drop);
            ok = ve != SIZE_MAX;
            sk_release(&drop, ok ? ve : i);
            i = ok ? sk_ws(buf, r[k].e, ve) : i;
            if (ok && i < r[k].e && buf[i] == ',')
                i = sk_ws(buf, r[k].e, i + 1);
        }
    }
    if (!ok) {
        cJSON_Delete(root);
        st = split_whole(buf, size, limits, path, splits, nsplits, out, err);
        text_free(raw, size, map != NULL);
        return st;
    }
    /* The elements: each parsed on its own, at the depth it has in the text. An element the
     * strict parser refuses makes the whole text fail the same way: its error is taken from
     * parsing the whole text, so it names the offset in the file. */
    for (size_t k = 0; k < nsplits && st == LQ_OK; k++) {
        lq_json_limits el = limits ? *limits : (lq_json_limits){0};
        int md = el.max_depth <= 0 ? 64 : el.max_depth > 1000 ? 1000 : el.max_depth;
        el.max_depth = md - (int)r[k].sp->nkeys - 1;
        size_t i = sk_ws(buf, r[k].e, r[k].b + 1), idx = 0;
        sk_pass(&drop, r[k].b);
        while (st == LQ_OK && i < r[k].e && buf[i] != ']') {
            size_t ve = sk_value(buf, r[k].e, i, (int)r[k].sp->nkeys + 1, NULL);
            cJSON *elem = NULL;
            if (el.max_depth < 1 || lq_json_parse(buf + i, ve - i, &el, path, &elem, &e2) != LQ_OK) {
                cJSON_Delete(root);
                root = NULL;
                st = split_whole(buf, size, limits, path, NULL, 0, &root, err);
                if (st == LQ_OK)
                    st = lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "JSON_SYNTAX", "malformed array element at byte %zu",
                                 i);
                break;
            }
            st = r[k].sp->each(r[k].sp->user, idx++, elem, err);
            cJSON_Delete(elem);
            sk_release(&drop, ve);
            i = sk_ws(buf, r[k].e, ve);
            if (i < r[k].e && buf[i] == ',')
                i = sk_ws(buf, r[k].e, i + 1);
        }
    }
    text_free(raw, size, map != NULL);
    if (st != LQ_OK) {
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return LQ_OK;
}

const cJSON *lq_json_get(const cJSON *obj, const char *key)
{
    if (!obj || !key || !cJSON_IsObject(obj))
        return NULL;
    for (const cJSON *ch = obj->child; ch; ch = ch->next)
        if (ch->string && strcmp(ch->string, key) == 0)
            return ch;
    return NULL;
}

int lq_json_u64(const cJSON *item, uint64_t *out)
{
    if (!item || !out || !cJSON_IsNumber(item))
        return -1;
    double d = item->valuedouble;
    /* The range test comes first so the conversion below is defined; NaN fails it. */
    if (!(d >= 0.0 && d <= LQ_JSON_MAX_EXACT_INT))
        return -1;
    uint64_t v = (uint64_t)d;
    if ((double)v != d)
        return -1;
    *out = v;
    return 0;
}

int lq_json_i64(const cJSON *item, int64_t *out)
{
    if (!item || !out || !cJSON_IsNumber(item))
        return -1;
    double d = item->valuedouble;
    if (!(d >= -LQ_JSON_MAX_EXACT_INT && d <= LQ_JSON_MAX_EXACT_INT))
        return -1;
    int64_t v = (int64_t)d;
    if ((double)v != d)
        return -1;
    *out = v;
    return 0;
}
