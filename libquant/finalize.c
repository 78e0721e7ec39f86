/* Assembling OUT from the parts' work directories (convert.h, lq_finalize).
 *
 * Everything written here is derived from the plan and the parts' records, never from timings
 * or from which part did what, so OUT is the same for one part or many. Quality gates are checked
 * from the records before anything moves: a failing gate leaves the work directories as they were
 * (the run can be finalized again, e.g. with other thresholds, through --resume). */
#include "convert.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/fileio.h"
#include "internal/strmap.h"
#include "json.h"
#include "jsonw.h"
#include "libquant.h"
#include "outfile.h"
#include "sign.h"
#include "stwriter.h"

typedef struct part_info {
    const char *dir;
    cJSON *plan_file;         /* .mimo-plan.json */
    uint64_t part;
} part_info;

typedef struct file_rec {
    char *path;               /* relative to OUT */
    uint64_t size;
    char sha[65];
} file_rec;

/* Strings kept for the whole finalize, in blocks (no allocation per string). */
typedef struct arena {
    char **blocks;
    size_t nblocks, used, cap;
} arena;

static const char *arena_str(arena *a, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    if (!a->nblocks || a->used + n > a->cap) {
        size_t cap = n > ((size_t)1 << 20) ? n : ((size_t)1 << 20);
        char **nb = realloc(a->blocks, (a->nblocks + 1) * sizeof(*nb));
        if (!nb)
            return NULL;
        a->blocks = nb;
        if (!(nb[a->nblocks] = malloc(cap)))
            return NULL;
        a->nblocks++;
        a->used = 0;
        a->cap = cap;
    }
    char *d = a->blocks[a->nblocks - 1] + a->used;
    memcpy(d, s, n);
    a->used += n;
    return d;
}

static void arena_free(arena *a)
{
    for (size_t i = 0; i < a->nblocks; i++)
        free(a->blocks[i]);
    free(a->blocks);
    memset(a, 0, sizeof(*a));
}

/* One entry of plan.tensors: [name, dtype, shape, shard, rule, class, params, source dtype].
 * Strings are NULL where the entry has no string there, numbers 0 where no exact integer. */
typedef struct ptensor {
    const char *name, *dtype, *cls, *src_dtype;
    uint64_t shard, params;
    size_t dims;              /* shape values: plan_index.dims[dims .. dims + ndims) */
    uint32_t ndims;
    uint32_t slot;            /* 1 + index of its metrics in plan_index.acc; 0: none */
    const char *crc;          /* from its shard's record; crc_set: found there (crc may be NULL) */
    int crc_set;
} ptensor;

/* The plan's tensors, read one entry at a time from .mimo-plan.json (the file's tree holds
 * everything else), with the metrics and CRC-32C of the shard records filled in as those are
 * read. */
typedef struct plan_index {
    ptensor *t;
    size_t n, cap;
    uint64_t *dims;
    size_t ndims, dims_cap;
    lq_strmap by_name;        /* name -> index (the first entry of a name) */
    lq_strmap interned;       /* dtype and class strings, stored once */
    const char **istr;
    size_t nistr;
    arena names;
    lq_err_acc *acc;          /* metrics, in the order read */
    size_t nacc, acc_cap;
} plan_index;

typedef struct shard_rec {
    const char *name;
    const char *dir;          /* work directory holding it */
    cJSON *rec;               /* the record without its metrics and crc32c lists */
    int unknown;              /* metrics for a tensor not in the plan: the first one's name */
    char *unknown_name;
} shard_rec;

static const cJSON *item_at(const cJSON *a, int k)
{
    const cJSON *c = a ? a->child : NULL;
    while (c && k-- > 0)
        c = c->next;
    return c;
}

static const char *intern(plan_index *pi, const char *s)
{
    if (!s)
        return NULL;
    size_t k = lq_strmap_get(&pi->interned, s);
    if (k != (size_t)-1)
        return pi->istr[k];
    if (pi->nistr >= 64)
        return arena_str(&pi->names, s); /* not a small set after all: stored per entry */
    const char *c = arena_str(&pi->names, s);
    if (!c)
        return NULL;
    pi->istr[pi->nistr] = c;
    lq_strmap_add(&pi->interned, c, pi->nistr++);
    return c;
}

static lq_status plan_entry(void *user, size_t index, const cJSON *e, lq_error *err)
{
    plan_index *pi = user;
    (void)index;
    if (pi->n == pi->cap) {
        size_t cap = pi->cap ? 2 * pi->cap : 1024;
        ptensor *t = realloc(pi->t, cap * sizeof(*t));
        if (!t)
            return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        pi->t = t;
        pi->cap = cap;
    }
    ptensor *t = &pi->t[pi->n];
    memset(t, 0, sizeof(*t));
    const cJSON *f[8] = {0}, *c = e->child;
    for (int k = 0; k < 8 && c; k++, c = c->next)
        f[k] = c;
    const char *nm = cJSON_GetStringValue(f[0]);
    t->name = nm ? arena_str(&pi->names, nm) : NULL;
    t->dtype = intern(pi, cJSON_GetStringValue(f[1]));
    t->cls = intern(pi, cJSON_GetStringValue(f[5]));
    t->src_dtype = intern(pi, cJSON_GetStringValue(f[7]));
    if ((nm && !t->name) || (f[1] && cJSON_GetStringValue(f[1]) && !t->dtype) ||
        (f[5] && cJSON_GetStringValue(f[5]) && !t->cls) || (f[7] && cJSON_GetStringValue(f[7]) && !t->src_dtype))
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    lq_json_u64(f[3], &t->shard);
    lq_json_u64(f[6], &t->params);
    t->dims = pi->ndims;
    for (const cJSON *d = f[2] ? f[2]->child : NULL; d; d = d->next) {
        if (pi->ndims == pi->dims_cap) {
            size_t cap = pi->dims_cap ? 2 * pi->dims_cap : 2048;
            uint64_t *nd = realloc(pi->dims, cap * sizeof(*nd));
            if (!nd)
                return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
            pi->dims = nd;
            pi->dims_cap = cap;
        }
        uint64_t v = 0;
        lq_json_u64(d, &v);
        pi->dims[pi->ndims++] = v;
        t->ndims++;
    }
    pi->n++;
    return LQ_OK;
}

/* Other parts' plans: only their header is read. */
static lq_status skip_entry(void *user, size_t index, const cJSON *e, lq_error *err)
{
    (void)user;
    (void)index;
    (void)e;
    (void)err;
    return LQ_OK;
}

static lq_status plan_index_finish(plan_index *pi, lq_error *err)
{
    if (lq_strmap_init(&pi->by_name, pi->n) != 0)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    for (size_t i = 0; i < pi->n; i++)
        if (pi->t[i].name)
            lq_strmap_add(&pi->by_name, pi->t[i].name, i);
    return LQ_OK;
}

static void plan_index_free(plan_index *pi)
{
    free(pi->t);
    free(pi->dims);
    lq_strmap_free(&pi->by_name);
    lq_strmap_free(&pi->interned);
    free(pi->istr);
    arena_free(&pi->names);
    free(pi->acc);
}

