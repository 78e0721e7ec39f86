/* Ed25519 signing and verification of manifests, and the signature file (sign.h).
 *
 * All cryptography is libcrypto's (EVP one-shot DigestSign/DigestVerify with no digest, which
 * is how OpenSSL 3 exposes pure Ed25519); this file only loads keys, checks their type and
 * handles the text file. Private key text is read into a buffer owned here, instead of through
 * lq_read_file or a file BIO, so that every copy of it can be wiped with OPENSSL_cleanse on
 * every path. OpenSSL's error queue is drained after each failure so a stale entry never
 * decorates a later, unrelated error. */
#include "sign.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "internal/fileio.h"
#include "outfile.h"

#define KEY_FILE_MAX (64u * 1024u)
#define SIG_FILE_MAX 4096u

static const char SIG_MAGIC[] = "mimo-manifest-signature v1\n";
static const char SIG_ALGO[] = "algorithm ed25519\n";
static const char SIG_PUB[] = "public-key ";
static const char SIG_SIG[] = "signature ";

/* The reason of the newest queued libcrypto error (a fixed library string, never key data),
 * then an empty queue. */
static const char *ossl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, n, "%s", r ? r : "no detail");
    ERR_clear_error();
    return buf;
}

/* Never asked for a passphrase: an encrypted key fails to load instead of prompting on the
 * terminal, which a batch tool must never do. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Reads a private key file into a buffer the caller wipes and frees (wipe_free). */
static lq_status read_secret_file(const char *path, char **buf_out, size_t *size_out,
                                  lq_error *err)
{
    int fd = -1;
    uint64_t size64 = 0;
    *buf_out = NULL;
    *size_out = 0;
    lq_status st = lq_open_regular(path, KEY_FILE_MAX, "SIG_KEY", "SIG_KEY", &fd, &size64, err);
    if (st != LQ_OK)
        return st;
    size_t size = (size_t)size64;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, "SIG_KEY", "cannot allocate %zu bytes",
                       size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            st = lq_fail(err, LQ_ERR_IO, path, NULL, "SIG_KEY", "%s",
                         r < 0 ? strerror(errno) : "file shrank while reading");
            OPENSSL_cleanse(buf, size + 1);
            free(buf);
            close(fd);
            return st;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = '\0';
    *buf_out = buf;
    *size_out = size;
    return LQ_OK;
}

static void wipe_free(char *buf, size_t size)
{
    if (!buf)
        return;
    OPENSSL_cleanse(buf, size + 1);
    free(buf);
}

/* Rejects keys of other algorithms with SIG_KEY_TYPE. */
static lq_status check_ed25519(const EVP_PKEY *pk, const char *path, lq_error *err)
{
    if (EVP_PKEY_get_id(pk) == EVP_PKEY_ED25519)
        return LQ_OK;
    const char *name = EVP_PKEY_get0_type_name(pk);
    return lq_fail(err, LQ_ERR_UNSUPPORTED, path, NULL, "SIG_KEY_TYPE",
                   "key type %s, expected ED25519", name ? name : "unknown");
}

/* Loads an Ed25519 private key from a PEM file. */
static lq_status load_private(const char *path, EVP_PKEY **out, lq_error *err)
{
    char *text = NULL;
    size_t size = 0;
    BIO *bio = NULL;
    EVP_PKEY *pk = NULL;
    char rb[160];
    *out = NULL;
    lq_status st = read_secret_file(path, &text, &size, err);
    if (st != LQ_OK)
        goto cleanup;
    bio = BIO_new_mem_buf(text, (int)size);
    if (!bio) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, "SIG_CRYPTO", "BIO_new_mem_buf: %s",
                     ossl_reason(rb, sizeof(rb)));
        goto cleanup;
    }
    pk = PEM_read_bio_PrivateKey_ex(bio, NULL, no_passphrase, NULL, NULL, NULL);
    if (!pk) {
        st = lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "SIG_KEY",
                     "no unencrypted PEM private key could be read (%s)",
                     ossl_reason(rb, sizeof(rb)));
        goto cleanup;
    }
    st = check_ed25519(pk, path, err);
    if (st != LQ_OK)
        goto cleanup;
    *out = pk;
    pk = NULL;
cleanup:
    EVP_PKEY_free(pk);
    BIO_free(bio);
    wipe_free(text, size);
    ERR_clear_error(); /* decoders queue errors for the formats they tried */
    return st;
}

