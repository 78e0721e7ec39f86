/* Hugging Face checkpoint directories (checkpoint.h).
 *
 * The index is the only source of shard names: each distinct name is checked as a plain file
 * name before a path is built from it, then resolved with realpath and compared with the
 * resolved directory, so neither "../x" nor a symlink can make us read outside the checkpoint.
 * The cross-checks between index and shards work on two name-sorted lists walked in step, so a
 * checkpoint with a million tensors costs O(n log n), not a lookup per tensor in the JSON tree. */
#include "checkpoint.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"

#define DEFAULT_INDEX "model.safetensors.index.json"
#define DEFAULT_SINGLE "model.safetensors"
#define SHARD_SUFFIX ".safetensors"
#define CONFIG_NAME "config.json"
/* A weight_map line is about 100 bytes; 256 MiB leaves room for millions of tensors. */
#define INDEX_MAX_BYTES (256u * 1024u * 1024u)

typedef struct ck_shard {
    char *name; /* as written in the index */
    char *path; /* dir/name, used to open it and in messages */
    lq_st_file *file;
} ck_shard;

struct lq_ckpt {
    char *dir;
    cJSON *config;
    int has_index;
    ck_shard *shards;
    size_t nshards;
    lq_ckpt_tensor *tensors; /* by name */
    size_t count;
};

/* One weight_map entry; strings point into the index tree. */
typedef struct idx_entry {
    const char *tensor;
    const char *shard_name;
    uint32_t shard;
} idx_entry;

typedef struct ck_opts {
    const char *index_name, *single_file;
    int require_config, allow_outside;
    const lq_st_limits *limits;
} ck_opts;

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* Why `name` is not a plain shard file name, or NULL when it is. */
static const char *shard_name_problem(const char *name)
{
    size_t n = strlen(name), sn = strlen(SHARD_SUFFIX);
    if (n == 0)
        return "empty";
    if (name[0] == '/')
        return "an absolute path";
    if (strchr(name, '/') || strchr(name, '\\'))
        return "a path with a directory separator";
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return "a directory reference";
    if (n <= sn || strcmp(name + n - sn, SHARD_SUFFIX) != 0)
        return "not a .safetensors file name";
    return NULL;
}

/* Rewrites the rule of an error already in err, keeping status, file and message. */
static lq_status relabel(lq_error *err, lq_status st, const char *rule)
{
    if (!err)
        return st;
    lq_error copy = *err;
    return lq_fail(err, st, copy.file, copy.tensor, rule, "%s", copy.msg);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_idx(const void *a, const void *b)
{
    return strcmp(((const idx_entry *)a)->tensor, ((const idx_entry *)b)->tensor);
}

static int cmp_ck_tensor(const void *a, const void *b)
{
    const lq_ckpt_tensor *x = a, *y = b;
    int c = strcmp(x->info->name, y->info->name);
    if (c)
        return c;
    return x->shard < y->shard ? -1 : x->shard > y->shard;
}

static lq_status load_config(lq_ckpt *ck, const ck_opts *o, lq_error *err)
{
    char *path = join_path(ck->dir, CONFIG_NAME);
    if (!path)
        return lq_fail(err, LQ_ERR_NO_MEMORY, ck->dir, NULL, NULL, "out of memory");
    lq_status st = lq_json_parse_file(path, 0, NULL, &ck->config, err);
    if (st == LQ_ERR_NOT_FOUND) {
        if (o->require_config) {
            st = lq_fail(err, st, path, NULL, "CKPT_CONFIG", "config.json is missing");
        } else {
            lq_error_clear(err);
            st = LQ_OK;
        }
    } else if (st == LQ_ERR_IO) {
        st = relabel(err, st, "CKPT_CONFIG");
    } else if (st == LQ_OK && !cJSON_IsObject(ck->config)) {
        st = lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "CKPT_CONFIG", "not a JSON object");
    }
    free(path);
    return st;
}