static char *pjoin(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (s) {
        memcpy(s, a, la);
        s[la] = '/';
        memcpy(s + la + 1, b, lb + 1);
    }
    return s;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = lq_json_get(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static lq_status load(const char *dir, const char *name, cJSON **out, lq_error *err)
{
    char *p = pjoin(dir, name);
    if (!p)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    lq_status st = lq_json_parse_file(p, LQ_OUTPUT_JSON_MAX_BYTES, NULL, out, err);
    free(p);
    return st;
}

static int exists(const char *dir, const char *name)
{
    char *p = pjoin(dir, name);
    int e = p && access(p, F_OK) == 0;
    free(p);
    return e;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc == 0 || errno == EINVAL || errno == EROFS ? 0 : -1;
}

/* Test hook for the crash tests (tests/fault): MIMO_TEST_KILL_AT=<phase> makes the process kill
 * itself with SIGKILL when it reaches that phase of publication, a point that writes no bytes and
 * so cannot be reached through MIMO_TEST_KILL_AFTER_BYTES (outfile.c). Phases: "record" (the
 * publish record written, the bookkeeping still there), "publish" (the bookkeeping removed, the
 * rename of the assembly directory to OUT not yet done) and "published" (renamed, the parent
 * directory not yet synced, the record still there). Unset: one getenv per phase. */
static void test_kill_at(const char *phase)
{
    const char *v = getenv("MIMO_TEST_KILL_AT");
    if (v && !strcmp(v, phase))
        raise(SIGKILL);
}

static char *parent_of(const char *path)
{
    const char *sl = strrchr(path, '/');
    if (!sl)
        return strdup(".");
    if (sl == path)
        return strdup("/");
    size_t n = (size_t)(sl - path);
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, path, n);
        s[n] = 0;
    }
    return s;
}

/* Moves a file into the assembly directory (rename; copy across file systems). */
static lq_status move_in(const char *from_dir, const char *name, const char *to_dir, lq_error *err)
{
    char *a = pjoin(from_dir, name), *b = pjoin(to_dir, name);
    lq_status st = LQ_OK;
    if (!a || !b) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto done;
    }
    char *slash = strrchr(b, '/');
    if (slash && strchr(name, '/')) {
        *slash = 0;
        mkdir(b, 0755);
        *slash = '/';
    }
    if (access(a, F_OK) != 0 && access(b, F_OK) == 0)
        goto done; /* moved by an earlier, interrupted merge */
    if (rename(a, b) == 0)
        goto done;
    if (errno != EXDEV) {
        st = lq_fail(err, LQ_ERR_IO, a, NULL, "MERGE_MOVE", "cannot move into %s: %s", to_dir, strerror(errno));
        goto done;
    }
    /* Another file system: copy through an atomic output, then remove the original. */
    FILE *f = fopen(a, "rb");
    lq_outfile *of = NULL;
    if (!f) {
        st = lq_fail(err, LQ_ERR_IO, a, NULL, "MERGE_MOVE", "cannot open: %s", strerror(errno));
        goto done;
    }
    st = lq_outfile_open(b, &of, err);
    char *buf = malloc((size_t)8 << 20);
    size_t r;
    while (st == LQ_OK && buf && (r = fread(buf, 1, (size_t)8 << 20, f)) > 0)
        st = lq_outfile_write(of, buf, r, err);
    if (st == LQ_OK && (!buf || ferror(f)))
        st = lq_fail(err, LQ_ERR_IO, a, NULL, "MERGE_MOVE", "read failed");
    fclose(f);
    free(buf);
    if (st == LQ_OK)
        st = lq_outfile_commit(of, NULL, NULL, err);
    else
        lq_outfile_abort(of);
    if (st == LQ_OK)
        unlink(a);
done:
    free(a);
    free(b);
    return st;
}

/* Removes the run's bookkeeping files (".mimo-*") and writer temporaries (".NAME.tmp-PID") from a
 * directory and its dflash/. */
static void remove_state(const char *dir)
{
    for (int pass = 0; pass < 2; pass++) {
        char *d0 = pass ? pjoin(dir, "dflash") : strdup(dir);
        DIR *d = d0 ? opendir(d0) : NULL;
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strncmp(e->d_name, ".mimo-", 6) == 0 || (e->d_name[0] == '.' && strstr(e->d_name, ".tmp-"))) {
                    char *p = pjoin(d0, e->d_name);
                    if (p)
                        unlink(p);
                    free(p);
                }
            }
            closedir(d);
        }
        free(d0);
    }
}

/* ---- The publish record ----
 * Publishing OUT drops the run's bookkeeping from the assembly directory and renames it: two steps
 * a kill can fall between. So before either, "<out>.mimo-publish.json" is written (synced) next to
 * OUT, naming the plan's fingerprint, the assembly directory and the SHA-256 of the manifest; it
 * is removed once OUT is in place. With it, --resume (and a repeated merge) finish the publication
 * instead of finding a directory without run state. */
void lq_publish_record_name(const char *out, char *buf, size_t cap)
{
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        n--;
    snprintf(buf, cap, "%.*s.mimo-publish.json", (int)n, out);
}

int lq_publish_record_exists(const char *out)
{
    char r[4200];
    lq_publish_record_name(out, r, sizeof(r));
    struct stat sb;
    return lstat(r, &sb) == 0;
}

/* SHA-256 of the manifest file as hex; -1 when it cannot be read. */
static int manifest_sha(const char *path, char hex[65])
{
    uint8_t *buf = NULL, d[32];
    size_t n = 0;
    lq_error e;
    if (lq_read_file(path, (uint64_t)512 << 20, NULL, NULL, &buf, &n, &e) != LQ_OK)
        return -1;
    lq_sha256(buf, n, d);
    lq_hex(d, 32, hex);
    free(buf);
    return 0;
}

static lq_status write_publish_record(const char *out, const char *fp, const char *dir, const char *hx,
                                      lq_error *err)
{
    char r[4200];
    lq_publish_record_name(out, r, sizeof(r));
    lq_jw *w = lq_jw_new(0);
    if (!w)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    char *text = NULL;
    lq_jw_begin_object(w);
    lq_jw_key(w, "fingerprint");
    lq_jw_string(w, fp);
    lq_jw_key(w, "dir");
    lq_jw_string(w, dir);
    lq_jw_key(w, "manifest_sha256");
    lq_jw_string(w, hx);
    lq_jw_end_object(w);
    lq_status st = lq_jw_finish(w, &text, NULL, err);
    lq_jw_free(w);
    if (st == LQ_OK)
        st = lq_write_file_atomic(r, text, strlen(text), NULL, err);
    free(text);
    return st;
}

