/* MiMo config.json parsing in both dialects (libquant/mimo_config.h).
 *
 * usage: test_mimo_config MKFIXTURE
 *
 * 1. The tiny fixture's two configs (bf16: mimo_v2_flash, split; fp8: mimo_v2, fused, with
 *    quantization_config) parse, and every field equals the tiny geometry of tools/fixture.c
 *    (fx_geometry_preset, linked in) or the constant mimo-mkfixture writes next to it.
 * 2. Published configurations written inline: tiny-MiMo verbatim from reference/mimo_arch.md
 *    6.1, V2.5-Pro (CFG-PRO values of mimo_arch.md 2.1-2.3: 70 layers, globals
 *    {0,7,15,23,31,39,47,55,62,69}, 128 heads, 8/8 KV heads) and its FP4-DFlash
 *    quantization_config (2.3), each checked against the numbers in those sections.
 * 3. Dialects: a transformers-dialect config (layer_types, mlp_layer_types, rope_parameters,
 *    rms_norm_eps; as the HF-T converter writes it, GPU_HOST.md) produces exactly the struct
 *    of its hub twin, for a 12-layer config written out literally and for V2-Flash's 48 layers
 *    (hub pattern from the explicit global list of mimo_arch.md 2.2, transformers layer_types
 *    from HF-T's own default formula `i == 0 or (i+1) % 6 == 0`). A mixed file for Pro keeps
 *    its explicit 8 SWA KV heads (mimo_arch.md 7.3), a transformers-only one gets HF-T's 2x.
 * 4. Each rule (CFG_KEY, CFG_MODEL_TYPE, CFG_PATTERN, CFG_CONFLICT, CFG_VALUE) is triggered by
 *    a one-key edit of a valid config, with the status and the key named; a failed parse leaves
 *    the output zeroed (and ASan checks nothing leaks on any path). Among them: zero, null and
 *    empty values, values past their own range, heads and RoPE dims that do not divide, the
 *    group-limited routing rules (mimo_arch.md 3.5), and products of in-range values past the
 *    size caps of mimo_config.c (expected keys: the value that dominates, worked out in the
 *    comment above those cases). Absent or null n_group / topk_group read as 1. */
#include "../harness.h"
#include "model_util.h"
#include "tools/fixture.h"

/* reference/mimo_arch.md 6.1, verbatim. */
static const char *TINY_HUB =
    "{\"architectures\":[\"MiMoV2ForCausalLM\"],\"model_type\":\"mimo_v2\",\"vocab_size\":152576,\"hidden_size\":256,"
    "\"num_hidden_layers\":12,\"hybrid_layer_pattern\":[0,1,1,1,1,0,1,1,1,1,1,0],\"moe_layer_freq\":[0,1,1,1,1,1,1,1,1,1,1,1],"
    "\"num_attention_heads\":8,\"num_key_value_heads\":2,\"head_dim\":192,\"v_head_dim\":128,"
    "\"swa_num_attention_heads\":8,\"swa_num_key_value_heads\":4,\"swa_head_dim\":192,\"swa_v_head_dim\":128,"
    "\"partial_rotary_factor\":0.334,\"rope_theta\":10000000,\"swa_rope_theta\":10000,\"sliding_window\":16,\"sliding_window_size\":16,"
    "\"attention_chunk_size\":16,\"add_swa_attention_sink_bias\":true,\"add_full_attention_sink_bias\":false,\"attention_value_scale\":0.707,"
    "\"attention_bias\":false,\"attention_projection_layout\":\"fused_qkv\",\"intermediate_size\":1024,\"moe_intermediate_size\":256,"
    "\"n_routed_experts\":32,\"num_experts_per_tok\":8,\"n_shared_experts\":null,\"scoring_func\":\"sigmoid\",\"topk_method\":\"noaux_tc\","
    "\"n_group\":1,\"topk_group\":1,\"norm_topk_prob\":true,\"routed_scaling_factor\":null,\"layernorm_epsilon\":1e-5,\"hidden_act\":\"silu\","
    "\"max_position_embeddings\":8192,\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\",\"eos_token_id\":151645,\"pad_token_id\":151643}";

/* The same model in the transformers port's dialect, as its converter rewrites the hub file
 * (hub-only keys dropped, layernorm_epsilon -> rms_norm_eps, the two 0/1 lists -> string lists,
 * RoPE keys -> rope_parameters per layer type, null routed_scaling_factor -> 1.0). The port
 * only has mimo_v2_flash, so the twin below patches the hub file's model_type and layout. */
static const char *TINY_TR =
    "{\"architectures\":[\"MiMoV2FlashForCausalLM\"],\"model_type\":\"mimo_v2_flash\",\"vocab_size\":152576,\"hidden_size\":256,"
    "\"num_hidden_layers\":12,"
    "\"layer_types\":[\"full_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\","
    "\"full_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\","
    "\"full_attention\"],"
    "\"mlp_layer_types\":[\"dense\",\"sparse\",\"sparse\",\"sparse\",\"sparse\",\"sparse\",\"sparse\",\"sparse\",\"sparse\",\"sparse\","
    "\"sparse\",\"sparse\"],"
    "\"num_attention_heads\":8,\"num_key_value_heads\":2,\"head_dim\":192,\"v_head_dim\":128,"
    "\"rope_parameters\":{\"full_attention\":{\"rope_type\":\"default\",\"rope_theta\":10000000,\"partial_rotary_factor\":0.334},"
    "\"sliding_attention\":{\"rope_type\":\"default\",\"rope_theta\":10000,\"partial_rotary_factor\":0.334}},"
    "\"sliding_window\":16,\"attention_value_scale\":0.707,\"attention_bias\":false,\"attention_dropout\":0.0,"
    "\"intermediate_size\":1024,\"moe_intermediate_size\":256,\"n_routed_experts\":32,\"num_experts_per_tok\":8,"
    "\"n_group\":1,\"topk_group\":1,\"norm_topk_prob\":true,\"routed_scaling_factor\":1.0,\"rms_norm_eps\":1e-05,"
    "\"hidden_act\":\"silu\",\"initializer_range\":0.02,\"use_cache\":true,\"max_position_embeddings\":8192,"
    "\"tie_word_embeddings\":false,\"bos_token_id\":null,\"eos_token_id\":151645,\"pad_token_id\":151643}";

static cJSON *parse_text(const char *text)
{
    cJSON *j = NULL;
    lq_error err;
    if (lq_json_parse(text, strlen(text), NULL, "inline", &j, &err) != LQ_OK) {
        char buf[1400];
        TH_REPORT("inline JSON: %s", lq_error_format(&err, buf, sizeof(buf)));
    }
    return j;
}

