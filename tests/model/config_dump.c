/* config_dump CONFIG_JSON: parses a MiMo config.json with lq_mimo_config_parse and prints every
 * field as "name value" lines (the dialect bits on a line of their own, "dialect N"), so a
 * script can compare two files' structs. Exit 0 parsed, 3 rejected (the error on stderr). */
#include <inttypes.h>
#include <stdio.h>

#include "libquant/libquant.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: config_dump CONFIG_JSON\n");
        return 2;
    }
    cJSON *j = NULL;
    lq_error err;
    lq_mimo_config c;
    char buf[1400];
    if (lq_json_parse_file(argv[1], 0, NULL, &j, &err) != LQ_OK ||
        lq_mimo_config_parse(j, argv[1], &c, &err) != LQ_OK) {
        fprintf(stderr, "config_dump: %s\n", lq_error_format(&err, buf, sizeof(buf)));
        cJSON_Delete(j);
        return 3;
    }
    printf("dialect %u\n", c.dialect);
    printf("model_type %s\narchitecture %s\n", c.model_type, c.architecture);
    printf("vocab_size %u\nhidden_size %u\nnum_hidden_layers %u\n", c.vocab_size, c.hidden_size,
           c.num_hidden_layers);
    printf("is_swa");
    for (uint32_t L = 0; L < c.num_hidden_layers; L++)
        printf(" %u", c.is_swa[L]);
    printf("\nis_moe");
    for (uint32_t L = 0; L < c.num_hidden_layers; L++)
        printf(" %u", c.is_moe[L]);
    printf("\nheads %u %u %u %u\n", c.num_attention_heads, c.num_key_value_heads, c.head_dim,
           c.v_head_dim);
    printf("swa_heads %u %u %u %u\n", c.swa_num_attention_heads, c.swa_num_key_value_heads,
           c.swa_head_dim, c.swa_v_head_dim);
    printf("rope %.17g %.17g %u %u %.17g %.17g\n", c.partial_rotary_factor,
           c.swa_partial_rotary_factor, c.rope_dim, c.swa_rope_dim, c.rope_theta, c.swa_rope_theta);
    printf("sliding_window %u\nsinks %d %d\nattention_value_scale %.17g\n", c.sliding_window,
           c.swa_attention_sink, c.full_attention_sink, c.attention_value_scale);
    printf("max_position_embeddings %" PRIu64 "\n", c.max_position_embeddings);
    printf("mlp %u %u %u %u %u %u %d %.17g %s\n", c.intermediate_size, c.moe_intermediate_size,
           c.n_routed_experts, c.num_experts_per_tok, c.n_group, c.topk_group, c.norm_topk_prob,
           c.routed_scaling_factor, c.scoring_func);
    printf("rms_norm_eps %.17g\ntie_word_embeddings %d\nfused_qkv %d\nqkv_shards %u\n",
           c.rms_norm_eps, c.tie_word_embeddings, c.fused_qkv, lq_mimo_qkv_shards(&c));
    printf("pad %" PRId64 "\neos", c.pad_token_id);
    for (uint32_t i = 0; i < c.n_eos; i++)
        printf(" %" PRId64, c.eos_token_ids[i]);
    printf("\nquant %d %s %s %u %u %zu\n", c.quant.present, c.quant.quant_method, c.quant.fmt,
           c.quant.weight_block_size[0], c.quant.weight_block_size[1], c.quant.n_ignored);
    lq_mimo_config_free(&c);
    cJSON_Delete(j);
    return 0;
}
