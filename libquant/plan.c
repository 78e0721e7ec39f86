/* The conversion plan (plan.h): rules, output names and shapes, shards and the output config. */
#include "plan.h"

#include <fnmatch.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stwriter.h"

static const char *const class_names[LQ_PLAN_NCLASSES] = {
    "routed_experts", "attention", "dense_mlp", "router", "embeddings", "lm_head", "norms", "other"};

const char *lq_plan_class_name(int c)
{
    return c >= 0 && c < LQ_PLAN_NCLASSES ? class_names[c] : "other";
}

int lq_plan_classify(const char *name)
{
    const char *last = strrchr(name, '.');
    const char *leaf_start = name;
    /* The module's own name: the component before ".weight", ".bias", ... */
    if (last && last > name) {
        const char *p = last - 1;
        while (p > name && *p != '.')
            p--;
        leaf_start = *p == '.' ? p + 1 : p;
    }
    if (strstr(name, ".mlp.experts."))
        return 0;
    if (strstr(name, ".self_attn."))
        return 1;
    if (strstr(name, ".mlp.gate.") || strstr(name, ".mlp.gate_weight"))
        return 3;
    if (strstr(name, ".mlp."))
        return 2;
    if (strstr(name, "embed_tokens"))
        return 4;
    if (strncmp(name, "lm_head", 7) == 0)
        return 5;
    if (strstr(leaf_start, "norm"))
        return 6;
    return 7;
}

void lq_plan_layer_key(const char *name, char *out, size_t cap)
{
    const char *p = name ? strstr(name, "layers.") : NULL;
    const char *q = p ? p + 7 : NULL;
    while (q && *q >= '0' && *q <= '9')
        q++;
    if (!p || q == p + 7)
        snprintf(out, cap, "other");
    else
        snprintf(out, cap, "%.*s", (int)(q - name), name);
}

int lq_pattern_match(const char *pattern, const char *name)
{
    if (strncmp(pattern, "re:", 3) == 0) {
        size_t n = strlen(pattern + 3);
        char *full = malloc(n + 5);
        if (!full)
            return -1;
        /* Full match, as users of tensor-name regexes expect (compressed-tensors anchors only the
         * start, which surprises; we anchor both ends and say so). */
        full[0] = '^';
        full[1] = '(';
        memcpy(full + 2, pattern + 3, n);
        memcpy(full + 2 + n, ")$", 3);
        regex_t re;
        int rc = regcomp(&re, full, REG_EXTENDED | REG_NOSUB);
        free(full);
        if (rc != 0)
            return -1;
        int m = regexec(&re, name, 0, NULL, 0) == 0;
        regfree(&re);
        return m;
    }
    int rc = fnmatch(pattern, name, 0);
    return rc == 0 ? 1 : (rc == FNM_NOMATCH ? 0 : -1);
}

/* ---- helpers ---- */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

static int is_float(lq_dtype d)
{
    return d == LQ_DTYPE_BF16 || d == LQ_DTYPE_F16 || d == LQ_DTYPE_F32;
}

static int is_fp8(lq_dtype d)
{
    return d == LQ_DTYPE_F8_E4M3 || d == LQ_DTYPE_F8_E5M2;
}

/* `*.mlp.experts.<digits>.{gate,up,down}_proj.weight` */
static int is_routed_expert(const char *name)
{
    const char *p = strstr(name, ".mlp.experts.");
    if (!p)
        return 0;
    p += strlen(".mlp.experts.");
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    return !strcmp(p, ".gate_proj.weight") || !strcmp(p, ".up_proj.weight") || !strcmp(p, ".down_proj.weight");
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

/* Source tensors in source order: shard by shard as the checkpoint lists them, then by offset. */
typedef struct src_ref {
    lq_ckpt_tensor t;
    size_t at;      /* index in the checkpoint (lq_ckpt_at) */
    int decision;   /* 1 quantize, 0 keep */
    int dropped;
    int passthrough;
    int fp8_scale_of_quant;
} src_ref;

static int cmp_offset(const void *a, const void *b)
{
    const src_ref *x = a, *y = b;
    if (x->t.shard != y->t.shard)
        return x->t.shard < y->t.shard ? -1 : 1;
    return x->t.info->begin < y->t.info->begin ? -1 : (x->t.info->begin > y->t.info->begin ? 1 : 0);
}

/* The source tensor called name, in refs (source order). pos maps a checkpoint index (name
 * order, lq_ckpt_at) to its place in refs, so a lookup is one binary search. */
static src_ref *find_ref(src_ref *refs, const size_t *pos, const lq_ckpt *ck, const char *name)
{
    size_t i = lq_ckpt_index(ck, name);
    return i == SIZE_MAX ? NULL : &refs[pos[i]];
}

void lq_plan_free(lq_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nname_blocks; i++)
        free(p->name_blocks[i]);
    free(p->name_blocks);
    free(p->qshapes);
    free(p->grids);
    free(p->t);
    for (uint32_t i = 0; i < p->nshards; i++)
        free(p->shard_names[i]);
    free(p->shard_names);
    free(p->shard_bytes);
    for (size_t i = 0; i < p->ndropped; i++)
        free(p->dropped[i]);
    free(p->dropped);
    cJSON_Delete(p->config);
    free(p);
}