/* Sets (or, with text NULL, deletes) the value at a dotted path, creating objects on the way. */
static void set_path(cJSON *root, const char *path, const char *text)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    cJSON *obj = root;
    char *p = buf, *dot;
    while ((dot = strchr(p, '.')) != NULL) {
        *dot = '\0';
        cJSON *next = cJSON_GetObjectItemCaseSensitive(obj, p);
        if (!next)
            next = cJSON_AddObjectToObject(obj, p);
        obj = next;
        p = dot + 1;
    }
    if (!text) {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, p);
        return;
    }
    cJSON *v = cJSON_Parse(text);
    if (!v) {
        TH_REPORT("bad test value %s", text);
        return;
    }
    if (cJSON_GetObjectItemCaseSensitive(obj, p))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, p, v);
    else
        cJSON_AddItemToObject(obj, p, v);
}

static lq_status parse(const cJSON *j, lq_mimo_config *c, lq_error *err)
{
    lq_error_clear(err);
    return lq_mimo_config_parse(j, "config.json", c, err);
}

static int parse_ok(const cJSON *j, lq_mimo_config *c, const char *what)
{
    lq_error err;
    lq_status st = parse(j, c, &err);
    char buf[1400];
    CHECK_MSG(st == LQ_OK, "%s: %s", what, lq_error_format(&err, buf, sizeof(buf)));
    return st == LQ_OK;
}

/* Name of the first field in which a and b differ (dialect excepted), or NULL. */
static const char *config_diff(const lq_mimo_config *a, const lq_mimo_config *b)
{
#define F(x)                                                                                  \
    if (!(a->x == b->x))                                                                      \
        return #x;
    if (strcmp(a->model_type, b->model_type))
        return "model_type";
    if (strcmp(a->architecture, b->architecture))
        return "architecture";
    F(vocab_size) F(hidden_size) F(num_hidden_layers) F(num_swa_layers) F(num_moe_layers)
    if (memcmp(a->is_swa, b->is_swa, a->num_hidden_layers))
        return "is_swa";
    if (memcmp(a->is_moe, b->is_moe, a->num_hidden_layers))
        return "is_moe";
    F(num_attention_heads) F(num_key_value_heads) F(head_dim) F(v_head_dim)
    F(swa_num_attention_heads) F(swa_num_key_value_heads) F(swa_head_dim) F(swa_v_head_dim)
    F(partial_rotary_factor) F(swa_partial_rotary_factor) F(rope_dim) F(swa_rope_dim)
    F(rope_theta) F(swa_rope_theta) F(sliding_window) F(swa_attention_sink)
    F(full_attention_sink) F(attention_value_scale) F(max_position_embeddings)
    F(intermediate_size) F(moe_intermediate_size) F(n_routed_experts) F(num_experts_per_tok)
    F(n_group) F(topk_group) F(norm_topk_prob) F(routed_scaling_factor) F(rms_norm_eps)
    F(tie_word_embeddings) F(fused_qkv) F(bos_token_id) F(pad_token_id) F(n_eos)
    if (strcmp(a->scoring_func, b->scoring_func))
        return "scoring_func";
    for (uint32_t i = 0; i < a->n_eos; i++)
        F(eos_token_ids[i])
    F(quant.present) F(quant.n_ignored)
#undef F
    return NULL;
}

/* ---- 1. the fixture's configs ---- */

static void check_fixture(const lq_mimo_config *c, const fx_geometry *g, int fp8)
{
    CHECK_STR(c->model_type, fp8 ? "mimo_v2" : "mimo_v2_flash");
    CHECK_STR(c->architecture, fp8 ? "MiMoV2ForCausalLM" : "MiMoV2FlashForCausalLM");
    CHECK(c->dialect == LQ_MIMO_DIALECT_HUB);
    CHECK(c->fused_qkv == fp8);
    CHECK_EQ_U64(c->vocab_size, g->vocab);
    CHECK_EQ_U64(c->hidden_size, g->hidden);
    CHECK_EQ_U64(c->num_hidden_layers, g->layers);
    uint32_t nswa = 0, nmoe = 0;
    for (uint32_t L = 0; L < g->layers; L++) {
        CHECK_EQ_U64(c->is_swa[L], (unsigned)g->hybrid[L]);
        CHECK_EQ_U64(c->is_moe[L], (unsigned)g->moe[L]);
        nswa += (uint32_t)g->hybrid[L];
        nmoe += (uint32_t)g->moe[L];
    }
    CHECK_EQ_U64(c->num_swa_layers, nswa);
    CHECK_EQ_U64(c->num_moe_layers, nmoe);
    CHECK_EQ_U64(c->num_attention_heads, g->heads);
    CHECK_EQ_U64(c->num_key_value_heads, g->kv_full);
    CHECK_EQ_U64(c->head_dim, g->head_dim);
    CHECK_EQ_U64(c->v_head_dim, g->v_head_dim);
    CHECK_EQ_U64(c->swa_num_attention_heads, g->swa_heads);
    CHECK_EQ_U64(c->swa_num_key_value_heads, g->kv_swa);
    CHECK_EQ_U64(c->swa_head_dim, g->head_dim);
    CHECK_EQ_U64(c->swa_v_head_dim, g->v_head_dim);
    /* The doubles are printed by cJSON with up to 17 significant digits and read back: exact. */
    CHECK_NEAR(c->partial_rotary_factor, g->partial_rotary, 0, 0);
    CHECK_NEAR(c->swa_partial_rotary_factor, g->partial_rotary, 0, 0);
    /* mimo_arch.md 3.3: int(192 x 0.334) = 64 rotary dims. */
    CHECK_EQ_U64(c->rope_dim, 64);
    CHECK_EQ_U64(c->swa_rope_dim, 64);
    CHECK_NEAR(c->rope_theta, g->rope_theta, 0, 0);
    CHECK_NEAR(c->swa_rope_theta, g->swa_rope_theta, 0, 0);
    CHECK_EQ_U64(c->sliding_window, g->window);
    CHECK(c->swa_attention_sink == 1 && c->full_attention_sink == 0);
    CHECK_NEAR(c->attention_value_scale, g->value_scale, 0, 0);
    CHECK_EQ_U64(c->max_position_embeddings, g->max_pos);
    CHECK_EQ_U64(c->intermediate_size, g->intermediate);
    CHECK_EQ_U64(c->moe_intermediate_size, g->moe_intermediate);
    CHECK_EQ_U64(c->n_routed_experts, g->experts);
    CHECK_EQ_U64(c->num_experts_per_tok, g->top_k);
    /* Constants mimo-mkfixture writes: n_group/topk_group 1, norm_topk_prob true,
     * routed_scaling_factor null (-> 1.0), sigmoid, eps 1e-5, untied, eos vocab-3, pad vocab-2. */
    CHECK_EQ_U64(c->n_group, 1);
    CHECK_EQ_U64(c->topk_group, 1);
    CHECK(c->norm_topk_prob == 1);
    CHECK_NEAR(c->routed_scaling_factor, 1.0, 0, 0);
    CHECK_STR(c->scoring_func, "sigmoid");
    CHECK_NEAR(c->rms_norm_eps, 1e-5, 0, 0);
    CHECK(c->tie_word_embeddings == 0);
    CHECK_EQ_U64(c->n_eos, 1);
    CHECK_EQ_U64((uint64_t)c->eos_token_ids[0], g->vocab - 3);
    CHECK_EQ_U64((uint64_t)c->pad_token_id, g->vocab - 2);
    CHECK(c->bos_token_id == -1);
    /* fixture.h: the fused qkv is interleaved over qkv_shards (= kv_full) shards. */
    CHECK_EQ_U64(lq_mimo_qkv_shards(c), g->qkv_shards);
    const lq_mimo_quant *q = &c->quant;
    CHECK(q->present == fp8);
    if (!fp8) {
        CHECK(q->n_ignored == 0 && q->ignored_layers == NULL && q->quant_method[0] == '\0');
        return;
    }
    CHECK_STR(q->quant_method, "fp8");
    CHECK_STR(q->fmt, "e4m3");
    CHECK_STR(q->activation_scheme, "dynamic");
    CHECK_STR(q->store_dtype, "");
    CHECK(q->weight_block_size[0] == 128 && q->weight_block_size[1] == 128);
    CHECK_EQ_U64(q->mxfp4_block_size, 0);
    CHECK_EQ_U64(q->n_ignored, g->layers);
    for (uint32_t L = 0; L < g->layers && L < q->n_ignored; L++) {
        char want[64];
        snprintf(want, sizeof(want), "model.layers.%u.self_attn.o_proj", L);
        CHECK_STR(q->ignored_layers[L], want);
    }
}