/* Resolves dir/name, requires it to exist inside dir_real (unless allowed), opens it. */
static lq_status open_shard(const char *dir_real, ck_shard *s, const ck_opts *o,
                            const char *missing_rule, lq_error *err)
{
    char *real = realpath(s->path, NULL);
    if (!real) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return lq_fail(err, LQ_ERR_NOT_FOUND, s->path, NULL, missing_rule,
                           "shard \"%s\" does not exist", s->name);
        return lq_fail(err, LQ_ERR_IO, s->path, NULL, NULL, "cannot resolve: %s", strerror(e));
    }
    lq_status st = LQ_OK;
    size_t dl = strlen(dir_real);
    /* dir_real has no trailing slash except when it is "/" itself. */
    int inside = strncmp(real, dir_real, dl) == 0 &&
                 (real[dl] == '/' || (dl == 1 && dir_real[0] == '/'));
    if (!inside && !o->allow_outside) {
        st = lq_fail(err, LQ_ERR_CORRUPT, s->path, NULL, "CKPT_SHARD_ESCAPE",
                     "resolves to %.300s, outside %.150s", real, dir_real);
        goto cleanup;
    }
    st = lq_st_open(s->path, o->limits, &s->file, err);
cleanup:
    free(real);
    return st;
}

/* Reads the index: validates its schema and shard names, fills entries and the shard list. */
static lq_status load_index(lq_ckpt *ck, const char *index_path, const cJSON *root,
                            idx_entry **entries_out, size_t *nentries_out, int *has_total,
                            uint64_t *total, lq_error *err)
{
    lq_status st = LQ_OK;
    idx_entry *entries = NULL;
    const char **names = NULL;
    *has_total = 0;

    if (!cJSON_IsObject(root))
        return lq_fail(err, LQ_ERR_CORRUPT, index_path, NULL, "CKPT_INDEX_SCHEMA",
                       "index is not a JSON object");
    for (const cJSON *k = root->child; k; k = k->next)
        if (strcmp(k->string, "metadata") != 0 && strcmp(k->string, "weight_map") != 0)
            return lq_fail(err, LQ_ERR_CORRUPT, index_path, NULL, "CKPT_INDEX_SCHEMA",
                           "unexpected top-level key \"%.100s\"", k->string);
    const cJSON *meta = lq_json_get(root, "metadata");
    const cJSON *wm = lq_json_get(root, "weight_map");
    if (meta) {
        if (!cJSON_IsObject(meta))
            return lq_fail(err, LQ_ERR_CORRUPT, index_path, NULL, "CKPT_INDEX_SCHEMA",
                           "metadata is not an object");
        const cJSON *ts = lq_json_get(meta, "total_size");
        if (ts) {
            if (lq_json_u64(ts, total) != 0)
                return lq_fail(err, LQ_ERR_CORRUPT, index_path, NULL, "CKPT_INDEX_SCHEMA",
                               "metadata.total_size is not a non-negative integer");
            *has_total = 1;
        }
    }
    if (!wm || !cJSON_IsObject(wm))
        return lq_fail(err, LQ_ERR_CORRUPT, index_path, NULL, "CKPT_INDEX_SCHEMA",
                       "weight_map is %s", wm ? "not an object" : "missing");

    size_t n = 0;
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring)
            return lq_fail(err, LQ_ERR_CORRUPT, index_path, e->string, "CKPT_INDEX_SCHEMA",
                           "weight_map value is not a string");
        n++;
    }
    if (n) {
        entries = calloc(n, sizeof(*entries));
        names = calloc(n, sizeof(*names));
        if (!entries || !names) {
            st = lq_fail(err, LQ_ERR_NO_MEMORY, index_path, NULL, NULL, "out of memory");
            goto cleanup;
        }
    }
    size_t i = 0;
    for (const cJSON *e = wm->child; e; e = e->next, i++) {
        entries[i].tensor = e->string;
        entries[i].shard_name = e->valuestring;
        names[i] = e->valuestring;
    }

    /* Distinct shard names, checked as plain file names before any path is built. */
    if (n)
        qsort(names, n, sizeof(*names), cmp_str_ptr);
    size_t nshards = 0;
    for (i = 0; i < n; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue;
        const char *why = shard_name_problem(names[i]);
        if (why) {
            st = lq_fail(err, LQ_ERR_CORRUPT, index_path, NULL, "CKPT_SHARD_NAME",
                         "shard name \"%.200s\" is %s", names[i], why);
            goto cleanup;
        }
        names[nshards++] = names[i];
    }
    if (nshards) {
        ck->shards = calloc(nshards, sizeof(*ck->shards));
        if (!ck->shards) {
            st = lq_fail(err, LQ_ERR_NO_MEMORY, index_path, NULL, NULL, "out of memory");
            goto cleanup;
        }
    }
    for (i = 0; i < nshards; i++) {
        ck_shard *s = &ck->shards[ck->nshards++];
        s->name = strdup(names[i]);
        s->path = s->name ? join_path(ck->dir, s->name) : NULL;
        if (!s->path) {
            st = lq_fail(err, LQ_ERR_NO_MEMORY, index_path, NULL, NULL, "out of memory");
            goto cleanup;
        }
    }
    /* Each entry's shard number: shards are sorted and distinct, so a binary search finds it. */
    for (i = 0; i < n; i++) {
        size_t lo = 0, hi = ck->nshards;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = strcmp(entries[i].shard_name, ck->shards[mid].name);
            if (c == 0) {
                lo = mid;
                break;
            }
            if (c < 0)
                hi = mid;
            else
                lo = mid + 1;
        }
        entries[i].shard = (uint32_t)lo;
    }
    if (n)
        qsort(entries, n, sizeof(*entries), cmp_idx);

