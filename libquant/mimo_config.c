/* MiMo-V2 config.json in the hub and transformers dialects (mimo_config.h).
 *
 * Every value is looked up under each key that can carry it (a dotted path for the nested
 * transformers keys). All keys present must agree; the first present one gives the value.
 * Values the transformers port hard-codes instead of reading (SWA heads, sinks, scoring) are
 * filled in by the caller of those lookups, and only when no key gives them. */
#include "mimo_config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

typedef struct cctx {
    const cJSON *root;
    const char *file;
    lq_error *err;
} cctx;

/* Resolves "a.b.c" below root. Absent (or a non-object on the way) gives NULL; the containers
 * on the way are type-checked once, up front, by check_containers. */
static const cJSON *lookup(const cJSON *root, const char *path)
{
    char part[64];
    const cJSON *cur = root;
    const char *p = path;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(part))
            return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        cur = lq_json_get(cur, part);
        p = dot ? dot + 1 : p + n;
    }
    return cur;
}

static lq_status key_fail(cctx *cx, lq_status st, const char *rule, const char *path,
                          const char *what)
{
    return lq_fail(cx->err, st, cx->file, path, rule, "'%s' %s", path, what);
}

static lq_status missing(cctx *cx, const char *const *paths, size_t n)
{
    if (n == 1)
        return key_fail(cx, LQ_ERR_NOT_FOUND, "CFG_KEY", paths[0], "is required");
    return lq_fail(cx->err, LQ_ERR_NOT_FOUND, cx->file, paths[0], "CFG_KEY",
                   "'%s' is required (or '%s'%s%s)", paths[0], paths[1], n > 2 ? " or " : "",
                   n > 2 ? paths[2] : "");
}

static lq_status conflict(cctx *cx, const char *a, const char *b, const char *va, const char *vb)
{
    return lq_fail(cx->err, LQ_ERR_CORRUPT, cx->file, a, "CFG_CONFLICT",
                   "'%s' is %s but '%s' is %s", a, va, b, vb);
}

/* ---- single keys ---- */

/* Integer at path: *present = 0 when absent; wrong type -> CFG_KEY; negative -> CFG_VALUE. */
static lq_status get_int(cctx *cx, const char *path, int *present, uint64_t *v)
{
    const cJSON *it = lookup(cx->root, path);
    *present = 0;
    if (!it)
        return LQ_OK;
    int64_t s;
    if (lq_json_i64(it, &s) == 0 && s < 0)
        return key_fail(cx, LQ_ERR_CORRUPT, "CFG_VALUE", path, "must not be negative");
    if (lq_json_u64(it, v) != 0)
        return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", path, "must be an integer");
    *present = 1;
    return LQ_OK;
}

/* Number at path; null is reported through *is_null (present stays 0) when allow_null. */
static lq_status get_num(cctx *cx, const char *path, int allow_null, int *present, int *is_null,
                         double *v)
{
    const cJSON *it = lookup(cx->root, path);
    *present = 0;
    if (is_null)
        *is_null = 0;
    if (!it)
        return LQ_OK;
    if (allow_null && cJSON_IsNull(it)) {
        *is_null = 1;
        return LQ_OK;
    }
    if (!cJSON_IsNumber(it))
        return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", path,
                        allow_null ? "must be a number or null" : "must be a number");
    *v = it->valuedouble;
    *present = 1;
    return LQ_OK;
}

static lq_status get_bool(cctx *cx, const char *path, int *present, int *v)
{
    const cJSON *it = lookup(cx->root, path);
    *present = 0;
    if (!it)
        return LQ_OK;
    if (!cJSON_IsBool(it))
        return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", path, "must be true or false");
    *v = cJSON_IsTrue(it) ? 1 : 0;
    *present = 1;
    return LQ_OK;
}

/* String at path (borrowed from the tree), NULL when absent. */
static lq_status get_str(cctx *cx, const char *path, const char **v)
{
    const cJSON *it = lookup(cx->root, path);
    *v = NULL;
    if (!it)
        return LQ_OK;
    if (!cJSON_IsString(it) || !it->valuestring)
        return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", path, "must be a string");
    *v = it->valuestring;
    return LQ_OK;
}

static lq_status copy_str(cctx *cx, const char *path, const char *s, char *dst, size_t cap)
{
    size_t n = strlen(s);
    if (n >= cap)
        return lq_fail(cx->err, LQ_ERR_CORRUPT, cx->file, path, "CFG_VALUE",
                       "'%s' is longer than %zu bytes", path, cap - 1);
    memcpy(dst, s, n + 1);
    return LQ_OK;
}

/* ---- values that several keys can carry ---- */

/* Integer from any of paths; all present must agree. *found = 0 when none is present (then
 * required gives CFG_KEY). The value must lie in [lo, hi] (CFG_VALUE). */
static lq_status int_of(cctx *cx, const char *const *paths, size_t n, int required, uint64_t lo,
                        uint64_t hi, int *found, uint64_t *out)
{
    *found = 0;
    size_t first = 0;
    for (size_t i = 0; i < n; i++) {
        int pr;
        uint64_t v = 0;
        lq_status st = get_int(cx, paths[i], &pr, &v);
        if (st != LQ_OK)
            return st;
        if (!pr)
            continue;
        if (*found && v != *out) {
            char a[32], b[32];
            snprintf(a, sizeof(a), "%llu", (unsigned long long)*out);
            snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
            return conflict(cx, paths[first], paths[i], a, b);
        }
        if (!*found) {
            *found = 1;
            *out = v;
            first = i;
        }
    }
    if (!*found)
        return required ? missing(cx, paths, n) : LQ_OK;
    if (*out < lo || *out > hi)
        return lq_fail(cx->err, LQ_ERR_CORRUPT, cx->file, paths[first], "CFG_VALUE",
                       "'%s' is %llu, outside %llu..%llu", paths[first],
                       (unsigned long long)*out, (unsigned long long)lo, (unsigned long long)hi);
    return LQ_OK;
}

