/* The PyTorch zip container for mask_embedding.pt (torchzip.h).
 *
 * Writer: reproduces what torch.save({"mask_token_id": id, "embedding": bf16[h]}, path) writes
 * with current torch (torch/serialization.py `_save`, caffe2/serialize/inline_container.cc and
 * the bundled miniz 3.0.2, which is built with MINIZ_NO_TIME and initialised with
 * MZ_ZIP_FLAG_WRITE_ZIP64):
 *   records, in order: data.pkl, .format_version ("1"), .storage_alignment ("64"),
 *   byteorder ("little"), data/0, version ("3\n"), .data/serialization_id (40 digits);
 *   each under "<archive>/"; stored (method 0); general-purpose flags 0x0808 (UTF-8 name, sizes
 *   in a data descriptor); DOS time and date 0; local header with CRC and sizes 0 followed by
 *   the name and an extra field "FB" whose payload of 'Z' bytes puts the record's data on a
 *   64-byte boundary; after the data a 16-byte data descriptor (PK\7\8, CRC, sizes); a central
 *   directory without extra fields; a zip64 end-of-central-directory record and locator; and
 *   the classic end record.
 * data.pkl is the protocol-2 pickle torch's pickler emits for that dict, memo puts included:
 *   \x80\x02 } q0 ( X"mask_token_id" q1 <int> X"embedding" q2
 *   c"torch._utils\n_rebuild_tensor_v2\n" q3 ( ( X"storage" q4 c"torch\nBFloat16Storage\n" q5
 *   X"0" q6 X"cpu" q7 <h> t q8 Q K0 <h> \x85 q9 K1 \x85 q10 \x89
 *   c"collections\nOrderedDict\n" q11 ) R q12 t q13 R q14 u .
 * The serialization id follows torch's recipe (20 digits of a combined hash of the record
 * names, 20 digits of the record CRCs folded with the boost-style hash_combine) but is not
 * bit-identical: torch hashes names with std::hash in unordered_set order, we use FNV-1a in
 * record order. torch only reads the id to log it.
 *
 * Reader: nothing in the file is trusted. The end records and the central directory are
 * bounds-checked, every entry must be stored, unencrypted and inside the archive folder, CRCs
 * are verified, and data.pkl is evaluated symbolically over a whitelist of opcodes and globals
 * (no code runs) into values whose structure is then checked against the dict above. */
#include "torchzip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outfile.h"
#include "internal/fileio.h"

#define TZ_ALIGN 64
#define TZ_MAX_FILE (256ull << 20) /* far above any hidden size; bounds the read */

/* ---- little-endian helpers and CRC-32 (IEEE 802.3, reflected, as zip uses) ---- */

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] | ((unsigned)p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

static uint32_t crc32_buf(const void *data, size_t n)
{
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint32_t crc = 0xFFFFFFFFu;
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

/* ---- growable byte buffer ---- */

typedef struct bbuf {
    unsigned char *p;
    size_t len, cap;
    int oom;
} bbuf;

static unsigned char *bb_grow(bbuf *b, size_t n)
{
    if (b->oom)
        return NULL;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->len + n)
            nc *= 2;
        unsigned char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return NULL;
        }
        b->p = np;
        b->cap = nc;
    }
    unsigned char *at = b->p + b->len;
    b->len += n;
    return at;
}

static void bb_put(bbuf *b, const void *s, size_t n)
{
    unsigned char *at = bb_grow(b, n);
    if (at && n)
        memcpy(at, s, n);
}

static void bb_byte(bbuf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    bb_put(b, &c, 1);
}

/* ---- pickle writer ---- */

static void pk_put(bbuf *b, unsigned memo)
{
    /* BINPUT for memo ids below 256 (all of ours), LONG_BINPUT otherwise. */
    if (memo < 256) {
        bb_byte(b, 'q');
        bb_byte(b, memo);
    } else {
        unsigned char x[5] = {'r'};
        put32(x + 1, memo);
        bb_put(b, x, 5);
    }
}

static void pk_str(bbuf *b, const char *s, unsigned memo)
{
    unsigned char x[5] = {'X'};
    put32(x + 1, (uint32_t)strlen(s));
    bb_put(b, x, 5);
    bb_put(b, s, strlen(s));
    pk_put(b, memo);
}

/* An int as CPython's pickler writes it at protocol 2. */
static void pk_int(bbuf *b, int64_t v)
{
    if (v >= 0 && v <= 0xFF) {
        bb_byte(b, 'K');
        bb_byte(b, (unsigned)v);
    } else if (v >= 0 && v <= 0xFFFF) {
        bb_byte(b, 'M');
        unsigned char x[2];
        put16(x, (unsigned)v);
        bb_put(b, x, 2);
    } else if (v >= -2147483648LL && v <= 2147483647LL) {
        bb_byte(b, 'J');
        unsigned char x[4];
        put32(x, (uint32_t)v);
        bb_put(b, x, 4);
    } else {
        /* LONG1: the shortest little-endian two's complement that keeps the sign. */
        unsigned char x[8];
        uint64_t u = (uint64_t)v;
        put64(x, u);
        int n = 8;
        while (n > 1) {
            unsigned char top = x[n - 1], below = x[n - 2];
            if ((top == 0x00 && !(below & 0x80)) || (top == 0xFF && (below & 0x80)))
                n--;
            else
                break;
        }
        bb_byte(b, 0x8a);
        bb_byte(b, (unsigned)n);
        bb_put(b, x, (size_t)n);
    }
}

