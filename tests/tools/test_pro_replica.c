/* mimo-mkfixture --preset pro: a header-true, data-sparse replica of MiMo-V2.5-Pro's FP8
 * checkpoint, checked against the reference's inventory.
 *
 * usage: test_pro_replica MKFIXTURE
 *
 * Expected values come from reference/mimo_arch.md: 4.1 (the V2.5-Pro table: 159,581 tensors,
 * every name pattern with its shape and dtype), 2.1 (config values), 2.2 (global layers
 * {0, 7, 15, 23, 31, 39, 47, 55, 62, 69}, sinks on the other 60), 2.3 (ignored_layers: 70 o_proj
 * plus model.decoder.self_attn.o_proj), 3.9 (MTP names), 4 (file names) and 4.4 (the per-shard
 * FP8 grid: 8 x ceil(3392 / 128) = 216 rows for the 27136-row qkv).
 *
 * 1. `--preset pro --variant fp8 --sparse` exits 0; the strict checkpoint reader opens it (index
 *    and shard headers cross-checked both ways, metadata.total_size checked); the index's
 *    weight_map and the reader both hold exactly 159,581 tensors.
 * 2. Spot checks of every row of the 4.1 table (names, shapes, dtypes) at the first, a middle and
 *    the last layer and expert, and for each MTP layer; no layer 70, expert 384 or MTP layer 3.
 * 3. attention_sink_bias on exactly the 60 SWA layers; the config's pattern is 2.2's.
 * 4. Tensor bytes: 1,033,369,538,304, the sum of the 4.1 table's shapes times dtype sizes (worked
 *    out by hand: 1,000,190,509,056 of routed-expert weights, 244,187,136 of their scales,
 *    2,463,635,712 for the 3 MTP layers, the rest the backbone), also the total_size public notes
 *    record for the real index. The files take under 64 MB of disk beyond the FP8 scale grids
 *    (sparse: headers, and the scale grids written as 1.0 so that the replica converts).
 * 5. Files: 34 (model_pp0_ep{0..31}_shard0, model_pp0_ep0_shard1, model_mtp), model_mtp holds
 *    exactly the 48 model.mtp.* tensors and nothing else, EP ranks 1..31 hold only experts, 12
 *    experts per rank (384 / 32).
 * 6. The config parses (libquant's mimo_config) and the loader-contract inventory check that
 *    mimo-verify runs finds no issue: 79,972 expected tensors present, 79,561 FP8 weights, 48 MTP
 *    tensors counted.
 * 7. --sparse writes the headers the generating writer writes: the tiny FP8 preset written both
 *    ways has byte-identical headers, file sizes and index. */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"
#include "libquant/libquant.h"

