/* The malformed-safetensors corpus (corpus.h).
 *
 * Expected rules follow libquant/safetensors.h; the classes of malformation come from
 * reference/mxfp4_formats.md 3.3-3.4 and reference/ecosystem_reliability.md 3.2 and 3.6 (each
 * group below says which item). Offsets and sizes in the headers are worked out by hand in the
 * comments: F32 is 4 bytes per element, U8 1, F4 half a byte (reference 3.2). */
#include "corpus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_build.h"

/* One tensor entry as a string literal. */
#define ENT(dt, shape, offs) "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

/* The valid base file: metadata, "a" F32 [2,2] at [0,16), "b" U8 [3] at [16,19). */
#define BASE_HEADER                                                                           \
    "{\"__metadata__\":{\"format\":\"pt\"},\"a\":" ENT("F32", "[2,2]", "[0,16]")             \
    ",\"b\":" ENT("U8", "[3]", "[16,19]") "}"
#define BASE_DATA 19

static char *xstrdup(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static corpus_case *add_bytes(corpus *c, const char *name, uint8_t *bytes, size_t len,
                              lq_status st, const char *rule, const char *tensor)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->cases = realloc(c->cases, c->cap * sizeof(*c->cases));
        if (!c->cases)
            abort();
    }
    corpus_case *k = &c->cases[c->n++];
    memset(k, 0, sizeof(*k));
    snprintf(k->name, sizeof(k->name), "%s", name);
    k->status = st;
    k->rule = rule;
    k->tensor = xstrdup(tensor);
    k->bytes = bytes;
    k->len = len;
    return k;
}

/* A header text with dlen pattern bytes of data. */
static corpus_case *add_hdr(corpus *c, const char *name, const char *header, size_t dlen,
                            lq_status st, const char *rule, const char *tensor)
{
    size_t len = 0;
    uint8_t *img = stb_image(header, dlen, &len);
    return add_bytes(c, name, img, len, st, rule, tensor);
}

/* An explicit length field over hlen header bytes (which may hold NULs). */
static corpus_case *add_raw(corpus *c, const char *name, uint64_t len_field, const char *header,
                            size_t hlen, size_t dlen, lq_status st, const char *rule,
                            const char *tensor)
{
    size_t len = 0;
    uint8_t *img = stb_raw(len_field, header, hlen, NULL, dlen, &len);
    return add_bytes(c, name, img, len, st, rule, tensor);
}

#define BAD(name, header, dlen, rule, tensor) \
    add_hdr(c, name, header, dlen, LQ_ERR_CORRUPT, rule, tensor)
#define GOOD(name, header, dlen, count) \
    add_hdr(c, name, header, dlen, LQ_OK, NULL, NULL)->ntensors = (count)

/* ecosystem_reliability 3.6 item 1 and mxfp4_formats 3.3: length field and bounds. */
static void length_cases(corpus *c)
{
    const char *h = BASE_HEADER;
    size_t hl = strlen(h), len = 0;
    uint8_t *base = stb_image(h, BASE_DATA, &len);
    add_bytes(c, "valid-base", base, len, LQ_OK, NULL, NULL)->ntensors = 2;

    /* Truncations of the valid file at 0, 7, 8, header end - 1, data start, mid-data and one
     * byte short. */
    static const struct {
        const char *name;
        long at; /* < 0: relative to the data start */
        const char *rule;
        const char *tensor;
    } cuts[] = {
        {"trunc-0", 0, "ST_FILE_SMALL", NULL},
        {"trunc-7", 7, "ST_FILE_SMALL", NULL},
        {"trunc-8", 8, "ST_HEADER_BOUNDS", NULL},
        {"trunc-header-end-minus-1", -1, "ST_HEADER_BOUNDS", NULL},
        {"trunc-data-start", -1000, "ST_TRUNCATED", "b"},
        {"trunc-mid-data", -1010, "ST_TRUNCATED", "b"},
        {"trunc-last-byte", -1018, "ST_TRUNCATED", "b"},
    };
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        size_t at = cuts[i].at >= 0     ? (size_t)cuts[i].at
                    : cuts[i].at == -1 ? 8 + hl - 1
                                       : 8 + hl + (size_t)(-cuts[i].at - 1000);
        uint8_t *img = malloc(at ? at : 1);
        memcpy(img, base, at);
        add_bytes(c, cuts[i].name, img, at, LQ_ERR_CORRUPT, cuts[i].rule, cuts[i].tensor);
    }

    add_raw(c, "header-len-zero", 0, h, hl, BASE_DATA, LQ_ERR_CORRUPT, "ST_HEADER_ZERO", NULL);
    add_raw(c, "header-len-2p63", 1ull << 63, h, hl, BASE_DATA, LQ_ERR_LIMIT, "ST_HEADER_LIMIT",
            NULL);
    /* With the cap lifted, 8 + 2^64-1 overflows; the bound check must not. */
    add_raw(c, "header-len-u64-max", UINT64_MAX, h, hl, BASE_DATA, LQ_ERR_CORRUPT,
            "ST_HEADER_BOUNDS", NULL)
        ->limits.max_header = UINT64_MAX;
    add_raw(c, "header-len-beyond-file", hl + BASE_DATA + 1, h, hl, BASE_DATA, LQ_ERR_CORRUPT,
            "ST_HEADER_BOUNDS", NULL);
    add_raw(c, "header-over-custom-cap", hl, h, hl, BASE_DATA, LQ_ERR_LIMIT, "ST_HEADER_LIMIT",
            NULL)
        ->limits.max_header = hl - 1;
    /* Appended bytes (polyglot class, ecosystem_reliability 3.2 item 5). */
    uint8_t *longer = malloc(len + 5);
    memcpy(longer, base, len);
    memcpy(longer + len, "extra", 5);
    add_bytes(c, "trailing-bytes", longer, len + 5, LQ_ERR_CORRUPT, "ST_TRAILING_BYTES", NULL);
    BAD("empty-header-with-data", "{}", 4, "ST_TRAILING_BYTES", NULL);
    GOOD("empty-header", "{}", 0, 0);
}

