/* Streaming safetensors writer, shard planning and the sharded-checkpoint index (stwriter.h).
 *
 * The byte layout matches what the Python `safetensors` library (0.8, `serialize`) writes for
 * the same tensors with metadata {"format":"pt"} (reference/mxfp4_formats.md 3.1 and 3.5,
 * confirmed by experiment with that library):
 *   - tensors are ordered by the reference Dtype enum, descending (U64, I64, F64, C64, F32, U32,
 *     I32, BF16, F16, U16, I16, F8_E5M2FNUZ, F8_E4M3FNUZ, F8_E8M0, F8_E4M3, F8_E5M2, I8, U8,
 *     F6_E3M2, F6_E2M3, F4, BOOL; lq_dtype uses the same order), then by name compared
 *     byte-wise, and laid out back to back from offset 0;
 *   - the header is compact JSON: {"__metadata__":{...},"<name>":{"dtype":"..","shape":[..],
 *     "data_offsets":[b,e]},...} with entries in layout order, then spaces up to a multiple
 *     of 8 bytes;
 *   - strings are escaped as serde_json does: \" \\ \b \t \n \f \r, other bytes below 0x20 as
 *     \u00xx (lowercase hex); everything else, UTF-8 included, passes through.
 * The reference writer keeps metadata in a hash map, so with more than one metadata key its
 * order is not reproducible; we emit "format" first and the other keys sorted byte-wise.
 *
 * The index is written the way transformers' save_pretrained writes it:
 * json.dumps(index, indent=2, sort_keys=True) + "\n" (Python's default ensure_ascii, so
 * non-ASCII characters appear as \uXXXX escapes). Shards are planned exactly as
 * huggingface_hub's split_state_dict_into_shards_factory does. */
#include "stwriter.h"

#include "crc32c.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "outfile.h"

/* Limits shared with the strict reader's defaults (safetensors.h). */
#define STW_MAX_NAME 1024
#define STW_MAX_HEADER 100000000ull
#define STW_DIRECT_MIN LQ_STW_DIRECT_MIN

typedef struct meta_kv {
    char *key;
    char *val;
} meta_kv;

/* One declared tensor. Kept small (40 bytes, the shape in a shared pool, the name in an arena
 * or the caller's) because a writer holds one per tensor of its shard for the whole shard: at
 * the real model's tensor count that is what the converter's memory grows with. */
typedef struct stw_entry {
    const char *name;  /* in the writer's name arena, or the caller's (lq_stw_borrow_names) */
    uint64_t nbytes;
    uint64_t begin;    /* offset in the data section, set by the layout */
    size_t dim0;       /* first of its `rank` values in dims */
    lq_dtype dtype;
    uint32_t rank;
} stw_entry;

struct lq_stw {
    char *path;
    stw_entry *t; /* declaration order before begin, file order after */
    size_t n, cap;
    uint64_t *dims; /* shape values of every tensor */
    size_t ndims, dims_cap;
    char **blocks; /* name arena: names are never freed one by one */
    size_t nblocks, block_used, block_cap;
    int borrow;    /* names are the caller's, not copied into the arena */
    uint32_t *slots; /* open-addressing name table: index + 1, 0 = empty */
    size_t nslots;
    meta_kv *meta;
    size_t nmeta, metacap;
    int begun, failed;
    lq_outfile *out;
    uint64_t header_len, total;
    size_t cur;        /* next tensor that still needs bytes (never a zero-byte one) */
    uint64_t cur_done; /* bytes of t[cur] already written */
    uint32_t *crc;     /* CRC-32C of each tensor's bytes so far, file order (after begin) */
    lq_tensor_info view; /* what lq_stw_tensor returns */
};

/* ---- growable text buffer ---- */

/* The header text goes through this buffer in two passes: one that only counts (count_only,
 * nothing stored: the length fixes the 8-byte prefix and the padding), then one that hands the
 * text to the output file every SB_FLUSH bytes. So the header is never held whole: it is about
 * 110 bytes per tensor. */
#define SB_FLUSH ((size_t)64 << 10)

typedef struct sbuf {
    char *p;
    size_t len, cap;
    uint64_t total;     /* bytes put so far, flushed ones included */
    int oom;
    int count_only;
    lq_outfile *out;    /* flush target (NULL: keep everything in p) */
    lq_status st;       /* first flush failure */
    lq_error *err;
} sbuf;

static void sb_flush(sbuf *b)
{
    if (b->out && b->len && b->st == LQ_OK)
        b->st = lq_outfile_write(b->out, b->p, b->len, b->err);
    b->len = 0;
}

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom || b->st != LQ_OK)
        return;
    b->total += n;
    if (b->count_only)
        return;
    if (b->out && b->len + n + 1 > SB_FLUSH)
        sb_flush(b);
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1) {
            if (nc > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            nc *= 2;
        }
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_putc(sbuf *b, char c)
{
    sb_put(b, &c, 1);
}

static void sb_u64(sbuf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    sb_put(b, tmp, (size_t)n);
}

/* ---- UTF-8 ---- */

/* Decodes one strictly valid UTF-8 sequence (no overlongs, no surrogates, at most U+10FFFF).
 * Returns the code point and sets *len, or returns -1. */
static long utf8_next(const unsigned char *s, size_t avail, size_t *len)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *len = 1;
        return (long)c;
    }
    size_t need;
    long cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return -1;
    }
    if (avail < need)
        return -1;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *len = need;
    return cp;
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n > 0) {
        size_t l;
        if (utf8_next(p, n, &l) < 0)
            return 0;
        p += l;
        n -= l;
    }
    return 1;
}

