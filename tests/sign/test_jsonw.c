/* Unit tests for libquant/jsonw.c: exact text of nested structures in compact and pretty mode,
 * string escapes and UTF-8 validation, integer extremes, double formatting (also under a
 * locale whose decimal point is a comma), raw values, and every misuse rule.
 *
 * Where the expected strings come from: the layouts are written by hand from the rules of
 * Python's json.dumps (indent=n: one item per line at (level+1)*n spaces, "," at line end,
 * ": " after keys, "{}"/"[]" when empty; separators=(",", ":") for compact), which the interop
 * test (jsonw_interop.py) also checks against Python itself; escapes from RFC 8259 section 7
 * plus Python's choice of \b \f \n \r \t and lowercase \u00XX; integer extremes are
 * 2^64-1 and -2^63; double texts follow ISO C's definition of %g (style e when the exponent is
 * below -4 or at least the precision, trailing zeros removed). */
#include <errno.h>
#include <locale.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libquant/json.h"
#include "libquant/jsonw.h"
#include "tests/harness.h"

/* Finishes w, compares the text with want, frees w. */
static void expect_text(lq_jw *w, const char *want, int line)
{
    char *out = NULL;
    size_t len = 0;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_jw_finish(w, &out, &len, &err);
    CHECK_MSG(st == LQ_OK, "line %d: finish failed: %s %s", line, err.rule, err.msg);
    if (st == LQ_OK) {
        CHECK_MSG(strcmp(out, want) == 0, "line %d: got\n%s\nwant\n%s", line, out, want);
        CHECK_EQ_U64(len, strlen(want));
    }
    free(out);
    lq_jw_free(w);
}

/* Finishes w, expects failure with st and rule, frees w. */
static void expect_error(lq_jw *w, lq_status want_st, const char *want_rule, int line)
{
    char *out = (char *)&out; /* must be reset to NULL */
    size_t len = 99;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_jw_finish(w, &out, &len, &err);
    CHECK_MSG(st == want_st, "line %d: status %d, want %d (%s)", line, (int)st, (int)want_st,
              err.msg);
    CHECK_MSG(strcmp(err.rule, want_rule) == 0, "line %d: rule %s, want %s", line, err.rule,
              want_rule);
    CHECK(out == NULL);
    CHECK_EQ_U64(len, 0);
    lq_jw_free(w);
}

/* The same document written in any mode. */
static void write_doc(lq_jw *w)
{
    lq_jw_begin_object(w);
    lq_jw_key(w, "name");
    lq_jw_string(w, "mimo");
    lq_jw_key(w, "n");
    lq_jw_u64(w, 3);
    lq_jw_key(w, "list");
    lq_jw_begin_array(w);
    lq_jw_i64(w, 1);
    lq_jw_i64(w, -2);
    lq_jw_bool(w, 1);
    lq_jw_bool(w, 0);
    lq_jw_null(w);
    lq_jw_string(w, "x");
    lq_jw_end_array(w);
    lq_jw_key(w, "empty_o");
    lq_jw_begin_object(w);
    lq_jw_end_object(w);
    lq_jw_key(w, "empty_a");
    lq_jw_begin_array(w);
    lq_jw_end_array(w);
    lq_jw_key(w, "nested");
    lq_jw_begin_object(w);
    lq_jw_key(w, "a");
    lq_jw_begin_array(w);
    lq_jw_begin_array(w);
    lq_jw_end_array(w);
    lq_jw_begin_object(w);
    lq_jw_key(w, "");
    lq_jw_double(w, 0.5, 3);
    lq_jw_end_object(w);
    lq_jw_end_array(w);
    lq_jw_key(w, "b");
    lq_jw_begin_object(w);
    lq_jw_key(w, "c");
    lq_jw_begin_object(w);
    lq_jw_end_object(w);
    lq_jw_end_object(w);
    lq_jw_end_object(w);
    lq_jw_end_object(w);
}