cleanup:
    free(names);
    if (st != LQ_OK) {
        free(entries);
        return st;
    }
    *entries_out = entries;
    *nentries_out = n;
    return LQ_OK;
}

/* Builds the name-sorted list of all tensors and checks it against the index. */
static lq_status cross_check(lq_ckpt *ck, const char *index_path, const idx_entry *idx,
                             size_t nidx, int has_total, uint64_t total, lq_error *err)
{
    size_t n = 0;
    for (size_t s = 0; s < ck->nshards; s++)
        n += lq_st_count(ck->shards[s].file);
    if (n) {
        ck->tensors = calloc(n, sizeof(*ck->tensors));
        if (!ck->tensors)
            return lq_fail(err, LQ_ERR_NO_MEMORY, ck->dir, NULL, NULL, "out of memory");
    }
    for (size_t s = 0; s < ck->nshards; s++) {
        const lq_st_file *f = ck->shards[s].file;
        for (size_t i = 0; i < lq_st_count(f); i++) {
            lq_ckpt_tensor *t = &ck->tensors[ck->count++];
            t->info = lq_st_tensor(f, i);
            t->file = f;
            t->shard = (uint32_t)s;
        }
    }
    if (ck->count)
        qsort(ck->tensors, ck->count, sizeof(*ck->tensors), cmp_ck_tensor);

    for (size_t i = 1; i < ck->count; i++) {
        const lq_ckpt_tensor *a = &ck->tensors[i - 1], *b = &ck->tensors[i];
        if (strcmp(a->info->name, b->info->name) == 0)
            return lq_fail(err, LQ_ERR_CORRUPT, ck->shards[b->shard].path, b->info->name,
                           "CKPT_TENSOR_DUPLICATE", "also in shard \"%.200s\"",
                           ck->shards[a->shard].name);
    }

    if (ck->has_index) {
        size_t i = 0, j = 0;
        while (i < nidx || j < ck->count) {
            int c = i >= nidx      ? 1
                    : j >= ck->count ? -1
                                     : strcmp(idx[i].tensor, ck->tensors[j].info->name);
            if (c < 0)
                return lq_fail(err, LQ_ERR_CORRUPT, ck->shards[idx[i].shard].path, idx[i].tensor,
                               "CKPT_TENSOR_MISSING",
                               "the index maps the tensor to \"%.200s\", which does not hold it",
                               idx[i].shard_name);
            const lq_ckpt_tensor *t = &ck->tensors[j];
            if (c > 0)
                return lq_fail(err, LQ_ERR_CORRUPT, ck->shards[t->shard].path, t->info->name,
                               "CKPT_TENSOR_UNINDEXED", "the index does not list this tensor");
            if (idx[i].shard != t->shard)
                return lq_fail(err, LQ_ERR_CORRUPT, ck->shards[idx[i].shard].path, idx[i].tensor,
                               "CKPT_TENSOR_MISSING",
                               "the index maps the tensor to \"%.150s\", but it is in \"%.150s\"",
                               idx[i].shard_name, ck->shards[t->shard].name);
            i++;
            j++;
        }
    }

    if (has_total) {
        uint64_t sum = 0;
        for (size_t i = 0; i < ck->count; i++)
            sum += ck->tensors[i].info->nbytes; /* each is bounded by its file's size */
        if (sum != total)
            return lq_fail(err, LQ_ERR_CORRUPT, index_path, NULL, "CKPT_TOTAL_SIZE",
                           "metadata.total_size is %llu, the tensors hold %llu bytes",
                           (unsigned long long)total, (unsigned long long)sum);
    }
    return LQ_OK;
}