static lq_status u32_of(cctx *cx, const char *const *paths, size_t n, int required, uint32_t lo,
                        uint32_t hi, int *found, uint32_t *out)
{
    uint64_t v = 0;
    lq_status st = int_of(cx, paths, n, required, lo, hi, found, &v);
    if (st == LQ_OK && *found)
        *out = (uint32_t)v;
    return st;
}

/* Required u32 under one key. */
static lq_status u32_req(cctx *cx, const char *path, uint32_t lo, uint32_t hi, uint32_t *out)
{
    int found;
    return u32_of(cx, &path, 1, 1, lo, hi, &found, out);
}

/* Number from any of paths; all present must agree exactly (the same decimal text gives the
 * same double). null counts as "present, value null_value" when allow_null. */
static lq_status num_of(cctx *cx, const char *const *paths, size_t n, int required, int allow_null,
                        double null_value, int *found, double *out)
{
    *found = 0;
    size_t first = 0;
    for (size_t i = 0; i < n; i++) {
        int pr, isnull;
        double v = 0;
        lq_status st = get_num(cx, paths[i], allow_null, &pr, &isnull, &v);
        if (st != LQ_OK)
            return st;
        if (isnull) {
            v = null_value;
            pr = 1;
        }
        if (!pr)
            continue;
        if (*found && !(v == *out)) {
            char a[40], b[40];
            snprintf(a, sizeof(a), "%.17g", *out);
            snprintf(b, sizeof(b), "%.17g", v);
            return conflict(cx, paths[first], paths[i], a, b);
        }
        if (!*found) {
            *found = 1;
            *out = v;
            first = i;
        }
    }
    if (!*found && required)
        return missing(cx, paths, n);
    return LQ_OK;
}

static lq_status bool_of(cctx *cx, const char *const *paths, size_t n, int *found, int *out)
{
    *found = 0;
    size_t first = 0;
    for (size_t i = 0; i < n; i++) {
        int pr, v = 0;
        lq_status st = get_bool(cx, paths[i], &pr, &v);
        if (st != LQ_OK)
            return st;
        if (!pr)
            continue;
        if (*found && v != *out)
            return conflict(cx, paths[first], paths[i], *out ? "true" : "false", v ? "true" : "false");
        if (!*found) {
            *found = 1;
            *out = v;
            first = i;
        }
    }
    return LQ_OK;
}

/* A positive finite number (strictly above lo_excl, at most hi). */
static lq_status check_range(cctx *cx, const char *path, double v, double lo_excl, double hi)
{
    if (!isfinite(v) || !(v > lo_excl) || !(v <= hi))
        return lq_fail(cx->err, LQ_ERR_CORRUPT, cx->file, path, "CFG_VALUE",
                       "'%s' is %.17g, need a finite value in (%g, %g]", path, v, lo_excl, hi);
    return LQ_OK;
}

static lq_status value_fail(cctx *cx, lq_status st, const char *path, const char *fmt_msg, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static lq_status value_fail(cctx *cx, lq_status st, const char *path, const char *fmt_msg, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt_msg);
    vsnprintf(msg, sizeof(msg), fmt_msg, ap);
    va_end(ap);
    return lq_fail(cx->err, st, cx->file, path, "CFG_VALUE", "%s", msg);
}

/* First of paths present in the file (for naming the key a value came from). */
static const char *present_path(cctx *cx, const char *const *paths, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lookup(cx->root, paths[i]))
            return paths[i];
    return paths[0];
}

/* ---- containers and per-layer lists ---- */

static lq_status check_containers(cctx *cx)
{
    static const char *const objs[] = {
        "rope_parameters", "rope_parameters.full_attention", "rope_parameters.sliding_attention",
        "quantization_config",
    };
    for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
        const cJSON *it = lookup(cx->root, objs[i]);
        if (it && !cJSON_IsObject(it) && !cJSON_IsNull(it))
            return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", objs[i], "must be an object or null");
    }
    return LQ_OK;
}

/* Fills dst[L] (0/1) from a hub 0/1 list or a transformers string list. `one` is the string
 * meaning 1 and `zero` the one meaning 0 (NULL for the hub list). */
static lq_status layer_list(cctx *cx, const char *path, const cJSON *arr, uint32_t layers,
                            const char *zero, const char *one, uint8_t *dst)
{
    if (!cJSON_IsArray(arr))
        return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", path, "must be an array");
    int n = cJSON_GetArraySize(arr);
    if (n < 0 || (uint32_t)n != layers)
        return lq_fail(cx->err, LQ_ERR_CORRUPT, cx->file, path, "CFG_PATTERN",
                       "'%s' has %d entries but num_hidden_layers is %u", path, n, layers);
    uint32_t L = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!one) {
            uint64_t v = 2;
            if (lq_json_u64(it, &v) != 0 || v > 1)
                return lq_fail(cx->err, LQ_ERR_CORRUPT, cx->file, path, "CFG_PATTERN",
                               "'%s'[%u] must be 0 or 1", path, L);
            dst[L] = (uint8_t)v;
        } else {
            const char *s = cJSON_IsString(it) ? it->valuestring : NULL;
            if (s && strcmp(s, zero) == 0)
                dst[L] = 0;
            else if (s && strcmp(s, one) == 0)
                dst[L] = 1;
            else
                return lq_fail(cx->err, LQ_ERR_CORRUPT, cx->file, path, "CFG_PATTERN",
                               "'%s'[%u] must be \"%s\" or \"%s\"", path, L, zero, one);
        }
        L++;
    }
    return LQ_OK;
}

