/* Strict safetensors reader (safetensors.h).
 *
 * The order of the checks follows the file: the 8-byte length, the header bounds, the header's
 * first and last bytes, strict JSON, then each entry on its own (name, keys, dtype, shape, sizes,
 * offsets), then the offsets of all entries together, then the data section's length. Every
 * number taken from the file is range-checked before it is used in arithmetic or as a pointer
 * offset, and every allocation is bounded by a limit checked beforehand: the JSON tree by the
 * header size and a value budget derived from max_tensors, the tensor table by max_tensors.
 * Tensor data are never copied; a mapping or a caller's buffer is borrowed. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "internal/fileio.h"

#define DEFAULT_MAX_HEADER 100000000u /* MAX_HEADER_SIZE of the reference reader (3.3) */
#define DEFAULT_MAX_TENSORS 1000000u
#define DEFAULT_MAX_NAME 1024u
/* Nesting of a valid header: top object (1), tensor entry or __metadata__ (2), shape or
 * data_offsets array (3). */
#define HEADER_DEPTH 3
/* A tensor entry holds at most 1 + 1 + 3 + 1 + 1 + 8 + 1 + 2 = 18 JSON values (name, object,
 * three keys, dtype, shape array and dims, offsets array and offsets); 24 leaves room, and the
 * fixed extra covers __metadata__ entries. Rejecting more values before cJSON builds its tree
 * bounds the tree's memory (about 64 bytes per value) by the tensor limit. */
#define VALUES_PER_TENSOR 24u
#define VALUES_EXTRA 4096u
#define METADATA_KEY "__metadata__"

typedef struct st_meta {
    const char *key;
    const char *value;
} st_meta;

struct lq_st_file {
    char *label;
    const uint8_t *base; /* the whole image */
    uint64_t size;
    void *map;           /* non-NULL when we own a mapping of map_len bytes */
    size_t map_len;
    uint64_t header_len;
    const uint8_t *data; /* start of the data section */
    uint64_t data_len;
    lq_tensor_info *tensors; /* sorted by name */
    size_t count;
    st_meta *meta;       /* sorted by key */
    size_t nmeta;
    char *arena;         /* names, metadata keys and values */
};

typedef struct st_limits {
    uint64_t max_header, max_tensors;
    uint32_t max_name, max_rank;
} st_limits;

static st_limits resolve_limits(const lq_st_limits *l)
{
    st_limits r = {DEFAULT_MAX_HEADER, DEFAULT_MAX_TENSORS, DEFAULT_MAX_NAME, LQ_MAX_RANK};
    if (l) {
        if (l->max_header)
            r.max_header = l->max_header;
        if (l->max_tensors)
            r.max_tensors = l->max_tensors;
        if (l->max_name)
            r.max_name = l->max_name;
        if (l->max_rank && l->max_rank < LQ_MAX_RANK)
            r.max_rank = l->max_rank;
    }
    return r;
}

static int is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static uint64_t read_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Index just past the '}' that closes the object opened at h[0], or 0 when it is never closed.
 * Only quotes and backslashes matter inside strings; multi-byte UTF-8 never contains them. */
static uint64_t object_end(const uint8_t *h, uint64_t n)
{
    uint64_t depth = 0;
    int in_str = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t c = h[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0 || --depth == 0)
                return i + 1;
        }
    }
    return 0;
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(((const lq_tensor_info *)a)->name, ((const lq_tensor_info *)b)->name);
}

