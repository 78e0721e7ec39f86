/* Unit tests for libquant/sign.c.
 *
 * Independent checks: the openssl command-line tool generates the keys, verifies our
 * signatures (`pkeyutl -verify -rawin`) and makes signatures we must accept (`pkeyutl -sign
 * -rawin`); Ed25519 is deterministic (RFC 8032 section 5.1.6), so its signature of the same
 * message must also equal ours byte for byte. The raw public key is compared with the last 32
 * bytes of `openssl pkey -pubout -outform DER` (RFC 8410 section 4: SPKI = the fixed 12-byte
 * prefix 302a300506032b6570032100 + the key). RFC 8032 section 7.1 TESTs 1-3 are used for
 * verify_raw, and TEST 1's secret key, wrapped as PKCS#8 (RFC 8410 section 7: the fixed prefix
 * 302e020100300506032b657004220420 + the 32-byte seed), must reproduce the RFC's public key
 * and signature. Failure cases check status and rule: wrong key, flipped bits in message and
 * signature, non-Ed25519 keys (EC P-256, X25519), unreadable and encrypted keys, and every
 * strictness rule of the signature file.
 *
 * Without the openssl binary, the checks that need it are skipped (exit 77 when everything
 * else passed). */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libquant/sign.h"
#include "tests/harness.h"

static char scratch[512];

/* scratch/name in one of a few rotating static buffers (enough for one call's arguments). */
static const char *P(const char *name)
{
    static char bufs[6][640];
    static int k;
    char *b = bufs[k++ % 6];
    snprintf(b, sizeof(bufs[0]), "%s/%s", scratch, name);
    return b;
}

/* Runs a shell command with the scratch directory as working directory; returns its exit
 * status (-1 when it did not exit normally). */
static int sh(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    int n = snprintf(cmd, sizeof(cmd), "cd '%s' && ", scratch);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
    va_end(ap);
    int r = system(cmd);
    return (r != -1 && WIFEXITED(r)) ? WEXITSTATUS(r) : -1;
}

static int write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

/* Reads at most cap bytes; returns the count or -1. */
static long read_bytes(const char *path, void *p, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(p, 1, cap, f);
    fclose(f);
    return (long)n;
}

static void unhex(const char *h, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static int is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

#define CHECK_FAIL(expr, want_st, want_rule)                                                  \
    do {                                                                                      \
        lq_error e_;                                                                          \
        lq_error_clear(&e_);                                                                  \
        lq_status s_ = (expr);                                                                \
        CHECK_MSG(s_ == (want_st) && strcmp(e_.rule, (want_rule)) == 0,                       \
                  "%s: status %d rule '%s' (%s), want %d %s", #expr, (int)s_, e_.rule,         \
                  e_.msg, (int)(want_st), want_rule);                                         \
    } while (0)
/* The CHECK_FAIL expressions pass &e_ as their error argument. */
#define EARG (&e_)

/* --- RFC 8032 section 7.1, TESTs 1-3 (secret key, public key, message, signature) --- */
static const struct {
    const char *sk, *pk, *msg, *sig;
} RFC[3] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9"
     "b46bd25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f1"
     "1d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984d"
     "c6594a7c15e9716ed28dc027beceea1ec40a"},
};

/* RFC 4648 base64, for wrapping DER into PEM here without any library. */
static void base64(const uint8_t *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
        out[o++] = i + 1 < n ? a[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? a[v & 63] : '=';
    }
    out[o] = '\0';
}