lq_status lq_publish_resume(const char *out, const char *fp, lq_error *err)
{
    char r[4200];
    lq_publish_record_name(out, r, sizeof(r));
    struct stat sb;
    if (lstat(r, &sb) != 0)
        return errno == ENOENT ? LQ_ERR_NOT_FOUND
                               : lq_fail(err, LQ_ERR_IO, r, NULL, "RUN_STATE", "cannot stat: %s", strerror(errno));
    cJSON *rec = NULL, *man = NULL;
    char *mp = NULL, *parent = NULL, hx[65];
    lq_status st = lq_json_parse_file(r, 1 << 16, NULL, &rec, err);
    if (st != LQ_OK)
        return st;
    const char *rfp = jstr(rec, "fingerprint"), *dir = jstr(rec, "dir"), *msha = jstr(rec, "manifest_sha256");
    if (!rfp || !dir || !msha || strlen(msha) != 64) {
        st = lq_fail(err, LQ_ERR_CORRUPT, r, NULL, "RUN_STATE", "malformed publish record");
        goto done;
    }
    if (strcmp(fp, rfp) != 0) {
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, r, NULL, "RUN_MISMATCH",
                     "an interrupted publication of %s made from other inputs or options; finish it with the "
                     "command that started it, or remove %s and this record", dir, dir);
        goto done;
    }
    parent = parent_of(out);
    if (!parent) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto done;
    }
    int out_there = lstat(out, &sb) == 0, dir_there = lstat(dir, &sb) == 0;
    if (out_there && !dir_there) {
        /* Killed after the rename: OUT is the output the record names, or something else. */
        mp = pjoin(out, LQ_MANIFEST_FILE);
        if (!mp || manifest_sha(mp, hx) != 0 || strcmp(hx, msha) != 0) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, out, NULL, "OUT_EXISTS",
                         "exists and is not the output %s names; refusing to touch it", r);
            goto done;
        }
    } else if (!out_there && dir_there) {
        /* Killed before the rename: the directory holds the finished output, perhaps with some
         * bookkeeping left. Its manifest must be the one recorded and every file it lists present
         * at its size (each was synced before the record was written). */
        mp = pjoin(dir, LQ_MANIFEST_FILE);
        if (!mp || manifest_sha(mp, hx) != 0 || strcmp(hx, msha) != 0) {
            st = lq_fail(err, LQ_ERR_CORRUPT, dir, LQ_MANIFEST_FILE, "RUN_STATE",
                         "missing or not the manifest %s records; nothing published", r);
            goto done;
        }
        if ((st = lq_json_parse_file(mp, LQ_OUTPUT_JSON_MAX_BYTES, NULL, &man, err)) != LQ_OK)
            goto done;
        const cJSON *f;
        cJSON_ArrayForEach(f, lq_json_get(man, "files")) {
            const char *p = jstr(f, "path");
            uint64_t size = 0;
            char *fpth = p ? pjoin(dir, p) : NULL;
            int ok = fpth && lq_json_u64(lq_json_get(f, "size"), &size) == 0 && stat(fpth, &sb) == 0 &&
                     S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == size;
            free(fpth);
            if (!ok) {
                st = lq_fail(err, LQ_ERR_CORRUPT, dir, p, "RUN_STATE",
                             "missing or not the size the manifest lists; nothing published");
                goto done;
            }
        }
        remove_state(dir);
        if (fsync_dir(dir) != 0 || rename(dir, out) != 0 || fsync_dir(parent) != 0) {
            st = lq_fail(err, LQ_ERR_IO, out, NULL, "OUT_PUBLISH", "cannot publish %s as %s: %s", dir, out,
                         strerror(errno));
            goto done;
        }
    } else if (!out_there) {
        /* Neither the directory nor OUT: the record outlived what it names (removed by hand);
         * nothing is left to publish. */
        st = unlink(r) == 0 ? LQ_ERR_NOT_FOUND
                            : lq_fail(err, LQ_ERR_IO, r, NULL, "RUN_STATE", "cannot remove: %s", strerror(errno));
        goto done;
    } else {
        st = lq_fail(err, LQ_ERR_CORRUPT, r, NULL, "RUN_STATE", "names %s, but both it and the output exist", dir);
        goto done;
    }
    if (unlink(r) != 0 || fsync_dir(parent) != 0)
        st = lq_fail(err, LQ_ERR_IO, r, NULL, "OUT_PUBLISH", "cannot remove: %s", strerror(errno));
done:
    cJSON_Delete(rec);
    cJSON_Delete(man);
    free(mp);
    free(parent);
    return st;
}

/* One work directory that is OUT's own ("<out>.mimo-partial"): a single run, finalized in place. */
static int own_work_dir(const char *out, const char *const *work_dirs, size_t nwork)
{
    char wd[4096], r1[4096], r2[4096];
    lq_work_dir_name(out, wd, sizeof(wd));
    return nwork == 1 && realpath(work_dirs[0], r1) && realpath(wd, r2) && !strcmp(r1, r2);
}

/* A merge's part directories, once OUT is published: their bookkeeping, then the directories. */
static void drop_work_dirs(const char *const *work_dirs, size_t nwork)
{
    for (size_t i = 0; i < nwork; i++) {
        remove_state(work_dirs[i]);
        char *dd = pjoin(work_dirs[i], "dflash");
        if (dd)
            rmdir(dd);
        free(dd);
        rmdir(work_dirs[i]);
    }
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const file_rec *)a)->path, ((const file_rec *)b)->path);
}

static void acc_from_json(const cJSON *a, lq_err_acc *acc, const char **name)
{
    lq_err_acc_init(acc);
    const cJSON *v[10] = {0};
    const cJSON *c = a ? a->child : NULL;
    for (int k = 0; k < 10 && c; k++, c = c->next)
        v[k] = c;
    *name = cJSON_GetStringValue(v[0]);
    uint64_t u;
    if (lq_json_u64(v[1], &u) == 0)
        acc->n = u;
    acc->sum_w2 = cJSON_GetNumberValue(v[2]);
    acc->sum_q2 = cJSON_GetNumberValue(v[3]);
    acc->sum_wq = cJSON_GetNumberValue(v[4]);
    acc->sum_e2 = cJSON_GetNumberValue(v[5]);
    acc->max_abs = cJSON_GetNumberValue(v[6]);
    if (lq_json_u64(v[7], &u) == 0)
        acc->clipped = u;
    if (lq_json_u64(v[8], &u) == 0)
        acc->zeroed = u;
    if (lq_json_u64(v[9], &u) == 0)
        acc->nonfinite = u;
}

/* A shard record's lists, entry by entry, into the plan index. */
typedef struct rec_ctx {
    plan_index *pi;
    shard_rec *sr;
    size_t s, nshards;
} rec_ctx;

static lq_status metrics_entry(void *user, size_t index, const cJSON *e, lq_error *err)
{
    rec_ctx *c = user;
    plan_index *pi = c->pi;
    (void)index;
    const char *nm;
    lq_err_acc x;
    acc_from_json(e, &x, &nm);
    size_t i = nm ? lq_strmap_get(&pi->by_name, nm) : (size_t)-1;
    if (i == (size_t)-1) {
        if (!c->sr->unknown) {
            c->sr->unknown = 1;
            if (nm && !(c->sr->unknown_name = strdup(nm)))
                return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        }
        return LQ_OK;
    }
    if (!pi->t[i].slot) {
        if (pi->nacc == pi->acc_cap) {
            size_t cap = pi->acc_cap ? 2 * pi->acc_cap : 1024;
            lq_err_acc *na = realloc(pi->acc, cap * sizeof(*na));
            if (!na)
                return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
            pi->acc = na;
            pi->acc_cap = cap;
        }
        pi->t[i].slot = (uint32_t)++pi->nacc;
    }
    pi->acc[pi->t[i].slot - 1] = x;
    return LQ_OK;
}

