/* Strict JSON layer (libquant/json.h).
 *
 * Expected outcomes come from RFC 8259 (grammar, whitespace), RFC 3629 section 4 (the table of
 * well-formed UTF-8 sequences: overlongs, surrogates and code points above U+10FFFF are
 * ill-formed), the 2^53 bound of IEEE doubles, and the cJSON gotchas measured in
 * reference/ecosystem_reliability.md 5.1 (case-insensitive lookup, kept duplicates, trailing
 * garbage, valueint saturation). */
#include "../harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libquant/json.h"

#define LABEL "t.json"

/* Parses exactly len bytes from a heap block of that size (so ASan catches any over-read) and
 * checks status, rule and, where given, the tensor field. Returns the tree on success. */
static cJSON *parse_n(const char *text, size_t len, const lq_json_limits *lim, lq_status want,
                      const char *want_rule, const char *want_tensor, int line)
{
    char *buf = malloc(len ? len : 1);
    if (len)
        memcpy(buf, text, len);
    cJSON *root = (cJSON *)0x1;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_json_parse(buf, len, lim, LABEL, &root, &err);
    free(buf);
    CHECK_MSG(st == want, "line %d: status %d (%s: %s), want %d", line, (int)st, err.rule,
              err.msg, (int)want);
    if (want == LQ_OK) {
        CHECK_MSG(root != NULL && root != (cJSON *)0x1, "line %d: no tree", line);
        return root;
    }
    CHECK_MSG(root == NULL, "line %d: *out not NULL on failure", line);
    CHECK_MSG(strcmp(err.rule, want_rule) == 0, "line %d: rule %s, want %s (%s)", line, err.rule,
              want_rule, err.msg);
    CHECK_MSG(strcmp(err.file, LABEL) == 0, "line %d: file \"%s\"", line, err.file);
    if (want_tensor)
        CHECK_MSG(strcmp(err.tensor, want_tensor) == 0, "line %d: tensor \"%s\", want \"%s\"",
                  line, err.tensor, want_tensor);
    return NULL;
}

#define OK(text) cJSON_Delete(parse_n(text, strlen(text), NULL, LQ_OK, NULL, NULL, __LINE__))
#define OK_L(text, lim) cJSON_Delete(parse_n(text, strlen(text), lim, LQ_OK, NULL, NULL, __LINE__))
#define BAD(text, rule) parse_n(text, strlen(text), NULL, LQ_ERR_CORRUPT, rule, NULL, __LINE__)
#define BAD_L(text, lim, rule)                                                                \
    parse_n(text, strlen(text), lim, LQ_ERR_CORRUPT, rule, NULL, __LINE__)
#define PARSE(text, ...) parse_n(text, strlen(text), __VA_ARGS__)
/* For texts with embedded NUL bytes: length from sizeof of a literal. */
#define BAD_LIT(lit, rule) parse_n(lit, sizeof(lit) - 1, NULL, LQ_ERR_CORRUPT, rule, NULL, __LINE__)