static void test_fixture(const char *mkfixture)
{
    fx_geometry g;
    char root[512], dir[600], path[700];
    if (fx_geometry_preset("tiny", &g) != 0 || mu_mkdtemp(root, sizeof(root)) != 0) {
        TH_REPORT("setup failed");
        return;
    }
    static const char *variants[2] = {"bf16", "fp8"};
    for (int fp8 = 0; fp8 < 2; fp8++) {
        snprintf(dir, sizeof(dir), "%s/%s", root, variants[fp8]);
        int rc = mu_mkfixture(mkfixture, variants[fp8], dir, 0);
        CHECK_MSG(rc == 0, "mimo-mkfixture %s: exit %d", variants[fp8], rc);
        if (rc)
            continue;
        snprintf(path, sizeof(path), "%s/config.json", dir);
        cJSON *j = mu_read_json(path);
        CHECK(j != NULL);
        lq_mimo_config c;
        if (j && parse_ok(j, &c, variants[fp8])) {
            check_fixture(&c, &g, fp8);
            lq_mimo_config_free(&c);
        }
        cJSON_Delete(j);
    }
    mu_rmtree(root);
}

/* ---- 2. published configs ---- */

static void test_tiny_61(void)
{
    cJSON *j = parse_text(TINY_HUB);
    lq_mimo_config c;
    if (j && parse_ok(j, &c, "mimo_arch 6.1")) {
        /* 6.1: 9 SWA layers of 12, 11 MoE, fused qkv over S = 2 shards, 64 RoPE dims. */
        CHECK_EQ_U64(c.num_swa_layers, 9);
        CHECK_EQ_U64(c.num_moe_layers, 11);
        CHECK(c.fused_qkv == 1);
        CHECK_EQ_U64(lq_mimo_qkv_shards(&c), 2);
        CHECK_EQ_U64(c.rope_dim, 64);
        CHECK_EQ_U64(c.n_routed_experts, 32);
        CHECK_EQ_U64(c.moe_intermediate_size, 256);
        CHECK_EQ_U64((uint64_t)c.eos_token_ids[0], 151645);
        CHECK_EQ_U64((uint64_t)c.pad_token_id, 151643);
        CHECK(c.quant.present == 0);
        lq_mimo_config_free(&c);
    }
    cJSON_Delete(j);
}

static cJSON *int_list(const int *v, int n) { return cJSON_CreateIntArray(v, n); }

/* V2.5-Pro per mimo_arch.md 2.1-2.3 (CFG-PRO). */
static cJSON *pro_hub(void)
{
    static const char *text =
        "{\"architectures\":[\"MiMoV2ForCausalLM\"],\"model_type\":\"mimo_v2\",\"vocab_size\":152576,"
        "\"hidden_size\":6144,\"num_hidden_layers\":70,\"intermediate_size\":16384,"
        "\"num_attention_heads\":128,\"swa_num_attention_heads\":128,\"num_key_value_heads\":8,"
        "\"swa_num_key_value_heads\":8,\"head_dim\":192,\"swa_head_dim\":192,\"v_head_dim\":128,"
        "\"swa_v_head_dim\":128,\"partial_rotary_factor\":0.334,\"rope_theta\":10000000,"
        "\"swa_rope_theta\":10000,\"sliding_window\":128,\"sliding_window_size\":128,"
        "\"attention_chunk_size\":128,\"add_swa_attention_sink_bias\":true,"
        "\"add_full_attention_sink_bias\":false,\"attention_value_scale\":0.612,\"attention_bias\":false,"
        "\"attention_projection_layout\":\"fused_qkv\",\"layernorm_epsilon\":1e-5,\"hidden_act\":\"silu\","
        "\"n_routed_experts\":384,\"num_experts_per_tok\":8,\"moe_intermediate_size\":2048,"
        "\"n_shared_experts\":null,\"scoring_func\":\"sigmoid\",\"topk_method\":\"noaux_tc\",\"n_group\":1,"
        "\"topk_group\":1,\"norm_topk_prob\":true,\"routed_scaling_factor\":null,"
        "\"max_position_embeddings\":1048576,\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\","
        "\"quantization_config\":{\"activation_scheme\":\"dynamic\",\"fmt\":\"e4m3\",\"quant_method\":\"fp8\","
        "\"weight_block_size\":[128,128]}}";
    cJSON *j = parse_text(text);
    if (!j)
        return NULL;
    int pat[70], moe[70];
    static const int globals[] = {0, 7, 15, 23, 31, 39, 47, 55, 62, 69};
    for (int i = 0; i < 70; i++) {
        pat[i] = 1;
        moe[i] = i != 0;
    }
    for (size_t k = 0; k < sizeof(globals) / sizeof(globals[0]); k++)
        pat[globals[k]] = 0;
    cJSON_AddItemToObject(j, "hybrid_layer_pattern", int_list(pat, 70));
    cJSON_AddItemToObject(j, "moe_layer_freq", int_list(moe, 70));
    cJSON *ign = cJSON_CreateArray();
    for (int L = 0; L < 70; L++) {
        char n[64];
        snprintf(n, sizeof(n), "model.layers.%d.self_attn.o_proj", L);
        cJSON_AddItemToArray(ign, cJSON_CreateString(n));
    }
    cJSON_AddItemToArray(ign, cJSON_CreateString("model.decoder.self_attn.o_proj"));
    cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(j, "quantization_config"), "ignored_layers", ign);
    return j;
}

