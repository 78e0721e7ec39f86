/* DFlash drafter validation (libquant/drafter.h).
 *
 * usage: test_drafter MKFIXTURE
 *
 * The tiny fixture's dflash/ (written by mimo-mkfixture from the geometry in tools/fixture.c:
 * hidden 256, 2 layers, 4 heads / 2 KV heads of 64, intermediate 512, block 8, taps 0/5/11,
 * mask id 4095, window 64) must validate against its 12-layer, vocab-4096, hidden-256 target,
 * and every value read back must equal that geometry. Its mask embedding must equal the
 * generator's row for "dflash.mask_embedding" (regenerated here through fixture.c and rounded
 * to BF16 by lq_from_f32), which checks that the bytes came out of the zip unchanged.
 * Then one copy of the drafter per rule, each with exactly one thing broken (the config
 * edited, one tensor dropped, reshaped, retyped or added through the library's writer with a
 * matching index, or the mask file rewritten), must be rejected with that rule; so must zero,
 * null and out-of-range sizes, block sizes, windows and taps, and heads past the size cap, and
 * weights or a mask embedding holding NaN, infinity or a magnitude above 65504. Accepted
 * variants (no index, model.safetensors name, F32/F16 norms, no target) must open. */
#include <sys/stat.h>
#include <unistd.h>

#include "../harness.h"
#include "model_util.h"
#include "tools/fixture.h"

static char root[512], base[700], tgt_dir[600];
static lq_mimo_config target;
static int ncase;
static fx_geometry G;

static void fmt_err(const lq_error *err, char *buf, size_t cap) { lq_error_format(err, buf, cap); }

/* A fresh copy of the fixture's dflash/ under root; its path goes to dir. */
static int new_case(char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/case-%02d", root, ncase++);
    if (mu_copy_dir(base, dir) != 0) {
        TH_REPORT("cannot copy %s to %s", base, dir);
        return -1;
    }
    return 0;
}

/* Opens dir and checks the outcome: status, rule, and (when given) the key or tensor named. */
static void expect(const char *dir, const lq_mimo_config *t, lq_status want, const char *rule,
                   const char *tensor, const char *what)
{
    lq_drafter *d = (lq_drafter *)&d; /* must be reset to NULL on failure */
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_drafter_open(dir, t, &d, &err);
    char buf[1500];
    fmt_err(&err, buf, sizeof(buf));
    if (!rule) {
        CHECK_MSG(st == LQ_OK && d != NULL, "%s: expected success, got %s (%s)", what,
                  lq_status_str(st), buf);
    } else {
        CHECK_MSG(st == want && strcmp(err.rule, rule) == 0 &&
                      (!tensor || strcmp(err.tensor, tensor) == 0),
                  "%s: expected %s / %s%s%s, got %s / %s", what, lq_status_str(want), rule,
                  tensor ? " / " : "", tensor ? tensor : "", lq_status_str(st), buf);
        if (st == LQ_OK)
            lq_drafter_close(d); /* an unexpected success still frees what it opened */
        else
            CHECK_MSG(d == NULL, "%s: *out not NULL after failure", what);
        return;
    }
    if (st == LQ_OK)
        lq_drafter_close(d);
}

/* ---- the valid fixture ---- */