static void test_duplicates(void)
{
    PARSE("{\"a\":1,\"a\":2}", NULL, LQ_ERR_CORRUPT, "JSON_DUP_KEY", "a", __LINE__);
    /* Nested: the tensor field names the top-level key the duplicate lies under. */
    const char *nested = "{\"x\":{\"y\":1,\"y\":2}}";
    parse_n(nested, strlen(nested), NULL, LQ_ERR_CORRUPT, "JSON_DUP_KEY", "x", __LINE__);
    const char *in_array = "{\"x\":[1,{\"k\":1,\"k\":1}]}";
    parse_n(in_array, strlen(in_array), NULL, LQ_ERR_CORRUPT, "JSON_DUP_KEY", "x", __LINE__);
    /* Keys equal after unescaping are duplicates: "a\u0062" is "ab". */
    BAD("{\"ab\":1,\"a\\u0062\":2}", "JSON_DUP_KEY");
    /* Keys containing escaped quotes. */
    BAD("{\"a\\\"b\":1,\"a\\\"b\":2}", "JSON_DUP_KEY");

    /* Objects above the small-object threshold go through the sorting path. */
    {
        char big[4096];
        size_t n = 0;
        n += (size_t)snprintf(big + n, sizeof(big) - n, "{");
        for (int i = 0; i < 100; i++)
            n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"k%d\":%d", i ? "," : "", i, i);
        n += (size_t)snprintf(big + n, sizeof(big) - n, "}");
        OK(big);
        big[n - 1] = '\0';
        strcat(big, ",\"k57\":0}");
        parse_n(big, strlen(big), NULL, LQ_ERR_CORRUPT, "JSON_DUP_KEY", "k57", __LINE__);
    }

    /* Keys differing only in case are different keys, and lookups are case-sensitive. cJSON's
     * own lookup is not (reference 5.1), which is why lq_json_get exists. */
    const char *cases = "{\"Key\":1,\"key\":2,\"KEY\":3}";
    cJSON *root = parse_n(cases, strlen(cases), NULL, LQ_OK, NULL, NULL, __LINE__);
    if (root) {
        uint64_t v = 0;
        CHECK(lq_json_u64(lq_json_get(root, "Key"), &v) == 0 && v == 1);
        CHECK(lq_json_u64(lq_json_get(root, "key"), &v) == 0 && v == 2);
        CHECK(lq_json_u64(lq_json_get(root, "KEY"), &v) == 0 && v == 3);
        CHECK(lq_json_get(root, "kEy") == NULL);
        CHECK(cJSON_GetObjectItem(root, "kEy") != NULL); /* the gotcha this layer avoids */
        CHECK(lq_json_get(lq_json_get(root, "Key"), "x") == NULL); /* not an object */
        cJSON_Delete(root);
    }
}

static void test_trailing(void)
{
    BAD("{\"a\":1} x", "JSON_TRAILING");
    BAD("{\"a\":1}{}", "JSON_TRAILING");
    BAD("{\"a\":1}}", "JSON_TRAILING");
    BAD("{\"a\":1},", "JSON_TRAILING");
    /* NUL padding is rejected, as the Rust reference does ("trailing characters"). */
    BAD_LIT("{\"a\":1}\0\0\0", "JSON_NUL");
    /* JSON whitespace padding is accepted, before and after. */
    OK("{\"a\":1}     ");
    OK("{\"a\":1} \t\r\n");
    OK(" \n{\"a\":1}");
    /* cJSON skips every byte <= 0x20; form feed and vertical tab are not JSON whitespace. */
    BAD("{\"a\":1}\f", "JSON_SYNTAX");
    BAD("{\"a\":\v1}", "JSON_SYNTAX");

    /* The message gives the byte offset: the 'x' is byte 8 of "{\"a\":1} x". */
    lq_error err;
    cJSON *root = NULL;
    CHECK(lq_json_parse("{\"a\":1} x", 9, NULL, LABEL, &root, &err) == LQ_ERR_CORRUPT);
    CHECK_MSG(strstr(err.msg, "byte 8") != NULL, "message: %s", err.msg);

    /* Only len bytes are read: what follows in memory is never looked at. */
    const char *longer = "{\"a\":1}XYZ";
    cJSON_Delete(parse_n(longer, 7, NULL, LQ_OK, NULL, NULL, __LINE__));
}

