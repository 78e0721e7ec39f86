/* libFuzzer target for the strict JSON layer (libquant/json.h).
 *
 * Build and run like fuzz_safetensors.c (see there), with tests/fuzz/fuzz_json.c and
 * libquant/json.c libquant/status.c in place of the reader's files:
 *   clang -g -O1 -std=c11 -D_XOPEN_SOURCE=700 -D_DEFAULT_SOURCE -I. -I/usr/include/cjson \
 *     -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     tests/fuzz/fuzz_json.c libquant/json.c libquant/status.c -lcjson -o build-fuzz/fuzz_json
 *
 * The first byte picks the limits (bit 0: integers only; bits 1-4: depth 1-16; bit 5: a budget
 * of 64 values), the rest is the text. An accepted text must survive cJSON's printer and a
 * second strict parse (so nothing accepted is outside what the strict layer accepts), every
 * member must be found by the case-sensitive lookup, and with integers_only every number must
 * be an exact integer of at most 2^53 in magnitude. (Numbers above 2^53 written with a fraction
 * or exponent are exempt from the reprint check; see walk.) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libquant/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_json: invariant broken: %s\n", what);
    abort();
}

/* Returns whether the tree holds a number above 2^53 in magnitude. Such a number can only
 * come from a fraction or exponent token ("1.5e17"), and cJSON prints it as an integer token,
 * which the strict layer rightly refuses; the reprint check skips those trees. */
static int walk(const cJSON *node, int integers_only)
{
    int big = 0;
    for (const cJSON *ch = node->child; ch; ch = ch->next) {
        if (cJSON_IsObject(node) && lq_json_get(node, ch->string) != ch)
            fail("case-sensitive lookup");
        if (cJSON_IsNumber(ch)) {
            int64_t v;
            if (integers_only && lq_json_i64(ch, &v) != 0)
                fail("integers_only number is not an exact integer");
            if (!(ch->valuedouble >= -LQ_JSON_MAX_EXACT_INT &&
                  ch->valuedouble <= LQ_JSON_MAX_EXACT_INT))
                big = 1;
        }
        big |= walk(ch, integers_only);
    }
    return big;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    lq_json_limits lim = {0};
    lim.integers_only = data[0] & 1;
    lim.max_depth = 1 + ((data[0] >> 1) & 15);
    lim.max_values = (data[0] & 0x20) ? 64 : 0;
    cJSON *root = NULL;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_json_parse((const char *)data + 1, size - 1, &lim, "fuzz", &root, &err);
    if (st != LQ_OK) {
        if (root)
            fail("tree on failure");
        if (err.rule[0] == '\0')
            fail("rejection without a rule");
        return 0;
    }
    int big = walk(root, lim.integers_only);
    if (cJSON_IsNumber(root) && !(root->valuedouble >= -LQ_JSON_MAX_EXACT_INT &&
                                  root->valuedouble <= LQ_JSON_MAX_EXACT_INT))
        big = 1;
    char *text = big ? NULL : cJSON_PrintUnformatted(root);
    if (text) {
        /* The printer may write fractions or exponents for integers_only input, so the second
         * parse allows any number; depth and values do not change. */
        lq_json_limits again = lim;
        again.integers_only = 0;
        cJSON *root2 = NULL;
        if (lq_json_parse(text, strlen(text), &again, "reprint", &root2, &err) != LQ_OK) {
            fprintf(stderr, "reprint: %s: %s\n", err.rule, err.msg);
            fail("printed tree is not strict JSON");
        }
        cJSON_Delete(root2);
        cJSON_free(text);
    }
    cJSON_Delete(root);
    return 0;
}