/* a + b in the plan's name storage (blocks of 256 KiB: one allocation per name would cost more
 * than the name). */
static const char *plan_name(lq_plan *p, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), n = la + lb + 1;
    if (!p->nname_blocks || p->name_used + n > p->name_cap) {
        size_t cap = n > ((size_t)256 << 10) ? n : ((size_t)256 << 10);
        char **nb = realloc(p->name_blocks, (p->nname_blocks + 1) * sizeof(*nb));
        if (!nb)
            return NULL;
        p->name_blocks = nb;
        if (!(nb[p->nname_blocks] = malloc(cap)))
            return NULL;
        p->nname_blocks++;
        p->name_used = 0;
        p->name_cap = cap;
    }
    char *d = p->name_blocks[p->nname_blocks - 1] + p->name_used;
    memcpy(d, a, la);
    memcpy(d + la, b, lb + 1);
    p->name_used += n;
    return d;
}

/* The module name of a weight tensor ("x.y.weight" -> "x.y"). */
static char *module_of(const char *name)
{
    size_t n = strlen(name);
    if (n > 7 && !strcmp(name + n - 7, ".weight"))
        n -= 7;
    char *m = malloc(n + 1);
    if (m) {
        memcpy(m, name, n);
        m[n] = 0;
    }
    return m;
}