static void test_utf8(void)
{
    /* Valid boundaries of every sequence length (RFC 3629 section 4). */
    OK("{\"a\":\"\xC2\x80 \xDF\xBF \xE0\xA0\x80 \xED\x9F\xBF \xEE\x80\x80 \xEF\xBF\xBF\"}");
    OK("{\"a\":\"\xF0\x90\x80\x80 \xF4\x8F\xBF\xBF\"}");
    /* Overlong forms of '/' (U+002F) in 2, 3 and 4 bytes; C1 lead. */
    BAD("{\"a\":\"\xC0\xAF\"}", "JSON_UTF8");
    BAD("{\"a\":\"\xE0\x80\xAF\"}", "JSON_UTF8");
    BAD("{\"a\":\"\xF0\x80\x80\xAF\"}", "JSON_UTF8");
    BAD("{\"a\":\"\xC1\xBF\"}", "JSON_UTF8");
    /* UTF-16 surrogates encoded in UTF-8: U+D800 and U+DFFF. */
    BAD("{\"a\":\"\xED\xA0\x80\"}", "JSON_UTF8");
    BAD("{\"a\":\"\xED\xBF\xBF\"}", "JSON_UTF8");
    /* Truncated sequences: before the closing quote, and at the very end of the buffer. */
    BAD("{\"a\":\"\xE2\x82\"}", "JSON_UTF8");
    BAD("{\"a\":\"\xF0\x9F\x98\"}", "JSON_UTF8");
    BAD("{\"a\":\"\xE2\x82", "JSON_UTF8");
    /* Above U+10FFFF, and lead bytes that can never start a sequence. */
    BAD("{\"a\":\"\xF4\x90\x80\x80\"}", "JSON_UTF8");
    BAD("{\"a\":\"\xF5\x80\x80\x80\"}", "JSON_UTF8");
    BAD("{\"a\":\"\xFF\"}", "JSON_UTF8");
    /* A lone continuation byte, in a key, and outside any string. */
    BAD("{\"\x80\":1}", "JSON_UTF8");
    BAD("{\"a\":1}\xFF", "JSON_UTF8");
    /* A byte-order mark is valid UTF-8 but not JSON text (cJSON would skip it). */
    BAD("\xEF\xBB\xBF{}", "JSON_SYNTAX");

    /* Escapes: a surrogate pair is fine and decodes to U+1F600; lone halves are not scalars. */
    cJSON *root = PARSE("{\"a\":\"\\ud83d\\ude00\"}", NULL, LQ_OK, NULL, NULL, __LINE__);
    if (root) {
        const cJSON *a = lq_json_get(root, "a");
        CHECK(a && cJSON_IsString(a) && strcmp(a->valuestring, "\xF0\x9F\x98\x80") == 0);
        cJSON_Delete(root);
    }
    BAD("{\"a\":\"\\ud800\"}", "JSON_UTF8");
    BAD("{\"a\":\"\\udc00\"}", "JSON_UTF8");
    BAD("{\"a\":\"\\ud800\\u0041\"}", "JSON_UTF8");
    BAD("{\"a\":\"\\ud800x\"}", "JSON_UTF8");
    /* NUL, raw and escaped, and raw control characters in strings. */
    BAD_LIT("{\"a\":\"x\0y\"}", "JSON_NUL");
    BAD("{\"a\":\"x\\u0000y\"}", "JSON_NUL");
    BAD("{\"a\":\"x\ty\"}", "JSON_SYNTAX");
    BAD("{\"a\":\"\\x41\"}", "JSON_SYNTAX");
    BAD("{\"a\":\"\\u12G4\"}", "JSON_SYNTAX");
    BAD("{\"a\":\"abc", "JSON_SYNTAX");
    BAD("{\"a\":\"abc\\", "JSON_SYNTAX");
}