/* serde_json string escaping (see the file comment). */
static void sb_json_serde(sbuf *b, const char *s)
{
    static const char hexd[] = "0123456789abcdef";
    sb_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned c = *p;
        switch (c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        default:
            if (c < 0x20) {
                char e[6] = {'\\', 'u', '0', '0', hexd[c >> 4], hexd[c & 15]};
                sb_put(b, e, 6);
            } else {
                sb_putc(b, (char)c);
            }
        }
    }
    sb_putc(b, '"');
}

static void sb_u16esc(sbuf *b, unsigned v)
{
    static const char hexd[] = "0123456789abcdef";
    char e[6] = {'\\', 'u', hexd[(v >> 12) & 15], hexd[(v >> 8) & 15], hexd[(v >> 4) & 15],
                 hexd[v & 15]};
    sb_put(b, e, 6);
}

/* Python json.dumps string escaping with ensure_ascii=True: only 0x20..0x7E other than the
 * quote and backslash pass through; \" \\ \b \f \n \r \t use short forms; everything else is
 * \uXXXX (lowercase), code points above U+FFFF as a surrogate pair. s must be valid UTF-8. */
static void sb_json_py(sbuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    sb_putc(b, '"');
    while (n > 0) {
        size_t l = 1;
        long cp = utf8_next(p, n, &l);
        if (cp < 0) { /* callers validate first; keep going defensively */
            cp = 0xFFFD;
            l = 1;
        }
        switch (cp) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (cp >= 0x20 && cp <= 0x7E) {
                sb_putc(b, (char)cp);
            } else if (cp > 0xFFFF) {
                long v = cp - 0x10000;
                sb_u16esc(b, (unsigned)(0xD800 + (v >> 10)));
                sb_u16esc(b, (unsigned)(0xDC00 + (v & 0x3FF)));
            } else {
                sb_u16esc(b, (unsigned)cp);
            }
        }
        p += l;
        n -= l;
    }
    sb_putc(b, '"');
}

/* ---- name table ---- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return h;
}

/* Index of the tensor called name, or SIZE_MAX. */
static size_t table_find(const lq_stw *w, const char *name)
{
    if (!w->nslots)
        return SIZE_MAX;
    size_t mask = w->nslots - 1;
    for (size_t s = (size_t)name_hash(name) & mask;; s = (s + 1) & mask) {
        size_t v = w->slots[s];
        if (v == 0)
            return SIZE_MAX;
        if (strcmp(w->t[v - 1].name, name) == 0)
            return v - 1;
    }
}

/* Rebuilds the table for the first n tensors with at least want slots (a power of two); the
 * table in place when it already has that many (after the layout reorders the tensors). */
static int table_rebuild(lq_stw *w, size_t want)
{
    size_t ns = 16;
    while (ns < want)
        ns *= 2;
    uint32_t *slots = w->slots;
    if (ns == w->nslots)
        memset(slots, 0, ns * sizeof(*slots));
    else if (!(slots = calloc(ns, sizeof(*slots))))
        return -1;
    for (size_t i = 0; i < w->n; i++) {
        size_t s = (size_t)name_hash(w->t[i].name) & (ns - 1);
        while (slots[s])
            s = (s + 1) & (ns - 1);
        slots[s] = (uint32_t)(i + 1);
    }
    if (slots != w->slots)
        free(w->slots);
    w->slots = slots;
    w->nslots = ns;
    return 0;
}

/* ---- writer ---- */

/* A copy of name in the writer's arena (blocks of 64 KiB, or one block for a longer name). */
static const char *arena_copy(lq_stw *w, const char *name)
{
    size_t n = strlen(name) + 1;
    if (!w->nblocks || w->block_used + n > w->block_cap) {
        size_t cap = n > ((size_t)64 << 10) ? n : ((size_t)64 << 10);
        char **nb = realloc(w->blocks, (w->nblocks + 1) * sizeof(*nb));
        if (!nb)
            return NULL;
        w->blocks = nb;
        if (!(nb[w->nblocks] = malloc(cap)))
            return NULL;
        w->nblocks++;
        w->block_used = 0;
        w->block_cap = cap;
    }
    char *d = w->blocks[w->nblocks - 1] + w->block_used;
    memcpy(d, name, n);
    w->block_used += n;
    return d;
}