lq_status lq_ckpt_open(const char *dir, const lq_ckpt_opts *opts, lq_ckpt **out, lq_error *err)
{
    if (!dir || !out)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, dir, NULL, NULL,
                       "lq_ckpt_open: NULL argument");
    *out = NULL;

    ck_opts o = {DEFAULT_INDEX, DEFAULT_SINGLE, 1, 0, NULL};
    if (opts) {
        if (opts->index_name)
            o.index_name = opts->index_name;
        if (opts->single_file)
            o.single_file = opts->single_file;
        o.require_config = opts->require_config;
        o.allow_outside = opts->allow_outside;
        o.limits = &opts->limits;
    }

    lq_status st = LQ_OK;
    char *dir_real = NULL, *index_path = NULL;
    cJSON *index = NULL;
    idx_entry *entries = NULL;
    size_t nentries = 0;
    int has_total = 0;
    uint64_t total = 0;

    lq_ckpt *ck = calloc(1, sizeof(*ck));
    if (!ck || !(ck->dir = strdup(dir))) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
        goto cleanup;
    }
    dir_real = realpath(dir, NULL);
    if (!dir_real) {
        int e = errno;
        st = lq_fail(err, e == ENOENT ? LQ_ERR_NOT_FOUND : LQ_ERR_IO, dir, NULL, NULL,
                     "cannot resolve the checkpoint directory: %s", strerror(e));
        goto cleanup;
    }
    struct stat sb;
    if (stat(dir_real, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        st = lq_fail(err, LQ_ERR_IO, dir, NULL, NULL, "not a directory");
        goto cleanup;
    }

    st = load_config(ck, &o, err);
    if (st != LQ_OK)
        goto cleanup;

    index_path = join_path(dir, o.index_name);
    if (!index_path) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
        goto cleanup;
    }
    st = lq_json_parse_file(index_path, INDEX_MAX_BYTES, NULL, &index, err);
    if (st == LQ_OK) {
        ck->has_index = 1;
        st = load_index(ck, index_path, index, &entries, &nentries, &has_total, &total, err);
        if (st != LQ_OK)
            goto cleanup;
    } else if (st == LQ_ERR_NOT_FOUND) {
        const char *why = shard_name_problem(o.single_file);
        if (why) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, dir, NULL, "CKPT_SHARD_NAME",
                         "single-file name \"%.200s\" is %s", o.single_file, why);
            goto cleanup;
        }
        ck->shards = calloc(1, sizeof(*ck->shards));
        if (!ck->shards || !(ck->shards[0].name = strdup(o.single_file)) ||
            !(ck->shards[0].path = join_path(dir, o.single_file))) {
            st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
            goto cleanup;
        }
        ck->nshards = 1;
        lq_error_clear(err);
        st = LQ_OK;
    } else {
        goto cleanup;
    }

    for (size_t s = 0; s < ck->nshards; s++) {
        st = open_shard(dir_real, &ck->shards[s], &o,
                        ck->has_index ? "CKPT_SHARD_MISSING" : "CKPT_NO_WEIGHTS", err);
        if (st != LQ_OK)
            goto cleanup;
    }
    st = cross_check(ck, index_path, entries, nentries, has_total, total, err);

