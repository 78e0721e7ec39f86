/* Held-out evaluation (eval.h). */
#include "eval.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sample.h"

/* The whole file, NUL-terminated (the NUL is not counted). NULL with errno set on failure. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *b = malloc(cap + 1);
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(b, (cap *= 2) + 1);
            if (!nb)
                free(b);
            b = nb;
        }
    }
    int bad = ferror(f), e = errno;
    fclose(f);
    if (!b || bad) {
        free(b);
        errno = b ? (e ? e : EIO) : ENOMEM;
        return NULL;
    }
    b[n] = 0;
    *len = n;
    return b;
}

void rt_eval_list_free(char **paths, size_t n)
{
    for (size_t i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
}

static int blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

lq_status rt_eval_list_read(const char *list, const char *root, char ***paths, size_t *n, lq_error *err)
{
    *paths = NULL;
    *n = 0;
    size_t len = 0;
    char *text = slurp(list, &len);
    if (!text)
        return lq_fail(err, LQ_ERR_IO, list, NULL, "EVAL_LIST", "cannot read the list: %s", strerror(errno));
    char **v = NULL;
    size_t k = 0, cap = 0, line = 0;
    lq_status st = LQ_OK;
    /* root's trailing slashes are dropped and one '/' joins it to a relative path, so "/r",
     * "/r/" and "/" all join cleanly with "a.txt" and "/usr/a.txt" */
    int have_root = root && root[0];
    size_t rl = have_root ? strlen(root) : 0;
    while (rl > 0 && root[rl - 1] == '/')
        rl--;
    for (size_t i = 0; i <= len && st == LQ_OK;) {
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        line++;
        if (memchr(text + i, 0, e - i)) {
            st = lq_fail(err, LQ_ERR_CORRUPT, list, NULL, "EVAL_LIST_LINE", "line %zu holds a NUL byte", line);
            break;
        }
        size_t a = i, b = e;
        while (a < b && blank(text[a]))
            a++;
        while (b > a && blank(text[b - 1]))
            b--;
        i = e + 1;
        if (a == b || text[a] == '#')
            continue;
        if (k == cap) {
            char **nv = realloc(v, (cap = cap ? 2 * cap : 64) * sizeof(char *));
            if (!nv) {
                st = lq_fail(err, LQ_ERR_NO_MEMORY, list, NULL, NULL, "out of memory");
                break;
            }
            v = nv;
        }
        int sep = have_root && text[a] != '/';
        char *p = malloc(rl + (size_t)sep + (b - a) + 1);
        if (!p) {
            st = lq_fail(err, LQ_ERR_NO_MEMORY, list, NULL, NULL, "out of memory");
            break;
        }
        memcpy(p, have_root ? root : "", rl);
        if (sep)
            p[rl] = '/';
        memcpy(p + rl + sep, text + a, b - a);
        p[rl + sep + (b - a)] = 0;
        v[k++] = p;
    }
    free(text);
    if (st != LQ_OK) {
        rt_eval_list_free(v, k);
        return st;
    }
    *paths = v;
    *n = k;
    return LQ_OK;
}

void rt_eval_docs_free(rt_eval_docs *d)
{
    if (!d)
        return;
    free(d->ids);
    free(d->off);
    memset(d, 0, sizeof(*d));
}

lq_status rt_eval_docs_load(const rt_tokenizer *t, char *const *paths, size_t n, int32_t sep, rt_eval_docs *out,
                            lq_error *err)
{
    memset(out, 0, sizeof(*out));
    size_t cap = 1 << 16, tot = 0;
    int32_t *all = malloc(cap * sizeof(int32_t));
    size_t *off = malloc((n + 1) * sizeof(size_t));
    lq_status st = all && off ? LQ_OK : lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    for (size_t i = 0; i < n && st == LQ_OK; i++) {
        off[i] = tot;
        size_t len = 0, k = 0;
        char *text = slurp(paths[i], &len);
        if (!text) {
            st = lq_fail(err, LQ_ERR_IO, paths[i], NULL, "EVAL_READ", "cannot read the document (entry %zu of the set): %s",
                         i + 1, strerror(errno));
            break;
        }
        int32_t *ids = NULL;
        st = rt_tokenizer_encode(t, text, len, &ids, &k, err);
        free(text);
        if (st != LQ_OK) {
            /* the tokenizer names the rule and byte offset; the file is ours to name */
            if (err)
                snprintf(err->file, sizeof(err->file), "%s", paths[i]);
            break;
        }
        if (k == 0) {
            st = lq_fail(err, LQ_ERR_CORRUPT, paths[i], NULL, "EVAL_EMPTY_DOC", "the document encodes to no token (%zu bytes)",
                         len);
            break;
        }
        size_t need = tot + k + (sep >= 0);
        if (need > cap) {
            while (cap < need)
                cap *= 2;
            int32_t *na = realloc(all, cap * sizeof(int32_t));
            if (!na) {
                free(ids);
                st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
                break;
            }
            all = na;
        }
        if (sep >= 0)
            all[tot++] = sep;
        memcpy(all + tot, ids, k * sizeof(int32_t));
        tot += k;
        free(ids);
    }
    if (st != LQ_OK) {
        free(all);
        free(off);
        return st;
    }
    off[n] = tot;
    out->n = n;
    out->ids = all;
    out->off = off;
    return LQ_OK;
}