lq_status lq_stw_create(const char *final_path, lq_stw **out, lq_error *err)
{
    if (out)
        *out = NULL;
    if (!final_path || !final_path[0] || !out)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, final_path, NULL, "STW_STATE",
                       "missing output path");
    lq_stw *w = calloc(1, sizeof(*w));
    if (!w)
        return lq_fail(err, LQ_ERR_NO_MEMORY, final_path, NULL, "STW_STATE", "out of memory");
    size_t n = strlen(final_path);
    w->path = malloc(n + 1);
    if (!w->path) {
        free(w);
        return lq_fail(err, LQ_ERR_NO_MEMORY, final_path, NULL, "STW_STATE", "out of memory");
    }
    memcpy(w->path, final_path, n + 1);
    *out = w;
    return LQ_OK;
}

lq_status lq_stw_reserve(lq_stw *w, size_t ntensors, size_t ndims, lq_error *err)
{
    if (!w || w->begun || w->failed || ntensors >= UINT32_MAX)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w ? w->path : NULL, NULL, "STW_STATE",
                       "lq_stw_reserve needs a writer not yet begun and fewer than 2^32 tensors");
    if (ntensors > w->cap) {
        stw_entry *nt = realloc(w->t, ntensors * sizeof(*nt));
        if (!nt)
            return lq_fail(err, LQ_ERR_NO_MEMORY, w->path, NULL, "STW_STATE", "out of memory");
        w->t = nt;
        w->cap = ntensors;
    }
    if (ndims > w->dims_cap) {
        uint64_t *nd = realloc(w->dims, ndims * sizeof(*nd));
        if (!nd)
            return lq_fail(err, LQ_ERR_NO_MEMORY, w->path, NULL, "STW_STATE", "out of memory");
        w->dims = nd;
        w->dims_cap = ndims;
    }
    if (ntensors * 2 > w->nslots && table_rebuild(w, ntensors * 2) != 0)
        return lq_fail(err, LQ_ERR_NO_MEMORY, w->path, NULL, "STW_STATE", "out of memory");
    return LQ_OK;
}

lq_status lq_stw_borrow_names(lq_stw *w, lq_error *err)
{
    if (!w || w->n || w->begun || w->failed)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w ? w->path : NULL, NULL, "STW_STATE",
                       "lq_stw_borrow_names needs a writer with no tensor declared yet");
    w->borrow = 1;
    return LQ_OK;
}

static void stw_free(lq_stw *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nblocks; i++)
        free(w->blocks[i]);
    free(w->blocks);
    free(w->t);
    free(w->dims);
    free(w->crc);
    free(w->slots);
    for (size_t i = 0; i < w->nmeta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].val);
    }
    free(w->meta);
    free(w->path);
    free(w);
}

static int name_ok(const char *name, const char **why)
{
    size_t n = strlen(name);
    if (n == 0)
        *why = "empty tensor name";
    else if (n > STW_MAX_NAME)
        *why = "tensor name longer than 1024 bytes";
    else if (!utf8_valid(name))
        *why = "tensor name is not valid UTF-8";
    else if (strcmp(name, "__metadata__") == 0)
        *why = "\"__metadata__\" is reserved";
    else
        return 1;
    return 0;
}

lq_status lq_stw_add(lq_stw *w, const char *name, lq_dtype dt, uint32_t rank,
                     const uint64_t *shape, lq_error *err)
{
    const char *why = NULL;
    if (!w || !name)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w ? w->path : NULL, NULL, "STW_STATE",
                       "missing writer or name");
    if (w->begun || w->failed)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "STW_STATE",
                       "tensors can only be declared before lq_stw_begin");
    if (!name_ok(name, &why))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "STW_NAME", "%s", why);
    unsigned bits = lq_dtype_bits(dt);
    if (bits == 0)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "STW_DTYPE",
                       "invalid dtype %d", (int)dt);
    if (rank > LQ_MAX_RANK || (rank > 0 && !shape))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "STW_RANK",
                       "rank %u (at most %d, and a shape is required)", rank, LQ_MAX_RANK);
    uint64_t numel = 1;
    for (uint32_t i = 0; i < rank; i++) {
        if (shape[i] != 0 && numel > UINT64_MAX / shape[i])
            return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "ST_NUMEL_OVERFLOW",
                           "element count overflows 64 bits");
        numel *= shape[i];
    }
    int ovf = 0;
    uint64_t nbytes = lq_dtype_nbytes(dt, numel, &ovf);
    if (ovf)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "ST_NUMEL_OVERFLOW",
                       "size in bits overflows 64 bits");
    if (((numel % 8) * bits) % 8 != 0)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "ST_SUBBYTE",
                       "%llu elements of %s do not fill whole bytes",
                       (unsigned long long)numel, lq_dtype_name(dt));
    if (table_find(w, name) != SIZE_MAX)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "STW_DUP_NAME",
                       "tensor declared twice");

    if (w->n + 1 >= UINT32_MAX)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "STW_STATE", "too many tensors");
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 64;
        stw_entry *nt = realloc(w->t, nc * sizeof(*nt));
        if (!nt)
            return lq_fail(err, LQ_ERR_NO_MEMORY, w->path, name, "STW_STATE", "out of memory");
        w->t = nt;
        w->cap = nc;
    }
    if (w->ndims + rank > w->dims_cap) {
        size_t nc = w->dims_cap ? w->dims_cap * 2 : 128;
        while (nc < w->ndims + rank)
            nc *= 2;
        uint64_t *nd = realloc(w->dims, nc * sizeof(*nd));
        if (!nd)
            return lq_fail(err, LQ_ERR_NO_MEMORY, w->path, name, "STW_STATE", "out of memory");
        w->dims = nd;
        w->dims_cap = nc;
    }
    if ((w->n + 1) * 2 > w->nslots && table_rebuild(w, (w->n + 1) * 2) != 0)
        return lq_fail(err, LQ_ERR_NO_MEMORY, w->path, name, "STW_STATE", "out of memory");
    const char *copy = w->borrow ? name : arena_copy(w, name);
    if (!copy)
        return lq_fail(err, LQ_ERR_NO_MEMORY, w->path, name, "STW_STATE", "out of memory");

    stw_entry *t = &w->t[w->n];
    memset(t, 0, sizeof(*t));
    t->name = copy;
    t->dtype = dt;
    t->rank = rank;
    t->dim0 = w->ndims;
    for (uint32_t i = 0; i < rank; i++)
        w->dims[w->ndims++] = shape[i];
    t->nbytes = nbytes;
    size_t mask = w->nslots - 1;
    size_t s = (size_t)name_hash(copy) & mask;
    while (w->slots[s])
        s = (s + 1) & mask;
    w->slots[s] = (uint32_t)(w->n + 1);
    w->n++;
    return LQ_OK;
}