/* One per-layer 0/1 property given by a hub list and/or a transformers list. */
static lq_status layer_prop(cctx *cx, const char *hub_key, const char *tr_key, const char *zero,
                            const char *one, uint32_t layers, uint8_t *dst)
{
    const cJSON *hub = lq_json_get(cx->root, hub_key), *tr = lq_json_get(cx->root, tr_key);
    if (!hub && !tr) {
        const char *paths[2] = {hub_key, tr_key};
        return missing(cx, paths, 2);
    }
    uint8_t *tmp = NULL;
    lq_status st = LQ_OK;
    if (hub && (st = layer_list(cx, hub_key, hub, layers, NULL, NULL, dst)) != LQ_OK)
        return st;
    if (!tr)
        return LQ_OK;
    if (!hub)
        return layer_list(cx, tr_key, tr, layers, zero, one, dst);
    tmp = malloc(layers);
    if (!tmp)
        return lq_fail(cx->err, LQ_ERR_NO_MEMORY, cx->file, tr_key, NULL, "out of memory");
    st = layer_list(cx, tr_key, tr, layers, zero, one, tmp);
    for (uint32_t L = 0; st == LQ_OK && L < layers; L++)
        if (tmp[L] != dst[L])
            st = lq_fail(cx->err, LQ_ERR_CORRUPT, cx->file, hub_key, "CFG_CONFLICT",
                         "'%s'[%u] is %u but '%s'[%u] is \"%s\"", hub_key, L, dst[L], tr_key, L,
                         tmp[L] ? one : zero);
    free(tmp);
    return st;
}

/* ---- pieces of the config ---- */

static lq_status parse_identity(cctx *cx, lq_mimo_config *c)
{
    const char *mt;
    lq_status st = get_str(cx, "model_type", &mt);
    if (st != LQ_OK)
        return st;
    if (!mt)
        return key_fail(cx, LQ_ERR_NOT_FOUND, "CFG_KEY", "model_type", "is required");
    if (strcmp(mt, "mimo_v2_flash") != 0 && strcmp(mt, "mimo_v2") != 0)
        return lq_fail(cx->err, LQ_ERR_UNSUPPORTED, cx->file, "model_type", "CFG_MODEL_TYPE",
                       "model_type \"%.64s\" is not mimo_v2_flash or mimo_v2", mt);
    memcpy(c->model_type, mt, strlen(mt) + 1);

    /* Optional: a config saved on its own (not from a model) has no architectures, and nothing
     * numeric depends on it. */
    const cJSON *arch = lq_json_get(cx->root, "architectures");
    if (!arch || cJSON_IsNull(arch))
        return LQ_OK;
    const cJSON *a0 = cJSON_IsArray(arch) ? cJSON_GetArrayItem(arch, 0) : NULL;
    if (!a0 || !cJSON_IsString(a0))
        return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", "architectures",
                        "must be a non-empty array of strings");
    return copy_str(cx, "architectures", a0->valuestring, c->architecture, sizeof(c->architecture));
}

static lq_status parse_layers(cctx *cx, lq_mimo_config *c)
{
    lq_status st;
    if ((st = u32_req(cx, "vocab_size", 1, 0x7FFFFFFFu, &c->vocab_size)) != LQ_OK ||
        (st = u32_req(cx, "hidden_size", 1, 1u << 20, &c->hidden_size)) != LQ_OK ||
        (st = u32_req(cx, "num_hidden_layers", 1, LQ_MIMO_MAX_LAYERS, &c->num_hidden_layers)) != LQ_OK)
        return st;
    if (lq_json_get(cx->root, "hybrid_layer_pattern"))
        c->dialect |= LQ_MIMO_DIALECT_HUB;
    if (lq_json_get(cx->root, "layer_types"))
        c->dialect |= LQ_MIMO_DIALECT_TRANSFORMERS;
    c->is_swa = calloc(c->num_hidden_layers, 1);
    c->is_moe = calloc(c->num_hidden_layers, 1);
    if (!c->is_swa || !c->is_moe)
        return lq_fail(cx->err, LQ_ERR_NO_MEMORY, cx->file, NULL, NULL, "out of memory");
    if ((st = layer_prop(cx, "hybrid_layer_pattern", "layer_types", "full_attention",
                         "sliding_attention", c->num_hidden_layers, c->is_swa)) != LQ_OK ||
        (st = layer_prop(cx, "moe_layer_freq", "mlp_layer_types", "dense", "sparse",
                         c->num_hidden_layers, c->is_moe)) != LQ_OK)
        return st;
    for (uint32_t L = 0; L < c->num_hidden_layers; L++) {
        c->num_swa_layers += c->is_swa[L];
        c->num_moe_layers += c->is_moe[L];
    }
    return LQ_OK;
}

