/* The tokenizer.json byte-level BPE tokenizer (tokenizer.h; rules and rule ids in docs/tokenizer.md).
 *
 * Encoding follows the pipeline of the `tokenizers` library step by step, because identical ids
 * depend on doing the same things in the same order:
 *   1. added tokens with normalized = false are cut out of the raw text (leftmost-longest, as the
 *      library's Aho-Corasick matcher does), lstrip/rstrip widening the cut over white space;
 *   2. every remaining piece is NFC-normalized on its own (with Unicode 9.0 data, the library's:
 *      runtime/unicode_nfc.h), then the normalized added tokens are cut;
 *   3. every remaining piece goes through the Split regexes (PCRE2; the pattern is translated so
 *      that \s, \w and \h mean what they mean in Oniguruma, the library's engine), each piece
 *      separately so lookarounds stop at piece ends; the ByteLevel step maps bytes to its
 *      alphabet, which is done here by working on raw bytes throughout;
 *   4. each piece is merged with the library's algorithm: a priority queue of (rank, position),
 *      stale entries detected by the merge's result id, not the classic all-occurrences sweep
 *      (the two differ when a merge's rank is lower than its parts').
 * Token strings are decoded to raw bytes once at open, so merging, matching and decoding never
 * touch the byte-level alphabet again. */
#include "runtime/tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "libquant/json.h"
#include "runtime/unicode_nfc.h"

#define TOK_MAX_ID (1 << 24)    /* ids beyond this are refused (TOK_LIMIT); real vocabularies are < 300k */
#define TOK_MAX_STAGES 8        /* regex Split steps in one pre_tokenizer */
#define TOK_FILE_CAP ((size_t)512 << 20)

/* Unicode White_Space, which is Oniguruma's \s and Rust's char::is_whitespace (PCRE2's \s
 * with UCP also takes U+180E). Written as the inside of a PCRE2 class. */
#define WS_CLASS "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
/* Oniguruma's \w for Unicode text: letters, marks, decimal digits, connector punctuation. */
#define WORD_CLASS "\\p{L}\\p{M}\\p{Nd}\\p{Pc}"
/* The pattern of the ByteLevel pre-tokenizer when use_regex is true (GPT-2). */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum { F_PRESENT = 1, F_SPECIAL = 2, F_ADDED = 4 };

typedef struct smap_entry {
    const char *key;
    size_t len;
    int32_t val;
} smap_entry;

typedef struct smap { /* string -> id, open addressing; keys are owned elsewhere */
    smap_entry *e;
    size_t cap, n;
} smap;

typedef struct pmap { /* (left id, right id) -> (rank, result id) */
    uint64_t *key; /* (left << 32 | right) + 1; 0 = empty */
    uint32_t *rank;
    int32_t *val;
    size_t cap, n;
} pmap;

typedef struct tok_added {
    int32_t id;
    char *match; /* the text matched: the content, NFC-normalized when normalized is set */
    size_t len;
    int lstrip, rstrip, normalized, special;
} tok_added;

typedef struct added_set { /* one Aho-Corasick set of the library: normalized or not */
    int32_t *idx;       /* indices into t->added, sorted by first byte */
    size_t n;
    size_t start[257];  /* idx[start[b] .. start[b+1]) begin with byte b */
} added_set;

struct rt_tokenizer {
    char file[512];
    size_t n_ids;
    char **key;      /* per id: the token string as written in tokenizer.json, or NULL */
    size_t *key_len;
    char **bytes;    /* per id: the raw bytes the token stands for */
    size_t *bytes_len;
    uint8_t *flags;
    smap vocab;      /* model vocab: string -> id */
    smap added_map;  /* added tokens: content -> id */
    smap raw_vocab;  /* ignore_merges only: raw bytes -> id of byte-level vocab entries */
    pmap merges;
    int32_t byte_id[256];
    int32_t unk_id;  /* -1: none */
    int fuse_unk, ignore_merges, nfc;
    tok_added *added;
    size_t n_added;
    added_set sets[2]; /* [0] normalized = false (raw text), [1] normalized = true */
    pcre2_code *re[TOK_MAX_STAGES];
    size_t n_re;
};

/* ---------------------------------------------------------------- hashing */

static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static int smap_init(smap *m, size_t expect)
{
    size_t cap = 16;
    while (cap < 2 * expect + 16)
        cap *= 2;
    m->e = calloc(cap, sizeof(*m->e));
    m->cap = cap;
    m->n = 0;
    return m->e ? 0 : -1;
}

static int32_t smap_get(const smap *m, const char *key, size_t len)
{
    if (!m->cap)
        return -1;
    size_t i = (size_t)hash_bytes(key, len) & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        const smap_entry *e = &m->e[i];
        if (!e->key)
            return -1;
        if (e->len == len && memcmp(e->key, key, len) == 0)
            return e->val;
    }
}

/* Inserts key unless present; returns the id already there, or -1 when inserted. The table is
 * sized for every key at init, so it never fills. */
static int32_t smap_put(smap *m, const char *key, size_t len, int32_t val)
{
    size_t i = (size_t)hash_bytes(key, len) & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        smap_entry *e = &m->e[i];
        if (!e->key) {
            e->key = key;
            e->len = len;
            e->val = val;
            m->n++;
            return -1;
        }
        if (e->len == len && memcmp(e->key, key, len) == 0)
            return e->val;
    }
}

static int pmap_init(pmap *m, size_t expect)
{
    size_t cap = 16;
    while (cap < 2 * expect + 16)
        cap *= 2;
    m->key = calloc(cap, sizeof(*m->key));
    m->rank = malloc(cap * sizeof(*m->rank));
    m->val = malloc(cap * sizeof(*m->val));
    m->cap = cap;
    m->n = 0;
    return m->key && m->rank && m->val ? 0 : -1;
}

static size_t pmap_slot(const pmap *m, uint64_t k)
{
    size_t i = (size_t)hash_u64(k) & (m->cap - 1);
    while (m->key[i] && m->key[i] != k)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int pmap_get(const pmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *val)
{
    if (a < 0 || b < 0)
        return 0;
    size_t i = pmap_slot(m, (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1);
    if (!m->key[i])
        return 0;
    *rank = m->rank[i];
    *val = m->val[i];
    return 1;
}

/* A pair listed twice keeps its later rank, as the library's merge map (built by collecting
 * into a hash map) does. */
static void pmap_put(pmap *m, int32_t a, int32_t b, uint32_t rank, int32_t val)
{
    uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t i = pmap_slot(m, k);
    if (!m->key[i])
        m->n++;
    m->key[i] = k;
    m->rank[i] = rank;
    m->val[i] = val;
}

/* ---------------------------------------------------------------- UTF-8 */

/* Decodes one UTF-8 sequence at s[0..n) (n >= 1) per Unicode Table 3-7. Returns its length with
 * *cp set; or, for ill-formed input, minus the length of the maximal subpart (the longest prefix
 * of a well-formed sequence, at least 1 byte), with *truncated set when that subpart reaches the
 * end of the buffer (more bytes could still complete it). */
static int utf8_next(const uint8_t *s, size_t n, uint32_t *cp, int *truncated)
{
    *truncated = 0;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return -1;
    }
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n) {
            *truncated = 1;
            return -k;
        }
        uint8_t b = s[k];
        if (b < lo || b > hi)
            return -k;
        lo = 0x80;
        hi = 0xBF;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return need + 1;
}

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Offset of the first ill-formed byte, or len when all of buf is strict UTF-8. */
static size_t utf8_check(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int tr, k = utf8_next(s + i, len - i, &cp, &tr);
        if (k < 0)
            return i;
        i += (size_t)k;
    }
    return len;
}