lq_status lq_stw_set_metadata(lq_stw *w, const char *key, const char *value, lq_error *err)
{
    if (!w || !key || !value)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w ? w->path : NULL, NULL, "STW_METADATA",
                       "missing writer, key or value");
    if (w->begun || w->failed)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, NULL, "STW_STATE",
                       "metadata can only be set before lq_stw_begin");
    if (!key[0] || !utf8_valid(key) || !utf8_valid(value))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, NULL, "STW_METADATA",
                       "metadata key must be non-empty and key and value valid UTF-8");
    if (strcmp(key, "format") == 0) {
        if (strcmp(value, "pt") != 0)
            return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, NULL, "STW_METADATA",
                           "metadata \"format\" is always \"pt\"");
        return LQ_OK;
    }
    size_t vlen = strlen(value);
    char *v = malloc(vlen + 1);
    if (!v)
        return lq_fail(err, LQ_ERR_NO_MEMORY, w->path, NULL, "STW_METADATA", "out of memory");
    memcpy(v, value, vlen + 1);
    for (size_t i = 0; i < w->nmeta; i++) {
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].val);
            w->meta[i].val = v;
            return LQ_OK;
        }
    }
    if (w->nmeta == w->metacap) {
        size_t nc = w->metacap ? w->metacap * 2 : 8;
        meta_kv *nm = realloc(w->meta, nc * sizeof(*nm));
        if (!nm) {
            free(v);
            return lq_fail(err, LQ_ERR_NO_MEMORY, w->path, NULL, "STW_METADATA",
                           "out of memory");
        }
        w->meta = nm;
        w->metacap = nc;
    }
    size_t klen = strlen(key);
    char *k = malloc(klen + 1);
    if (!k) {
        free(v);
        return lq_fail(err, LQ_ERR_NO_MEMORY, w->path, NULL, "STW_METADATA", "out of memory");
    }
    memcpy(k, key, klen + 1);
    w->meta[w->nmeta].key = k;
    w->meta[w->nmeta].val = v;
    w->nmeta++;
    return LQ_OK;
}

/* Reference order: dtype enum descending, then name byte-wise (strcmp compares as unsigned
 * char). Names are unique, so the order is total and qsort's instability does not matter. */
