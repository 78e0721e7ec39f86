/* DFlash drafter directories (drafter.h).
 *
 * The config is read and checked first, on its own, so a broken config.json reports a DF_*
 * rule rather than whatever the checkpoint opener would say about it. Then the weights are
 * opened through the strict checkpoint reader and compared with the tensor set the config
 * implies (built once, sorted, and searched for the "unexpected tensor" pass). The mask file
 * comes last. */
#include "drafter.h"
#include "values.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "torchzip.h"

#define CONFIG_NAME "config.json"
#define MASK_NAME "mask_embedding.pt"
#define INDEX_NAME "model.safetensors.index.json"
#define MIMO_WEIGHTS "dflash_draft_model.safetensors"
#define PLAIN_WEIGHTS "model.safetensors"
#define CONFIG_MAX_BYTES (4u * 1024u * 1024u)

struct lq_drafter {
    lq_ckpt *ck;
    lq_drafter_config cfg;
    uint16_t *mask;
    uint64_t mask_len;
    int64_t mask_id;
    char *config_path, *mask_path;
};

typedef struct dctx {
    const cJSON *root, *dfc; /* config and its dflash_config (may be NULL) */
    const char *file;
    lq_error *err;
} dctx;

static lq_status dfail(dctx *dx, lq_status st, const char *key, const char *rule,
                       const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static lq_status dfail(dctx *dx, lq_status st, const char *key, const char *rule,
                       const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return lq_fail(dx->err, st, dx->file, key, rule, "%s", msg);
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int exists(const char *dir, const char *name)
{
    char *p = join(dir, name);
    struct stat sb;
    int ok = p && stat(p, &sb) == 0;
    free(p);
    return ok;
}

/* ---- config keys ---- */

/* Integer under obj[key] (key_name names it in errors). Absent: *found = 0, and with
 * `required` the rule `rule_key` (LQ_ERR_NOT_FOUND). Wrong type: rule_key. Outside [lo, hi]:
 * rule_range. */
static lq_status d_int(dctx *dx, const cJSON *obj, const char *key, const char *key_name,
                       int required, const char *rule_key, const char *rule_range, uint64_t lo,
                       uint64_t hi, int *found, uint64_t *out)
{
    const cJSON *it = obj ? lq_json_get(obj, key) : NULL;
    *found = 0;
    if (!it) {
        if (required)
            return dfail(dx, LQ_ERR_NOT_FOUND, key_name, rule_key, "'%s' is required", key_name);
        return LQ_OK;
    }
    uint64_t v;
    if (lq_json_u64(it, &v) != 0)
        return dfail(dx, LQ_ERR_CORRUPT, key_name, rule_key, "'%s' must be a non-negative integer",
                     key_name);
    if (v < lo || v > hi)
        return dfail(dx, LQ_ERR_CORRUPT, key_name, rule_range, "'%s' is %llu, outside %llu..%llu",
                     key_name, (unsigned long long)v, (unsigned long long)lo,
                     (unsigned long long)hi);
    *found = 1;
    *out = v;
    return LQ_OK;
}

static lq_status d_u32(dctx *dx, const char *key, uint32_t lo, uint32_t hi, uint32_t *out)
{
    int found;
    uint64_t v = 0;
    lq_status st = d_int(dx, dx->root, key, key, 1, "DF_CONFIG", "DF_VALUE", lo, hi, &found, &v);
    if (st == LQ_OK)
        *out = (uint32_t)v;
    return st;
}

/* The same integer under dflash_config and the top level (dflash_config first, as SGLang and
 * speculators read it); both present must agree (rule). */
static lq_status d_int2(dctx *dx, const char *key, int required, const char *rule,
                        const char *rule_range, uint64_t lo, uint64_t hi, int *found,
                        uint64_t *out)
{
    char nested[96];
    snprintf(nested, sizeof(nested), "dflash_config.%s", key);
    int f1 = 0, f2 = 0;
    uint64_t v1 = 0, v2 = 0;
    lq_status st;
    if ((st = d_int(dx, dx->dfc, key, nested, 0, rule, rule_range, lo, hi, &f1, &v1)) != LQ_OK ||
        (st = d_int(dx, dx->root, key, key, 0, rule, rule_range, lo, hi, &f2, &v2)) != LQ_OK)
        return st;
    if (f1 && f2 && v1 != v2)
        return dfail(dx, LQ_ERR_CORRUPT, nested, rule, "'%s' is %llu but '%s' is %llu", nested,
                     (unsigned long long)v1, key, (unsigned long long)v2);
    *found = f1 || f2;
    if (!*found && required)
        return dfail(dx, LQ_ERR_NOT_FOUND, nested, rule, "'%s' (or top-level '%s') is required",
                     nested, key);
    *out = f1 ? v1 : v2;
    return LQ_OK;
}

/* Number under obj[key]; absent leaves *out alone and *found = 0. */
static lq_status d_num(dctx *dx, const cJSON *obj, const char *key, const char *key_name,
                       int *found, double *out)
{
    const cJSON *it = obj ? lq_json_get(obj, key) : NULL;
    *found = 0;
    if (!it)
        return LQ_OK;
    if (!cJSON_IsNumber(it))
        return dfail(dx, LQ_ERR_CORRUPT, key_name, "DF_CONFIG", "'%s' must be a number", key_name);
    *out = it->valuedouble;
    *found = 1;
    return LQ_OK;
}

static lq_status d_bool(dctx *dx, const cJSON *obj, const char *key, const char *key_name,
                        int *found, int *out)
{
    const cJSON *it = obj ? lq_json_get(obj, key) : NULL;
    *found = 0;
    if (!it)
        return LQ_OK;
    if (!cJSON_IsBool(it))
        return dfail(dx, LQ_ERR_CORRUPT, key_name, "DF_CONFIG", "'%s' must be true or false",
                     key_name);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    *found = 1;
    return LQ_OK;
}

static lq_status d_range(dctx *dx, const char *key, double v, double lo_excl, double hi)
{
    if (!isfinite(v) || !(v > lo_excl) || !(v <= hi))
        return dfail(dx, LQ_ERR_CORRUPT, key, "DF_VALUE",
                     "'%s' is %.17g, need a finite value in (%g, %g]", key, v, lo_excl, hi);
    return LQ_OK;
}

/* ---- config ---- */

static lq_status parse_arch(dctx *dx, lq_drafter_config *c)
{
    const cJSON *arch = lq_json_get(dx->root, "architectures");
    const cJSON *a0 = cJSON_IsArray(arch) ? cJSON_GetArrayItem(arch, 0) : NULL;
    if (!arch)
        return dfail(dx, LQ_ERR_NOT_FOUND, "architectures", "DF_ARCH", "'architectures' is required");
    if (!a0 || !cJSON_IsString(a0))
        return dfail(dx, LQ_ERR_CORRUPT, "architectures", "DF_ARCH",
                     "'architectures' must be a non-empty array of strings");
    if (strcmp(a0->valuestring, "DFlashDraftModel") != 0)
        return dfail(dx, LQ_ERR_UNSUPPORTED, "architectures", "DF_ARCH",
                     "architecture \"%.64s\" is not DFlashDraftModel", a0->valuestring);
    memcpy(c->architecture, "DFlashDraftModel", sizeof("DFlashDraftModel"));
    const cJSON *mt = lq_json_get(dx->root, "model_type");
    if (mt && (!cJSON_IsString(mt) || strlen(mt->valuestring) >= sizeof(c->model_type)))
        return dfail(dx, LQ_ERR_CORRUPT, "model_type", "DF_CONFIG",
                     "'model_type' must be a string of at most %zu bytes", sizeof(c->model_type) - 1);
    if (mt)
        memcpy(c->model_type, mt->valuestring, strlen(mt->valuestring) + 1);
    return LQ_OK;
}

static lq_status parse_sizes(dctx *dx, lq_drafter_config *c)
{
    lq_status st;
    int f;
    uint64_t v = 0;
    if ((st = d_u32(dx, "hidden_size", 1, 1u << 20, &c->hidden_size)) != LQ_OK ||
        (st = d_u32(dx, "intermediate_size", 1, 1u << 24, &c->intermediate_size)) != LQ_OK ||
        (st = d_u32(dx, "num_hidden_layers", 1, LQ_DRAFTER_MAX_LAYERS, &c->num_hidden_layers)) != LQ_OK ||
        (st = d_u32(dx, "num_attention_heads", 1, 65536, &c->num_attention_heads)) != LQ_OK ||
        (st = d_u32(dx, "num_key_value_heads", 1, 65536, &c->num_key_value_heads)) != LQ_OK ||
        (st = d_u32(dx, "head_dim", 1, 4096, &c->head_dim)) != LQ_OK)
        return st;
    if (c->num_key_value_heads > c->num_attention_heads ||
        c->num_attention_heads % c->num_key_value_heads != 0)
        return dfail(dx, LQ_ERR_CORRUPT, "num_key_value_heads", "DF_VALUE",
                     "%u query heads are not a multiple of %u KV heads", c->num_attention_heads,
                     c->num_key_value_heads);
    c->v_head_dim = c->head_dim;
    if ((st = d_int(dx, dx->root, "v_head_dim", "v_head_dim", 0, "DF_CONFIG", "DF_VALUE", 1, 4096,
                    &f, &v)) != LQ_OK)
        return st;
    if (f)
        c->v_head_dim = (uint32_t)v;
    if ((st = d_int(dx, dx->root, "target_hidden_size", "target_hidden_size", 0, "DF_CONFIG",
                    "DF_VALUE", 1, 1u << 20, &f, &v)) != LQ_OK)
        return st;
    c->target_hidden_size = f ? (uint32_t)v : 0;

    const cJSON *act = lq_json_get(dx->root, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0))
        return dfail(dx, LQ_ERR_UNSUPPORTED, "hidden_act", "DF_VALUE",
                     "'hidden_act' must be \"silu\" (the only activation DFlash drafters use)");
    if ((st = d_bool(dx, dx->root, "attention_bias", "attention_bias", &f, &c->attention_bias)) != LQ_OK)
        return st;

    if ((st = d_num(dx, dx->root, "rms_norm_eps", "rms_norm_eps", &f, &c->rms_norm_eps)) != LQ_OK)
        return st;
    if (!f)
        return dfail(dx, LQ_ERR_NOT_FOUND, "rms_norm_eps", "DF_CONFIG", "'rms_norm_eps' is required");
    return d_range(dx, "rms_norm_eps", c->rms_norm_eps, 0, 0.5);
}

static lq_status parse_rope(dctx *dx, lq_drafter_config *c)
{
    lq_status st;
    int f1, f2;
    double a = 0, b = 0;
    /* Newer transformers nest the base in rope_parameters (dflash.md 2.2). */
    const cJSON *rp = lq_json_get(dx->root, "rope_parameters");
    if (rp && !cJSON_IsNull(rp) && !cJSON_IsObject(rp))
        return dfail(dx, LQ_ERR_CORRUPT, "rope_parameters", "DF_CONFIG",
                     "'rope_parameters' must be an object");
    if ((st = d_num(dx, dx->root, "rope_theta", "rope_theta", &f1, &a)) != LQ_OK ||
        (st = d_num(dx, cJSON_IsObject(rp) ? rp : NULL, "rope_theta", "rope_parameters.rope_theta",
                    &f2, &b)) != LQ_OK)
        return st;
    if (f1 && f2 && a != b)
        return dfail(dx, LQ_ERR_CORRUPT, "rope_theta", "DF_VALUE",
                     "'rope_theta' is %.17g but 'rope_parameters.rope_theta' is %.17g", a, b);
    /* Qwen3's default base when the key is absent. */
    c->rope_theta = f1 ? a : f2 ? b : 10000.0;
    if ((st = d_range(dx, "rope_theta", c->rope_theta, 1, 1e12)) != LQ_OK)
        return st;

    c->partial_rotary_factor = 1.0;
    if ((st = d_num(dx, dx->root, "partial_rotary_factor", "partial_rotary_factor", &f1,
                    &c->partial_rotary_factor)) != LQ_OK ||
        (st = d_range(dx, "partial_rotary_factor", c->partial_rotary_factor, 0, 1)) != LQ_OK)
        return st;
    /* int() truncation, as the engines compute it: 128 x 0.5 = 64. */
    c->rope_dim = (uint32_t)((double)c->head_dim * c->partial_rotary_factor);
    if (c->rope_dim < 2 || c->rope_dim % 2)
        return dfail(dx, LQ_ERR_CORRUPT, "partial_rotary_factor", "DF_VALUE",
                     "rotary dims int(%u x %.17g) = %u: need an even number >= 2", c->head_dim,
                     c->partial_rotary_factor, c->rope_dim);
    c->backbone_rotary_base = 0;
    if ((st = d_num(dx, dx->dfc, "backbone_rotary_base", "dflash_config.backbone_rotary_base", &f1,
                    &c->backbone_rotary_base)) != LQ_OK)
        return st;
    if (f1 && (st = d_range(dx, "dflash_config.backbone_rotary_base", c->backbone_rotary_base, 1,
                            1e12)) != LQ_OK)
        return st;
    return LQ_OK;
}

/* Sinks, value scale, window, and per-layer SWA / causality (dflash.md 1.7, 1.8). */
static lq_status parse_attention(dctx *dx, lq_drafter_config *c)
{
    lq_status st;
    int f1, f2, a = 0, b = 0;
    if ((st = d_bool(dx, dx->dfc, "attention_sink_bias", "dflash_config.attention_sink_bias", &f1,
                     &a)) != LQ_OK ||
        (st = d_bool(dx, dx->root, "add_swa_attention_sink_bias", "add_swa_attention_sink_bias",
                     &f2, &b)) != LQ_OK)
        return st;
    c->attention_sink = f1 ? a : f2 ? b : 0;

    c->attention_value_scale = 1.0;
    if ((st = d_num(dx, dx->dfc, "attention_value_scale", "dflash_config.attention_value_scale",
                    &f1, &c->attention_value_scale)) != LQ_OK ||
        (st = d_range(dx, "dflash_config.attention_value_scale", c->attention_value_scale, 0,
                      1e6)) != LQ_OK)
        return st;

    if ((st = d_bool(dx, dx->dfc, "use_swa", "dflash_config.use_swa", &f1, &c->use_swa)) != LQ_OK)
        return st;
    uint64_t w1 = 0, w2 = 0;
    if ((st = d_int(dx, dx->dfc, "swa_window_size", "dflash_config.swa_window_size", 0,
                    "DF_CONFIG", "DF_VALUE", 1, 1u << 30, &f1, &w1)) != LQ_OK)
        return st;
    const cJSON *sw = lq_json_get(dx->root, "sliding_window");
    f2 = 0;
    if (sw && !cJSON_IsNull(sw) &&
        (st = d_int(dx, dx->root, "sliding_window", "sliding_window", 0, "DF_CONFIG", "DF_VALUE", 1,
                    1u << 30, &f2, &w2)) != LQ_OK)
        return st;
    if (f1 && f2 && w1 != w2)
        return dfail(dx, LQ_ERR_CORRUPT, "dflash_config.swa_window_size", "DF_VALUE",
                     "'dflash_config.swa_window_size' is %llu but 'sliding_window' is %llu",
                     (unsigned long long)w1, (unsigned long long)w2);
    c->window = (uint32_t)(f1 ? w1 : w2);

    /* Per layer, following vLLM's resolution (dflash.md 1.7): layer_types[i] decides SWA; without
     * it, use_swa makes every layer SWA (also when layer_types lists only full layers).
     * Causality: top-level is_causal, else dflash_config.causal, else sliding layers of
     * layer_types are causal, else non-causal. */
    uint32_t L = c->num_hidden_layers;
    const cJSON *lt = lq_json_get(dx->root, "layer_types");
    int any_sliding = 0;
    if (lt && !cJSON_IsNull(lt)) {
        if (!cJSON_IsArray(lt) || (uint32_t)cJSON_GetArraySize(lt) != L)
            return dfail(dx, LQ_ERR_CORRUPT, "layer_types", "DF_VALUE",
                         "'layer_types' must be an array of %u strings", L);
        uint32_t i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, lt) {
            const char *s = cJSON_IsString(e) ? e->valuestring : "";
            if (strcmp(s, "sliding_attention") == 0)
                c->is_swa[i] = 1;
            else if (strcmp(s, "full_attention") != 0)
                return dfail(dx, LQ_ERR_CORRUPT, "layer_types", "DF_VALUE",
                             "'layer_types'[%u] is not \"full_attention\" or \"sliding_attention\"", i);
            any_sliding |= c->is_swa[i];
            c->is_causal[i] = c->is_swa[i];
            i++;
        }
    }
    if (c->use_swa && !any_sliding)
        memset(c->is_swa, 1, L);
    int causal = 0;
    if ((st = d_bool(dx, dx->dfc, "causal", "dflash_config.causal", &f1, &causal)) != LQ_OK)
        return st;
    if (f1)
        memset(c->is_causal, causal, L);
    if ((st = d_bool(dx, dx->root, "is_causal", "is_causal", &f2, &causal)) != LQ_OK)
        return st;
    if (f2)
        memset(c->is_causal, causal, L);
    if (memchr(c->is_swa, 1, L) && c->window == 0)
        return dfail(dx, LQ_ERR_NOT_FOUND, "dflash_config.swa_window_size", "DF_VALUE",
                     "sliding-window layers need 'dflash_config.swa_window_size' or 'sliding_window'");
    return LQ_OK;
}