/* The manifest takes a tensor's CRC-32C from the record of its own shard, the first entry of
 * its name there. */
static lq_status crc_entry(void *user, size_t index, const cJSON *e, lq_error *err)
{
    rec_ctx *c = user;
    plan_index *pi = c->pi;
    (void)index;
    const char *nm = cJSON_GetStringValue(item_at(e, 0));
    size_t i = nm ? lq_strmap_get(&pi->by_name, nm) : (size_t)-1;
    if (i == (size_t)-1 || pi->t[i].crc_set || (pi->t[i].shard < c->nshards ? pi->t[i].shard : 0) != c->s)
        return LQ_OK;
    const char *v = cJSON_GetStringValue(item_at(e, 1));
    pi->t[i].crc_set = 1;
    if (v && !(pi->t[i].crc = arena_str(&pi->names, v)))
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    return LQ_OK;
}

static lq_status load_split(const char *dir, const char *name, const lq_json_split *sp, size_t nsp, cJSON **out,
                            lq_error *err)
{
    char *p = pjoin(dir, name);
    if (!p)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    lq_status st = lq_json_parse_file_split(p, LQ_OUTPUT_JSON_MAX_BYTES, NULL, sp, nsp, out, err);
    free(p);
    return st;
}

static void put_metrics(lq_jw *w, const lq_metrics *m)
{
    lq_jw_key(w, "sqnr_db");
    lq_jw_double(w, m->sqnr_db, 6);
    lq_jw_key(w, "rel_mse");
    lq_jw_double(w, m->rel_mse, 6);
    lq_jw_key(w, "cosine");
    lq_jw_double(w, m->cosine, 8);
    lq_jw_key(w, "max_abs_err");
    lq_jw_double(w, m->max_abs, 6);
    lq_jw_key(w, "clip_frac");
    lq_jw_double(w, m->clip_frac, 6);
    lq_jw_key(w, "zero_frac");
    lq_jw_double(w, m->zero_frac, 6);
}

/* Builds mimo-quant-report.json into a JSON writer's sink (the text is never held whole) and
 * runs the gates; notify: report failing tensors through o->gate_fail (the first of the passes
 * that make the same text). *len receives the text's length. */
static lq_status build_report(const cJSON *plan, const plan_index *pi, shard_rec *shards, size_t nshards,
                              const lq_finalize_opts *o, lq_jw_sink_fn sink, void *user, int notify, size_t *len,
                              int *gate_failed, lq_error *err)
{
    size_t nt = pi->n;
    (void)nshards;
    lq_strmap layer_map = {0};
    char **layer_key = NULL;
    size_t *layer_of = NULL, nlayers = 0;
    lq_jw *w = lq_jw_new(2);
    lq_status st = LQ_OK;
    *gate_failed = 0;
    lq_jw_set_sink(w, sink, user);
    if (!w) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto cleanup;
    }
    /* Metrics naming a tensor not in the plan (found while the records were read). */
    for (size_t s = 0; s < nshards; s++) {
        if (shards[s].unknown) {
            st = lq_fail(err, LQ_ERR_CORRUPT, shards[s].dir, shards[s].unknown_name, "MERGE_PLAN",
                         "metrics for a tensor not in the plan");
            goto cleanup;
        }
    }