/* mxfp4_formats 3.1 and 3.4 item 2: first byte '{', only whitespace after the object. */
static void framing_cases(corpus *c)
{
    BAD("newline-before-brace", "\n" BASE_HEADER, BASE_DATA, "ST_HEADER_BRACE", NULL);
    BAD("space-before-brace", " " BASE_HEADER, BASE_DATA, "ST_HEADER_BRACE", NULL);
    BAD("bom-before-brace", "\xEF\xBB\xBF" BASE_HEADER, BASE_DATA, "ST_HEADER_BRACE", NULL);
    BAD("array-header", "[" BASE_HEADER "]", BASE_DATA, "ST_HEADER_BRACE", NULL);
    /* NUL padding: the header length counts the NULs (stb_raw with an explicit length). */
    static const char nul_padded[] = BASE_HEADER "\0\0\0\0\0";
    add_raw(c, "nul-padding", sizeof(nul_padded) - 1, nul_padded, sizeof(nul_padded) - 1,
            BASE_DATA, LQ_ERR_CORRUPT, "ST_HEADER_PAD", NULL);
    BAD("garbage-after-object", BASE_HEADER "xyz", BASE_DATA, "ST_HEADER_PAD", NULL);
    BAD("second-object", BASE_HEADER "{}", BASE_DATA, "ST_HEADER_PAD", NULL);
    BAD("closing-bracket-after", BASE_HEADER "  }", BASE_DATA, "ST_HEADER_PAD", NULL);
    GOOD("space-padding", BASE_HEADER "       ", BASE_DATA, 2);
    GOOD("whitespace-padding", BASE_HEADER " \t\r\n ", BASE_DATA, 2);
}

