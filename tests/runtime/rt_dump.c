/* The runtime's raw outputs, for comparing two builds byte for byte (tools/oracle/runtime_sums.sh).
 * usage: rt_dump MODEL OUTDIR THREADS
 * Writes into OUTDIR: logits.f32 [48, vocab] and hidden.f32 [(layers + 1), 48, hidden] of a fixed
 * 48-token sequence, taps.f32 [48, ntaps * hidden] (the drafter's tap layers, else 0, L/2 and
 * L-1), and with MODEL/dflash: ctx.f32 (the fused context features of the 48 positions), draft.f32
 * and drafts.i32 (one draft block after them, anchored on the sequence's sixth id). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libquant/libquant.h"
#include "runtime/dflash.h"
#include "runtime/model.h"

static int put(const char *dir, const char *name, const void *p, size_t n)
{
    char path[1400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(p, 1, n, f) == n;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        fprintf(stderr, "rt_dump: cannot write %s\n", path);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: rt_dump MODEL OUTDIR THREADS\n");
        return 2;
    }
    const char *model = argv[1], *out = argv[2];
    const int threads = atoi(argv[3]);
    const size_t n = 48;
    lq_error err;
    lq_error_clear(&err);
    char eb[1400], dd[1100];
    rt_model_opts mo = {.threads = threads};
    rt_model *m = NULL;
    rt_drafter *d = NULL;
    rt_cache *kv = NULL;
    rt_dcache *dc = NULL;
    float *lg = NULL, *hid = NULL, *tp = NULL, *ctx = NULL, *dl = NULL;
    int rc = 3;
    if (rt_model_open(model, &mo, &m, &err) != LQ_OK)
        goto done;
    const lq_mimo_config *c = rt_model_config(m);
    const size_t V = c->vocab_size, H = c->hidden_size, NL = c->num_hidden_layers;
    int32_t ids[48];
    uint64_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((x >> 33) % V);
    }
    snprintf(dd, sizeof(dd), "%s/dflash", model);
    rt_drafter_opts dopt = {0};
    if (rt_drafter_open(dd, m, &dopt, &d, &err) != LQ_OK)
        d = NULL, lq_error_clear(&err);
    uint32_t taps[LQ_DRAFTER_MAX_TAPS], nt = 3;
    if (d) {
        nt = rt_drafter_config(d)->n_taps;
        memcpy(taps, rt_drafter_config(d)->taps, nt * sizeof(uint32_t));
    } else {
        taps[0] = 0, taps[1] = (uint32_t)NL / 2, taps[2] = (uint32_t)NL - 1;
    }
    lg = malloc(n * V * sizeof(float));
    hid = malloc((NL + 1) * n * H * sizeof(float));
    tp = malloc(n * nt * H * sizeof(float));
    rt_cache_opts co = {0, taps, nt};
    if (!lg || !hid || !tp || rt_cache_new_ex(m, n + 16, &co, &kv, &err) != LQ_OK)
        goto done;
    rt_opts o = {threads};
    rt_sel sel = {.rows = n, .logits = lg, .hidden = hid, .tap_out = tp};
    if (rt_step_ex(m, kv, ids, n, &o, &sel, &err) != LQ_OK)
        goto done;
    if (!put(out, "logits.f32", lg, n * V * sizeof(float)) || !put(out, "hidden.f32", hid, (NL + 1) * n * H * sizeof(float)) ||
        !put(out, "taps.f32", tp, n * nt * H * sizeof(float)))
        goto done;
    if (d) {
        const lq_drafter_config *dcf = rt_drafter_config(d);
        uint32_t k = dcf->block_size - 1;
        int32_t dr[RT_MAX_BLOCK];
        ctx = malloc(n * dcf->hidden_size * sizeof(float));
        dl = malloc((size_t)k * V * sizeof(float));
        if (!ctx || !dl || rt_dcache_new(d, n + 16, &dc, &err) != LQ_OK ||
            rt_draft_ingest(d, dc, tp, n, threads, ctx, &err) != LQ_OK ||
            rt_draft_block(d, dc, ids[5], k, threads, dl, dr, &err) != LQ_OK)
            goto done;
        if (!put(out, "ctx.f32", ctx, n * dcf->hidden_size * sizeof(float)) ||
            !put(out, "draft.f32", dl, (size_t)k * V * sizeof(float)) || !put(out, "drafts.i32", dr, k * sizeof(int32_t)))
            goto done;
    }
    rc = 0;
done:
    if (rc && err.rule[0])
        fprintf(stderr, "rt_dump: %s\n", lq_error_format(&err, eb, sizeof(eb)));
    rt_dcache_free(dc);
    rt_cache_free(kv);
    rt_drafter_close(d);
    rt_model_close(m);
    free(lg), free(hid), free(tp), free(ctx), free(dl);
    return rc;
}