static int cmp_layout(const void *a, const void *b)
{
    const stw_entry *x = a, *y = b;
    if (x->dtype != y->dtype)
        return x->dtype > y->dtype ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_meta(const void *a, const void *b)
{
    return strcmp(((const meta_kv *)a)->key, ((const meta_kv *)b)->key);
}

static void skip_empty(lq_stw *w)
{
    while (w->cur < w->n && w->t[w->cur].nbytes == 0)
        w->cur++;
    w->cur_done = 0;
}

/* Marks the writer dead: the temporary is removed and only finish/abort remain. */
static void stw_kill(lq_stw *w)
{
    w->failed = 1;
    lq_outfile_abort(w->out);
    w->out = NULL;
}

/* The header JSON (without padding) into hb. */
static void put_header(const lq_stw *w, sbuf *hb)
{
    sb_puts(hb, "{\"__metadata__\":{\"format\":\"pt\"");
    for (size_t i = 0; i < w->nmeta; i++) {
        sb_putc(hb, ',');
        sb_json_serde(hb, w->meta[i].key);
        sb_putc(hb, ':');
        sb_json_serde(hb, w->meta[i].val);
    }
    sb_putc(hb, '}');
    for (size_t i = 0; i < w->n; i++) {
        const stw_entry *t = &w->t[i];
        sb_putc(hb, ',');
        sb_json_serde(hb, t->name);
        sb_puts(hb, ":{\"dtype\":\"");
        sb_puts(hb, lq_dtype_name(t->dtype));
        sb_puts(hb, "\",\"shape\":[");
        for (uint32_t d = 0; d < t->rank; d++) {
            if (d)
                sb_putc(hb, ',');
            sb_u64(hb, w->dims[t->dim0 + d]);
        }
        sb_puts(hb, "],\"data_offsets\":[");
        sb_u64(hb, t->begin);
        sb_putc(hb, ',');
        sb_u64(hb, t->begin + t->nbytes);
        sb_puts(hb, "]}");
    }
    sb_putc(hb, '}');
}

/* Fixes the layout (tensor order, offsets) and measures the padded header, setting
 * w->header_len and w->total. Touches no file and keeps no text. */
static lq_status stw_layout(lq_stw *w, lq_error *err)
{
    if (w->n > 1)
        qsort(w->t, w->n, sizeof(*w->t), cmp_layout);
    if (w->nmeta > 1)
        qsort(w->meta, w->nmeta, sizeof(*w->meta), cmp_meta);
    if (table_rebuild(w, w->n * 2) != 0)
        return lq_fail(err, LQ_ERR_NO_MEMORY, w->path, NULL, "STW_STATE", "out of memory");
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (w->t[i].nbytes > UINT64_MAX - off)
            return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, w->t[i].name, "ST_NUMEL_OVERFLOW",
                           "data section size overflows 64 bits");
        w->t[i].begin = off;
        off += w->t[i].nbytes;
    }
    w->total = off;
    sbuf hb = {.count_only = 1};
    put_header(w, &hb);
    uint64_t len = (hb.total + 7) / 8 * 8;
    if (len > STW_MAX_HEADER)
        return lq_fail(err, LQ_ERR_LIMIT, w->path, NULL, "ST_HEADER_LIMIT",
                       "header of %llu bytes exceeds the 100,000,000-byte limit of readers",
                       (unsigned long long)len);
    w->header_len = len;
    return LQ_OK;
}

lq_status lq_stw_measure(lq_stw *w, uint64_t *header_len, uint64_t *total, lq_error *err)
{
    if (!w)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "STW_STATE", "no writer");
    if (w->begun || w->failed)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, NULL, "STW_STATE",
                       "lq_stw_measure called after lq_stw_begin or a failure");
    lq_status st = stw_layout(w, err);
    if (st != LQ_OK) {
        stw_kill(w);
        return st;
    }
    if (header_len)
        *header_len = w->header_len;
    if (total)
        *total = w->total;
    return LQ_OK;
}

lq_status lq_stw_begin(lq_stw *w, lq_error *err)
{
    lq_status st = LQ_OK;
    if (!w)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "STW_STATE", "no writer");
    if (w->begun || w->failed)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, NULL, "STW_STATE",
                       "lq_stw_begin called twice or after a failure");
    if ((st = stw_layout(w, err)) != LQ_OK) {
        stw_kill(w);
        return st;
    }

    st = lq_outfile_open(w->path, &w->out, err);
    if (st != LQ_OK)
        goto fail;
    /* Shards are large: their bytes skip the page cache and are hashed beside the caller. */
    if (w->total >= STW_DIRECT_MIN)
        lq_outfile_set_direct(w->out);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(w->header_len >> (8 * i));
    st = lq_outfile_write(w->out, len8, 8, err);
    if (st != LQ_OK)
        goto fail;
    /* The header again, now streamed to the file in SB_FLUSH pieces, then the padding. */
    sbuf hb = {.out = w->out, .err = err};
    put_header(w, &hb);
    while (!hb.oom && hb.st == LQ_OK && hb.total < w->header_len)
        sb_putc(&hb, ' ');
    sb_flush(&hb);
    free(hb.p);
    if (hb.oom)
        st = lq_fail(err, LQ_ERR_NO_MEMORY, w->path, NULL, "STW_STATE", "out of memory");
    else
        st = hb.st;
    if (st != LQ_OK)
        goto fail;
    w->crc = calloc(w->n + 1, sizeof(uint32_t));
    if (!w->crc) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, w->path, NULL, NULL, "out of memory");
        stw_kill(w);
        return st;
    }
    w->begun = 1;
    w->cur = 0;
    skip_empty(w);
    return LQ_OK;

fail:
    stw_kill(w);
    return st;
}

size_t lq_stw_count(const lq_stw *w)
{
    return w ? w->n : 0;
}

const lq_tensor_info *lq_stw_tensor(const lq_stw *w, size_t i)
{
    if (!w || i >= w->n)
        return NULL;
    /* Filled on demand from the compact entry; the writer is not thread-safe anyway. */
    lq_tensor_info *v = &((lq_stw *)w)->view;
    const stw_entry *t = &w->t[i];
    memset(v, 0, sizeof(*v));
    v->name = t->name;
    v->dtype = t->dtype;
    v->rank = t->rank;
    v->numel = 1;
    for (uint32_t d = 0; d < t->rank; d++) {
        v->shape[d] = w->dims[t->dim0 + d];
        v->numel *= v->shape[d];
    }
    v->nbytes = t->nbytes;
    v->begin = t->begin;
    v->end = t->begin + t->nbytes;
    return v;
}