size_t rt_tokenizer_utf8_stable(const char *buf, size_t len)
{
    const uint8_t *s = (const uint8_t *)buf;
    if (!buf)
        return 0;
    /* Only the last three bytes can start a sequence that is still open. */
    for (size_t k = len < 3 ? len : 3; k >= 1; k--) {
        size_t p = len - k;
        if (s[p] < 0xC2 || s[p] > 0xF4)
            continue;
        uint32_t cp;
        int tr, r = utf8_next(s + p, k, &cp, &tr);
        if (r < 0 && tr)
            return p;
    }
    return len;
}

lq_status rt_tokenizer_utf8_lossy(const char *buf, size_t len, char **text, size_t *out_len,
                                  lq_error *err)
{
    if (!text || (!buf && len))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "TOK_ARG", "NULL argument");
    *text = NULL;
    if (out_len)
        *out_len = 0;
    if (len > (SIZE_MAX - 1) / 3)
        return lq_fail(err, LQ_ERR_LIMIT, NULL, NULL, "TOK_LIMIT", "text of %zu bytes is too long", len);
    /* Each ill-formed byte becomes at most 3 bytes. */
    char *out = malloc(3 * len + 1);
    if (!out)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    const uint8_t *s = (const uint8_t *)buf;
    size_t i = 0, o = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            out[o++] = (char)s[i++];
            continue;
        }
        uint32_t cp;
        int tr, k = utf8_next(s + i, len - i, &cp, &tr);
        if (k > 0) {
            memcpy(out + o, s + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else {
            out[o++] = (char)0xEF;
            out[o++] = (char)0xBF;
            out[o++] = (char)0xBD;
            i += (size_t)-k;
        }
    }
    out[o] = 0;
    *text = out;
    if (out_len)
        *out_len = o;
    return LQ_OK;
}

/* ---------------------------------------------------------------- byte-level alphabet */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * for U+0100.. in byte order. */
typedef struct bl_tables {
    uint32_t fwd[256];  /* byte -> code point */
    int16_t rev[0x144]; /* code point -> byte, or -1 */
} bl_tables;

static void bl_init(bl_tables *b)
{
    uint32_t next = 256;
    for (uint32_t cp = 0; cp < 0x144; cp++)
        b->rev[cp] = -1;
    for (int i = 0; i < 256; i++) {
        int keep = (i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
        b->fwd[i] = keep ? (uint32_t)i : next++;
        b->rev[b->fwd[i]] = (int16_t)i;
    }
}

/* The raw bytes of a token string: byte-level decoded when every character is in the alphabet,
 * else the string's own bytes (the library's ByteLevel decoder does the same per token). */
static char *token_raw_bytes(const bl_tables *bt, const char *key, size_t len, size_t *out_len, int *bytelevel)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t i = 0, o = 0;
    int ok = 1;
    while (i < len) {
        uint32_t cp;
        int tr, k = utf8_next((const uint8_t *)key + i, len - i, &cp, &tr);
        int b = k > 0 && cp < 0x144 ? bt->rev[cp] : -1;
        if (b < 0) {
            ok = 0;
            break;
        }
        out[o++] = (char)b;
        i += (size_t)k;
    }
    if (!ok) {
        memcpy(out, key, len);
        o = len;
    }
    out[o] = 0;
    *out_len = o;
    *bytelevel = ok;
    return out;
}

/* ---------------------------------------------------------------- NFC */

#define HANGUL_S 0xAC00u
#define HANGUL_L 0x1100u
#define HANGUL_V 0x1161u
#define HANGUL_T 0x11A7u
#define HANGUL_LC 19u
#define HANGUL_VC 21u
#define HANGUL_TC 28u
#define HANGUL_NC (HANGUL_VC * HANGUL_TC)
#define HANGUL_SC (HANGUL_LC * HANGUL_NC)

static unsigned ccc_of(uint32_t cp)
{
    if (cp >= 0x110000)
        return 0;
    return nfc_ccc_stage2[(size_t)nfc_ccc_stage1[cp / NFC_CCC_BLOCK] * NFC_CCC_BLOCK + cp % NFC_CCC_BLOCK];
}

/* Full canonical decomposition from the table: a pointer into the pool and its length, or 0. */
static size_t decomp_of(uint32_t cp, const uint32_t **seq)
{
    if (cp < 0xC0)
        return 0;
    size_t lo = 0, hi = sizeof(nfc_decomp_index) / sizeof(nfc_decomp_index[0]);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (nfc_decomp_index[mid][0] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < sizeof(nfc_decomp_index) / sizeof(nfc_decomp_index[0]) && nfc_decomp_index[lo][0] == cp) {
        *seq = &nfc_decomp_pool[nfc_decomp_index[lo][1]];
        return nfc_decomp_index[lo][2];
    }
    return 0;
}

static uint32_t compose_pair(uint32_t a, uint32_t b)
{
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LC && b >= HANGUL_V && b < HANGUL_V + HANGUL_VC)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VC + (b - HANGUL_V)) * HANGUL_TC;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SC && (a - HANGUL_S) % HANGUL_TC == 0 && b > HANGUL_T &&
        b < HANGUL_T + HANGUL_TC)
        return a + (b - HANGUL_T);
    uint64_t key = ((uint64_t)a << 21) | b;
    size_t lo = 0, hi = sizeof(nfc_comp_pairs) / sizeof(nfc_comp_pairs[0]);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (nfc_comp_pairs[mid][0] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < sizeof(nfc_comp_pairs) / sizeof(nfc_comp_pairs[0]) && nfc_comp_pairs[lo][0] == key)
        return (uint32_t)nfc_comp_pairs[lo][1];
    return 0;
}

typedef struct nfc_buf {
    uint32_t *cp;
    size_t cap;
    char *out;
    size_t out_cap;
} nfc_buf;

/* NFC of valid UTF-8 s[0..len) into b->out (length in *out_len). Returns -1 on allocation
 * failure. Decompose fully (Hangul by arithmetic), order each run of non-starters by combining
 * class (stable), then compose every character with the last starter unless blocked. */
static int nfc_normalize(nfc_buf *b, const char *s, size_t len, size_t *out_len)
{
    size_t need = 4 * len + 4; /* a decomposition is at most 4 code points per input byte */
    if (b->cap < need) {
        uint32_t *p = realloc(b->cp, need * sizeof(uint32_t));
        if (!p)
            return -1;
        b->cp = p;
        b->cap = need;
    }
    size_t n = 0, i = 0;
    while (i < len) {
        uint32_t cp;
        int tr, k = utf8_next((const uint8_t *)s + i, len - i, &cp, &tr);
        i += (size_t)k; /* valid: checked by the caller */
        if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SC) {
            uint32_t si = cp - HANGUL_S;
            b->cp[n++] = HANGUL_L + si / HANGUL_NC;
            b->cp[n++] = HANGUL_V + (si % HANGUL_NC) / HANGUL_TC;
            if (si % HANGUL_TC)
                b->cp[n++] = HANGUL_T + si % HANGUL_TC;
            continue;
        }
        const uint32_t *seq;
        size_t m = decomp_of(cp, &seq);
        if (m) {
            memcpy(b->cp + n, seq, m * sizeof(uint32_t));
            n += m;
        } else {
            b->cp[n++] = cp;
        }
    }
    /* Canonical ordering: insertion sort inside each run of non-starters (runs are short). */
    for (size_t j = 1; j < n; j++) {
        unsigned c = ccc_of(b->cp[j]);
        if (!c)
            continue;
        uint32_t v = b->cp[j];
        size_t k = j;
        while (k > 0) {
            unsigned pc = ccc_of(b->cp[k - 1]);
            if (pc == 0 || pc <= c)
                break;
            b->cp[k] = b->cp[k - 1];
            k--;
        }
        b->cp[k] = v;
    }
    /* Composition in place. */
    size_t w = 0;
    long starter = -1;
    int last_ccc = -1; /* -1: nothing between the starter and the current character */
    for (size_t j = 0; j < n; j++) {
        uint32_t c = b->cp[j];
        unsigned cc = ccc_of(c);
        if (starter >= 0 && (last_ccc < 0 || (unsigned)last_ccc < cc)) {
            uint32_t comp = compose_pair(b->cp[starter], c);
            if (comp) {
                b->cp[starter] = comp;
                continue;
            }
        }
        if (cc == 0) {
            starter = (long)w;
            last_ccc = -1;
        } else {
            last_ccc = (int)cc;
        }
        b->cp[w++] = c;
    }
    size_t oneed = 4 * w + 1;
    if (b->out_cap < oneed) {
        char *p = realloc(b->out, oneed);
        if (!p)
            return -1;
        b->out = p;
        b->out_cap = oneed;
    }
    size_t o = 0;
    for (size_t j = 0; j < w; j++)
        o += utf8_put(b->cp[j], b->out + o);
    *out_len = o;
    return 0;
}