#define HAVE(i) (pi->t[i].slot != 0)
#define ACC(i) (&pi->acc[pi->t[i].slot - 1])
    const char *opts_mode = jstr(lq_json_get(plan, "options"), "scale_mode");
    lq_jw_begin_object(w);
    lq_jw_key(w, "schema_version");
    lq_jw_u64(w, 1);
    lq_jw_key(w, "tool");
    lq_jw_string(w, "mimo-quant");
    lq_jw_key(w, "tool_version");
    lq_jw_string(w, LQ_VERSION_STRING);
    lq_jw_key(w, "scale_mode");
    lq_jw_string(w, opts_mode ? opts_mode : "mse");

    /* Totals and the worst tensor. */
    lq_err_acc total;
    lq_err_acc_init(&total);
    size_t nq = 0, worst = SIZE_MAX;
    double worst_db = INFINITY;
    for (size_t i = 0; i < nt; i++) {
        if (!HAVE(i))
            continue;
        nq++;
        lq_err_acc_merge(&total, ACC(i));
        lq_metrics m;
        lq_err_acc_finish(ACC(i), &m);
        if (worst == SIZE_MAX || m.sqnr_db < worst_db) {
            worst = i;
            worst_db = m.sqnr_db;
        }
    }
    lq_metrics tm;
    lq_err_acc_finish(&total, &tm);
    lq_jw_key(w, "summary");
    lq_jw_begin_object(w);
    lq_jw_key(w, "quantized_tensors");
    lq_jw_u64(w, nq);
    lq_jw_key(w, "elements");
    lq_jw_u64(w, tm.n);
    put_metrics(w, &tm);
    lq_jw_key(w, "nonfinite");
    lq_jw_u64(w, tm.nonfinite);
    lq_jw_key(w, "worst_tensor");
    if (worst != SIZE_MAX)
        lq_jw_string(w, pi->t[worst].name);
    else
        lq_jw_null(w);
    lq_jw_key(w, "worst_sqnr_db");
    lq_jw_double(w, worst_db, 6);
    lq_jw_end_object(w);

    /* Bits per weight per module class. */
    uint64_t cls_params[LQ_PLAN_NCLASSES] = {0}, cls_bytes[LQ_PLAN_NCLASSES] = {0}, cls_n[LQ_PLAN_NCLASSES] = {0};
    for (size_t i = 0; i < nt; i++) {
        const ptensor *pt = &pi->t[i];
        const char *cls = pt->cls;
        int c = LQ_PLAN_NCLASSES - 1;
        for (int k = 0; k < LQ_PLAN_NCLASSES; k++)
            if (cls && !strcmp(cls, lq_plan_class_name(k)))
                c = k;
        uint64_t params = 0, bytes = 1;
        params = pt->params;
        for (uint32_t k = 0; k < pt->ndims; k++)
            bytes *= pi->dims[pt->dims + k];
        const char *dt = pt->dtype;
        lq_dtype dtype = dt ? lq_dtype_from_name(dt, strlen(dt)) : LQ_DTYPE_INVALID;
        int of = 0;
        bytes = lq_dtype_nbytes(dtype, bytes, &of);
        cls_params[c] += params;
        cls_bytes[c] += bytes;
        cls_n[c] += params > 0;
    }
    lq_jw_key(w, "classes");
    lq_jw_begin_array(w);
    for (int c = 0; c < LQ_PLAN_NCLASSES; c++) {
        if (!cls_bytes[c])
            continue;
        lq_jw_begin_object(w);
        lq_jw_key(w, "class");
        lq_jw_string(w, lq_plan_class_name(c));
        lq_jw_key(w, "tensors");
        lq_jw_u64(w, cls_n[c]);
        lq_jw_key(w, "params");
        lq_jw_u64(w, cls_params[c]);
        lq_jw_key(w, "bytes");
        lq_jw_u64(w, cls_bytes[c]);
        lq_jw_key(w, "bits_per_weight");
        lq_jw_double(w, cls_params[c] ? 8.0 * (double)cls_bytes[c] / (double)cls_params[c] : 0.0, 6);
        lq_jw_end_object(w);
    }
    lq_jw_end_array(w);

    /* Per layer, in first-appearance order: each quantized tensor's layer looked up once. */
    layer_key = calloc(nt + 1, sizeof(*layer_key));
    layer_of = calloc(nt + 1, sizeof(*layer_of));
    if (!layer_key || !layer_of || lq_strmap_init(&layer_map, nt) != 0) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < nt; i++) {
        if (!HAVE(i))
            continue;
        char key[256];
        lq_plan_layer_key(pi->t[i].name, key, sizeof(key));
        size_t L = lq_strmap_get(&layer_map, key);
        if (L == (size_t)-1) {
            if (!(layer_key[nlayers] = strdup(key))) {
                st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
                goto cleanup;
            }
            L = nlayers++;
            lq_strmap_add(&layer_map, layer_key[L], L);
        }
        layer_of[i] = L;
    }
    lq_jw_key(w, "layers");
    lq_jw_begin_array(w);
    {
        lq_err_acc *la = calloc(nlayers + 1, sizeof(*la));
        uint64_t *cnt = calloc(nlayers + 1, sizeof(*cnt));
        if (!la || !cnt) {
            free(la);
            free(cnt);
            st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
            goto cleanup;
        }
        for (size_t L = 0; L < nlayers; L++)
            lq_err_acc_init(&la[L]);
        for (size_t i = 0; i < nt; i++) {
            if (!HAVE(i))
                continue;
            lq_err_acc_merge(&la[layer_of[i]], ACC(i));
            cnt[layer_of[i]]++;
        }
        for (size_t L = 0; L < nlayers; L++) {
            lq_metrics m;
            lq_err_acc_finish(&la[L], &m);
            lq_jw_begin_object(w);
            lq_jw_key(w, "layer");
            lq_jw_string(w, layer_key[L]);
            lq_jw_key(w, "tensors");
            lq_jw_u64(w, cnt[L]);
            lq_jw_key(w, "elements");
            lq_jw_u64(w, m.n);
            put_metrics(w, &m);
            lq_jw_end_object(w);
        }
        free(la);
        free(cnt);
    }
    lq_jw_end_array(w);

    /* Per tensor, with the gates. */
    lq_jw_key(w, "tensors");
    lq_jw_begin_array(w);
    for (size_t i = 0; i < nt; i++) {
        if (!HAVE(i))
            continue;
        const ptensor *ti = &pi->t[i];
        const char *name = ti->name;
        lq_metrics m;
        lq_err_acc_finish(ACC(i), &m);
        lq_jw_begin_object(w);
        lq_jw_key(w, "name");
        lq_jw_string(w, name);
        lq_jw_key(w, "shape");
        lq_jw_begin_array(w);
        uint64_t N = 0, Kh = 0;
        if (ti->ndims > 0)
            N = pi->dims[ti->dims];
        if (ti->ndims > 1)
            Kh = pi->dims[ti->dims + 1];
        lq_jw_u64(w, N);
        lq_jw_u64(w, Kh * 2);
        lq_jw_end_array(w);
        lq_jw_key(w, "source_dtype");
        lq_jw_string(w, ti->src_dtype);
        lq_jw_key(w, "format");
        lq_jw_string(w, "mxfp4");
        put_metrics(w, &m);
        lq_jw_end_object(w);
        const lq_gate *g = o ? &o->gate : NULL;
        if (!g)
            continue;
        struct { const char *metric; double v, lim; int bad; } checks[4] = {
            {"sqnr_db", m.sqnr_db, g->min_sqnr_db, !isnan(g->min_sqnr_db) && !(m.sqnr_db >= g->min_sqnr_db)},
            {"cosine", m.cosine, g->min_cosine, !isnan(g->min_cosine) && !(m.cosine >= g->min_cosine)},
            {"clip_frac", m.clip_frac, g->max_clip, !isnan(g->max_clip) && !(m.clip_frac <= g->max_clip)},
            {"nonfinite", (double)m.nonfinite, 0, m.nonfinite != 0},
        };
        for (int k = 0; k < 4; k++) {
            if (!checks[k].bad)
                continue;
            *gate_failed = 1;
            if (notify && o->gate_fail)
                o->gate_fail(o->user, name, checks[k].metric, checks[k].v, checks[k].lim);
        }
    }
    lq_jw_end_array(w);
    lq_jw_end_object(w);
    st = lq_jw_finish(w, NULL, len, err);
cleanup:
#undef HAVE
#undef ACC
    lq_jw_free(w);
    for (size_t L = 0; L < nlayers; L++)
        free(layer_key[L]);
    free(layer_key);
    free(layer_of);
    lq_strmap_free(&layer_map);
    return st;
}

static lq_status discard(void *user, const char *text, size_t len, lq_error *err)
{
    (void)user;
    (void)text;
    (void)len;
    (void)err;
    return LQ_OK;
}

/* The report, streamed into path atomically (sha256 may be NULL). */
static lq_status report_to(const char *path, const cJSON *plan, const plan_index *pi, shard_rec *shards,
                           size_t nshards, const lq_finalize_opts *o, uint8_t sha256[32], lq_error *err)
{
    lq_outfile *of = NULL;
    lq_status st = lq_outfile_open(path, &of, err);
    if (st != LQ_OK)
        return st;
    int failed = 0;
    size_t len = 0;
    st = build_report(plan, pi, shards, nshards, o, lq_outfile_sink, of, 0, &len, &failed, err);
    if (st != LQ_OK) {
        lq_outfile_abort(of);
        return st;
    }
    return lq_outfile_commit(of, sha256, NULL, err);
}

static lq_status add_file(file_rec **files, size_t *n, const char *path, uint64_t size, const char *sha,
                          lq_error *err)
{
    file_rec *f = realloc(*files, (*n + 1) * sizeof(**files));
    if (!f)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    *files = f;
    f[*n].path = strdup(path);
    f[*n].size = size;
    snprintf(f[*n].sha, sizeof(f[*n].sha), "%s", sha);
    if (!f[*n].path)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    (*n)++;
    return LQ_OK;
}