static int cmp_by_offset(const void *a, const void *b)
{
    const lq_tensor_info *x = *(const lq_tensor_info *const *)a;
    const lq_tensor_info *y = *(const lq_tensor_info *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    /* Zero-length tensors sort before the tensor that starts at the same offset. */
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_meta(const void *a, const void *b)
{
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

static char *arena_put(char **cursor, const char *s)
{
    size_t n = strlen(s) + 1;
    char *dst = *cursor;
    memcpy(dst, s, n);
    *cursor += n;
    return dst;
}

/* Validates one tensor entry and fills *t (its name already set). */
static lq_status parse_entry(const cJSON *entry, const st_limits *lim, const char *label,
                             lq_tensor_info *t, lq_error *err)
{
    const char *name = t->name;
    if (!cJSON_IsObject(entry))
        return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_NOT_OBJECT",
                       "tensor entry is not an object");

    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *k = entry->child; k; k = k->next) {
        if (strcmp(k->string, "dtype") == 0)
            dtype = k;
        else if (strcmp(k->string, "shape") == 0)
            shape = k;
        else if (strcmp(k->string, "data_offsets") == 0)
            offs = k;
        else
            return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_ENTRY_KEYS",
                           "unexpected key \"%.100s\" (allowed: dtype, shape, data_offsets)",
                           k->string);
    }
    /* Duplicates were rejected by the JSON layer, so three distinct known keys are all three. */
    if (!dtype || !shape || !offs)
        return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_ENTRY_KEYS", "missing key \"%s\"",
                       !dtype ? "dtype" : !shape ? "shape" : "data_offsets");

    if (!cJSON_IsString(dtype) || !dtype->valuestring)
        return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_DTYPE", "dtype is not a string");
    t->dtype = lq_dtype_from_name(dtype->valuestring, strlen(dtype->valuestring));
    if (t->dtype == LQ_DTYPE_INVALID)
        return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_DTYPE", "unknown dtype \"%.40s\"",
                       dtype->valuestring);

    if (!cJSON_IsArray(shape))
        return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_SHAPE", "shape is not an array");
    uint64_t rank = 0;
    for (const cJSON *d = shape->child; d; d = d->next)
        rank++;
    if (rank > lim->max_rank)
        return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_RANK", "rank %llu above %u",
                       (unsigned long long)rank, lim->max_rank);
    t->rank = (uint32_t)rank;
    uint32_t r = 0;
    for (const cJSON *d = shape->child; d; d = d->next, r++) {
        if (lq_json_u64(d, &t->shape[r]) != 0)
            return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_SHAPE",
                           "shape[%u] is not a non-negative integer", r);
    }

    /* Left-to-right checked product, as the reference does: a zero after an overflowing prefix
     * does not rescue the shape. */
    uint64_t numel = 1;
    for (r = 0; r < t->rank; r++) {
        uint64_t d = t->shape[r];
        if (d && numel > UINT64_MAX / d)
            return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_NUMEL_OVERFLOW",
                           "element count overflows 64 bits at dimension %u", r);
        numel *= d;
    }
    uint64_t bits = lq_dtype_bits(t->dtype);
    if (bits == 0)
        return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_DTYPE", "dtype without a bit size");
    if (numel > UINT64_MAX / bits)
        return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_NUMEL_OVERFLOW",
                       "size in bits of %llu elements overflows 64 bits",
                       (unsigned long long)numel);
    uint64_t nbits = numel * bits;
    if (nbits % 8 != 0)
        return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_SUBBYTE",
                       "%llu elements of %s do not fill whole bytes", (unsigned long long)numel,
                       lq_dtype_name(t->dtype));
    t->numel = numel;
    t->nbytes = nbits / 8;

    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        lq_json_u64(offs->child, &t->begin) != 0 || lq_json_u64(offs->child->next, &t->end) != 0)
        return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_OFFSETS",
                       "data_offsets is not two non-negative integers");
    if (t->begin > t->end)
        return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_OFFSET_ORDER",
                       "begin %llu > end %llu", (unsigned long long)t->begin,
                       (unsigned long long)t->end);
    if (t->end - t->begin != t->nbytes)
        return lq_fail(err, LQ_ERR_CORRUPT, label, name, "ST_SIZE_MISMATCH",
                       "data_offsets span %llu bytes, dtype %s and shape need %llu",
                       (unsigned long long)(t->end - t->begin), lq_dtype_name(t->dtype),
                       (unsigned long long)t->nbytes);
    return LQ_OK;
}

/* The data section must be covered exactly: sorted by offset, each tensor starts where the
 * previous one ended, the first at 0, the last ends at the end of the file. */