/* ---------------------------------------------------------------- regex */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Rewrites an Oniguruma (Ruby syntax) pattern for PCRE2 so that the classes mean the same:
 * \s / \S -> White_Space, \w / \W -> letters, marks, decimal digits, connector punctuation,
 * \h / \H -> hex digits, \uHHHH -> \x{HHHH}. Constructs whose meaning differs and that cannot
 * be rewritten simply (\b, \B, \v, \R, \X, \K, a negated shorthand inside [...], nested sets,
 * && intersections) are refused: returns the offending offset, or -1 when done. */
static long regex_translate(const char *p, size_t n, sbuf *out)
{
    int in_class = 0;
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        if (c == '\\') {
            if (i + 1 >= n)
                return (long)i;
            char e = p[i + 1];
            switch (e) {
            case 's':
                sb_str(out, in_class ? WS_CLASS : "[" WS_CLASS "]");
                break;
            case 'w':
                sb_str(out, in_class ? WORD_CLASS : "[" WORD_CLASS "]");
                break;
            case 'h':
                sb_str(out, in_class ? "0-9a-fA-F" : "[0-9a-fA-F]");
                break;
            case 'S':
            case 'W':
            case 'H':
                if (in_class)
                    return (long)i;
                sb_str(out, e == 'S' ? "[^" WS_CLASS "]" : e == 'W' ? "[^" WORD_CLASS "]" : "[^0-9a-fA-F]");
                break;
            case 'u':
                if (i + 5 >= n || !is_hex(p[i + 2]) || !is_hex(p[i + 3]) || !is_hex(p[i + 4]) ||
                    !is_hex(p[i + 5]))
                    return (long)i;
                sb_str(out, "\\x{");
                sb_add(out, p + i + 2, 4);
                sb_str(out, "}");
                i += 6;
                continue;
            case 'd': case 'D': case 'p': case 'P': case 'n': case 'r': case 't': case 'f':
            case 'x': case 'e': case 'a': case 'A': case 'z': case 'Z':
            case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
            case '8': case '9':
                sb_add(out, p + i, 2);
                break;
            default:
                if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (unsigned char)e >= 0x80)
                    return (long)i;
                sb_add(out, p + i, 2); /* an escaped punctuation character */
                break;
            }
            i += 2;
            continue;
        }
        if (in_class) {
            if (c == '[') {
                if (i + 1 < n && p[i + 1] == ':') { /* POSIX [:name:], same in both */
                    const char *end = NULL;
                    for (size_t k = i + 2; k + 1 < n; k++)
                        if (p[k] == ':' && p[k + 1] == ']') {
                            end = p + k + 2;
                            break;
                        }
                    if (!end)
                        return (long)i;
                    sb_add(out, p + i, (size_t)(end - (p + i)));
                    i = (size_t)(end - p);
                    continue;
                }
                return (long)i; /* a nested set in Oniguruma, a literal '[' in PCRE2 */
            }
            if (c == '&' && i + 1 < n && p[i + 1] == '&')
                return (long)i;
            if (c == ']')
                in_class = 0;
            sb_add(out, p + i, 1);
            i++;
            continue;
        }
        if (c == '[') {
            in_class = 1;
            sb_add(out, p + i, 1);
            i++;
            if (i < n && p[i] == '^') {
                sb_add(out, p + i, 1);
                i++;
            }
            if (i < n && p[i] == ']') /* a leading ']' is literal in both */
                return (long)i;
            continue;
        }
        sb_add(out, p + i, 1);
        i++;
    }
    return -1;
}

static lq_status compile_regex(rt_tokenizer *t, const char *pat, size_t n, int literal, const char *item,
                               lq_error *err)
{
    if (t->n_re >= TOK_MAX_STAGES)
        return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, item, "TOK_PRETOKENIZER",
                       "more than %d Split steps", TOK_MAX_STAGES);
    sbuf b = {0};
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK;
    if (literal) {
        sb_add(&b, pat, n);
        opts |= PCRE2_LITERAL;
    } else {
        long bad = regex_translate(pat, n, &b);
        if (bad >= 0) {
            free(b.p);
            return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, item, "TOK_REGEX",
                           "pattern construct at offset %ld is not supported (its meaning differs "
                           "between Oniguruma and PCRE2): \"%.40s\"", bad, pat + bad);
        }
    }
    if (b.oom || !b.p) {
        free(b.p);
        return lq_fail(err, b.oom ? LQ_ERR_NO_MEMORY : LQ_ERR_UNSUPPORTED, t->file, item, "TOK_REGEX",
                       b.oom ? "out of memory" : "empty pattern");
    }
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.p, b.n, opts, &code, &off, NULL);
    free(b.p);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof(msg));
        return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, item, "TOK_REGEX",
                       "PCRE2 cannot compile the pattern (translated offset %zu): %s", (size_t)off,
                       (const char *)msg);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is used when JIT is absent */
    t->re[t->n_re++] = re;
    return LQ_OK;
}

/* ---------------------------------------------------------------- loading */

static lq_status need_field(const rt_tokenizer *t, const cJSON *obj, const char *name, int type_string,
                            const char *item, const cJSON **out, lq_error *err)
{
    const cJSON *v = lq_json_get(obj, name);
    int ok = v && (type_string ? cJSON_IsString(v) : 1);
    if (!ok)
        return lq_fail(err, LQ_ERR_CORRUPT, t->file, item, "TOK_FIELD", "\"%s\" %s", name,
                       v ? "must be a string" : "is missing");
    *out = v;
    return LQ_OK;
}

/* A boolean member; absent gives dflt. -1 when present and not a boolean. */
static int get_bool(const cJSON *obj, const char *name, int dflt)
{
    const cJSON *v = lq_json_get(obj, name);
    if (!v || cJSON_IsNull(v))
        return dflt;
    if (!cJSON_IsBool(v))
        return -1;
    return cJSON_IsTrue(v) ? 1 : 0;
}

static int is_type(const cJSON *obj, const char *type)
{
    const cJSON *v = lq_json_get(obj, "type");
    return v && cJSON_IsString(v) && strcmp(v->valuestring, type) == 0;
}

static const char *type_name(const cJSON *obj)
{
    const cJSON *v = lq_json_get(obj, "type");
    return v && cJSON_IsString(v) ? v->valuestring : "(no type)";
}