/* Output config.json: the source config with quantization_config rewritten (plan.h). */
static lq_status build_config(const lq_ckpt *src, lq_plan *p, const src_ref *refs, size_t nrefs,
                              int all_quant_are_experts, int fp8_remains, lq_error *err)
{
    const cJSON *cfg = lq_ckpt_config(src);
    cJSON *c = cfg ? cJSON_Duplicate(cfg, 1) : cJSON_CreateObject();
    if (!c)
        return lq_fail(err, LQ_ERR_NO_MEMORY, lq_ckpt_dir(src), NULL, NULL, "out of memory");
    cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(c, "quantization_config");
    cJSON *q = NULL;
    if (p->layout == LQ_LAYOUT_MIMO) {
        /* MiMo-V2.5-Pro-FP4-DFlash: quant_method fp8 with store_dtype mxfp4 (mimo_arch.md 2.3,
         * 4.5). A BF16 source gets the same form with every BF16 linear in ignored_layers, the
         * encoding an FP8 loader reads as "not quantized". */
        if (old && cJSON_IsObject(old)) {
            q = old;
            old = NULL;
        } else {
            q = cJSON_CreateObject();
            cJSON_AddStringToObject(q, "activation_scheme", "dynamic");
            cJSON_AddStringToObject(q, "fmt", "e4m3");
            cJSON_AddStringToObject(q, "quant_method", "fp8");
            cJSON *blk = cJSON_CreateArray();
            cJSON_AddItemToArray(blk, cJSON_CreateNumber(128));
            cJSON_AddItemToArray(blk, cJSON_CreateNumber(128));
            cJSON_AddItemToObject(q, "weight_block_size", blk);
            cJSON *ign = cJSON_CreateArray();
            for (size_t i = 0; i < nrefs; i++) {
                const lq_tensor_info *ti = refs[i].t.info;
                if (refs[i].decision || refs[i].passthrough || ti->rank != 2 || !is_float(ti->dtype) ||
                    !ends_with(ti->name, ".weight") || strstr(ti->name, "embed_tokens") ||
                    !strncmp(ti->name, "lm_head", 7))
                    continue;
                char *m = module_of(ti->name);
                if (m)
                    cJSON_AddItemToArray(ign, cJSON_CreateString(m));
                free(m);
            }
            cJSON_AddItemToObject(q, "ignored_layers", ign);
        }
        cJSON_DeleteItemFromObjectCaseSensitive(q, "store_dtype");
        cJSON_DeleteItemFromObjectCaseSensitive(q, "mxfp4_block_size");
        cJSON_AddStringToObject(q, "store_dtype", "mxfp4");
        cJSON_AddNumberToObject(q, "mxfp4_block_size", 32);
    } else {
        (void)fp8_remains;
        /* compressed-tensors mxfp4-pack-quantized (mxfp4_formats.md 2.6). */
        q = cJSON_CreateObject();
        cJSON_AddStringToObject(q, "quant_method", "compressed-tensors");
        cJSON_AddStringToObject(q, "format", "mxfp4-pack-quantized");
        cJSON_AddStringToObject(q, "quantization_status", "compressed");
        cJSON *groups = cJSON_AddObjectToObject(q, "config_groups");
        cJSON *g0 = cJSON_AddObjectToObject(groups, "group_0");
        cJSON_AddStringToObject(g0, "format", "mxfp4-pack-quantized");
        cJSON *targets = cJSON_AddArrayToObject(g0, "targets");
        if (all_quant_are_experts) {
            cJSON_AddItemToArray(targets, cJSON_CreateString("re:.*mlp\\.experts\\.[0-9]+\\.(gate|up|down)_proj$"));
        } else {
            for (size_t i = 0; i < nrefs; i++) {
                if (!refs[i].decision)
                    continue;
                char *m = module_of(refs[i].t.info->name);
                if (m)
                    cJSON_AddItemToArray(targets, cJSON_CreateString(m));
                free(m);
            }
        }
        cJSON *w = cJSON_AddObjectToObject(g0, "weights");
        cJSON_AddNumberToObject(w, "num_bits", 4);
        cJSON_AddStringToObject(w, "type", "float");
        cJSON_AddBoolToObject(w, "symmetric", 1);
        cJSON_AddStringToObject(w, "strategy", "group");
        cJSON_AddNumberToObject(w, "group_size", 32);
        cJSON_AddBoolToObject(w, "dynamic", 0);
        cJSON_AddStringToObject(w, "scale_dtype", "torch.uint8");
        cJSON_AddNullToObject(w, "zp_dtype");
        cJSON_AddNullToObject(w, "actorder");
        cJSON_AddNullToObject(w, "block_structure");
        cJSON_AddObjectToObject(w, "observer_kwargs");
        cJSON_AddNullToObject(g0, "input_activations");
        cJSON_AddNullToObject(g0, "output_activations");
        cJSON_AddArrayToObject(q, "ignore");
        cJSON_AddNullToObject(q, "kv_cache_scheme");
    }
    cJSON_Delete(old);
    cJSON_AddItemToObject(c, "quantization_config", q);
    p->config = c;
    return LQ_OK;
}