/* Block size, taps, mask id and the checks against the target. */
static lq_status parse_speculation(dctx *dx, const lq_mimo_config *t, lq_drafter_config *c)
{
    lq_status st;
    int f;
    uint64_t v = 0;
    if ((st = d_int2(dx, "block_size", 1, "DF_BLOCK", "DF_BLOCK", 2, 4096, &f, &v)) != LQ_OK)
        return st;
    c->block_size = (uint32_t)v;

    if ((st = d_int2(dx, "num_target_layers", 0, "DF_TARGET_LAYERS", "DF_TARGET_LAYERS", 1,
                     LQ_MIMO_MAX_LAYERS, &f, &v)) != LQ_OK)
        return st;
    c->num_target_layers = f ? (uint32_t)v : t ? t->num_hidden_layers : 0;
    if (f && t && v != t->num_hidden_layers)
        return dfail(dx, LQ_ERR_CORRUPT, "num_target_layers", "DF_TARGET_LAYERS",
                     "'num_target_layers' is %llu but the target has %u layers",
                     (unsigned long long)v, t->num_hidden_layers);

    const char *tk = "dflash_config.target_layer_ids";
    const cJSON *ids = dx->dfc ? lq_json_get(dx->dfc, "target_layer_ids") : NULL;
    if (!ids)
        return dfail(dx, LQ_ERR_NOT_FOUND, tk, "DF_TAPS", "'%s' is required", tk);
    if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) < 1 ||
        cJSON_GetArraySize(ids) > LQ_DRAFTER_MAX_TAPS)
        return dfail(dx, LQ_ERR_CORRUPT, tk, "DF_TAPS", "'%s' must be an array of 1..%d layer ids",
                     tk, LQ_DRAFTER_MAX_TAPS);
    const cJSON *e;
    cJSON_ArrayForEach(e, ids) {
        uint64_t id;
        if (lq_json_u64(e, &id) != 0)
            return dfail(dx, LQ_ERR_CORRUPT, tk, "DF_TAPS", "'%s'[%u] is not a non-negative integer",
                         tk, c->n_taps);
        if (c->num_target_layers && id >= c->num_target_layers)
            return dfail(dx, LQ_ERR_CORRUPT, tk, "DF_TAPS",
                         "'%s'[%u] = %llu is not a layer of the %u-layer target", tk, c->n_taps,
                         (unsigned long long)id, c->num_target_layers);
        if (id > UINT32_MAX || (c->n_taps && id <= c->taps[c->n_taps - 1]))
            return dfail(dx, LQ_ERR_CORRUPT, tk, "DF_TAPS",
                         "'%s' must be strictly increasing ([%u] = %llu)", tk, c->n_taps,
                         (unsigned long long)id);
        c->taps[c->n_taps++] = (uint32_t)id;
    }

    if ((st = d_int2(dx, "mask_token_id", 1, "DF_MASK_ID", "DF_MASK_ID", 0, UINT32_MAX, &f, &v)) != LQ_OK)
        return st;
    if (t && v >= t->vocab_size)
        return dfail(dx, LQ_ERR_CORRUPT, "dflash_config.mask_token_id", "DF_MASK_ID",
                     "mask_token_id %llu is not below the target's vocab_size %u",
                     (unsigned long long)v, t->vocab_size);
    c->mask_token_id = (uint32_t)v;

    if (t && c->hidden_size != t->hidden_size)
        return dfail(dx, LQ_ERR_CORRUPT, "hidden_size", "DF_HIDDEN",
                     "drafter hidden_size %u differs from the target's %u (the drafter embeds "
                     "with the target's embed_tokens)", c->hidden_size, t->hidden_size);
    if (t && c->target_hidden_size && c->target_hidden_size != t->hidden_size)
        return dfail(dx, LQ_ERR_CORRUPT, "target_hidden_size", "DF_HIDDEN",
                     "target_hidden_size %u differs from the target's hidden_size %u",
                     c->target_hidden_size, t->hidden_size);
    if (!c->target_hidden_size)
        c->target_hidden_size = t ? t->hidden_size : c->hidden_size;
    return LQ_OK;
}