static lq_status load_normalizer(rt_tokenizer *t, const cJSON *root, lq_error *err)
{
    const cJSON *n = lq_json_get(root, "normalizer");
    if (!n || cJSON_IsNull(n))
        return LQ_OK;
    if (is_type(n, "NFC")) {
        t->nfc = 1;
        return LQ_OK;
    }
    if (is_type(n, "Sequence")) {
        const cJSON *list = lq_json_get(n, "normalizers");
        if (!cJSON_IsArray(list))
            return lq_fail(err, LQ_ERR_CORRUPT, t->file, "normalizer", "TOK_FIELD",
                           "Sequence without a \"normalizers\" array");
        for (const cJSON *x = list->child; x; x = x->next) {
            if (!is_type(x, "NFC"))
                return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, "normalizer", "TOK_NORMALIZER",
                               "normalizer %s is not supported (only NFC)", type_name(x));
            t->nfc = 1; /* NFC is idempotent: once is the same as several times */
        }
        return LQ_OK;
    }
    return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, "normalizer", "TOK_NORMALIZER",
                   "normalizer %s is not supported (only NFC)", type_name(n));
}

static lq_status load_bytelevel_pretok(rt_tokenizer *t, const cJSON *p, lq_error *err)
{
    int aps = get_bool(p, "add_prefix_space", 0), ure = get_bool(p, "use_regex", 1);
    if (aps < 0 || ure < 0)
        return lq_fail(err, LQ_ERR_CORRUPT, t->file, "pre_tokenizer", "TOK_FIELD",
                       "ByteLevel flags must be booleans");
    if (aps)
        return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, "pre_tokenizer", "TOK_PRETOKENIZER",
                       "ByteLevel with add_prefix_space true is not supported");
    if (ure)
        return compile_regex(t, GPT2_PATTERN, strlen(GPT2_PATTERN), 0, "pre_tokenizer.ByteLevel", err);
    return LQ_OK;
}

static lq_status load_split(rt_tokenizer *t, const cJSON *p, lq_error *err)
{
    const cJSON *beh = lq_json_get(p, "behavior"), *pat = lq_json_get(p, "pattern");
    int inv = get_bool(p, "invert", 0);
    if (!beh || !cJSON_IsString(beh) || !pat || !cJSON_IsObject(pat) || inv < 0)
        return lq_fail(err, LQ_ERR_CORRUPT, t->file, "pre_tokenizer.Split", "TOK_FIELD",
                       "Split needs a string \"behavior\", an object \"pattern\" and a boolean \"invert\"");
    if (strcmp(beh->valuestring, "Isolated") != 0 || inv)
        return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, "pre_tokenizer.Split", "TOK_PRETOKENIZER",
                       "Split behavior %s, invert %s is not supported (only Isolated, false)",
                       beh->valuestring, inv ? "true" : "false");
    const cJSON *re = lq_json_get(pat, "Regex"), *lit = lq_json_get(pat, "String");
    const cJSON *use = re ? re : lit;
    if (!use || !cJSON_IsString(use) || (re && lit))
        return lq_fail(err, LQ_ERR_CORRUPT, t->file, "pre_tokenizer.Split", "TOK_FIELD",
                       "pattern must be {\"Regex\": string} or {\"String\": string}");
    return compile_regex(t, use->valuestring, strlen(use->valuestring), use == lit, "pre_tokenizer.Split", err);
}

static lq_status load_pretokenizer(rt_tokenizer *t, const cJSON *root, lq_error *err)
{
    const cJSON *p = lq_json_get(root, "pre_tokenizer");
    if (p && is_type(p, "ByteLevel"))
        return load_bytelevel_pretok(t, p, err);
    if (p && is_type(p, "Sequence")) {
        const cJSON *list = lq_json_get(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            return lq_fail(err, LQ_ERR_CORRUPT, t->file, "pre_tokenizer", "TOK_FIELD",
                           "Sequence without a \"pretokenizers\" array");
        int seen_bl = 0;
        for (const cJSON *x = list->child; x; x = x->next) {
            lq_status st;
            if (seen_bl)
                return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, "pre_tokenizer", "TOK_PRETOKENIZER",
                               "%s after ByteLevel is not supported (ByteLevel must come last)", type_name(x));
            if (is_type(x, "Split"))
                st = load_split(t, x, err);
            else if (is_type(x, "ByteLevel")) {
                st = load_bytelevel_pretok(t, x, err);
                seen_bl = 1;
            } else
                return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, "pre_tokenizer", "TOK_PRETOKENIZER",
                               "pre-tokenizer %s is not supported (only Split and ByteLevel)", type_name(x));
            if (st != LQ_OK)
                return st;
        }
        if (seen_bl)
            return LQ_OK;
    }
    return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, "pre_tokenizer", "TOK_PRETOKENIZER",
                   "pre-tokenizer %s is not supported: a byte-level tokenizer needs ByteLevel, alone "
                   "or last in a Sequence", p && !cJSON_IsNull(p) ? type_name(p) : "null");
}

static lq_status load_tail(rt_tokenizer *t, const cJSON *root, lq_error *err)
{
    const cJSON *d = lq_json_get(root, "decoder");
    if (!d || !is_type(d, "ByteLevel"))
        return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, "decoder", "TOK_DECODER",
                       "decoder %s is not supported (only ByteLevel)",
                       d && !cJSON_IsNull(d) ? type_name(d) : "null");
    const cJSON *pp = lq_json_get(root, "post_processor");
    if (pp && !cJSON_IsNull(pp) && !is_type(pp, "ByteLevel"))
        return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, "post_processor", "TOK_POSTPROCESSOR",
                       "post-processor %s is not supported (only null or ByteLevel, which add no tokens)",
                       type_name(pp));
    static const char *const off[] = {"truncation", "padding"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = lq_json_get(root, off[i]);
        if (v && !cJSON_IsNull(v))
            return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, off[i], "TOK_TRUNCATION",
                           "\"%s\" must be null (the runtime encodes whole texts)", off[i]);
    }
    return LQ_OK;
}

/* Registers the string of id (vocab or added); the bytes are derived from it. */
static lq_status set_token(rt_tokenizer *t, const bl_tables *bt, int32_t id, const char *s, size_t len,
                           int in_vocab, lq_error *err)
{
    t->key[id] = malloc(len + 1);
    if (!t->key[id])
        return lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
    memcpy(t->key[id], s, len);
    t->key[id][len] = 0;
    t->key_len[id] = len;
    int bl;
    t->bytes[id] = token_raw_bytes(bt, s, len, &t->bytes_len[id], &bl);
    if (!t->bytes[id])
        return lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
    t->flags[id] |= F_PRESENT;
    if (t->raw_vocab.cap && bl && in_vocab) {
        /* raw_vocab owns a copy: t->bytes[id] may be replaced later (normalized added tokens). */
        char *k = malloc(t->bytes_len[id] + 1);
        if (!k)
            return lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
        memcpy(k, t->bytes[id], t->bytes_len[id] + 1);
        if (smap_put(&t->raw_vocab, k, t->bytes_len[id], id) >= 0)
            free(k); /* two vocab strings cannot decode to the same bytes; kept for safety */
    }
    return LQ_OK;
}

/* *out is written on every path (-1 on failure), so no caller can read it unset. */
static lq_status read_id(const rt_tokenizer *t, const cJSON *v, const char *item, int32_t *out, lq_error *err)
{
    int64_t id;
    *out = -1;
    if (lq_json_i64(v, &id) != 0 || id < 0)
        return lq_fail(err, LQ_ERR_CORRUPT, t->file, item, "TOK_VOCAB_ID",
                       "id must be a non-negative integer");
    if (id >= TOK_MAX_ID)
        return lq_fail(err, LQ_ERR_LIMIT, t->file, item, "TOK_LIMIT", "id %lld is above the limit %d",
                       (long long)id, TOK_MAX_ID - 1);
    *out = (int32_t)id;
    return LQ_OK;
}