static void test_rfc8032(void)
{
    for (int t = 0; t < 3; t++) {
        uint8_t pk[32], sig[64], msg[2];
        size_t mlen = strlen(RFC[t].msg) / 2;
        unhex(RFC[t].pk, pk, 32);
        unhex(RFC[t].sig, sig, 64);
        unhex(RFC[t].msg, msg, mlen);
        lq_error err;
        CHECK_MSG(lq_ed25519_verify_raw(pk, mlen ? msg : NULL, mlen, sig, &err) == LQ_OK,
                  "RFC test %d: %s", t + 1, err.msg);
        uint8_t bad[64];
        memcpy(bad, sig, 64);
        bad[t * 20] ^= 0x10;
        CHECK_FAIL(lq_ed25519_verify_raw(pk, mlen ? msg : NULL, mlen, bad, EARG), LQ_ERR_CORRUPT,
                   "SIG_BAD");
        uint8_t other[32];
        unhex(RFC[(t + 1) % 3].pk, other, 32);
        CHECK_FAIL(lq_ed25519_verify_raw(other, mlen ? msg : NULL, mlen, sig, EARG),
                   LQ_ERR_CORRUPT, "SIG_BAD");
    }
    /* The message of TEST 2 with one bit flipped. */
    uint8_t pk[32], sig[64], m = 0x72 ^ 0x01;
    unhex(RFC[1].pk, pk, 32);
    unhex(RFC[1].sig, sig, 64);
    CHECK_FAIL(lq_ed25519_verify_raw(pk, &m, 1, sig, EARG), LQ_ERR_CORRUPT, "SIG_BAD");

    /* TEST 1 secret key as a PKCS#8 PEM: signing the empty message reproduces the RFC. */
    uint8_t der[48];
    unhex("302e020100300506032b657004220420", der, 16);
    unhex(RFC[0].sk, der + 16, 32);
    char b64[80], pem[200];
    base64(der, 48, b64);
    snprintf(pem, sizeof(pem), "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n",
             b64);
    CHECK(write_bytes(P("rfc1.pem"), pem, strlen(pem)) == 0);
    uint8_t got[64], want[64], pub[32], want_pub[32];
    lq_error err;
    CHECK_MSG(lq_ed25519_sign(P("rfc1.pem"), NULL, 0, got, &err) == LQ_OK, "%s", err.msg);
    unhex(RFC[0].sig, want, 64);
    CHECK(memcmp(got, want, 64) == 0);
    CHECK(lq_ed25519_public_from_private(P("rfc1.pem"), pub, &err) == LQ_OK);
    unhex(RFC[0].pk, want_pub, 32);
    CHECK(memcmp(pub, want_pub, 32) == 0);
    /* "" and NULL are the same empty message. */
    CHECK(lq_ed25519_sign(P("rfc1.pem"), "", 0, got, &err) == LQ_OK);
    CHECK(memcmp(got, want, 64) == 0);
    unlink(P("rfc1.pem"));
}

/* Signature file text built here independently of lq_sig_write. */
static void sig_text(const uint8_t sig[64], const uint8_t pub[32], char *out)
{
    int o = sprintf(out, "mimo-manifest-signature v1\nalgorithm ed25519\npublic-key ");
    for (int i = 0; i < 32; i++)
        o += sprintf(out + o, "%02x", pub[i]);
    o += sprintf(out + o, "\nsignature ");
    for (int i = 0; i < 64; i++)
        o += sprintf(out + o, "%02x", sig[i]);
    sprintf(out + o, "\n");
}

/* Files in scratch whose name starts with '.' (temporaries of the atomic writer). */
static int hidden_files(void)
{
    DIR *d = opendir(scratch);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    if (d)
        closedir(d);
    return n;
}

