/* mimo-run: generate with the CPU reference runtime (runtime/), plain or with DFlash speculative
 * decoding, and report the rates and the acceptance length.
 *
 * The prompt is text (encoded with MODEL/tokenizer.json) or a list of ids. Generated text streams
 * to stdout as tokens are committed (special tokens are not printed); the rates, tau and its
 * histogram go to stderr. With --format json nothing streams: one JSON object goes to stdout. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libquant/libquant.h"
#include "runtime/dflash.h"
#include "runtime/generate.h"
#include "runtime/tokenizer.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: mimo-run MODEL (--prompt TEXT | --prompt-ids ID,ID,... | --prompt-file FILE) [options]\n"
        "Generates with the CPU reference runtime from a checkpoint or an artifact directory.\n"
        "  --max-tokens N        tokens to generate at most (default 64)\n"
        "  --dflash | --no-dflash  speculative decoding with the DFlash drafter (default: on when\n"
        "                        the drafter directory exists)\n"
        "  --drafter DIR         the drafter (default MODEL/dflash)\n"
        "  --block-size B        draft block (2..%d; default the drafter's block_size)\n"
        "  --temperature T       0 = greedy (default), else sampling with exact rejection sampling\n"
        "  --top-k K             keep the K most probable tokens (default 0 = off)\n"
        "  --top-p P             nucleus mass in (0, 1] (default 1 = off)\n"
        "  --seed S              sampling seed (default 0)\n"
        "  --threads N           worker threads (default: all cores)\n"
        "  --device D            cpu (default), cuda or cuda:N; a backend this build lacks is an error\n"
        "  --fp32                cuda: fp32 activations and KV cache (the debug mode held to the CPU)\n"
        "  --kv-bf16             cuda: a BF16 KV cache (half the memory) instead of the fp32 default\n"
        "  --max-abs X           refuse weights with |w| > X at load (default 65504; 0 = no bound)\n"
        "  --stop ID[,ID...]     stop ids (default: the config's eos_token_id); --ignore-eos: none\n"
        "  --window-inclusive    SWA keys with i - j <= W (SGLang) instead of i - j < W (default)\n"
        "  --drafter-rope-theta X  RoPE base of the drafter (default: its config's rope_theta)\n"
        "  --format text|json    (default text)\n"
        "  -q                    text format: no statistics on stderr\n"
        "  -h, --help            this text\n"
        "Exit status: 0 ok, 2 usage error, 3 bad input (model, drafter, tokenizer, prompt).\n",
        RT_MAX_BLOCK);
}

/* The process's peak resident set so far, in kB (getrusage). */
static uint64_t peak_rss_kb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_maxrss > 0 ? (uint64_t)ru.ru_maxrss : 0;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || e == s || *e || s[0] == '-' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_f(const char *s, double lo, double hi, double *out)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || e == s || *e || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

/* "1,2, 3" -> ids (malloc'd). */
static int parse_ids(const char *s, int32_t **ids, size_t *n)
{
    size_t cap = 16, k = 0;
    int32_t *v = malloc(cap * sizeof(int32_t));
    while (v && *s) {
        while (*s == ' ' || *s == ',')
            s++;
        if (!*s)
            break;
        char *e;
        errno = 0;
        long long x = strtoll(s, &e, 10);
        if (errno || e == s || x < 0 || x > INT32_MAX) {
            free(v);
            return -1;
        }
        if (k == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof(int32_t));
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[k++] = (int32_t)x;
        s = e;
        if (*s && *s != ',' && *s != ' ') {
            free(v);
            return -1;
        }
    }
    if (!v || k == 0) {
        free(v);
        return -1;
    }
    *ids = v;
    *n = k;
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    size_t got;
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(b, (cap *= 2) + 1);
            if (!nb) {
                free(b);
                b = NULL;
            }
            b = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!b || bad) {
        free(b);
        return NULL;
    }
    b[n] = 0;
    *len = n;
    return b;
}

/* Streaming text (docs/tokenizer.md, Streaming): token bytes collect in a pending buffer; the
 * prefix no later byte can change is printed through the lossy UTF-8 conversion, so the streamed
 * text is byte-identical to decoding all ids at once (special tokens skipped). Without a
 * tokenizer, ids are printed. */