static lq_status split_merge(const rt_tokenizer *t, const cJSON *m, size_t rank, const char **a, size_t *alen,
                             const char **b, size_t *blen, lq_error *err)
{
    char item[64];
    snprintf(item, sizeof(item), "model.merges[%zu]", rank);
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ') || sp == s || !sp[1])
            return lq_fail(err, LQ_ERR_CORRUPT, t->file, item, "TOK_MERGE_FORMAT",
                           "a merge string must be two tokens separated by one space: \"%.80s\"", s);
        *a = s;
        *alen = (size_t)(sp - s);
        *b = sp + 1;
        *blen = strlen(sp + 1);
        return LQ_OK;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
        cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring;
        *alen = strlen(*a);
        *b = m->child->next->valuestring;
        *blen = strlen(*b);
        return LQ_OK;
    }
    return lq_fail(err, LQ_ERR_CORRUPT, t->file, item, "TOK_MERGE_FORMAT",
                   "a merge must be a string \"a b\" or an array of two strings");
}

static lq_status load_model(rt_tokenizer *t, const cJSON *root, size_t *max_id, lq_error *err)
{
    const cJSON *model = NULL, *type = NULL;
    lq_status st = need_field(t, root, "model", 0, "model", &model, err);
    if (st != LQ_OK)
        return st;
    if (!cJSON_IsObject(model))
        return lq_fail(err, LQ_ERR_CORRUPT, t->file, "model", "TOK_FIELD", "\"model\" must be an object");
    if ((st = need_field(t, model, "type", 1, "model", &type, err)) != LQ_OK)
        return st;
    if (strcmp(type->valuestring, "BPE") != 0)
        return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, "model.type", "TOK_MODEL_TYPE",
                       "model type %s is not supported (only BPE)", type->valuestring);
    static const char *const null_only[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = lq_json_get(model, null_only[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !v->valuestring[0]))
            return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, null_only[i], "TOK_BPE_OPTION",
                           "BPE %s is not supported with a byte-level vocabulary", null_only[i]);
    }
    const cJSON *drop = lq_json_get(model, "dropout");
    if (drop && !cJSON_IsNull(drop) && !(cJSON_IsNumber(drop) && drop->valuedouble == 0.0))
        return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, "model.dropout", "TOK_BPE_OPTION",
                       "BPE dropout is not supported (encoding must be deterministic)");
    int bf = get_bool(model, "byte_fallback", 0), fu = get_bool(model, "fuse_unk", 0),
        im = get_bool(model, "ignore_merges", 0);
    if (bf < 0 || fu < 0 || im < 0)
        return lq_fail(err, LQ_ERR_CORRUPT, t->file, "model", "TOK_FIELD",
                       "byte_fallback, fuse_unk and ignore_merges must be booleans");
    if (bf)
        return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, "model.byte_fallback", "TOK_BPE_OPTION",
                       "byte_fallback is not supported (a byte-level vocabulary needs none)");
    t->fuse_unk = fu;
    t->ignore_merges = im;

    const cJSON *vocab = NULL, *merges = NULL;
    if ((st = need_field(t, model, "vocab", 0, "model.vocab", &vocab, err)) != LQ_OK)
        return st;
    if ((st = need_field(t, model, "merges", 0, "model.merges", &merges, err)) != LQ_OK)
        return st;
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return lq_fail(err, LQ_ERR_CORRUPT, t->file, "model", "TOK_FIELD",
                       "\"vocab\" must be an object and \"merges\" an array");
    for (const cJSON *v = vocab->child; v; v = v->next) {
        int32_t id;
        char item[96];
        snprintf(item, sizeof(item), "model.vocab[\"%.60s\"]", v->string);
        if ((st = read_id(t, v, item, &id, err)) != LQ_OK)
            return st;
        if ((size_t)id + 1 > *max_id)
            *max_id = (size_t)id + 1;
    }
    return LQ_OK; /* the added tokens may raise max_id further */
}

static lq_status fill_vocab(rt_tokenizer *t, const bl_tables *bt, const cJSON *model, lq_error *err)
{
    const cJSON *vocab = lq_json_get(model, "vocab");
    size_t nv = (size_t)cJSON_GetArraySize(vocab);
    if (smap_init(&t->vocab, nv))
        return lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
    if (t->ignore_merges && smap_init(&t->raw_vocab, nv))
        return lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
    for (const cJSON *v = vocab->child; v; v = v->next) {
        int64_t id64;
        lq_json_i64(v, &id64); /* checked in load_model */
        int32_t id = (int32_t)id64;
        if (t->flags[id] & F_PRESENT)
            return lq_fail(err, LQ_ERR_CORRUPT, t->file, "model.vocab", "TOK_VOCAB_DUP_ID",
                           "id %d is given to both \"%.60s\" and \"%.60s\"", id, t->key[id], v->string);
        lq_status st = set_token(t, bt, id, v->string, strlen(v->string), 1, err);
        if (st != LQ_OK)
            return st;
        smap_put(&t->vocab, t->key[id], t->key_len[id], id); /* keys are unique: strict JSON */
    }
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t n = utf8_put(bt->fwd[b], s);
        t->byte_id[b] = smap_get(&t->vocab, s, n);
    }
    const cJSON *unk = lq_json_get(model, "unk_token");
    t->unk_id = -1;
    if (unk && !cJSON_IsNull(unk)) {
        if (!cJSON_IsString(unk))
            return lq_fail(err, LQ_ERR_CORRUPT, t->file, "model.unk_token", "TOK_FIELD",
                           "unk_token must be a string or null");
        t->unk_id = smap_get(&t->vocab, unk->valuestring, strlen(unk->valuestring));
        if (t->unk_id < 0)
            return lq_fail(err, LQ_ERR_CORRUPT, t->file, "model.unk_token", "TOK_BPE_UNK",
                           "unk_token \"%.60s\" is not in the vocab", unk->valuestring);
    }
    const cJSON *merges = lq_json_get(model, "merges");
    size_t nm = (size_t)cJSON_GetArraySize(merges);
    if (nm > UINT32_MAX - 1)
        return lq_fail(err, LQ_ERR_LIMIT, t->file, "model.merges", "TOK_LIMIT", "too many merges");
    if (pmap_init(&t->merges, nm))
        return lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
    char *cat = NULL;
    size_t cat_cap = 0, rank = 0;
    lq_status st = LQ_OK;
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        const char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        if ((st = split_merge(t, m, rank, &a, &al, &b, &bl, err)) != LQ_OK)
            break;
        if (al + bl + 1 > cat_cap) {
            cat_cap = 2 * (al + bl + 1);
            char *p = realloc(cat, cat_cap);
            if (!p) {
                st = lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
                break;
            }
            cat = p;
        }
        memcpy(cat, a, al);
        memcpy(cat + al, b, bl);
        int32_t ia = smap_get(&t->vocab, a, al), ib = smap_get(&t->vocab, b, bl),
                ic = smap_get(&t->vocab, cat, al + bl);
        if (ia < 0 || ib < 0 || ic < 0) {
            char item[64];
            snprintf(item, sizeof(item), "model.merges[%zu]", rank);
            const char *which = ia < 0 ? a : ib < 0 ? b : cat;
            int wl = (int)(ia < 0 ? al : ib < 0 ? bl : al + bl);
            st = lq_fail(err, LQ_ERR_CORRUPT, t->file, item, "TOK_MERGE_UNKNOWN",
                         "token \"%.*s\" is not in the vocab", wl > 80 ? 80 : wl, which);
            break;
        }
        pmap_put(&t->merges, ia, ib, (uint32_t)rank, ic);
    }
    free(cat);
    return st;
}