static void test_sig_file(void)
{
    uint8_t sig[64], pub[32], rs[64], rp[32];
    for (int i = 0; i < 64; i++)
        sig[i] = (uint8_t)(i * 37 + 11);
    for (int i = 0; i < 32; i++)
        pub[i] = (uint8_t)(255 - i * 5);
    char want[400];
    sig_text(sig, pub, want);
    CHECK_EQ_U64(strlen(want), LQ_SIG_FILE_BYTES);

    lq_error err;
    const char *path = P("m.json.sig");
    CHECK(lq_sig_write(path, sig, pub, &err) == LQ_OK);
    char got[600];
    long n = read_bytes(path, got, sizeof(got));
    CHECK_EQ_U64(n, LQ_SIG_FILE_BYTES);
    CHECK(n == LQ_SIG_FILE_BYTES && memcmp(got, want, LQ_SIG_FILE_BYTES) == 0);
    CHECK(lq_sig_read(path, rs, rp, &err) == LQ_OK);
    CHECK(memcmp(rs, sig, 64) == 0 && memcmp(rp, pub, 32) == 0);
    CHECK_EQ_U64(hidden_files(), 0);

    /* Overwriting replaces the content. */
    sig[5] ^= 0xFF;
    CHECK(lq_sig_write(path, sig, pub, &err) == LQ_OK);
    CHECK(lq_sig_read(path, rs, rp, &err) == LQ_OK);
    CHECK(memcmp(rs, sig, 64) == 0);
    sig_text(sig, pub, want);

    /* Strictness: each variant of the valid text must be refused with SIG_FILE, and the
     * outputs zeroed. */
    struct {
        const char *what;
        char text[600];
        size_t len;
    } v[16];
    int nv = 0;
#define VARIANT(desc) (v[nv].what = (desc), v[nv].text)
    size_t L = strlen(want);
    /* uppercase hex digit in the public key (offset of its first letter digit) */
    strcpy(VARIANT("uppercase hex"), want);
    {
        char *pk = strstr(v[nv].text, "public-key ") + 11;
        while (*pk >= '0' && *pk <= '9')
            pk++;
        *pk = (char)(*pk - 'a' + 'A');
    }
    v[nv++].len = L;
    memcpy(VARIANT("no final newline"), want, L - 1);
    v[nv++].len = L - 1;
    strcpy(VARIANT("extra newline"), want);
    strcat(v[nv].text, "\n");
    v[nv++].len = L + 1;
    {
        /* CRLF line endings */
        char *o = VARIANT("CRLF");
        for (size_t i = 0; i < L; i++) {
            if (want[i] == '\n')
                *o++ = '\r';
            *o++ = want[i];
        }
        v[nv].len = (size_t)(o - v[nv].text);
        nv++;
    }
    snprintf(VARIANT("version 2"), 600, "mimo-manifest-signature v2%s", want + 26);
    v[nv].len = strlen(v[nv].text), nv++;
    snprintf(VARIANT("ed448"), 600, "mimo-manifest-signature v1\nalgorithm ed448\n%s",
             want + 27 + 18);
    v[nv].len = strlen(v[nv].text), nv++;
    snprintf(VARIANT("two spaces"), 600, "%.*s %s", 27 + 18 + 11, want, want + 27 + 18 + 11);
    v[nv].len = strlen(v[nv].text), nv++;
    /* lines swapped: signature before public-key */
    snprintf(VARIANT("swapped lines"), 600, "%.*s%s%.*s", 27 + 18, want, want + 27 + 18 + 76, 76,
             want + 27 + 18);
    v[nv].len = strlen(v[nv].text), nv++;
    /* 63 hex digits for the public key */
    snprintf(VARIANT("short key"), 600, "%.*s%s", 27 + 18 + 11 + 63, want, want + 27 + 18 + 11 + 64);
    v[nv].len = strlen(v[nv].text), nv++;
    /* a non-hex letter in the signature */
    strcpy(VARIANT("non-hex"), want);
    v[nv].text[27 + 18 + 76 + 10 + 100] = 'g';
    v[nv++].len = L;
    /* NUL in place of the last signature digit */
    memcpy(VARIANT("NUL byte"), want, L);
    v[nv].text[L - 2] = '\0';
    v[nv++].len = L;
    (void)VARIANT("empty");
    v[nv++].len = 0;
    /* trailing garbage after a complete file */
    memcpy(VARIANT("trailing byte"), want, L);
    v[nv].text[L] = 'x';
    v[nv++].len = L + 1;
    /* 129 hex digits */
    snprintf(VARIANT("long signature"), 600, "%.*s0\n", (int)L - 1, want);
    v[nv].len = strlen(v[nv].text), nv++;
#undef VARIANT
    for (int i = 0; i < nv; i++) {
        const char *bp = P("bad.sig");
        CHECK(write_bytes(bp, v[i].text, v[i].len) == 0);
        memset(rs, 0xAA, 64);
        memset(rp, 0xAA, 32);
        lq_error e;
        lq_error_clear(&e);
        lq_status st = lq_sig_read(bp, rs, rp, &e);
        CHECK_MSG(st == LQ_ERR_CORRUPT && strcmp(e.rule, "SIG_FILE") == 0,
                  "variant '%s': status %d rule %s", v[i].what, (int)st, e.rule);
        CHECK(is_zero(rs, 64) && is_zero(rp, 32));
    }
    unlink(P("bad.sig"));
    /* Missing, too large, a directory. */
    CHECK_FAIL(lq_sig_read(P("absent.sig"), rs, rp, EARG), LQ_ERR_NOT_FOUND, "SIG_FILE");
    {
        static char big[5000];
        memset(big, 'a', sizeof(big));
        CHECK(write_bytes(P("big.sig"), big, sizeof(big)) == 0);
        CHECK_FAIL(lq_sig_read(P("big.sig"), rs, rp, EARG), LQ_ERR_LIMIT, "SIG_FILE");
        unlink(P("big.sig"));
    }
    CHECK_FAIL(lq_sig_read(scratch, rs, rp, EARG), LQ_ERR_IO, "SIG_FILE");
    CHECK(lq_sig_read(NULL, rs, rp, &err) == LQ_ERR_INVALID_ARGUMENT);
    unlink(path);
}