lq_status rt_eval_windows(const size_t *len, size_t ndocs, size_t ctx, size_t max_scored, rt_eval_span **w, size_t *nw,
                          size_t *scored, lq_error *err)
{
    *w = NULL;
    *nw = 0;
    *scored = 0;
    if (ctx < 2)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "EVAL_WINDOW", "a window of %zu tokens scores nothing",
                       ctx);
    /* count first, then fill: the same walk twice */
    rt_eval_span *v = NULL;
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0, s = 0;
        /* round r takes window r of every document that has one, in document order */
        for (size_t a = 0, any = 1; any && s < max_scored; a += ctx) {
            any = 0;
            for (size_t d = 0; d < ndocs && s < max_scored; d++) {
                if (a >= len[d] || a + 1 >= len[d])
                    continue;
                any = 1;
                size_t l = len[d] - a < ctx ? len[d] - a : ctx;
                if (l - 1 > max_scored - s)
                    l = max_scored - s + 1;
                if (v)
                    v[k] = (rt_eval_span){d, a, l};
                k++;
                s += l - 1;
            }
            if (a > SIZE_MAX - ctx)
                break;
        }
        if (pass == 0) {
            if (k == 0)
                return LQ_OK;
            v = malloc(k * sizeof(*v));
            if (!v)
                return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        } else {
            *nw = k;
            *scored = s;
        }
    }
    *w = v;
    return LQ_OK;
}

lq_status rt_eval_prompts(const size_t *len, size_t ndocs, size_t count, size_t plen, uint64_t seed, rt_eval_span *out,
                          lq_error *err)
{
    size_t fit = 0;
    for (size_t d = 0; d < ndocs; d++)
        fit += len[d] >= plen + 1;
    if (fit == 0 && count > 0)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "EVAL_PROMPT_FIT",
                       "no document of the %zu holds %zu tokens (the prompt length + 1)", ndocs, plen + 1);
    rt_rng r;
    rt_rng_seed(&r, seed);
    for (size_t i = 0; i < count; i++) {
        /* floor(i * ndocs / count); i < count and ndocs are far below 2^32 in any real set */
        size_t d = (size_t)((uint64_t)i * ndocs / count);
        while (len[d] < plen + 1)
            d = d + 1 == ndocs ? 0 : d + 1;
        size_t range = len[d] - plen + 1;
        size_t s = (size_t)(rt_rng_uniform(&r) * (double)range);
        if (s >= range) /* cannot happen for u < 1 and range < 2^53; kept as a guard */
            s = range - 1;
        out[i] = (rt_eval_span){d, s, plen};
    }
    return LQ_OK;
}

/* Adds -log p(target) over rows [0, rows) of lg to *nll: log-sum-exp after subtracting the row's
 * maximum, in double. Returns the first row whose term is not finite, or rows. */
static size_t add_nll(const float *lg, size_t rows, uint32_t V, const int32_t *targets, double *nll)
{
    for (size_t r = 0; r < rows; r++) {
        const float *x = lg + r * (size_t)V;
        double mx = -INFINITY, s = 0;
        for (uint32_t i = 0; i < V; i++)
            mx = x[i] > mx ? x[i] : mx;
        for (uint32_t i = 0; i < V; i++)
            s += exp((double)x[i] - mx);
        double term = mx + log(s) - (double)x[targets[r]];
        if (!isfinite(term))
            return r;
        *nll += term;
    }
    return rows;
}

