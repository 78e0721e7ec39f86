/* Unit tests for libquant/torchzip.c: write/read round trips over sizes and mask ids, the
 * layout torch relies on (64-byte aligned data, stored entries, CRCs), and the reader's
 * rejection of damaged or hostile files.
 *
 * The test carries its own small zip builder and pickle spelling, written from the zip
 * specification (APPNOTE: local header, central directory, end record; CRC-32 computed
 * bitwise here) and from the protocol-2 opcodes CPython's pickler emits for torch.save of
 * {"mask_token_id": int, "embedding": bf16 tensor} (torch._utils._rebuild_tensor_v2 applied to
 * a persistent storage id, offset, size, stride, requires_grad and an empty OrderedDict). The
 * interop suite checks the same bytes against Python's own pickler and zipfile. */
#include <stdint.h>

#include "libquant/outfile.h"
#include "libquant/torchzip.h"
#include "tests/harness.h"
#include "tests/output/test_util.h"

static char *g_dir;

/* ---- independent helpers ---- */

static uint32_t crc32_bitwise(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void b_put(buf *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n)
            nc *= 2;
        b->p = realloc(b->p, nc);
        b->cap = nc;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void b_u8(buf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    b_put(b, &c, 1);
}

static void b_u16(buf *b, unsigned v)
{
    b_u8(b, v & 0xFF);
    b_u8(b, (v >> 8) & 0xFF);
}

static void b_u32(buf *b, uint32_t v)
{
    b_u16(b, v & 0xFFFF);
    b_u16(b, v >> 16);
}

/* pickle spelling */
static void p_str(buf *b, const char *s)
{
    b_u8(b, 'X');
    b_u32(b, (uint32_t)strlen(s));
    b_put(b, s, strlen(s));
}

static void p_put(buf *b, unsigned m)
{
    b_u8(b, 'q');
    b_u8(b, m);
}

static void p_int(buf *b, int64_t v)
{
    if (v >= 0 && v < 256) {
        b_u8(b, 'K');
        b_u8(b, (unsigned)v);
    } else if (v >= 0 && v < 65536) {
        b_u8(b, 'M');
        b_u16(b, (unsigned)v);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        b_u8(b, 'J');
        b_u32(b, (uint32_t)(int32_t)v);
    } else {
        /* LONG1 with the minimal two's-complement length */
        unsigned char x[8];
        for (int i = 0; i < 8; i++)
            x[i] = (unsigned char)((uint64_t)v >> (8 * i));
        int n = 8;
        while (n > 1 && ((x[n - 1] == 0 && !(x[n - 2] & 0x80)) ||
                         (x[n - 1] == 0xFF && (x[n - 2] & 0x80))))
            n--;
        b_u8(b, 0x8a);
        b_u8(b, (unsigned)n);
        b_put(b, x, (size_t)n);
    }
}

/* Options for hostile variants of the torch pickle. */
typedef struct pkopt {
    const char *rebuild_global;  /* replaces "torch._utils\n_rebuild_tensor_v2\n" */
    const char *storage_global;  /* replaces "torch\nBFloat16Storage\n" */
    int64_t numel_delta;         /* storage numel = h + delta */
    int two_dim;                 /* size (h, 1) instead of (h,) */
    int extra_opcode;            /* an opcode spliced in before STOP */
    int hooks_with_arg;          /* OrderedDict((),) instead of OrderedDict() */
    int drop_stop;
} pkopt;

static void torch_pickle(buf *b, int64_t id, int64_t h, const pkopt *o)
{
    b_u8(b, 0x80);
    b_u8(b, 2);
    b_u8(b, '}');
    p_put(b, 0);
    b_u8(b, '(');
    p_str(b, "mask_token_id");
    p_put(b, 1);
    p_int(b, id);
    p_str(b, "embedding");
    p_put(b, 2);
    b_u8(b, 'c');
    const char *g = o && o->rebuild_global ? o->rebuild_global : "torch._utils\n_rebuild_tensor_v2\n";
    b_put(b, g, strlen(g));
    p_put(b, 3);
    b_u8(b, '(');
    b_u8(b, '(');
    p_str(b, "storage");
    p_put(b, 4);
    b_u8(b, 'c');
    g = o && o->storage_global ? o->storage_global : "torch\nBFloat16Storage\n";
    b_put(b, g, strlen(g));
    p_put(b, 5);
    p_str(b, "0");
    p_put(b, 6);
    p_str(b, "cpu");
    p_put(b, 7);
    p_int(b, h + (o ? o->numel_delta : 0));
    b_u8(b, 't');
    p_put(b, 8);
    b_u8(b, 'Q');
    p_int(b, 0);
    p_int(b, h);
    if (o && o->two_dim) {
        p_int(b, 1);
        b_u8(b, 0x86);
    } else {
        b_u8(b, 0x85);
    }
    p_put(b, 9);
    p_int(b, 1);
    b_u8(b, 0x85);
    p_put(b, 10);
    b_u8(b, 0x89);
    b_put(b, "ccollections\nOrderedDict\n", 25);
    p_put(b, 11);
    if (o && o->hooks_with_arg) {
        b_u8(b, ')');
        b_u8(b, 0x85);
    } else {
        b_u8(b, ')');
    }
    b_u8(b, 'R');
    p_put(b, 12);
    b_u8(b, 't');
    p_put(b, 13);
    b_u8(b, 'R');
    p_put(b, 14);
    b_u8(b, 'u');
    if (o && o->extra_opcode)
        b_u8(b, (unsigned)o->extra_opcode);
    if (!(o && o->drop_stop))
        b_u8(b, '.');
}

typedef struct zentry {
    const char *name;
    const unsigned char *data;
    size_t len;
    unsigned method; /* stored entries only hold data; method only changes the headers */
} zentry;

/* A plain zip: local header with CRC and sizes, no extra field, no data descriptor. */
static void simple_zip(buf *z, const zentry *e, size_t n)
{
    uint32_t *off = calloc(n, sizeof(*off));
    for (size_t i = 0; i < n; i++) {
        off[i] = (uint32_t)z->n;
        b_u32(z, 0x04034b50u);
        b_u16(z, 20);
        b_u16(z, 0);
        b_u16(z, e[i].method);
        b_u16(z, 0);
        b_u16(z, 0);
        b_u32(z, crc32_bitwise(e[i].data, e[i].len));
        b_u32(z, (uint32_t)e[i].len);
        b_u32(z, (uint32_t)e[i].len);
        b_u16(z, (unsigned)strlen(e[i].name));
        b_u16(z, 0);
        b_put(z, e[i].name, strlen(e[i].name));
        b_put(z, e[i].data, e[i].len);
    }
    size_t cdo = z->n;
    for (size_t i = 0; i < n; i++) {
        b_u32(z, 0x02014b50u);
        b_u16(z, 20);
        b_u16(z, 20);
        b_u16(z, 0);
        b_u16(z, e[i].method);
        b_u16(z, 0);
        b_u16(z, 0);
        b_u32(z, crc32_bitwise(e[i].data, e[i].len));
        b_u32(z, (uint32_t)e[i].len);
        b_u32(z, (uint32_t)e[i].len);
        b_u16(z, (unsigned)strlen(e[i].name));
        b_u16(z, 0);
        b_u16(z, 0);
        b_u16(z, 0);
        b_u16(z, 0);
        b_u32(z, 0);
        b_u32(z, off[i]);
        b_put(z, e[i].name, strlen(e[i].name));
    }
    size_t cds = z->n - cdo;
    b_u32(z, 0x06054b50u);
    b_u16(z, 0);
    b_u16(z, 0);
    b_u16(z, (unsigned)n);
    b_u16(z, (unsigned)n);
    b_u32(z, (uint32_t)cds);
    b_u32(z, (uint32_t)cdo);
    b_u16(z, 0);
    free(off);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

/* Builds a torch-like file with the test's own zip and pickle; returns the reader's status. */
static lq_status read_crafted(const pkopt *o, int64_t id, int64_t h, size_t data_bytes,
                              int omit_data, unsigned data_method, lq_error *err,
                              int64_t *id_out, uint16_t **emb_out, uint64_t *h_out)
{
    buf pk = {0}, z = {0};
    torch_pickle(&pk, id, h, o);
    unsigned char *data = calloc(1, data_bytes + 1);
    for (size_t i = 0; i < data_bytes; i++)
        data[i] = (unsigned char)(i * 7 + 1);
    zentry e[4] = {
        {"arch/data.pkl", pk.p, pk.n, 0},
        {"arch/byteorder", (const unsigned char *)"little", 6, 0},
        {"arch/data/0", data, data_bytes, data_method},
        {"arch/version", (const unsigned char *)"3\n", 2, 0},
    };
    if (omit_data)
        e[2] = e[3];
    simple_zip(&z, e, omit_data ? 3 : 4);
    char *path = tu_path(g_dir, "crafted.pt");
    write_file(path, z.p, z.n);
    *emb_out = NULL;
    lq_status st = lq_torchzip_read_mask(path, id_out, emb_out, h_out, err);
    unlink(path);
    free(path);
    free(pk.p);
    free(z.p);
    free(data);
    return st;
}

/* ---- tests ---- */

static void test_roundtrip(void)
{
    lq_error err;
    const uint64_t hs[] = {1, 7, 255, 256, 300, 6144, 70000};
    const int64_t ids[] = {151669, 151675, 0, 255, 256, 65535, 65536, -1, -129,
                           2147483647LL, 2147483648LL, -2147483649LL, 1LL << 40,
                           INT64_MAX, INT64_MIN};
    char *path = tu_path(g_dir, "mask_embedding.pt");
    size_t k = 0;
    for (size_t hi = 0; hi < sizeof(hs) / sizeof(hs[0]); hi++) {
        for (size_t ii = 0; ii < sizeof(ids) / sizeof(ids[0]); ii += 1 + (hi % 3), k++) {
            uint64_t h = hs[hi];
            uint16_t *emb = malloc(h * 2);
            for (uint64_t i = 0; i < h; i++)
                emb[i] = (uint16_t)(i * 40503u + k);
            uint8_t sha[32];
            CHECK(lq_torchzip_write_mask(path, "mask_embedding", ids[ii], emb, h, sha, &err) ==
                  LQ_OK);
            size_t len = 0;
            unsigned char *file = tu_read(path, &len);
            uint8_t d[32];
            if (file)
                lq_sha256(file, len, d);
            CHECK(file && memcmp(d, sha, 32) == 0);

            int64_t id = 0;
            uint16_t *back = NULL;
            uint64_t hb = 0;
            lq_status st = lq_torchzip_read_mask(path, &id, &back, &hb, &err);
            CHECK_MSG(st == LQ_OK, "read back h=%llu id=%lld: %s %s", (unsigned long long)h,
                      (long long)ids[ii], err.rule, err.msg);
            CHECK_EQ_U64(hb, h);
            CHECK(id == ids[ii]);
            CHECK(back && memcmp(back, emb, h * 2) == 0);

            /* data.pkl equals the torch pickle spelled out independently */
            buf want = {0};
            torch_pickle(&want, ids[ii], (int64_t)h, NULL);
            const char *nm = "mask_embedding/data.pkl";
            unsigned char *at = file ? tu_find(file, len, nm) : NULL;
            /* first occurrence is the local header: data follow its name and extra field */
            CHECK(at && at - file >= 30);
            if (at && at - file >= 30) {
                const unsigned char *lh = at - 30;
                size_t xl = (size_t)lh[28] | ((size_t)lh[29] << 8);
                const unsigned char *pd = at + strlen(nm) + xl;
                CHECK((size_t)(pd - file) % 64 == 0);
                CHECK(pd + want.n <= file + len && memcmp(pd, want.p, want.n) == 0);
            }
            free(want.p);
            free(back);
            free(file);
            free(emb);
        }
    }
    unlink(path);
    free(path);
}

/* Walks the local headers in file order (zip spec: 30-byte header, name, extra, data, and a
 * 16-byte descriptor when flag bit 3 is set) and checks the torch layout. */
static void test_layout(void)
{
    lq_error err;
    char *path = tu_path(g_dir, "layout.pt");
    uint16_t emb[100];
    for (int i = 0; i < 100; i++)
        emb[i] = (uint16_t)(0x3F80 + i);
    CHECK(lq_torchzip_write_mask(path, "layout", 151669, emb, 100, NULL, &err) == LQ_OK);
    size_t len = 0;
    unsigned char *f = tu_read(path, &len);
    const char *expect[] = {"layout/data.pkl",   "layout/.format_version",
                            "layout/.storage_alignment", "layout/byteorder",
                            "layout/data/0",     "layout/version",
                            "layout/.data/serialization_id"};
    size_t pos = 0;
    for (int k = 0; f && k < 7; k++) {
        CHECK(pos + 30 <= len);
        if (pos + 30 > len)
            break;
        const unsigned char *h = f + pos;
        uint32_t sig = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
                       (uint32_t)h[3] << 24;
        CHECK(sig == 0x04034b50u);
        unsigned flags = h[6] | h[7] << 8, method = h[8] | h[9] << 8;
        size_t nl = h[26] | h[27] << 8, xl = h[28] | h[29] << 8;
        CHECK(method == 0);
        CHECK(flags == 0x0808); /* UTF-8 name + data descriptor, as miniz writes */
        CHECK(nl == strlen(expect[k]) && memcmp(h + 30, expect[k], nl) == 0);
        CHECK(xl >= 4 && h[30 + nl] == 'F' && h[31 + nl] == 'B');
        CHECK((size_t)(h[32 + nl] | h[33 + nl] << 8) == xl - 4);
        size_t data = pos + 30 + nl + xl;
        CHECK(data % 64 == 0);
        const unsigned char *dd = f + data;
        /* the descriptor holds CRC and size: find the size by scanning for its signature */
        size_t dl = 0;
        while (data + dl + 16 <= len &&
               !(dd[dl] == 'P' && dd[dl + 1] == 'K' && dd[dl + 2] == 7 && dd[dl + 3] == 8))
            dl++;
        const unsigned char *desc = dd + dl;
        uint32_t crc = (uint32_t)desc[4] | (uint32_t)desc[5] << 8 | (uint32_t)desc[6] << 16 |
                       (uint32_t)desc[7] << 24;
        uint32_t sz = (uint32_t)desc[8] | (uint32_t)desc[9] << 8 | (uint32_t)desc[10] << 16 |
                      (uint32_t)desc[11] << 24;
        CHECK(sz == dl);
        CHECK(crc == crc32_bitwise(dd, dl));
        if (k == 1)
            CHECK(dl == 1 && dd[0] == '1');
        if (k == 2)
            CHECK(dl == 2 && memcmp(dd, "64", 2) == 0);
        if (k == 3)
            CHECK(dl == 6 && memcmp(dd, "little", 6) == 0);
        if (k == 4)
            CHECK(dl == 200 && dd[0] == 0x80 && dd[1] == 0x3F && dd[198] == 0xE3 &&
                  dd[199] == 0x3F);
        if (k == 5)
            CHECK(dl == 2 && memcmp(dd, "3\n", 2) == 0);
        if (k == 6) {
            CHECK(dl == 40);
            for (size_t i = 0; i < dl; i++)
                CHECK(dd[i] >= '0' && dd[i] <= '9');
        }
        pos = data + dl + 16;
    }
    /* then the central directory */
    CHECK(f && pos + 4 <= len && f[pos] == 'P' && f[pos + 1] == 'K' && f[pos + 2] == 1 &&
          f[pos + 3] == 2);
    /* and the file ends with zip64 record (56) + locator (20) + end record (22) */
    CHECK(f && len > 98 && f[len - 22] == 'P' && f[len - 21] == 'K' && f[len - 20] == 5 &&
          f[len - 19] == 6);
    CHECK(f && f[len - 42] == 'P' && f[len - 41] == 'K' && f[len - 40] == 6 && f[len - 39] == 7);
    CHECK(f && f[len - 98] == 'P' && f[len - 97] == 'K' && f[len - 96] == 6 && f[len - 95] == 6);
    free(f);

    /* bad arguments: rejected before anything is written */
    unlink(path);
    CHECK(lq_torchzip_write_mask(path, "a/b", 1, emb, 100, NULL, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "TZ_ZIP");
    CHECK(lq_torchzip_write_mask(path, "", 1, emb, 100, NULL, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK(lq_torchzip_write_mask(path, "bad\xc3", 1, emb, 100, NULL, &err) ==
          LQ_ERR_INVALID_ARGUMENT);
    CHECK(!tu_exists(path));
    CHECK(lq_torchzip_write_mask(path, "a", 1, emb, 0, NULL, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "TZ_SHAPE");
    unlink(path);
    free(path);
}

/* The reader accepts a plain zip (no alignment, no descriptors, no zip64) holding the torch
 * pickle: it depends on the format, not on our writer's layout choices. */
static void test_reader_plain_zip(void)
{
    lq_error err;
    int64_t id = 0;
    uint16_t *emb = NULL;
    uint64_t h = 0;
    lq_status st = read_crafted(NULL, 151675, 5, 10, 0, 0, &err, &id, &emb, &h);
    CHECK_MSG(st == LQ_OK, "%s %s", err.rule, err.msg);
    CHECK(id == 151675 && h == 5);
    CHECK(emb && emb[0] == (1 | (8 << 8)) && emb[4] == (57 | (64 << 8)));
    free(emb);
}

/* embp is read here, after the call that fills it has been evaluated. */
static void expect_reject(const char *what, lq_status st, const lq_error *err, const char *rule,
                          uint16_t **embp)
{
    CHECK_MSG(st == LQ_ERR_CORRUPT, "%s: status %d (%s)", what, (int)st, err->msg);
    CHECK_MSG(strcmp(err->rule, rule) == 0, "%s: rule %s, want %s (%s)", what, err->rule, rule,
              err->msg);
    CHECK(*embp == NULL);
    free(*embp);
    *embp = NULL;
}

static void test_reader_rejects_pickles(void)
{
    lq_error err;
    int64_t id;
    uint16_t *emb = NULL;
    uint64_t h;
    pkopt o;

    memset(&o, 0, sizeof(o));
    o.rebuild_global = "os\nsystem\n";
    expect_reject("os.system global",
                  read_crafted(&o, 1, 4, 8, 0, 0, &err, &id, &emb, &h), &err, "TZ_PICKLE", &emb);

    memset(&o, 0, sizeof(o));
    o.storage_global = "torch\nFloatStorage\n";
    expect_reject("float storage", read_crafted(&o, 1, 4, 8, 0, 0, &err, &id, &emb, &h), &err,
                  "TZ_PICKLE", &emb);

    memset(&o, 0, sizeof(o));
    o.extra_opcode = 'h'; /* BINGET: not emitted by torch for this dict */
    expect_reject("BINGET", read_crafted(&o, 1, 4, 8, 0, 0, &err, &id, &emb, &h), &err,
                  "TZ_PICKLE", &emb);

    memset(&o, 0, sizeof(o));
    o.extra_opcode = 'b'; /* BUILD */
    expect_reject("BUILD", read_crafted(&o, 1, 4, 8, 0, 0, &err, &id, &emb, &h), &err,
                  "TZ_PICKLE", &emb);

    memset(&o, 0, sizeof(o));
    o.drop_stop = 1;
    expect_reject("no STOP", read_crafted(&o, 1, 4, 8, 0, 0, &err, &id, &emb, &h), &err,
                  "TZ_PICKLE", &emb);

    memset(&o, 0, sizeof(o));
    o.hooks_with_arg = 1;
    expect_reject("OrderedDict with args", read_crafted(&o, 1, 4, 8, 0, 0, &err, &id, &emb, &h),
                  &err, "TZ_PICKLE", &emb);

    memset(&o, 0, sizeof(o));
    o.numel_delta = 1;
    expect_reject("storage numel != size", read_crafted(&o, 1, 4, 10, 0, 0, &err, &id, &emb, &h),
                  &err, "TZ_SHAPE", &emb);

    memset(&o, 0, sizeof(o));
    o.two_dim = 1;
    expect_reject("2-D embedding", read_crafted(&o, 1, 4, 8, 0, 0, &err, &id, &emb, &h), &err,
                  "TZ_SHAPE", &emb);

    expect_reject("data/0 too short", read_crafted(NULL, 1, 4, 7, 0, 0, &err, &id, &emb, &h),
                  &err, "TZ_SHAPE", &emb);
    expect_reject("data/0 missing", read_crafted(NULL, 1, 4, 8, 1, 0, &err, &id, &emb, &h), &err,
                  "TZ_ZIP", &emb);
    expect_reject("deflate entry", read_crafted(NULL, 1, 4, 8, 0, 8, &err, &id, &emb, &h), &err,
                  "TZ_COMPRESSED", &emb);

    /* A pickle that is not a dict at all: just an int. */
    buf pk = {0}, z = {0};
    b_put(&pk, "\x80\x02K\x05.", 5);
    zentry e[2] = {{"a/data.pkl", pk.p, pk.n, 0}, {"a/data/0", (const unsigned char *)"xx", 2, 0}};
    simple_zip(&z, e, 2);
    char *path = tu_path(g_dir, "notdict.pt");
    write_file(path, z.p, z.n);
    expect_reject("not a dict", lq_torchzip_read_mask(path, &id, &emb, &h, &err), &err,
                  "TZ_PICKLE", &emb);
    unlink(path);
    free(path);
    free(pk.p);
    free(z.p);
}

/* Damage to a file our writer produced. */
static void test_reader_rejects_zips(void)
{
    lq_error err;
    int64_t id;
    uint16_t *emb = NULL;
    uint64_t h;
    char *good = tu_path(g_dir, "good.pt"), *bad = tu_path(g_dir, "bad.pt");
    uint16_t e16[64];
    for (int i = 0; i < 64; i++)
        e16[i] = (uint16_t)(i * 3);
    CHECK(lq_torchzip_write_mask(good, "good", 151669, e16, 64, NULL, &err) == LQ_OK);
    size_t len = 0;
    unsigned char *f = tu_read(good, &len);
    CHECK(f != NULL);
    if (!f)
        goto out;
    unsigned char *m = malloc(len);

    /* a flipped data byte in data/0 */
    memcpy(m, f, len);
    unsigned char *d0 = tu_find(m, len, "good/data/0");
    CHECK(d0 != NULL);
    if (d0) {
        size_t xl = (size_t)d0[-2] | ((size_t)d0[-1] << 8);
        d0[11 + xl + 5] ^= 0x40;
    }
    write_file(bad, m, len);
    expect_reject("flipped data byte", lq_torchzip_read_mask(bad, &id, &emb, &h, &err), &err,
                  "TZ_CRC", &emb);

    /* central directory entry of data/0 claims deflate */
    memcpy(m, f, len);
    unsigned char *cd = NULL;
    for (size_t i = 0; i + 46 < len; i++) {
        if (m[i] == 'P' && m[i + 1] == 'K' && m[i + 2] == 1 && m[i + 3] == 2 &&
            memcmp(m + i + 46, "good/data/0", 11) == 0) {
            cd = m + i;
            break;
        }
    }
    CHECK(cd != NULL);
    if (cd) {
        cd[10] = 8;
        write_file(bad, m, len);
        expect_reject("deflate in central dir", lq_torchzip_read_mask(bad, &id, &emb, &h, &err),
                      &err, "TZ_COMPRESSED", &emb);
        memcpy(m, f, len);
        cd = m + (cd - m);
        cd[8] |= 1; /* encrypted */
        write_file(bad, m, len);
        expect_reject("encrypted", lq_torchzip_read_mask(bad, &id, &emb, &h, &err), &err,
                      "TZ_ZIP", &emb);
        memcpy(m, f, len);
        memcpy(cd + 46, "evil", 4); /* an entry outside the archive folder */
        write_file(bad, m, len);
        expect_reject("foreign folder", lq_torchzip_read_mask(bad, &id, &emb, &h, &err), &err,
                      "TZ_ZIP", &emb);
        memcpy(m, f, len);
        memcpy(cd + 46 + 5, "../0", 4); /* good/../0x: a parent component */
        write_file(bad, m, len);
        expect_reject("dot-dot name", lq_torchzip_read_mask(bad, &id, &emb, &h, &err), &err,
                      "TZ_ZIP", &emb);
        memcpy(m, f, len);
        cd[42] ^= 0x01; /* local header offset off by one */
        write_file(bad, m, len);
        lq_status st = lq_torchzip_read_mask(bad, &id, &emb, &h, &err);
        CHECK(st == LQ_ERR_CORRUPT && emb == NULL);
        free(emb);
        emb = NULL;
    }

    /* every truncation is rejected without a crash (ASan watches the reads) */
    for (size_t cut = 0; cut < len; cut += (cut < 200 || cut > len - 200) ? 1 : 37) {
        write_file(bad, f, cut);
        lq_status st = lq_torchzip_read_mask(bad, &id, &emb, &h, &err);
        CHECK_MSG(st != LQ_OK, "truncated to %zu bytes accepted", cut);
        free(emb);
        emb = NULL;
    }
    /* every single-byte flip in the central directory and end records either fails cleanly or
     * still yields the right data (a few bytes, like times or attributes, are not checked) */
    size_t cdo = 0;
    for (size_t i = len - 22; i > 0; i--) {
        if (f[i] == 'P' && f[i + 1] == 'K' && f[i + 2] == 1 && f[i + 3] == 2)
            cdo = i; /* ends at the first central entry */
    }
    for (size_t i = cdo; cdo && i < len; i++) {
        memcpy(m, f, len);
        m[i] ^= 0x5A;
        write_file(bad, m, len);
        lq_status st = lq_torchzip_read_mask(bad, &id, &emb, &h, &err);
        if (st == LQ_OK)
            CHECK_MSG(h == 64 && id == 151669 && memcmp(emb, e16, sizeof(e16)) == 0,
                      "flip at %zu gave wrong data", i);
        free(emb);
        emb = NULL;
    }

    /* a missing file */
    unlink(bad);
    CHECK(lq_torchzip_read_mask(bad, &id, &emb, &h, &err) == LQ_ERR_NOT_FOUND);
    CHECK_STR(err.rule, "TZ_IO");
    free(m);
out:
    free(f);
    unlink(good);
    free(good);
    free(bad);
}

int main(void)
{
    g_dir = tu_mkdtemp("lq-torchzip");
    if (!g_dir) {
        fprintf(stderr, "cannot create a scratch directory\n");
        return 1;
    }
    test_roundtrip();
    test_layout();
    test_reader_plain_zip();
    test_reader_rejects_pickles();
    test_reader_rejects_zips();
    CHECK_EQ_U64(tu_hidden_count(g_dir), 0);
    tu_rmtree(g_dir);
    free(g_dir);
    return th_finish("test_torchzip");
}