static void test_pro(void)
{
    cJSON *j = pro_hub();
    lq_mimo_config c;
    if (j && parse_ok(j, &c, "V2.5-Pro")) {
        CHECK_EQ_U64(c.num_hidden_layers, 70);
        CHECK_EQ_U64(c.num_swa_layers, 60); /* 2.2: 10 global, 60 SWA */
        CHECK_EQ_U64(c.num_moe_layers, 69);
        static const int globals[] = {0, 7, 15, 23, 31, 39, 47, 55, 62, 69};
        size_t k = 0;
        for (uint32_t L = 0; L < 70; L++) {
            int global = k < 10 && globals[k] == (int)L;
            k += (size_t)global;
            CHECK_EQ_U64(c.is_swa[L], !global);
        }
        CHECK(c.num_attention_heads == 128 && c.swa_num_attention_heads == 128);
        CHECK(c.num_key_value_heads == 8 && c.swa_num_key_value_heads == 8);
        CHECK_EQ_U64(lq_mimo_qkv_shards(&c), 8); /* 3.3: Pro S = 8 */
        CHECK(c.fused_qkv == 1);
        CHECK_NEAR(c.attention_value_scale, 0.612, 0, 0);
        CHECK_NEAR(c.rope_theta, 1e7, 0, 0);
        CHECK_NEAR(c.swa_rope_theta, 1e4, 0, 0);
        CHECK_EQ_U64(c.n_routed_experts, 384);
        CHECK_EQ_U64(c.n_eos, 0); /* 2.1: no eos/pad in the Pro file */
        CHECK(c.pad_token_id == -1);
        CHECK_STR(c.quant.quant_method, "fp8");
        CHECK_STR(c.quant.store_dtype, "");
        CHECK_EQ_U64(c.quant.n_ignored, 71); /* 2.3: 70 o_proj + the MTP block's */
        if (c.quant.n_ignored == 71)
            CHECK_STR(c.quant.ignored_layers[70], "model.decoder.self_attn.o_proj");
        lq_mimo_config_free(&c);
    }
    /* FP4-DFlash (2.3): store_dtype mxfp4 with 32-element blocks. */
    if (j) {
        set_path(j, "quantization_config.store_dtype", "\"mxfp4\"");
        set_path(j, "quantization_config.mxfp4_block_size", "32");
        if (parse_ok(j, &c, "FP4-DFlash")) {
            CHECK_STR(c.quant.store_dtype, "mxfp4");
            CHECK_EQ_U64(c.quant.mxfp4_block_size, 32);
            CHECK(c.quant.weight_block_size[0] == 128 && c.quant.weight_block_size[1] == 128);
            lq_mimo_config_free(&c);
        }
    }
    cJSON_Delete(j);
}

/* ---- 3. dialects ---- */

static void expect_twins(const cJSON *hub, const cJSON *tr, const char *what)
{
    lq_mimo_config a, b;
    if (!parse_ok(hub, &a, what))
        return;
    if (parse_ok(tr, &b, what)) {
        CHECK(a.dialect == LQ_MIMO_DIALECT_HUB);
        CHECK(b.dialect == LQ_MIMO_DIALECT_TRANSFORMERS);
        const char *d = config_diff(&a, &b);
        CHECK_MSG(d == NULL, "%s: hub and transformers twins differ in %s", what, d);
        lq_mimo_config_free(&b);
    }
    lq_mimo_config_free(&a);
}

/* V2-Flash (mimo_arch.md 2.1, first column) in the hub dialect. */
static cJSON *flash_hub(void)
{
    static const char *text =
        "{\"architectures\":[\"MiMoV2FlashForCausalLM\"],\"model_type\":\"mimo_v2_flash\",\"vocab_size\":152576,"
        "\"hidden_size\":4096,\"num_hidden_layers\":48,\"intermediate_size\":16384,"
        "\"num_attention_heads\":64,\"swa_num_attention_heads\":64,\"num_key_value_heads\":4,"
        "\"swa_num_key_value_heads\":8,\"head_dim\":192,\"swa_head_dim\":192,\"v_head_dim\":128,"
        "\"swa_v_head_dim\":128,\"partial_rotary_factor\":0.334,\"rope_theta\":5000000,"
        "\"swa_rope_theta\":10000,\"sliding_window\":128,\"sliding_window_size\":128,"
        "\"add_swa_attention_sink_bias\":true,\"add_full_attention_sink_bias\":false,"
        "\"attention_value_scale\":0.707,\"layernorm_epsilon\":1e-5,\"n_routed_experts\":256,"
        "\"num_experts_per_tok\":8,\"moe_intermediate_size\":2048,\"n_shared_experts\":null,"
        "\"scoring_func\":\"sigmoid\",\"topk_method\":\"noaux_tc\",\"n_group\":1,\"topk_group\":1,"
        "\"norm_topk_prob\":true,\"routed_scaling_factor\":null,\"max_position_embeddings\":262144,"
        "\"tie_word_embeddings\":false,\"eos_token_id\":151645,\"pad_token_id\":151643}";
    cJSON *j = parse_text(text);
    if (!j)
        return NULL;
    /* 2.2: globals {0, 5, 11, 17, 23, 29, 35, 41, 47}; layer 0 dense. */
    static const int globals[] = {0, 5, 11, 17, 23, 29, 35, 41, 47};
    int pat[48], moe[48];
    for (int i = 0; i < 48; i++) {
        pat[i] = 1;
        moe[i] = i != 0;
    }
    for (size_t k = 0; k < sizeof(globals) / sizeof(globals[0]); k++)
        pat[globals[k]] = 0;
    cJSON_AddItemToObject(j, "hybrid_layer_pattern", int_list(pat, 48));
    cJSON_AddItemToObject(j, "moe_layer_freq", int_list(moe, 48));
    return j;
}