static lq_status load_added(rt_tokenizer *t, const bl_tables *bt, const cJSON *root, size_t *max_id, int fill,
                            lq_error *err)
{
    const cJSON *list = lq_json_get(root, "added_tokens");
    if (!list || cJSON_IsNull(list))
        return LQ_OK;
    if (!cJSON_IsArray(list))
        return lq_fail(err, LQ_ERR_CORRUPT, t->file, "added_tokens", "TOK_FIELD", "must be an array");
    size_t n = (size_t)cJSON_GetArraySize(list), i = 0;
    if (fill) {
        t->added = calloc(n ? n : 1, sizeof(*t->added));
        if (!t->added || smap_init(&t->added_map, n))
            return lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
    }
    for (const cJSON *a = list->child; a; a = a->next, i++) {
        char item[64];
        snprintf(item, sizeof(item), "added_tokens[%zu]", i);
        const cJSON *idv = lq_json_get(a, "id"), *cv = lq_json_get(a, "content");
        if (!cJSON_IsObject(a) || !idv || !cv || !cJSON_IsString(cv))
            return lq_fail(err, LQ_ERR_CORRUPT, t->file, item, "TOK_ADDED",
                           "an added token needs an integer \"id\" and a string \"content\"");
        int32_t id;
        lq_status st = read_id(t, idv, item, &id, err);
        if (st != LQ_OK)
            return st;
        if (!fill) {
            if ((size_t)id + 1 > *max_id)
                *max_id = (size_t)id + 1;
            continue;
        }
        int special = get_bool(a, "special", 0);
        int sw = get_bool(a, "single_word", 0), ls = get_bool(a, "lstrip", 0), rs = get_bool(a, "rstrip", 0);
        int norm = get_bool(a, "normalized", special > 0 ? 0 : 1);
        if (special < 0 || sw < 0 || ls < 0 || rs < 0 || norm < 0)
            return lq_fail(err, LQ_ERR_CORRUPT, t->file, item, "TOK_ADDED",
                           "special, single_word, lstrip, rstrip and normalized must be booleans");
        const char *c = cv->valuestring;
        size_t cl = strlen(c);
        if (!cl)
            return lq_fail(err, LQ_ERR_CORRUPT, t->file, item, "TOK_ADDED", "empty content");
        if (sw)
            return lq_fail(err, LQ_ERR_UNSUPPORTED, t->file, item, "TOK_ADDED_OPTION",
                           "single_word true is not supported (\"%.60s\")", c);
        if (t->flags[id] & F_ADDED)
            return lq_fail(err, LQ_ERR_CORRUPT, t->file, item, "TOK_ADDED_ID",
                           "id %d is given to two added tokens", id);
        if ((t->flags[id] & F_PRESENT) && (t->key_len[id] != cl || memcmp(t->key[id], c, cl) != 0))
            return lq_fail(err, LQ_ERR_CORRUPT, t->file, item, "TOK_ADDED_ID",
                           "id %d is \"%.60s\" in the vocab but \"%.60s\" here", id, t->key[id], c);
        if (!(t->flags[id] & F_PRESENT) && (st = set_token(t, bt, id, c, cl, 0, err)) != LQ_OK)
            return st;
        t->flags[id] |= F_ADDED | (special ? F_SPECIAL : 0);
        if (smap_put(&t->added_map, t->key[id], cl, id) >= 0)
            return lq_fail(err, LQ_ERR_CORRUPT, t->file, item, "TOK_ADDED_ID",
                           "content \"%.60s\" is given to two added tokens", c);
        tok_added *ad = &t->added[t->n_added++];
        ad->id = id;
        ad->lstrip = ls;
        ad->rstrip = rs;
        ad->normalized = norm;
        ad->special = special;
        if (norm && t->nfc) {
            nfc_buf nb = {0};
            size_t ol;
            if (nfc_normalize(&nb, c, cl, &ol)) {
                free(nb.cp);
                free(nb.out);
                return lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
            }
            free(nb.cp);
            ad->match = nb.out;
            ad->len = ol;
            ad->match[ol] = 0;
            /* The library's id -> token of a normalized added token gives the normalized
             * content, so that is what it decodes to. */
            int bl;
            size_t nl;
            char *nbytes = token_raw_bytes(bt, ad->match, ol, &nl, &bl);
            if (!nbytes)
                return lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
            free(t->bytes[id]);
            t->bytes[id] = nbytes;
            t->bytes_len[id] = nl;
        } else {
            ad->match = malloc(cl + 1);
            if (!ad->match)
                return lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
            memcpy(ad->match, c, cl + 1);
            ad->len = cl;
        }
    }
    return LQ_OK;
}

static int build_set(rt_tokenizer *t, int normalized, added_set *s)
{
    s->idx = malloc((t->n_added ? t->n_added : 1) * sizeof(int32_t));
    if (!s->idx)
        return -1;
    s->n = 0;
    memset(s->start, 0, sizeof(s->start));
    for (int b = 0; b < 256; b++) {
        s->start[b] = s->n;
        for (size_t i = 0; i < t->n_added; i++)
            if (t->added[i].normalized == normalized && (uint8_t)t->added[i].match[0] == b)
                s->idx[s->n++] = (int32_t)i;
    }
    s->start[256] = s->n;
    return 0;
}

/* Marks every vocab id whose string is a special added token's content as special too: the
 * library decides "special" by content when it skips special tokens. */
static void mark_special(rt_tokenizer *t)
{
    for (size_t i = 0; i < t->n_added; i++) {
        if (!t->added[i].special)
            continue;
        int32_t id = t->added[i].id;
        int32_t v = smap_get(&t->vocab, t->key[id], t->key_len[id]);
        if (v >= 0)
            t->flags[v] |= F_SPECIAL;
    }
}

lq_status rt_tokenizer_open(const char *path, rt_tokenizer **out, lq_error *err)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, "TOK_ARG", "NULL argument");
    rt_tokenizer *t = calloc(1, sizeof(*t));
    if (!t)
        return lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, NULL, "out of memory");
    struct stat sb;
    int n = (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
                ? snprintf(t->file, sizeof(t->file), "%s/tokenizer.json", path)
                : snprintf(t->file, sizeof(t->file), "%s", path);
    cJSON *root = NULL;
    lq_status st;
    if (n < 0 || (size_t)n >= sizeof(t->file)) {
        st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, "TOK_OPEN", "path is too long");
        goto cleanup;
    }
    lq_json_limits lim = {0, 0, 0};
    st = lq_json_parse_file(t->file, TOK_FILE_CAP, &lim, &root, err);
    if (st != LQ_OK) {
        if (err) {
            char inner[600];
            snprintf(inner, sizeof(inner), "%s%s%s", err->rule, err->rule[0] ? ": " : "", err->msg);
            int open_fail = st == LQ_ERR_NOT_FOUND || st == LQ_ERR_IO;
            lq_fail(err, st, t->file, NULL, open_fail ? "TOK_OPEN" : "TOK_JSON", "%s%.440s",
                    open_fail ? "cannot read: " : "not strict JSON: ", inner);
        }
        goto cleanup;
    }
    if (!cJSON_IsObject(root)) {
        st = lq_fail(err, LQ_ERR_CORRUPT, t->file, NULL, "TOK_FIELD", "the top level must be an object");
        goto cleanup;
    }
    size_t max_id = 0;
    if ((st = load_normalizer(t, root, err)) != LQ_OK || (st = load_pretokenizer(t, root, err)) != LQ_OK ||
        (st = load_tail(t, root, err)) != LQ_OK || (st = load_model(t, root, &max_id, err)) != LQ_OK ||
        (st = load_added(t, NULL, root, &max_id, 0, err)) != LQ_OK)
        goto cleanup;
    t->n_ids = max_id;
    size_t cap = max_id ? max_id : 1;
    t->key = calloc(cap, sizeof(*t->key));
    t->key_len = calloc(cap, sizeof(*t->key_len));
    t->bytes = calloc(cap, sizeof(*t->bytes));
    t->bytes_len = calloc(cap, sizeof(*t->bytes_len));
    t->flags = calloc(cap, 1);
    if (!t->key || !t->key_len || !t->bytes || !t->bytes_len || !t->flags) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
        goto cleanup;
    }
    bl_tables bt;
    bl_init(&bt);
    if ((st = fill_vocab(t, &bt, lq_json_get(root, "model"), err)) != LQ_OK ||
        (st = load_added(t, &bt, root, &max_id, 1, err)) != LQ_OK)
        goto cleanup;
    if (build_set(t, 0, &t->sets[0]) || build_set(t, 1, &t->sets[1])) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
        goto cleanup;
    }
    mark_special(t);
    st = LQ_OK;