static lq_status check_coverage(lq_st_file *f, lq_error *err)
{
    lq_status st = LQ_OK;
    const lq_tensor_info **order = NULL;
    if (f->count) {
        order = malloc(f->count * sizeof(*order));
        if (!order)
            return lq_fail(err, LQ_ERR_NO_MEMORY, f->label, NULL, NULL, "out of memory");
        for (size_t i = 0; i < f->count; i++)
            order[i] = &f->tensors[i];
        qsort(order, f->count, sizeof(*order), cmp_by_offset);
    }
    uint64_t expected = 0;
    for (size_t i = 0; i < f->count; i++) {
        const lq_tensor_info *t = order[i];
        if (t->begin > expected) {
            if (i == 0)
                st = lq_fail(err, LQ_ERR_CORRUPT, f->label, t->name, "ST_OFFSET_START",
                             "the first tensor starts at %llu, not 0",
                             (unsigned long long)t->begin);
            else
                st = lq_fail(err, LQ_ERR_CORRUPT, f->label, t->name, "ST_OFFSET_GAP",
                             "starts at %llu, %llu bytes after \"%.100s\" ends",
                             (unsigned long long)t->begin,
                             (unsigned long long)(t->begin - expected), order[i - 1]->name);
            goto cleanup;
        }
        if (t->begin < expected) {
            st = lq_fail(err, LQ_ERR_CORRUPT, f->label, t->name, "ST_OFFSET_OVERLAP",
                         "[%llu, %llu) overlaps \"%.100s\", which ends at %llu",
                         (unsigned long long)t->begin, (unsigned long long)t->end,
                         order[i - 1]->name, (unsigned long long)expected);
            goto cleanup;
        }
        expected = t->end;
    }
    if (expected < f->data_len) {
        st = lq_fail(err, LQ_ERR_CORRUPT, f->label, NULL, "ST_TRAILING_BYTES",
                     "%llu bytes after the last tensor's end",
                     (unsigned long long)(f->data_len - expected));
    } else if (expected > f->data_len) {
        st = lq_fail(err, LQ_ERR_CORRUPT, f->label, order[f->count - 1]->name, "ST_TRUNCATED",
                     "tensor data end at %llu but the data section holds %llu bytes",
                     (unsigned long long)expected, (unsigned long long)f->data_len);
    }
cleanup:
    free(order);
    return st;
}