static void test_numbers(void)
{
    lq_json_limits ints = {0, 1, 0};

    /* 2^53 = 9007199254740992 is the largest integer every smaller one of which a double holds. */
    cJSON *root = PARSE("[9007199254740992,-9007199254740992,0,-0,123]", &ints, LQ_OK,
                          NULL, NULL, __LINE__);
    if (root) {
        uint64_t u = 0;
        int64_t i = 0;
        CHECK(lq_json_u64(cJSON_GetArrayItem(root, 0), &u) == 0);
        CHECK_EQ_U64(u, 9007199254740992ull);
        CHECK(lq_json_i64(cJSON_GetArrayItem(root, 0), &i) == 0 && i == 9007199254740992ll);
        CHECK(lq_json_i64(cJSON_GetArrayItem(root, 1), &i) == 0 && i == -9007199254740992ll);
        CHECK(lq_json_u64(cJSON_GetArrayItem(root, 1), &u) == -1);
        CHECK(lq_json_u64(cJSON_GetArrayItem(root, 2), &u) == 0 && u == 0);
        CHECK(lq_json_u64(cJSON_GetArrayItem(root, 3), &u) == 0 && u == 0);
        CHECK(lq_json_u64(cJSON_GetArrayItem(root, 4), &u) == 0 && u == 123);
        cJSON_Delete(root);
    }
    /* 2^53 + 1 would silently become 2^53 in a double (reference 5.1). */
    BAD("[9007199254740993]", "JSON_INT_RANGE");
    BAD("[-9007199254740993]", "JSON_INT_RANGE");
    BAD("[18446744073709551616]", "JSON_INT_RANGE");
    BAD("[99999999999999999999999999]", "JSON_INT_RANGE");
    OK("[1000000000000000]"); /* 16 digits, below 2^53 */

    /* integers_only: any fraction or exponent is rejected, even with an integral value. */
    BAD_L("{\"a\":1.0}", &ints, "JSON_NOT_INTEGER");
    BAD_L("{\"a\":1e2}", &ints, "JSON_NOT_INTEGER");
    BAD_L("{\"a\":1E2}", &ints, "JSON_NOT_INTEGER");
    BAD_L("{\"a\\\"\":[-0.5]}", &ints, "JSON_NOT_INTEGER");
    /* Numbers inside strings are not numbers, escaped quotes notwithstanding. */
    OK_L("{\"a\":\"1.5\",\"b\":\"x\\\"1e5\\\\\",\"c\":7}", &ints);
    OK_L("{\"a\":\"}\\\"{\\\"x\\\":1.5}\"}", &ints);

    /* Without integers_only, fractions are fine; the exact getters still refuse them. */
    root = PARSE("[1.5,2.0,1e300,-1,4294967296]", NULL, LQ_OK, NULL, NULL, __LINE__);
    if (root) {
        uint64_t u = 77;
        int64_t i = 0;
        CHECK(lq_json_u64(cJSON_GetArrayItem(root, 0), &u) == -1 && u == 77);
        CHECK(lq_json_u64(cJSON_GetArrayItem(root, 1), &u) == 0 && u == 2);
        CHECK(lq_json_u64(cJSON_GetArrayItem(root, 2), &u) == -1);
        CHECK(lq_json_i64(cJSON_GetArrayItem(root, 2), &i) == -1);
        CHECK(lq_json_i64(cJSON_GetArrayItem(root, 3), &i) == 0 && i == -1);
        /* 2^32: above INT_MAX, where valueint saturates (reference 5.1). */
        CHECK(lq_json_u64(cJSON_GetArrayItem(root, 4), &u) == 0 && u == 4294967296ull);
        CHECK(cJSON_GetArrayItem(root, 4)->valueint == 2147483647);
        cJSON_Delete(root);
    }
    /* Found by tests/fuzz/fuzz_json.c: a fraction token whose double value is an integer above
     * 2^53 (1.5455555555555556e16 rounds to 15455555555555556) is a valid, inexact number; the
     * exact getters refuse it, and cJSON prints it as an integer token the strict layer refuses. */
    root = PARSE("[15455555555555556.2]", NULL, LQ_OK, NULL, NULL, __LINE__);
    if (root) {
        uint64_t u = 0;
        CHECK(lq_json_u64(cJSON_GetArrayItem(root, 0), &u) == -1);
        char *text = cJSON_PrintUnformatted(root);
        CHECK(text && strcmp(text, "[15455555555555556]") == 0);
        if (text)
            BAD(text, "JSON_INT_RANGE");
        cJSON_free(text);
        cJSON_Delete(root);
    }
    uint64_t u = 0;
    int64_t i = 0;
    CHECK(lq_json_u64(NULL, &u) == -1);
    CHECK(lq_json_i64(NULL, &i) == -1);
    root = PARSE("[\"5\",true]", NULL, LQ_OK, NULL, NULL, __LINE__);
    if (root) {
        CHECK(lq_json_u64(cJSON_GetArrayItem(root, 0), &u) == -1);
        CHECK(lq_json_i64(cJSON_GetArrayItem(root, 1), &i) == -1);
        cJSON_Delete(root);
    }

    /* RFC 8259 number grammar, which cJSON (strtod) is looser than. */
    BAD("[+1]", "JSON_SYNTAX");
    BAD("[01]", "JSON_SYNTAX");
    BAD("[-01]", "JSON_SYNTAX");
    BAD("[1.]", "JSON_SYNTAX");
    BAD("[.5]", "JSON_SYNTAX");
    BAD("[-]", "JSON_SYNTAX");
    BAD("[1e]", "JSON_SYNTAX");
    BAD("[1e+]", "JSON_SYNTAX");
    BAD("[1.2.3]", "JSON_SYNTAX");
    BAD("[1e5e5]", "JSON_SYNTAX");
    BAD("[-Infinity]", "JSON_SYNTAX");
    BAD("[NaN]", "JSON_SYNTAX");
    BAD("[0x10]", "JSON_SYNTAX");
    OK("[0,-0,0.5,-0.5e-3,1E+2,10]");
    /* 64 characters: longer than cJSON parses whole. */
    BAD("[0.000000000000000000000000000000000000000000000000000000000000001]", "JSON_SYNTAX");
}