/* ecosystem_reliability 3.6 item 2 and 5.1: strict JSON inside the header. */
static void json_cases(corpus *c)
{
    BAD("json-trailing-comma", "{\"a\":" ENT("F32", "[1]", "[0,4]") ",}", 4, "JSON_SYNTAX", NULL);
    BAD("json-unclosed", "{\"a\":" ENT("F32", "[1]", "[0,4]"), 4, "JSON_SYNTAX", NULL);
    BAD("json-single-quotes", "{'a':1}", 0, "JSON_SYNTAX", NULL);
    BAD("json-missing-colon", "{\"a\" " ENT("F32", "[1]", "[0,4]") "}", 4, "JSON_SYNTAX", NULL);
    BAD("name-invalid-utf8", "{\"\xC3\x28\":" ENT("F32", "[1]", "[0,4]") "}", 4, "JSON_UTF8",
        NULL);
    BAD("name-overlong-utf8", "{\"\xC0\xAF\":" ENT("F32", "[1]", "[0,4]") "}", 4, "JSON_UTF8",
        NULL);
    BAD("name-surrogate-utf8", "{\"\xED\xA0\x80\":" ENT("F32", "[1]", "[0,4]") "}", 4,
        "JSON_UTF8", NULL);
    BAD("name-above-10ffff", "{\"\xF4\x90\x80\x80\":" ENT("F32", "[1]", "[0,4]") "}", 4,
        "JSON_UTF8", NULL);
    BAD("name-truncated-utf8", "{\"w\xE2\x82\":" ENT("F32", "[1]", "[0,4]") "}", 4, "JSON_UTF8",
        NULL);
    BAD("name-escaped-lone-surrogate", "{\"\\udc00\":" ENT("F32", "[1]", "[0,4]") "}", 4,
        "JSON_UTF8", NULL);
    BAD("metadata-invalid-utf8", "{\"__metadata__\":{\"format\":\"p\xFF\"}}", 0, "JSON_UTF8", NULL);
    static const char raw_nul[] = "{\"a\0b\":" ENT("F32", "[1]", "[0,4]") "}";
    add_raw(c, "name-raw-nul", sizeof(raw_nul) - 1, raw_nul, sizeof(raw_nul) - 1, 4,
            LQ_ERR_CORRUPT, "JSON_NUL", NULL);
    BAD("name-escaped-nul", "{\"a\\u0000b\":" ENT("F32", "[1]", "[0,4]") "}", 4, "JSON_NUL", NULL);
    BAD("name-control-char", "{\"a\x01\":" ENT("F32", "[1]", "[0,4]") "}", 4, "JSON_SYNTAX", NULL);
    BAD("name-bad-escape", "{\"a\\q\":" ENT("F32", "[1]", "[0,4]") "}", 4, "JSON_SYNTAX", NULL);
    /* Depth: header 1, entry 2, array 3 are allowed (mxfp4_formats 3.4 item 2 says 2 for
     * objects; arrays add one). */
    BAD("depth-4", "{\"__metadata__\":{\"a\":[[1]]}}", 0, "JSON_DEPTH", NULL);
    BAD("depth-4-shape", "{\"a\":" ENT("F32", "[[1]]", "[0,4]") "}", 4, "JSON_DEPTH", NULL);
    /* Duplicates (ecosystem_reliability 3.2, safetensors issue 401): the tensor is named. */
    BAD("dup-tensor-name",
        "{\"a\":" ENT("F32", "[1]", "[0,4]") ",\"a\":" ENT("F32", "[1]", "[4,8]") "}", 8,
        "JSON_DUP_KEY", "a");
    BAD("dup-tensor-name-escaped",
        "{\"ab\":" ENT("F32", "[1]", "[0,4]") ",\"a\\u0062\":" ENT("F32", "[1]", "[4,8]") "}",
        8, "JSON_DUP_KEY", "ab");
    BAD("dup-entry-key",
        "{\"a\":" ENT("F32", "[1]", "[0,4]")
        ",\"b\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[4,5]}}",
        5, "JSON_DUP_KEY", "b");
    BAD("dup-metadata-key", "{\"__metadata__\":{\"format\":\"pt\",\"format\":\"tf\"}}", 0,
        "JSON_DUP_KEY", "__metadata__");
    BAD("dup-metadata-block", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "JSON_DUP_KEY",
        "__metadata__");
    /* Names are opaque bytes: case variants are distinct, escaped quotes are part of a name. */
    GOOD("case-variant-names",
         "{\"a\":" ENT("F32", "[1]", "[0,4]") ",\"A\":" ENT("F32", "[1]", "[4,8]") "}", 8, 2);
    GOOD("escaped-quote-name", "{\"a\\\"{[b\":" ENT("F32", "[1]", "[0,4]") "}", 4, 1);
    GOOD("utf8-name", "{\"\xE5\xB1\x82.\xF0\x9F\x98\x80\":" ENT("F32", "[1]", "[0,4]") "}", 4, 1);
}

/* mxfp4_formats 3.1 and 3.4 item 2: __metadata__ is an object of strings. */
static void metadata_cases(corpus *c)
{
    BAD("metadata-nested", "{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0, "ST_METADATA_TYPE",
        "__metadata__");
    BAD("metadata-number", "{\"__metadata__\":{\"format\":1}}", 0, "ST_METADATA_TYPE",
        "__metadata__");
    BAD("metadata-null", "{\"__metadata__\":{\"format\":null}}", 0, "ST_METADATA_TYPE",
        "__metadata__");
    BAD("metadata-array", "{\"__metadata__\":{\"format\":[\"pt\"]}}", 0, "ST_METADATA_TYPE",
        "__metadata__");
    BAD("metadata-not-object", "{\"__metadata__\":\"pt\"}", 0, "ST_METADATA_TYPE", "__metadata__");
    GOOD("metadata-only", "{\"__metadata__\":{\"format\":\"pt\",\"\":\"\"}}", 0, 0);
}

