/* Writes the files that tests/output/interop_safetensors.py checks with peer libraries
 * (safetensors, json, zipfile, pickle/pickletools):
 *
 *   <out>/all_dtypes.safetensors       one tensor of every dtype we emit, plus zero-element
 *                                      and scalar tensors and names that need JSON escapes
 *   <out>/sharded/model-0000i-of-0000n.safetensors and model.safetensors.index.json
 *   <out>/single/model.safetensors     a checkpoint that fits one shard (no index)
 *   <out>/mask_embedding.pt            {"mask_token_id": 151669, "embedding": bf16[64]}
 *   <out>/mask_big.pt                  {"mask_token_id": 2**40, "embedding": bf16[70000]}
 *   <out>/mask_neg.pt                  {"mask_token_id": -5, "embedding": bf16[300]}
 *
 * Deterministic bytes (the Python script regenerates them the same way): byte k of the tensor
 * with seed s is ((k * 2654435761 + s * 2654435769 + 12345) mod 2^32) >> 24; for BOOL it is
 * that value & 1. A tensor's seed is its position in the declaration list below (the sharded
 * list starts at seed 100). The bf16 embedding of a mask file is element i =
 * (i * 40503 + 7) mod 2^16.
 *
 * Usage: interop_gen <out-dir>   (the directory must exist). Exit 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "libquant/stwriter.h"
#include "libquant/torchzip.h"

typedef struct spec {
    const char *name;
    lq_dtype dt;
    uint32_t rank;
    uint64_t shape[4];
} spec;

/* Keep in sync with ALL_DTYPES in interop_safetensors.py. */
static const spec ALL[] = {
    {"f32", LQ_DTYPE_F32, 2, {3, 5}},
    {"f16", LQ_DTYPE_F16, 1, {7}},
    {"bf16", LQ_DTYPE_BF16, 3, {2, 3, 4}},
    {"f8_e4m3", LQ_DTYPE_F8_E4M3, 2, {16, 8}},
    {"f8_e5m2", LQ_DTYPE_F8_E5M2, 1, {9}},
    {"f8_e8m0.scale", LQ_DTYPE_F8_E8M0, 2, {4, 2}},
    {"u8.blocks", LQ_DTYPE_U8, 1, {33}},
    {"i8", LQ_DTYPE_I8, 2, {5, 5}},
    {"i32", LQ_DTYPE_I32, 1, {6}},
    {"i64", LQ_DTYPE_I64, 1, {3}},
    {"f64", LQ_DTYPE_F64, 2, {2, 2}},
    {"bool", LQ_DTYPE_BOOL, 1, {10}},
    {"i16", LQ_DTYPE_I16, 1, {3}},
    {"u16", LQ_DTYPE_U16, 1, {2}},
    {"u32", LQ_DTYPE_U32, 1, {2}},
    {"u64", LQ_DTYPE_U64, 1, {2}},
    {"c64", LQ_DTYPE_C64, 1, {2}},
    {"f4.packed", LQ_DTYPE_F4, 2, {4, 6}},
    {"empty.f32", LQ_DTYPE_F32, 2, {0, 4}},
    {"empty.bf16", LQ_DTYPE_BF16, 2, {3, 0}},
    {"scalar.f32", LQ_DTYPE_F32, 0, {0}},
    {"scalar.i64", LQ_DTYPE_I64, 0, {0}},
    {"model.layers.0.mlp.experts.17.down_proj.weight", LQ_DTYPE_BF16, 2, {4, 8}},
    {"esc\"q\\b\n\x01\x7f", LQ_DTYPE_U8, 1, {2}},
    {"utf8.\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", LQ_DTYPE_U8, 1, {3}},
};

/* Keep in sync with SHARDED in interop_safetensors.py (seeds 100 + index). */
static const spec SHARDED[] = {
    {"model.embed_tokens.weight", LQ_DTYPE_BF16, 2, {64, 16}},
    {"model.layers.0.self_attn.q_proj.weight", LQ_DTYPE_BF16, 2, {16, 16}},
    {"model.layers.0.mlp.experts.0.gate_proj.weight_blocks", LQ_DTYPE_U8, 3, {16, 1, 16}},
    {"model.layers.0.mlp.experts.0.gate_proj.weight_scales", LQ_DTYPE_U8, 2, {16, 1}},
    {"model.layers.0.mlp.experts.1.gate_proj.weight_blocks", LQ_DTYPE_U8, 3, {16, 1, 16}},
    {"model.layers.0.mlp.experts.1.gate_proj.weight_scales", LQ_DTYPE_U8, 2, {16, 1}},
    {"model.layers.0.input_layernorm.weight", LQ_DTYPE_F32, 1, {16}},
    {"model.layers.1.self_attn.q_proj.weight", LQ_DTYPE_F8_E4M3, 2, {32, 32}},
    {"model.layers.1.self_attn.q_proj.weight_scale_inv", LQ_DTYPE_F32, 2, {1, 1}},
    {"model.norm.weight", LQ_DTYPE_BF16, 1, {16}},
    {"lm_head.weight", LQ_DTYPE_BF16, 2, {64, 16}},
};
#define SHARD_MAX 1500u

static uint64_t spec_bytes(const spec *s)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < s->rank; i++)
        n *= s->shape[i];
    return lq_dtype_nbytes(s->dt, n, NULL);
}

static void gen_bytes(unsigned char *p, uint64_t n, uint32_t seed, int is_bool)
{
    for (uint64_t k = 0; k < n; k++) {
        uint32_t x = (uint32_t)k * 2654435761u + seed * 2654435769u + 12345u;
        p[k] = (unsigned char)(x >> 24);
        if (is_bool)
            p[k] &= 1;
    }
}