static lq_status parse_attention(cctx *cx, lq_mimo_config *c)
{
    /* Keys the hub dialect must carry; a transformers-only file gets the port's implicit
     * values instead. */
    int hub = (c->dialect & LQ_MIMO_DIALECT_HUB) != 0;
    lq_status st;
    int f;
    if ((st = u32_req(cx, "num_attention_heads", 1, 65536, &c->num_attention_heads)) != LQ_OK ||
        (st = u32_req(cx, "num_key_value_heads", 1, 65536, &c->num_key_value_heads)) != LQ_OK ||
        (st = u32_req(cx, "head_dim", 1, 4096, &c->head_dim)) != LQ_OK ||
        (st = u32_req(cx, "v_head_dim", 1, 4096, &c->v_head_dim)) != LQ_OK)
        return st;

    static const char *const p_swa_heads[] = {"swa_num_attention_heads"};
    static const char *const p_swa_kv[] = {"swa_num_key_value_heads"};
    static const char *const p_swa_hd[] = {"swa_head_dim", "swa_qk_head_dim"};
    static const char *const p_swa_vd[] = {"swa_v_head_dim"};
    if ((st = u32_of(cx, p_swa_heads, 1, hub, 1, 65536, &f, &c->swa_num_attention_heads)) != LQ_OK)
        return st;
    if (!f)
        c->swa_num_attention_heads = c->num_attention_heads;
    if ((st = u32_of(cx, p_swa_kv, 1, hub, 1, 65536, &f, &c->swa_num_key_value_heads)) != LQ_OK)
        return st;
    /* The transformers port builds SWA layers with twice the global KV heads. */
    if (!f)
        c->swa_num_key_value_heads = 2 * c->num_key_value_heads;
    if ((st = u32_of(cx, p_swa_hd, 2, hub, 1, 4096, &f, &c->swa_head_dim)) != LQ_OK)
        return st;
    if (!f)
        c->swa_head_dim = c->head_dim;
    if ((st = u32_of(cx, p_swa_vd, 1, hub, 1, 4096, &f, &c->swa_v_head_dim)) != LQ_OK)
        return st;
    if (!f)
        c->swa_v_head_dim = c->v_head_dim;

    static const char *const p_swa_sink[] = {"add_swa_attention_sink_bias"};
    static const char *const p_full_sink[] = {"add_full_attention_sink_bias"};
    if ((st = bool_of(cx, p_swa_sink, 1, &f, &c->swa_attention_sink)) != LQ_OK)
        return st;
    if (!f && hub)
        return missing(cx, p_swa_sink, 1);
    if (!f)
        c->swa_attention_sink = 1;
    if ((st = bool_of(cx, p_full_sink, 1, &f, &c->full_attention_sink)) != LQ_OK)
        return st;
    if (!f && hub)
        return missing(cx, p_full_sink, 1);
    if (!f)
        c->full_attention_sink = 0;

    static const char *const p_window[] = {"sliding_window", "sliding_window_size"};
    if ((st = u32_of(cx, p_window, 2, 1, 1, 0x7FFFFFFFu, &f, &c->sliding_window)) != LQ_OK)
        return st;

    static const char *const p_vscale[] = {"attention_value_scale"};
    if ((st = num_of(cx, p_vscale, 1, 1, 1, 1.0, &f, &c->attention_value_scale)) != LQ_OK ||
        (st = check_range(cx, "attention_value_scale", c->attention_value_scale, 0, 1e6)) != LQ_OK)
        return st;

    const char *layout;
    if ((st = get_str(cx, "attention_projection_layout", &layout)) != LQ_OK)
        return st;
    if (layout && strcmp(layout, "fused_qkv") != 0 && strcmp(layout, "split") != 0)
        return lq_fail(cx->err, LQ_ERR_UNSUPPORTED, cx->file, "attention_projection_layout",
                       "CFG_VALUE", "attention_projection_layout \"%.64s\" is not fused_qkv",
                       layout);
    c->fused_qkv = strcmp(c->model_type, "mimo_v2") == 0 || (layout && !strcmp(layout, "fused_qkv"));

    int bias = 0;
    static const char *const p_bias[] = {"attention_bias"};
    if ((st = bool_of(cx, p_bias, 1, &f, &bias)) != LQ_OK)
        return st;
    if (bias)
        return lq_fail(cx->err, LQ_ERR_UNSUPPORTED, cx->file, "attention_bias", "CFG_VALUE",
                       "attention_bias true is not supported (MiMo projections have no bias)");
    return LQ_OK;
}

/* rope_type under an object: absent, null or "default". */
static lq_status rope_type_ok(cctx *cx, const char *path)
{
    const cJSON *rt = lookup(cx->root, path);
    if (!rt || cJSON_IsNull(rt))
        return LQ_OK;
    if (!cJSON_IsString(rt))
        return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", path, "must be a string");
    if (strcmp(rt->valuestring, "default") != 0)
        return lq_fail(cx->err, LQ_ERR_UNSUPPORTED, cx->file, path, "CFG_VALUE",
                       "RoPE scaling \"%.64s\" is not supported (only \"default\")",
                       rt->valuestring);
    return LQ_OK;
}

static lq_status rope_dim(cctx *cx, const char *path, uint32_t head_dim, double factor,
                          uint32_t *out)
{
    lq_status st = check_range(cx, path, factor, 0, 1);
    if (st != LQ_OK)
        return st;
    /* int() truncation, as every engine computes it: 192 x 0.334 = 64.128 -> 64. */
    uint32_t d = (uint32_t)((double)head_dim * factor);
    if (d < 2 || d % 2 != 0)
        return value_fail(cx, LQ_ERR_CORRUPT, path,
                          "rotary dims int(head_dim x partial_rotary_factor) = %u with head_dim "
                          "%u: need an even number >= 2", d, head_dim);
    *out = d;
    return LQ_OK;
}

static lq_status parse_rope(cctx *cx, lq_mimo_config *c)
{
    lq_status st;
    int f;
    const cJSON *rs = lq_json_get(cx->root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        if (!cJSON_IsObject(rs))
            return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", "rope_scaling", "must be an object or null");
        if ((st = rope_type_ok(cx, "rope_scaling.rope_type")) != LQ_OK ||
            (st = rope_type_ok(cx, "rope_scaling.type")) != LQ_OK)
            return st;
    }
    if ((st = rope_type_ok(cx, "rope_parameters.full_attention.rope_type")) != LQ_OK ||
        (st = rope_type_ok(cx, "rope_parameters.sliding_attention.rope_type")) != LQ_OK)
        return st;

    static const char *const p_theta[] = {"rope_theta", "rope_parameters.full_attention.rope_theta"};
    static const char *const p_swa_theta[] = {"swa_rope_theta",
                                              "rope_parameters.sliding_attention.rope_theta"};
    static const char *const p_prf[] = {"partial_rotary_factor",
                                        "rope_parameters.full_attention.partial_rotary_factor"};
    static const char *const p_swa_prf[] = {"partial_rotary_factor",
                                            "rope_parameters.sliding_attention.partial_rotary_factor"};
    if ((st = num_of(cx, p_theta, 2, 1, 0, 0, &f, &c->rope_theta)) != LQ_OK ||
        (st = check_range(cx, present_path(cx, p_theta, 2), c->rope_theta, 1, 1e12)) != LQ_OK ||
        (st = num_of(cx, p_swa_theta, 2, 1, 0, 0, &f, &c->swa_rope_theta)) != LQ_OK ||
        (st = check_range(cx, present_path(cx, p_swa_theta, 2), c->swa_rope_theta, 1, 1e12)) != LQ_OK ||
        (st = num_of(cx, p_prf, 2, 1, 0, 0, &f, &c->partial_rotary_factor)) != LQ_OK ||
        (st = rope_dim(cx, present_path(cx, p_prf, 2), c->head_dim, c->partial_rotary_factor,
                       &c->rope_dim)) != LQ_OK ||
        (st = num_of(cx, p_swa_prf, 2, 1, 0, 0, &f, &c->swa_partial_rotary_factor)) != LQ_OK ||
        (st = rope_dim(cx, present_path(cx, p_swa_prf, 2), c->swa_head_dim,
                       c->swa_partial_rotary_factor, &c->swa_rope_dim)) != LQ_OK)
        return st;
    return LQ_OK;
}