static lq_status parse_image(lq_st_file *f, const lq_st_limits *limits, lq_error *err)
{
    const char *label = f->label;
    st_limits lim = resolve_limits(limits);
    cJSON *root = NULL;
    lq_status st = LQ_OK;

    if (f->size < 8)
        return lq_fail(err, LQ_ERR_CORRUPT, label, NULL, "ST_FILE_SMALL",
                       "%llu bytes, shorter than the 8-byte header length",
                       (unsigned long long)f->size);
    uint64_t n = read_le64(f->base);
    if (n == 0)
        return lq_fail(err, LQ_ERR_CORRUPT, label, NULL, "ST_HEADER_ZERO", "header length is 0");
    if (n > lim.max_header)
        return lq_fail(err, LQ_ERR_LIMIT, label, NULL, "ST_HEADER_LIMIT",
                       "header length %llu above the limit %llu", (unsigned long long)n,
                       (unsigned long long)lim.max_header);
    if (n > f->size - 8)
        return lq_fail(err, LQ_ERR_CORRUPT, label, NULL, "ST_HEADER_BOUNDS",
                       "header length %llu but only %llu bytes follow the length field",
                       (unsigned long long)n, (unsigned long long)(f->size - 8));
    f->header_len = n;
    f->data = f->base + 8 + n;
    f->data_len = f->size - 8 - n;

    const uint8_t *h = f->base + 8;
    if (h[0] != '{')
        return lq_fail(err, LQ_ERR_CORRUPT, label, NULL, "ST_HEADER_BRACE",
                       "header starts with byte 0x%02x, not '{'", h[0]);
    uint64_t obj_end = object_end(h, n);
    for (uint64_t i = obj_end; obj_end && i < n; i++)
        if (!is_ws(h[i]))
            return lq_fail(err, LQ_ERR_CORRUPT, label, NULL, "ST_HEADER_PAD",
                           "byte 0x%02x at header offset %llu after the JSON object (only "
                           "whitespace may pad the header)",
                           h[i], (unsigned long long)i);

    lq_json_limits jl = {0};
    jl.max_depth = HEADER_DEPTH;
    jl.integers_only = 1;
    jl.max_values = lim.max_tensors > (UINT64_MAX - VALUES_EXTRA) / VALUES_PER_TENSOR
                        ? 0
                        : lim.max_tensors * VALUES_PER_TENSOR + VALUES_EXTRA;
    st = lq_json_parse((const char *)h, (size_t)n, &jl, label, &root, err);
    if (st != LQ_OK)
        return st;
    if (!cJSON_IsObject(root)) {
        st = lq_fail(err, LQ_ERR_CORRUPT, label, NULL, "ST_NOT_OBJECT",
                     "header is not a JSON object");
        goto cleanup;
    }

    /* Pass 1: counts, names and metadata types, so every allocation below is sized and
     * bounded before it happens. */
    const cJSON *meta = NULL;
    size_t count = 0, nmeta = 0, arena_len = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, METADATA_KEY) == 0) {
            meta = e;
            if (!cJSON_IsObject(e)) {
                st = lq_fail(err, LQ_ERR_CORRUPT, label, METADATA_KEY, "ST_METADATA_TYPE",
                             "__metadata__ is not an object");
                goto cleanup;
            }
            for (const cJSON *m = e->child; m; m = m->next) {
                if (!cJSON_IsString(m) || !m->valuestring) {
                    st = lq_fail(err, LQ_ERR_CORRUPT, label, METADATA_KEY, "ST_METADATA_TYPE",
                                 "value of \"%.100s\" is not a string", m->string);
                    goto cleanup;
                }
                nmeta++;
                arena_len += strlen(m->string) + strlen(m->valuestring) + 2;
            }
            continue;
        }
        size_t len = strlen(e->string);
        if (len == 0) {
            st = lq_fail(err, LQ_ERR_CORRUPT, label, NULL, "ST_NAME", "empty tensor name");
            goto cleanup;
        }
        if (len > lim.max_name) {
            st = lq_fail(err, LQ_ERR_CORRUPT, label, e->string, "ST_NAME",
                         "name of %zu bytes, above the limit %u", len, lim.max_name);
            goto cleanup;
        }
        count++;
        if (count > lim.max_tensors) {
            st = lq_fail(err, LQ_ERR_LIMIT, label, NULL, "ST_TENSOR_LIMIT",
                         "more than %llu tensors", (unsigned long long)lim.max_tensors);
            goto cleanup;
        }
        arena_len += len + 1;
    }

    f->tensors = count ? calloc(count, sizeof(*f->tensors)) : NULL;
    f->meta = nmeta ? calloc(nmeta, sizeof(*f->meta)) : NULL;
    f->arena = malloc(arena_len ? arena_len : 1);
    if ((count && !f->tensors) || (nmeta && !f->meta) || !f->arena) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, label, NULL, NULL, "out of memory for %zu tensors",
                     count);
        goto cleanup;
    }
    char *cursor = f->arena;
    if (meta) {
        for (const cJSON *m = meta->child; m; m = m->next) {
            st_meta *dst = &f->meta[f->nmeta++];
            dst->key = arena_put(&cursor, m->string);
            dst->value = arena_put(&cursor, m->valuestring);
        }
        if (f->nmeta > 1)
            qsort(f->meta, f->nmeta, sizeof(*f->meta), cmp_meta);
    }

    /* Pass 2: each entry on its own. */
    for (const cJSON *e = root->child; e; e = e->next) {
        if (e == meta)
            continue;
        lq_tensor_info *t = &f->tensors[f->count++];
        t->name = arena_put(&cursor, e->string);
        st = parse_entry(e, &lim, label, t, err);
        if (st != LQ_OK)
            goto cleanup;
    }

    /* All entries together. */
    st = check_coverage(f, err);
    if (st != LQ_OK)
        goto cleanup;

    if (f->count > 1)
        qsort(f->tensors, f->count, sizeof(*f->tensors), cmp_by_name);
    /* The JSON layer already rejects duplicate keys; this keeps lookups sound regardless. */
    for (size_t i = 1; i < f->count; i++) {
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
            st = lq_fail(err, LQ_ERR_CORRUPT, label, f->tensors[i].name, "JSON_DUP_KEY",
                         "tensor name appears twice");
            goto cleanup;
        }
    }

cleanup:
    cJSON_Delete(root);
    return st;
}

static lq_st_file *file_new(const char *label)
{
    lq_st_file *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->label = strdup(label);
    if (!f->label) {
        free(f);
        return NULL;
    }
    return f;
}

