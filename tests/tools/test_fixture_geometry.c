/* The fixture presets' geometry, and the medium preset's drafter accepted by libquant and the
 * runtime, without generating the ~16 GB medium checkpoint.
 * usage: test_fixture_geometry
 *  1. medium's drafter has the release drafter's geometry: reference/dflash.md 2.2, the values of
 *     MiMo-V2.5-Pro-FP4-DFlash's dflash/config.json ([MIMOCFG]): 5 layers, 128 heads, 8 KV heads,
 *     head_dim 128, intermediate 16384, block 8, use_swa with window 1024 on every layer,
 *     non-causal, sinks, value scale 0.612, partial rotary 0.5 (64 of 128 dims), rope_theta
 *     10000, backbone_rotary_base 5e6, eps 1e-5, num_anchors 4096, max_position_embeddings
 *     262144; its hidden size is medium's own (4096; the release's 6144 equals its target's, and
 *     DF_HIDDEN requires that), five taps = the release's [0, 15, 31, 47, 69] of 70 scaled to 6
 *     layers: round(t * 5 / 69) = 0, 1, 2, 3, 5 (by hand);
 *  2. taps after --layers: medium by the release rule (5 layers: 0 1 2 3 4; 7: 0 1 3 4 6; 70: the
 *     release's own; 2: 0 1; 1: 0), tiny by its own (12: 0 5 11, 4: 0 1 3), each computed by hand;
 *     the pro preset and its tiny-dims form plan the same names (reference/mimo_arch.md 4.1's
 *     159,581 tensors, and 605 + 414 N with N experts);
 *  3. the tensors mimo-mkfixture writes for medium at --vocab 1024 --experts 8 (its plan,
 *     fx_plan_backbone / fx_plan_drafter, and its configs) laid out in sparse safetensors files of
 *     zeros (full shapes, no disk): rt_model_open binds the backbone, rt_drafter_open
 *     (lq_drafter_open's checks, then the runtime's) binds the drafter, its parsed config holds the
 *     values of 1, and one draft block of 7 runs (its time printed: the release drafter's layer
 *     cost at hidden 4096, on this machine's CPU). */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "tools/fixture.h"
#include "libquant/libquant.h"
#include "runtime/dflash.h"
#include "runtime/model.h"

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const fx_tensor *)a)->name, ((const fx_tensor *)b)->name);
}

/* Writes l's tensors (every value zero) as one safetensors file whose data section is a hole. */
static int write_sparse(const char *path, fx_list *l)
{
    qsort(l->t, l->n, sizeof(*l->t), cmp_tensor);
    cJSON *h = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddItemToObject(h, "__metadata__", meta);
    uint64_t off = 0;
    for (size_t i = 0; i < l->n; i++) {
        const fx_tensor *t = &l->t[i];
        int of = 0;
        uint64_t numel = t->rank == 1 ? t->shape[0] : t->shape[0] * t->shape[1];
        uint64_t nb = lq_dtype_nbytes(t->dtype, numel, &of);
        cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        cJSON_AddStringToObject(e, "dtype", lq_dtype_name(t->dtype));
        for (uint32_t k = 0; k < t->rank; k++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[k]));
        cJSON_AddItemToObject(e, "shape", shape);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + nb)));
        cJSON_AddItemToObject(e, "data_offsets", offs);
        cJSON_AddItemToObject(h, t->name, e);
        off += nb;
    }
    char *text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!text)
        return -1;
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), rc = fd < 0 ? -1 : 0;
    if (!rc && (write(fd, len8, 8) != 8 || write(fd, text, n) != (ssize_t)n))
        rc = -1;
    for (size_t i = n; !rc && i < padded; i++)
        rc = write(fd, " ", 1) == 1 ? 0 : -1;
    if (!rc && ftruncate(fd, (off_t)(8 + padded + off)) != 0)
        rc = -1;
    if (fd >= 0 && close(fd) != 0)
        rc = -1;
    free(text);
    return rc;
}

static int write_json(const char *path, cJSON *j)
{
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    FILE *f = fopen(path, "w");
    int rc = text && f && fputs(text, f) >= 0 ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    free(text);
    return rc;
}