/* n_group / topk_group: absent or null is 1 (no grouping: every shipped MiMo config says 1, and
 * a config without the keys describes no group-limited routing). */
static lq_status group_key(cctx *cx, const char *path, uint32_t *out)
{
    const cJSON *it = lookup(cx->root, path);
    *out = 1;
    if (!it || cJSON_IsNull(it))
        return LQ_OK;
    int found;
    return u32_of(cx, &path, 1, 0, 1, 65536, &found, out);
}

static lq_status parse_mlp(cctx *cx, lq_mimo_config *c)
{
    int hub = (c->dialect & LQ_MIMO_DIALECT_HUB) != 0;
    lq_status st;
    int f;
    if ((st = u32_req(cx, "intermediate_size", 1, 1u << 24, &c->intermediate_size)) != LQ_OK ||
        (st = u32_req(cx, "moe_intermediate_size", 1, 1u << 24, &c->moe_intermediate_size)) != LQ_OK ||
        (st = u32_req(cx, "n_routed_experts", 1, 65536, &c->n_routed_experts)) != LQ_OK ||
        (st = u32_req(cx, "num_experts_per_tok", 1, 65536, &c->num_experts_per_tok)) != LQ_OK ||
        (st = group_key(cx, "n_group", &c->n_group)) != LQ_OK ||
        (st = group_key(cx, "topk_group", &c->topk_group)) != LQ_OK)
        return st;
    static const char *const p_norm[] = {"norm_topk_prob"};
    if ((st = bool_of(cx, p_norm, 1, &f, &c->norm_topk_prob)) != LQ_OK)
        return st;
    if (!f)
        return missing(cx, p_norm, 1);
    static const char *const p_rsf[] = {"routed_scaling_factor"};
    if ((st = num_of(cx, p_rsf, 1, 1, 1, 1.0, &f, &c->routed_scaling_factor)) != LQ_OK ||
        (st = check_range(cx, p_rsf[0], c->routed_scaling_factor, 0, 1e6)) != LQ_OK)
        return st;

    const char *s;
    if ((st = get_str(cx, "scoring_func", &s)) != LQ_OK)
        return st;
    if (!s && hub)
        return key_fail(cx, LQ_ERR_NOT_FOUND, "CFG_KEY", "scoring_func", "is required");
    if (s && strcmp(s, "sigmoid") != 0)
        return lq_fail(cx->err, LQ_ERR_UNSUPPORTED, cx->file, "scoring_func", "CFG_VALUE",
                       "scoring_func \"%.64s\" is not supported (MiMo routes with sigmoid)", s);
    memcpy(c->scoring_func, "sigmoid", sizeof("sigmoid"));
    if ((st = get_str(cx, "topk_method", &s)) != LQ_OK)
        return st;
    if (s && strcmp(s, "noaux_tc") != 0)
        return lq_fail(cx->err, LQ_ERR_UNSUPPORTED, cx->file, "topk_method", "CFG_VALUE",
                       "topk_method \"%.64s\" is not supported (only noaux_tc)", s);
    if ((st = get_str(cx, "hidden_act", &s)) != LQ_OK)
        return st;
    if (s && strcmp(s, "silu") != 0)
        return lq_fail(cx->err, LQ_ERR_UNSUPPORTED, cx->file, "hidden_act", "CFG_VALUE",
                       "hidden_act \"%.64s\" is not supported (only silu)", s);
    const cJSON *shared = lq_json_get(cx->root, "n_shared_experts");
    if (shared && !cJSON_IsNull(shared)) {
        uint64_t ns = 0;
        if (lq_json_u64(shared, &ns) != 0)
            return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", "n_shared_experts",
                            "must be an integer or null");
        if (ns != 0)
            return lq_fail(cx->err, LQ_ERR_UNSUPPORTED, cx->file, "n_shared_experts", "CFG_VALUE",
                           "n_shared_experts %llu: MiMo has no shared expert",
                           (unsigned long long)ns);
    }
    return LQ_OK;
}

static lq_status token_id(cctx *cx, const cJSON *it, const char *path, uint32_t vocab, int64_t *out)
{
    uint64_t v;
    if (lq_json_u64(it, &v) != 0)
        return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", path, "must be a non-negative integer");
    if (v >= vocab)
        return value_fail(cx, LQ_ERR_CORRUPT, path, "token id %llu is not below vocab_size %u",
                          (unsigned long long)v, vocab);
    *out = (int64_t)v;
    return LQ_OK;
}