static void pk_global(bbuf *b, const char *mod, const char *name, unsigned memo)
{
    bb_byte(b, 'c');
    bb_put(b, mod, strlen(mod));
    bb_byte(b, '\n');
    bb_put(b, name, strlen(name));
    bb_byte(b, '\n');
    pk_put(b, memo);
}

static void build_pickle(bbuf *b, int64_t mask_id, uint64_t h)
{
    bb_byte(b, 0x80); /* PROTO 2 */
    bb_byte(b, 2);
    bb_byte(b, '}'); /* EMPTY_DICT */
    pk_put(b, 0);
    bb_byte(b, '('); /* MARK */
    pk_str(b, "mask_token_id", 1);
    pk_int(b, mask_id);
    pk_str(b, "embedding", 2);
    pk_global(b, "torch._utils", "_rebuild_tensor_v2", 3);
    bb_byte(b, '('); /* MARK: the six arguments */
    bb_byte(b, '('); /* MARK: persistent id */
    pk_str(b, "storage", 4);
    pk_global(b, "torch", "BFloat16Storage", 5);
    pk_str(b, "0", 6);
    pk_str(b, "cpu", 7);
    pk_int(b, (int64_t)h);
    bb_byte(b, 't'); /* TUPLE */
    pk_put(b, 8);
    bb_byte(b, 'Q'); /* BINPERSID */
    pk_int(b, 0);    /* storage offset */
    pk_int(b, (int64_t)h);
    bb_byte(b, 0x85); /* TUPLE1: size */
    pk_put(b, 9);
    pk_int(b, 1);
    bb_byte(b, 0x85); /* TUPLE1: stride */
    pk_put(b, 10);
    bb_byte(b, 0x89); /* NEWFALSE: requires_grad */
    pk_global(b, "collections", "OrderedDict", 11);
    bb_byte(b, ')'); /* EMPTY_TUPLE */
    bb_byte(b, 'R'); /* REDUCE: backward hooks */
    pk_put(b, 12);
    bb_byte(b, 't');
    pk_put(b, 13);
    bb_byte(b, 'R'); /* REDUCE: the tensor */
    pk_put(b, 14);
    bb_byte(b, 'u'); /* SETITEMS */
    bb_byte(b, '.'); /* STOP */
}

/* ---- zip writer ---- */

typedef struct zrec {
    const char *name; /* without the archive prefix */
    const unsigned char *data;
    size_t len;
    uint32_t crc;
    uint64_t lho; /* local header offset */
} zrec;

static uint64_t hash_combine(uint64_t seed, uint64_t value)
{
    return seed ^ (value + 0x9e3779b9u + (seed << 6) + (seed >> 2));
}

/* Appends one record the way miniz's mz_zip_writer_add_mem_ex_v2 does for torch. */
static void zip_add(bbuf *z, const char *archive, zrec *r)
{
    size_t alen = strlen(archive), nlen = strlen(r->name);
    size_t full = alen + 1 + nlen;
    r->crc = crc32_buf(r->data, r->len);
    r->lho = z->len;
    /* torch's getPadding: data start = header + name + 4-byte extra header + padding. */
    uint64_t start = r->lho + 30 + full + 4;
    size_t pad = (size_t)((TZ_ALIGN - start % TZ_ALIGN) % TZ_ALIGN);
    unsigned char lh[30] = {0};
    put32(lh, 0x04034b50u);
    put16(lh + 4, 0);                           /* version needed: stored */
    put16(lh + 6, r->len ? 0x0808u : 0x0800u); /* UTF-8 name, data descriptor */
    put16(lh + 8, 0);                           /* method: stored */
    /* time, date, CRC and sizes stay 0: the sizes follow in the data descriptor */
    put16(lh + 26, (unsigned)full);
    put16(lh + 28, (unsigned)(4 + pad));
    bb_put(z, lh, 30);
    bb_put(z, archive, alen);
    bb_byte(z, '/');
    bb_put(z, r->name, nlen);
    unsigned char ex[4] = {'F', 'B'};
    put16(ex + 2, (unsigned)pad);
    bb_put(z, ex, 4);
    unsigned char *zs = bb_grow(z, pad);
    if (zs)
        memset(zs, 'Z', pad);
    bb_put(z, r->data, r->len);
    if (r->len) {
        unsigned char dd[16];
        put32(dd, 0x08074b50u);
        put32(dd + 4, r->crc);
        put32(dd + 8, (uint32_t)r->len);
        put32(dd + 12, (uint32_t)r->len);
        bb_put(z, dd, 16);
    }
}