lq_status lq_st_open_memory(const void *buf, size_t len, const char *label,
                            const lq_st_limits *limits, lq_st_file **out, lq_error *err)
{
    if (!label)
        label = "<memory>";
    if (!out || (!buf && len))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, label, NULL, NULL,
                       "lq_st_open_memory: NULL argument");
    *out = NULL;
    lq_st_file *f = file_new(label);
    if (!f)
        return lq_fail(err, LQ_ERR_NO_MEMORY, label, NULL, NULL, "out of memory");
    f->base = buf;
    f->size = len;
    lq_status st = parse_image(f, limits, err);
    if (st != LQ_OK) {
        lq_st_close(f);
        return st;
    }
    *out = f;
    return LQ_OK;
}

lq_status lq_st_open(const char *path, const lq_st_limits *limits, lq_st_file **out,
                     lq_error *err)
{
    if (!path || !out)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, NULL,
                       "lq_st_open: NULL argument");
    *out = NULL;
    lq_status st = LQ_OK;
    lq_st_file *f = NULL;
    int fd = -1;
    uint64_t fsize = 0;
    st = lq_open_regular(path, 0, NULL, NULL, &fd, &fsize, err);
    if (st != LQ_OK)
        return st;
    f = file_new(path);
    if (!f) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, NULL, "out of memory");
        goto cleanup;
    }
    f->size = fsize;
    /* mmap cannot map 0 bytes; a file this short fails ST_FILE_SMALL without being read. */
    if (f->size >= 8) {
        void *m = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            st = lq_fail(err, LQ_ERR_IO, path, NULL, NULL, "mmap failed: %s", strerror(errno));
            goto cleanup;
        }
        f->map = m;
        f->map_len = (size_t)f->size;
        f->base = m;
    }
    st = parse_image(f, limits, err);
    /* Everything the header says is in f now (names copied): its pages of the mapping need not
     * stay resident. A reader of many tensors would otherwise keep ~150 bytes per tensor of
     * header text for as long as the file is open; a later access reads them back from the page
     * cache (the mapping is private and never written). A read fault maps the cached pages
     * around it too (Linux's fault-around, 64 kB by default), so the drop reaches past the
     * header to the next 64 kB boundary: the first data pages come back when they are read. Up
     * to 60 kB per file stayed mapped otherwise (27 MB over a source of 677 small files). */
    if (st == LQ_OK && f->map && f->header_len) {
        const size_t around = (size_t)64 << 10;
        size_t n = (size_t)(8 + f->header_len);
        n = f->map_len < around || n > f->map_len - around ? f->map_len : (n + around - 1) / around * around;
        madvise(f->map, n, MADV_DONTNEED);
    }

cleanup:
    close(fd);
    if (st != LQ_OK) {
        lq_st_close(f);
        return st;
    }
    *out = f;
    return LQ_OK;
}

void lq_st_close(lq_st_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->map_len);
    free(f->tensors);
    free(f->meta);
    free(f->arena);
    free(f->label);
    free(f);
}

const char *lq_st_path(const lq_st_file *f)
{
    return f ? f->label : NULL;
}

uint64_t lq_st_file_size(const lq_st_file *f)
{
    return f ? f->size : 0;
}

uint64_t lq_st_header_len(const lq_st_file *f)
{
    return f ? f->header_len : 0;
}

size_t lq_st_count(const lq_st_file *f)
{
    return f ? f->count : 0;
}

const lq_tensor_info *lq_st_tensor(const lq_st_file *f, size_t i)
{
    return f && i < f->count ? &f->tensors[i] : NULL;
}

const lq_tensor_info *lq_st_find(const lq_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    size_t lo = 0, hi = f->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->tensors[mid].name);
        if (c == 0)
            return &f->tensors[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const uint8_t *lq_st_data(const lq_st_file *f, const lq_tensor_info *t)
{
    if (!f || !t)
        return NULL;
    return f->data + t->begin;
}

const char *lq_st_metadata(const lq_st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    size_t lo = 0, hi = f->nmeta;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, f->meta[mid].key);
        if (c == 0)
            return f->meta[mid].value;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t lq_st_metadata_count(const lq_st_file *f)
{
    return f ? f->nmeta : 0;
}

int lq_st_metadata_at(const lq_st_file *f, size_t i, const char **key, const char **value)
{
    if (!f || i >= f->nmeta)
        return -1;
    if (key)
        *key = f->meta[i].key;
    if (value)
        *value = f->meta[i].value;
    return 0;
}