static lq_status parse_misc(cctx *cx, lq_mimo_config *c)
{
    lq_status st;
    int f;
    static const char *const p_eps[] = {"layernorm_epsilon", "rms_norm_eps"};
    if ((st = num_of(cx, p_eps, 2, 1, 0, 0, &f, &c->rms_norm_eps)) != LQ_OK ||
        (st = check_range(cx, present_path(cx, p_eps, 2), c->rms_norm_eps, 0, 0.5)) != LQ_OK)
        return st;
    static const char *const p_tie[] = {"tie_word_embeddings"};
    if ((st = bool_of(cx, p_tie, 1, &f, &c->tie_word_embeddings)) != LQ_OK)
        return st;
    static const char *const p_maxpos[] = {"max_position_embeddings"};
    if ((st = int_of(cx, p_maxpos, 1, 0, 1, UINT64_C(1) << 40, &f, &c->max_position_embeddings)) != LQ_OK)
        return st;

    c->bos_token_id = c->pad_token_id = -1;
    const char *single[2] = {"bos_token_id", "pad_token_id"};
    int64_t *dst[2] = {&c->bos_token_id, &c->pad_token_id};
    for (int i = 0; i < 2; i++) {
        const cJSON *it = lq_json_get(cx->root, single[i]);
        if (it && !cJSON_IsNull(it) && (st = token_id(cx, it, single[i], c->vocab_size, dst[i])) != LQ_OK)
            return st;
    }
    const cJSON *eos = lq_json_get(cx->root, "eos_token_id");
    if (eos && cJSON_IsArray(eos)) {
        int n = cJSON_GetArraySize(eos);
        if (n > LQ_MIMO_MAX_EOS)
            return value_fail(cx, LQ_ERR_CORRUPT, "eos_token_id", "%d eos ids, at most %d",
                              n, LQ_MIMO_MAX_EOS);
        const cJSON *it;
        cJSON_ArrayForEach(it, eos) {
            if ((st = token_id(cx, it, "eos_token_id", c->vocab_size,
                               &c->eos_token_ids[c->n_eos])) != LQ_OK)
                return st;
            c->n_eos++;
        }
    } else if (eos && !cJSON_IsNull(eos)) {
        if ((st = token_id(cx, eos, "eos_token_id", c->vocab_size, &c->eos_token_ids[0])) != LQ_OK)
            return st;
        c->n_eos = 1;
    }
    return LQ_OK;
}

/* ignored_layers / modules_to_not_convert: an array of strings (null = absent). */
static lq_status string_list(cctx *cx, const char *path, const cJSON **out)
{
    const cJSON *it = lookup(cx->root, path);
    *out = NULL;
    if (!it || cJSON_IsNull(it))
        return LQ_OK;
    int ok = cJSON_IsArray(it);
    const cJSON *e;
    cJSON_ArrayForEach(e, it) {
        if (!ok || !cJSON_IsString(e))
            ok = 0;
    }
    if (!ok)
        return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", path, "must be an array of strings");
    *out = it;
    return LQ_OK;
}

static lq_status parse_quant(cctx *cx, lq_mimo_quant *q)
{
    const cJSON *qc = lq_json_get(cx->root, "quantization_config");
    if (!qc || cJSON_IsNull(qc))
        return LQ_OK;
    q->present = 1;
    lq_status st;
    const char *s;
    struct { const char *path; char *dst; int required; } strs[] = {
        {"quantization_config.quant_method", q->quant_method, 1},
        {"quantization_config.fmt", q->fmt, 0},
        {"quantization_config.activation_scheme", q->activation_scheme, 0},
        {"quantization_config.store_dtype", q->store_dtype, 0},
    };
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if ((st = get_str(cx, strs[i].path, &s)) != LQ_OK)
            return st;
        if (!s && strs[i].required)
            return key_fail(cx, LQ_ERR_NOT_FOUND, "CFG_KEY", strs[i].path, "is required");
        if (s && (st = copy_str(cx, strs[i].path, s, strs[i].dst, 32)) != LQ_OK)
            return st;
    }
    const char *wbs_path = "quantization_config.weight_block_size";
    const cJSON *wbs = lookup(cx->root, wbs_path);
    if (wbs && !cJSON_IsNull(wbs)) {
        if (!cJSON_IsArray(wbs) || cJSON_GetArraySize(wbs) != 2)
            return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", wbs_path, "must be an array of two integers");
        for (int i = 0; i < 2; i++) {
            uint64_t v = 0;
            if (lq_json_u64(cJSON_GetArrayItem(wbs, i), &v) != 0)
                return key_fail(cx, LQ_ERR_CORRUPT, "CFG_KEY", wbs_path, "must be an array of two integers");
            if (v < 1 || v > 65536)
                return value_fail(cx, LQ_ERR_CORRUPT, wbs_path, "block size %llu outside 1..65536",
                                  (unsigned long long)v);
            q->weight_block_size[i] = (uint32_t)v;
        }
    }
    static const char *const p_mx[] = {"quantization_config.mxfp4_block_size"};
    int f;
    if ((st = u32_of(cx, p_mx, 1, 0, 1, 65536, &f, &q->mxfp4_block_size)) != LQ_OK)
        return st;

    const char *pa = "quantization_config.ignored_layers", *pb = "quantization_config.modules_to_not_convert";
    const cJSON *la, *lb;
    if ((st = string_list(cx, pa, &la)) != LQ_OK || (st = string_list(cx, pb, &lb)) != LQ_OK)
        return st;
    if (la && lb) {
        int same = cJSON_GetArraySize(la) == cJSON_GetArraySize(lb);
        for (int i = 0; same && i < cJSON_GetArraySize(la); i++)
            same = strcmp(cJSON_GetArrayItem(la, i)->valuestring, cJSON_GetArrayItem(lb, i)->valuestring) == 0;
        if (!same)
            return conflict(cx, pa, pb, "one list", "another");
    }
    const cJSON *list = la ? la : lb;
    if (!list)
        return LQ_OK;
    size_t n = (size_t)cJSON_GetArraySize(list);
    if (n == 0)
        return LQ_OK;
    q->ignored_layers = calloc(n, sizeof(char *));
    if (!q->ignored_layers)
        return lq_fail(cx->err, LQ_ERR_NO_MEMORY, cx->file, NULL, NULL, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        q->ignored_layers[q->n_ignored] = strdup(e->valuestring);
        if (!q->ignored_layers[q->n_ignored])
            return lq_fail(cx->err, LQ_ERR_NO_MEMORY, cx->file, NULL, NULL, "out of memory");
        q->n_ignored++;
    }
    return LQ_OK;
}