static void zip_finish(bbuf *z, const char *archive, const zrec *recs, size_t n)
{
    size_t alen = strlen(archive);
    uint64_t cdo = z->len;
    for (size_t i = 0; i < n; i++) {
        size_t nlen = strlen(recs[i].name);
        unsigned char ch[46] = {0};
        put32(ch, 0x02014b50u);
        /* version made by and needed: 0, as miniz writes for stored entries */
        put16(ch + 8, recs[i].len ? 0x0808u : 0x0800u);
        put32(ch + 16, recs[i].crc);
        put32(ch + 20, (uint32_t)recs[i].len);
        put32(ch + 24, (uint32_t)recs[i].len);
        put16(ch + 28, (unsigned)(alen + 1 + nlen));
        put32(ch + 42, (uint32_t)recs[i].lho);
        bb_put(z, ch, 46);
        bb_put(z, archive, alen);
        bb_byte(z, '/');
        bb_put(z, recs[i].name, nlen);
    }
    uint64_t cds = z->len - cdo;
    uint64_t z64 = z->len;
    unsigned char e64[56] = {0};
    put32(e64, 0x06064b50u);
    put64(e64 + 4, 56 - 12);
    put16(e64 + 12, 0x031E);
    put16(e64 + 14, 0x002D);
    put64(e64 + 24, n);
    put64(e64 + 32, n);
    put64(e64 + 40, cds);
    put64(e64 + 48, cdo);
    bb_put(z, e64, 56);
    unsigned char loc[20] = {0};
    put32(loc, 0x07064b50u);
    put64(loc + 8, z64);
    put32(loc + 16, 1);
    bb_put(z, loc, 20);
    unsigned char eocd[22] = {0};
    put32(eocd, 0x06054b50u);
    put16(eocd + 8, (unsigned)n);
    put16(eocd + 10, (unsigned)n);
    put32(eocd + 12, (uint32_t)cds);
    put32(eocd + 16, (uint32_t)cdo);
    bb_put(z, eocd, 22);
}

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t need;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
        } else {
            return 0;
        }
        if (n - i - 1 < need)
            return 0;
        for (size_t k = 1; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        /* overlong 3/4-byte forms, surrogates and > U+10FFFF */
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F) ||
            (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F))
            return 0;
        i += need + 1;
    }
    return 1;
}

static int archive_ok(const char *a)
{
    size_t n = strlen(a);
    if (n == 0 || n > 200 || strcmp(a, ".") == 0 || strcmp(a, "..") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c < 0x20 || c == 0x7F || c == '/' || c == '\\')
            return 0;
    }
    return utf8_ok((const unsigned char *)a, n);
}

lq_status lq_torchzip_write_mask(const char *path, const char *archive, int64_t mask_token_id,
                                 const uint16_t *embedding, uint64_t h, uint8_t sha256[32],
                                 lq_error *err)
{
    bbuf pkl = {0}, z = {0};
    unsigned char *emb = NULL;
    lq_status st = LQ_OK;

    if (!path || !archive || !embedding)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, "TZ_SHAPE",
                       "missing path, archive name or embedding");
    if (!archive_ok(archive))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, "TZ_ZIP",
                       "archive name must be 1..200 printable bytes without '/' or '\\'");
    if (h == 0 || h > (1ull << 26))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, "TZ_SHAPE",
                       "embedding size %llu out of range 1..2^26", (unsigned long long)h);

    /* Storage bytes are little-endian bf16 whatever the host order. */
    emb = malloc((size_t)h * 2);
    if (!emb)
        return lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, "TZ_ZIP", "out of memory");
    for (uint64_t i = 0; i < h; i++)
        put16(emb + 2 * i, embedding[i]);

    build_pickle(&pkl, mask_token_id, h);

    static const char fmt_version[] = "1", alignment[] = "64", byteorder[] = "little",
                      version[] = "3\n";
    zrec recs[7] = {
        {"data.pkl", NULL, 0, 0, 0},
        {".format_version", (const unsigned char *)fmt_version, 1, 0, 0},
        {".storage_alignment", (const unsigned char *)alignment, 2, 0, 0},
        {"byteorder", (const unsigned char *)byteorder, 6, 0, 0},
        {"data/0", emb, (size_t)h * 2, 0, 0},
        {"version", (const unsigned char *)version, 2, 0, 0},
        {".data/serialization_id", NULL, 40, 0, 0},
    };
    recs[0].data = pkl.p;
    recs[0].len = pkl.len;
    if (pkl.oom) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, "TZ_ZIP", "out of memory");
        goto cleanup;
    }

    uint64_t name_hash = 0, crc_comb = 0;
    for (size_t i = 0; i < 6; i++) {
        zip_add(&z, archive, &recs[i]);
        uint64_t hv = 1469598103934665603ull;
        for (const char *c = recs[i].name; *c; c++) {
            hv ^= (unsigned char)*c;
            hv *= 1099511628211ull;
        }
        name_hash = hash_combine(name_hash, hv);
        crc_comb = hash_combine(crc_comb, recs[i].crc);
    }
    char sid[41];
    snprintf(sid, sizeof(sid), "%020llu%020llu", (unsigned long long)name_hash,
             (unsigned long long)crc_comb);
    recs[6].data = (const unsigned char *)sid;
    zip_add(&z, archive, &recs[6]);
    zip_finish(&z, archive, recs, 7);
    if (z.oom) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, "TZ_ZIP", "out of memory");
        goto cleanup;
    }
    st = lq_write_file_atomic(path, z.p, z.len, sha256, err);

cleanup:
    free(emb);
    free(pkl.p);
    free(z.p);
    return st;
}

/* ---- reader: zip ---- */

typedef struct zent {
    const unsigned char *name; /* inside the central directory, not NUL-terminated */
    size_t nlen;
    uint32_t crc;
    uint64_t size;
    uint64_t lho;
} zent;

typedef struct zip_view {
    const unsigned char *buf;
    uint64_t size;
    zent *ents;
    size_t n;
    size_t prefix_len; /* "<archive>/" */
} zip_view;

static lq_status zfail(lq_error *err, const char *path, const char *rule, const char *what)
{
    return lq_fail(err, LQ_ERR_CORRUPT, path, NULL, rule, "%s", what);
}