static void check_taps(const char *preset, uint64_t layers, const uint32_t *want, uint32_t n)
{
    fx_geometry g;
    char why[160];
    CHECK(fx_geometry_preset(preset, &g) == 0);
    CHECK(fx_geometry_resize(&g, 0, 0, layers, why, sizeof(why)) == 0);
    int same = g.d_ntaps == n;
    for (uint32_t i = 0; same && i < n; i++)
        same = g.d_taps[i] == want[i];
    CHECK_MSG(same, "%s --layers %llu: %u taps, first %u, last %u", preset, (unsigned long long)layers, g.d_ntaps,
              g.d_taps[0], g.d_taps[g.d_ntaps ? g.d_ntaps - 1 : 0]);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void)
{
    /* 1. */
    fx_geometry g;
    CHECK(fx_geometry_preset("medium", &g) == 0);
    CHECK_EQ_U64(g.d_layers, 5);
    CHECK_EQ_U64(g.d_heads, 128);
    CHECK_EQ_U64(g.d_kv, 8);
    CHECK_EQ_U64(g.d_head_dim, 128);
    CHECK_EQ_U64(g.d_intermediate, 16384);
    CHECK_EQ_U64(g.d_block, 8);
    CHECK_EQ_U64(g.d_window, 1024);
    CHECK_EQ_U64(g.d_anchors, 4096);
    CHECK_EQ_U64(g.d_hidden, g.hidden);
    CHECK_EQ_U64(g.d_hidden, 4096);
    CHECK_EQ_U64(g.d_mask_id, g.vocab - 1);
    const uint32_t med6[5] = {0, 1, 2, 3, 5};
    CHECK(g.d_ntaps == 5 && memcmp(g.d_taps, med6, sizeof(med6)) == 0);

    /* 2. */
    const uint32_t m5[5] = {0, 1, 2, 3, 4}, m7[5] = {0, 1, 3, 4, 6}, m70[5] = {0, 15, 31, 47, 69}, m2[2] = {0, 1},
                   m1[1] = {0}, t12[3] = {0, 5, 11}, t4[3] = {0, 1, 3};
    check_taps("medium", 6, med6, 5);
    check_taps("medium", 5, m5, 5);
    check_taps("medium", 7, m7, 5);
    check_taps("medium", 64, (const uint32_t[5]){0, 14, 28, 43, 63}, 5); /* round(t * 63 / 69) */
    check_taps("medium", 2, m2, 2);
    check_taps("medium", 1, m1, 1);
    check_taps("tiny", 12, t12, 3);
    check_taps("tiny", 4, t4, 3);
    check_taps("medium", 70, m70, 5); /* the release's own depth gives its own taps */

    /* 2b. pro and pro-tiny (--dims tiny) plan the same tensor names, dtypes and ranks, the count
     * reference/mimo_arch.md 4.1 gives (159,581), and 605 + 414 N at --experts N (605 tensors
     * outside the routed experts; 69 MoE layers x 3 projections x weight and scale = 414 per
     * expert): 10,127 at 23, 39,935 at 95. */
    {
        const uint64_t ne[3] = {23, 95, 384}, want[3] = {10127, 39935, 159581};
        for (int k = 0; k < 3; k++) {
            fx_geometry gp, gt;
            fx_list lp = {0}, lt = {0};
            char why2[160];
            CHECK(fx_geometry_preset("pro", &gp) == 0 && fx_geometry_preset("pro-tiny", &gt) == 0);
            CHECK(fx_geometry_resize(&gp, 0, ne[k], 0, why2, sizeof(why2)) == 0);
            CHECK(fx_geometry_resize(&gt, 0, ne[k], 0, why2, sizeof(why2)) == 0);
            fx_plan_backbone(&gp, 1, &lp);
            fx_plan_backbone(&gt, 1, &lt);
            CHECK_EQ_U64(lp.n, want[k]);
            CHECK_EQ_U64(lt.n, want[k]);
            qsort(lp.t, lp.n, sizeof(*lp.t), cmp_tensor);
            qsort(lt.t, lt.n, sizeof(*lt.t), cmp_tensor);
            size_t diff = 0;
            for (size_t i = 0; i < lp.n && i < lt.n; i++)
                diff += strcmp(lp.t[i].name, lt.t[i].name) != 0 || lp.t[i].dtype != lt.t[i].dtype ||
                        lp.t[i].rank != lt.t[i].rank;
            CHECK_EQ_U64(diff, 0);
            free(lp.t);
            free(lt.t);
        }
    }

    /* 3. */
    char why[160];
    CHECK(fx_geometry_resize(&g, 1024, 8, 0, why, sizeof(why)) == 0);
    char root[] = "/tmp/mimo-fxgeom-XXXXXX", path[800], ddir[700];
    CHECK(mkdtemp(root) != NULL);
    snprintf(ddir, sizeof(ddir), "%s/dflash", root);
    CHECK(mkdir(ddir, 0755) == 0);
    fx_list bb = {0}, dl = {0};
    fx_plan_backbone(&g, 0, &bb);
    fx_plan_drafter(&g, &dl);
    snprintf(path, sizeof(path), "%s/model.safetensors", root);
    CHECK(write_sparse(path, &bb) == 0);
    snprintf(path, sizeof(path), "%s/config.json", root);
    CHECK(write_json(path, fx_config_backbone(&g, 0, 0)) == 0);
    snprintf(path, sizeof(path), "%s/dflash_draft_model.safetensors", ddir);
    CHECK(write_sparse(path, &dl) == 0);
    snprintf(path, sizeof(path), "%s/config.json", ddir);
    CHECK(write_json(path, fx_config_drafter(&g)) == 0);
    uint16_t *mask = calloc(g.d_hidden, sizeof(uint16_t));
    lq_error err;
    lq_error_clear(&err);
    snprintf(path, sizeof(path), "%s/mask_embedding.pt", ddir);
    CHECK(mask && lq_torchzip_write_mask(path, "mask_embedding", g.d_mask_id, mask, g.d_hidden, NULL, &err) == LQ_OK);
    printf("medium (--vocab 1024 --experts 8): %zu backbone and %zu drafter tensors, zeros, in sparse files\n", bb.n,
           dl.n);

    rt_model *m = NULL;
    rt_drafter *d = NULL;
    rt_model_opts mo = {0};
    mo.threads = 2;
    double t0 = now_s();
    CHECK(rt_model_open(root, &mo, &m, &err) == LQ_OK);
    double t1 = now_s();
    CHECK(m && rt_drafter_open(ddir, m, NULL, &d, &err) == LQ_OK);
    double t2 = now_s();
    if (!m || !d) {
        char buf[1600];
        fprintf(stderr, "%s\n", lq_error_format(&err, buf, sizeof(buf)));
    } else {
        printf("bound: backbone %.2f s, drafter %.2f s\n", t1 - t0, t2 - t1);
        const lq_drafter_config *c = rt_drafter_config(d);
        CHECK_EQ_U64(c->hidden_size, 4096);
        CHECK_EQ_U64(c->target_hidden_size, 4096);
        CHECK_EQ_U64(c->num_hidden_layers, 5);
        CHECK_EQ_U64(c->num_attention_heads, 128);
        CHECK_EQ_U64(c->num_key_value_heads, 8);
        CHECK_EQ_U64(c->head_dim, 128);
        CHECK_EQ_U64(c->v_head_dim, 128);
        CHECK_EQ_U64(c->intermediate_size, 16384);
        CHECK_EQ_U64(c->block_size, 8);
        CHECK(c->n_taps == 5 && memcmp(c->taps, med6, sizeof(med6)) == 0);
        CHECK_EQ_U64(c->mask_token_id, 1023);
        CHECK(c->use_swa == 1);
        CHECK_EQ_U64(c->window, 1024);
        for (uint32_t i = 0; i < 5; i++)
            CHECK(c->is_swa[i] == 1 && c->is_causal[i] == 0);
        CHECK(c->attention_sink == 1);
        CHECK(c->attention_bias == 0);
        CHECK_NEAR(c->attention_value_scale, 0.612, 0, 1e-12);
        CHECK_NEAR(c->partial_rotary_factor, 0.5, 0, 0);
        CHECK_EQ_U64(c->rope_dim, 64);
        CHECK_NEAR(c->rope_theta, 10000, 0, 0);
        CHECK_NEAR(c->backbone_rotary_base, 5e6, 0, 0);
        CHECK_NEAR(c->rms_norm_eps, 1e-5, 0, 1e-12);

        /* one draft block: one committed position ingested, then [anchor, MASK x 7] */
        rt_dcache *dc = NULL;
        float *taps = calloc((size_t)c->n_taps * 4096, sizeof(float));
        int32_t drafts[7];
        CHECK(taps && rt_dcache_new(d, 16, &dc, &err) == LQ_OK);
        CHECK(dc && rt_draft_ingest(d, dc, taps, 1, 2, NULL, &err) == LQ_OK);
        double t3 = now_s();
        CHECK(dc && rt_draft_block(d, dc, 5, 7, 2, NULL, drafts, &err) == LQ_OK);
        printf("one draft block of 8 rows: %.2f s (CPU, 2 threads)\n", now_s() - t3);
        for (int i = 0; i < 7; i++)
            CHECK(drafts[i] >= 0 && drafts[i] < 1024);
        rt_dcache_free(dc);
        free(taps);
    }
    rt_drafter_close(d);
    rt_model_close(m);
    free(mask);
    free(bb.t);
    free(dl.t);
    char cmd[800];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return th_finish("test_fixture_geometry");
}