static void test_valid(void)
{
    lq_drafter *d = NULL;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_drafter_open(base, &target, &d, &err);
    char buf[1500];
    CHECK_MSG(st == LQ_OK, "fixture drafter: %s", lq_error_format(&err, buf, sizeof(buf)));
    if (st != LQ_OK)
        return;
    const lq_drafter_config *c = lq_drafter_get_config(d);
    /* Geometry: tools/fixture.c (tiny) and mimo-mkfixture's write_drafter_config. */
    CHECK_STR(c->architecture, "DFlashDraftModel");
    CHECK_STR(c->model_type, "qwen3");
    CHECK_EQ_U64(c->hidden_size, G.d_hidden);
    CHECK_EQ_U64(c->num_hidden_layers, G.d_layers);
    CHECK_EQ_U64(c->num_attention_heads, G.d_heads);
    CHECK_EQ_U64(c->num_key_value_heads, G.d_kv);
    CHECK_EQ_U64(c->head_dim, G.d_head_dim);
    CHECK_EQ_U64(c->v_head_dim, G.d_head_dim);
    CHECK_EQ_U64(c->intermediate_size, G.d_intermediate);
    CHECK_EQ_U64(c->block_size, G.d_block);
    CHECK_EQ_U64(c->n_taps, G.d_ntaps);
    for (uint32_t i = 0; i < G.d_ntaps && i < c->n_taps; i++)
        CHECK_EQ_U64(c->taps[i], G.d_taps[i]);
    CHECK_EQ_U64(c->mask_token_id, G.d_mask_id);
    CHECK_EQ_U64(c->window, G.d_window);
    CHECK_EQ_U64(c->target_hidden_size, G.hidden);
    CHECK_EQ_U64(c->num_target_layers, G.layers);
    /* MiMo: use_swa without layer_types -> every layer SWA and non-causal (dflash.md 1.7). */
    CHECK(c->use_swa == 1);
    for (uint32_t i = 0; i < c->num_hidden_layers; i++)
        CHECK(c->is_swa[i] == 1 && c->is_causal[i] == 0);
    CHECK(c->attention_sink == 1);
    CHECK(c->attention_bias == 0);
    /* Values mimo-mkfixture writes (those of the MiMo Pro drafter, mimo_arch.md 5.2). */
    CHECK_NEAR(c->attention_value_scale, 0.612, 0, 0);
    CHECK_NEAR(c->partial_rotary_factor, 0.5, 0, 0);
    CHECK_EQ_U64(c->rope_dim, G.d_head_dim / 2);
    CHECK_NEAR(c->rope_theta, 10000.0, 0, 0);
    CHECK_NEAR(c->backbone_rotary_base, 5e6, 0, 0);
    CHECK_NEAR(c->rms_norm_eps, 1e-5, 0, 0);

    /* dflash.md 2.3: fc, hidden_norm, norm + 12 per layer with sinks. */
    const lq_ckpt *ck = lq_drafter_ckpt(d);
    CHECK(ck != NULL);
    CHECK_EQ_U64(lq_ckpt_count(ck), 3 + 12 * G.d_layers);
    CHECK(lq_ckpt_has_index(ck) == 1);
    lq_ckpt_tensor t;
    CHECK(lq_ckpt_find(ck, "fc.weight", &t) == 0 && t.info->shape[0] == G.d_hidden &&
          t.info->shape[1] == (uint64_t)G.d_ntaps * G.hidden);

    char want[800];
    snprintf(want, sizeof(want), "%s/config.json", base);
    CHECK_STR(lq_drafter_config_path(d), want);
    snprintf(want, sizeof(want), "%s/mask_embedding.pt", base);
    CHECK_STR(lq_drafter_mask_path(d), want);

    uint64_t len = 0;
    int64_t id = -1;
    const uint16_t *emb = lq_drafter_mask_embedding(d, &len, &id);
    CHECK_EQ_U64(len, G.d_hidden);
    CHECK_EQ_U64((uint64_t)id, G.d_mask_id);
    float row[1024];
    uint16_t bf[1024];
    fx_gen_row(1, "dflash.mask_embedding", 0, G.d_hidden, FX_NORMAL, 0.02f, row);
    lq_from_f32(LQ_DTYPE_BF16, row, G.d_hidden, bf);
    CHECK(emb && len == G.d_hidden && memcmp(emb, bf, G.d_hidden * sizeof(uint16_t)) == 0);
    lq_drafter_close(d);

    /* Accessors and close accept NULL. */
    lq_drafter_close(NULL);
    CHECK(lq_drafter_ckpt(NULL) == NULL && lq_drafter_get_config(NULL) == NULL);
    CHECK(lq_drafter_mask_embedding(NULL, &len, &id) == NULL && len == 0);
    CHECK(lq_drafter_open(base, &target, NULL, &err) == LQ_ERR_INVALID_ARGUMENT);

    /* Without a target the self-consistent drafter also opens; against the FP8 variant's
     * config (same geometry) too. */
    expect(base, NULL, LQ_OK, NULL, NULL, "no target");
    char cfgp[700];
    snprintf(cfgp, sizeof(cfgp), "%s/fp8/config.json", root);
    cJSON *j = mu_read_json(cfgp);
    lq_mimo_config fp8;
    CHECK(j && lq_mimo_config_parse(j, cfgp, &fp8, &err) == LQ_OK);
    if (j) {
        expect(base, &fp8, LQ_OK, NULL, NULL, "fp8 target");
        lq_mimo_config_free(&fp8);
    }
    cJSON_Delete(j);
}

/* ---- config edits ---- */

static cJSON *dfc(cJSON *c) { return cJSON_GetObjectItemCaseSensitive(c, "dflash_config"); }

static void set(cJSON *obj, const char *key, cJSON *v)
{
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v);
    else
        cJSON_AddItemToObject(obj, key, v);
}

static cJSON *ints(const int *v, int n) { return cJSON_CreateIntArray(v, n); }