/* Reads the zip64 extra field of a central entry where a 32-bit field is saturated. */
static int zip64_fields(const unsigned char *ex, size_t exlen, uint64_t *usize, uint64_t *csize,
                        uint64_t *lho, int need_u, int need_c, int need_o)
{
    size_t pos = 0;
    while (pos + 4 <= exlen) {
        unsigned id = get16(ex + pos), len = get16(ex + pos + 2);
        if (pos + 4 + len > exlen)
            return -1;
        if (id == 0x0001) {
            const unsigned char *q = ex + pos + 4;
            size_t left = len;
            if (need_u) {
                if (left < 8)
                    return -1;
                *usize = get64(q);
                q += 8;
                left -= 8;
            }
            if (need_c) {
                if (left < 8)
                    return -1;
                *csize = get64(q);
                q += 8;
                left -= 8;
            }
            if (need_o) {
                if (left < 8)
                    return -1;
                *lho = get64(q);
            }
            return 0;
        }
        pos += 4 + len;
    }
    return (need_u || need_c || need_o) ? -1 : 0;
}

static int name_safe(const unsigned char *s, size_t n, size_t prefix_len)
{
    /* Inside "<archive>/", no absolute path, no backslash, no "." or ".." component, no NUL. */
    if (n <= prefix_len)
        return 0;
    size_t comp = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            size_t cl = i - comp;
            if (cl == 0 || (cl == 1 && s[comp] == '.') ||
                (cl == 2 && s[comp] == '.' && s[comp + 1] == '.'))
                return 0;
            comp = i + 1;
            continue;
        }
        if (s[i] == 0 || s[i] == '\\')
            return 0;
    }
    return 1;
}

static lq_status zip_parse(zip_view *z, const char *path, lq_error *err)
{
    const unsigned char *b = z->buf;
    uint64_t size = z->size;
    if (size < 22)
        return zfail(err, path, "TZ_ZIP", "file too short for a zip end record");
    /* The end record must end the file: search back over at most a 65535-byte comment. */
    uint64_t eocd = UINT64_MAX;
    uint64_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
    for (uint64_t p = size - 22;; p--) {
        if (get32(b + p) == 0x06054b50u && p + 22 + get16(b + p + 20) == size) {
            eocd = p;
            break;
        }
        if (p == lowest)
            break;
    }
    if (eocd == UINT64_MAX)
        return zfail(err, path, "TZ_ZIP", "no end-of-central-directory record");
    if (get16(b + eocd + 4) != 0 || get16(b + eocd + 6) != 0)
        return zfail(err, path, "TZ_ZIP", "multi-disk archives are not supported");
    uint64_t count = get16(b + eocd + 10);
    uint64_t cds = get32(b + eocd + 12), cdo = get32(b + eocd + 16);
    uint64_t cd_limit = eocd;
    /* A zip64 locator right before the end record points at the zip64 end record. */
    if (eocd >= 20 && get32(b + eocd - 20) == 0x07064b50u) {
        uint64_t z64 = get64(b + eocd - 20 + 8);
        if (z64 > eocd - 20 || eocd - 20 - z64 < 56 || get32(b + z64) != 0x06064b50u)
            return zfail(err, path, "TZ_ZIP", "bad zip64 end record");
        uint64_t c64 = get64(b + z64 + 32), s64 = get64(b + z64 + 40), o64 = get64(b + z64 + 48);
        if ((count != 0xFFFF && count != c64) || (cds != 0xFFFFFFFFu && cds != s64) ||
            (cdo != 0xFFFFFFFFu && cdo != o64) || get64(b + z64 + 24) != c64)
            return zfail(err, path, "TZ_ZIP", "zip64 and classic end records disagree");
        count = c64;
        cds = s64;
        cdo = o64;
        cd_limit = z64;
    }
    if (cdo > cd_limit || cds > cd_limit - cdo)
        return zfail(err, path, "TZ_ZIP", "central directory outside the file");
    if (count == 0 || count > 1024 || count * 46 > cds)
        return zfail(err, path, "TZ_ZIP", "implausible entry count");
    z->ents = calloc((size_t)count, sizeof(*z->ents));
    if (!z->ents)
        return lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, "TZ_ZIP", "out of memory");
    uint64_t pos = cdo, end = cdo + cds;
    for (uint64_t i = 0; i < count; i++) {
        if (end - pos < 46 || get32(b + pos) != 0x02014b50u)
            return zfail(err, path, "TZ_ZIP", "bad central directory entry");
        const unsigned char *c = b + pos;
        unsigned flags = get16(c + 8), method = get16(c + 10);
        size_t nlen = get16(c + 28), xlen = get16(c + 30), clen = get16(c + 32);
        if (end - pos - 46 < (uint64_t)nlen + xlen + clen)
            return zfail(err, path, "TZ_ZIP", "central directory entry overruns");
        if (flags & 0x0041)
            return zfail(err, path, "TZ_ZIP", "encrypted entry");
        if (method != 0)
            return lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_COMPRESSED",
                           "entry %llu uses compression method %u (only stored is accepted)",
                           (unsigned long long)i, method);
        uint64_t csize = get32(c + 20), usize = get32(c + 24), lho = get32(c + 42);
        if (zip64_fields(c + 46 + nlen, xlen, &usize, &csize, &lho, usize == 0xFFFFFFFFu,
                         csize == 0xFFFFFFFFu, lho == 0xFFFFFFFFu) != 0)
            return zfail(err, path, "TZ_ZIP", "bad zip64 extra field");
        if (csize != usize)
            return zfail(err, path, "TZ_ZIP", "stored entry with differing sizes");
        zent *e = &z->ents[i];
        e->name = c + 46;
        e->nlen = nlen;
        e->crc = get32(c + 16);
        e->size = usize;
        e->lho = lho;
        pos += 46 + nlen + xlen + clen;
    }
    z->n = (size_t)count;

    /* torch takes the archive folder from the first entry; all others must share it. */
    const unsigned char *slash = memchr(z->ents[0].name, '/', z->ents[0].nlen);
    if (!slash || slash == z->ents[0].name)
        return zfail(err, path, "TZ_ZIP", "first entry is not inside an archive folder");
    z->prefix_len = (size_t)(slash - z->ents[0].name) + 1;
    for (size_t i = 0; i < z->n; i++) {
        zent *e = &z->ents[i];
        if (e->nlen < z->prefix_len || memcmp(e->name, z->ents[0].name, z->prefix_len) != 0 ||
            !name_safe(e->name, e->nlen, z->prefix_len))
            return zfail(err, path, "TZ_ZIP", "entry outside the archive folder or unsafe name");
        for (size_t j = 0; j < i; j++)
            if (z->ents[j].nlen == e->nlen && memcmp(z->ents[j].name, e->name, e->nlen) == 0)
                return zfail(err, path, "TZ_ZIP", "duplicate entry name");
    }
    return LQ_OK;
}