static int fail(const char *what, const lq_error *err)
{
    char buf[1024];
    fprintf(stderr, "interop_gen: %s: %s\n", what, lq_error_format(err, buf, sizeof(buf)));
    return 1;
}

/* Writes the tensors specs[idx[0..n)] (seeds base + idx) to path. */
static int write_file(const char *path, const spec *specs, const size_t *idx, size_t n,
                      uint32_t base, uint64_t *total)
{
    lq_error err;
    lq_stw *w = NULL;
    if (lq_stw_create(path, &w, &err) != LQ_OK)
        return fail(path, &err);
    for (size_t i = 0; i < n; i++) {
        const spec *s = &specs[idx[i]];
        if (lq_stw_add(w, s->name, s->dt, s->rank, s->shape, &err) != LQ_OK) {
            lq_stw_abort(w);
            return fail(path, &err);
        }
    }
    if (lq_stw_begin(w, &err) != LQ_OK) {
        lq_stw_abort(w);
        return fail(path, &err);
    }
    if (total)
        *total += lq_stw_total_size(w);
    /* Stream in layout order; each tensor's seed comes from its declaration index. */
    for (size_t j = 0; j < lq_stw_count(w); j++) {
        const lq_tensor_info *t = lq_stw_tensor(w, j);
        size_t which = 0;
        for (size_t i = 0; i < n; i++)
            if (strcmp(specs[idx[i]].name, t->name) == 0)
                which = idx[i];
        unsigned char *buf = malloc(t->nbytes ? (size_t)t->nbytes : 1);
        if (!buf) {
            lq_stw_abort(w);
            return 1;
        }
        gen_bytes(buf, t->nbytes, base + (uint32_t)which, t->dtype == LQ_DTYPE_BOOL);
        lq_status st = lq_stw_write_tensor(w, t->name, buf, (size_t)t->nbytes, &err);
        free(buf);
        if (st != LQ_OK) {
            lq_stw_abort(w);
            return fail(path, &err);
        }
    }
    if (lq_stw_finish(w, NULL, NULL, &err) != LQ_OK)
        return fail(path, &err);
    return 0;
}

static int write_mask(const char *dir, const char *file, int64_t id, uint64_t h)
{
    lq_error err;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    uint16_t *e = malloc(h * 2);
    if (!e)
        return 1;
    for (uint64_t i = 0; i < h; i++)
        e[i] = (uint16_t)(i * 40503u + 7u);
    char archive[256];
    snprintf(archive, sizeof(archive), "%s", file);
    char *dot = strrchr(archive, '.');
    if (dot)
        *dot = '\0'; /* torch names the folder after the file's stem */
    lq_status st = lq_torchzip_write_mask(path, archive, id, e, h, NULL, &err);
    free(e);
    return st == LQ_OK ? 0 : fail(path, &err);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: interop_gen <out-dir>\n");
        return 2;
    }
    const char *out = argv[1];
    char path[4096];

    size_t nall = sizeof(ALL) / sizeof(ALL[0]);
    size_t idx[64];
    for (size_t i = 0; i < nall; i++)
        idx[i] = i;
    snprintf(path, sizeof(path), "%s/all_dtypes.safetensors", out);
    if (write_file(path, ALL, idx, nall, 0, NULL))
        return 1;

    /* Sharded checkpoint: plan in declaration order, as huggingface_hub does. */
    size_t ns = sizeof(SHARDED) / sizeof(SHARDED[0]);
    uint64_t nbytes[64];
    uint32_t shard_of[64];
    for (size_t i = 0; i < ns; i++)
        nbytes[i] = spec_bytes(&SHARDED[i]);
    uint32_t nshards = lq_shard_plan(nbytes, ns, SHARD_MAX, shard_of);
    snprintf(path, sizeof(path), "%s/sharded", out);
    mkdir(path, 0755);
    static char fnames[64][64];
    const char *names[64], *files[64];
    uint64_t total = 0;
    for (uint32_t s = 0; s < nshards; s++) {
        char fname[64];
        lq_shard_name("model", s, nshards, 1, fname, sizeof(fname));
        size_t m = 0;
        for (size_t i = 0; i < ns; i++)
            if (shard_of[i] == s)
                idx[m++] = i;
        snprintf(path, sizeof(path), "%s/sharded/%s", out, fname);
        if (write_file(path, SHARDED, idx, m, 100, &total))
            return 1;
        for (size_t i = 0; i < ns; i++)
            if (shard_of[i] == s)
                snprintf(fnames[i], sizeof(fnames[i]), "%s", fname);
    }
    for (size_t i = 0; i < ns; i++) {
        names[i] = SHARDED[i].name;
        files[i] = fnames[i];
    }
    lq_error err;
    snprintf(path, sizeof(path), "%s/sharded/model.safetensors.index.json", out);
    if (lq_index_write(path, names, files, ns, total, NULL, NULL, &err) != LQ_OK)
        return fail(path, &err);

    /* A checkpoint that fits one shard keeps the plain name. */
    uint32_t one = lq_shard_plan(nbytes, 3, 5000000000ull, shard_of);
    char fname[64];
    lq_shard_name("model", 0, one, 1, fname, sizeof(fname));
    snprintf(path, sizeof(path), "%s/single", out);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/single/%s", out, fname);
    size_t first3[3] = {0, 1, 2};
    if (write_file(path, SHARDED, first3, 3, 100, NULL))
        return 1;

    if (write_mask(out, "mask_embedding.pt", 151669, 64) ||
        write_mask(out, "mask_big.pt", 1099511627776LL, 70000) ||
        write_mask(out, "mask_neg.pt", -5, 300))
        return 1;
    return 0;
}