static void test_depth_and_limits(void)
{
    lq_json_limits d3 = {3, 0, 0};
    OK_L("{\"a\":{\"b\":[1]}}", &d3);
    BAD_L("{\"a\":{\"b\":[[1]]}}", &d3, "JSON_DEPTH");
    BAD_L("[[[[]]]]", &d3, "JSON_DEPTH");
    /* Brackets inside strings, also after escaped quotes and backslashes, are not nesting. */
    lq_json_limits d1 = {1, 0, 0};
    OK_L("{\"a\":\"[[[[{{{{\"}", &d1);
    OK_L("{\"a\":\"\\\"[[[[\",\"b\":\"\\\\\",\"c\":\"{\"}", &d1);
    BAD_L("{\"a\":\"\\\\\",\"b\":[1]}", &d1, "JSON_DEPTH");

    /* The default is 64. */
    char deep[300];
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    deep[128] = '\0';
    OK(deep);
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = '\0';
    BAD(deep, "JSON_DEPTH");

    /* A huge nesting is refused by the pre-scan before cJSON recurses. */
    size_t n = 1000000;
    char *huge = malloc(n + 1);
    CHECK(huge != NULL);
    if (!huge)
        return;
    memset(huge, '[', n);
    huge[n] = '\0';
    BAD(huge, "JSON_DEPTH");
    /* Limits above cJSON's 1000 act as 1000. */
    lq_json_limits d5000 = {5000, 0, 0};
    memset(huge, '[', 1000);
    memset(huge + 1000, ']', 1000);
    huge[2000] = '\0';
    OK_L(huge, &d5000);
    memset(huge, '[', 1001);
    memset(huge + 1001, ']', 1001);
    huge[2002] = '\0';
    BAD_L(huge, &d5000, "JSON_DEPTH");
    free(huge);

    /* max_values counts every value and key: [1,2,3] holds 4, {"a":[1]} holds 4. */
    lq_json_limits v4 = {0, 0, 4}, v3 = {0, 0, 3};
    OK_L("[1,2,3]", &v4);
    OK_L("{\"a\":[1]}", &v4);
    PARSE("[1,2,3]", &v3, LQ_ERR_LIMIT, "JSON_LIMIT", NULL, __LINE__);
    PARSE("{\"a\":[true]}", &v3, LQ_ERR_LIMIT, "JSON_LIMIT", NULL, __LINE__);
}