/* The transformers port's file for V2-Flash: its own defaults for the per-layer lists. */
static cJSON *flash_tr(void)
{
    static const char *text =
        "{\"architectures\":[\"MiMoV2FlashForCausalLM\"],\"model_type\":\"mimo_v2_flash\",\"vocab_size\":152576,"
        "\"hidden_size\":4096,\"num_hidden_layers\":48,\"intermediate_size\":16384,"
        "\"num_attention_heads\":64,\"num_key_value_heads\":4,\"head_dim\":192,\"v_head_dim\":128,"
        "\"rope_parameters\":{\"full_attention\":{\"rope_type\":\"default\",\"rope_theta\":5000000.0,"
        "\"partial_rotary_factor\":0.334},\"sliding_attention\":{\"rope_type\":\"default\","
        "\"rope_theta\":10000.0,\"partial_rotary_factor\":0.334}},\"sliding_window\":128,"
        "\"attention_value_scale\":0.707,\"rms_norm_eps\":1e-05,\"n_routed_experts\":256,"
        "\"num_experts_per_tok\":8,\"moe_intermediate_size\":2048,\"n_group\":1,\"topk_group\":1,"
        "\"norm_topk_prob\":true,\"routed_scaling_factor\":1.0,\"max_position_embeddings\":262144,"
        "\"tie_word_embeddings\":false,\"eos_token_id\":151645,\"pad_token_id\":151643,"
        "\"attention_bias\":false,\"hidden_act\":\"silu\"}";
    cJSON *j = parse_text(text);
    if (!j)
        return NULL;
    cJSON *lt = cJSON_CreateArray(), *mt = cJSON_CreateArray();
    for (int i = 0; i < 48; i++) {
        int full = i == 0 || (i + 1) % 6 == 0; /* HF-T MiMoV2FlashConfig.__post_init__ */
        cJSON_AddItemToArray(lt, cJSON_CreateString(full ? "full_attention" : "sliding_attention"));
        cJSON_AddItemToArray(mt, cJSON_CreateString(i == 0 ? "dense" : "sparse"));
    }
    cJSON_AddItemToObject(j, "layer_types", lt);
    cJSON_AddItemToObject(j, "mlp_layer_types", mt);
    return j;
}

static void test_dialects(void)
{
    /* 12-layer twins. */
    cJSON *hub = parse_text(TINY_HUB), *tr = parse_text(TINY_TR);
    if (hub && tr) {
        set_path(hub, "model_type", "\"mimo_v2_flash\"");
        set_path(hub, "architectures", "[\"MiMoV2FlashForCausalLM\"]");
        set_path(hub, "attention_projection_layout", NULL);
        expect_twins(hub, tr, "tiny twins");
    }
    /* 48-layer V2-Flash twins. */
    cJSON *fh = flash_hub(), *ft = flash_tr();
    if (fh && ft) {
        expect_twins(fh, ft, "V2-Flash twins");
        lq_mimo_config c;
        if (parse_ok(ft, &c, "V2-Flash transformers")) {
            /* HF-T: SWA layers get 2 x 4 KV heads, sinks on SWA layers only. */
            CHECK_EQ_U64(c.swa_num_key_value_heads, 8);
            CHECK_EQ_U64(c.num_swa_layers, 39); /* 2.2: 9 global, 39 SWA */
            CHECK(c.swa_attention_sink == 1 && c.full_attention_sink == 0);
            CHECK(c.fused_qkv == 0);
            CHECK_EQ_U64(lq_mimo_qkv_shards(&c), 4);
            lq_mimo_config_free(&c);
        }
        /* One file carrying both dialects, consistent: accepted, both bits set. */
        cJSON *both = cJSON_Duplicate(fh, 1);
        cJSON_AddItemToObject(both, "layer_types",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(ft, "layer_types"), 1));
        cJSON_AddItemToObject(both, "mlp_layer_types",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(ft, "mlp_layer_types"), 1));
        cJSON_AddItemToObject(both, "rope_parameters",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(ft, "rope_parameters"), 1));
        set_path(both, "rms_norm_eps", "1e-05");
        if (parse_ok(both, &c, "both dialects")) {
            CHECK(c.dialect == (LQ_MIMO_DIALECT_HUB | LQ_MIMO_DIALECT_TRANSFORMERS));
            lq_mimo_config a;
            if (parse_ok(fh, &a, "V2-Flash hub")) {
                const char *d = config_diff(&a, &c);
                CHECK_MSG(d == NULL, "both-dialect file differs from hub in %s", d);
                lq_mimo_config_free(&a);
            }
            lq_mimo_config_free(&c);
        }
        cJSON_Delete(both);
    }
    /* Pro with transformers layer keys added: the explicit 8 SWA KV heads win over HF-T's 2 x 8
     * (mimo_arch.md 7.3); dropping the hub keys leaves HF-T's rule (16). */
    cJSON *pro = pro_hub();
    if (pro) {
        cJSON *lt = cJSON_CreateArray();
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(pro, "hybrid_layer_pattern");
        const cJSON *e;
        cJSON_ArrayForEach(e, pat)
            cJSON_AddItemToArray(lt, cJSON_CreateString(e->valueint ? "sliding_attention" : "full_attention"));
        cJSON_AddItemToObject(pro, "layer_types", lt);
        lq_mimo_config c;
        if (parse_ok(pro, &c, "Pro mixed")) {
            CHECK_EQ_U64(c.swa_num_key_value_heads, 8);
            lq_mimo_config_free(&c);
        }
        set_path(pro, "hybrid_layer_pattern", NULL);
        set_path(pro, "swa_num_key_value_heads", NULL);
        if (parse_ok(pro, &c, "Pro transformers-only")) {
            CHECK_EQ_U64(c.swa_num_key_value_heads, 16);
            CHECK(c.dialect == LQ_MIMO_DIALECT_TRANSFORMERS);
            lq_mimo_config_free(&c);
        }
    }
    /* Per-type partial_rotary_factor (transformers only): SWA layers 0.5 -> 96 dims. */
    if (tr) {
        set_path(tr, "rope_parameters.sliding_attention.partial_rotary_factor", "0.5");
        lq_mimo_config c;
        if (parse_ok(tr, &c, "per-type partial rotary")) {
            CHECK_EQ_U64(c.rope_dim, 64);
            CHECK_EQ_U64(c.swa_rope_dim, 96);
            lq_mimo_config_free(&c);
        }
    }
    cJSON_Delete(pro);
    cJSON_Delete(fh);
    cJSON_Delete(ft);
    cJSON_Delete(hub);
    cJSON_Delete(tr);
}