static void e_arch(cJSON *c)
{
    const char *a[] = {"Qwen3ForCausalLM"};
    set(c, "architectures", cJSON_CreateStringArray(a, 1));
}
static void e_no_arch(cJSON *c) { cJSON_DeleteItemFromObjectCaseSensitive(c, "architectures"); }
static void e_no_hidden(cJSON *c) { cJSON_DeleteItemFromObjectCaseSensitive(c, "hidden_size"); }
static void e_head_dim_str(cJSON *c) { set(c, "head_dim", cJSON_CreateString("64")); }
static void e_kv3(cJSON *c) { set(c, "num_key_value_heads", cJSON_CreateNumber(3)); }
static void e_prf(cJSON *c) { set(c, "partial_rotary_factor", cJSON_CreateNumber(0.3)); }
static void e_block1(cJSON *c)
{
    set(c, "block_size", cJSON_CreateNumber(1));
    set(dfc(c), "block_size", cJSON_CreateNumber(1));
}
static void e_block_conflict(cJSON *c) { set(dfc(c), "block_size", cJSON_CreateNumber(16)); }
static void e_block_absent(cJSON *c)
{
    cJSON_DeleteItemFromObjectCaseSensitive(c, "block_size");
    cJSON_DeleteItemFromObjectCaseSensitive(dfc(c), "block_size");
}
static void e_taps_empty(cJSON *c) { set(dfc(c), "target_layer_ids", cJSON_CreateArray()); }
static void e_taps_range(cJSON *c)
{
    int v[] = {0, 5, 12};
    set(dfc(c), "target_layer_ids", ints(v, 3));
}
static void e_taps_order(cJSON *c)
{
    int v[] = {0, 11, 5};
    set(dfc(c), "target_layer_ids", ints(v, 3));
}
static void e_taps_dup(cJSON *c)
{
    int v[] = {0, 5, 5};
    set(dfc(c), "target_layer_ids", ints(v, 3));
}
static void e_taps_absent(cJSON *c) { cJSON_DeleteItemFromObjectCaseSensitive(dfc(c), "target_layer_ids"); }
static void e_target_layers(cJSON *c) { set(c, "num_target_layers", cJSON_CreateNumber(48)); }
static void e_mask_vocab(cJSON *c) { set(dfc(c), "mask_token_id", cJSON_CreateNumber(4096)); }
static void e_mask_conflict(cJSON *c) { set(c, "mask_token_id", cJSON_CreateNumber(4000)); }
static void e_mask_absent(cJSON *c) { cJSON_DeleteItemFromObjectCaseSensitive(dfc(c), "mask_token_id"); }
static void e_hidden(cJSON *c) { set(c, "hidden_size", cJSON_CreateNumber(512)); }
static void e_target_hidden(cJSON *c) { set(c, "target_hidden_size", cJSON_CreateNumber(512)); }
static void e_window(cJSON *c) { set(c, "sliding_window", cJSON_CreateNumber(32)); }
static void e_sink_off(cJSON *c) { set(dfc(c), "attention_sink_bias", cJSON_CreateFalse()); }
static void e_layer_types(cJSON *c)
{
    const char *v[] = {"full_attention", "global"};
    set(c, "layer_types", cJSON_CreateStringArray(v, 2));
}
/* Accepted: the top-level copies of block size and mask id agreeing with dflash_config, and
 * layer_types that make layer 1 sliding (causal) and layer 0 full (non-causal). */
static void e_ok_mixed(cJSON *c)
{
    set(c, "mask_token_id", cJSON_CreateNumber(4095));
    const char *v[] = {"full_attention", "sliding_attention"};
    set(c, "layer_types", cJSON_CreateStringArray(v, 2));
}

typedef struct cfg_case {
    const char *what;
    void (*edit)(cJSON *c);
    lq_status st;
    const char *rule;
    const char *key;
} cfg_case;