static void test_syntax(void)
{
    BAD("", "JSON_SYNTAX");
    BAD("   ", "JSON_SYNTAX");
    BAD("{\"a\":}", "JSON_SYNTAX");
    BAD("{\"a\":1,}", "JSON_SYNTAX");
    BAD("[1,]", "JSON_SYNTAX");
    BAD("{'a':1}", "JSON_SYNTAX");
    BAD("[1 2]", "JSON_SYNTAX");
    BAD("{\"a\" 1}", "JSON_SYNTAX");
    BAD("{\"a\":tru}", "JSON_SYNTAX");
    BAD("{\"a\":True}", "JSON_SYNTAX");
    BAD("{\"a\":1", "JSON_SYNTAX");
    BAD("]", "JSON_SYNTAX");
    OK("42");
    OK("\"s\"");
    OK("null");
    OK("{}");
    OK("[]");

    lq_error err;
    cJSON *root = (cJSON *)0x1;
    CHECK(lq_json_parse("{}", 2, NULL, LABEL, NULL, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK(lq_json_parse(NULL, 2, NULL, LABEL, &root, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK(root == NULL);
    /* A NULL error pointer is allowed. */
    CHECK(lq_json_parse("{", 1, NULL, LABEL, &root, NULL) == LQ_ERR_CORRUPT);
}

static void test_file(void)
{
    char dir[] = "/tmp/lqjson-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    char path[256], missing[256];
    snprintf(path, sizeof(path), "%s/c.json", dir);
    snprintf(missing, sizeof(missing), "%s/none.json", dir);
    FILE *fp = fopen(path, "wb");
    fputs("{\"hidden_size\": 4096, \"n\": [1, 2]}\n", fp);
    fclose(fp);

    cJSON *root = NULL;
    lq_error err;
    CHECK(lq_json_parse_file(path, 0, NULL, &root, &err) == LQ_OK);
    uint64_t v = 0;
    CHECK(lq_json_u64(lq_json_get(root, "hidden_size"), &v) == 0 && v == 4096);
    cJSON_Delete(root);

    /* A cap one byte below the file's size refuses it before reading. */
    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    size_t size = (size_t)sb.st_size;
    CHECK(lq_json_parse_file(path, size - 1, NULL, &root, &err) == LQ_ERR_LIMIT);
    CHECK_STR(err.rule, "JSON_LIMIT");
    CHECK(root == NULL);
    CHECK(lq_json_parse_file(path, size, NULL, &root, &err) == LQ_OK);
    cJSON_Delete(root);
    CHECK(lq_json_parse_file(missing, 0, NULL, &root, &err) == LQ_ERR_NOT_FOUND);
    CHECK_STR(err.file, missing);
    CHECK(lq_json_parse_file(dir, 0, NULL, &root, &err) == LQ_ERR_IO);

    /* JSON errors name the file. */
    fp = fopen(path, "wb");
    fputs("{\"a\":1,\"a\":1}", fp);
    fclose(fp);
    CHECK(lq_json_parse_file(path, 0, NULL, &root, &err) == LQ_ERR_CORRUPT);
    CHECK_STR(err.rule, "JSON_DUP_KEY");
    CHECK_STR(err.file, path);

    unlink(path);
    rmdir(dir);
}

/* lq_json_parse_file_split agrees with lq_json_parse_file: same status, rule and message; on
 * success the same tree once the split arrays' elements (handed over in order) are put back. */
typedef struct collect {
    cJSON *arr;
    size_t next;
} collect;

static lq_status collect_elem(void *user, size_t index, const cJSON *e, lq_error *err)
{
    collect *c = user;
    (void)err;
    CHECK_EQ_U64(index, c->next);
    c->next++;
    cJSON_AddItemToArray(c->arr, cJSON_Duplicate(e, 1));
    return LQ_OK;
}

static void split_case(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    fputs(text, fp);
    fclose(fp);
    static const char *const k1[] = {"plan", "tensors"}, *const k2[] = {"crc"};
    collect c1 = {cJSON_CreateArray(), 0}, c2 = {cJSON_CreateArray(), 0};
    lq_json_split sp[2] = {{k1, 2, collect_elem, &c1}, {k2, 1, collect_elem, &c2}};
    cJSON *whole = NULL, *split = NULL;
    lq_error e1, e2;
    lq_error_clear(&e1);
    lq_error_clear(&e2);
    lq_status s1 = lq_json_parse_file(path, 0, NULL, &whole, &e1);
    lq_status s2 = lq_json_parse_file_split(path, 0, NULL, sp, 2, &split, &e2);
    CHECK_MSG(s1 == s2, "%s: status %d whole, %d split", text, (int)s1, (int)s2);
    if (s1 != LQ_OK) {
        CHECK_MSG(!strcmp(e1.rule, e2.rule) && !strcmp(e1.msg, e2.msg), "%s: %s %s vs %s %s", text, e1.rule, e1.msg,
                  e2.rule, e2.msg);
    } else if (s2 == LQ_OK) {
        /* Put the handed-over elements back and compare. */
        cJSON *plan = cJSON_GetObjectItemCaseSensitive(split, "plan");
        if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(plan, "tensors")))
            cJSON_ReplaceItemInObjectCaseSensitive(plan, "tensors", c1.arr), c1.arr = NULL;
        if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(split, "crc")))
            cJSON_ReplaceItemInObjectCaseSensitive(split, "crc", c2.arr), c2.arr = NULL;
        CHECK_MSG(cJSON_Compare(whole, split, 1), "%s: trees differ", text);
    }
    cJSON_Delete(c1.arr);
    cJSON_Delete(c2.arr);
    cJSON_Delete(whole);
    cJSON_Delete(split);
}