/* mxfp4_formats 3.4 items 3, 4, 7 and ecosystem_reliability 3.6 item 4: entries. */
static void entry_cases(corpus *c)
{
    BAD("entry-not-object", "{\"a\":[1]}", 0, "ST_NOT_OBJECT", "a");
    BAD("entry-string", "{\"a\":\"F32\"}", 0, "ST_NOT_OBJECT", "a");
    BAD("entry-extra-key",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 4,
        "ST_ENTRY_KEYS", "a");
    BAD("entry-missing-offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "ST_ENTRY_KEYS",
        "a");
    BAD("entry-key-case", "{\"a\":{\"Dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
        "ST_ENTRY_KEYS", "a");
    BAD("dtype-unknown", "{\"a\":" ENT("F17", "[1]", "[0,4]") "}", 4, "ST_DTYPE", "a");
    BAD("dtype-lowercase", "{\"a\":" ENT("f32", "[1]", "[0,4]") "}", 4, "ST_DTYPE", "a");
    BAD("dtype-torch-name", "{\"a\":" ENT("float32", "[1]", "[0,4]") "}", 4, "ST_DTYPE", "a");
    BAD("dtype-number", "{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
        "ST_DTYPE", "a");
    BAD("shape-negative", "{\"a\":" ENT("F32", "[-1]", "[0,4]") "}", 4, "ST_SHAPE", "a");
    BAD("shape-fraction", "{\"a\":" ENT("F32", "[1.5]", "[0,4]") "}", 4, "JSON_NOT_INTEGER", NULL);
    BAD("shape-integral-fraction", "{\"a\":" ENT("F32", "[1.0]", "[0,4]") "}", 4,
        "JSON_NOT_INTEGER", NULL);
    BAD("shape-exponent", "{\"a\":" ENT("F32", "[1e0]", "[0,4]") "}", 4, "JSON_NOT_INTEGER", NULL);
    BAD("shape-plus", "{\"a\":" ENT("F32", "[+1]", "[0,4]") "}", 4, "JSON_SYNTAX", NULL);
    BAD("shape-leading-zero", "{\"a\":" ENT("F32", "[01]", "[0,4]") "}", 4, "JSON_SYNTAX", NULL);
    /* 2^53 + 1 = 9007199254740993 rounds to 2^53 in a double. */
    BAD("shape-2p53-plus-1", "{\"a\":" ENT("U8", "[9007199254740993]", "[0,4]") "}", 4,
        "JSON_INT_RANGE", NULL);
    BAD("shape-string", "{\"a\":" ENT("F32", "[\"1\"]", "[0,4]") "}", 4, "ST_SHAPE", "a");
    BAD("shape-null", "{\"a\":" ENT("F32", "[null]", "[0,4]") "}", 4, "ST_SHAPE", "a");
    BAD("shape-not-array", "{\"a\":" ENT("F32", "1", "[0,4]") "}", 4, "ST_SHAPE", "a");
    BAD("rank-9", "{\"a\":" ENT("F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, "ST_RANK", "a");
    GOOD("rank-8", "{\"a\":" ENT("F32", "[1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, 1);
    add_hdr(c, "rank-over-custom-cap", "{\"a\":" ENT("F32", "[1,1]", "[0,4]") "}", 4,
            LQ_ERR_CORRUPT, "ST_RANK", "a")
        ->limits.max_rank = 1;
    GOOD("scalar", "{\"a\":" ENT("F32", "[]", "[0,4]") "}", 4, 1);
    BAD("empty-name", "{\"\":" ENT("F32", "[1]", "[0,4]") "}", 4, "ST_NAME", NULL);

    /* A 2000-byte name, above the default 1024. */
    char name[2001];
    memset(name, 'n', 2000);
    name[2000] = '\0';
    stb_buf h = {0};
    stb_printf(&h, "{\"%s\":" ENT("F32", "[1]", "[0,4]") "}", name);
    BAD("long-name", (const char *)h.p, 4, "ST_NAME", name);
    stb_free(&h);

    /* Two tensors under a limit of one (ecosystem_reliability 3.6 item 8). */
    add_hdr(c, "tensor-over-custom-cap",
            "{\"a\":" ENT("F32", "[1]", "[0,4]") ",\"b\":" ENT("F32", "[1]", "[4,8]") "}", 8,
            LQ_ERR_LIMIT, "ST_TENSOR_LIMIT", NULL)
        ->limits.max_tensors = 1;
    /* 5000 shape values under a limit of one tensor: the JSON value budget (24 per tensor +
     * 4096) is exceeded before cJSON builds the tree. */
    stb_puts(&h, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1");
    for (int i = 0; i < 5000; i++)
        stb_puts(&h, ",1");
    stb_puts(&h, "],\"data_offsets\":[0,1]}}");
    add_hdr(c, "json-values-over-budget", (const char *)h.p, 1, LQ_ERR_LIMIT, "JSON_LIMIT", NULL)
        ->limits.max_tensors = 1;
    stb_free(&h);
}

/* mxfp4_formats 3.3 size checks and 3.4 item 4: element counts and bit sizes. */
static void size_cases(corpus *c)
{
    /* 2^40 * 2^40 = 2^80 elements. */
    BAD("numel-overflow", "{\"a\":" ENT("F32", "[1099511627776,1099511627776]", "[0,4]") "}", 4,
        "ST_NUMEL_OVERFLOW", "a");
    /* 2^32 * 2^32 = 2^64 wraps to 0, which would match data_offsets [0,0]. */
    BAD("numel-wraps-to-zero", "{\"a\":" ENT("U8", "[4294967296,4294967296]", "[0,0]") "}", 0,
        "ST_NUMEL_OVERFLOW", "a");
    /* 2^53 * 2^8 = 2^61 U8 elements fit, but 2^61 * 8 bits = 2^64 bits wrap to 0. */
    BAD("nbits-wraps-to-zero", "{\"a\":" ENT("U8", "[9007199254740992,256]", "[0,0]") "}", 0,
        "ST_NUMEL_OVERFLOW", "a");
    BAD("nbits-overflow-f64", "{\"a\":" ENT("F64", "[9007199254740992,256]", "[0,0]") "}", 0,
        "ST_NUMEL_OVERFLOW", "a");
    /* Left to right: 2^80 overflows before the 0 is reached (the reference's checked fold). */
    BAD("overflow-then-zero", "{\"a\":" ENT("F32", "[1099511627776,1099511627776,0]", "[0,0]") "}",
        0, "ST_NUMEL_OVERFLOW", "a");
    GOOD("zero-then-huge", "{\"a\":" ENT("F32", "[0,1099511627776,1099511627776]", "[0,0]") "}", 0,
         1);
    /* F4: 3 elements are 12 bits; F6: 2 elements are 12 bits (reference 3.2). */
    BAD("f4-odd-count", "{\"a\":" ENT("F4", "[3]", "[0,2]") "}", 2, "ST_SUBBYTE", "a");
    BAD("f4-odd-last-dim", "{\"a\":" ENT("F4", "[3,3]", "[0,5]") "}", 5, "ST_SUBBYTE", "a");
    BAD("f6-not-whole-bytes", "{\"a\":" ENT("F6_E3M2", "[2]", "[0,2]") "}", 2, "ST_SUBBYTE", "a");
    GOOD("f4-even-count", "{\"a\":" ENT("F4", "[2,3]", "[0,3]") "}", 3, 1);
    GOOD("f6-four-elements", "{\"a\":" ENT("F6_E2M3", "[4]", "[0,3]") "}", 3, 1);
    BAD("size-mismatch", "{\"a\":" ENT("F32", "[2]", "[0,12]") "}", 12, "ST_SIZE_MISMATCH", "a");
    BAD("size-mismatch-f4", "{\"a\":" ENT("F4", "[4]", "[0,4]") "}", 4, "ST_SIZE_MISMATCH", "a");
}

/* mxfp4_formats 3.3 offsets and 3.4 items 3 and 5; ecosystem_reliability 3.6 item 5. */
static void offset_cases(corpus *c)
{
    BAD("offsets-three", "{\"a\":" ENT("F32", "[1]", "[0,4,8]") "}", 8, "ST_OFFSETS", "a");
    BAD("offsets-one", "{\"a\":" ENT("F32", "[1]", "[0]") "}", 4, "ST_OFFSETS", "a");
    BAD("offsets-empty", "{\"a\":" ENT("F32", "[1]", "[]") "}", 4, "ST_OFFSETS", "a");
    BAD("offsets-negative", "{\"a\":" ENT("F32", "[1]", "[-4,0]") "}", 4, "ST_OFFSETS", "a");
    BAD("offsets-string", "{\"a\":" ENT("F32", "[1]", "[\"0\",\"4\"]") "}", 4, "ST_OFFSETS", "a");
    BAD("offsets-not-array", "{\"a\":" ENT("F32", "[1]", "{\"b\":0}") "}", 4, "ST_OFFSETS", "a");
    BAD("offsets-fraction", "{\"a\":" ENT("F32", "[1]", "[0,4.0]") "}", 4, "JSON_NOT_INTEGER",
        NULL);
    BAD("offsets-2p53-plus-1",
        "{\"a\":" ENT("F32", "[1]", "[9007199254740993,9007199254740997]") "}", 4,
        "JSON_INT_RANGE", NULL);
    BAD("begin-after-end", "{\"a\":" ENT("F32", "[1]", "[8,4]") "}", 8, "ST_OFFSET_ORDER", "a");
    BAD("first-not-at-zero", "{\"a\":" ENT("F32", "[1]", "[4,8]") "}", 8, "ST_OFFSET_START", "a");
    /* a [0,4), b [8,12): 4 bytes unaccounted for. */
    BAD("gap", "{\"a\":" ENT("F32", "[1]", "[0,4]") ",\"b\":" ENT("F32", "[1]", "[8,12]") "}", 12,
        "ST_OFFSET_GAP", "b");
    /* a [0,8), b [4,12). */
    BAD("overlap", "{\"a\":" ENT("F32", "[2]", "[0,8]") ",\"b\":" ENT("F32", "[2]", "[4,12]") "}",
        12, "ST_OFFSET_OVERLAP", "b");
    /* a and b both [0,8): two names for the same bytes. */
    BAD("alias", "{\"b\":" ENT("F32", "[2]", "[0,8]") ",\"a\":" ENT("F32", "[2]", "[0,8]") "}", 8,
        "ST_OFFSET_OVERLAP", "b");
    /* A zero-length tensor inside another one's bytes. */
    BAD("zero-length-inside",
        "{\"a\":" ENT("F32", "[2]", "[0,8]") ",\"z\":" ENT("F32", "[0]", "[4,4]") "}", 8,
        "ST_OFFSET_OVERLAP", "z");
    /* Zero-length tensors sharing an offset with the next tensor, and at the end. */
    GOOD("zero-length-shared",
         "{\"z\":" ENT("F32", "[0]", "[0,0]") ",\"y\":" ENT("U8", "[0,3]", "[0,0]")
         ",\"a\":" ENT("F32", "[2]", "[0,8]") ",\"e\":" ENT("F32", "[0]", "[8,8]") "}",
         8, 4);
    /* Listed out of offset order: fine, the order of entries is free. */
    GOOD("entries-out-of-order",
         "{\"b\":" ENT("U8", "[3]", "[16,19]") ",\"a\":" ENT("F32", "[2,2]", "[0,16]") "}", 19, 2);
    /* 2^38 F32 = 2^40 bytes claimed, 16 present. */
    BAD("offsets-beyond-end", "{\"a\":" ENT("F32", "[274877906944]", "[0,1099511627776]") "}", 16,
        "ST_TRUNCATED", "a");
    BAD("last-beyond-end",
        "{\"a\":" ENT("F32", "[2]", "[0,8]") ",\"b\":" ENT("F32", "[2]", "[8,16]") "}", 12,
        "ST_TRUNCATED", "b");
    /* Unaligned offsets are allowed (mxfp4_formats 3.4 item 6). */
    GOOD("unaligned", "{\"a\":" ENT("U8", "[3]", "[0,3]") ",\"b\":" ENT("F64", "[1]", "[3,11]") "}",
         11, 2);
}

void corpus_build(corpus *c)
{
    memset(c, 0, sizeof(*c));
    length_cases(c);
    framing_cases(c);
    json_cases(c);
    metadata_cases(c);
    entry_cases(c);
    size_cases(c);
    offset_cases(c);
}

void corpus_free(corpus *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->cases[i].bytes);
        free(c->cases[i].tensor);
    }
    free(c->cases);
    memset(c, 0, sizeof(*c));
}

int corpus_write_dir(const corpus *c, const char *dir)
{
    char path[4096];
    for (size_t i = 0; i < c->n; i++) {
        snprintf(path, sizeof(path), "%s/%03zu-%s.safetensors", dir, i, c->cases[i].name);
        if (stb_write_file(path, c->cases[i].bytes, c->cases[i].len) != 0)
            return -1;
    }
    return (int)c->n;
}