static int run(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* rank 1: d1 ignored */
static void need(const lq_ckpt *ck, const char *name, lq_dtype dt, uint32_t rank, uint64_t d0,
                 uint64_t d1)
{
    lq_ckpt_tensor t;
    if (lq_ckpt_find(ck, name, &t) != 0) {
        TH_REPORT("missing tensor %s", name);
        return;
    }
    const lq_tensor_info *ti = t.info;
    CHECK_MSG(ti->dtype == dt && ti->rank == rank && ti->shape[0] == d0 && (rank < 2 || ti->shape[1] == d1),
              "%s: got %s rank %u [%llu, %llu], want %s rank %u [%llu, %llu]", name,
              lq_dtype_name(ti->dtype), ti->rank, (unsigned long long)ti->shape[0],
              (unsigned long long)(ti->rank > 1 ? ti->shape[1] : 0), lq_dtype_name(dt), rank,
              (unsigned long long)d0, (unsigned long long)d1);
}

static void absent(const lq_ckpt *ck, const char *name)
{
    lq_ckpt_tensor t;
    CHECK_MSG(lq_ckpt_find(ck, name, &t) != 0, "unexpected tensor %s", name);
}

/* An FP8 weight [r, c] and its F32 weight_scale_inv [sr, sc]. */
static void need_fp8(const lq_ckpt *ck, const char *name, uint64_t r, uint64_t c, uint64_t sr, uint64_t sc)
{
    char s[320];
    need(ck, name, LQ_DTYPE_F8_E4M3, 2, r, c);
    snprintf(s, sizeof(s), "%s_scale_inv", name);
    need(ck, s, LQ_DTYPE_F32, 2, sr, sc);
}

static const unsigned global_layers[10] = {0, 7, 15, 23, 31, 39, 47, 55, 62, 69};

static int is_global(unsigned L)
{
    for (int i = 0; i < 10; i++)
        if (global_layers[i] == L)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_pro_replica MKFIXTURE\n");
        return 2;
    }
    char root[] = "/tmp/mimo-pro-replica-XXXXXX", dir[300], cmd[1200], path[700], n[300];
    CHECK(mkdtemp(root) != NULL);
    snprintf(dir, sizeof(dir), "%s/pro", root);

    /* 1. */
    snprintf(cmd, sizeof(cmd), "'%s' --preset pro --variant fp8 --sparse --out '%s' -q > /dev/null", argv[1], dir);
    CHECK_EQ_U64(run(cmd), 0);
    lq_ckpt *ck = NULL;
    lq_error err;
    lq_error_clear(&err);
    if (lq_ckpt_open(dir, NULL, &ck, &err) != LQ_OK) {
        char buf[1400];
        TH_REPORT("open %s: %s", dir, lq_error_format(&err, buf, sizeof(buf)));
        return th_finish("pro_replica");
    }
    CHECK_EQ_U64(lq_ckpt_count(ck), 159581);
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    cJSON *ix = NULL;
    CHECK(lq_json_parse_file(path, 0, NULL, &ix, &err) == LQ_OK);
    const cJSON *wm = ix ? lq_json_get(ix, "weight_map") : NULL;
    CHECK(wm && cJSON_IsObject(wm));
    CHECK_EQ_U64((uint64_t)cJSON_GetArraySize(wm), 159581);

    /* 2. (4.1, row by row) */
    const uint64_t V = 152576, H = 6144;
    need(ck, "model.embed_tokens.weight", LQ_DTYPE_BF16, 2, V, H);
    need(ck, "lm_head.weight", LQ_DTYPE_BF16, 2, V, H);
    need(ck, "model.norm.weight", LQ_DTYPE_BF16, 1, H, 0);
    const unsigned layers[] = {0, 1, 7, 38, 68, 69};
    for (size_t i = 0; i < sizeof(layers) / sizeof(layers[0]); i++) {
        unsigned L = layers[i];
        snprintf(n, sizeof(n), "model.layers.%u.input_layernorm.weight", L);
        need(ck, n, LQ_DTYPE_BF16, 1, H, 0);
        snprintf(n, sizeof(n), "model.layers.%u.post_attention_layernorm.weight", L);
        need(ck, n, LQ_DTYPE_BF16, 1, H, 0);
        snprintf(n, sizeof(n), "model.layers.%u.self_attn.qkv_proj.weight", L);
        need_fp8(ck, n, 27136, H, 216, 48);
        snprintf(n, sizeof(n), "model.layers.%u.self_attn.o_proj.weight", L);
        need(ck, n, LQ_DTYPE_BF16, 2, H, 16384);
        if (L == 0) {
            need_fp8(ck, "model.layers.0.mlp.gate_proj.weight", 16384, H, 128, 48);
            need_fp8(ck, "model.layers.0.mlp.up_proj.weight", 16384, H, 128, 48);
            need_fp8(ck, "model.layers.0.mlp.down_proj.weight", H, 16384, 48, 128);
            absent(ck, "model.layers.0.mlp.gate.weight");
            absent(ck, "model.layers.0.mlp.experts.0.gate_proj.weight");
            continue;
        }
        snprintf(n, sizeof(n), "model.layers.%u.mlp.gate.weight", L);
        need(ck, n, LQ_DTYPE_F32, 2, 384, H);
        snprintf(n, sizeof(n), "model.layers.%u.mlp.gate.e_score_correction_bias", L);
        need(ck, n, LQ_DTYPE_F32, 1, 384, 0);
        const unsigned experts[] = {0, 11, 12, 200, 383};
        for (size_t k = 0; k < sizeof(experts) / sizeof(experts[0]); k++) {
            unsigned e = experts[k];
            snprintf(n, sizeof(n), "model.layers.%u.mlp.experts.%u.gate_proj.weight", L, e);
            need_fp8(ck, n, 2048, H, 16, 48);
            snprintf(n, sizeof(n), "model.layers.%u.mlp.experts.%u.up_proj.weight", L, e);
            need_fp8(ck, n, 2048, H, 16, 48);
            snprintf(n, sizeof(n), "model.layers.%u.mlp.experts.%u.down_proj.weight", L, e);
            need_fp8(ck, n, H, 2048, 48, 16);
        }
        snprintf(n, sizeof(n), "model.layers.%u.mlp.experts.384.gate_proj.weight", L);
        absent(ck, n);
        snprintf(n, sizeof(n), "model.layers.%u.mlp.gate_proj.weight", L);
        absent(ck, n);
    }
    absent(ck, "model.layers.70.input_layernorm.weight");
    for (unsigned k = 0; k < 3; k++) {
        const char *norms[] = {"enorm", "hnorm", "input_layernorm", "pre_mlp_layernorm", "final_layernorm"};
        for (int i = 0; i < 5; i++) {
            snprintf(n, sizeof(n), "model.mtp.layers.%u.%s.weight", k, norms[i]);
            need(ck, n, LQ_DTYPE_BF16, 1, H, 0);
        }
        snprintf(n, sizeof(n), "model.mtp.layers.%u.eh_proj.weight", k);
        need(ck, n, LQ_DTYPE_BF16, 2, H, 12288);
        snprintf(n, sizeof(n), "model.mtp.layers.%u.self_attn.qkv_proj.weight", k);
        need_fp8(ck, n, 27136, H, 216, 48);
        snprintf(n, sizeof(n), "model.mtp.layers.%u.self_attn.o_proj.weight", k);
        need(ck, n, LQ_DTYPE_BF16, 2, H, 16384);
        snprintf(n, sizeof(n), "model.mtp.layers.%u.self_attn.attention_sink_bias", k);
        need(ck, n, LQ_DTYPE_BF16, 1, 128, 0);
        snprintf(n, sizeof(n), "model.mtp.layers.%u.mlp.gate_proj.weight", k);
        need_fp8(ck, n, 16384, H, 128, 48);
        snprintf(n, sizeof(n), "model.mtp.layers.%u.mlp.up_proj.weight", k);
        need_fp8(ck, n, 16384, H, 128, 48);
        snprintf(n, sizeof(n), "model.mtp.layers.%u.mlp.down_proj.weight", k);
        need_fp8(ck, n, H, 16384, 48, 128);
        snprintf(n, sizeof(n), "model.mtp.layers.%u.post_attention_layernorm.weight", k);
        absent(ck, n);
    }
    absent(ck, "model.mtp.layers.3.eh_proj.weight");

    /* 3. */
    unsigned sinks = 0;
    for (unsigned L = 0; L < 70; L++) {
        lq_ckpt_tensor t;
        snprintf(n, sizeof(n), "model.layers.%u.self_attn.attention_sink_bias", L);
        int has = lq_ckpt_find(ck, n, &t) == 0;
        CHECK_MSG(has == !is_global(L), "layer %u: sink %s, but the layer is %s", L, has ? "present" : "absent",
                  is_global(L) ? "global" : "SWA");
        if (has) {
            sinks++;
            CHECK(t.info->dtype == LQ_DTYPE_BF16 && t.info->rank == 1 && t.info->shape[0] == 128);
        }
    }
    CHECK_EQ_U64(sinks, 60);
    const cJSON *cfg = lq_ckpt_config(ck);
    const cJSON *hp = lq_json_get(cfg, "hybrid_layer_pattern");
    CHECK(hp && cJSON_GetArraySize(hp) == 70);
    for (unsigned L = 0; hp && L < 70; L++)
        CHECK_MSG(cJSON_GetArrayItem(hp, (int)L)->valueint == !is_global(L), "hybrid_layer_pattern[%u]", L);
    const cJSON *ign = lq_json_get(lq_json_get(cfg, "quantization_config"), "ignored_layers");
    CHECK(ign && cJSON_GetArraySize(ign) == 71);
    if (ign)
        CHECK_STR(cJSON_GetArrayItem(ign, 70)->valuestring, "model.decoder.self_attn.o_proj");

    /* 4. and 5. */
    uint64_t bytes = 0, scale_bytes = 0;
    for (size_t i = 0; i < lq_ckpt_count(ck); i++) {
        bytes += lq_ckpt_at(ck, i).info->nbytes;
        const char *nm = lq_ckpt_at(ck, i).info->name;
        size_t nl = strlen(nm);
        if (nl > 17 && !strcmp(nm + nl - 17, ".weight_scale_inv"))
            scale_bytes += lq_ckpt_at(ck, i).info->nbytes;
    }
    CHECK_EQ_U64(bytes, 1033369538304ull);
    CHECK_EQ_U64(lq_ckpt_shard_count(ck), 34);
    uint64_t blocks = 0;
    for (size_t s = 0; s < lq_ckpt_shard_count(ck); s++) {
        const char *sn = lq_ckpt_shard_name(ck, s);
        const lq_st_file *f = lq_ckpt_shard(ck, s);
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, sn);
        CHECK(stat(path, &st) == 0);
        blocks += (uint64_t)st.st_blocks * 512;
        unsigned r = 0, m = 0;
        int is_mtp = !strcmp(sn, "model_mtp.safetensors");
        CHECK_MSG(is_mtp || (sscanf(sn, "model_pp0_ep%u_shard%u.safetensors", &r, &m) == 2 && r < 32 &&
                             (m == 0 || (r == 0 && m == 1))), "file name %s", sn);
        size_t nt = lq_st_count(f);
        if (is_mtp)
            CHECK_EQ_U64(nt, 48);
        for (size_t i = 0; i < nt; i++) {
            const char *tn = lq_st_tensor(f, i)->name;
            unsigned L, e;
            int off = 0;
            if (is_mtp) {
                CHECK_MSG(!strncmp(tn, "model.mtp.layers.", 17), "%s in %s", tn, sn);
            } else if (r > 0) {
                CHECK_MSG(sscanf(tn, "model.layers.%u.mlp.experts.%u.%n", &L, &e, &off) == 2 && off > 0 &&
                              e / 12 == r, "%s in %s", tn, sn);
            } else {
                CHECK_MSG(strncmp(tn, "model.mtp.", 10) != 0, "%s in %s", tn, sn);
                if (sscanf(tn, "model.layers.%u.mlp.experts.%u.%n", &L, &e, &off) == 2 && off > 0)
                    CHECK_MSG(e < 12, "%s in %s", tn, sn);
            }
        }
    }
    lq_ckpt_tensor t;
    if (lq_ckpt_find(ck, "lm_head.weight", &t) == 0)
        CHECK_STR(lq_ckpt_shard_name(ck, t.shard), "model_pp0_ep0_shard1.safetensors");
    if (lq_ckpt_find(ck, "model.embed_tokens.weight", &t) == 0)
        CHECK_STR(lq_ckpt_shard_name(ck, t.shard), "model_pp0_ep0_shard0.safetensors");
    CHECK_MSG(blocks < scale_bytes + (64u << 20), "the replica takes %llu bytes of disk, %llu of them scale grids",
              (unsigned long long)blocks, (unsigned long long)scale_bytes);
    printf("pro replica: %zu tensors, %llu bytes of tensors in %zu files, %.1f MB on disk\n", lq_ckpt_count(ck),
           (unsigned long long)bytes, lq_ckpt_shard_count(ck), (double)blocks / 1e6);

    /* 6. */
    lq_mimo_config mc;
    memset(&mc, 0, sizeof(mc));
    if (lq_mimo_config_parse(cfg, "config.json", &mc, &err) != LQ_OK) {
        char buf[1400];
        TH_REPORT("config: %s", lq_error_format(&err, buf, sizeof(buf)));
    } else {
        CHECK_EQ_U64(mc.num_hidden_layers, 70);
        CHECK_EQ_U64(mc.hidden_size, 6144);
        CHECK_EQ_U64(mc.n_routed_experts, 384);
        lq_inv_result r;
        CHECK(lq_inventory_check(ck, &mc, &r, &err) == LQ_OK);
        CHECK_EQ_U64(r.nissues, 0);
        for (size_t i = 0; i < r.nissues && i < 5; i++)
            TH_REPORT("inventory: %s %s: %s", r.issues[i].rule, r.issues[i].tensor, r.issues[i].msg);
        CHECK_EQ_U64(r.expected, 79972);
        CHECK_EQ_U64(r.present, 79972);
        CHECK_EQ_U64(r.fp8_weights, 79561);
        CHECK_EQ_U64(r.mtp, 48);
        lq_inv_result_free(&r);
        lq_mimo_config_free(&mc);
    }
    cJSON_Delete(ix);
    lq_ckpt_close(ck);

    /* 7. */
    char sp[320], gen[320];
    snprintf(sp, sizeof(sp), "%s/tiny-sparse", root);
    snprintf(gen, sizeof(gen), "%s/tiny", root);
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant fp8 --no-drafter --sparse --out '%s' -q > /dev/null && "
             "'%s' --preset tiny --variant fp8 --no-drafter --out '%s' -q > /dev/null", argv[1], sp, argv[1], gen);
    CHECK_EQ_U64(run(cmd), 0);
    DIR *dd = opendir(gen);
    struct dirent *de;
    int files = 0;
    while (dd && (de = readdir(dd)) != NULL) {
        size_t len = strlen(de->d_name);
        int st_file = len > 12 && !strcmp(de->d_name + len - 12, ".safetensors");
        if (!st_file && strcmp(de->d_name, "model.safetensors.index.json") != 0)
            continue;
        char pa[700], pb[700];
        snprintf(pa, sizeof(pa), "%s/%s", sp, de->d_name);
        snprintf(pb, sizeof(pb), "%s/%s", gen, de->d_name);
        FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
        CHECK_MSG(fa && fb, "%s: missing in one of the two fixtures", de->d_name);
        if (fa && fb) {
            uint8_t la[8] = {0};
            uint64_t hl = 0;
            struct stat sa, sb;
            CHECK(fstat(fileno(fa), &sa) == 0 && fstat(fileno(fb), &sb) == 0 && sa.st_size == sb.st_size);
            if (st_file && fread(la, 1, 8, fa) == 8)
                for (int i = 0; i < 8; i++)
                    hl |= (uint64_t)la[i] << (8 * i);
            /* the index is compared whole, a shard through its header */
            size_t want = st_file ? (size_t)(8 + hl) : (size_t)sa.st_size;
            char *ba = malloc(want + 1), *bb = malloc(want + 1);
            rewind(fa);
            CHECK_MSG(ba && bb && want < (64u << 20) && fread(ba, 1, want, fa) == want && fread(bb, 1, want, fb) == want &&
                          memcmp(ba, bb, want) == 0, "%s: sparse and generated headers differ", de->d_name);
            free(ba);
            free(bb);
            files++;
        }
        if (fa)
            fclose(fa);
        if (fb)
            fclose(fb);
    }
    if (dd)
        closedir(dd);
    CHECK_MSG(files >= 2, "tiny fixture: %d files compared", files);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK_EQ_U64(run(cmd), 0);
    return th_finish("pro_replica");
}