/* Loads an Ed25519 public key from a PEM (SPKI "PUBLIC KEY") file. */
static lq_status load_public(const char *path, EVP_PKEY **out, lq_error *err)
{
    uint8_t *text = NULL;
    size_t size = 0;
    BIO *bio = NULL;
    EVP_PKEY *pk = NULL;
    char rb[160];
    *out = NULL;
    lq_status st = lq_read_file(path, KEY_FILE_MAX, "SIG_KEY", "SIG_KEY", &text, &size, err);
    if (st != LQ_OK)
        goto cleanup;
    bio = BIO_new_mem_buf(text, (int)size);
    if (!bio) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, "SIG_CRYPTO", "BIO_new_mem_buf: %s",
                     ossl_reason(rb, sizeof(rb)));
        goto cleanup;
    }
    pk = PEM_read_bio_PUBKEY_ex(bio, NULL, no_passphrase, NULL, NULL, NULL);
    if (!pk) {
        st = lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "SIG_KEY",
                     "no PEM public key could be read (%s)", ossl_reason(rb, sizeof(rb)));
        goto cleanup;
    }
    st = check_ed25519(pk, path, err);
    if (st != LQ_OK)
        goto cleanup;
    *out = pk;
    pk = NULL;
cleanup:
    EVP_PKEY_free(pk);
    BIO_free(bio);
    free(text);
    ERR_clear_error(); /* decoders queue errors for the formats they tried */
    return st;
}

static lq_status raw_public(EVP_PKEY *pk, const char *path, uint8_t pub[32], lq_error *err)
{
    char rb[160];
    size_t n = 32;
    if (EVP_PKEY_get_raw_public_key(pk, pub, &n) != 1 || n != 32) {
        memset(pub, 0, 32);
        return lq_fail(err, LQ_ERR_IO, path, NULL, "SIG_CRYPTO",
                       "cannot extract the raw public key (%s)", ossl_reason(rb, sizeof(rb)));
    }
    return LQ_OK;
}

/* libcrypto wants a non-NULL pointer even for an empty message. */
static const unsigned char *msg_ptr(const void *msg)
{
    static const unsigned char empty[1] = {0};
    return msg ? (const unsigned char *)msg : empty;
}

/* One-shot pure-Ed25519 verification with an already loaded key. */
static lq_status verify_with(EVP_PKEY *pk, const char *label, const void *msg, size_t len,
                             const uint8_t sig[64], lq_error *err)
{
    char rb[160];
    lq_status st = LQ_OK;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestVerifyInit_ex(ctx, NULL, NULL, NULL, NULL, pk, NULL) != 1) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, label, NULL, "SIG_CRYPTO",
                     "cannot set up verification (%s)", ossl_reason(rb, sizeof(rb)));
        goto cleanup;
    }
    if (EVP_DigestVerify(ctx, sig, 64, msg_ptr(msg), len) != 1) {
        ERR_clear_error();
        st = lq_fail(err, LQ_ERR_CORRUPT, label, NULL, "SIG_BAD",
                     "Ed25519 signature does not verify for this message and key");
        goto cleanup;
    }
cleanup:
    EVP_MD_CTX_free(ctx);
    return st;
}

lq_status lq_ed25519_sign(const char *key_pem_path, const void *msg, size_t len, uint8_t sig[64],
                          lq_error *err)
{
    EVP_PKEY *pk = NULL;
    EVP_MD_CTX *ctx = NULL;
    char rb[160];
    lq_status st;
    if (!key_pem_path || !sig || (!msg && len))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, key_pem_path, NULL, NULL,
                       "lq_ed25519_sign: NULL argument");
    memset(sig, 0, 64);
    st = load_private(key_pem_path, &pk, err);
    if (st != LQ_OK)
        goto cleanup;
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit_ex(ctx, NULL, NULL, NULL, NULL, pk, NULL) != 1) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, key_pem_path, NULL, "SIG_CRYPTO",
                     "cannot set up signing (%s)", ossl_reason(rb, sizeof(rb)));
        goto cleanup;
    }
    size_t siglen = 64;
    if (EVP_DigestSign(ctx, sig, &siglen, msg_ptr(msg), len) != 1 || siglen != 64) {
        memset(sig, 0, 64);
        st = lq_fail(err, LQ_ERR_IO, key_pem_path, NULL, "SIG_CRYPTO", "signing failed (%s)",
                     ossl_reason(rb, sizeof(rb)));
        goto cleanup;
    }
cleanup:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return st;
}

lq_status lq_ed25519_verify_pem(const char *pub_pem_path, const void *msg, size_t len,
                                const uint8_t sig[64], lq_error *err)
{
    EVP_PKEY *pk = NULL;
    if (!pub_pem_path || !sig || (!msg && len))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, pub_pem_path, NULL, NULL,
                       "lq_ed25519_verify_pem: NULL argument");
    lq_status st = load_public(pub_pem_path, &pk, err);
    if (st == LQ_OK)
        st = verify_with(pk, pub_pem_path, msg, len, sig, err);
    EVP_PKEY_free(pk);
    return st;
}

lq_status lq_ed25519_verify_raw(const uint8_t pub[32], const void *msg, size_t len,
                                const uint8_t sig[64], lq_error *err)
{
    char rb[160];
    if (!pub || !sig || (!msg && len))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, NULL,
                       "lq_ed25519_verify_raw: NULL argument");
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, pub, 32);
    if (!pk)
        return lq_fail(err, LQ_ERR_CORRUPT, NULL, NULL, "SIG_KEY",
                       "not a usable raw Ed25519 public key (%s)", ossl_reason(rb, sizeof(rb)));
    lq_status st = verify_with(pk, NULL, msg, len, sig, err);
    EVP_PKEY_free(pk);
    return st;
}