cleanup:
    cJSON_Delete(root);
    if (st != LQ_OK) {
        rt_tokenizer_close(t);
        return st;
    }
    *out = t;
    return LQ_OK;
}

void rt_tokenizer_close(rt_tokenizer *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_ids && t->key; i++) {
        free(t->key[i]);
        free(t->bytes[i]);
    }
    free(t->key);
    free(t->key_len);
    free(t->bytes);
    free(t->bytes_len);
    free(t->flags);
    free(t->vocab.e);
    free(t->added_map.e);
    for (size_t i = 0; i < t->raw_vocab.cap; i++)
        free((char *)t->raw_vocab.e[i].key);
    free(t->raw_vocab.e);
    free(t->merges.key);
    free(t->merges.rank);
    free(t->merges.val);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].match);
    free(t->added);
    free(t->sets[0].idx);
    free(t->sets[1].idx);
    for (size_t i = 0; i < t->n_re; i++)
        pcre2_code_free(t->re[i]);
    free(t);
}

size_t rt_tokenizer_vocab_size(const rt_tokenizer *t) { return t ? t->n_ids : 0; }

const char *rt_tokenizer_token_bytes(const rt_tokenizer *t, int32_t id, size_t *len)
{
    if (len)
        *len = 0;
    if (!t || id < 0 || (size_t)id >= t->n_ids || !(t->flags[id] & F_PRESENT))
        return NULL;
    if (len)
        *len = t->bytes_len[id];
    return t->bytes[id];
}

int rt_tokenizer_is_special(const rt_tokenizer *t, int32_t id)
{
    return t && id >= 0 && (size_t)id < t->n_ids && (t->flags[id] & F_SPECIAL) ? 1 : 0;
}

int32_t rt_tokenizer_find(const rt_tokenizer *t, const char *token)
{
    if (!t || !token)
        return -1;
    size_t n = strlen(token);
    int32_t id = smap_get(&t->added_map, token, n);
    return id >= 0 ? id : smap_get(&t->vocab, token, n);
}

/* ---------------------------------------------------------------- encoding */

typedef struct bpe_sym {
    int32_t id, prev, next;
    int removed;
} bpe_sym;

typedef struct bpe_item {
    uint32_t rank, pos;
    int32_t new_id;
} bpe_item;

typedef struct enc_ctx {
    const rt_tokenizer *t;
    int32_t *ids;
    size_t n, cap;
    pcre2_match_data *md[TOK_MAX_STAGES];
    bpe_sym *sym;
    bpe_item *heap;
    size_t sym_cap, heap_cap;
    nfc_buf nfc;
    int oom;
} enc_ctx;

static void push_id(enc_ctx *c, int32_t id)
{
    if (c->oom)
        return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        int32_t *p = realloc(c->ids, cap * sizeof(int32_t));
        if (!p) {
            c->oom = 1;
            return;
        }
        c->ids = p;
        c->cap = cap;
    }
    c->ids[c->n++] = id;
}

static int item_less(const bpe_item *a, const bpe_item *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(enc_ctx *c, size_t *hn, bpe_item it)
{
    size_t i = (*hn)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!item_less(&it, &c->heap[p]))
            break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = it;
}

static bpe_item heap_pop(enc_ctx *c, size_t *hn)
{
    bpe_item top = c->heap[0], last = c->heap[--*hn];
    size_t i = 0, n = *hn;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const bpe_item *best = &last;
        if (l < n && item_less(&c->heap[l], best)) {
            m = l;
            best = &c->heap[l];
        }
        if (r < n && item_less(&c->heap[r], best))
            m = r;
        if (m == i)
            break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n)
        c->heap[i] = last;
    return top;
}

/* One pre-tokenized piece (raw bytes) through the BPE model. */
static void bpe_piece(enc_ctx *c, const uint8_t *s, size_t len)
{
    const rt_tokenizer *t = c->t;
    if (t->ignore_merges) {
        int32_t id = smap_get(&t->raw_vocab, (const char *)s, len);
        if (id >= 0) {
            push_id(c, id);
            return;
        }
    }
    if (len > c->sym_cap) {
        size_t cap = len < 64 ? 64 : len;
        bpe_sym *a = realloc(c->sym, cap * sizeof(*a));
        bpe_item *h = a ? realloc(c->heap, 2 * cap * sizeof(*h)) : NULL;
        if (a)
            c->sym = a;
        if (h)
            c->heap = h;
        if (!a || !h) {
            c->oom = 1;
            return;
        }
        c->sym_cap = cap;
        c->heap_cap = 2 * cap;
    }
    /* Symbols: one per byte; bytes without a token become unk (fused runs when fuse_unk) or,
     * with no unk_token, are dropped, as the library does. */
    size_t n = 0;
    int pending_unk = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t id = t->byte_id[s[i]];
        if (id >= 0) {
            if (pending_unk) {
                c->sym[n++].id = t->unk_id;
                pending_unk = 0;
            }
            c->sym[n++].id = id;
        } else if (t->unk_id >= 0) {
            if (pending_unk && !t->fuse_unk)
                c->sym[n++].id = t->unk_id;
            pending_unk = 1;
        }
    }
    if (pending_unk)
        c->sym[n++].id = t->unk_id;
    for (size_t i = 0; i < n; i++) {
        c->sym[i].prev = (int32_t)i - 1;
        c->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
        c->sym[i].removed = 0;
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        bpe_item it;
        if (pmap_get(&t->merges, c->sym[i].id, c->sym[i + 1].id, &it.rank, &it.new_id)) {
            it.pos = (uint32_t)i;
            heap_push(c, &hn, it);
        }
    }
    while (hn) {
        bpe_item top = heap_pop(c, &hn);
        bpe_sym *cur = &c->sym[top.pos];
        if (cur->removed || cur->next < 0)
            continue;
        bpe_sym *right = &c->sym[cur->next];
        uint32_t rank;
        int32_t val;
        /* A stale entry: the pair at pos no longer merges into this result. */
        if (!pmap_get(&t->merges, cur->id, right->id, &rank, &val) || val != top.new_id)
            continue;
        cur->id = top.new_id;
        right->removed = 1;
        cur->next = right->next;
        if (right->next >= 0)
            c->sym[right->next].prev = (int32_t)top.pos;
        /* The heap starts with at most n - 1 entries and each merge pops one and pushes at most
         * two; at most n - 1 merges happen, so it never holds more than 2 (n - 1) < heap_cap. */
        bpe_item it;
        if (cur->prev >= 0 && pmap_get(&t->merges, c->sym[cur->prev].id, cur->id, &it.rank, &it.new_id)) {
            it.pos = (uint32_t)cur->prev;
            heap_push(c, &hn, it);
        }
        if (cur->next >= 0 && pmap_get(&t->merges, cur->id, c->sym[cur->next].id, &it.rank, &it.new_id)) {
            it.pos = top.pos;
            heap_push(c, &hn, it);
        }
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = c->sym[i].next)
        push_id(c, c->sym[i].id);
}

