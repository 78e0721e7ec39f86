/* mimo-mxreport: what MXFP4 would cost, before converting anything.
 *
 * Opens a checkpoint (strictly validated), takes every routed-expert projection
 * (`*.mlp.experts.E.{gate,up,down}_proj.weight`), decodes it to f32 (BF16/F16/F32 directly,
 * F8_E4M3 through its `weight_scale_inv` grid), quantizes it to MXFP4 with the chosen scale
 * mode, decodes the result and prints one line of error metrics per tensor, then the totals.
 * Nothing is written. */
#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libquant/libquant.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: mimo-mxreport CHECKPOINT_DIR [options]\n"
        "Quantizes every routed expert to MXFP4 in memory and prints per-tensor error metrics.\n"
        "  --mode M       scale mode: mse (default), even, floor, rceil\n"
        "  --threads N    quantizer threads, 1..256 (default 2)\n"
        "  --format F     text (default) or json\n"
        "  --limit N      stop after N tensors, >= 1 (default: all)\n"
        "  -h, --help     this text\n"
        "Columns: SQNR dB = 10 log10(sum w^2 / sum (w-q)^2); rel_mse = its inverse as a ratio;\n"
        "cos = cosine(w, q); max_err = max |w-q|; clip%% = |w/X| > 6; zero%% = w != 0 but q = 0.\n"
        "Exit status: 0 ok, 2 usage error, 3 bad input or I/O error.\n");
}

static int is_expert(const regex_t *re, const char *name)
{
    return regexec(re, name, 0, NULL, 0) == 0;
}

/* Natural order: runs of digits compare as numbers, so layer 2 comes before layer 10. */
static int natural_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            while (*a == '0')
                a++;
            while (*b == '0')
                b++;
            size_t la = 0, lb = 0;
            while (a[la] >= '0' && a[la] <= '9')
                la++;
            while (b[lb] >= '0' && b[lb] <= '9')
                lb++;
            if (la != lb)
                return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c)
                return c;
            a += la;
            b += lb;
        } else {
            if (*a != *b)
                return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
            a++;
            b++;
        }
    }
    return *a ? 1 : (*b ? -1 : 0);
}

static const lq_ckpt *sort_ck;

static int cmp_index(const void *x, const void *y)
{
    return natural_cmp(lq_ckpt_at(sort_ck, *(const size_t *)x).info->name,
                       lq_ckpt_at(sort_ck, *(const size_t *)y).info->name);
}