uint64_t lq_stw_header_len(const lq_stw *w)
{
    return (w && w->begun) ? w->header_len : 0;
}

uint64_t lq_stw_total_size(const lq_stw *w)
{
    return (w && w->begun) ? w->total : 0;
}

const char *lq_stw_next(const lq_stw *w)
{
    if (!w || !w->begun || w->failed || w->cur >= w->n)
        return NULL;
    return w->t[w->cur].name;
}

static lq_status check_writable(lq_stw *w, const char *name, lq_error *err)
{
    if (!w)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, name, "STW_STATE", "no writer");
    if (!w->begun)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "STW_STATE",
                       "data written before lq_stw_begin");
    if (w->failed)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "STW_FAILED",
                       "an earlier error discarded this output");
    return LQ_OK;
}

static lq_status put_bytes(lq_stw *w, const void *data, size_t len, lq_error *err)
{
    lq_status st = lq_outfile_write(w->out, data, len, err);
    if (st != LQ_OK) {
        stw_kill(w);
        return st;
    }
    if (w->crc)
        w->crc[w->cur] = lq_crc32c(w->crc[w->cur], data, len);
    w->cur_done += len;
    if (w->cur_done == w->t[w->cur].nbytes) {
        w->cur++;
        skip_empty(w);
    }
    return LQ_OK;
}

lq_status lq_stw_write(lq_stw *w, const void *data, size_t len, lq_error *err)
{
    lq_status st = check_writable(w, NULL, err);
    if (st != LQ_OK)
        return st;
    if (len == 0)
        return LQ_OK;
    if (!data) {
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, NULL, "STW_ORDER", "NULL data");
        stw_kill(w);
        return st;
    }
    if (w->cur >= w->n) {
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, NULL, "STW_ORDER",
                     "%zu bytes written after the last tensor was complete", len);
        stw_kill(w);
        return st;
    }
    const stw_entry *t = &w->t[w->cur];
    uint64_t left = t->nbytes - w->cur_done;
    if ((uint64_t)len > left) {
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, t->name, "STW_ORDER",
                     "chunk of %zu bytes runs past the end of the tensor (%llu bytes left)", len,
                     (unsigned long long)left);
        stw_kill(w);
        return st;
    }
    return put_bytes(w, data, len, err);
}

lq_status lq_stw_write_tensor(lq_stw *w, const char *name, const void *data, size_t len,
                              lq_error *err)
{
    lq_status st = check_writable(w, name, err);
    if (st != LQ_OK)
        return st;
    size_t idx = name ? table_find(w, name) : SIZE_MAX;
    if (idx == SIZE_MAX) {
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "STW_ORDER",
                     "tensor was not declared");
        stw_kill(w);
        return st;
    }
    const stw_entry *t = &w->t[idx];
    if ((uint64_t)len != t->nbytes) {
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "STW_SIZE",
                     "%zu bytes given, the tensor has %llu", len, (unsigned long long)t->nbytes);
        stw_kill(w);
        return st;
    }
    /* Zero-byte tensors occupy no bytes of the data section; accepting them anywhere lets
     * callers simply walk lq_stw_tensor() in order. */
    if (t->nbytes == 0)
        return LQ_OK;
    if (idx != w->cur || w->cur_done != 0) {
        const char *next = lq_stw_next(w);
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "STW_ORDER",
                     "out of layout order: expected %s%s", next ? next : "no more tensors",
                     (next && w->cur_done) ? " (partially written)" : "");
        stw_kill(w);
        return st;
    }
    if (!data) {
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, name, "STW_ORDER", "NULL data");
        stw_kill(w);
        return st;
    }
    return put_bytes(w, data, len, err);
}

lq_status lq_stw_finish(lq_stw *w, uint8_t sha256[32], uint64_t *file_size, lq_error *err)
{
    lq_status st = check_writable(w, NULL, err);
    if (st != LQ_OK) {
        if (w)
            stw_kill(w);
        stw_free(w);
        return st;
    }
    if (w->cur < w->n) {
        const stw_entry *t = &w->t[w->cur];
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, w->path, t->name, "STW_INCOMPLETE",
                     "%llu of %llu bytes of this tensor were written (and all later tensors "
                     "are missing); nothing published",
                     (unsigned long long)w->cur_done, (unsigned long long)t->nbytes);
        stw_kill(w);
        stw_free(w);
        return st;
    }
    st = lq_outfile_commit(w->out, sha256, file_size, err);
    w->out = NULL;
    stw_free(w);
    return st;
}

void lq_stw_abort(lq_stw *w)
{
    if (!w)
        return;
    lq_outfile_abort(w->out);
    w->out = NULL;
    stw_free(w);
}

/* ---- sharding ---- */