/* Finds "<archive>/<rel>", checks its local header and CRC, and returns its data. */
static lq_status zip_get(const zip_view *z, const char *rel, const char *path,
                         const unsigned char **data, uint64_t *len, lq_error *err)
{
    size_t rl = strlen(rel);
    const zent *e = NULL;
    for (size_t i = 0; i < z->n; i++) {
        if (z->ents[i].nlen == z->prefix_len + rl &&
            memcmp(z->ents[i].name + z->prefix_len, rel, rl) == 0) {
            e = &z->ents[i];
            break;
        }
    }
    if (!e)
        return lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_ZIP", "entry */%s is missing", rel);
    const unsigned char *b = z->buf;
    if (e->lho > z->size || z->size - e->lho < 30 || get32(b + e->lho) != 0x04034b50u)
        return lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_ZIP", "bad local header for %s", rel);
    const unsigned char *lh = b + e->lho;
    unsigned flags = get16(lh + 6), method = get16(lh + 8);
    uint64_t nlen = get16(lh + 26), xlen = get16(lh + 28);
    if (flags & 0x0041)
        return lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_ZIP", "%s is encrypted", rel);
    if (method != 0)
        return lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_COMPRESSED",
                       "%s uses compression method %u", rel, method);
    if (nlen != e->nlen || z->size - e->lho - 30 < nlen ||
        memcmp(lh + 30, e->name, e->nlen) != 0)
        return lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_ZIP",
                       "local and central names of %s differ", rel);
    uint64_t start = e->lho + 30 + nlen + xlen;
    if (start > z->size || z->size - start < e->size)
        return lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_ZIP", "%s runs past the file", rel);
    /* Without a data descriptor the local header carries the CRC and sizes too. */
    if (!(flags & 0x0008) &&
        (get32(lh + 14) != e->crc || get32(lh + 18) != e->size || get32(lh + 22) != e->size))
        return lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_ZIP",
                       "local and central headers of %s disagree", rel);
    uint32_t crc = crc32_buf(b + start, (size_t)e->size);
    if (crc != e->crc)
        return lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_CRC",
                       "CRC of %s is %08x, the directory says %08x", rel, crc, e->crc);
    *data = b + start;
    *len = e->size;
    return LQ_OK;
}

/* ---- reader: symbolic pickle evaluation ---- */

enum pv_kind { PV_INT, PV_STR, PV_BOOL, PV_TUPLE, PV_GLOBAL, PV_STORAGE, PV_ODICT, PV_TENSOR,
               PV_DICT };
enum pv_global { G_REBUILD, G_BF16, G_ODICT };

#define PK_VALS 96
#define PK_KIDS 128
#define PK_STACK 32
#define PK_MEMO 64
#define PK_PAIRS 8

typedef struct pval {
    enum pv_kind kind;
    int64_t i;                /* PV_INT, PV_BOOL, PV_GLOBAL (enum pv_global) */
    const unsigned char *s;   /* PV_STR */
    uint32_t slen;
    int first, count;         /* PV_TUPLE/STORAGE/TENSOR: children in kids[] */
} pval;

typedef struct pk {
    pval v[PK_VALS];
    int nv;
    int kids[PK_KIDS];
    int nk;
    int stack[PK_STACK]; /* value index, -1 = MARK */
    int sp;
    int memo[PK_MEMO];
    int dict;            /* the one dict, or -1 */
    int pairs[PK_PAIRS][2];
    int npairs;
} pk;

static int pk_new(pk *p, enum pv_kind k)
{
    if (p->nv >= PK_VALS)
        return -1;
    memset(&p->v[p->nv], 0, sizeof(p->v[0]));
    p->v[p->nv].kind = k;
    return p->nv++;
}

static int pk_push(pk *p, int idx)
{
    if (idx < 0 || p->sp >= PK_STACK)
        return -1;
    p->stack[p->sp++] = idx;
    return 0;
}