cleanup:
    free(entries);
    cJSON_Delete(index);
    free(index_path);
    free(dir_real);
    if (st != LQ_OK) {
        lq_ckpt_close(ck);
        return st;
    }
    *out = ck;
    return LQ_OK;
}

void lq_ckpt_close(lq_ckpt *ck)
{
    if (!ck)
        return;
    for (size_t s = 0; s < ck->nshards; s++) {
        lq_st_close(ck->shards[s].file);
        free(ck->shards[s].name);
        free(ck->shards[s].path);
    }
    free(ck->shards);
    free(ck->tensors);
    cJSON_Delete(ck->config);
    free(ck->dir);
    free(ck);
}

const char *lq_ckpt_dir(const lq_ckpt *ck)
{
    return ck ? ck->dir : NULL;
}

const cJSON *lq_ckpt_config(const lq_ckpt *ck)
{
    return ck ? ck->config : NULL;
}

int lq_ckpt_has_index(const lq_ckpt *ck)
{
    return ck ? ck->has_index : 0;
}

size_t lq_ckpt_shard_count(const lq_ckpt *ck)
{
    return ck ? ck->nshards : 0;
}

const lq_st_file *lq_ckpt_shard(const lq_ckpt *ck, size_t i)
{
    return ck && i < ck->nshards ? ck->shards[i].file : NULL;
}

const char *lq_ckpt_shard_name(const lq_ckpt *ck, size_t i)
{
    return ck && i < ck->nshards ? ck->shards[i].name : NULL;
}

size_t lq_ckpt_count(const lq_ckpt *ck)
{
    return ck ? ck->count : 0;
}

lq_ckpt_tensor lq_ckpt_at(const lq_ckpt *ck, size_t i)
{
    lq_ckpt_tensor none = {NULL, NULL, 0};
    return ck && i < ck->count ? ck->tensors[i] : none;
}

size_t lq_ckpt_index(const lq_ckpt *ck, const char *name)
{
    if (!ck || !name)
        return SIZE_MAX;
    size_t lo = 0, hi = ck->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, ck->tensors[mid].info->name);
        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return SIZE_MAX;
}

int lq_ckpt_find(const lq_ckpt *ck, const char *name, lq_ckpt_tensor *out)
{
    size_t i = lq_ckpt_index(ck, name);
    if (i == SIZE_MAX)
        return -1;
    if (out)
        *out = ck->tensors[i];
    return 0;
}

static uintptr_t page_size(void)
{
    static long page;
    if (!page)
        page = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
    return (uintptr_t)page;
}

void lq_pages_populate(const void *p, uint64_t n)
{
#ifdef MADV_POPULATE_READ
    uintptr_t a = (uintptr_t)p & ~(page_size() - 1), e = (uintptr_t)p + (uintptr_t)n;
    if (p && e > a)
        madvise((void *)a, (size_t)(e - a), MADV_POPULATE_READ);
#else
    (void)p;
    (void)n;
#endif
}

void lq_pages_release(const void *p, uint64_t n)
{
    const uintptr_t pg = page_size();
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), e = ((uintptr_t)p + (uintptr_t)n) & ~(pg - 1);
    if (p && e > a)
        madvise((void *)a, (size_t)(e - a), MADV_DONTNEED);
}