lq_status lq_finalize(const char *out, const char *const *work_dirs, size_t nwork,
                      const lq_finalize_opts *o, lq_error *err)
{
    lq_status st = LQ_OK;
    part_info *parts = calloc(nwork + 1, sizeof(*parts));
    shard_rec *shards = NULL;
    file_rec *files = NULL;
    size_t nfiles = 0, nshards = 0;
    cJSON *extras = NULL, **srcrec = NULL;
    char *manifest = NULL, *asm_dir = NULL, *parent = NULL;
    char wd[4096];
    const char **inames = NULL, **ifiles = NULL;
    size_t nsrc = 0;
    plan_index pi = {0};
    int in_place = 0;
    if (!parts)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    struct stat sb;
    pi.istr = calloc(64, sizeof(*pi.istr));
    if (!pi.istr || lq_strmap_init(&pi.interned, 64) != 0) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto cleanup;
    }
    if (lstat(out, &sb) == 0 && !lq_publish_record_exists(out)) {
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, out, NULL, "OUT_EXISTS", "exists; refusing to overwrite it");
        goto cleanup;
    }
    /* 1. The parts: one plan, parts 1..N each once. */
    const char *fp0 = NULL;
    uint64_t nparts = 0;
    for (size_t i = 0; i < nwork; i++) {
        parts[i].dir = work_dirs[i];
        static const char *const tensors_key[] = {"plan", "tensors"};
        lq_json_split sp = {tensors_key, 2, i == 0 ? plan_entry : skip_entry, &pi};
        if ((st = load_split(work_dirs[i], ".mimo-plan.json", &sp, 1, &parts[i].plan_file, err)) != LQ_OK) {
            if (st == LQ_ERR_NOT_FOUND)
                st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, work_dirs[i], NULL, "MERGE_PARTS",
                             "not a work directory of mimo-quantize (no .mimo-plan.json)");
            goto cleanup;
        }
        const char *fp = jstr(parts[i].plan_file, "fingerprint");
        uint64_t np = 0;
        if (lq_json_u64(lq_json_get(parts[i].plan_file, "part"), &parts[i].part) != 0 ||
            lq_json_u64(lq_json_get(parts[i].plan_file, "nparts"), &np) != 0 || !fp) {
            st = lq_fail(err, LQ_ERR_CORRUPT, work_dirs[i], NULL, "RUN_STATE", "malformed .mimo-plan.json");
            goto cleanup;
        }
        if (i == 0) {
            fp0 = fp;
            nparts = np;
        } else if (strcmp(fp, fp0) != 0 || np != nparts) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, work_dirs[i], NULL, "MERGE_PLAN",
                         "made from other inputs or options than %s", work_dirs[0]);
            goto cleanup;
        }
        for (size_t k = 0; k < i; k++)
            if (parts[k].part == parts[i].part) {
                st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, work_dirs[i], NULL, "MERGE_PARTS",
                             "part %llu given twice (also %s)", (unsigned long long)parts[i].part, parts[k].dir);
                goto cleanup;
            }
    }
    if (nparts != nwork) {
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, work_dirs[0], NULL, "MERGE_PARTS",
                     "the run has %llu parts but %zu work directories were given", (unsigned long long)nparts, nwork);
        goto cleanup;
    }
    /* Only the first part's plan is read from here on (they are the same plan). */
    for (size_t i = 1; i < nwork; i++) {
        cJSON_Delete(parts[i].plan_file);
        parts[i].plan_file = NULL;
    }
    /* An earlier finalize of this plan killed while publishing: finish that instead. */
    st = lq_publish_resume(out, fp0, err);
    if (st == LQ_OK) {
        if (!own_work_dir(out, work_dirs, nwork))
            drop_work_dirs(work_dirs, nwork);
        goto cleanup;
    }
    if (st != LQ_ERR_NOT_FOUND)
        goto cleanup;
    st = LQ_OK;
    if (lstat(out, &sb) == 0) {
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, out, NULL, "OUT_EXISTS", "exists; refusing to overwrite it");
        goto cleanup;
    }
    const cJSON *plan = lq_json_get(parts[0].plan_file, "plan");
    const cJSON *pshards = lq_json_get(plan, "shards");
    if ((st = plan_index_finish(&pi, err)) != LQ_OK)
        goto cleanup;
    nshards = (size_t)cJSON_GetArraySize(pshards);
    shards = calloc(nshards + 1, sizeof(*shards));
    if (!shards) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto cleanup;
    }
    {
        size_t s = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, pshards)
            shards[s++].name = cJSON_GetStringValue(e);
    }
    /* 2. Every shard done exactly once. */
    for (size_t s = 0; s < nshards; s++) {
        char rec[320];
        snprintf(rec, sizeof(rec), ".mimo-done-%s.json", shards[s].name);
        for (size_t i = 0; i < nwork; i++) {
            if (!exists(work_dirs[i], rec))
                continue;
            if (shards[s].dir) {
                st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, work_dirs[i], shards[s].name, "MERGE_SHARDS",
                             "shard done twice (also in %s)", shards[s].dir);
                goto cleanup;
            }
            shards[s].dir = work_dirs[i];
            static const char *const metrics_key[] = {"metrics"}, *const crc_key[] = {"crc32c"};
            rec_ctx rc = {&pi, &shards[s], s, nshards};
            lq_json_split sp[2] = {{metrics_key, 1, metrics_entry, &rc}, {crc_key, 1, crc_entry, &rc}};
            if ((st = load_split(work_dirs[i], rec, sp, 2, &shards[s].rec, err)) != LQ_OK)
                goto cleanup;
        }
        if (!shards[s].dir) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, out, shards[s].name, "MERGE_SHARDS",
                         "no part has finished this shard");
            goto cleanup;
        }
    }
    /* 3. Source digests and part 1's files. */
    const cJSON *srcfiles = lq_json_get(plan, "source_files");
    nsrc = (size_t)cJSON_GetArraySize(srcfiles);
    srcrec = calloc(nsrc + 1, sizeof(*srcrec));
    if (!srcrec) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto cleanup;
    }
    for (size_t j = 0; j < nsrc; j++) {
        char rec[64];
        snprintf(rec, sizeof(rec), ".mimo-src-%zu.json", j);
        for (size_t i = 0; i < nwork && !srcrec[j]; i++)
            if (exists(work_dirs[i], rec) && (st = load(work_dirs[i], rec, &srcrec[j], err)) != LQ_OK)
                goto cleanup;
        if (!srcrec[j]) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, out, cJSON_GetStringValue(cJSON_GetArrayItem(srcfiles, (int)j)),
                         "MERGE_PARTS", "no part has hashed this source file");
            goto cleanup;
        }
    }
    const char *part1 = NULL;
    for (size_t i = 0; i < nwork; i++)
        if (parts[i].part == 1)
            part1 = work_dirs[i];
    if ((st = load(part1, ".mimo-extras.json", &extras, err)) != LQ_OK) {
        if (st == LQ_ERR_NOT_FOUND)
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, part1, NULL, "MERGE_PARTS", "part 1 has not finished");
        goto cleanup;
    }

    /* 4. Report and gates, before anything moves: a first pass only runs the gates (the text goes
     *    nowhere); the report is written by a second pass to where it belongs. */
    int gate_failed = 0;
    size_t report_len = 0;
    if ((st = build_report(plan, &pi, shards, nshards, o, discard, NULL, 1, &report_len, &gate_failed, err)) !=
        LQ_OK)
        goto cleanup;
    if (gate_failed) {
        char rp[4200];
        snprintf(rp, sizeof(rp), "%s.report.json", out);
        lq_status s2 = report_to(rp, plan, &pi, shards, nshards, o, NULL, err);
        st = s2 != LQ_OK ? s2
                         : lq_fail(err, LQ_ERR_CHECK_FAILED, rp, NULL, "GATE",
                                   "quality gate failed; OUT not written; the report is in %s", rp);
        goto cleanup;
    }

    /* 5. Assembly directory: the single work directory itself, or a fresh one for a merge. */
    lq_work_dir_name(out, wd, sizeof(wd));
    if (own_work_dir(out, work_dirs, nwork)) {
        in_place = 1;
        asm_dir = strdup(wd);
    } else {
        size_t n = strlen(out);
        asm_dir = malloc(n + 16);
        if (!asm_dir) {
            st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
            goto cleanup;
        }
        snprintf(asm_dir, n + 16, "%s.mimo-merge", out);
        /* A merge killed after moving shards continues from its assembly directory, which names
         * the plan it belongs to; it is created with that name inside, then renamed. */
        cJSON *mm = NULL;
        struct stat asb;
        if (stat(asm_dir, &asb) == 0) {
            lq_error e2;
            const char *mfp = NULL;
            if (load(asm_dir, ".mimo-merge.json", &mm, &e2) == LQ_OK)
                mfp = jstr(mm, "fingerprint");
            if (!mfp || strcmp(mfp, fp0) != 0) {
                cJSON_Delete(mm);
                st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, asm_dir, NULL, "MERGE_DIR",
                             "exists and belongs to another merge; remove it");
                goto cleanup;
            }
            cJSON_Delete(mm);
        } else {
            char tmpd[4300], text[200];
            snprintf(tmpd, sizeof(tmpd), "%s.init-%ld", asm_dir, (long)getpid());
            snprintf(text, sizeof(text), "{\"fingerprint\":\"%s\"}", fp0);
            char *mp0 = pjoin(tmpd, ".mimo-merge.json");
            if (!mp0 || mkdir(tmpd, 0755) != 0 ||
                lq_write_file_atomic(mp0, text, strlen(text), NULL, err) != LQ_OK || rename(tmpd, asm_dir) != 0) {
                free(mp0);
                st = lq_fail(err, LQ_ERR_IO, asm_dir, NULL, "MERGE_DIR", "cannot create: %s", strerror(errno));
                goto cleanup;
            }
            free(mp0);
        }
    }
    if (!asm_dir) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto cleanup;
    }
    for (size_t s = 0; s < nshards; s++) {
        if (!in_place && (st = move_in(shards[s].dir, shards[s].name, asm_dir, err)) != LQ_OK)
            goto cleanup;
        uint64_t size = 0;
        lq_json_u64(lq_json_get(shards[s].rec, "size"), &size);
        if ((st = add_file(&files, &nfiles, shards[s].name, size, jstr(shards[s].rec, "sha256"), err)) != LQ_OK)
            goto cleanup;
    }
    const cJSON *ex;
    cJSON_ArrayForEach(ex, lq_json_get(extras, "files")) {
        const char *nm = cJSON_GetStringValue(cJSON_GetArrayItem(ex, 0));
        uint64_t size = 0;
        lq_json_u64(cJSON_GetArrayItem(ex, 1), &size);
        if (!in_place && (st = move_in(part1, nm, asm_dir, err)) != LQ_OK)
            goto cleanup;
        if ((st = add_file(&files, &nfiles, nm, size, cJSON_GetStringValue(cJSON_GetArrayItem(ex, 2)), err)) != LQ_OK)
            goto cleanup;
    }

    /* 6. Index (more than one shard), report, manifest, signature. */
    size_t nt = pi.n;
    uint8_t sha[32];
    char hx[65];
    if (nshards > 1) {
        inames = calloc(nt + 1, sizeof(*inames));
        ifiles = calloc(nt + 1, sizeof(*ifiles));
        if (!inames || !ifiles) {
            st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
            goto cleanup;
        }
        for (size_t i = 0; i < nt; i++) {
            uint64_t sh = 0;
            sh = pi.t[i].shard;
            inames[i] = pi.t[i].name;
            ifiles[i] = shards[sh < nshards ? sh : 0].name;
        }
        uint64_t total = 0;
        lq_json_u64(lq_json_get(plan, "total_size"), &total);
        char *ip = pjoin(asm_dir, "model.safetensors.index.json");
        st = ip ? lq_index_write(ip, inames, ifiles, nt, total, NULL, sha, err) : LQ_ERR_NO_MEMORY;
        struct stat isb;
        if (st == LQ_OK && stat(ip, &isb) == 0) {
            lq_hex(sha, 32, hx);
            st = add_file(&files, &nfiles, "model.safetensors.index.json", (uint64_t)isb.st_size, hx, err);
        }
        free(ip);
        if (st != LQ_OK)
            goto cleanup;
    }
    char *rp = pjoin(asm_dir, LQ_REPORT_FILE);
    st = rp ? report_to(rp, plan, &pi, shards, nshards, o, sha, err) : LQ_ERR_NO_MEMORY;
    free(rp);
    if (st != LQ_OK)
        goto cleanup;
    lq_hex(sha, 32, hx);
    if ((st = add_file(&files, &nfiles, LQ_REPORT_FILE, report_len, hx, err)) != LQ_OK)
        goto cleanup;
    free(inames);
    free(ifiles);
    inames = ifiles = NULL;
    qsort(files, nfiles, sizeof(*files), cmp_file);

    /* The manifest streams into its file (at the real model's tensor count it is about 70 MB);
     * its SHA-256 comes from the file's commit, and signing reads it back. */
    char *mp = pjoin(asm_dir, LQ_MANIFEST_FILE);
    if (!mp) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto cleanup;
    }
    lq_outfile *mof = NULL;
    if ((st = lq_outfile_open(mp, &mof, err)) != LQ_OK) {
        free(mp);
        goto cleanup;
    }
    lq_jw *w = lq_jw_new(2);
    lq_jw_set_sink(w, lq_outfile_sink, mof);
    lq_jw_begin_object(w);
    lq_jw_key(w, "schema_version");
    lq_jw_u64(w, 1);
    lq_jw_key(w, "tool");
    lq_jw_string(w, "mimo-quant");
    lq_jw_key(w, "tool_version");
    lq_jw_string(w, LQ_VERSION_STRING);
    lq_jw_key(w, "options");
    {
        /* Re-emit the options object member by member so the pretty layout stays regular. */
        const cJSON *opts = lq_json_get(plan, "options");
        lq_jw_begin_object(w);
        const cJSON *ch;
        for (ch = opts ? opts->child : NULL; ch; ch = ch->next) {
            lq_jw_key(w, ch->string);
            if (cJSON_IsString(ch))
                lq_jw_string(w, ch->valuestring);
            else if (cJSON_IsNumber(ch))
                lq_jw_u64(w, (uint64_t)ch->valuedouble);
            else if (cJSON_IsBool(ch))
                lq_jw_bool(w, cJSON_IsTrue(ch));
            else if (cJSON_IsArray(ch)) {
                lq_jw_begin_array(w);
                const cJSON *e;
                cJSON_ArrayForEach(e, ch) {
                    if (cJSON_IsString(e))
                        lq_jw_string(w, e->valuestring);
                    else
                        lq_jw_null(w);
                }
                lq_jw_end_array(w);
            } else
                lq_jw_null(w);
        }
        lq_jw_end_object(w);
    }
    const cJSON *source = lq_json_get(plan, "source");
    lq_jw_key(w, "source");
    lq_jw_begin_object(w);
    const char *csha = jstr(source, "config_sha256"), *isha = jstr(source, "index_sha256");
    if (csha) {
        lq_jw_key(w, "config_sha256");
        lq_jw_string(w, csha);
    }
    if (isha) {
        lq_jw_key(w, "index_sha256");
        lq_jw_string(w, isha);
    }
    lq_jw_key(w, "files");
    lq_jw_begin_array(w);
    const cJSON *h = lq_json_get(source, "shards");
    h = h ? h->child : NULL;
    for (size_t j = 0; j < nsrc; j++, h = h ? h->next : NULL) {
        uint64_t size = 0;
        lq_json_u64(lq_json_get(srcrec[j], "size"), &size);
        lq_jw_begin_object(w);
        lq_jw_key(w, "name");
        lq_jw_string(w, jstr(srcrec[j], "name"));
        lq_jw_key(w, "size");
        lq_jw_u64(w, size);
        lq_jw_key(w, "sha256");
        lq_jw_string(w, jstr(srcrec[j], "sha256"));
        lq_jw_key(w, "header_sha256");
        lq_jw_string(w, jstr(h, "header_sha256"));
        lq_jw_end_object(w);
    }
    lq_jw_end_array(w);
    lq_jw_end_object(w);
    lq_jw_key(w, "files");
    lq_jw_begin_array(w);
    for (size_t i = 0; i < nfiles; i++) {
        lq_jw_begin_object(w);
        lq_jw_key(w, "path");
        lq_jw_string(w, files[i].path);
        lq_jw_key(w, "size");
        lq_jw_u64(w, files[i].size);
        lq_jw_key(w, "sha256");
        lq_jw_string(w, files[i].sha);
        lq_jw_end_object(w);
    }
    lq_jw_end_array(w);
    lq_jw_key(w, "tensors");
    lq_jw_begin_array(w);
    for (size_t i = 0; i < nt; i++) {
        const ptensor *pt = &pi.t[i];
        uint64_t sh = pt->shard;
        lq_jw_begin_object(w);
        lq_jw_key(w, "name");
        lq_jw_string(w, pt->name);
        lq_jw_key(w, "dtype");
        lq_jw_string(w, pt->dtype);
        lq_jw_key(w, "shape");
        lq_jw_begin_array(w);
        for (uint32_t k = 0; k < pt->ndims; k++)
            lq_jw_u64(w, pi.dims[pt->dims + k]);
        lq_jw_end_array(w);
        lq_jw_key(w, "file");
        lq_jw_string(w, shards[sh < nshards ? sh : 0].name);
        const char *crc = pt->crc_set ? pt->crc : NULL;
        if (crc) {
            lq_jw_key(w, "crc32c");
            lq_jw_string(w, crc);
        }
        lq_jw_end_object(w);
    }
    lq_jw_end_array(w);
    lq_jw_end_object(w);
    size_t manifest_len = 0;
    st = lq_jw_finish(w, NULL, &manifest_len, err);
    lq_jw_free(w);
    if (st == LQ_OK)
        st = lq_outfile_commit(mof, sha, NULL, err);
    else
        lq_outfile_abort(mof);
    if (st != LQ_OK) {
        free(mp);
        goto cleanup;
    }
    char manifest_sha[65];
    lq_hex(sha, 32, manifest_sha);
    if (o && o->sign_key) {
        uint8_t *mtext = NULL;
        size_t mlen = 0;
        st = lq_read_file(mp, LQ_OUTPUT_JSON_MAX_BYTES, NULL, NULL, &mtext, &mlen, err);
        manifest = (char *)mtext;
        if (st == LQ_OK && mlen != manifest_len)
            st = lq_fail(err, LQ_ERR_IO, mp, NULL, "OUT_WRITE", "read back %zu bytes, wrote %zu", mlen, manifest_len);
    }
    free(mp);
    if (st != LQ_OK)
        goto cleanup;
    if (o && o->sign_key) {
        uint8_t sig[64], pub[32];
        if ((st = lq_ed25519_sign(o->sign_key, manifest, manifest_len, sig, err)) != LQ_OK ||
            (st = lq_ed25519_public_from_private(o->sign_key, pub, err)) != LQ_OK)
            goto cleanup;
        char *sp = pjoin(asm_dir, LQ_SIGNATURE_FILE);
        st = sp ? lq_sig_write(sp, sig, pub, err) : LQ_ERR_NO_MEMORY;
        free(sp);
        if (st != LQ_OK)
            goto cleanup;
    }

    /* 7. Publish: the publish record, then drop the bookkeeping, then one rename. */
    if ((st = write_publish_record(out, fp0, asm_dir, manifest_sha, err)) != LQ_OK)
        goto cleanup;
    test_kill_at("record");
    remove_state(asm_dir);
    parent = parent_of(out);
    test_kill_at("publish");
    int published = fsync_dir(asm_dir) == 0 && rename(asm_dir, out) == 0;
    if (published)
        test_kill_at("published");
    if (!published || (parent && fsync_dir(parent) != 0)) {
        st = lq_fail(err, LQ_ERR_IO, out, NULL, "OUT_PUBLISH", "cannot publish %s as %s: %s", asm_dir, out,
                     strerror(errno));
        goto cleanup;
    }
    {
        char rp2[4200];
        snprintf(rp2, sizeof(rp2), "%s.report.json", out);
        unlink(rp2); /* a failed gate's report from an earlier attempt */
    }
    if (!in_place)
        drop_work_dirs(work_dirs, nwork);
    {
        char rr[4200];
        lq_publish_record_name(out, rr, sizeof(rr));
        if (unlink(rr) != 0 || (parent && fsync_dir(parent) != 0))
            st = lq_fail(err, LQ_ERR_IO, rr, NULL, "OUT_PUBLISH", "OUT is published but this record cannot be "
                         "removed: %s", strerror(errno));
    }
cleanup:
    for (size_t i = 0; i < nwork; i++)
        cJSON_Delete(parts[i].plan_file);
    free(parts);
    for (size_t s = 0; shards && s < nshards; s++) {
        cJSON_Delete(shards[s].rec);
        free(shards[s].unknown_name);
    }
    plan_index_free(&pi);
    free(shards);
    for (size_t j = 0; srcrec && j < nsrc; j++)
        cJSON_Delete(srcrec[j]);
    free(srcrec);
    for (size_t i = 0; i < nfiles; i++)
        free(files[i].path);
    free(files);
    cJSON_Delete(extras);
    free(manifest);
    free(asm_dir);
    free(parent);
    free(inames);
    free(ifiles);
    return st;
}