uint32_t lq_shard_plan(const uint64_t *nbytes, size_t n, uint64_t max_shard_bytes,
                       uint32_t *shard_of)
{
    /* Mirrors huggingface_hub: an oversize tensor becomes a shard immediately (so it can be
     * numbered before the shard still being filled); otherwise a tensor that would push the
     * open shard over the limit closes it first. Members of the open shard carry a sentinel
     * until the shard is closed and its number known. */
    const uint32_t OPEN = UINT32_MAX;
    uint32_t next = 0;
    uint64_t cur = 0;
    size_t open_first = n; /* first member of the open shard, n if it is empty */
    for (size_t i = 0; i < n; i++) {
        if (nbytes[i] > max_shard_bytes) {
            shard_of[i] = next++;
            continue;
        }
        if (cur + nbytes[i] > max_shard_bytes) {
            for (size_t j = open_first; j < i; j++)
                if (shard_of[j] == OPEN)
                    shard_of[j] = next;
            next++;
            cur = 0;
            open_first = n;
        }
        shard_of[i] = OPEN;
        if (open_first == n)
            open_first = i;
        cur += nbytes[i];
    }
    if (open_first < n) {
        for (size_t j = open_first; j < n; j++)
            if (shard_of[j] == OPEN)
                shard_of[j] = next;
        next++;
    }
    return next;
}

void lq_shard_name(const char *prefix, uint32_t i, uint32_t n, int single_name, char *out,
                   size_t cap)
{
    if (!out || cap == 0)
        return;
    if (!prefix)
        prefix = "model";
    if (n == 1 && single_name)
        snprintf(out, cap, "%s.safetensors", prefix);
    else
        snprintf(out, cap, "%s-%05u-of-%05u.safetensors", prefix, (unsigned)(i + 1),
                 (unsigned)n);
}

/* ---- index ---- */

static void py_indent(sbuf *b, int level)
{
    for (int i = 0; i < level; i++)
        sb_put(b, "  ", 2);
}

/* Python's float repr: the shortest %.{p}g that reads back exactly. For finite non-integral
 * doubles this spells the same digits and exponent form as repr(). */
static void py_float(sbuf *b, double v)
{
    char tmp[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof(tmp), "%.*g", p, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    sb_puts(b, tmp);
}

static int cmp_cjson_key(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

/* Checks a cJSON value for what json.dumps could produce from a dict: string keys valid
 * UTF-8 and unique per object, finite numbers, no raw nodes. */
static int py_value_ok(const cJSON *v, int depth)
{
    if (depth > 64)
        return 0;
    if (cJSON_IsString(v))
        return v->valuestring && utf8_valid(v->valuestring);
    if (cJSON_IsNumber(v))
        return isfinite(v->valuedouble);
    if (cJSON_IsBool(v) || cJSON_IsNull(v))
        return 1;
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        for (const cJSON *c = v->child; c; c = c->next) {
            if (cJSON_IsObject(v)) {
                if (!c->string || !utf8_valid(c->string))
                    return 0;
                for (const cJSON *d = v->child; d != c; d = d->next)
                    if (strcmp(d->string, c->string) == 0)
                        return 0;
            }
            if (!py_value_ok(c, depth + 1))
                return 0;
        }
        return 1;
    }
    return 0;
}

static void py_dump(sbuf *b, const cJSON *v, int level);

/* Writes the members of an object sorted by key, or an array in order. */
static void py_dump_children(sbuf *b, const cJSON *v, int level, int is_obj)
{
    size_t n = 0;
    for (const cJSON *c = v->child; c; c = c->next)
        n++;
    if (n == 0) {
        sb_puts(b, is_obj ? "{}" : "[]");
        return;
    }
    const cJSON **kids = malloc(n * sizeof(*kids));
    if (!kids) {
        b->oom = 1;
        return;
    }
    n = 0;
    for (const cJSON *c = v->child; c; c = c->next)
        kids[n++] = c;
    if (is_obj)
        qsort(kids, n, sizeof(*kids), cmp_cjson_key);
    sb_puts(b, is_obj ? "{\n" : "[\n");
    for (size_t i = 0; i < n; i++) {
        py_indent(b, level + 1);
        if (is_obj) {
            sb_json_py(b, kids[i]->string);
            sb_puts(b, ": ");
        }
        py_dump(b, kids[i], level + 1);
        sb_puts(b, i + 1 < n ? ",\n" : "\n");
    }
    py_indent(b, level);
    sb_putc(b, is_obj ? '}' : ']');
    free(kids);
}

static void py_dump(sbuf *b, const cJSON *v, int level)
{
    if (cJSON_IsString(v)) {
        sb_json_py(b, v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        /* cJSON keeps only a double: integral values that a double holds exactly are
         * written as integers, as json.dumps writes the ints they came from. */
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) <= 9007199254740992.0) {
            char tmp[32];
            snprintf(tmp, sizeof(tmp), "%lld", (long long)d);
            sb_puts(b, tmp);
        } else {
            py_float(b, d);
        }
    } else if (cJSON_IsTrue(v)) {
        sb_puts(b, "true");
    } else if (cJSON_IsFalse(v)) {
        sb_puts(b, "false");
    } else if (cJSON_IsNull(v)) {
        sb_puts(b, "null");
    } else if (cJSON_IsArray(v)) {
        py_dump_children(b, v, level, 0);
    } else {
        py_dump_children(b, v, level, 1);
    }
}