lq_status rt_eval_nll(const rt_model *m, const rt_model *other, const int32_t *ids, size_t n, const rt_opts *o,
                      rt_eval_nll_result *out, lq_error *err)
{
    memset(out, 0, sizeof(*out));
    if (n < 2)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "EVAL_WINDOW", "a window of %zu tokens scores nothing", n);
    const uint32_t V = rt_model_config(m)->vocab_size;
    if (other && rt_model_config(other)->vocab_size != V)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, rt_model_dir(other), NULL, "EVAL_VOCAB",
                       "vocabulary of %u, the model's is %u", rt_model_config(other)->vocab_size, V);
    const rt_model *mm[2] = {m, other};
    const int nm = other ? 2 : 1;
    rt_cache *c[2] = {NULL, NULL};
    float *lg[2] = {NULL, NULL};
    lq_status st = LQ_OK;
    for (int k = 0; k < nm && st == LQ_OK; k++) {
        lg[k] = malloc((size_t)RT_STEP_CHUNK * V * sizeof(float));
        if (!lg[k])
            st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        else
            st = rt_cache_new(mm[k], n, &c[k], err);
    }
    /* Positions [s, e) per step; rows whose next token exists (t < n - 1) are scored. */
    for (size_t s = 0; s + 1 < n && st == LQ_OK; s += RT_STEP_CHUNK) {
        size_t e = s + RT_STEP_CHUNK < n ? s + RT_STEP_CHUNK : n;
        size_t rows = (e < n ? e : n - 1) - s;
        for (int k = 0; k < nm && st == LQ_OK; k++) {
            if ((st = rt_step(mm[k], c[k], ids + s, e - s, o, lg[k], NULL, err)) != LQ_OK)
                break;
            size_t bad = add_nll(lg[k], rows, V, ids + s + 1, &out->nll[k]);
            if (bad < rows)
                st = lq_fail(err, LQ_ERR_NUMERIC, rt_model_dir(mm[k]), NULL, "EVAL_NONFINITE",
                             "non-finite log-likelihood of token %d at position %zu of the window", ids[s + bad + 1],
                             s + bad + 1);
        }
        if (st == LQ_OK && other)
            for (size_t r = 0; r < rows; r++)
                out->agree += rt_argmax(lg[0] + r * (size_t)V, V) == rt_argmax(lg[1] + r * (size_t)V, V);
    }
    if (st == LQ_OK)
        out->scored = n - 1;
    else
        memset(out, 0, sizeof(*out));
    for (int k = 0; k < 2; k++) {
        rt_cache_free(c[k]);
        free(lg[k]);
    }
    return st;
}

lq_status rt_eval_generate(const rt_model *m, const rt_drafter *d, const int32_t *prompt, size_t n, size_t gen_tokens,
                           uint32_t block, const rt_opts *o, int32_t *out, rt_gen_stats *stats, rt_eval_accept *acc,
                           lq_error *err)
{
    const uint32_t B = d ? (block ? block : rt_drafter_config(d)->block_size) : 1;
    if (d && (B < 2 || B > RT_MAX_BLOCK))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "EVAL_BLOCK", "block %u outside 2..%d", B, RT_MAX_BLOCK);
    if (acc && acc->block && acc->block != B)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "EVAL_BLOCK",
                       "a run with block %u added to sums of block %u", B, acc->block);
    if (gen_tokens == 0)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "EVAL_GEN", "no tokens to generate");
    int32_t *buf = out ? out : malloc(gen_tokens * sizeof(int32_t));
    if (!buf)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    rt_gen_opts go;
    memset(&go, 0, sizeof(go));
    go.max_tokens = gen_tokens;
    go.block = d ? B : 0;
    go.rt = *o; /* greedy (temperature 0), no stop ids, no callback */
    rt_gen_stats S;
    size_t got = 0;
    lq_status st = rt_generate(m, d, prompt, n, &go, buf, &got, &S, err);
    if (buf != out)
        free(buf);
    if (st != LQ_OK)
        return st;
    if (got != gen_tokens) /* without stop ids rt_generate always fills the budget */
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "EVAL_GEN", "%zu of %zu tokens generated", got,
                       gen_tokens);
    if (stats)
        *stats = S;
    if (acc) {
        acc->block = B;
        acc->runs++;
        acc->steps += S.steps;
        acc->generated += S.generated;
        for (uint32_t i = 1; i <= B; i++) {
            acc->hist[i] += S.accept_hist[i];
            acc->committed += (size_t)i * S.accept_hist[i];
        }
        acc->prefill_s += S.prefill_s;
        acc->decode_s += S.decode_s;
        acc->draft_s += S.draft_s;
        acc->verify_s += S.verify_s;
    }
    return LQ_OK;
}

double rt_eval_tau(const rt_eval_accept *acc)
{
    return acc->steps ? (double)acc->committed / (double)acc->steps : 0;
}

double rt_eval_decode_rate(const rt_eval_accept *acc)
{
    return acc->decode_s > 0 ? (double)acc->committed / acc->decode_s : 0;
}

void rt_eval_accept_rates(const size_t *hist, uint32_t block, double *rate, double *cond)
{
    size_t steps = 0;
    for (uint32_t i = 1; i <= block; i++)
        steps += hist[i];
    for (uint32_t k = 1; k < block; k++) {
        size_t ge_k1 = 0, ge_k = 0; /* steps committing >= k + 1, >= k */
        for (uint32_t i = k; i <= block; i++) {
            ge_k += hist[i];
            if (i >= k + 1)
                ge_k1 += hist[i];
        }
        rate[k - 1] = steps ? (double)ge_k1 / (double)steps : NAN;
        cond[k - 1] = ge_k ? (double)ge_k1 / (double)ge_k : NAN;
    }
}