/* Prints s as a JSON string literal. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_err(const lq_error *err)
{
    char buf[1400];
    fprintf(stderr, "mimo-mxreport: %s\n", lq_error_format(err, buf, sizeof(buf)));
}

/* Decodes tensor t of ck into a new f32 buffer (caller frees). */
static lq_status load_f32(const lq_ckpt *ck, const lq_ckpt_tensor *t, float **out, lq_error *err)
{
    const lq_tensor_info *ti = t->info;
    const uint8_t *data = lq_st_data(t->file, ti);
    float *buf = malloc(ti->numel ? ti->numel * sizeof(float) : 1);
    if (!buf)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, ti->name, NULL, "cannot allocate %" PRIu64 " floats", ti->numel);
    lq_status st;
    if (ti->dtype == LQ_DTYPE_F8_E4M3 || ti->dtype == LQ_DTYPE_F8_E5M2) {
        char sname[600];
        snprintf(sname, sizeof(sname), "%s_scale_inv", ti->name);
        lq_ckpt_tensor s;
        if (lq_ckpt_find(ck, sname, &s) != 0 || s.info->rank != 2 || ti->rank != 2) {
            free(buf);
            return lq_fail(err, LQ_ERR_CORRUPT, lq_st_path(t->file), ti->name, "FP8_NO_SCALE",
                           "FP8 weight without a 2-D %s partner", sname);
        }
        lq_fp8_grid g;
        st = lq_fp8_grid_detect(ti->shape[0], ti->shape[1], s.info->shape[0], s.info->shape[1],
                                128, 128, 0, ti->name, &g, err);
        if (st == LQ_OK)
            st = lq_fp8_block_dequant(&g, ti->dtype, data, s.info->dtype, lq_st_data(s.file, s.info),
                                      0, ti->shape[0], buf, ti->name, err);
    } else {
        st = lq_to_f32(ti->dtype, data, (size_t)ti->numel, buf);
        if (st != LQ_OK)
            lq_fail(err, st, lq_st_path(t->file), ti->name, "DTYPE", "cannot decode %s", lq_dtype_name(ti->dtype));
    }
    if (st != LQ_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return LQ_OK;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *format = "text";
    lq_mx_scale_mode mode = LQ_MX_SCALE_MSE;
    long threads = 2;
    uint64_t limit = UINT64_MAX;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--mode") && v) {
            if (lq_mx_scale_mode_parse(v, &mode) != LQ_OK) {
                fprintf(stderr, "mimo-mxreport: --mode: unknown scale mode %s\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--threads") && v) {
            errno = 0;
            threads = strtol(v, &end, 10);
            if (errno || *end || threads < 1 || threads > 256) {
                fprintf(stderr, "mimo-mxreport: --threads: need 1..256: %s\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--format") && v) {
            if (strcmp(v, "text") && strcmp(v, "json")) {
                fprintf(stderr, "mimo-mxreport: --format: text or json\n");
                return 2;
            }
            format = v;
            i++;
        } else if (!strcmp(a, "--limit") && v) {
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (errno || *end || n < 1 || *v == '-') {
                fprintf(stderr, "mimo-mxreport: --limit: need an integer >= 1: %s\n", v);
                return 2;
            }
            limit = n;
            i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "mimo-mxreport: unknown or incomplete option: %s\n", a);
            usage(stderr);
            return 2;
        } else if (!dir) {
            dir = a;
        } else {
            fprintf(stderr, "mimo-mxreport: more than one checkpoint given\n");
            return 2;
        }
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    int json = !strcmp(format, "json");
    regex_t re;
    if (regcomp(&re, "\\.mlp\\.experts\\.[0-9]+\\.(gate|up|down)_proj\\.weight$", REG_EXTENDED | REG_NOSUB)) {
        fprintf(stderr, "mimo-mxreport: internal error compiling the expert pattern\n");
        return 3;
    }
    lq_error err;
    lq_error_clear(&err);
    lq_ckpt *ck = NULL;
    if (lq_ckpt_open(dir, NULL, &ck, &err) != LQ_OK) {
        print_err(&err);
        regfree(&re);
        return 3;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    lq_err_acc total;
    lq_err_acc_init(&total);
    uint64_t ntensors = 0, in_bytes = 0;
    double worst = 1e300;
    char worst_name[256] = "";
    int rc = 0;
    /* The routed experts, in natural name order (layer, expert, projection). */
    size_t nexp = 0, *order = malloc((lq_ckpt_count(ck) + 1) * sizeof(size_t));
    if (!order) {
        fprintf(stderr, "mimo-mxreport: out of memory\n");
        lq_ckpt_close(ck);
        regfree(&re);
        return 3;
    }
    for (size_t i = 0; i < lq_ckpt_count(ck); i++)
        if (is_expert(&re, lq_ckpt_at(ck, i).info->name))
            order[nexp++] = i;
    sort_ck = ck;
    qsort(order, nexp, sizeof(size_t), cmp_index);
    if (nexp == 0) {
        fprintf(stderr, "mimo-mxreport: %s: no routed-expert tensors found\n", dir);
        free(order);
        lq_ckpt_close(ck);
        regfree(&re);
        return 3;
    }
    if (json)
    {
        printf("{\"checkpoint\":");
        json_str(dir);
        printf(",\"mode\":\"%s\",\"tensors\":[", lq_mx_scale_mode_name(mode));
    }
    else
        printf("%-52s %-11s %-8s %8s %10s %9s %9s %6s %6s\n", "tensor", "shape", "source", "SQNR_dB",
               "rel_mse", "cos", "max_err", "clip%", "zero%");
    for (size_t k = 0; k < nexp && ntensors < limit; k++) {
        lq_ckpt_tensor t = lq_ckpt_at(ck, order[k]);
        const lq_tensor_info *ti = t.info;
        if (ti->rank != 2 || ti->shape[1] % LQ_MX_BLOCK != 0) {
            fprintf(stderr, "mimo-mxreport: %s: skipped: K = %" PRIu64 " is not a multiple of 32\n",
                    ti->name, ti->rank == 2 ? ti->shape[1] : 0);
            continue;
        }
        float *w = NULL;
        if (load_f32(ck, &t, &w, &err) != LQ_OK) {
            print_err(&err);
            rc = 3;
            break;
        }
        size_t n = (size_t)ti->numel;
        uint8_t *packed = malloc(n / 2 + 1), *scales = malloc(n / 32 + 1);
        float *q = malloc(n * sizeof(float) + 1);
        if (!packed || !scales || !q) {
            fprintf(stderr, "mimo-mxreport: out of memory\n");
            free(packed), free(scales), free(q), free(w);
            rc = 3;
            break;
        }
        size_t bad = 0;
        lq_status st = lq_mxfp4_quantize_mt(w, n, mode, packed, scales, NULL, &bad, (int)threads);
        if (st == LQ_OK)
            st = lq_mxfp4_dequantize(packed, scales, n, q, NULL);
        if (st != LQ_OK) {
            fprintf(stderr, "mimo-mxreport: %s: %s: %s at element %zu\n", lq_st_path(t.file), ti->name,
                    lq_status_str(st), bad);
            free(packed), free(scales), free(q), free(w);
            rc = 3;
            break;
        }
        lq_err_acc acc;
        lq_err_acc_init(&acc);
        lq_err_acc_add(&acc, w, q, n, scales);
        lq_err_acc_merge(&total, &acc);
        lq_metrics m;
        lq_err_acc_finish(&acc, &m);
        if (m.sqnr_db < worst) {
            worst = m.sqnr_db;
            snprintf(worst_name, sizeof(worst_name), "%s", ti->name);
        }
        char shape[32];
        snprintf(shape, sizeof(shape), "%" PRIu64 "x%" PRIu64, ti->shape[0], ti->shape[1]);
        if (json)
        {
            printf("%s{\"name\":", ntensors ? "," : "");
            json_str(ti->name);
            printf(",\"shape\":[%" PRIu64 ",%" PRIu64 "],\"source\":\"%s\",\"sqnr_db\":%.4f,"
                   "\"rel_mse\":%.6e,\"cosine\":%.6f,\"max_abs_err\":%.6e,\"clip_frac\":%.6f,\"zero_frac\":%.6f}",
                   ti->shape[0], ti->shape[1], lq_dtype_name(ti->dtype),
                   m.sqnr_db, m.rel_mse, m.cosine, m.max_abs, m.clip_frac, m.zero_frac);
        } else
            printf("%-52s %-11s %-8s %8.3f %10.3e %9.6f %9.3e %6.2f %6.2f\n", ti->name, shape,
                   lq_dtype_name(ti->dtype), m.sqnr_db, m.rel_mse, m.cosine, m.max_abs,
                   100 * m.clip_frac, 100 * m.zero_frac);
        ntensors++;
        in_bytes += ti->nbytes;
        free(packed), free(scales), free(q), free(w);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    lq_metrics m;
    lq_err_acc_finish(&total, &m);
    if (json) {
        printf("],\"summary\":{\"tensors\":%" PRIu64 ",\"elements\":%" PRIu64 ",\"sqnr_db\":%.4f,"
               "\"cosine\":%.6f,\"clip_frac\":%.6f,\"zero_frac\":%.6f,\"worst_tensor\":",
               ntensors, m.n, m.sqnr_db, m.cosine, m.clip_frac, m.zero_frac);
        json_str(worst_name);
        printf(",\"worst_sqnr_db\":%.4f,\"seconds\":%.3f}}\n", ntensors ? worst : 0.0, secs);
    } else {
        printf("%" PRIu64 " expert tensors, %" PRIu64 " elements, mode %s: SQNR %.3f dB, cosine %.6f, "
               "clip %.3f%%, zero %.3f%%; worst %s %.3f dB; %.2f s (%.2f GB/s of source bytes)\n",
               ntensors, m.n, lq_mx_scale_mode_name(mode), m.sqnr_db, m.cosine, 100 * m.clip_frac,
               100 * m.zero_frac, worst_name, ntensors ? worst : 0.0, secs, secs > 0 ? in_bytes / secs / 1e9 : 0.0);
    }
    free(order);
    lq_ckpt_close(ck);
    regfree(&re);
    return rc;
}