/* Pops the items above the topmost MARK (and the MARK) into a tuple-like value. */
static int pk_collect(pk *p, enum pv_kind k)
{
    int m = p->sp - 1;
    while (m >= 0 && p->stack[m] != -1)
        m--;
    if (m < 0)
        return -1;
    int cnt = p->sp - m - 1;
    if (p->nk + cnt > PK_KIDS)
        return -1;
    int t = pk_new(p, k);
    if (t < 0)
        return -1;
    p->v[t].first = p->nk;
    p->v[t].count = cnt;
    for (int i = 0; i < cnt; i++)
        p->kids[p->nk++] = p->stack[m + 1 + i];
    p->sp = m;
    return t;
}

static int pk_tuple_n(pk *p, int n)
{
    if (p->sp < n || p->nk + n > PK_KIDS)
        return -1;
    for (int i = 0; i < n; i++)
        if (p->stack[p->sp - n + i] < 0)
            return -1;
    int t = pk_new(p, PV_TUPLE);
    if (t < 0)
        return -1;
    p->v[t].first = p->nk;
    p->v[t].count = n;
    for (int i = 0; i < n; i++)
        p->kids[p->nk++] = p->stack[p->sp - n + i];
    p->sp -= n;
    return t;
}

static const pval *kid(const pk *p, const pval *t, int i)
{
    return &p->v[p->kids[t->first + i]];
}

static int str_is(const pval *v, const char *s)
{
    return v->kind == PV_STR && v->slen == strlen(s) && memcmp(v->s, s, v->slen) == 0;
}