typedef struct stream {
    const rt_tokenizer *tok;
    char pend[64];
    size_t np;
} stream;

static void put_lossy(const char *b, size_t n)
{
    char *txt = NULL;
    size_t tl = 0;
    lq_error e;
    if (n && rt_tokenizer_utf8_lossy(b, n, &txt, &tl, &e) == LQ_OK)
        fwrite(txt, 1, tl, stdout);
    free(txt);
}

static int on_tokens(void *ctx, const int32_t *t, size_t n)
{
    stream *s = ctx;
    for (size_t i = 0; i < n; i++) {
        if (!s->tok) {
            printf("%d ", t[i]);
            continue;
        }
        size_t len = 0;
        const char *b = rt_tokenizer_token_bytes(s->tok, t[i], &len);
        if (!b || rt_tokenizer_is_special(s->tok, t[i]))
            continue;
        /* pending (< 4 bytes) + this token: print the stable prefix, keep the rest */
        char *buf = malloc(s->np + len);
        if (!buf)
            return 1;
        memcpy(buf, s->pend, s->np);
        memcpy(buf + s->np, b, len);
        size_t all = s->np + len, k = rt_tokenizer_utf8_stable(buf, all);
        put_lossy(buf, k);
        s->np = all - k < sizeof(s->pend) ? all - k : 0;
        memcpy(s->pend, buf + k, s->np);
        free(buf);
    }
    fflush(stdout);
    return 0;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int fail(const char *what, const lq_error *err)
{
    char buf[1600];
    fprintf(stderr, "mimo-run: %s: %s\n", what, lq_error_format(err, buf, sizeof(buf)));
    return 3;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *prompt_ids = NULL, *prompt_file = NULL, *drafter_dir = NULL,
               *stop_s = NULL;
    uint64_t max_tokens = 64, block = 0, top_k = 0, seed = 0, threads = 0;
    double temperature = 0, top_p = 1, dtheta = 0, max_abs = 0;
    int dflash = -1, json = 0, quiet = 0, ignore_eos = 0, incl = 0, device = 0, fp32 = 0, kv_bf16 = 0;
    const char *backend = "cpu";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0, used = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dflash"))
            dflash = 1, used = 0;
        else if (!strcmp(a, "--no-dflash"))
            dflash = 0, used = 0;
        else if (!strcmp(a, "--ignore-eos"))
            ignore_eos = 1, used = 0;
        else if (!strcmp(a, "--fp32"))
            fp32 = 1, used = 0;
        else if (!strcmp(a, "--kv-bf16"))
            kv_bf16 = 1, used = 0;
        else if (!strcmp(a, "--window-inclusive"))
            incl = 1, used = 0;
        else if (!strcmp(a, "-q"))
            quiet = 1, used = 0;
        else if (a[0] == '-' && a[1] == '-' && !v) {
            fprintf(stderr, "mimo-run: %s: unknown option, or its value is missing\n", a);
            return 2;
        } else if (!strcmp(a, "--prompt"))
            prompt = v;
        else if (!strcmp(a, "--prompt-ids"))
            prompt_ids = v;
        else if (!strcmp(a, "--prompt-file"))
            prompt_file = v;
        else if (!strcmp(a, "--drafter"))
            drafter_dir = v;
        else if (!strcmp(a, "--stop"))
            stop_s = v;
        else if (!strcmp(a, "--max-tokens"))
            bad = parse_u64(v, 1, 1u << 20, &max_tokens);
        else if (!strcmp(a, "--block-size"))
            bad = parse_u64(v, 2, RT_MAX_BLOCK, &block);
        else if (!strcmp(a, "--top-k"))
            bad = parse_u64(v, 0, 1u << 30, &top_k);
        else if (!strcmp(a, "--seed"))
            bad = parse_u64(v, 0, UINT64_MAX, &seed);
        else if (!strcmp(a, "--threads"))
            bad = parse_u64(v, 1, 256, &threads);
        else if (!strcmp(a, "--temperature"))
            bad = parse_f(v, 0, 100, &temperature);
        else if (!strcmp(a, "--top-p"))
            bad = parse_f(v, 1e-9, 1, &top_p);
        else if (!strcmp(a, "--device"))
            bad = rt_parse_device(v, &backend, &device);
        else if (!strcmp(a, "--max-abs")) {
            bad = parse_f(v, 0, 1e300, &max_abs);
            if (!bad && max_abs == 0)
                max_abs = -1; /* no bound */
        } else if (!strcmp(a, "--drafter-rope-theta"))
            bad = parse_f(v, 1.0001, 1e12, &dtheta);
        else if (!strcmp(a, "--format")) {
            if (!strcmp(v, "json"))
                json = 1;
            else if (strcmp(v, "text"))
                bad = 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "mimo-run: unknown option %s\n", a);
            return 2;
        } else if (!model) {
            model = a;
            used = 0;
        } else {
            fprintf(stderr, "mimo-run: more than one MODEL (%s)\n", a);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "mimo-run: bad value for %s: '%s'\n", a, v);
            return 2;
        }
        i += used;
    }
    if (!model || (!!prompt + !!prompt_ids + !!prompt_file) != 1) {
        usage(stderr);
        fprintf(stderr, "mimo-run: give MODEL and exactly one of --prompt, --prompt-ids, --prompt-file\n");
        return 2;
    }
    if (!threads) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nc > 0 ? (uint64_t)(nc < 256 ? nc : 256) : 1;
    }
    lq_error err = {0};
    rt_model *m = NULL;
    rt_prof prof = {{0}};
    rt_model_opts mo = {.backend = backend, .device = device, .threads = (int)threads, .window_inclusive = incl,
                        .max_abs = max_abs, .world = 1, .prof = &prof, .fp32 = fp32,
                        .kv_bf16 = kv_bf16};
    if (rt_model_open(model, &mo, &m, &err) != LQ_OK)
        return fail("model", &err);
    const lq_mimo_config *cfg = rt_model_config(m);
    int rc = 0;
    rt_tokenizer *tok = NULL;
    rt_drafter *dr = NULL;
    int32_t *ids = NULL, *out = NULL;
    size_t n = 0, nout = 0;
    char tpath[4200], ddir[4200];
    snprintf(tpath, sizeof(tpath), "%s/tokenizer.json", model);
    if (access(tpath, F_OK) == 0 && rt_tokenizer_open(tpath, &tok, &err) != LQ_OK) {
        rc = fail("tokenizer", &err);
        goto done;
    }
    if (prompt || prompt_file) {
        size_t len = 0;
        char *text = prompt ? NULL : read_file(prompt_file, &len);
        if (prompt_file && !text) {
            fprintf(stderr, "mimo-run: cannot read %s: %s\n", prompt_file, strerror(errno));
            rc = 3;
            goto done;
        }
        if (!tok) {
            fprintf(stderr, "mimo-run: %s: no tokenizer.json: give the prompt as --prompt-ids\n", model);
            free(text);
            rc = 3;
            goto done;
        }
        lq_status st = rt_tokenizer_encode(tok, prompt ? prompt : text, prompt ? strlen(prompt) : len, &ids, &n, &err);
        free(text);
        if (st != LQ_OK) {
            rc = fail("prompt", &err);
            goto done;
        }
        if (n == 0) {
            fprintf(stderr, "mimo-run: the prompt encodes to no tokens\n");
            rc = 3;
            goto done;
        }
    } else if (parse_ids(prompt_ids, &ids, &n) != 0) {
        fprintf(stderr, "mimo-run: --prompt-ids: expected non-negative integers separated by commas\n");
        rc = 2;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if ((uint32_t)ids[i] >= cfg->vocab_size) {
            fprintf(stderr, "mimo-run: prompt id %d (position %zu) outside the vocabulary of %u\n", ids[i], i,
                    cfg->vocab_size);
            rc = 3;
            goto done;
        }
    if (drafter_dir)
        snprintf(ddir, sizeof(ddir), "%s", drafter_dir);
    else
        snprintf(ddir, sizeof(ddir), "%s/dflash", model);
    if (dflash == -1)
        dflash = is_dir(ddir);
    if (dflash) {
        rt_drafter_opts dopt = {dtheta};
        if (rt_drafter_open(ddir, m, &dopt, &dr, &err) != LQ_OK) {
            rc = fail("drafter", &err);
            goto done;
        }
    }
    int32_t stops[64];
    size_t nstop = 0;
    if (stop_s) {
        int32_t *sv = NULL;
        size_t ns = 0;
        if (parse_ids(stop_s, &sv, &ns) != 0 || ns > 64) {
            fprintf(stderr, "mimo-run: --stop: expected up to 64 ids separated by commas\n");
            free(sv);
            rc = 2;
            goto done;
        }
        memcpy(stops, sv, ns * sizeof(int32_t));
        nstop = ns;
        free(sv);
    } else if (!ignore_eos)
        for (uint32_t i = 0; i < cfg->n_eos && nstop < 64; i++)
            stops[nstop++] = (int32_t)cfg->eos_token_ids[i];
    if (ignore_eos)
        nstop = 0;
    out = malloc(max_tokens * sizeof(int32_t));
    if (!out) {
        fprintf(stderr, "mimo-run: out of memory\n");
        rc = 3;
        goto done;
    }
    stream ss = {tok, {0}, 0};
    rt_gen_opts go = {0};
    go.max_tokens = max_tokens;
    go.block = (uint32_t)block;
    go.sampling = (rt_sampling){temperature, (uint32_t)top_k, top_p, seed};
    go.stop = stops;
    go.n_stop = nstop;
    go.rt = (rt_opts){.threads = (int)threads};
    if (!json) {
        go.on_tokens = on_tokens;
        go.cb_ctx = &ss;
    }
    rt_gen_stats S;
    if (rt_generate(m, dr, ids, n, &go, out, &nout, &S, &err) != LQ_OK) {
        if (!json) {
            put_lossy(ss.pend, ss.np);
            putchar('\n');
        }
        rc = fail("generate", &err);
        goto done;
    }
    const uint32_t B = dr ? (block ? (uint32_t)block : rt_drafter_config(dr)->block_size) : 1;
    double pre_tps = S.prefill_s > 0 ? (double)n / S.prefill_s : 0;
    double dec_tps = S.decode_s > 0 && nout > 1 ? (double)(nout - 1) / S.decode_s : 0;
    const char *why = S.stopped == 1 ? "stop token" : nout >= max_tokens ? "max tokens" : "callback";
    /* On a GPU: the weight bytes a target step reads (dense layers, attention, K experts per MoE
     * layer, lm_head: a verify step of B rows touches more experts, so this is a lower bound), the
     * rate they were read at over the decode, and its share of the device's copy bandwidth. */
    const double step_gb = (double)rt_model_bytes_per_token(m) / 1e9;
    const double copy_gbps = step_gb > 0 ? rt_model_copy_gbps(m) : 0;
    const double read_gbps = S.decode_s > 0 ? step_gb * (double)S.steps / S.decode_s : 0;
    if (json) {
        char *text = NULL;
        size_t tlen = 0;
        if (tok && rt_tokenizer_decode(tok, out, nout, 1, &text, &tlen, &err) != LQ_OK) {
            rc = fail("decode", &err);
            goto done;
        }
        lq_jw *w = lq_jw_new(0);
        lq_jw_begin_object(w);
        lq_jw_key(w, "model");
        lq_jw_string(w, model);
        lq_jw_key(w, "prompt_tokens");
        lq_jw_u64(w, n);
        lq_jw_key(w, "tokens");
        lq_jw_begin_array(w);
        for (size_t i = 0; i < nout; i++)
            lq_jw_i64(w, out[i]);
        lq_jw_end_array(w);
        lq_jw_key(w, "text");
        if (text)
            lq_jw_string_n(w, text, tlen);
        else
            lq_jw_null(w);
        lq_jw_key(w, "stopped_by");
        lq_jw_string(w, why);
        lq_jw_key(w, "dflash");
        lq_jw_bool(w, dr != NULL);
        lq_jw_key(w, "block_size");
        lq_jw_u64(w, B);
        lq_jw_key(w, "steps");
        lq_jw_u64(w, S.steps);
        lq_jw_key(w, "tau");
        lq_jw_double(w, S.tau, 6);
        lq_jw_key(w, "accept_hist");
        lq_jw_begin_array(w);
        for (uint32_t i = 1; i <= B; i++)
            lq_jw_u64(w, S.accept_hist[i]);
        lq_jw_end_array(w);
        lq_jw_key(w, "prefill_tokens_per_s");
        lq_jw_double(w, pre_tps, 6);
        lq_jw_key(w, "decode_tokens_per_s");
        lq_jw_double(w, dec_tps, 6);
        lq_jw_key(w, "prefill_s");
        lq_jw_double(w, S.prefill_s, 6);
        lq_jw_key(w, "decode_s");
        lq_jw_double(w, S.decode_s, 6);
        lq_jw_key(w, "draft_s");
        lq_jw_double(w, S.draft_s, 6);
        lq_jw_key(w, "verify_s");
        lq_jw_double(w, S.verify_s, 6);
        lq_jw_key(w, "target_component_s");
        lq_jw_begin_object(w);
        for (int i = 0; i < RT_PROF_N; i++) {
            lq_jw_key(w, rt_prof_name(i));
            lq_jw_double(w, prof.s[i], 6);
        }
        lq_jw_end_object(w);
        lq_jw_key(w, "threads");
        lq_jw_u64(w, threads);
        lq_jw_key(w, "device");
        lq_jw_string(w, rt_model_backend(m));
        lq_jw_key(w, "kv_dtype");
        lq_jw_string(w, kv_bf16 && !fp32 && strcmp(rt_model_backend(m), "cpu") ? "bf16" : "f32");
        lq_jw_key(w, "peak_rss_kb");
        lq_jw_u64(w, peak_rss_kb());
        if (step_gb > 0) {
            lq_jw_key(w, "weight_gb_per_step");
            lq_jw_double(w, step_gb, 6);
            lq_jw_key(w, "read_gb_per_s");
            lq_jw_double(w, read_gbps, 3);
            lq_jw_key(w, "copy_gb_per_s");
            lq_jw_double(w, copy_gbps, 3);
            lq_jw_key(w, "roofline_share");
            lq_jw_double(w, copy_gbps > 0 ? read_gbps / copy_gbps : 0, 6);
        }
        lq_jw_key(w, "temperature");
        lq_jw_double(w, temperature, 6);
        lq_jw_key(w, "seed");
        lq_jw_u64(w, seed);
        lq_jw_end_object(w);
        char *js = NULL;
        size_t jl = 0;
        lq_status st = lq_jw_finish(w, &js, &jl, &err);
        lq_jw_free(w);
        free(text);
        if (st != LQ_OK) {
            rc = fail("json", &err);
            goto done;
        }
        fwrite(js, 1, jl, stdout);
        putchar('\n');
        free(js);
    } else {
        put_lossy(ss.pend, ss.np);
        putchar('\n');
        fflush(stdout);
        if (!quiet) {
            fprintf(stderr, "prefill: %zu tokens in %.3f s (%.1f tokens/s)\n", n, S.prefill_s, pre_tps);
            fprintf(stderr, "decode: %zu tokens in %.3f s (%.2f tokens/s), %zu target steps, ended by %s\n", nout,
                    S.decode_s, dec_tps, S.steps, why);
            double tot = 0;
            for (int i = 0; i < RT_PROF_N; i++)
                tot += prof.s[i];
            fprintf(stderr, "target forward %.3f s:", tot);
            for (int i = 0; i < RT_PROF_N; i++)
                fprintf(stderr, " %s %.1f%%", rt_prof_name(i), tot > 0 ? 100 * prof.s[i] / tot : 0);
            fputc('\n', stderr);
            if (step_gb > 0)
                fprintf(stderr, "%s: %.3f GB of weights per target step, read at %.1f GB/s over the decode: %.1f%% of "
                        "the device copy bandwidth (%.0f GB/s, measured now)\n", rt_model_backend(m), step_gb, read_gbps,
                        copy_gbps > 0 ? 100 * read_gbps / copy_gbps : 0.0, copy_gbps);
            if (dr) {
                fprintf(stderr, "dflash: block %u, tau %.3f tokens/step (draft %.3f s, verify %.3f s)\n", B, S.tau,
                        S.draft_s, S.verify_s);
                fprintf(stderr, "accepted per step:");
                for (uint32_t i = 1; i <= B; i++)
                    fprintf(stderr, " %u:%zu", i, S.accept_hist[i]);
                fputc('\n', stderr);
            }
        }
    }
done:
    free(ids), free(out);
    rt_drafter_close(dr);
    rt_tokenizer_close(tok);
    rt_model_close(m);
    return rc;
}