/* Products of in-range sizes, capped as the backbone's are (mimo_config.c, size caps; the
 * numbers in docs/formats.md): one projection's per-token width (heads x head dim, and fc's
 * input, taps x target hidden) at most 2^20, one matrix at most 2^34 elements. With at most
 * LQ_DRAFTER_MAX_LAYERS layers of at most six such matrices, every count fits 64 bits. */
#define DF_CAP_WIDTH (UINT64_C(1) << 20)
#define DF_CAP_MATRIX (UINT64_C(1) << 34)

static lq_status check_sizes(dctx *dx, const lq_drafter_config *c)
{
    uint64_t H = c->hidden_size, nh = c->num_attention_heads, nkv = c->num_key_value_heads;
    uint64_t d = c->head_dim, dv = c->v_head_dim, I = c->intermediate_size;
    uint64_t fc_in = (uint64_t)c->n_taps * c->target_hidden_size;
    struct { const char *key, *what; uint64_t width; } w[] = {
        {"num_attention_heads", "q_proj rows (heads x head_dim)", nh * d},
        {"num_attention_heads", "o_proj columns (heads x v_head_dim)", nh * dv},
        {"num_key_value_heads", "k_proj / v_proj rows (KV heads x head dim)", nkv * (d > dv ? d : dv)},
        {"dflash_config.target_layer_ids", "fc input (taps x target hidden)", fc_in},
    };
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
        if (w[i].width > DF_CAP_WIDTH)
            return dfail(dx, LQ_ERR_CORRUPT, w[i].key, "DF_VALUE", "%s = %llu, above the cap 2^20",
                         w[i].what, (unsigned long long)w[i].width);
    /* Each factor is now below 2^24 (widths) or 2^20 (hidden): products fit 64 bits. */
    struct { const char *key, *what; uint64_t n; } m[] = {
        {"num_attention_heads", "q_proj / o_proj", (nh * (d > dv ? d : dv)) * H},
        {"intermediate_size", "an MLP projection (intermediate x hidden)", I * H},
        {"dflash_config.target_layer_ids", "fc (hidden x taps x target hidden)", fc_in * H},
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if (m[i].n > DF_CAP_MATRIX)
            return dfail(dx, LQ_ERR_CORRUPT, m[i].key, "DF_VALUE",
                         "%s holds %llu elements, above the cap 2^34", m[i].what,
                         (unsigned long long)m[i].n);
    return LQ_OK;
}

static lq_status parse_config(const char *path, const lq_mimo_config *t, lq_drafter_config *c,
                              lq_error *err)
{
    cJSON *root = NULL;
    lq_error jerr;
    lq_error_clear(&jerr);
    lq_status st = lq_json_parse_file(path, CONFIG_MAX_BYTES, NULL, &root, &jerr);
    if (st != LQ_OK)
        return lq_fail(err, st, path, NULL, "DF_CONFIG", "%s%s%s", jerr.rule,
                       jerr.rule[0] ? ": " : "", jerr.msg);
    dctx dx = {root, NULL, path, err};
    if (!cJSON_IsObject(root)) {
        st = dfail(&dx, LQ_ERR_CORRUPT, NULL, "DF_CONFIG", "config is not a JSON object");
        goto cleanup;
    }
    dx.dfc = lq_json_get(root, "dflash_config");
    if (dx.dfc && !cJSON_IsObject(dx.dfc)) {
        st = dfail(&dx, LQ_ERR_CORRUPT, "dflash_config", "DF_CONFIG",
                   "'dflash_config' must be an object");
        goto cleanup;
    }
    if ((st = parse_arch(&dx, c)) != LQ_OK || (st = parse_sizes(&dx, c)) != LQ_OK ||
        (st = parse_rope(&dx, c)) != LQ_OK || (st = parse_attention(&dx, c)) != LQ_OK ||
        (st = parse_speculation(&dx, t, c)) != LQ_OK || (st = check_sizes(&dx, c)) != LQ_OK)
        goto cleanup;
cleanup:
    cJSON_Delete(root);
    return st;
}

/* ---- tensors ---- */

typedef struct exp_tensor {
    char name[80];
    uint32_t rank;
    uint64_t shape[2];
} exp_tensor;

static int cmp_exp(const void *a, const void *b)
{
    return strcmp(((const exp_tensor *)a)->name, ((const exp_tensor *)b)->name);
}

static void add_exp(exp_tensor *e, size_t *n, const char *prefix, const char *suffix,
                    uint32_t rank, uint64_t d0, uint64_t d1)
{
    exp_tensor *x = &e[(*n)++];
    snprintf(x->name, sizeof(x->name), "%s%s", prefix, suffix);
    x->rank = rank;
    x->shape[0] = d0;
    x->shape[1] = d1;
}

/* The tensor set dflash.md 2.3 implies for c; fc.weight first. Returns the count. */
static size_t expected_tensors(const lq_drafter_config *c, exp_tensor *e)
{
    uint64_t H = c->hidden_size, d = c->head_dim, dv = c->v_head_dim, nh = c->num_attention_heads,
             nkv = c->num_key_value_heads, I = c->intermediate_size;
    size_t n = 0;
    add_exp(e, &n, "", "fc.weight", 2, H, (uint64_t)c->n_taps * c->target_hidden_size);
    add_exp(e, &n, "", "hidden_norm.weight", 1, H, 0);
    add_exp(e, &n, "", "norm.weight", 1, H, 0);
    for (uint32_t i = 0; i < c->num_hidden_layers; i++) {
        char p[32];
        snprintf(p, sizeof(p), "layers.%u.", i);
        add_exp(e, &n, p, "input_layernorm.weight", 1, H, 0);
        add_exp(e, &n, p, "post_attention_layernorm.weight", 1, H, 0);
        add_exp(e, &n, p, "self_attn.q_proj.weight", 2, nh * d, H);
        add_exp(e, &n, p, "self_attn.k_proj.weight", 2, nkv * d, H);
        add_exp(e, &n, p, "self_attn.v_proj.weight", 2, nkv * dv, H);
        add_exp(e, &n, p, "self_attn.o_proj.weight", 2, H, nh * dv);
        add_exp(e, &n, p, "self_attn.q_norm.weight", 1, d, 0);
        add_exp(e, &n, p, "self_attn.k_norm.weight", 1, d, 0);
        if (c->attention_sink)
            add_exp(e, &n, p, "self_attn.attention_sink_bias", 1, nh, 0);
        if (c->attention_bias) {
            add_exp(e, &n, p, "self_attn.q_proj.bias", 1, nh * d, 0);
            add_exp(e, &n, p, "self_attn.k_proj.bias", 1, nkv * d, 0);
            add_exp(e, &n, p, "self_attn.v_proj.bias", 1, nkv * dv, 0);
            add_exp(e, &n, p, "self_attn.o_proj.bias", 1, H, 0);
        }
        add_exp(e, &n, p, "mlp.gate_proj.weight", 2, I, H);
        add_exp(e, &n, p, "mlp.up_proj.weight", 2, I, H);
        add_exp(e, &n, p, "mlp.down_proj.weight", 2, H, I);
    }
    return n;
}

static void shape_str(uint32_t rank, const uint64_t *shape, char *buf, size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (uint32_t i = 0; i < rank && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%llu", i ? ", " : "",
                                 (unsigned long long)shape[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
}

static const char *shard_path(const lq_ckpt *ck, uint32_t shard)
{
    return lq_st_path(lq_ckpt_shard(ck, shard));
}

static lq_status check_tensors(const lq_ckpt *ck, const lq_drafter_config *c, lq_error *err)
{
    size_t per_layer = 16, cap = 3 + (size_t)c->num_hidden_layers * per_layer;
    exp_tensor *e = malloc(cap * sizeof(*e));
    if (!e)
        return lq_fail(err, LQ_ERR_NO_MEMORY, lq_ckpt_dir(ck), NULL, NULL, "out of memory");
    size_t n = expected_tensors(c, e);
    lq_status st = LQ_OK;
    for (size_t i = 0; i < n && st == LQ_OK; i++) {
        lq_ckpt_tensor t;
        if (lq_ckpt_find(ck, e[i].name, &t) != 0) {
            st = lq_fail(err, LQ_ERR_NOT_FOUND, lq_ckpt_dir(ck), e[i].name, "DF_TENSOR_MISSING",
                         "expected tensor is absent");
            break;
        }
        const lq_tensor_info *ti = t.info;
        int same = ti->rank == e[i].rank;
        for (uint32_t k = 0; same && k < ti->rank; k++)
            same = ti->shape[k] == e[i].shape[k];
        if (!same) {
            char got[96], want[96];
            shape_str(ti->rank, ti->shape, got, sizeof(got));
            shape_str(e[i].rank, e[i].shape, want, sizeof(want));
            int fc = i == 0; /* fc.weight comes first */
            st = lq_fail(err, LQ_ERR_CORRUPT, shard_path(ck, t.shard), e[i].name,
                         fc ? "DF_FC_SHAPE" : "DF_TENSOR_SHAPE", "shape %s, expected %s%s", got,
                         want, fc ? " (hidden x taps * target hidden)" : "");
            break;
        }
        if (ti->dtype != LQ_DTYPE_BF16 && ti->dtype != LQ_DTYPE_F16 && ti->dtype != LQ_DTYPE_F32)
            st = lq_fail(err, LQ_ERR_CORRUPT, shard_path(ck, t.shard), e[i].name, "DF_DTYPE",
                         "dtype %s; drafter tensors must be BF16, F16 or F32",
                         lq_dtype_name(ti->dtype));
    }
    if (st == LQ_OK) {
        qsort(e, n, sizeof(*e), cmp_exp);
        for (size_t i = 0; i < lq_ckpt_count(ck); i++) {
            lq_ckpt_tensor t = lq_ckpt_at(ck, i);
            exp_tensor key;
            size_t len = strlen(t.info->name);
            int found = 0;
            if (len < sizeof(key.name)) {
                memcpy(key.name, t.info->name, len + 1);
                found = bsearch(&key, e, n, sizeof(*e), cmp_exp) != NULL;
            }
            if (!found) {
                st = lq_fail(err, LQ_ERR_CORRUPT, shard_path(ck, t.shard), t.info->name,
                             "DF_TENSOR_UNEXPECTED",
                             "not a DFlash drafter tensor for this config (the drafter has no "
                             "embedding or lm_head of its own)");
                break;
            }
        }
    }
    free(e);
    return st;
}

/* Every element of every drafter weight finite and at most LQ_DRAFTER_MAX_ABS in magnitude
 * (DF_TENSOR_VALUE): libquant's value check (values.h), its message kept and the rule named for the
 * drafter. Run after check_tensors, so every tensor is a BF16, F16 or F32 drafter tensor. */
static lq_status check_values(const lq_ckpt *ck, lq_error *err)
{
    lq_status st = LQ_OK;
    for (size_t i = 0; i < lq_ckpt_count(ck) && st == LQ_OK; i++) {
        lq_ckpt_tensor t = lq_ckpt_at(ck, i);
        st = lq_values_float(t.info->dtype, lq_st_data(t.file, t.info), t.info->numel, LQ_DRAFTER_MAX_ABS,
                             shard_path(ck, t.shard), t.info->name, NULL, err);
        if (st == LQ_ERR_NUMERIC && err)
            snprintf(err->rule, sizeof(err->rule), "%s", "DF_TENSOR_VALUE");
    }
    return st;
}

static lq_status open_weights(const char *dir, lq_ckpt **ck, lq_error *err)
{
    lq_ckpt_opts o;
    memset(&o, 0, sizeof(o));
    o.require_config = 1;
    if (!exists(dir, INDEX_NAME)) {
        int mimo = exists(dir, MIMO_WEIGHTS), plain = exists(dir, PLAIN_WEIGHTS);
        if (mimo && plain)
            return lq_fail(err, LQ_ERR_CORRUPT, dir, NULL, "DF_VALUE",
                           "both %s and %s without %s: which one is the drafter is ambiguous",
                           MIMO_WEIGHTS, PLAIN_WEIGHTS, INDEX_NAME);
        if (mimo)
            o.single_file = MIMO_WEIGHTS;
    }
    return lq_ckpt_open(dir, &o, ck, err);
}

static lq_status read_mask(lq_drafter *d, lq_error *err)
{
    struct stat sb;
    if (stat(d->mask_path, &sb) != 0 && errno == ENOENT)
        return lq_fail(err, LQ_ERR_NOT_FOUND, d->mask_path, NULL, "DF_MASK_FILE",
                       "mask_embedding.pt is missing (without it the MASK rows use the target's "
                       "untrained embedding row)");
    lq_status st = lq_torchzip_read_mask(d->mask_path, &d->mask_id, &d->mask, &d->mask_len, err);
    if (st != LQ_OK)
        return st;
    if (d->mask_len != d->cfg.hidden_size)
        return lq_fail(err, LQ_ERR_CORRUPT, d->mask_path, "embedding", "DF_MASK_LEN",
                       "embedding has %llu elements, hidden_size is %u",
                       (unsigned long long)d->mask_len, d->cfg.hidden_size);
    if (d->mask_id != (int64_t)d->cfg.mask_token_id)
        return lq_fail(err, LQ_ERR_CORRUPT, d->mask_path, "mask_token_id", "DF_MASK_ID_MISMATCH",
                       "file says mask_token_id %lld, config.json says %u", (long long)d->mask_id,
                       d->cfg.mask_token_id);
    st = lq_values_float(LQ_DTYPE_BF16, d->mask, d->mask_len, LQ_DRAFTER_MAX_ABS, d->mask_path, "embedding", NULL,
                         err);
    if (st == LQ_ERR_NUMERIC && err)
        snprintf(err->rule, sizeof(err->rule), "%s", "DF_MASK_VALUE");
    if (st != LQ_OK)
        return st;
    return LQ_OK;
}

lq_status lq_drafter_open(const char *dir, const lq_mimo_config *target, lq_drafter **out,
                          lq_error *err)
{
    if (!out)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, dir, NULL, NULL, "out is NULL");
    *out = NULL;
    if (!dir)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, NULL, "dir is NULL");
    lq_status st;
    lq_drafter *d = calloc(1, sizeof(*d));
    if (!d)
        return lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
    d->config_path = join(dir, CONFIG_NAME);
    d->mask_path = join(dir, MASK_NAME);
    if (!d->config_path || !d->mask_path) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
        goto cleanup;
    }
    if ((st = parse_config(d->config_path, target, &d->cfg, err)) != LQ_OK ||
        (st = open_weights(dir, &d->ck, err)) != LQ_OK ||
        (st = check_tensors(d->ck, &d->cfg, err)) != LQ_OK || (st = check_values(d->ck, err)) != LQ_OK ||
        (st = read_mask(d, err)) != LQ_OK)
        goto cleanup;
    *out = d;
    return LQ_OK;
cleanup:
    lq_drafter_close(d);
    return st;
}

void lq_drafter_close(lq_drafter *d)
{
    if (!d)
        return;
    lq_ckpt_close(d->ck);
    free(d->mask);
    free(d->config_path);
    free(d->mask_path);
    free(d);
}

const lq_ckpt *lq_drafter_ckpt(const lq_drafter *d) { return d ? d->ck : NULL; }
const lq_drafter_config *lq_drafter_get_config(const lq_drafter *d) { return d ? &d->cfg : NULL; }
const char *lq_drafter_config_path(const lq_drafter *d) { return d ? d->config_path : NULL; }
const char *lq_drafter_mask_path(const lq_drafter *d) { return d ? d->mask_path : NULL; }

const uint16_t *lq_drafter_mask_embedding(const lq_drafter *d, uint64_t *len, int64_t *id)
{
    if (len)
        *len = d ? d->mask_len : 0;
    if (id)
        *id = d ? d->mask_id : -1;
    return d ? d->mask : NULL;
}