lq_status lq_ed25519_public_from_private(const char *key_pem_path, uint8_t pub[32], lq_error *err)
{
    EVP_PKEY *pk = NULL;
    if (!key_pem_path || !pub)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, key_pem_path, NULL, NULL,
                       "lq_ed25519_public_from_private: NULL argument");
    memset(pub, 0, 32);
    lq_status st = load_private(key_pem_path, &pk, err);
    if (st == LQ_OK)
        st = raw_public(pk, key_pem_path, pub, err);
    EVP_PKEY_free(pk);
    return st;
}

lq_status lq_ed25519_public_from_pem(const char *pub_pem_path, uint8_t pub[32], lq_error *err)
{
    EVP_PKEY *pk = NULL;
    if (!pub_pem_path || !pub)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, pub_pem_path, NULL, NULL,
                       "lq_ed25519_public_from_pem: NULL argument");
    memset(pub, 0, 32);
    lq_status st = load_public(pub_pem_path, &pk, err);
    if (st == LQ_OK)
        st = raw_public(pk, pub_pem_path, pub, err);
    EVP_PKEY_free(pk);
    return st;
}

lq_status lq_sig_write(const char *path, const uint8_t sig[64], const uint8_t pub[32],
                       lq_error *err)
{
    if (!path || !sig || !pub)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, NULL,
                       "lq_sig_write: NULL argument");
    char pub_hex[65], sig_hex[129], text[LQ_SIG_FILE_BYTES + 1];
    lq_hex(pub, 32, pub_hex);
    lq_hex(sig, 64, sig_hex);
    int n = snprintf(text, sizeof(text), "%s%s%s%s\n%s%s\n", SIG_MAGIC, SIG_ALGO, SIG_PUB, pub_hex,
                     SIG_SIG, sig_hex);
    if (n != LQ_SIG_FILE_BYTES) /* the layout is fixed; anything else is a bug here */
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, "SIG_FILE",
                       "internal: signature text is %d bytes", n);
    return lq_write_file_atomic(path, text, (size_t)n, NULL, err);
}

/* Matches a literal at *pos, advancing past it; 0 when the text differs there. */
static int take_literal(const uint8_t *buf, size_t size, size_t *pos, const char *lit)
{
    size_t n = strlen(lit);
    if (size - *pos < n || memcmp(buf + *pos, lit, n) != 0)
        return 0;
    *pos += n;
    return 1;
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase is refused too: the file has exactly one spelling */
}

/* Decodes 2n lowercase hex digits at *pos into out[0..n); 0 on a short or bad digit, with
 * *pos left at the offending byte. */
static int take_hex(const uint8_t *buf, size_t size, size_t *pos, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (size - *pos < 2)
            return 0;
        int hi = hex_value(buf[*pos]);
        if (hi < 0)
            return 0;
        int lo = hex_value(buf[*pos + 1]);
        if (lo < 0) {
            (*pos)++;
            return 0;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
        *pos += 2;
    }
    return 1;
}

lq_status lq_sig_read(const char *path, uint8_t sig[64], uint8_t pub[32], lq_error *err)
{
    uint8_t *buf = NULL;
    size_t size = 0, pos = 0;
    const char *what = NULL;
    if (!path || !sig || !pub)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, NULL, NULL,
                       "lq_sig_read: NULL argument");
    memset(sig, 0, 64);
    memset(pub, 0, 32);
    lq_status st = lq_read_file(path, SIG_FILE_MAX, "SIG_FILE", "SIG_FILE", &buf, &size, err);
    if (st != LQ_OK)
        return st;
    uint8_t p[32], s[64];
    if (!take_literal(buf, size, &pos, SIG_MAGIC))
        what = "the first line \"mimo-manifest-signature v1\"";
    else if (!take_literal(buf, size, &pos, SIG_ALGO))
        what = "the line \"algorithm ed25519\"";
    else if (!take_literal(buf, size, &pos, SIG_PUB))
        what = "\"public-key \"";
    else if (!take_hex(buf, size, &pos, p, 32))
        what = "64 lowercase hex digits of the public key";
    else if (!take_literal(buf, size, &pos, "\n"))
        what = "a newline after the public key";
    else if (!take_literal(buf, size, &pos, SIG_SIG))
        what = "\"signature \"";
    else if (!take_hex(buf, size, &pos, s, 64))
        what = "128 lowercase hex digits of the signature";
    else if (!take_literal(buf, size, &pos, "\n"))
        what = "a newline after the signature";
    else if (pos != size)
        what = "the end of the file";
    if (what) {
        st = lq_fail(err, LQ_ERR_CORRUPT, path, NULL, "SIG_FILE", "expected %s at byte %zu", what,
                     pos);
    } else {
        memcpy(sig, s, 64);
        memcpy(pub, p, 32);
    }
    free(buf);
    return st;
}