typedef struct idx_ent {
    const char *name;
    const char *file;
} idx_ent;

static int cmp_idx(const void *a, const void *b)
{
    return strcmp(((const idx_ent *)a)->name, ((const idx_ent *)b)->name);
}

static int file_name_ok(const char *f)
{
    return f[0] && !strchr(f, '/') && !strchr(f, '\\') && strcmp(f, ".") != 0 &&
           strcmp(f, "..") != 0 && utf8_valid(f);
}

lq_status lq_index_write(const char *path, const char *const *names, const char *const *files,
                         size_t n, uint64_t total_size, const void *extra_metadata,
                         uint8_t sha256[32], lq_error *err)
{
    const cJSON *extra = extra_metadata;
    idx_ent *ents = NULL;
    const cJSON **mkeys = NULL;
    sbuf b = {0};
    lq_status st = LQ_OK;

    if (!path || (n && (!names || !files)))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, "IDX_NAME",
                       "missing path, names or files");
    if (extra && (!cJSON_IsObject(extra) || !py_value_ok(extra, 0)))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, "IDX_METADATA",
                       "extra metadata must be an object with unique UTF-8 keys and finite "
                       "numbers");
    if (extra && cJSON_GetObjectItemCaseSensitive(extra, "total_size"))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, "IDX_METADATA",
                       "extra metadata may not override total_size");

    ents = malloc((n ? n : 1) * sizeof(*ents));
    if (!ents)
        return lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, "IDX_NAME", "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        if (!names[i] || !name_ok(names[i], &why)) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, names[i], "IDX_NAME", "%s",
                         why ? why : "NULL tensor name");
            goto cleanup;
        }
        if (!files[i] || !file_name_ok(files[i])) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, names[i], "IDX_FILE",
                         "shard file name must be a plain UTF-8 file name: \"%s\"",
                         files[i] ? files[i] : "(null)");
            goto cleanup;
        }
        ents[i].name = names[i];
        ents[i].file = files[i];
    }
    if (n > 1)
        qsort(ents, n, sizeof(*ents), cmp_idx);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(ents[i - 1].name, ents[i].name) == 0) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, ents[i].name, "IDX_DUP_NAME",
                         "tensor listed twice in the index");
            goto cleanup;
        }
    }

    /* metadata: total_size plus the extra members, all sorted by key (sort_keys=True). */
    size_t nm = 1;
    if (extra)
        for (const cJSON *c = extra->child; c; c = c->next)
            nm++;
    mkeys = malloc(nm * sizeof(*mkeys));
    if (!mkeys) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, "IDX_NAME", "out of memory");
        goto cleanup;
    }
    nm = 0;
    if (extra)
        for (const cJSON *c = extra->child; c; c = c->next)
            mkeys[nm++] = c;
    if (nm > 1)
        qsort(mkeys, nm, sizeof(*mkeys), cmp_cjson_key);

    sb_puts(&b, "{\n  \"metadata\": {\n");
    int wrote_total = 0;
    for (size_t i = 0; i <= nm; i++) {
        /* "total_size" goes where it sorts among the extra keys. */
        if (!wrote_total && (i == nm || strcmp("total_size", mkeys[i]->string) < 0)) {
            sb_puts(&b, "    \"total_size\": ");
            sb_u64(&b, total_size);
            sb_puts(&b, i < nm ? ",\n" : "\n");
            wrote_total = 1;
        }
        if (i == nm)
            break;
        sb_puts(&b, "    ");
        sb_json_py(&b, mkeys[i]->string);
        sb_puts(&b, ": ");
        py_dump(&b, mkeys[i], 2);
        sb_puts(&b, (i + 1 < nm || !wrote_total) ? ",\n" : "\n");
    }
    sb_puts(&b, "  },\n  \"weight_map\": ");
    if (n == 0) {
        sb_puts(&b, "{}");
    } else {
        sb_puts(&b, "{\n");
        for (size_t i = 0; i < n; i++) {
            sb_puts(&b, "    ");
            sb_json_py(&b, ents[i].name);
            sb_puts(&b, ": ");
            sb_json_py(&b, ents[i].file);
            sb_puts(&b, i + 1 < n ? ",\n" : "\n");
        }
        sb_puts(&b, "  }");
    }
    sb_puts(&b, "\n}\n");
    if (b.oom) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, "IDX_NAME", "out of memory");
        goto cleanup;
    }
    st = lq_write_file_atomic(path, b.p, b.len, sha256, err);

cleanup:
    free(b.p);
    free(mkeys);
    free(ents);
    return st;
}

uint32_t lq_stw_crc32c(const lq_stw *w, size_t i)
{
    return w && w->crc && i < w->n ? w->crc[i] : 0;
}
