/* libFuzzer target for the model config parser (config.json, libquant/mimo_config.h).
 *
 * Build and run (from the repository root; scripts/fuzz.sh does this for every target):
 *   clang -g -O1 -std=c11 -D_XOPEN_SOURCE=700 -D_DEFAULT_SOURCE -I. -I/usr/include/cjson \
 *     -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     tests/fuzz/fuzz_config.c libquant/mimo_config.c libquant/json.c libquant/status.c \
 *     -lcjson -lm -o build-fuzz/fuzz_config
 *   build-fuzz/fuzz_config -max_total_time=60 -max_len=16384 build-fuzz/work-config \
 *     tests/fuzz/seeds/config
 *
 * The input is the text of config.json. It goes through the strict JSON layer with the limits
 * the checkpoint reader uses for config.json (the defaults), and every tree that parses goes to
 * lq_mimo_config_parse, as mimo-verify, mimo-run and mimo-quantize do with a checkpoint's config.
 *
 * Whatever the input, the parser must not crash or leak; a failure must leave the output zeroed,
 * name the file and carry a CFG_* rule. An accepted config must hold the ranges the header
 * promises (mimo_config.h, "CFG_VALUE"), since the runtime sizes its buffers from them: layers
 * 1..4096 with per-layer flags that are 0/1 and add up to the SWA and MoE counts, every head count
 * divisible by its KV head count, even RoPE dims of at least 2 and at most the head dim, thetas
 * above 1, eps in (0, 0.5], positive finite scales, top-k within the experts, groups dividing the
 * experts, token ids below the vocabulary. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libquant/json.h"
#include "libquant/mimo_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_config: invariant broken: %s\n", what);
    abort();
}

static void check_accepted(const lq_mimo_config *c)
{
    if (strcmp(c->model_type, "mimo_v2_flash") != 0 && strcmp(c->model_type, "mimo_v2") != 0)
        fail("model_type");
    if (c->num_hidden_layers < 1 || c->num_hidden_layers > LQ_MIMO_MAX_LAYERS || !c->is_swa || !c->is_moe)
        fail("layer count or per-layer arrays");
    uint32_t swa = 0, moe = 0;
    for (uint32_t i = 0; i < c->num_hidden_layers; i++) {
        if (c->is_swa[i] > 1 || c->is_moe[i] > 1)
            fail("per-layer flag not 0/1");
        swa += c->is_swa[i];
        moe += c->is_moe[i];
    }
    if (swa != c->num_swa_layers || moe != c->num_moe_layers)
        fail("per-layer counts");
    if (c->vocab_size < 1 || c->hidden_size < 1)
        fail("vocab or hidden size");
    if (c->num_attention_heads < 1 || c->num_key_value_heads < 1 ||
        c->num_attention_heads % c->num_key_value_heads != 0)
        fail("global heads");
    if (c->swa_num_attention_heads < 1 || c->swa_num_key_value_heads < 1 ||
        c->swa_num_attention_heads % c->swa_num_key_value_heads != 0)
        fail("SWA heads");
    if (c->head_dim < 1 || c->v_head_dim < 1 || c->swa_head_dim < 1 || c->swa_v_head_dim < 1)
        fail("head dims");
    if (c->rope_dim < 2 || c->rope_dim % 2 || c->rope_dim > c->head_dim || c->swa_rope_dim < 2 ||
        c->swa_rope_dim % 2 || c->swa_rope_dim > c->swa_head_dim)
        fail("RoPE dims");
    if (!(c->rope_theta > 1) || !(c->swa_rope_theta > 1) || !isfinite(c->rope_theta) ||
        !isfinite(c->swa_rope_theta))
        fail("thetas");
    if (!(c->rms_norm_eps > 0 && c->rms_norm_eps <= 0.5))
        fail("eps");
    if (!(c->attention_value_scale > 0) || !isfinite(c->attention_value_scale) ||
        !(c->routed_scaling_factor > 0) || !isfinite(c->routed_scaling_factor))
        fail("scales");
    if (c->num_moe_layers > 0) {
        if (c->n_routed_experts < 1 || c->num_experts_per_tok < 1 ||
            c->num_experts_per_tok > c->n_routed_experts)
            fail("top-k within the experts");
        if (c->n_group >= 1 && (c->n_routed_experts % c->n_group != 0 || c->topk_group > c->n_group))
            fail("expert groups");
    }
    if (c->n_eos > LQ_MIMO_MAX_EOS)
        fail("eos count");
    for (uint32_t i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] < 0 || c->eos_token_ids[i] >= (int64_t)c->vocab_size)
            fail("eos id");
    if (c->bos_token_id >= (int64_t)c->vocab_size || c->pad_token_id >= (int64_t)c->vocab_size ||
        c->bos_token_id < -1 || c->pad_token_id < -1)
        fail("bos or pad id");
    if (c->quant.n_ignored && !c->quant.ignored_layers)
        fail("ignored layers");
    for (size_t i = 0; i < c->quant.n_ignored; i++)
        if (!c->quant.ignored_layers[i])
            fail("ignored layer string");
    if (lq_mimo_qkv_shards(c) < 1)
        fail("qkv shards");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *root = NULL;
    lq_error err;
    lq_error_clear(&err);
    if (lq_json_parse((const char *)data, size, NULL, "config.json", &root, &err) != LQ_OK) {
        if (root)
            fail("tree on failure");
        return 0;
    }
    lq_mimo_config c, zero;
    memset(&zero, 0, sizeof(zero));
    memset(&c, 0x5a, sizeof(c)); /* the parser must zero it on failure */
    lq_error_clear(&err);
    lq_status st = lq_mimo_config_parse(root, "config.json", &c, &err);
    if (st != LQ_OK) {
        if (memcmp(&c, &zero, sizeof(c)) != 0)
            fail("output not zeroed on failure");
        if (st != LQ_ERR_NO_MEMORY && strncmp(err.rule, "CFG_", 4) != 0)
            fail("rejection without a CFG_ rule");
        if (strcmp(err.file, "config.json") != 0)
            fail("error does not name the file");
    } else {
        check_accepted(&c);
        lq_mimo_config_free(&c);
        if (memcmp(&c, &zero, sizeof(c)) != 0)
            fail("free does not zero");
    }
    cJSON_Delete(root);
    return 0;
}