/* Regex Split (Isolated) number `stage`, then the later stages, then BPE. Empty matches are
 * reported unless they touch the previous match's end, as Rust's find_iter (and so the library)
 * does; empty pieces are dropped. */
static lq_status pretok(enc_ctx *c, size_t stage, const char *s, size_t len, lq_error *err)
{
    if (!len)
        return LQ_OK;
    if (stage == c->t->n_re) {
        bpe_piece(c, (const uint8_t *)s, len);
        return LQ_OK;
    }
    pcre2_code *re = c->t->re[stage];
    pcre2_match_data *md = c->md[stage];
    size_t pos = 0, prev = 0;
    long last_end = -1;
    while (pos <= len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            return lq_fail(err, LQ_ERR_LIMIT, c->t->file, "pre_tokenizer", "TOK_REGEX",
                           "regex match failed: %s", (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms == me && (long)me == last_end) {
            if (pos >= len)
                break;
            uint32_t cp;
            int tr, k = utf8_next((const uint8_t *)s + pos, len - pos, &cp, &tr);
            pos += (size_t)(k > 0 ? k : 1);
            continue;
        }
        lq_status st;
        if (ms > prev && (st = pretok(c, stage + 1, s + prev, ms - prev, err)) != LQ_OK)
            return st;
        if ((st = pretok(c, stage + 1, s + ms, me - ms, err)) != LQ_OK)
            return st;
        prev = me;
        pos = me;
        last_end = (long)me;
    }
    return pretok(c, stage + 1, s + prev, len - prev, err);
}

static int is_white(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

/* Start of the run of white space that ends at s[end]. */
static size_t white_left(const char *s, size_t end)
{
    size_t p = end;
    while (p > 0) {
        size_t q = p - 1;
        while (q > 0 && ((uint8_t)s[q] & 0xC0) == 0x80)
            q--;
        uint32_t cp;
        int tr;
        if (utf8_next((const uint8_t *)s + q, p - q, &cp, &tr) <= 0 || !is_white(cp))
            break;
        p = q;
    }
    return p;
}

/* Length of the run of white space at s[0..len). */
static size_t white_right(const char *s, size_t len)
{
    size_t p = 0;
    while (p < len) {
        uint32_t cp;
        int tr, k = utf8_next((const uint8_t *)s + p, len - p, &cp, &tr);
        if (k <= 0 || !is_white(cp))
            break;
        p += (size_t)k;
    }
    return p;
}

static lq_status piece_raw(enc_ctx *c, const char *s, size_t len, lq_error *err);

/* Cuts the added tokens of one set out of s (leftmost-longest, non-overlapping, scanning on
 * from the end of each match as Aho-Corasick's find_iter does), lstrip/rstrip widening the cut
 * as the library's find_matches does; the rest goes on to the next step. */
static lq_status split_added(enc_ctx *c, int set, const char *s, size_t len, lq_error *err)
{
    const rt_tokenizer *t = c->t;
    const added_set *as = &t->sets[set];
    size_t start_offset = 0, pos = 0;
    lq_status st;
    while (as->n && pos < len) {
        uint8_t b = (uint8_t)s[pos];
        const tok_added *best = NULL;
        for (size_t k = as->start[b]; k < as->start[b + 1]; k++) {
            const tok_added *a = &t->added[as->idx[k]];
            if (a->len <= len - pos && (!best || a->len > best->len) && memcmp(s + pos, a->match, a->len) == 0)
                best = a;
        }
        if (!best) {
            pos++;
            continue;
        }
        size_t start = pos, stop = pos + best->len;
        pos = stop;
        if (best->lstrip) {
            size_t ns = white_left(s, start);
            start = ns > start_offset ? ns : start_offset;
        }
        if (best->rstrip)
            stop += white_right(s + stop, len - stop);
        if (start_offset < start) {
            st = set == 0 ? piece_raw(c, s + start_offset, start - start_offset, err)
                          : pretok(c, 0, s + start_offset, start - start_offset, err);
            if (st != LQ_OK)
                return st;
        }
        push_id(c, best->id);
        start_offset = stop;
    }
    if (start_offset < len)
        return set == 0 ? piece_raw(c, s + start_offset, len - start_offset, err)
                        : pretok(c, 0, s + start_offset, len - start_offset, err);
    return LQ_OK;
}

/* A piece of the raw text between non-normalized added tokens: normalize, then cut the
 * normalized added tokens. The NFC buffer is not reused below this level. */
static lq_status piece_raw(enc_ctx *c, const char *s, size_t len, lq_error *err)
{
    if (!c->t->nfc)
        return split_added(c, 1, s, len, err);
    size_t i = 0;
    while (i < len && (uint8_t)s[i] < 0x80)
        i++;
    if (i == len) /* ASCII is its own NFC */
        return split_added(c, 1, s, len, err);
    size_t nl;
    if (nfc_normalize(&c->nfc, s, len, &nl)) {
        c->oom = 1;
        return LQ_OK;
    }
    return split_added(c, 1, c->nfc.out, nl, err);
}

lq_status rt_tokenizer_encode(const rt_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n,
                              lq_error *err)
{
    if (ids)
        *ids = NULL;
    if (n)
        *n = 0;
    if (!t || !ids || !n || (!text && len))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, t ? t->file : NULL, NULL, "TOK_ARG", "NULL argument");
    size_t bad = utf8_check((const uint8_t *)text, len);
    if (bad < len)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, "text", "TOK_INPUT_UTF8",
                       "the text is not valid UTF-8 at byte %zu (0x%02X)", bad, (unsigned)(uint8_t)text[bad]);
    enc_ctx c;
    memset(&c, 0, sizeof(c));
    c.t = t;
    lq_status st = LQ_OK;
    for (size_t i = 0; i < t->n_re; i++) {
        c.md[i] = pcre2_match_data_create_from_pattern(t->re[i], NULL);
        if (!c.md[i])
            c.oom = 1;
    }
    if (!c.oom && len)
        st = split_added(&c, 0, text, len, err);
    if (st == LQ_OK && c.oom)
        st = lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory while encoding");
    for (size_t i = 0; i < t->n_re; i++)
        pcre2_match_data_free(c.md[i]);
    free(c.sym);
    free(c.heap);
    free(c.nfc.cp);
    free(c.nfc.out);
    if (st != LQ_OK) {
        free(c.ids);
        return st;
    }
    *ids = c.ids;
    *n = c.n;
    return LQ_OK;
}

/* ---------------------------------------------------------------- decoding */

lq_status rt_tokenizer_decode(const rt_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **text,
                              size_t *len, lq_error *err)
{
    if (text)
        *text = NULL;
    if (len)
        *len = 0;
    if (!t || !text || (!ids && n))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, t ? t->file : NULL, NULL, "TOK_ARG", "NULL argument");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= t->n_ids || !(t->flags[id] & F_PRESENT)) {
            char item[48];
            snprintf(item, sizeof(item), "ids[%zu]", i);
            return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, t->file, item, "TOK_DECODE_ID",
                           "id %d has no token (vocab size %zu)", id, t->n_ids);
        }
        if (!(skip_special && (t->flags[id] & F_SPECIAL)))
            total += t->bytes_len[id];
    }
    char *joined = malloc(total + 1);
    if (!joined)
        return lq_fail(err, LQ_ERR_NO_MEMORY, t->file, NULL, NULL, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (skip_special && (t->flags[id] & F_SPECIAL))
            continue;
        memcpy(joined + o, t->bytes[id], t->bytes_len[id]);
        o += t->bytes_len[id];
    }
    lq_status st = rt_tokenizer_utf8_lossy(joined, o, text, len, err);
    free(joined);
    return st;
}