/* Cross-field sanity (CFG_VALUE). */
static lq_status check_values(cctx *cx, const lq_mimo_config *c)
{
    struct { const char *heads_key; uint32_t heads, kv; } g[2] = {
        {"num_key_value_heads", c->num_attention_heads, c->num_key_value_heads},
        {"swa_num_key_value_heads", c->swa_num_attention_heads, c->swa_num_key_value_heads},
    };
    for (int i = 0; i < 2; i++)
        if (g[i].kv > g[i].heads || g[i].heads % g[i].kv != 0)
            return value_fail(cx, LQ_ERR_CORRUPT, g[i].heads_key,
                              "%u query heads are not a multiple of %u KV heads",
                              g[i].heads, g[i].kv);
    if (c->num_experts_per_tok > c->n_routed_experts)
        return value_fail(cx, LQ_ERR_CORRUPT, "num_experts_per_tok",
                          "top-%u routing over %u experts", c->num_experts_per_tok,
                          c->n_routed_experts);
    if (c->n_routed_experts % c->n_group != 0)
        return value_fail(cx, LQ_ERR_CORRUPT, "n_group", "%u experts do not split into %u groups",
                          c->n_routed_experts, c->n_group);
    if (c->topk_group > c->n_group)
        return value_fail(cx, LQ_ERR_CORRUPT, "topk_group", "topk_group %u exceeds n_group %u",
                          c->topk_group, c->n_group);
    if ((uint64_t)c->num_experts_per_tok >
        (uint64_t)c->topk_group * (c->n_routed_experts / c->n_group))
        return value_fail(cx, LQ_ERR_CORRUPT, "num_experts_per_tok",
                          "top-%u needs more experts than the %u selected groups hold",
                          c->num_experts_per_tok, c->topk_group);
    /* A group's score is the sum of its two best biased scores (mimo_arch.md 3.5; HF-T and
     * DeepSeek take topk(2) per group), which needs two experts per group. */
    if (c->n_group > 1 && c->n_routed_experts / c->n_group < 2)
        return value_fail(cx, LQ_ERR_CORRUPT, "n_group",
                          "%u groups of %u experts: group-limited routing scores each group by "
                          "its two best experts", c->n_group, c->n_routed_experts / c->n_group);
    if (c->fused_qkv) {
        /* Fused rows are interleaved over S = num_key_value_heads checkpoint-TP shards; each
         * shard must hold whole q heads and whole SWA KV heads. */
        uint32_t S = c->num_key_value_heads;
        if (c->num_attention_heads % S || c->swa_num_attention_heads % S ||
            c->swa_num_key_value_heads % S)
            return value_fail(cx, LQ_ERR_CORRUPT, "num_key_value_heads",
                              "fused qkv over %u checkpoint-TP shards needs q heads and SWA "
                              "KV heads (%u) divisible by it", S, c->swa_num_key_value_heads);
    }
    return LQ_OK;
}

/* ---- size caps ----
 *
 * Each value has its own range (parse_*), but their products decide what a loader allocates and
 * indexes: a config of in-range values can still describe a 2^60-element matrix or overflow a
 * 64-bit byte count. Caps, against MiMo-V2.5-Pro, the largest model of the family (hidden 6144,
 * 70 layers, 128 heads of 192 / 128, 384 experts of 2048, vocab 152576; mimo_arch.md 2.1):
 *   CAP_WIDTH   one projection's per-token output, heads x head dim: 2^20 (Pro's widest is the
 *               q projection, 128 x 192 = 24576; 42x headroom). Bounds every activation row.
 *   CAP_MATRIX  elements of one weight matrix: 2^34 (Pro's largest is embed_tokens / lm_head,
 *               152576 x 6144 = 2^29.8; 18x headroom). 2^34 f32 values are 64 GiB, so a
 *               matrix decoded whole still fits a size_t byte count with room to spare.
 *   CAP_PARAMS  parameters of the whole backbone: 2^44 (Pro has about 1.0e12 = 2^39.9; 17x
 *               headroom). 2^44 BF16 weights are 32 TiB: anything above is not a checkpoint
 *               anyone can hold but a corrupted or hostile config.
 * Products are computed saturating, so no intermediate wraps whatever the inputs. */
#define CAP_WIDTH (UINT64_C(1) << 20)
#define CAP_MATRIX (UINT64_C(1) << 34)
#define CAP_PARAMS (UINT64_C(1) << 44)

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    return a && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static lq_status cap_fail(cctx *cx, const char *key, const char *what, uint64_t v, uint64_t cap,
                          const char *cap_name)
{
    char n[32];
    if (v == UINT64_MAX)
        snprintf(n, sizeof(n), "2^64 or more");
    else
        snprintf(n, sizeof(n), "%llu", (unsigned long long)v);
    return value_fail(cx, LQ_ERR_CORRUPT, key, "%s: %s, above the cap %s = %llu (docs/formats.md, "
                      "config size caps)", what, n, cap_name, (unsigned long long)cap);
}