/* ---- 4. rules ---- */

enum { B_HUB, B_TR, B_PRO };

typedef struct rule_case {
    int base;
    const char *path, *value;   /* value NULL deletes */
    const char *path2, *value2; /* optional second edit of the same change */
    lq_status st;
    const char *rule;
    const char *key;            /* lq_error.tensor; NULL: not checked */
} rule_case;

static void test_rules(void)
{
    static const rule_case cases[] = {
        /* CFG_MODEL_TYPE */
        {B_HUB, "model_type", "\"qwen3\"", NULL, NULL, LQ_ERR_UNSUPPORTED, "CFG_MODEL_TYPE", "model_type"},
        {B_TR, "model_type", "\"mimo\"", NULL, NULL, LQ_ERR_UNSUPPORTED, "CFG_MODEL_TYPE", "model_type"},
        /* CFG_KEY: absent or wrongly typed */
        {B_HUB, "model_type", NULL, NULL, NULL, LQ_ERR_NOT_FOUND, "CFG_KEY", "model_type"},
        {B_HUB, "architectures", "[]", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY", "architectures"},
        {B_HUB, "hidden_size", NULL, NULL, NULL, LQ_ERR_NOT_FOUND, "CFG_KEY", "hidden_size"},
        {B_HUB, "hidden_size", "\"256\"", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY", "hidden_size"},
        {B_HUB, "hidden_size", "256.5", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY", "hidden_size"},
        {B_HUB, "attention_value_scale", NULL, NULL, NULL, LQ_ERR_NOT_FOUND, "CFG_KEY", "attention_value_scale"},
        {B_HUB, "swa_num_key_value_heads", NULL, NULL, NULL, LQ_ERR_NOT_FOUND, "CFG_KEY", "swa_num_key_value_heads"},
        {B_HUB, "add_swa_attention_sink_bias", NULL, NULL, NULL, LQ_ERR_NOT_FOUND, "CFG_KEY", "add_swa_attention_sink_bias"},
        {B_HUB, "add_full_attention_sink_bias", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY", "add_full_attention_sink_bias"},
        {B_HUB, "scoring_func", NULL, NULL, NULL, LQ_ERR_NOT_FOUND, "CFG_KEY", "scoring_func"},
        {B_HUB, "norm_topk_prob", NULL, NULL, NULL, LQ_ERR_NOT_FOUND, "CFG_KEY", "norm_topk_prob"},
        {B_HUB, "routed_scaling_factor", NULL, NULL, NULL, LQ_ERR_NOT_FOUND, "CFG_KEY", "routed_scaling_factor"},
        {B_HUB, "sliding_window", NULL, "sliding_window_size", NULL, LQ_ERR_NOT_FOUND, "CFG_KEY", "sliding_window"},
        {B_HUB, "layernorm_epsilon", NULL, NULL, NULL, LQ_ERR_NOT_FOUND, "CFG_KEY", "layernorm_epsilon"},
        {B_HUB, "moe_layer_freq", "1", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY", "moe_layer_freq"},
        {B_HUB, "hybrid_layer_pattern", NULL, NULL, NULL, LQ_ERR_NOT_FOUND, "CFG_KEY", "hybrid_layer_pattern"},
        {B_HUB, "rope_theta", "\"1e7\"", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY", "rope_theta"},
        {B_HUB, "quantization_config", "\"fp8\"", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY", "quantization_config"},
        {B_PRO, "quantization_config.quant_method", NULL, NULL, NULL, LQ_ERR_NOT_FOUND, "CFG_KEY",
         "quantization_config.quant_method"},
        {B_PRO, "quantization_config.weight_block_size", "[128]", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY",
         "quantization_config.weight_block_size"},
        {B_PRO, "quantization_config.ignored_layers", "[\"a\", 1]", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY",
         "quantization_config.ignored_layers"},
        {B_TR, "rope_parameters", NULL, NULL, NULL, LQ_ERR_NOT_FOUND, "CFG_KEY", "rope_theta"},
        {B_TR, "rope_parameters", "[]", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY", "rope_parameters"},
        {B_TR, "rms_norm_eps", NULL, NULL, NULL, LQ_ERR_NOT_FOUND, "CFG_KEY", "layernorm_epsilon"},
        /* CFG_PATTERN */
        {B_HUB, "num_hidden_layers", "11", NULL, NULL, LQ_ERR_CORRUPT, "CFG_PATTERN", "hybrid_layer_pattern"},
        {B_HUB, "hybrid_layer_pattern", "[0,1,1,1,1,0,1,1,1,1,2,0]", NULL, NULL, LQ_ERR_CORRUPT, "CFG_PATTERN",
         "hybrid_layer_pattern"},
        {B_HUB, "moe_layer_freq", "[0,1,1,1,1,1,1,1,1,1,1]", NULL, NULL, LQ_ERR_CORRUPT, "CFG_PATTERN",
         "moe_layer_freq"},
        {B_HUB, "moe_layer_freq", "[0,1,1,1,1,1,1,1,1,1,1,true]", NULL, NULL, LQ_ERR_CORRUPT, "CFG_PATTERN",
         "moe_layer_freq"},
        {B_TR, "layer_types", "[\"full_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\","
         "\"sliding_attention\",\"global\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\","
         "\"sliding_attention\",\"sliding_attention\",\"full_attention\"]", NULL, NULL, LQ_ERR_CORRUPT,
         "CFG_PATTERN", "layer_types"},
        {B_TR, "mlp_layer_types", "[\"dense\",\"sparse\"]", NULL, NULL, LQ_ERR_CORRUPT, "CFG_PATTERN",
         "mlp_layer_types"},
        /* CFG_CONFLICT */
        {B_HUB, "sliding_window_size", "32", NULL, NULL, LQ_ERR_CORRUPT, "CFG_CONFLICT", "sliding_window"},
        {B_HUB, "rms_norm_eps", "1e-6", NULL, NULL, LQ_ERR_CORRUPT, "CFG_CONFLICT", "layernorm_epsilon"},
        {B_HUB, "rope_parameters.full_attention.rope_theta", "5000000", NULL, NULL, LQ_ERR_CORRUPT,
         "CFG_CONFLICT", "rope_theta"},
        {B_HUB, "swa_qk_head_dim", "128", NULL, NULL, LQ_ERR_CORRUPT, "CFG_CONFLICT", "swa_head_dim"},
        {B_HUB, "layer_types", "[\"full_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\","
         "\"sliding_attention\",\"full_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\","
         "\"sliding_attention\",\"full_attention\",\"full_attention\"]", NULL, NULL, LQ_ERR_CORRUPT,
         "CFG_CONFLICT", "hybrid_layer_pattern"},
        {B_HUB, "mlp_layer_types", "[\"dense\",\"dense\",\"sparse\",\"sparse\",\"sparse\",\"sparse\",\"sparse\","
         "\"sparse\",\"sparse\",\"sparse\",\"sparse\",\"sparse\"]", NULL, NULL, LQ_ERR_CORRUPT, "CFG_CONFLICT",
         "moe_layer_freq"},
        {B_TR, "partial_rotary_factor", "0.5", NULL, NULL, LQ_ERR_CORRUPT, "CFG_CONFLICT", "partial_rotary_factor"},
        {B_TR, "swa_rope_theta", "20000", NULL, NULL, LQ_ERR_CORRUPT, "CFG_CONFLICT", "swa_rope_theta"},
        {B_PRO, "quantization_config.modules_to_not_convert", "[\"lm_head\"]", NULL, NULL, LQ_ERR_CORRUPT,
         "CFG_CONFLICT", "quantization_config.ignored_layers"},
        /* CFG_VALUE */
        {B_HUB, "num_hidden_layers", "5000", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "num_hidden_layers"},
        {B_HUB, "num_hidden_layers", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "num_hidden_layers"},
        {B_HUB, "intermediate_size", "-1", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "intermediate_size"},
        {B_HUB, "num_key_value_heads", "3", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "num_key_value_heads"},
        {B_HUB, "swa_num_key_value_heads", "16", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "swa_num_key_value_heads"},
        {B_HUB, "partial_rotary_factor", "0.01", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "partial_rotary_factor"},
        {B_HUB, "partial_rotary_factor", "1.5", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "partial_rotary_factor"},
        {B_HUB, "rope_theta", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "rope_theta"},
        {B_HUB, "layernorm_epsilon", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "layernorm_epsilon"},
        {B_HUB, "attention_value_scale", "-0.707", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "attention_value_scale"},
        {B_HUB, "num_experts_per_tok", "33", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "num_experts_per_tok"},
        {B_HUB, "n_group", "3", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "n_group"},
        {B_HUB, "topk_group", "2", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "topk_group"},
        {B_HUB, "eos_token_id", "152576", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "eos_token_id"},
        {B_HUB, "eos_token_id", "[151645, 152577]", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "eos_token_id"},
        {B_HUB, "pad_token_id", "200000", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "pad_token_id"},
        {B_HUB, "rope_scaling", "{\"rope_type\":\"yarn\",\"factor\":4}", NULL, NULL, LQ_ERR_UNSUPPORTED,
         "CFG_VALUE", "rope_scaling.rope_type"},
        {B_TR, "rope_parameters.full_attention.rope_type", "\"yarn\"", NULL, NULL, LQ_ERR_UNSUPPORTED,
         "CFG_VALUE", "rope_parameters.full_attention.rope_type"},
        {B_HUB, "n_shared_experts", "1", NULL, NULL, LQ_ERR_UNSUPPORTED, "CFG_VALUE", "n_shared_experts"},
        {B_HUB, "scoring_func", "\"softmax\"", NULL, NULL, LQ_ERR_UNSUPPORTED, "CFG_VALUE", "scoring_func"},
        {B_HUB, "hidden_act", "\"gelu\"", NULL, NULL, LQ_ERR_UNSUPPORTED, "CFG_VALUE", "hidden_act"},
        {B_HUB, "attention_bias", "true", NULL, NULL, LQ_ERR_UNSUPPORTED, "CFG_VALUE", "attention_bias"},
        {B_HUB, "attention_projection_layout", "\"fused_qkvo\"", NULL, NULL, LQ_ERR_UNSUPPORTED, "CFG_VALUE",
         "attention_projection_layout"},
        /* Fused qkv over 8 shards cannot hold 4 SWA KV heads per whole shard. */
        {B_PRO, "swa_num_key_value_heads", "4", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "num_key_value_heads"},
        {B_PRO, "quantization_config.weight_block_size", "[0, 128]", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE",
         "quantization_config.weight_block_size"},
        /* Empty and zero values: every size is at least 1, null is no number. */
        {B_HUB, "vocab_size", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "vocab_size"},
        {B_HUB, "hidden_size", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "hidden_size"},
        {B_HUB, "hidden_size", "null", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY", "hidden_size"},
        {B_HUB, "num_attention_heads", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "num_attention_heads"},
        {B_HUB, "num_key_value_heads", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "num_key_value_heads"},
        {B_HUB, "head_dim", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "head_dim"},
        {B_HUB, "swa_v_head_dim", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "swa_v_head_dim"},
        {B_HUB, "n_routed_experts", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "n_routed_experts"},
        {B_HUB, "num_experts_per_tok", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "num_experts_per_tok"},
        {B_HUB, "moe_intermediate_size", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "moe_intermediate_size"},
        {B_HUB, "sliding_window", "0", "sliding_window_size", "0", LQ_ERR_CORRUPT, "CFG_VALUE", "sliding_window"},
        {B_HUB, "hybrid_layer_pattern", "[]", NULL, NULL, LQ_ERR_CORRUPT, "CFG_PATTERN", "hybrid_layer_pattern"},
        {B_HUB, "model_type", "\"\"", NULL, NULL, LQ_ERR_UNSUPPORTED, "CFG_MODEL_TYPE", "model_type"},
        {B_HUB, "n_group", "0", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "n_group"},
        {B_HUB, "n_group", "\"1\"", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY", "n_group"},
        /* Extreme values, one at a time. */
        {B_HUB, "vocab_size", "4294967296", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "vocab_size"},
        {B_HUB, "hidden_size", "1048577", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "hidden_size"},
        {B_HUB, "head_dim", "4097", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "head_dim"},
        {B_HUB, "n_routed_experts", "65537", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "n_routed_experts"},
        {B_HUB, "num_experts_per_tok", "4294967297", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE",
         "num_experts_per_tok"},
        /* 2^64 - 1 is not an exact integer in JSON's double (the strict layer's integers stop at
         * 2^53): a wrong type, not a value. */
        {B_HUB, "num_experts_per_tok", "18446744073709551615", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY",
         "num_experts_per_tok"},
        {B_HUB, "sliding_window", "4294967296", "sliding_window_size", "4294967296", LQ_ERR_CORRUPT, "CFG_VALUE",
         "sliding_window"},
        {B_HUB, "max_position_embeddings", "1e300", NULL, NULL, LQ_ERR_CORRUPT, "CFG_KEY", "max_position_embeddings"},
        /* Heads that do not divide, RoPE dims odd (int(192 x 0.34) = 65). */
        {B_HUB, "num_attention_heads", "7", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "num_key_value_heads"},
        {B_HUB, "swa_num_attention_heads", "6", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "swa_num_key_value_heads"},
        {B_HUB, "partial_rotary_factor", "0.34", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "partial_rotary_factor"},
        /* Group-limited routing over 32 experts, top-8: groups of at least two experts, topk_group
         * <= n_group, and the kept groups must hold top-k experts (16 groups of 2, 2 kept: 4 < 8). */
        {B_HUB, "n_group", "32", "topk_group", "32", LQ_ERR_CORRUPT, "CFG_VALUE", "n_group"},
        {B_HUB, "n_group", "4", "topk_group", "5", LQ_ERR_CORRUPT, "CFG_VALUE", "topk_group"},
        {B_HUB, "n_group", "16", "topk_group", "2", LQ_ERR_CORRUPT, "CFG_VALUE", "num_experts_per_tok"},
        {B_HUB, "n_group", "5", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "n_group"},
        {B_HUB, "topk_group", "65537", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "topk_group"},
        /* Size caps (mimo_config.c): each value in range, their products not. 65536 heads x 192
         * > 2^20; 2147483647 x 256 and 152576 x 2^20 elements > 2^34 in embed_tokens; 11 MoE
         * layers x 65536 experts x 3 x 2^24 x 256 > 2^44 parameters, most in the experts. */
        {B_HUB, "num_attention_heads", "65536", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "num_attention_heads"},
        {B_HUB, "swa_num_attention_heads", "65536", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "swa_num_attention_heads"},
        {B_HUB, "vocab_size", "2147483647", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "vocab_size"},
        {B_HUB, "hidden_size", "1048576", NULL, NULL, LQ_ERR_CORRUPT, "CFG_VALUE", "vocab_size"},
        {B_HUB, "n_routed_experts", "65536", "moe_intermediate_size", "16777216", LQ_ERR_CORRUPT, "CFG_VALUE",
         "n_routed_experts"},
        {B_HUB, "intermediate_size", "16777216", "hidden_size", "4096", LQ_ERR_CORRUPT, "CFG_VALUE",
         "intermediate_size"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const rule_case *rc = &cases[i];
        cJSON *j = rc->base == B_HUB ? parse_text(TINY_HUB) : rc->base == B_TR ? parse_text(TINY_TR) : pro_hub();
        if (!j)
            continue;
        set_path(j, rc->path, rc->value);
        if (rc->path2)
            set_path(j, rc->path2, rc->value2);
        lq_mimo_config c;
        memset(&c, 0xA5, sizeof(c)); /* must come back zeroed */
        lq_error err;
        lq_status st = parse(j, &c, &err);
        char buf[1400];
        lq_error_format(&err, buf, sizeof(buf));
        CHECK_MSG(st == rc->st && strcmp(err.rule, rc->rule) == 0 &&
                      (!rc->key || strcmp(err.tensor, rc->key) == 0),
                  "case %zu (%s = %s): want %s / %s / %s, got %s / %s", i, rc->path,
                  rc->value ? rc->value : "(deleted)", lq_status_str(rc->st), rc->rule,
                  rc->key ? rc->key : "-", lq_status_str(st), buf);
        CHECK_MSG(strcmp(err.file, "config.json") == 0, "case %zu: file %s", i, err.file);
        CHECK_MSG(c.is_swa == NULL && c.is_moe == NULL && c.quant.ignored_layers == NULL &&
                      c.num_hidden_layers == 0,
                  "case %zu: output not zeroed after failure", i);
        if (st == LQ_OK)
            lq_mimo_config_free(&c);
        cJSON_Delete(j);
    }

    /* Accepted edits: nulls with documented meanings, eos as a list, no architectures. */
    static const struct { const char *path, *value; } ok[] = {
        {"attention_value_scale", "null"},
        {"eos_token_id", "[151645, 151643]"},
        {"rope_scaling", "{\"rope_type\":\"default\"}"},
        {"pad_token_id", "null"},
        {"quantization_config", "null"},
        {"architectures", NULL},
        {"n_group", NULL},
        {"topk_group", "null"},
        {"n_group", "2"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cJSON *j = parse_text(TINY_HUB);
        if (!j)
            continue;
        set_path(j, ok[i].path, ok[i].value);
        lq_mimo_config c;
        if (parse_ok(j, &c, ok[i].path)) {
            if (i == 0)
                CHECK_NEAR(c.attention_value_scale, 1.0, 0, 0);
            if (i == 1)
                CHECK(c.n_eos == 2 && c.eos_token_ids[0] == 151645 && c.eos_token_ids[1] == 151643);
            if (i == 3)
                CHECK(c.pad_token_id == -1);
            if (i == 5)
                CHECK_STR(c.architecture, "");
            /* Absent or null grouping keys mean 1; n_group 2 with topk_group 1 is valid for 32
             * experts, top-8 (two groups of 16, one kept: 16 >= 8) and kept as given. */
            if (i == 6 || i == 7)
                CHECK(c.n_group == 1 && c.topk_group == 1);
            if (i == 8)
                CHECK(c.n_group == 2 && c.topk_group == 1);
            lq_mimo_config_free(&c);
        }
        cJSON_Delete(j);
    }

    /* Arguments. */
    lq_mimo_config c;
    lq_error err;
    CHECK(lq_mimo_config_parse(NULL, NULL, &c, &err) == LQ_ERR_INVALID_ARGUMENT);
    cJSON *arr = cJSON_CreateArray();
    CHECK(lq_mimo_config_parse(arr, "x", &c, &err) == LQ_ERR_CORRUPT && strcmp(err.rule, "CFG_KEY") == 0);
    CHECK(lq_mimo_config_parse(arr, "x", NULL, &err) == LQ_ERR_INVALID_ARGUMENT);
    cJSON_Delete(arr);
    lq_mimo_config_free(NULL);
    memset(&c, 0, sizeof(c));
    lq_mimo_config_free(&c);
    CHECK_EQ_U64(lq_mimo_qkv_shards(NULL), 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_mimo_config MKFIXTURE\n");
        return 2;
    }
    test_fixture(argv[1]);
    test_tiny_61();
    test_pro();
    test_dialects();
    test_rules();
    return th_finish("test_mimo_config");
}
