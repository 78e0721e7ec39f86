/* lq_inventory_check (libquant/inventory.h) on real artifacts.
 *
 * The tiny fixtures (bf16: split q/k/v; fp8: fused qkv, block-FP8) and their mimo-quantize
 * outputs must give zero issues. Then each rule gets broken copies: one or two tensors dropped,
 * added, retyped or byte-patched (written back through libquant's stwriter as a single
 * model.safetensors), or config.json edited (the shards hard-linked), and each copy must give
 * exactly that rule naming that tensor.
 *
 * Where the expected numbers come from: the geometry is the "tiny" preset of tools/fixture.c
 * (reference/mimo_arch.md 6.1 as cut there: hidden 256, 12 layers with hybrid pattern
 * 0,1,1,1,1,0,1,1,1,1,1,0, layer 0 dense, 8 q heads, 2 full / 4 SWA KV heads, dims 192/128,
 * dense 1024, 16 experts of 64, fused qkv over 2 shards), read through fx_geometry_preset, and
 * the expected counts are derived from it below independently of the checker. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"
#include "libquant/libquant.h"
#include "tools/fixture.h"

static const char *g_mkfixture, *g_quantize;
static char g_root[512];

/* g_root/a, in a ring of buffers so a few can be live at once. */
static const char *D(const char *a)
{
    static char ring[16][1024];
    static unsigned next;
    char *b = ring[next++ % 16];
    snprintf(b, sizeof(ring[0]), "%s/%s", g_root, a);
    return b;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rmtree(const char *path) { nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static int run(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- checking a directory ---- */

static void dump(const lq_inv_result *r)
{
    for (size_t i = 0; i < r->nissues && i < 8; i++)
        fprintf(stderr, "    %s %s: %s\n", r->issues[i].rule, r->issues[i].tensor, r->issues[i].msg);
}

/* Opens dir, parses its config and runs the inventory; 0 on success. */
static int inventory(const char *dir, lq_inv_result *res)
{
    lq_ckpt *ck = NULL;
    lq_mimo_config cfg;
    lq_error err;
    char buf[1024];
    memset(&cfg, 0, sizeof(cfg));
    memset(res, 0, sizeof(*res));
    int rc = -1;
    if (lq_ckpt_open(dir, NULL, &ck, &err) != LQ_OK) {
        fprintf(stderr, "open %s: %s\n", dir, lq_error_format(&err, buf, sizeof(buf)));
        goto cleanup;
    }
    if (lq_mimo_config_parse(lq_ckpt_config(ck), "config.json", &cfg, &err) != LQ_OK) {
        fprintf(stderr, "config %s: %s\n", dir, lq_error_format(&err, buf, sizeof(buf)));
        goto cleanup;
    }
    if (lq_inventory_check(ck, &cfg, res, &err) != LQ_OK) {
        fprintf(stderr, "inventory %s: %s\n", dir, lq_error_format(&err, buf, sizeof(buf)));
        goto cleanup;
    }
    rc = 0;
cleanup:
    lq_mimo_config_free(&cfg);
    lq_ckpt_close(ck);
    return rc;
}

/* Exactly one issue, of `rule`, naming `tensor`, whose message contains `msg_part` (or NULL). */
static void expect_one(const char *dir, const char *rule, const char *tensor, const char *msg_part)
{
    lq_inv_result r;
    int rc = inventory(dir, &r);
    CHECK(rc == 0);
    CHECK_MSG(r.nissues == 1, "%s: %zu issues, expected one %s", dir, r.nissues, rule);
    if (r.nissues >= 1) {
        CHECK_STR(r.issues[0].rule, rule);
        CHECK_STR(r.issues[0].tensor, tensor);
        if (msg_part)
            CHECK_MSG(strstr(r.issues[0].msg, msg_part) != NULL, "message \"%s\" lacks \"%s\"",
                      r.issues[0].msg, msg_part);
    }
    if (r.nissues != 1 || strcmp(r.issues[0].rule, rule) != 0)
        dump(&r);
    lq_inv_result_free(&r);
}

/* ---- making broken copies ---- */

enum { M_DROP, M_SET, M_ADD, M_POKE };

typedef struct mut {
    int op;
    const char *name;
    lq_dtype dt;            /* M_SET / M_ADD: new dtype and shape, zero-filled data */
    uint32_t rank;
    uint64_t shape[2];
    uint64_t off, len;      /* M_POKE: set bytes [off, off + len) of the tensor to val */
    uint8_t val;
} mut;

typedef void (*cfg_edit_fn)(cJSON *root);

static const mut *find_mut(const mut *m, size_t n, const char *name, int op)
{
    for (size_t i = 0; i < n; i++)
        if (m[i].op == op && !strcmp(m[i].name, name))
            return &m[i];
    return NULL;
}

static int write_config(const lq_ckpt *ck, const char *dst, cfg_edit_fn edit)
{
    cJSON *c = cJSON_Duplicate(lq_ckpt_config(ck), 1);
    if (!c)
        return -1;
    if (edit)
        edit(c);
    char *text = cJSON_Print(c);
    cJSON_Delete(c);
    if (!text)
        return -1;
    char path[1024];
    snprintf(path, sizeof(path), "%s/config.json", dst);
    FILE *f = fopen(path, "w");
    int rc = f && fputs(text, f) >= 0 ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    free(text);
    return rc;
}

/* Copies src to dst with the mutations and the config edit. Without mutations the shards and
 * index are hard-linked; otherwise every tensor goes into one model.safetensors. */
static int mutate(const char *src, const char *dst, const mut *m, size_t nm, cfg_edit_fn edit)
{
    lq_ckpt *ck = NULL;
    lq_stw *w = NULL;
    lq_error err;
    int rc = -1;
    uint8_t *buf = NULL;
    if (mkdir(dst, 0755) != 0 || lq_ckpt_open(src, NULL, &ck, &err) != LQ_OK)
        goto cleanup;
    if (write_config(ck, dst, edit) != 0)
        goto cleanup;
    if (nm == 0) {
        DIR *d = opendir(src);
        struct dirent *de;
        if (!d)
            goto cleanup;
        while ((de = readdir(d)) != NULL) {
            size_t n = strlen(de->d_name);
            int shard = n > 12 && !strcmp(de->d_name + n - 12, ".safetensors");
            if (!shard && strcmp(de->d_name, "model.safetensors.index.json") != 0)
                continue;
            char a[1024], b[1024];
            snprintf(a, sizeof(a), "%s/%s", src, de->d_name);
            snprintf(b, sizeof(b), "%s/%s", dst, de->d_name);
            if (link(a, b) != 0) {
                closedir(d);
                goto cleanup;
            }
        }
        closedir(d);
        rc = 0;
        goto cleanup;
    }
    char out[1024];
    snprintf(out, sizeof(out), "%s/model.safetensors", dst);
    if (lq_stw_create(out, &w, &err) != LQ_OK)
        goto cleanup;
    size_t n = lq_ckpt_count(ck);
    for (size_t i = 0; i < n; i++) {
        const lq_tensor_info *t = lq_ckpt_at(ck, i).info;
        if (find_mut(m, nm, t->name, M_DROP))
            continue;
        const mut *s = find_mut(m, nm, t->name, M_SET);
        if (s ? lq_stw_add(w, t->name, s->dt, s->rank, s->shape, &err)
              : lq_stw_add(w, t->name, t->dtype, t->rank, t->shape, &err))
            goto cleanup;
    }
    for (size_t i = 0; i < nm; i++)
        if (m[i].op == M_ADD && lq_stw_add(w, m[i].name, m[i].dt, m[i].rank, m[i].shape, &err))
            goto cleanup;
    if (lq_stw_begin(w, &err) != LQ_OK)
        goto cleanup;
    for (size_t i = 0; i < lq_stw_count(w); i++) {
        const lq_tensor_info *t = lq_stw_tensor(w, i);
        lq_ckpt_tensor ct;
        int from_src = !find_mut(m, nm, t->name, M_SET) && !find_mut(m, nm, t->name, M_ADD) &&
                       lq_ckpt_find(ck, t->name, &ct) == 0;
        buf = calloc(1, t->nbytes ? t->nbytes : 1);
        if (!buf)
            goto cleanup;
        if (from_src)
            memcpy(buf, lq_st_data(ct.file, ct.info), t->nbytes);
        for (size_t k = 0; k < nm; k++)
            if (m[k].op == M_POKE && !strcmp(m[k].name, t->name) && m[k].off + m[k].len <= t->nbytes)
                memset(buf + m[k].off, m[k].val, m[k].len);
        if (lq_stw_write_tensor(w, t->name, buf, t->nbytes, &err) != LQ_OK)
            goto cleanup;
        free(buf);
        buf = NULL;
    }
    lq_stw *fin = w;
    w = NULL;
    if (lq_stw_finish(fin, NULL, NULL, &err) != LQ_OK)
        goto cleanup;
    rc = 0;
cleanup:
    if (rc != 0)
        fprintf(stderr, "mutate %s -> %s failed: %s %s\n", src, dst, err.rule, err.msg);
    free(buf);
    lq_stw_abort(w);
    lq_ckpt_close(ck);
    return rc;
}

/* A broken copy named `tag` of fixture `src`, checked for exactly one issue. */
static void broken(const char *src, const char *tag, const mut *m, size_t nm, cfg_edit_fn edit,
                   const char *rule, const char *tensor, const char *msg_part)
{
    const char *dst = D(tag);
    if (mutate(D(src), dst, m, nm, edit) != 0) {
        CHECK_MSG(0, "could not write %s", tag);
        return;
    }
    expect_one(dst, rule, tensor, msg_part);
    rmtree(dst);
}

#define NM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- config edits ---- */

static void quant_set(cJSON *root, const char *key, cJSON *val)
{
    cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    cJSON_DeleteItemFromObjectCaseSensitive(q, key);
    cJSON_AddItemToObject(q, key, val);
}
static void cfg_store_fp8(cJSON *r) { quant_set(r, "store_dtype", cJSON_CreateString("fp8")); }
static void cfg_block_64(cJSON *r) { quant_set(r, "mxfp4_block_size", cJSON_CreateNumber(64)); }
static void cfg_no_quant(cJSON *r) { cJSON_DeleteItemFromObjectCaseSensitive(r, "quantization_config"); }
static void cfg_ignore_gate(cJSON *r)
{
    cJSON *q = cJSON_GetObjectItemCaseSensitive(r, "quantization_config");
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(q, "ignored_layers"),
                         cJSON_CreateString("model.layers.0.mlp.gate_proj"));
}
static void cfg_tied(cJSON *r) { cJSON_ReplaceItemInObjectCaseSensitive(r, "tie_word_embeddings", cJSON_CreateTrue()); }
static void cfg_full_sinks(cJSON *r)
{
    cJSON_ReplaceItemInObjectCaseSensitive(r, "add_full_attention_sink_bias", cJSON_CreateTrue());
}
static void cfg_64_experts(cJSON *r) { cJSON_ReplaceItemInObjectCaseSensitive(r, "n_routed_experts", cJSON_CreateNumber(64)); }

/* ---- cases ---- */

/* Tensor count the tiny config calls for, from the geometry (inventory.h's list). */
static size_t expected_count(const fx_geometry *g, int fused)
{
    size_t n = 3; /* embed, lm_head, final norm */
    for (uint32_t L = 0; L < g->layers; L++) {
        n += 2 + (fused ? 1 : 3) + 1;          /* norms, q/k/v or qkv, o_proj */
        n += g->hybrid[L] ? 1 : 0;              /* sink on SWA layers only */
        n += g->moe[L] ? 2 + 3 * (size_t)g->experts : 3;
    }
    return n;
}

static void test_clean(const fx_geometry *g)
{
    size_t moe_layers = 0, dense_layers = 0;
    for (uint32_t L = 0; L < g->layers; L++)
        g->moe[L] ? moe_layers++ : dense_layers++;
    size_t experts = moe_layers * g->experts * 3;   /* 11 * 16 * 3 = 528 */
    struct { const char *dir; int fused; size_t mx, fp8; } c[] = {
        {"bf16", 0, 0, 0},
        /* fp8 fixture: every linear but o_proj, embeddings and lm_head is FP8 (mkfixture.c) */
        {"fp8", 1, 0, g->layers + dense_layers * 3 + experts},
        {"bf16q", 0, experts, 0},
        {"fp8q", 1, experts, g->layers + dense_layers * 3},
    };
    for (size_t i = 0; i < NM(c); i++) {
        lq_inv_result r;
        CHECK(inventory(D(c[i].dir), &r) == 0);
        CHECK_MSG(r.nissues == 0, "%s: %zu issues", c[i].dir, r.nissues);
        dump(&r);
        CHECK_EQ_U64(r.expected, expected_count(g, c[i].fused));
        CHECK_EQ_U64(r.present, r.expected);
        CHECK_EQ_U64(r.mxfp4_weights, c[i].mx);
        CHECK_EQ_U64(r.fp8_weights, c[i].fp8);
        CHECK_EQ_U64(r.mtp, 0);
        lq_inv_result_free(&r);
    }
}

static void test_arguments(void)
{
    lq_inv_result r;
    lq_error err;
    lq_mimo_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    CHECK(lq_inventory_check(NULL, &cfg, &r, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_EQ_U64(r.nissues, 0);
    CHECK(r.issues == NULL);
    lq_inv_result_free(NULL);
}

static void test_broken(const fx_geometry *g)
{
    const uint64_t H = g->hidden, I = g->moe_intermediate;
    /* layer 2 is SWA (4 KV heads), layer 0 global and dense: tools/fixture.c tiny */
    const mut drop_expert[] = {{M_DROP, "model.layers.3.mlp.experts.7.up_proj.weight", 0, 0, {0}, 0, 0, 0}};
    broken("bf16", "missing", drop_expert, 1, NULL, "INV_MISSING",
           "model.layers.3.mlp.experts.7.up_proj.weight", NULL);
    /* add_full_attention_sink_bias: every global layer (hybrid 0: layers 0, 5, 11) lacks its sink */
    {
        lq_inv_result fr;
        CHECK(mutate(D("bf16"), D("full-sinks"), NULL, 0, cfg_full_sinks) == 0);
        CHECK(inventory(D("full-sinks"), &fr) == 0);
        size_t globals = 0;
        for (uint32_t L = 0; L < g->layers; L++)
            globals += !g->hybrid[L];
        CHECK_EQ_U64(fr.nissues, globals);
        for (size_t i = 0; i < fr.nissues; i++) {
            CHECK_STR(fr.issues[i].rule, "INV_MISSING");
            unsigned L = 99;
            CHECK(sscanf(fr.issues[i].tensor, "model.layers.%u.self_attn.attention_sink_bias", &L) == 1);
            CHECK(L < g->layers && g->hybrid[L] == 0);
        }
        lq_inv_result_free(&fr);
        rmtree(D("full-sinks"));
    }

    const mut sink0[] = {{M_ADD, "model.layers.0.self_attn.attention_sink_bias", LQ_DTYPE_BF16, 1, {g->heads, 0}, 0, 0, 0}};
    broken("bf16", "sink-global", sink0, 1, NULL, "INV_UNEXPECTED",
           "model.layers.0.self_attn.attention_sink_bias", NULL);
    const mut extra[] = {{M_ADD, "model.layers.1.mlp.experts.16.gate_proj.weight", LQ_DTYPE_BF16, 2, {I, H}, 0, 0, 0}};
    broken("bf16", "extra-expert", extra, 1, NULL, "INV_UNEXPECTED",
           "model.layers.1.mlp.experts.16.gate_proj.weight", NULL);
    broken("bf16", "tied", NULL, 0, cfg_tied, "INV_UNEXPECTED", "lm_head.weight", NULL);

    /* SWA layer 2 k_proj written with the global layer's 2 KV heads: [2*192, 256], not [4*192, 256] */
    const mut kshape[] = {{M_SET, "model.layers.2.self_attn.k_proj.weight", LQ_DTYPE_BF16, 2,
                           {(uint64_t)g->kv_full * g->head_dim, H}, 0, 0, 0}};
    broken("bf16", "shape", kshape, 1, NULL, "INV_SHAPE", "model.layers.2.self_attn.k_proj.weight", "[768, 256]");
    /* MXFP4 [N, K/4] instead of [N, K/2] */
    const mut mxshape[] = {{M_SET, "model.layers.4.mlp.experts.1.gate_proj.weight", LQ_DTYPE_U8, 2, {I, H / 4}, 0, 0, 0}};
    broken("bf16q", "mx-shape", mxshape, 1, NULL, "INV_SHAPE", "model.layers.4.mlp.experts.1.gate_proj.weight", "[64, 128]");

    const mut normdt[] = {{M_SET, "model.norm.weight", LQ_DTYPE_I16, 1, {H, 0}, 0, 0, 0}};
    broken("bf16", "dtype", normdt, 1, NULL, "INV_DTYPE", "model.norm.weight", "I16");
    const mut odt[] = {{M_SET, "model.layers.5.self_attn.o_proj.weight", LQ_DTYPE_U8, 2,
                        {H, (uint64_t)g->heads * g->v_head_dim / 2}, 0, 0, 0}};
    broken("bf16q", "dtype-u8", odt, 1, NULL, "INV_DTYPE", "model.layers.5.self_attn.o_proj.weight", NULL);

    const mut noinv[] = {{M_DROP, "model.layers.0.mlp.gate_proj.weight_scale_inv", 0, 0, {0}, 0, 0, 0}};
    broken("fp8", "scale-missing", noinv, 1, NULL, "INV_SCALE_MISSING", "model.layers.0.mlp.gate_proj.weight", NULL);
    const mut nomx[] = {{M_DROP, "model.layers.6.mlp.experts.3.down_proj.weight_scale", 0, 0, {0}, 0, 0, 0}};
    broken("bf16q", "mx-scale-missing", nomx, 1, NULL, "INV_SCALE_MISSING",
           "model.layers.6.mlp.experts.3.down_proj.weight", NULL);

    /* global layer 0's fused qkv [8*192 + 2*(192+128), 256] = [2176, 256] has grid [18, 2]
     * (2 shards x ceil(1088/128) rows); 3 column blocks where ceil(256/128) = 2 fit no grid */
    const mut qkvsc[] = {{M_SET, "model.layers.0.self_attn.qkv_proj.weight_scale_inv", LQ_DTYPE_F32, 2, {18, 3}, 0, 0, 0}};
    broken("fp8", "scale-shape", qkvsc, 1, NULL, "INV_SCALE_SHAPE", "model.layers.0.self_attn.qkv_proj.weight_scale_inv", NULL);
    /* dense gate_proj [1024, 256] needs the uniform [8, 2]; [16, 2] fits only a 16-shard grid */
    const mut gsc[] = {{M_SET, "model.layers.0.mlp.gate_proj.weight_scale_inv", LQ_DTYPE_F32, 2, {16, 2}, 0, 0, 0}};
    broken("fp8", "scale-uniform", gsc, 1, NULL, "INV_SCALE_SHAPE", "model.layers.0.mlp.gate_proj.weight_scale_inv", "uniform");
    const mut mxsc[] = {{M_SET, "model.layers.7.mlp.experts.0.up_proj.weight_scale", LQ_DTYPE_U8, 2, {I, H / 64}, 0, 0, 0}};
    broken("bf16q", "mx-scale-shape", mxsc, 1, NULL, "INV_SCALE_SHAPE", "model.layers.7.mlp.experts.0.up_proj.weight_scale", "[64, 8]");

    const mut invdt[] = {{M_SET, "model.layers.0.mlp.down_proj.weight_scale_inv", LQ_DTYPE_F16, 2, {2, 8}, 0, 0, 0}};
    broken("fp8", "scale-dtype", invdt, 1, NULL, "INV_SCALE_DTYPE", "model.layers.0.mlp.down_proj.weight_scale_inv", "F16");
    const mut mxdt[] = {{M_SET, "model.layers.8.mlp.experts.5.gate_proj.weight_scale", LQ_DTYPE_F8_E8M0, 2, {I, H / 32}, 0, 0, 0}};
    broken("bf16q", "mx-scale-dtype", mxdt, 1, NULL, "INV_SCALE_DTYPE", "model.layers.8.mlp.experts.5.gate_proj.weight_scale", NULL);

    /* 0xFF bytes in rows 5 and 9 of a [64, 8] scale: offsets 5*8+2 and 9*8 */
    const mut nan[] = {{M_POKE, "model.layers.9.mlp.experts.2.gate_proj.weight_scale", 0, 0, {0}, 5 * 8 + 2, 1, 0xFF},
                       {M_POKE, "model.layers.9.mlp.experts.2.gate_proj.weight_scale", 0, 0, {0}, 9 * 8, 1, 0xFF}};
    broken("bf16q", "scale-nan", nan, NM(nan), NULL, "INV_SCALE_NAN",
           "model.layers.9.mlp.experts.2.gate_proj.weight_scale", "scale: 2, first row 5");

    /* down_proj [256, 64]: weight row 3 is 32 bytes, scale row 3 is 2 bytes */
    const char *dw = "model.layers.4.mlp.experts.2.down_proj.weight", *ds = "model.layers.4.mlp.experts.2.down_proj.weight_scale";
    const mut zero[] = {{M_POKE, dw, 0, 0, {0}, 3 * (I / 2), I / 2, 0}, {M_POKE, ds, 0, 0, {0}, 3 * (I / 32), I / 32, 0},
                        /* controls, not counted: row 7 zero scales only, row 8 zero weights only */
                        {M_POKE, ds, 0, 0, {0}, 7 * (I / 32), I / 32, 0}, {M_POKE, dw, 0, 0, {0}, 8 * (I / 2), I / 2, 0}};
    broken("bf16q", "zero-row", zero, NM(zero), NULL, "INV_SCALE_ZERO_ROW", dw, "weights (a silently zeroed expert): 1, first row 3");

    /* quantization_config */
    broken("bf16q", "store-fp8", NULL, 0, cfg_store_fp8, "INV_QUANT_CONFIG",
           "model.layers.1.mlp.experts.0.down_proj.weight", "528 MXFP4");
    const mut unmx[] = {{M_SET, "model.layers.10.mlp.experts.9.up_proj.weight", LQ_DTYPE_BF16, 2, {I, H}, 0, 0, 0},
                        {M_DROP, "model.layers.10.mlp.experts.9.up_proj.weight_scale", 0, 0, {0}, 0, 0, 0}};
    broken("bf16q", "expert-bf16", unmx, NM(unmx), NULL, "INV_QUANT_CONFIG", "model.layers.10.mlp.experts.9.up_proj.weight", NULL);
    broken("fp8", "no-quant", NULL, 0, cfg_no_quant, "INV_QUANT_CONFIG", "model.layers.0.mlp.down_proj.weight", NULL);
    broken("fp8", "ignored-fp8", NULL, 0, cfg_ignore_gate, "INV_QUANT_CONFIG", "model.layers.0.mlp.gate_proj.weight", "ignored_layers");
    broken("bf16q", "block-64", NULL, 0, cfg_block_64, "INV_QUANT_CONFIG", "quantization_config.mxfp4_block_size", "64");

    /* MTP tensors are allowed and counted */
    const mut mtp[] = {{M_ADD, "model.mtp.layers.0.enorm.weight", LQ_DTYPE_BF16, 1, {H, 0}, 0, 0, 0}};
    CHECK(mutate(D("bf16"), D("mtp"), mtp, 1, NULL) == 0);
    lq_inv_result r;
    CHECK(inventory(D("mtp"), &r) == 0);
    CHECK_EQ_U64(r.nissues, 0);
    CHECK_EQ_U64(r.mtp, 1);
    lq_inv_result_free(&r);
    rmtree(D("mtp"));

    /* 64 experts in the config, 16 in the shards: per MoE layer 48*3 experts missing and the
     * router weight and bias mis-shaped: 11 * (144 + 2) = 1606 issues, capped at 1000 + INV_MORE */
    CHECK(mutate(D("bf16"), D("many"), NULL, 0, cfg_64_experts) == 0);
    CHECK(inventory(D("many"), &r) == 0);
    CHECK_EQ_U64(r.nissues, LQ_INV_MAX_ISSUES + 1);
    if (r.nissues == LQ_INV_MAX_ISSUES + 1) {
        CHECK_STR(r.issues[LQ_INV_MAX_ISSUES].rule, "INV_MORE");
        CHECK_STR(r.issues[LQ_INV_MAX_ISSUES].msg, "and 606 more issues");
        size_t shape = 0, missing = 0;
        for (size_t i = 0; i < LQ_INV_MAX_ISSUES; i++) {
            shape += !strcmp(r.issues[i].rule, "INV_SHAPE");
            missing += !strcmp(r.issues[i].rule, "INV_MISSING");
        }
        /* shape issues come first (checkpoint order), missing ones fill the rest */
        CHECK_EQ_U64(shape, 22);
        CHECK_EQ_U64(missing, 978);
    }
    lq_inv_result_free(&r);
    rmtree(D("many"));
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_inventory MIMO_MKFIXTURE MIMO_QUANTIZE\n");
        return 2;
    }
    g_mkfixture = argv[1];
    g_quantize = argv[2];
    fx_geometry g;
    if (fx_geometry_preset("tiny", &g) != 0)
        return 1;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_root, sizeof(g_root), "%s/mimo-inventory-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_root)) {
        perror("mkdtemp");
        return 1;
    }
    int ok = 1;
    const char *variants[] = {"bf16", "fp8"};
    for (int v = 0; v < 2 && ok; v++) {
        char *fx[] = {(char *)g_mkfixture, "--preset", "tiny", "--variant", (char *)variants[v], "--out",
                      (char *)D(variants[v]), "--no-drafter", "-q", NULL};
        char q[64];
        snprintf(q, sizeof(q), "%sq", variants[v]);
        char *qz[] = {(char *)g_quantize, (char *)D(variants[v]), (char *)D(q),
                      "--threads", "2", "--no-drafter", "-q", NULL};
        ok = run(fx) == 0 && run(qz) == 0;
    }
    CHECK_MSG(ok, "could not build the fixtures");
    if (ok) {
        test_arguments();
        test_clean(&g);
        test_broken(&g);
    }
    rmtree(g_root);
    return th_finish("inventory");
}