static void test_layouts(void)
{
    lq_jw *w = lq_jw_new(0);
    write_doc(w);
    expect_text(w,
                "{\"name\":\"mimo\",\"n\":3,\"list\":[1,-2,true,false,null,\"x\"],\"empty_o\":{},"
                "\"empty_a\":[],\"nested\":{\"a\":[[],{\"\":0.5}],\"b\":{\"c\":{}}}}",
                __LINE__);

    w = lq_jw_new(2);
    write_doc(w);
    expect_text(w,
                "{\n"
                "  \"name\": \"mimo\",\n"
                "  \"n\": 3,\n"
                "  \"list\": [\n"
                "    1,\n"
                "    -2,\n"
                "    true,\n"
                "    false,\n"
                "    null,\n"
                "    \"x\"\n"
                "  ],\n"
                "  \"empty_o\": {},\n"
                "  \"empty_a\": [],\n"
                "  \"nested\": {\n"
                "    \"a\": [\n"
                "      [],\n"
                "      {\n"
                "        \"\": 0.5\n"
                "      }\n"
                "    ],\n"
                "    \"b\": {\n"
                "      \"c\": {}\n"
                "    }\n"
                "  }\n"
                "}\n",
                __LINE__);

    /* indent 4 only changes the step. */
    w = lq_jw_new(4);
    lq_jw_begin_array(w);
    lq_jw_begin_object(w);
    lq_jw_key(w, "k");
    lq_jw_null(w);
    lq_jw_end_object(w);
    lq_jw_end_array(w);
    expect_text(w, "[\n    {\n        \"k\": null\n    }\n]\n", __LINE__);

    /* Top-level scalars and empty containers. */
    w = lq_jw_new(2);
    lq_jw_u64(w, 5);
    expect_text(w, "5\n", __LINE__);
    w = lq_jw_new(0);
    lq_jw_string(w, "top");
    expect_text(w, "\"top\"", __LINE__);
    w = lq_jw_new(2);
    lq_jw_begin_object(w);
    lq_jw_end_object(w);
    expect_text(w, "{}\n", __LINE__);
    w = lq_jw_new(0);
    lq_jw_begin_array(w);
    lq_jw_end_array(w);
    expect_text(w, "[]", __LINE__);

    /* Pretty output is read back by libquant's strict reader (cJSON underneath) with the
     * values written. */
    w = lq_jw_new(2);
    write_doc(w);
    char *out = NULL;
    size_t len = 0;
    CHECK(lq_jw_finish(w, &out, &len, NULL) == LQ_OK);
    lq_jw_free(w);
    cJSON *tree = NULL;
    CHECK(out && lq_json_parse(out, len, NULL, "doc", &tree, NULL) == LQ_OK);
    if (tree) {
        uint64_t n = 0;
        CHECK(lq_json_u64(lq_json_get(tree, "n"), &n) == 0 && n == 3);
        const cJSON *list = lq_json_get(tree, "list");
        CHECK(cJSON_GetArraySize(list) == 6);
        CHECK_STR(cJSON_GetStringValue(lq_json_get(tree, "name")), "mimo");
        cJSON_Delete(tree);
    }
    free(out);
}