static lq_status check_sizes(cctx *cx, const lq_mimo_config *c)
{
    uint64_t H = c->hidden_size, V = c->vocab_size, E = c->n_routed_experts;
    char what[160];
    for (int swa = 0; swa < 2; swa++) {
        uint64_t nq = swa ? c->swa_num_attention_heads : c->num_attention_heads;
        uint64_t nkv = swa ? c->swa_num_key_value_heads : c->num_key_value_heads;
        uint64_t dqk = swa ? c->swa_head_dim : c->head_dim, dv = swa ? c->swa_v_head_dim : c->v_head_dim;
        const char *key = swa ? "swa_num_attention_heads" : "num_attention_heads";
        uint64_t widest = nq * (dqk > dv ? dqk : dv); /* nq >= nkv (check_values) */
        if (widest > CAP_WIDTH) {
            snprintf(what, sizeof(what), "%s attention: %llu heads x head dim %llu",
                     swa ? "sliding-window" : "global", (unsigned long long)nq,
                     (unsigned long long)(dqk > dv ? dqk : dv));
            return cap_fail(cx, key, what, widest, CAP_WIDTH, "2^20");
        }
        /* q, k and v rows (one fused matrix in mimo_v2), and o_proj */
        uint64_t qkv = nq * dqk + nkv * dqk + nkv * dv;
        if (mul_sat(qkv, H) > CAP_MATRIX || mul_sat(nq * dv, H) > CAP_MATRIX) {
            snprintf(what, sizeof(what), "%s attention projections: (%llu + %llu) rows x "
                     "hidden_size %llu elements", swa ? "sliding-window" : "global",
                     (unsigned long long)qkv, (unsigned long long)(nq * dv), (unsigned long long)H);
            return cap_fail(cx, key, what, mul_sat(qkv + nq * dv, H), CAP_MATRIX, "2^34");
        }
    }
    struct { const char *key, *name; uint64_t rows; } mats[] = {
        {"vocab_size", "embed_tokens / lm_head", V},
        {"intermediate_size", "a dense MLP projection", c->intermediate_size},
        {"moe_intermediate_size", "an expert projection", c->moe_intermediate_size},
        {"n_routed_experts", "the router (mlp.gate.weight)", E},
    };
    for (size_t i = 0; i < sizeof(mats) / sizeof(mats[0]); i++) {
        uint64_t n = mul_sat(mats[i].rows, H);
        if (n > CAP_MATRIX) {
            snprintf(what, sizeof(what), "%s holds %s %llu x hidden_size %llu elements",
                     mats[i].name, mats[i].key, (unsigned long long)mats[i].rows,
                     (unsigned long long)H);
            return cap_fail(cx, mats[i].key, what, n, CAP_MATRIX, "2^34");
        }
    }
    /* Whole model, by part, so the message can name the key that dominates. */
    uint64_t part[4] = {mul_sat(2 * V + 1, H), 0, 0, 0}; /* embeddings + head + final norm */
    for (uint32_t L = 0; L < c->num_hidden_layers; L++) {
        int swa = c->is_swa[L];
        uint64_t nq = swa ? c->swa_num_attention_heads : c->num_attention_heads;
        uint64_t nkv = swa ? c->swa_num_key_value_heads : c->num_key_value_heads;
        uint64_t dqk = swa ? c->swa_head_dim : c->head_dim, dv = swa ? c->swa_v_head_dim : c->v_head_dim;
        part[1] = add_sat(part[1], (nq * dqk + nkv * dqk + nkv * dv + nq * dv + 2) * H + nq);
        if (c->is_moe[L])
            part[3] = add_sat(part[3], add_sat(mul_sat(E, H + 1),
                                               mul_sat(mul_sat(E, 3 * (uint64_t)c->moe_intermediate_size), H)));
        else
            part[2] = add_sat(part[2], mul_sat(3 * (uint64_t)c->intermediate_size, H));
    }
    uint64_t total = add_sat(add_sat(part[0], part[1]), add_sat(part[2], part[3]));
    if (total > CAP_PARAMS) {
        static const char *const keys[4] = {"vocab_size", "num_attention_heads", "intermediate_size",
                                            "n_routed_experts"};
        int big = 0;
        for (int i = 1; i < 4; i++)
            if (part[i] > part[big])
                big = i;
        snprintf(what, sizeof(what), "parameters of the %u layers, embeddings and head (most of "
                 "them from '%s')", c->num_hidden_layers, keys[big]);
        return cap_fail(cx, keys[big], what, total, CAP_PARAMS, "2^44 parameters");
    }
    return LQ_OK;
}

lq_status lq_mimo_config_parse(const cJSON *cfg, const char *file, lq_mimo_config *out,
                               lq_error *err)
{
    if (!out)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, file, NULL, NULL, "out is NULL");
    memset(out, 0, sizeof(*out));
    if (!cfg || !cJSON_IsObject(cfg))
        return lq_fail(err, cfg ? LQ_ERR_CORRUPT : LQ_ERR_INVALID_ARGUMENT, file, NULL,
                       cfg ? "CFG_KEY" : NULL, "config is not a JSON object");
    cctx cx = {cfg, file, err};
    lq_mimo_config c;
    memset(&c, 0, sizeof(c));
    lq_status st;
    if ((st = parse_identity(&cx, &c)) != LQ_OK || (st = check_containers(&cx)) != LQ_OK ||
        (st = parse_layers(&cx, &c)) != LQ_OK || (st = parse_attention(&cx, &c)) != LQ_OK ||
        (st = parse_rope(&cx, &c)) != LQ_OK || (st = parse_mlp(&cx, &c)) != LQ_OK ||
        (st = parse_misc(&cx, &c)) != LQ_OK || (st = parse_quant(&cx, &c.quant)) != LQ_OK ||
        (st = check_values(&cx, &c)) != LQ_OK || (st = check_sizes(&cx, &c)) != LQ_OK) {
        lq_mimo_config_free(&c);
        return st;
    }
    *out = c;
    return LQ_OK;
}

void lq_mimo_config_free(lq_mimo_config *c)
{
    if (!c)
        return;
    free(c->is_swa);
    free(c->is_moe);
    for (size_t i = 0; i < c->quant.n_ignored; i++)
        free(c->quant.ignored_layers[i]);
    free(c->quant.ignored_layers);
    memset(c, 0, sizeof(*c));
}

uint32_t lq_mimo_qkv_shards(const lq_mimo_config *c)
{
    return c ? c->num_key_value_heads : 0;
}