static void test_split(void)
{
    char dir[] = "/tmp/lqjson-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    char path[256];
    snprintf(path, sizeof(path), "%s/s.json", dir);
    static const char *const texts[] = {
        "{\"plan\":{\"a\":1,\"tensors\":[[\"x\",\"U8\",[2,3]],[\"y\\\"]\",\"BF16\",[]]],\"z\":[]},\"crc\":[[\"x\",\"00ff\"]]}",
        " { \"crc\" : [ ] , \"plan\" : { \"tensors\" : [ 1 , {\"k\":[1,2]} , \"s\" ] } } \n",
        "{\"plan\":{\"tensors\":[]},\"crc\":[1]}",
        "{\"plan\":{\"tensors\":[1,]},\"crc\":[]}",            /* trailing comma inside */
        "{\"plan\":{\"tensors\":[1,,2]},\"crc\":[]}",
        "{\"plan\":{\"tensors\":[01]},\"crc\":[]}",            /* number grammar inside an element */
        "{\"plan\":{\"tensors\":[{\"a\":1,\"a\":2}]},\"crc\":[]}", /* duplicate key inside an element */
        "{\"plan\":{\"tensors\":[1],\"tensors\":[2]},\"crc\":[]}",
        "{\"plan\":{\"tensors\":[1]},\"crc\":[]} x",             /* trailing garbage */
        "{\"plan\":{\"tensors\":[\"\\ud800\"]},\"crc\":[]}",      /* lone surrogate inside an element */
        "{\"plan\":{\"tensor\\u0073\":[1,2]},\"crc\":[3]}",      /* escaped key: parsed whole */
        "{\"plan\":{\"tensors\":7},\"crc\":[]}",                 /* not an array */
        "{\"plan\":{},\"crc\":[]}",                              /* path missing */
        "{\"plan\":{\"tensors\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
        "{\"plan\":{\"tensors\":[\"unterminated]},\"crc\":[]}",
        "[1,2]",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        split_case(path, texts[i]);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_duplicates();
    test_trailing();
    test_utf8();
    test_numbers();
    test_depth_and_limits();
    test_syntax();
    test_file();
    test_split();
    return th_finish("test_json");
}