/* Everything that needs the openssl tool. */
static void test_with_openssl(void)
{
    /* Keys: two Ed25519, one EC P-256, one X25519, one passphrase-protected Ed25519. */
    CHECK(sh("openssl genpkey -algorithm ed25519 -out key.pem 2>/dev/null") == 0);
    CHECK(sh("openssl pkey -in key.pem -pubout -out pub.pem") == 0);
    CHECK(sh("openssl pkey -in key.pem -pubout -outform DER -out pub.der") == 0);
    CHECK(sh("openssl genpkey -algorithm ed25519 -out key2.pem 2>/dev/null") == 0);
    CHECK(sh("openssl pkey -in key2.pem -pubout -out pub2.pem") == 0);
    CHECK(sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem "
             "2>/dev/null") == 0);
    CHECK(sh("openssl pkey -in ec.pem -pubout -out ecpub.pem") == 0);
    CHECK(sh("openssl genpkey -algorithm X25519 -out x.pem 2>/dev/null") == 0);
    CHECK(sh("openssl genpkey -algorithm ed25519 -aes-256-cbc -pass pass:test-only "
             "-out enc.pem 2>/dev/null") == 0);

    /* Raw public key: our two readers against the SPKI DER openssl wrote. */
    uint8_t der[64], prefix[12], pub[32], pub2[32], tmp[32];
    unhex("302a300506032b6570032100", prefix, 12);
    CHECK_EQ_U64(read_bytes(P("pub.der"), der, sizeof(der)), 44);
    CHECK(memcmp(der, prefix, 12) == 0);
    lq_error err;
    CHECK_MSG(lq_ed25519_public_from_private(P("key.pem"), pub, &err) == LQ_OK, "%s", err.msg);
    CHECK(memcmp(pub, der + 12, 32) == 0);
    CHECK(lq_ed25519_public_from_pem(P("pub.pem"), tmp, &err) == LQ_OK);
    CHECK(memcmp(tmp, der + 12, 32) == 0);
    CHECK(lq_ed25519_public_from_pem(P("pub2.pem"), pub2, &err) == LQ_OK);
    CHECK(memcmp(pub2, pub, 32) != 0);

    /* A message with every byte value. */
    uint8_t msg[1000];
    for (int i = 0; i < 1000; i++)
        msg[i] = (uint8_t)(i * 131 + 7);
    CHECK(write_bytes(P("msg.bin"), msg, sizeof(msg)) == 0);

    /* Ours -> openssl verifies; a flipped signature bit and the other key are refused by it. */
    uint8_t sig[64], osig[64], bad[64];
    CHECK_MSG(lq_ed25519_sign(P("key.pem"), msg, sizeof(msg), sig, &err) == LQ_OK, "%s", err.msg);
    CHECK(write_bytes(P("sig.bin"), sig, 64) == 0);
    CHECK(sh("openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in msg.bin -sigfile sig.bin "
             ">/dev/null 2>&1") == 0);
    CHECK(sh("openssl pkeyutl -verify -pubin -inkey pub2.pem -rawin -in msg.bin -sigfile sig.bin "
             ">/dev/null 2>&1") != 0);
    memcpy(bad, sig, 64);
    bad[40] ^= 0x04;
    CHECK(write_bytes(P("bad.bin"), bad, 64) == 0);
    CHECK(sh("openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in msg.bin -sigfile bad.bin "
             ">/dev/null 2>&1") != 0);

    /* openssl -> we verify (PEM and raw); deterministic, so identical to ours. */
    CHECK(sh("openssl pkeyutl -sign -inkey key.pem -rawin -in msg.bin -out osig.bin") == 0);
    CHECK_EQ_U64(read_bytes(P("osig.bin"), osig, sizeof(osig)), 64);
    CHECK_MSG(lq_ed25519_verify_pem(P("pub.pem"), msg, sizeof(msg), osig, &err) == LQ_OK, "%s",
              err.msg);
    CHECK(lq_ed25519_verify_raw(pub, msg, sizeof(msg), osig, &err) == LQ_OK);
    CHECK(memcmp(osig, sig, 64) == 0);

    /* Wrong key, flipped message bits, flipped signature bits, a truncated message. */
    CHECK_FAIL(lq_ed25519_verify_pem(P("pub2.pem"), msg, sizeof(msg), sig, EARG), LQ_ERR_CORRUPT,
               "SIG_BAD");
    CHECK_FAIL(lq_ed25519_verify_raw(pub2, msg, sizeof(msg), sig, EARG), LQ_ERR_CORRUPT,
               "SIG_BAD");
    static const int mbits[] = {0, 7, 4001, 7999};
    for (int i = 0; i < 4; i++) {
        msg[mbits[i] / 8] ^= (uint8_t)(1u << (mbits[i] % 8));
        CHECK_FAIL(lq_ed25519_verify_pem(P("pub.pem"), msg, sizeof(msg), sig, EARG),
                   LQ_ERR_CORRUPT, "SIG_BAD");
        msg[mbits[i] / 8] ^= (uint8_t)(1u << (mbits[i] % 8));
    }
    static const int sbits[] = {0, 255, 256, 300, 511};
    for (int i = 0; i < 5; i++) {
        memcpy(bad, sig, 64);
        bad[sbits[i] / 8] ^= (uint8_t)(1u << (sbits[i] % 8));
        CHECK_FAIL(lq_ed25519_verify_pem(P("pub.pem"), msg, sizeof(msg), bad, EARG),
                   LQ_ERR_CORRUPT, "SIG_BAD");
        CHECK_FAIL(lq_ed25519_verify_raw(pub, msg, sizeof(msg), bad, EARG), LQ_ERR_CORRUPT,
                   "SIG_BAD");
    }
    CHECK_FAIL(lq_ed25519_verify_pem(P("pub.pem"), msg, sizeof(msg) - 1, sig, EARG),
               LQ_ERR_CORRUPT, "SIG_BAD");
    CHECK(lq_ed25519_verify_pem(P("pub.pem"), msg, sizeof(msg), sig, &err) == LQ_OK);

    /* Other key types. */
    CHECK_FAIL(lq_ed25519_sign(P("ec.pem"), msg, sizeof(msg), bad, EARG), LQ_ERR_UNSUPPORTED,
               "SIG_KEY_TYPE");
    CHECK(is_zero(bad, 64));
    CHECK_FAIL(lq_ed25519_sign(P("x.pem"), msg, sizeof(msg), bad, EARG), LQ_ERR_UNSUPPORTED,
               "SIG_KEY_TYPE");
    CHECK_FAIL(lq_ed25519_public_from_private(P("ec.pem"), tmp, EARG), LQ_ERR_UNSUPPORTED,
               "SIG_KEY_TYPE");
    CHECK(is_zero(tmp, 32));
    CHECK_FAIL(lq_ed25519_verify_pem(P("ecpub.pem"), msg, sizeof(msg), sig, EARG),
               LQ_ERR_UNSUPPORTED, "SIG_KEY_TYPE");
    CHECK_FAIL(lq_ed25519_public_from_pem(P("ecpub.pem"), tmp, EARG), LQ_ERR_UNSUPPORTED,
               "SIG_KEY_TYPE");

    /* Unusable key files: absent, garbage, the wrong half, encrypted (refused, not prompted
     * for), a directory. */
    CHECK_FAIL(lq_ed25519_sign(P("absent.pem"), msg, 1, bad, EARG), LQ_ERR_NOT_FOUND, "SIG_KEY");
    const char *junk = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    CHECK(write_bytes(P("junk.pem"), junk, strlen(junk)) == 0);
    CHECK_FAIL(lq_ed25519_sign(P("junk.pem"), msg, 1, bad, EARG), LQ_ERR_CORRUPT, "SIG_KEY");
    CHECK_FAIL(lq_ed25519_verify_pem(P("junk.pem"), msg, 1, sig, EARG), LQ_ERR_CORRUPT, "SIG_KEY");
    CHECK_FAIL(lq_ed25519_sign(P("pub.pem"), msg, 1, bad, EARG), LQ_ERR_CORRUPT, "SIG_KEY");
    CHECK_FAIL(lq_ed25519_verify_pem(P("key.pem"), msg, 1, sig, EARG), LQ_ERR_CORRUPT, "SIG_KEY");
    CHECK_FAIL(lq_ed25519_sign(P("enc.pem"), msg, 1, bad, EARG), LQ_ERR_CORRUPT, "SIG_KEY");
    CHECK_FAIL(lq_ed25519_sign(scratch, msg, 1, bad, EARG), LQ_ERR_IO, "SIG_KEY");
    CHECK_FAIL(lq_ed25519_verify_pem(P("absent.pem"), msg, 1, sig, EARG), LQ_ERR_NOT_FOUND,
               "SIG_KEY");
    {
        /* Key files are capped at 64 KiB before anything is allocated for them. */
        static char big[70000];
        memset(big, '-', sizeof(big));
        CHECK(write_bytes(P("big.pem"), big, sizeof(big)) == 0);
        CHECK_FAIL(lq_ed25519_sign(P("big.pem"), msg, 1, bad, EARG), LQ_ERR_LIMIT, "SIG_KEY");
        CHECK_FAIL(lq_ed25519_verify_pem(P("big.pem"), msg, 1, sig, EARG), LQ_ERR_LIMIT,
                   "SIG_KEY");
    }
    CHECK(lq_ed25519_sign(NULL, msg, 1, bad, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK(lq_ed25519_sign(P("key.pem"), NULL, 1, bad, &err) == LQ_ERR_INVALID_ARGUMENT);

    /* End to end: sign a manifest, write the signature file, read it back, check that the
     * embedded key is the trusted one and that the signature verifies; openssl agrees on the
     * signature taken from the file. */
    const char *manifest = "{\n  \"schema\": 1\n}\n";
    CHECK(lq_ed25519_sign(P("key.pem"), manifest, strlen(manifest), sig, &err) == LQ_OK);
    CHECK(lq_ed25519_public_from_private(P("key.pem"), pub, &err) == LQ_OK);
    CHECK(lq_sig_write(P("mimo-manifest.json.sig"), sig, pub, &err) == LQ_OK);
    uint8_t fsig[64], fpub[32], trusted[32];
    CHECK(lq_sig_read(P("mimo-manifest.json.sig"), fsig, fpub, &err) == LQ_OK);
    CHECK(lq_ed25519_public_from_pem(P("pub.pem"), trusted, &err) == LQ_OK);
    CHECK(memcmp(fpub, trusted, 32) == 0);
    CHECK(lq_ed25519_verify_raw(fpub, manifest, strlen(manifest), fsig, &err) == LQ_OK);
    CHECK(write_bytes(P("manifest.json"), manifest, strlen(manifest)) == 0);
    CHECK(write_bytes(P("fsig.bin"), fsig, 64) == 0);
    CHECK(sh("openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in manifest.json "
             "-sigfile fsig.bin >/dev/null 2>&1") == 0);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof(scratch), "%s/mimo-sign-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(scratch) || strchr(scratch, '\'')) {
        fprintf(stderr, "cannot create a scratch directory: %s\n", strerror(errno));
        return 1;
    }
    test_rfc8032();
    test_sig_file();
    int have_openssl = system("command -v openssl >/dev/null 2>&1") == 0;
    if (have_openssl)
        test_with_openssl();
    else
        fprintf(stderr, "openssl binary not found: openssl cross-checks skipped\n");
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
    CHECK(system(cmd) == 0);
    int rc = th_finish("sign_ed25519");
    return rc == 0 && !have_openssl ? TH_SKIP_EXIT : rc;
}