static void test_config_cases(void)
{
    static const cfg_case cases[] = {
        {"architecture", e_arch, LQ_ERR_UNSUPPORTED, "DF_ARCH", "architectures"},
        {"no architectures", e_no_arch, LQ_ERR_NOT_FOUND, "DF_ARCH", "architectures"},
        {"no hidden_size", e_no_hidden, LQ_ERR_NOT_FOUND, "DF_CONFIG", "hidden_size"},
        {"head_dim string", e_head_dim_str, LQ_ERR_CORRUPT, "DF_CONFIG", "head_dim"},
        {"kv heads 3", e_kv3, LQ_ERR_CORRUPT, "DF_VALUE", "num_key_value_heads"},
        {"odd rotary dims", e_prf, LQ_ERR_CORRUPT, "DF_VALUE", "partial_rotary_factor"},
        {"block 1", e_block1, LQ_ERR_CORRUPT, "DF_BLOCK", NULL},
        {"block conflict", e_block_conflict, LQ_ERR_CORRUPT, "DF_BLOCK", "dflash_config.block_size"},
        {"block absent", e_block_absent, LQ_ERR_NOT_FOUND, "DF_BLOCK", "dflash_config.block_size"},
        {"taps empty", e_taps_empty, LQ_ERR_CORRUPT, "DF_TAPS", "dflash_config.target_layer_ids"},
        {"tap 12 of 12 layers", e_taps_range, LQ_ERR_CORRUPT, "DF_TAPS", NULL},
        {"taps decreasing", e_taps_order, LQ_ERR_CORRUPT, "DF_TAPS", NULL},
        {"taps repeated", e_taps_dup, LQ_ERR_CORRUPT, "DF_TAPS", NULL},
        {"taps absent", e_taps_absent, LQ_ERR_NOT_FOUND, "DF_TAPS", NULL},
        {"num_target_layers", e_target_layers, LQ_ERR_CORRUPT, "DF_TARGET_LAYERS", "num_target_layers"},
        {"mask id = vocab", e_mask_vocab, LQ_ERR_CORRUPT, "DF_MASK_ID", NULL},
        {"mask id conflict", e_mask_conflict, LQ_ERR_CORRUPT, "DF_MASK_ID", NULL},
        {"mask id absent", e_mask_absent, LQ_ERR_NOT_FOUND, "DF_MASK_ID", NULL},
        {"hidden 512", e_hidden, LQ_ERR_CORRUPT, "DF_HIDDEN", "hidden_size"},
        {"target_hidden_size 512", e_target_hidden, LQ_ERR_CORRUPT, "DF_HIDDEN", "target_hidden_size"},
        {"window conflict", e_window, LQ_ERR_CORRUPT, "DF_VALUE", NULL},
        {"bad layer_types", e_layer_types, LQ_ERR_CORRUPT, "DF_VALUE", "layer_types"},
        /* Sinks off in the config: the shipped sink tensors become unexpected. */
        {"sinks off", e_sink_off, LQ_ERR_CORRUPT, "DF_TENSOR_UNEXPECTED",
         "layers.0.self_attn.attention_sink_bias"},
        {"accepted mixed keys", e_ok_mixed, LQ_OK, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char dir[700], cp[800];
        if (new_case(dir, sizeof(dir)))
            continue;
        snprintf(cp, sizeof(cp), "%s/config.json", dir);
        cJSON *c = mu_read_json(cp);
        CHECK(c != NULL);
        if (!c)
            continue;
        cases[i].edit(c);
        CHECK(mu_write_json(cp, c) == 0);
        cJSON_Delete(c);
        expect(dir, &target, cases[i].st, cases[i].rule, cases[i].key, cases[i].what);
        if (!cases[i].rule) {
            lq_drafter *d = NULL;
            lq_error err;
            if (lq_drafter_open(dir, &target, &d, &err) == LQ_OK) {
                const lq_drafter_config *dc = lq_drafter_get_config(d);
                /* layer_types: sliding layers are SWA and causal, full layers are neither
                 * (dflash.md 1.7); use_swa no longer forces layer 0. */
                CHECK(dc->is_swa[0] == 0 && dc->is_causal[0] == 0);
                CHECK(dc->is_swa[1] == 1 && dc->is_causal[1] == 1);
            }
            lq_drafter_close(d);
        }
        mu_rmtree(dir);
    }

    /* Zero, empty, null and extreme values, one key at a time (in dflash_config when nested;
     * block_size is written at both levels so the copies agree). The tiny drafter has 4 heads
     * of 64 over 2 KV heads: 65536 heads make q_proj 65536 x 64 = 2^22 rows, past the 2^20
     * width cap of drafter.c (divisible by the KV heads, so only the cap can refuse it). */
    static const struct {
        const char *what;
        int nested;
        const char *key, *value;
        lq_status st;
        const char *rule, *named;
    } vals[] = {
        {"hidden_size 0", 0, "hidden_size", "0", LQ_ERR_CORRUPT, "DF_VALUE", "hidden_size"},
        {"hidden_size null", 0, "hidden_size", "null", LQ_ERR_CORRUPT, "DF_CONFIG", "hidden_size"},
        {"hidden_size 2^20 + 1", 0, "hidden_size", "1048577", LQ_ERR_CORRUPT, "DF_VALUE", "hidden_size"},
        {"num_hidden_layers 0", 0, "num_hidden_layers", "0", LQ_ERR_CORRUPT, "DF_VALUE", "num_hidden_layers"},
        {"num_hidden_layers 257", 0, "num_hidden_layers", "257", LQ_ERR_CORRUPT, "DF_VALUE", "num_hidden_layers"},
        {"num_attention_heads 0", 0, "num_attention_heads", "0", LQ_ERR_CORRUPT, "DF_VALUE", "num_attention_heads"},
        {"num_key_value_heads 0", 0, "num_key_value_heads", "0", LQ_ERR_CORRUPT, "DF_VALUE", "num_key_value_heads"},
        {"head_dim 0", 0, "head_dim", "0", LQ_ERR_CORRUPT, "DF_VALUE", "head_dim"},
        {"head_dim 4097", 0, "head_dim", "4097", LQ_ERR_CORRUPT, "DF_VALUE", "head_dim"},
        {"v_head_dim 0", 0, "v_head_dim", "0", LQ_ERR_CORRUPT, "DF_VALUE", "v_head_dim"},
        {"intermediate_size 0", 0, "intermediate_size", "0", LQ_ERR_CORRUPT, "DF_VALUE", "intermediate_size"},
        {"rms_norm_eps 0", 0, "rms_norm_eps", "0", LQ_ERR_CORRUPT, "DF_VALUE", "rms_norm_eps"},
        {"block_size 0", 2, "block_size", "0", LQ_ERR_CORRUPT, "DF_BLOCK", NULL},
        {"block_size 4097", 2, "block_size", "4097", LQ_ERR_CORRUPT, "DF_BLOCK", NULL},
        {"swa_window_size 0", 1, "swa_window_size", "0", LQ_ERR_CORRUPT, "DF_VALUE",
         "dflash_config.swa_window_size"},
        {"tap 2^32", 1, "target_layer_ids", "[0, 5, 4294967296]", LQ_ERR_CORRUPT, "DF_TAPS",
         "dflash_config.target_layer_ids"},
        {"mask id -1", 1, "mask_token_id", "-1", LQ_ERR_CORRUPT, "DF_MASK_ID", NULL},
        {"65536 heads", 0, "num_attention_heads", "65536", LQ_ERR_CORRUPT, "DF_VALUE", "num_attention_heads"},
    };
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        char dir[700], cp[800];
        if (new_case(dir, sizeof(dir)))
            continue;
        snprintf(cp, sizeof(cp), "%s/config.json", dir);
        cJSON *c = mu_read_json(cp);
        CHECK(c != NULL);
        if (!c)
            continue;
        if (vals[i].nested != 1)
            set(c, vals[i].key, cJSON_Parse(vals[i].value));
        if (vals[i].nested >= 1)
            set(dfc(c), vals[i].key, cJSON_Parse(vals[i].value));
        CHECK(mu_write_json(cp, c) == 0);
        cJSON_Delete(c);
        expect(dir, &target, vals[i].st, vals[i].rule, vals[i].named, vals[i].what);
        mu_rmtree(dir);
    }

    /* config.json missing, not strict JSON, not an object. */
    struct { const char *what, *text; lq_status st; } raw[] = {
        {"config missing", NULL, LQ_ERR_NOT_FOUND},
        {"duplicate key", "{\"hidden_size\": 256, \"hidden_size\": 256}", LQ_ERR_CORRUPT},
        {"trailing bytes", "{} x", LQ_ERR_CORRUPT},
        {"not an object", "[1, 2]", LQ_ERR_CORRUPT},
    };
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        char dir[700], cp[800];
        if (new_case(dir, sizeof(dir)))
            continue;
        snprintf(cp, sizeof(cp), "%s/config.json", dir);
        unlink(cp);
        if (raw[i].text)
            CHECK(mu_write_file(cp, raw[i].text, strlen(raw[i].text)) == 0);
        expect(dir, &target, raw[i].st, "DF_CONFIG", NULL, raw[i].what);
        mu_rmtree(dir);
    }
    /* The JSON rule that failed is quoted. */
    {
        char dir[700], cp[800];
        if (!new_case(dir, sizeof(dir))) {
            snprintf(cp, sizeof(cp), "%s/config.json", dir);
            const char *t = "{\"a\": 1, \"a\": 2}";
            CHECK(mu_write_file(cp, t, strlen(t)) == 0);
            lq_drafter *d = NULL;
            lq_error err;
            lq_error_clear(&err);
            CHECK(lq_drafter_open(dir, &target, &d, &err) == LQ_ERR_CORRUPT);
            CHECK_MSG(strstr(err.msg, "JSON_DUP_KEY") != NULL, "message: %s", err.msg);
            mu_rmtree(dir);
        }
    }
}