static void test_escapes(void)
{
    /* Python: json.dumps('"\\/\b\f\n\r\t\x01\x1f\x7f', ensure_ascii=False); '/' and DEL are
     * not escaped. */
    lq_jw *w = lq_jw_new(0);
    lq_jw_string(w, "\"\\/\b\f\n\r\t\x01\x1f\x7f");
    expect_text(w, "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\"", __LINE__);

    /* Embedded NUL through the length variants, in a key and a value; \u000b (VT) has no
     * short escape in JSON. */
    w = lq_jw_new(0);
    lq_jw_begin_object(w);
    lq_jw_key_n(w, "a\0b", 3);
    lq_jw_string_n(w, "\0\v", 2);
    lq_jw_end_object(w);
    expect_text(w, "{\"a\\u0000b\":\"\\u0000\\u000b\"}", __LINE__);

    /* Valid UTF-8 passes through raw, boundary code points included: U+00E9, U+07FF, U+0800,
     * U+D7FF, U+E000, U+FFFD, U+2028, U+1F600, U+10FFFF (RFC 3629 table). */
    const char *ok =
        "\xC3\xA9|\xDF\xBF|\xE0\xA0\x80|\xED\x9F\xBF|\xEE\x80\x80|\xEF\xBF\xBD|\xE2\x80\xA8|"
        "\xF0\x9F\x98\x80|\xF4\x8F\xBF\xBF";
    w = lq_jw_new(0);
    lq_jw_string(w, ok);
    char want[128];
    snprintf(want, sizeof(want), "\"%s\"", ok);
    expect_text(w, want, __LINE__);

    /* Invalid UTF-8 (RFC 3629 section 3): lone continuation, overlong 2/3/4-byte forms, a
     * surrogate, above U+10FFFF, truncated sequences, bytes that never start a sequence. */
    static const char *bad[] = {
        "\x80",         "a\xBF",         "\xC0\x80",     "\xC1\xBF",     "\xE0\x80\x80",
        "\xE0\x9F\xBF", "\xF0\x80\x80\x80", "\xF0\x8F\xBF\xBF", "\xED\xA0\x80", "\xED\xBF\xBF",
        "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xE2\x82",  "\xF0\x9F\x98", "\xC3",
        "\xC3\x28",     "\xF8\x88\x80\x80\x80", "\xFF",    "\xFE",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        w = lq_jw_new(2);
        lq_jw_begin_array(w);
        CHECK_MSG(lq_jw_string(w, bad[i]) == LQ_ERR_INVALID_ARGUMENT, "bad[%zu] accepted", i);
        lq_jw_end_array(w);
        expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_UTF8", __LINE__);
    }
    /* ... in keys too. */
    w = lq_jw_new(0);
    lq_jw_begin_object(w);
    lq_jw_key(w, "\xC0\xAF");
    lq_jw_null(w);
    lq_jw_end_object(w);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_UTF8", __LINE__);
}

static void test_integers(void)
{
    lq_jw *w = lq_jw_new(0);
    lq_jw_begin_array(w);
    lq_jw_u64(w, UINT64_MAX);
    lq_jw_u64(w, 0);
    lq_jw_i64(w, INT64_MIN);
    lq_jw_i64(w, INT64_MAX);
    lq_jw_i64(w, 0);
    lq_jw_u64(w, (1ull << 53) + 1); /* not representable as a double: must stay exact */
    lq_jw_end_array(w);
    expect_text(w,
                "[18446744073709551615,0,-9223372036854775808,9223372036854775807,0,"
                "9007199254740993]",
                __LINE__);
}

/* Writes one double as the only value and returns the text (caller frees). */
static char *one_double(double v, int digits)
{
    lq_jw *w = lq_jw_new(0);
    lq_jw_double(w, v, digits);
    char *out = NULL;
    if (lq_jw_finish(w, &out, NULL, NULL) != LQ_OK)
        out = NULL;
    lq_jw_free(w);
    return out;
}

static void check_double(double v, int digits, const char *want, int line)
{
    char *got = one_double(v, digits);
    CHECK_MSG(got && strcmp(got, want) == 0, "line %d: %.17g with %d digits gave %s, want %s",
              line, v, digits, got ? got : "(error)", want);
    free(got);
}