lq_status lq_plan_build(const lq_ckpt *src, const lq_plan_opts *opts, lq_plan **out, lq_error *err)
{
    *out = NULL;
    const char *dir = lq_ckpt_dir(src);
    lq_status st = LQ_OK;
    size_t n = lq_ckpt_count(src);
    src_ref *refs = calloc(n ? n : 1, sizeof(*refs));
    size_t *pos = calloc(n ? n : 1, sizeof(*pos));
    lq_plan *p = calloc(1, sizeof(*p));
    uint64_t *gsize = NULL;
    uint32_t *gshard = NULL;
    size_t *gfirst = NULL;
    if (!refs || !pos || !p) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
        goto cleanup;
    }
    p->layout = opts->layout;
    p->scale_mode = opts->scale_mode;
    p->max_shard_bytes = opts->max_shard_bytes ? opts->max_shard_bytes : 5000000000ull;
    for (size_t i = 0; i < n; i++) {
        refs[i].t = lq_ckpt_at(src, i);
        refs[i].at = i;
    }
    qsort(refs, n, sizeof(*refs), cmp_offset);
    for (size_t i = 0; i < n; i++)
        pos[refs[i].at] = i;

    /* 1. Decide: routed experts by default, then the patterns in order (later wins). Patterns
     *    select weight tensors only (names ending in ".weight"). */
    for (size_t k = 0; k < opts->npatterns; k++) {
        opts->patterns[k].matched = 0;
        if (lq_pattern_match(opts->patterns[k].text, "x") < 0) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "PLAN_PATTERN",
                         "invalid pattern \"%s\"", opts->patterns[k].text);
            goto cleanup;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const lq_tensor_info *ti = refs[i].t.info;
        /* Already MXFP4: U8 weight [N, K/2] with a U8 weight_scale [N, K/32] partner. */
        if (ends_with(ti->name, ".weight") && ti->dtype == LQ_DTYPE_U8 && ti->rank == 2) {
            char *sn = join(ti->name, "_scale");
            const src_ref *s = sn ? find_ref(refs, pos, src, sn) : NULL;
            free(sn);
            if (s && s->t.info->dtype == LQ_DTYPE_U8 && s->t.info->rank == 2 &&
                s->t.info->shape[0] == ti->shape[0] && s->t.info->shape[1] * 16 == ti->shape[1]) {
                refs[i].passthrough = 1;
                continue;
            }
            if (s) {
                st = lq_fail(err, LQ_ERR_CORRUPT, lq_st_path(refs[i].t.file), ti->name, "PLAN_MXFP4_SCALE",
                             "U8 weight [%llu, %llu] with a weight_scale of the wrong shape or dtype "
                             "(want U8 [%llu, %llu])", (unsigned long long)ti->shape[0],
                             (unsigned long long)ti->shape[1], (unsigned long long)ti->shape[0],
                             (unsigned long long)(ti->shape[1] / 16));
                goto cleanup;
            }
        }
        if (!ends_with(ti->name, ".weight"))
            continue;
        refs[i].decision = is_routed_expert(ti->name);
        for (size_t k = 0; k < opts->npatterns; k++) {
            if (lq_pattern_match(opts->patterns[k].text, ti->name) == 1) {
                refs[i].decision = opts->patterns[k].include;
                opts->patterns[k].matched++;
            }
        }
    }
    for (size_t k = 0; k < opts->npatterns; k++) {
        if (opts->patterns[k].matched == 0) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, dir, NULL, "PLAN_PATTERN_UNUSED",
                         "--%s \"%s\" matches no weight tensor", opts->patterns[k].include ? "include" : "exclude",
                         opts->patterns[k].text);
            goto cleanup;
        }
    }

    /* 2. Check every FP8 weight has its scale grid, and every quantized tensor can be. */
    int fp8_remains = 0, all_experts = 1;
    for (size_t i = 0; i < n; i++) {
        const lq_tensor_info *ti = refs[i].t.info;
        const char *path = lq_st_path(refs[i].t.file);
        if (is_fp8(ti->dtype) && ti->rank == 2 && ends_with(ti->name, ".weight")) {
            char *sn = join(ti->name, "_scale_inv");
            const src_ref *s = sn ? find_ref(refs, pos, src, sn) : NULL;
            free(sn);
            if (!s || s->t.info->rank != 2) {
                st = lq_fail(err, LQ_ERR_CORRUPT, path, ti->name, "PLAN_FP8_NO_SCALE",
                             "FP8 weight without a 2-D %s_scale_inv partner", ti->name);
                goto cleanup;
            }
            if (!refs[i].decision)
                fp8_remains = 1;
        }
        if (!refs[i].decision)
            continue;
        if (ti->rank != 2 || !(is_float(ti->dtype) || is_fp8(ti->dtype)) || ti->shape[1] % LQ_MX_BLOCK != 0 ||
            ti->shape[1] == 0 || ti->shape[0] == 0) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, ti->name, "PLAN_NOT_QUANTIZABLE",
                         "cannot be MXFP4: needs a 2-D BF16/F16/F32/FP8 weight whose last dimension is a "
                         "non-zero multiple of 32 (it is %s of rank %u, last dimension %llu)",
                         lq_dtype_name(ti->dtype), ti->rank,
                         (unsigned long long)(ti->rank ? ti->shape[ti->rank - 1] : 0));
            goto cleanup;
        }
        if (!is_routed_expert(ti->name))
            all_experts = 0;
    }
    if (p->layout == LQ_LAYOUT_COMPRESSED && fp8_remains) {
        st = lq_fail(err, LQ_ERR_UNSUPPORTED, dir, NULL, "PLAN_LAYOUT",
                     "--layout compressed-tensors needs every FP8 weight to be quantized: block-FP8 "
                     "weight_scale_inv tensors with per-shard grids have no compressed-tensors form");
        goto cleanup;
    }

    /* 3. Output tensors in source order; a quantized weight is followed by its scale. Arrays
     *    are sized exactly: they are kept for the whole run. */
    size_t nout = 0, ndrop = 0;
    for (size_t i = 0; i < n; i++) {
        const lq_tensor_info *ti = refs[i].t.info;
        if (refs[i].decision && is_fp8(ti->dtype)) {
            char *sn = join(ti->name, "_scale_inv");
            src_ref *s = sn ? find_ref(refs, pos, src, sn) : NULL;
            free(sn);
            if (s)
                s->fp8_scale_of_quant = 1;
        }
    }
    size_t nq = 0, nfp8q = 0;
    for (size_t i = 0; i < n; i++) {
        if (refs[i].fp8_scale_of_quant)
            ndrop++;
        else
            nout += refs[i].decision ? 2 : 1;
        nq += refs[i].decision;
        nfp8q += refs[i].decision && is_fp8(refs[i].t.info->dtype);
    }
    p->t = calloc(nout + 1, sizeof(*p->t));
    p->qshapes = calloc(4 * nq + 1, sizeof(*p->qshapes));
    p->grids = calloc(nfp8q + 1, sizeof(*p->grids));
    p->dropped = calloc(ndrop + 1, sizeof(char *));
    gsize = calloc(n + 1, sizeof(*gsize));
    gfirst = calloc(n + 1, sizeof(*gfirst));
    gshard = calloc(n + 1, sizeof(*gshard));
    if (!p->t || !p->dropped || !gsize || !gfirst || !gshard || !p->qshapes || !p->grids) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
        goto cleanup;
    }
    size_t ngroups = 0;
    for (size_t i = 0; i < n; i++) {
        const lq_tensor_info *ti = refs[i].t.info;
        p->src_bytes += ti->nbytes;
        if (refs[i].fp8_scale_of_quant) {
            p->dropped[p->ndropped] = strdup(ti->name);
            if (!p->dropped[p->ndropped++]) {
                st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
                goto cleanup;
            }
            continue;
        }
        lq_plan_tensor *t = &p->t[p->n];
        gfirst[ngroups] = p->n;
        t->src = refs[i].t;
        t->mclass = lq_plan_classify(ti->name);
        if (!refs[i].decision) {
            t->name = ti->name;
            t->dtype = ti->dtype;
            t->rank = ti->rank;
            t->shape = ti->shape;
            t->nbytes = ti->nbytes;
            t->rule = refs[i].passthrough ? LQ_RULE_PASSTHROUGH : LQ_RULE_KEEP;
            if (refs[i].passthrough) {
                char *sn = join(ti->name, "_scale");
                if (sn && lq_ckpt_find(src, sn, &t->src_scale) == 0)
                    t->has_src_scale = 1;
                free(sn);
            }
            if (!t->name) {
                st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
                goto cleanup;
            }
            gsize[ngroups++] = t->nbytes;
            p->n++;
            continue;
        }
        uint64_t N = ti->shape[0], K = ti->shape[1];
        if (is_fp8(ti->dtype)) {
            char *sn = join(ti->name, "_scale_inv");
            lq_ckpt_tensor s;
            int found = sn && lq_ckpt_find(src, sn, &s) == 0;
            free(sn);
            if (!found) {
                st = lq_fail(err, LQ_ERR_CORRUPT, lq_st_path(refs[i].t.file), ti->name, "PLAN_FP8_NO_SCALE",
                             "FP8 weight without its weight_scale_inv");
                goto cleanup;
            }
            t->src_scale = s;
            t->has_src_scale = 1;
            uint32_t hint = strstr(ti->name, "qkv_proj") ? opts->qkv_shards_hint : 0;
            lq_fp8_grid *g = &p->grids[p->ngrids++];
            t->grid = g;
            st = lq_fp8_grid_detect(N, K, s.info->shape[0], s.info->shape[1], 128, 128, hint, ti->name, g, err);
            if (st != LQ_OK) {
                if (err && !err->file[0])
                    snprintf(err->file, sizeof(err->file), "%s", lq_st_path(refs[i].t.file));
                goto cleanup;
            }
        }
        uint64_t *qs = &p->qshapes[4 * p->nquant];
        qs[0] = N;
        qs[1] = K / 2;
        qs[2] = N;
        qs[3] = K / 32;
        t->name = p->layout == LQ_LAYOUT_MIMO ? ti->name : plan_name(p, ti->name, "_packed");
        t->dtype = LQ_DTYPE_U8;
        t->rank = 2;
        t->shape = qs;
        t->nbytes = N * (K / 2);
        t->rule = LQ_RULE_MXFP4;
        t->quant = p->nquant;
        lq_plan_tensor *sc = &p->t[p->n + 1];
        sc->name = plan_name(p, ti->name, "_scale"); /* X.weight_scale in both layouts */
        sc->dtype = LQ_DTYPE_U8;
        sc->rank = 2;
        sc->shape = qs + 2;
        sc->nbytes = N * (K / 32);
        sc->rule = LQ_RULE_MXFP4_SCALE;
        sc->src = refs[i].t;
        sc->quant = p->nquant;
        sc->mclass = t->mclass;
        if (!t->name || !sc->name) {
            st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
            goto cleanup;
        }
        if (N * K > p->max_quant_numel)
            p->max_quant_numel = N * K;
        if (K > p->max_quant_cols)
            p->max_quant_cols = K;
        gsize[ngroups++] = t->nbytes + sc->nbytes;
        p->n += 2;
        p->nquant++;
    }
    if (p->nquant == 0) {
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, dir, NULL, "PLAN_NOTHING",
                     "no tensor would be quantized (no routed experts, nothing included)");
        goto cleanup;
    }
    /* An output name may not collide with a different source tensor that is kept. */
    for (size_t i = 0; i < p->n; i++) {
        if (p->t[i].rule != LQ_RULE_MXFP4 && p->t[i].rule != LQ_RULE_MXFP4_SCALE)
            continue;
        if (p->t[i].rule == LQ_RULE_MXFP4 && p->layout == LQ_LAYOUT_MIMO)
            continue; /* same name as its own source */
        lq_ckpt_tensor other;
        if (lq_ckpt_find(src, p->t[i].name, &other) == 0) {
            st = lq_fail(err, LQ_ERR_CORRUPT, lq_st_path(other.file), p->t[i].name, "PLAN_NAME_CLASH",
                         "the MXFP4 output of %s would overwrite this source tensor", p->t[i].src.info->name);
            goto cleanup;
        }
    }

    /* 4. Shards over groups (weight + scale stay together). */
    uint32_t ns = lq_shard_plan(gsize, ngroups, p->max_shard_bytes, gshard);
    for (size_t g = 0; g < ngroups; g++) {
        size_t end = g + 1 < ngroups ? gfirst[g + 1] : p->n;
        for (size_t i = gfirst[g]; i < end; i++)
            p->t[i].shard = gshard[g];
    }
    p->nshards = ns;
    p->shard_names = calloc(ns ? ns : 1, sizeof(char *));
    p->shard_bytes = calloc(ns ? ns : 1, sizeof(uint64_t));
    if (!p->shard_names || !p->shard_bytes) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
        goto cleanup;
    }
    for (uint32_t s = 0; s < ns; s++) {
        char nm[64];
        lq_shard_name("model", s, ns, 1, nm, sizeof(nm));
        p->shard_names[s] = strdup(nm);
        if (!p->shard_names[s]) {
            st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
            goto cleanup;
        }
    }
    for (size_t i = 0; i < p->n; i++) {
        p->shard_bytes[p->t[i].shard] += p->t[i].nbytes;
        p->total_bytes += p->t[i].nbytes;
    }
    st = build_config(src, p, refs, n, all_experts, fp8_remains, err);

cleanup:
    free(refs);
    free(pos);
    free(gsize);
    free(gfirst);
    free(gshard);
    if (st != LQ_OK) {
        lq_plan_free(p);
        return st;
    }
    *out = p;
    return LQ_OK;
}