/* ---- tensor edits ---- */

typedef struct st_case {
    const char *what;
    mu_edit e;
    lq_status st;
    const char *rule;
    const char *tensor;
} st_case;

static void test_tensor_cases(void)
{
    const uint64_t H = G.d_hidden, I = G.d_intermediate;
    const st_case cases[] = {
        {"fc in = 2 taps", {.change = "fc.weight", .change_dtype = LQ_DTYPE_BF16, .change_rank = 2,
                            .change_shape = {H, 2 * G.hidden}},
         LQ_ERR_CORRUPT, "DF_FC_SHAPE", "fc.weight"},
        {"fc transposed", {.change = "fc.weight", .change_dtype = LQ_DTYPE_BF16, .change_rank = 2,
                           .change_shape = {(uint64_t)G.d_ntaps * G.hidden, H}},
         LQ_ERR_CORRUPT, "DF_FC_SHAPE", "fc.weight"},
        {"k_norm dropped", {.drop = "layers.1.self_attn.k_norm.weight"},
         LQ_ERR_NOT_FOUND, "DF_TENSOR_MISSING", "layers.1.self_attn.k_norm.weight"},
        {"norm dropped", {.drop = "norm.weight"}, LQ_ERR_NOT_FOUND, "DF_TENSOR_MISSING", "norm.weight"},
        {"sink dropped", {.drop = "layers.0.self_attn.attention_sink_bias"},
         LQ_ERR_NOT_FOUND, "DF_TENSOR_MISSING", "layers.0.self_attn.attention_sink_bias"},
        {"k_proj 3 kv heads", {.change = "layers.0.self_attn.k_proj.weight",
                               .change_dtype = LQ_DTYPE_BF16, .change_rank = 2,
                               .change_shape = {3 * (uint64_t)G.d_head_dim, H}},
         LQ_ERR_CORRUPT, "DF_TENSOR_SHAPE", "layers.0.self_attn.k_proj.weight"},
        {"down_proj flattened", {.change = "layers.1.mlp.down_proj.weight",
                                 .change_dtype = LQ_DTYPE_BF16, .change_rank = 1,
                                 .change_shape = {H * I}},
         LQ_ERR_CORRUPT, "DF_TENSOR_SHAPE", "layers.1.mlp.down_proj.weight"},
        {"sink of 8 heads", {.change = "layers.1.self_attn.attention_sink_bias",
                             .change_dtype = LQ_DTYPE_BF16, .change_rank = 1, .change_shape = {8}},
         LQ_ERR_CORRUPT, "DF_TENSOR_SHAPE", "layers.1.self_attn.attention_sink_bias"},
        {"embed_tokens added", {.add = "embed_tokens.weight", .add_dtype = LQ_DTYPE_BF16,
                                .add_rank = 2, .add_shape = {8, H}},
         LQ_ERR_CORRUPT, "DF_TENSOR_UNEXPECTED", "embed_tokens.weight"},
        {"lm_head added", {.add = "lm_head.weight", .add_dtype = LQ_DTYPE_BF16, .add_rank = 2,
                           .add_shape = {8, H}},
         LQ_ERR_CORRUPT, "DF_TENSOR_UNEXPECTED", "lm_head.weight"},
        {"third layer", {.add = "layers.2.input_layernorm.weight", .add_dtype = LQ_DTYPE_BF16,
                         .add_rank = 1, .add_shape = {H}},
         LQ_ERR_CORRUPT, "DF_TENSOR_UNEXPECTED", "layers.2.input_layernorm.weight"},
        {"up_proj FP8", {.change = "layers.0.mlp.up_proj.weight", .change_dtype = LQ_DTYPE_F8_E4M3,
                         .change_rank = 2, .change_shape = {I, H}},
         LQ_ERR_CORRUPT, "DF_DTYPE", "layers.0.mlp.up_proj.weight"},
        {"q_norm I32", {.change = "layers.1.self_attn.q_norm.weight", .change_dtype = LQ_DTYPE_I32,
                        .change_rank = 1, .change_shape = {G.d_head_dim}},
         LQ_ERR_CORRUPT, "DF_DTYPE", "layers.1.self_attn.q_norm.weight"},
        /* F32 and F16 are floating point: accepted. */
        {"hidden_norm F32", {.change = "hidden_norm.weight", .change_dtype = LQ_DTYPE_F32,
                             .change_rank = 1, .change_shape = {H}},
         LQ_OK, NULL, NULL},
        {"o_proj F16", {.change = "layers.0.self_attn.o_proj.weight", .change_dtype = LQ_DTYPE_F16,
                        .change_rank = 2, .change_shape = {H, (uint64_t)G.d_heads * G.d_head_dim}},
         LQ_OK, NULL, NULL},
    };
    char src[800];
    snprintf(src, sizeof(src), "%s/dflash_draft_model.safetensors", base);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char dir[700];
        if (new_case(dir, sizeof(dir)))
            continue;
        CHECK_MSG(mu_rewrite_st(src, dir, "dflash_draft_model.safetensors", &cases[i].e, 1) == 0,
                  "%s: rewrite failed", cases[i].what);
        expect(dir, &target, cases[i].st, cases[i].rule, cases[i].tensor, cases[i].what);
        mu_rmtree(dir);
    }
}