#define PK_BAD(...) \
    do { \
        st = lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_PICKLE", __VA_ARGS__); \
        goto done; \
    } while (0)

/* Evaluates the pickle without executing anything; on success *result is the final value. */
static lq_status pk_eval(pk *p, const unsigned char *s, uint64_t n, const char *path, int *result,
                         lq_error *err)
{
    lq_status st = LQ_OK;
    uint64_t i = 0;
    p->nv = p->nk = p->sp = p->npairs = 0;
    p->dict = -1;
    for (int k = 0; k < PK_MEMO; k++)
        p->memo[k] = -1;
    *result = -1;

    if (n < 3 || s[0] != 0x80 || s[1] != 2)
        PK_BAD("data.pkl does not start with PROTO 2");
    i = 2;
    while (i < n) {
        unsigned op = s[i++];
        uint64_t left = n - i;
        int v;
        switch (op) {
        case '}': /* EMPTY_DICT */
            if (p->dict >= 0)
                PK_BAD("more than one dict");
            v = pk_new(p, PV_DICT);
            p->dict = v;
            if (pk_push(p, v))
                PK_BAD("pickle too large");
            break;
        case 'q': /* BINPUT */
            if (left < 1 || p->sp == 0 || p->stack[p->sp - 1] < 0 || s[i] >= PK_MEMO)
                PK_BAD("bad BINPUT");
            p->memo[s[i]] = p->stack[p->sp - 1];
            i += 1;
            break;
        case '(': /* MARK */
            if (p->sp >= PK_STACK)
                PK_BAD("pickle too deep");
            p->stack[p->sp++] = -1;
            break;
        case 'X': { /* BINUNICODE */
            if (left < 4)
                PK_BAD("truncated BINUNICODE");
            uint32_t l = get32(s + i);
            if (left - 4 < l || l > 4096 || !utf8_ok(s + i + 4, l))
                PK_BAD("bad BINUNICODE");
            v = pk_new(p, PV_STR);
            if (v < 0)
                PK_BAD("pickle too large");
            p->v[v].s = s + i + 4;
            p->v[v].slen = l;
            if (pk_push(p, v))
                PK_BAD("pickle too large");
            i += 4 + l;
            break;
        }
        case 'K': case 'M': case 'J': case 0x8a: { /* BININT1, BININT2, BININT, LONG1 */
            int64_t val;
            if (op == 'K') {
                if (left < 1)
                    PK_BAD("truncated int");
                val = s[i];
                i += 1;
            } else if (op == 'M') {
                if (left < 2)
                    PK_BAD("truncated int");
                val = get16(s + i);
                i += 2;
            } else if (op == 'J') {
                if (left < 4)
                    PK_BAD("truncated int");
                val = (int64_t)(int32_t)get32(s + i);
                i += 4;
            } else {
                if (left < 1 || s[i] > 8 || left - 1 < s[i])
                    PK_BAD("bad LONG1");
                unsigned nb = s[i];
                uint64_t u = 0;
                for (unsigned k = 0; k < nb; k++)
                    u |= (uint64_t)s[i + 1 + k] << (8 * k);
                if (nb > 0 && nb < 8 && (s[i + nb] & 0x80))
                    u |= ~0ull << (8 * nb); /* sign-extend */
                val = (int64_t)u;
                i += 1 + nb;
            }
            v = pk_new(p, PV_INT);
            if (v < 0)
                PK_BAD("pickle too large");
            p->v[v].i = val;
            if (pk_push(p, v))
                PK_BAD("pickle too large");
            break;
        }
        case 'c': { /* GLOBAL: only the three names torch's pickle of this dict needs */
            static const struct {
                const char *text;
                enum pv_global id;
            } allowed[] = {
                {"torch._utils\n_rebuild_tensor_v2\n", G_REBUILD},
                {"torch\nBFloat16Storage\n", G_BF16},
                {"collections\nOrderedDict\n", G_ODICT},
            };
            int found = -1;
            size_t flen = 0;
            for (size_t k = 0; k < sizeof(allowed) / sizeof(allowed[0]); k++) {
                size_t l = strlen(allowed[k].text);
                if (left >= l && memcmp(s + i, allowed[k].text, l) == 0) {
                    found = (int)allowed[k].id;
                    flen = l;
                    break;
                }
            }
            if (found < 0)
                PK_BAD("GLOBAL outside the whitelist");
            v = pk_new(p, PV_GLOBAL);
            if (v < 0)
                PK_BAD("pickle too large");
            p->v[v].i = found;
            if (pk_push(p, v))
                PK_BAD("pickle too large");
            i += flen;
            break;
        }
        case 't': /* TUPLE */
            v = pk_collect(p, PV_TUPLE);
            if (v < 0 || pk_push(p, v))
                PK_BAD("bad TUPLE");
            break;
        case 0x85: case 0x86: case 0x87: /* TUPLE1..3 */
            v = pk_tuple_n(p, (int)(op - 0x84));
            if (v < 0 || pk_push(p, v))
                PK_BAD("bad TUPLEn");
            break;
        case ')': /* EMPTY_TUPLE */
            v = pk_new(p, PV_TUPLE);
            if (v < 0 || pk_push(p, v))
                PK_BAD("pickle too large");
            break;
        case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
            v = pk_new(p, PV_BOOL);
            if (v < 0)
                PK_BAD("pickle too large");
            p->v[v].i = op == 0x88;
            if (pk_push(p, v))
                PK_BAD("pickle too large");
            break;
        case 'Q': { /* BINPERSID: ('storage', BFloat16Storage, key, location, numel) */
            if (p->sp == 0 || p->stack[p->sp - 1] < 0)
                PK_BAD("bad BINPERSID");
            const pval *t = &p->v[p->stack[p->sp - 1]];
            if (t->kind != PV_TUPLE || t->count != 5 || !str_is(kid(p, t, 0), "storage") ||
                kid(p, t, 1)->kind != PV_GLOBAL || kid(p, t, 1)->i != G_BF16 ||
                kid(p, t, 2)->kind != PV_STR || kid(p, t, 3)->kind != PV_STR ||
                kid(p, t, 4)->kind != PV_INT || kid(p, t, 4)->i < 0)
                PK_BAD("persistent id is not a bf16 storage reference");
            v = pk_new(p, PV_STORAGE);
            if (v < 0)
                PK_BAD("pickle too large");
            p->v[v].first = t->first;
            p->v[v].count = t->count;
            p->stack[p->sp - 1] = v;
            break;
        }
        case 'R': { /* REDUCE: OrderedDict() or _rebuild_tensor_v2(6 args) only */
            if (p->sp < 2 || p->stack[p->sp - 1] < 0 || p->stack[p->sp - 2] < 0)
                PK_BAD("bad REDUCE");
            const pval *args = &p->v[p->stack[p->sp - 1]];
            const pval *fn = &p->v[p->stack[p->sp - 2]];
            if (args->kind != PV_TUPLE || fn->kind != PV_GLOBAL)
                PK_BAD("REDUCE of something other than a whitelisted global");
            if (fn->i == G_ODICT && args->count == 0) {
                v = pk_new(p, PV_ODICT);
            } else if (fn->i == G_REBUILD && args->count == 6) {
                v = pk_new(p, PV_TENSOR);
                if (v >= 0) {
                    p->v[v].first = args->first;
                    p->v[v].count = args->count;
                }
            } else {
                PK_BAD("REDUCE with unexpected arguments");
            }
            if (v < 0)
                PK_BAD("pickle too large");
            p->sp -= 2;
            if (pk_push(p, v))
                PK_BAD("pickle too large");
            break;
        }
        case 'u': case 's': { /* SETITEMS, SETITEM into the dict */
            int m = p->sp;
            if (op == 'u') {
                m = p->sp - 1;
                while (m >= 0 && p->stack[m] != -1)
                    m--;
                if (m < 0)
                    PK_BAD("SETITEMS without MARK");
                m++;
            } else {
                m = p->sp - 2;
            }
            int cnt = p->sp - m;
            if (m < 1 || cnt < 0 || cnt % 2 != 0)
                PK_BAD("bad SETITEM(S)");
            int below = op == 'u' ? m - 2 : m - 1;
            if (below < 0 || p->stack[below] != p->dict || p->dict < 0)
                PK_BAD("SETITEM(S) target is not the dict");
            for (int k = m; k < p->sp; k += 2) {
                int key = p->stack[k], val = p->stack[k + 1];
                if (key < 0 || val < 0 || p->v[key].kind != PV_STR)
                    PK_BAD("dict key is not a string");
                for (int q = 0; q < p->npairs; q++)
                    if (p->v[p->pairs[q][0]].slen == p->v[key].slen &&
                        memcmp(p->v[p->pairs[q][0]].s, p->v[key].s, p->v[key].slen) == 0)
                        PK_BAD("duplicate dict key");
                if (p->npairs >= PK_PAIRS)
                    PK_BAD("too many dict entries");
                p->pairs[p->npairs][0] = key;
                p->pairs[p->npairs][1] = val;
                p->npairs++;
            }
            p->sp = op == 'u' ? m - 1 : m;
            break;
        }
        case '.': /* STOP */
            if (i != n)
                PK_BAD("bytes after STOP");
            if (p->sp != 1 || p->stack[0] < 0)
                PK_BAD("STOP with an unbalanced stack");
            *result = p->stack[0];
            return LQ_OK;
        default:
            PK_BAD("opcode 0x%02x at byte %llu is not allowed", op, (unsigned long long)(i - 1));
        }
    }
    PK_BAD("no STOP opcode");
done:
    return st;
}

lq_status lq_torchzip_read_mask(const char *path, int64_t *mask_token_id, uint16_t **emb_out,
                                uint64_t *h_out, lq_error *err)
{
    uint8_t *buf = NULL;
    zip_view z = {0};
    pk *p = NULL;
    lq_status st = LQ_OK;

    if (emb_out)
        *emb_out = NULL;
    if (!path || !mask_token_id || !emb_out || !h_out)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, "TZ_IO", "missing argument");
    size_t fsize = 0;
    st = lq_read_file(path, TZ_MAX_FILE, "TZ_IO", "TZ_ZIP", &buf, &fsize, err);
    if (st != LQ_OK)
        goto cleanup;
    z.size = fsize;
    z.buf = buf;
    st = zip_parse(&z, path, err);
    if (st != LQ_OK)
        goto cleanup;

    const unsigned char *pkl, *bo;
    uint64_t pkl_len, bo_len;
    st = zip_get(&z, "data.pkl", path, &pkl, &pkl_len, err);
    if (st != LQ_OK)
        goto cleanup;
    /* byteorder is optional (older torch); when present it must say little. */
    lq_error tmp;
    if (zip_get(&z, "byteorder", path, &bo, &bo_len, &tmp) == LQ_OK &&
        (bo_len != 6 || memcmp(bo, "little", 6) != 0)) {
        st = lq_fail(err, LQ_ERR_UNSUPPORTED, path, NULL, "TZ_ZIP",
                     "byteorder record is not \"little\"");
        goto cleanup;
    }

    p = malloc(sizeof(*p));
    if (!p) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, "TZ_PICKLE", "out of memory");
        goto cleanup;
    }
    int top;
    st = pk_eval(p, pkl, pkl_len, path, &top, err);
    if (st != LQ_OK)
        goto cleanup;
    if (top != p->dict || p->npairs != 2) {
        st = lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_PICKLE",
                     "data.pkl is not a dict of exactly mask_token_id and embedding");
        goto cleanup;
    }
    const pval *idv = NULL, *tens = NULL;
    for (int k = 0; k < 2; k++) {
        const pval *key = &p->v[p->pairs[k][0]], *val = &p->v[p->pairs[k][1]];
        if (str_is(key, "mask_token_id") && val->kind == PV_INT)
            idv = val;
        else if (str_is(key, "embedding") && val->kind == PV_TENSOR)
            tens = val;
    }
    if (!idv || !tens) {
        st = lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_PICKLE",
                     "data.pkl needs an int mask_token_id and a tensor embedding");
        goto cleanup;
    }
    const pval *stor = kid(p, tens, 0), *off = kid(p, tens, 1), *size = kid(p, tens, 2),
               *stride = kid(p, tens, 3), *rg = kid(p, tens, 4), *hooks = kid(p, tens, 5);
    if (stor->kind != PV_STORAGE || off->kind != PV_INT || size->kind != PV_TUPLE ||
        stride->kind != PV_TUPLE || rg->kind != PV_BOOL || hooks->kind != PV_ODICT) {
        st = lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_PICKLE",
                     "embedding is not rebuilt from (storage, offset, size, stride, "
                     "requires_grad, hooks)");
        goto cleanup;
    }
    if (size->count != 1 || kid(p, size, 0)->kind != PV_INT || stride->count != 1 ||
        kid(p, stride, 0)->kind != PV_INT || kid(p, stride, 0)->i != 1 || off->i != 0) {
        st = lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_SHAPE",
                     "embedding must be a contiguous 1-D tensor at storage offset 0");
        goto cleanup;
    }
    int64_t h = kid(p, size, 0)->i;
    int64_t numel = kid(p, stor, 4)->i;
    const pval *key = kid(p, stor, 2);
    if (h <= 0 || numel != h) {
        st = lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_SHAPE",
                     "embedding size %lld and storage size %lld disagree", (long long)h,
                     (long long)numel);
        goto cleanup;
    }
    char rel[64];
    if (key->slen == 0 || key->slen > 16 || memchr(key->s, '/', key->slen)) {
        st = lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_PICKLE", "bad storage key");
        goto cleanup;
    }
    snprintf(rel, sizeof(rel), "data/%.*s", (int)key->slen, (const char *)key->s);
    const unsigned char *data;
    uint64_t dlen;
    st = zip_get(&z, rel, path, &data, &dlen, err);
    if (st != LQ_OK)
        goto cleanup;
    if (dlen != (uint64_t)h * 2) {
        st = lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "TZ_SHAPE",
                     "%s holds %llu bytes, bf16[%lld] needs %llu", rel,
                     (unsigned long long)dlen, (long long)h, (unsigned long long)h * 2);
        goto cleanup;
    }
    uint16_t *emb = malloc((size_t)h * 2);
    if (!emb) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, "TZ_ZIP", "out of memory");
        goto cleanup;
    }
    for (int64_t k = 0; k < h; k++)
        emb[k] = (uint16_t)get16(data + 2 * k);
    *emb_out = emb;
    *h_out = (uint64_t)h;
    *mask_token_id = idv->i;

cleanup:
    free(p);
    free(z.ents);
    free(buf);
    return st;
}