static void check_doubles(void)
{
    /* ISO C %g: precision P = digits; style e when X < -4 or X >= P; trailing zeros and a
     * trailing point removed. */
    check_double(1.0 / 3.0, 6, "0.333333", __LINE__);
    check_double(2.0 / 3.0, 3, "0.667", __LINE__);
    check_double(1.5e20, 3, "1.5e+20", __LINE__);
    check_double(123456.0, 3, "1.23e+05", __LINE__);
    check_double(123456.0, 6, "123456", __LINE__);
    check_double(0.0001234, 2, "0.00012", __LINE__);
    check_double(0.00001, 3, "1e-05", __LINE__);
    check_double(2.0, 5, "2", __LINE__);
    check_double(-0.0, 3, "-0", __LINE__);
    check_double(-2.5, 1, "-2", __LINE__); /* round-half-even on the exact binary value 2.5 */
    check_double(1e300, 1, "1e+300", __LINE__);
    check_double(5e-324, 3, "4.94e-324", __LINE__); /* smallest subnormal 4.940656...e-324 */
    /* Exact: 0.1 is 0.1000000000000000055511151231257827... (its binary value). */
    check_double(0.1, 17, "0.10000000000000001", __LINE__);
    char *t = NULL;
    lq_jw *w = lq_jw_new(0);
    lq_jw_double_exact(w, 0.1);
    CHECK(lq_jw_finish(w, &t, NULL, NULL) == LQ_OK);
    CHECK_STR(t, "0.10000000000000001");
    free(t);
    lq_jw_free(w);
}

/* The exact variant round-trips: strtod (C locale here) gives back the same bits for a spread
 * of doubles built from pseudo-random bit patterns. */
static void check_exact_roundtrip(void)
{
    uint64_t s = 0x9E3779B97F4A7C15ull;
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double v;
        memcpy(&v, &s, sizeof(v));
        if (!isfinite(v))
            continue;
        lq_jw *w = lq_jw_new(0);
        lq_jw_double_exact(w, v);
        char *t = NULL;
        if (lq_jw_finish(w, &t, NULL, NULL) != LQ_OK) {
            bad++;
        } else {
            double back = strtod(t, NULL);
            if (memcmp(&back, &v, sizeof(v)) != 0)
                bad++;
        }
        free(t);
        lq_jw_free(w);
    }
    CHECK_EQ_U64(bad, 0);
}

static void check_nonfinite_and_digits(void)
{
    lq_jw *w = lq_jw_new(0);
    lq_jw_begin_array(w);
    lq_jw_double(w, NAN, 6);
    lq_jw_double(w, INFINITY, 6);
    lq_jw_double_exact(w, -INFINITY);
    lq_jw_double(w, 1.0, 6);
    lq_jw_end_array(w);
    CHECK_EQ_U64(lq_jw_nonfinite(w), 3);
    expect_text(w, "[null,null,null,1]", __LINE__);

    w = lq_jw_new(0);
    CHECK(lq_jw_double(w, 1.0, 0) == LQ_ERR_INVALID_ARGUMENT);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", __LINE__);
    w = lq_jw_new(0);
    CHECK(lq_jw_double(w, 1.0, 18) == LQ_ERR_INVALID_ARGUMENT);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", __LINE__);
}

/* A locale with a comma decimal point must not leak into the output. glibc looks locales up
 * in $LOCPATH, so one is compiled into the scratch directory with localedef; without
 * localedef or the de_DE source the check is reported and skipped. */