/* Values: one element of a copy's weight overwritten in place (BF16 bits at the tensor's offset,
 * 8 + header length + begin). The bound is LQ_DRAFTER_MAX_ABS = 65504, which BF16 cannot hold:
 * its neighbours 65280 (0x477F, accepted) and 65536 (0x4780, refused) bracket it. */
static int poke_bf16(const char *dir, const char *tensor, uint64_t elem, uint16_t bits)
{
    char p[800];
    snprintf(p, sizeof(p), "%s/dflash_draft_model.safetensors", dir);
    lq_st_file *f = NULL;
    lq_error err;
    if (lq_st_open(p, NULL, &f, &err) != LQ_OK)
        return -1;
    const lq_tensor_info *t = lq_st_find(f, tensor);
    uint64_t off = t && t->dtype == LQ_DTYPE_BF16 && elem < t->numel ? 8 + lq_st_header_len(f) + t->begin + 2 * elem : 0;
    lq_st_close(f);
    FILE *fp = off ? fopen(p, "r+b") : NULL;
    uint8_t b[2] = {(uint8_t)(bits & 0xFF), (uint8_t)(bits >> 8)};
    int ok = fp && fseek(fp, (long)off, SEEK_SET) == 0 && fwrite(b, 1, 2, fp) == 2;
    if (fp)
        ok &= fclose(fp) == 0;
    return ok ? 0 : -1;
}

