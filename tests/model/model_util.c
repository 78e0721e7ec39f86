/* Test helpers for tests/model (model_util.h). */
#include "model_util.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int mu_mkdtemp(char *out, size_t cap)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    int n = snprintf(out, cap, "%s/mimo-model-XXXXXX", base);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return mkdtemp(out) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void mu_rmtree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int mu_mkfixture(const char *mkfixture, const char *variant, const char *dir, int drafter)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char *argv[] = {(char *)mkfixture, "--preset", "tiny", "--variant", (char *)variant,
                        "--out", (char *)dir, "-q", drafter ? NULL : "--no-drafter", NULL};
        execv(mkfixture, argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    *len = n;
    return buf;
}

int mu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, len, f) == len;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

int mu_copy_dir(const char *src, const char *dst)
{
    if (mkdir(dst, 0755) != 0)
        return -1;
    DIR *d = opendir(src);
    if (!d)
        return -1;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char sp[1024], dp[1024];
        snprintf(sp, sizeof(sp), "%s/%s", src, de->d_name);
        snprintf(dp, sizeof(dp), "%s/%s", dst, de->d_name);
        struct stat sb;
        if (stat(sp, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        size_t len = 0;
        void *buf = read_all(sp, &len);
        rc = buf ? mu_write_file(dp, buf, len) : -1;
        free(buf);
    }
    closedir(d);
    return rc;
}

cJSON *mu_read_json(const char *path)
{
    cJSON *root = NULL;
    lq_error err;
    if (lq_json_parse_file(path, 0, NULL, &root, &err) != LQ_OK)
        return NULL;
    return root;
}

int mu_write_json(const char *path, const cJSON *root)
{
    char *text = cJSON_Print(root);
    if (!text)
        return -1;
    int rc = mu_write_file(path, text, strlen(text));
    free(text);
    return rc;
}

int mu_rewrite_st(const char *src_path, const char *dst_dir, const char *file_name,
                  const mu_edit *e, int with_index)
{
    lq_error err;
    lq_st_file *f = NULL;
    lq_stw *w = NULL;
    char path[1024];
    const char **names = NULL, **files = NULL;
    uint8_t *zeros = NULL;
    int rc = -1;
    if (lq_st_open(src_path, NULL, &f, &err) != LQ_OK)
        return -1;
    snprintf(path, sizeof(path), "%s/%s", dst_dir, file_name);
    size_t n = lq_st_count(f);
    names = calloc(n + 1, sizeof(*names));
    files = calloc(n + 1, sizeof(*files));
    if (!names || !files || lq_stw_create(path, &w, &err) != LQ_OK)
        goto cleanup;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const lq_tensor_info *t = lq_st_tensor(f, i);
        if (e && e->drop && strcmp(t->name, e->drop) == 0)
            continue;
        int ch = e && e->change && strcmp(t->name, e->change) == 0;
        if (lq_stw_add(w, t->name, ch ? e->change_dtype : t->dtype, ch ? e->change_rank : t->rank,
                       ch ? e->change_shape : t->shape, &err) != LQ_OK)
            goto cleanup;
        names[k] = t->name;
        files[k++] = file_name;
    }
    if (e && e->add) {
        if (lq_stw_add(w, e->add, e->add_dtype, e->add_rank, e->add_shape, &err) != LQ_OK)
            goto cleanup;
        names[k] = e->add;
        files[k++] = file_name;
    }
    if (lq_stw_begin(w, &err) != LQ_OK)
        goto cleanup;
    for (size_t i = 0; i < lq_stw_count(w); i++) {
        const lq_tensor_info *t = lq_stw_tensor(w, i);
        const lq_tensor_info *src = lq_st_find(f, t->name);
        int same = src && src->dtype == t->dtype && src->nbytes == t->nbytes;
        const void *data = same ? (const void *)lq_st_data(f, src) : NULL;
        if (!same) {
            free(zeros);
            zeros = calloc(1, t->nbytes ? t->nbytes : 1);
            if (!zeros)
                goto cleanup;
            data = zeros;
        }
        if (lq_stw_write_tensor(w, t->name, data, t->nbytes, &err) != LQ_OK)
            goto cleanup; /* the writer discarded its temporary; abort below frees it */
    }
    uint64_t total = lq_stw_total_size(w);
    lq_status st = lq_stw_finish(w, NULL, NULL, &err);
    w = NULL;
    if (st != LQ_OK)
        goto cleanup;
    if (with_index) {
        snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dst_dir);
        if (lq_index_write(path, names, files, k, total, NULL, NULL, &err) != LQ_OK)
            goto cleanup;
    }
    rc = 0;
cleanup:
    lq_stw_abort(w);
    lq_st_close(f);
    free(zeros);
    free(names);
    free(files);
    return rc;
}