static void check_locale(const char *scratch)
{
    char dir[600], cmd[1400];
    snprintf(dir, sizeof(dir), "%s/locale", scratch);
    snprintf(cmd, sizeof(cmd),
             "localedef -i de_DE -f UTF-8 '%s/de_DE.UTF-8' >/dev/null 2>&1", dir);
    if (mkdir(dir, 0700) != 0 || system(cmd) != 0) {
        fprintf(stderr, "note: localedef de_DE unavailable, comma-locale check skipped\n");
        return;
    }
    setenv("LOCPATH", dir, 1);
    if (!setlocale(LC_NUMERIC, "de_DE.UTF-8")) {
        fprintf(stderr, "note: de_DE.UTF-8 not loadable, comma-locale check skipped\n");
        unsetenv("LOCPATH");
        return;
    }
    char probe[32];
    snprintf(probe, sizeof(probe), "%.3g", 1.5);
    CHECK_STR(probe, "1,5"); /* the locale really is active */
    check_double(1.5, 3, "1.5", __LINE__);
    check_double(-1234.5678, 6, "-1234.57", __LINE__);
    check_double(1.25e-7, 3, "1.25e-07", __LINE__);
    check_double(0.1, 17, "0.10000000000000001", __LINE__);
    setlocale(LC_NUMERIC, "C");
    unsetenv("LOCPATH");
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

static void test_raw(void)
{
    lq_jw *w = lq_jw_new(0);
    lq_jw_begin_object(w);
    lq_jw_key(w, "pre");
    lq_jw_raw(w, "{\"a\":[1,2.5e3]}");
    lq_jw_key(w, "t");
    lq_jw_raw(w, "true");
    lq_jw_end_object(w);
    expect_text(w, "{\"pre\":{\"a\":[1,2.5e3]},\"t\":true}", __LINE__);

    static const char *bad[] = {"", " 1", "1 ", "1 2", "nul", "{\"a\":1,\"a\":2}", "[1,]",
                                "18446744073709551615", "\"\xC0\x80\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        w = lq_jw_new(0);
        lq_jw_begin_array(w);
        CHECK_MSG(lq_jw_raw(w, bad[i]) == LQ_ERR_INVALID_ARGUMENT, "raw bad[%zu] accepted", i);
        lq_jw_end_array(w);
        expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_RAW", __LINE__);
    }
}

static void test_misuse(void)
{
    lq_jw *w;
    /* key outside an object: at the top level, inside an array */
    w = lq_jw_new(0);
    CHECK(lq_jw_key(w, "k") == LQ_ERR_INVALID_ARGUMENT);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", __LINE__);
    w = lq_jw_new(0);
    lq_jw_begin_array(w);
    lq_jw_key(w, "k");
    lq_jw_end_array(w);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", __LINE__);
    /* value without key; two keys in a row; key left without value at the end */
    w = lq_jw_new(0);
    lq_jw_begin_object(w);
    lq_jw_u64(w, 1);
    lq_jw_end_object(w);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", __LINE__);
    w = lq_jw_new(0);
    lq_jw_begin_object(w);
    lq_jw_key(w, "a");
    lq_jw_key(w, "b");
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", __LINE__);
    w = lq_jw_new(0);
    lq_jw_begin_object(w);
    lq_jw_key(w, "a");
    CHECK(lq_jw_end_object(w) == LQ_ERR_INVALID_ARGUMENT);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", __LINE__);
    /* mismatched and unbalanced ends */
    w = lq_jw_new(0);
    lq_jw_begin_array(w);
    lq_jw_end_object(w);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", __LINE__);
    w = lq_jw_new(0);
    lq_jw_begin_array(w);
    lq_jw_end_array(w);
    CHECK(lq_jw_end_array(w) == LQ_ERR_INVALID_ARGUMENT);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", __LINE__);
    /* a second top-level value */
    w = lq_jw_new(2);
    lq_jw_null(w);
    CHECK(lq_jw_null(w) == LQ_ERR_INVALID_ARGUMENT);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", __LINE__);
    /* NULL text */
    w = lq_jw_new(0);
    lq_jw_string(w, NULL);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", __LINE__);
    /* unbalanced at finish: open containers, nothing written */
    w = lq_jw_new(2);
    lq_jw_begin_object(w);
    lq_jw_key(w, "a");
    lq_jw_begin_array(w);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_UNBALANCED", __LINE__);
    w = lq_jw_new(2);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_UNBALANCED", __LINE__);

    /* Errors are sticky: the first one is reported, later valid calls change nothing. */
    w = lq_jw_new(0);
    lq_jw_begin_array(w);
    lq_jw_key(w, "k");
    CHECK(lq_jw_u64(w, 1) == LQ_ERR_INVALID_ARGUMENT);
    CHECK(lq_jw_string(w, "\xFF") == LQ_ERR_INVALID_ARGUMENT);
    lq_jw_end_array(w);
    lq_error err;
    char *out = NULL;
    CHECK(lq_jw_finish(w, &out, NULL, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "JW_MISUSE");
    CHECK(strstr(err.msg, "key outside an object") != NULL);
    lq_jw_free(w);

    /* After a successful finish the writer refuses more calls. */
    w = lq_jw_new(0);
    lq_jw_null(w);
    CHECK(lq_jw_finish(w, &out, NULL, NULL) == LQ_OK);
    CHECK_STR(out, "null");
    free(out);
    CHECK(lq_jw_null(w) == LQ_ERR_INVALID_ARGUMENT);
    expect_error(w, LQ_ERR_INVALID_ARGUMENT, "JW_MISUSE", __LINE__);

    /* Bad indents; a NULL writer is reported as out of memory everywhere. */
    CHECK(lq_jw_new(-1) == NULL);
    CHECK(lq_jw_new(LQ_JW_MAX_INDENT + 1) == NULL);
    CHECK(lq_jw_begin_object(NULL) == LQ_ERR_NO_MEMORY);
    CHECK(lq_jw_u64(NULL, 1) == LQ_ERR_NO_MEMORY);
    CHECK_EQ_U64(lq_jw_nonfinite(NULL), 0);
    expect_error(NULL, LQ_ERR_NO_MEMORY, "JW_NOMEM", __LINE__);
    lq_jw_free(NULL);

    /* Depth: LQ_JW_MAX_DEPTH nested arrays are fine, one more is JW_DEPTH. */
    w = lq_jw_new(0);
    for (int i = 0; i < LQ_JW_MAX_DEPTH; i++)
        lq_jw_begin_array(w);
    for (int i = 0; i < LQ_JW_MAX_DEPTH; i++)
        lq_jw_end_array(w);
    char want[2 * LQ_JW_MAX_DEPTH + 1];
    memset(want, '[', LQ_JW_MAX_DEPTH);
    memset(want + LQ_JW_MAX_DEPTH, ']', LQ_JW_MAX_DEPTH);
    want[2 * LQ_JW_MAX_DEPTH] = '\0';
    expect_text(w, want, __LINE__);
    w = lq_jw_new(0);
    for (int i = 0; i <= LQ_JW_MAX_DEPTH; i++)
        lq_jw_begin_array(w);
    expect_error(w, LQ_ERR_LIMIT, "JW_DEPTH", __LINE__);
}

/* Growth: 200000 integers; the expected length is summed independently from snprintf. */
static void test_large(void)
{
    lq_jw *w = lq_jw_new(2);
    size_t want = 4; /* "[", and "\n]\n" after the last item */
    lq_jw_begin_array(w);
    for (uint64_t i = 0; i < 200000; i++) {
        char b[32];
        lq_jw_u64(w, i * 7919);
        want += 3 + (size_t)snprintf(b, sizeof(b), "%llu", (unsigned long long)(i * 7919));
        if (i > 0)
            want += 1; /* the comma ending the previous line */
    }
    lq_jw_end_array(w);
    char *out = NULL;
    size_t len = 0;
    CHECK(lq_jw_finish(w, &out, &len, NULL) == LQ_OK);
    CHECK_EQ_U64(len, want);
    CHECK(out && strlen(out) == len);
    CHECK(out && strncmp(out, "[\n  0,\n  7919,\n", 15) == 0);
    char tail[64];
    int tn = snprintf(tail, sizeof(tail), ",\n  %llu\n]\n", 199999ull * 7919ull);
    CHECK(out && len > (size_t)tn && strcmp(out + len - (size_t)tn, tail) == 0);
    free(out);
    lq_jw_free(w);
}

int main(void)
{
    char scratch[] = "/tmp/mimo-jsonw-XXXXXX";
    test_layouts();
    test_escapes();
    test_integers();
    check_doubles();
    check_exact_roundtrip();
    check_nonfinite_and_digits();
    if (mkdtemp(scratch)) {
        check_locale(scratch);
        rmdir(scratch);
    } else {
        CHECK_MSG(0, "mkdtemp failed: %s", strerror(errno));
    }
    test_raw();
    test_misuse();
    test_large();
    return th_finish("sign_jsonw");
}