static void test_value_cases(void)
{
    static const struct { const char *what, *tensor; uint64_t elem; uint16_t bits; int ok; } cases[] = {
        {"fc NaN", "fc.weight", 5, 0x7FC0, 0},
        {"norm +Inf", "layers.1.input_layernorm.weight", 3, 0x7F80, 0},
        {"norm -Inf", "norm.weight", 0, 0xFF80, 0},
        {"q_proj 1e30", "layers.0.self_attn.q_proj.weight", 1000, 0x7149, 0},
        {"down_proj -65536", "layers.1.mlp.down_proj.weight", 77, 0xC780, 0},
        {"sink 65280 accepted", "layers.0.self_attn.attention_sink_bias", 1, 0x477F, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char dir[700];
        if (new_case(dir, sizeof(dir)))
            continue;
        CHECK_MSG(poke_bf16(dir, cases[i].tensor, cases[i].elem, cases[i].bits) == 0, "%s: patch failed",
                  cases[i].what);
        expect(dir, &target, LQ_ERR_NUMERIC, cases[i].ok ? NULL : "DF_TENSOR_VALUE", cases[i].tensor,
               cases[i].what);
        mu_rmtree(dir);
    }
}

/* ---- weight file layouts ---- */

static void test_layouts(void)
{
    char dir[700], p[800], q[800];
    /* No index: the single MiMo-named file. */
    if (!new_case(dir, sizeof(dir))) {
        snprintf(p, sizeof(p), "%s/model.safetensors.index.json", dir);
        CHECK(unlink(p) == 0);
        expect(dir, &target, LQ_OK, NULL, NULL, "no index, dflash_draft_model.safetensors");
        /* Both single-file names and no index: ambiguous. */
        snprintf(p, sizeof(p), "%s/dflash_draft_model.safetensors", base);
        CHECK(mu_rewrite_st(p, dir, "model.safetensors", NULL, 0) == 0);
        expect(dir, &target, LQ_ERR_CORRUPT, "DF_VALUE", NULL, "two weight files, no index");
        /* Only model.safetensors. */
        snprintf(q, sizeof(q), "%s/dflash_draft_model.safetensors", dir);
        CHECK(unlink(q) == 0);
        expect(dir, &target, LQ_OK, NULL, NULL, "no index, model.safetensors");
        mu_rmtree(dir);
    }
    /* The index names a shard that is gone: the checkpoint reader's rule comes through. */
    if (!new_case(dir, sizeof(dir))) {
        snprintf(p, sizeof(p), "%s/dflash_draft_model.safetensors", dir);
        CHECK(unlink(p) == 0);
        expect(dir, &target, LQ_ERR_NOT_FOUND, "CKPT_SHARD_MISSING", NULL, "shard missing");
        mu_rmtree(dir);
    }
}

/* ---- mask file ---- */

static void test_mask_cases(void)
{
    uint16_t emb[512];
    for (int i = 0; i < 512; i++)
        emb[i] = lq_f32_to_bf16(0.01f * (float)(i % 7));
    /* bad: the BF16 bits written at element 17 (0: none); 1e30 and 65536 lie above
     * LQ_DRAFTER_MAX_ABS, 65280 below it. */
    struct { const char *what; int64_t id; uint64_t h; uint16_t bad; lq_status st; const char *rule; } cases[] = {
        {"mask length 128", G.d_mask_id, 128, 0, LQ_ERR_CORRUPT, "DF_MASK_LEN"},
        {"mask length 512", G.d_mask_id, 512, 0, LQ_ERR_CORRUPT, "DF_MASK_LEN"},
        {"mask id 4094", 4094, 256, 0, LQ_ERR_CORRUPT, "DF_MASK_ID_MISMATCH"},
        {"mask NaN", G.d_mask_id, 256, 0x7FC0, LQ_ERR_NUMERIC, "DF_MASK_VALUE"},
        {"mask 1e30", G.d_mask_id, 256, 0x7149, LQ_ERR_NUMERIC, "DF_MASK_VALUE"},
        {"mask -65536", G.d_mask_id, 256, 0xC780, LQ_ERR_NUMERIC, "DF_MASK_VALUE"},
        {"mask 65280", G.d_mask_id, 256, 0x477F, LQ_OK, NULL},
        {"mask rewritten, valid", G.d_mask_id, 256, 0, LQ_OK, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char dir[700], p[800];
        if (new_case(dir, sizeof(dir)))
            continue;
        snprintf(p, sizeof(p), "%s/mask_embedding.pt", dir);
        uint16_t e2[512];
        memcpy(e2, emb, sizeof(e2));
        if (cases[i].bad)
            e2[17] = cases[i].bad;
        lq_error err;
        CHECK(lq_torchzip_write_mask(p, "mask_embedding", cases[i].id, e2, cases[i].h, NULL, &err) == LQ_OK);
        expect(dir, &target, cases[i].st, cases[i].rule, NULL, cases[i].what);
        mu_rmtree(dir);
    }
    char dir[700], p[800];
    if (!new_case(dir, sizeof(dir))) {
        snprintf(p, sizeof(p), "%s/mask_embedding.pt", dir);
        CHECK(unlink(p) == 0);
        expect(dir, &target, LQ_ERR_NOT_FOUND, "DF_MASK_FILE", NULL, "mask file missing");
        /* Present but not a zip: the reader's own rule. */
        CHECK(mu_write_file(p, "not a zip archive", 17) == 0);
        lq_drafter *d = NULL;
        lq_error err;
        lq_error_clear(&err);
        CHECK(lq_drafter_open(dir, &target, &d, &err) != LQ_OK && d == NULL);
        CHECK_MSG(strncmp(err.rule, "TZ_", 3) == 0, "garbage mask file: rule %s", err.rule);
        mu_rmtree(dir);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_drafter MKFIXTURE\n");
        return 2;
    }
    if (fx_geometry_preset("tiny", &G) != 0 || mu_mkdtemp(root, sizeof(root)) != 0) {
        fprintf(stderr, "test_drafter: setup failed\n");
        return 1;
    }
    snprintf(tgt_dir, sizeof(tgt_dir), "%s/bf16", root);
    snprintf(base, sizeof(base), "%s/dflash", tgt_dir);
    char fp8[600];
    snprintf(fp8, sizeof(fp8), "%s/fp8", root);
    int rc1 = mu_mkfixture(argv[1], "bf16", tgt_dir, 1), rc2 = mu_mkfixture(argv[1], "fp8", fp8, 0);
    CHECK_MSG(rc1 == 0 && rc2 == 0, "mimo-mkfixture failed (%d, %d)", rc1, rc2);
    if (rc1 == 0 && rc2 == 0) {
        char cp[700];
        snprintf(cp, sizeof(cp), "%s/config.json", tgt_dir);
        cJSON *j = mu_read_json(cp);
        lq_error err;
        CHECK(j && lq_mimo_config_parse(j, cp, &target, &err) == LQ_OK);
        cJSON_Delete(j);
        test_valid();
        test_config_cases();
        test_tensor_cases();
        test_value_cases();
        test_layouts();
        test_mask_cases();
        lq_mimo_config_free(&target);
    }
    mu_rmtree(root);
    return th_finish("test_drafter");
}
