/* Ed25519 signatures of release manifests (OpenSSL 3 libcrypto).
 *
 * Keys are PEM files as the openssl tool writes them: a PKCS#8 "PRIVATE KEY" from
 * `openssl genpkey -algorithm ed25519 -out key.pem` (unencrypted: passphrase-protected keys are
 * refused, never prompted for) and an SPKI "PUBLIC KEY" from `openssl pkey -in key.pem -pubout`.
 * Signing is pure Ed25519 (RFC 8032, no pre-hash, no context), so `openssl pkeyutl -sign -rawin`
 * and `-verify -rawin` produce and accept the same signatures.
 *
 * The detached signature file is 260 bytes of ASCII text, exactly:
 *   mimo-manifest-signature v1\n
 *   algorithm ed25519\n
 *   public-key <64 lowercase hex digits: the 32-byte raw public key>\n
 *   signature <128 lowercase hex digits: the 64-byte signature>\n
 * A verifier must compare the embedded public key with a key it trusts; the file alone only
 * says which key claims to have signed.
 *
 * Rule ids: SIG_KEY (a key file that cannot be read or parsed: LQ_ERR_NOT_FOUND, LQ_ERR_IO,
 * LQ_ERR_LIMIT above 64 KiB, or LQ_ERR_CORRUPT for text that holds no usable key),
 * SIG_KEY_TYPE (LQ_ERR_UNSUPPORTED: a valid key of another algorithm), SIG_BAD
 * (LQ_ERR_CORRUPT: the signature does not verify), SIG_FILE (signature file unreadable:
 * LQ_ERR_NOT_FOUND / LQ_ERR_IO / LQ_ERR_LIMIT, or not in the format above: LQ_ERR_CORRUPT,
 * the message gives the byte offset), SIG_CRYPTO (LQ_ERR_NO_MEMORY or LQ_ERR_IO: libcrypto
 * failed for another reason), plus the OUT_* rules of outfile.h from lq_sig_write. NULL
 * pointers (msg may be NULL only when len is 0) give LQ_ERR_INVALID_ARGUMENT. Key material is
 * never put into error messages; private key text read here is wiped before it is freed. */
#ifndef LIBQUANT_SIGN_H
#define LIBQUANT_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LQ_ED25519_PUBLIC_BYTES 32
#define LQ_ED25519_SIG_BYTES 64
/* Size of a signature file in bytes. */
#define LQ_SIG_FILE_BYTES 260

/* Signs msg[0..len) with the private key in key_pem_path. sig is zeroed on failure. */
lq_status lq_ed25519_sign(const char *key_pem_path, const void *msg, size_t len, uint8_t sig[64],
                          lq_error *err);

/* LQ_OK when sig is a valid signature of msg[0..len) under the public key in pub_pem_path;
 * LQ_ERR_CORRUPT with SIG_BAD when it is not. */
lq_status lq_ed25519_verify_pem(const char *pub_pem_path, const void *msg, size_t len,
                                const uint8_t sig[64], lq_error *err);

/* Same with a raw 32-byte public key (as in a signature file). err may be NULL. */
lq_status lq_ed25519_verify_raw(const uint8_t pub[32], const void *msg, size_t len,
                                const uint8_t sig[64], lq_error *err);

/* The raw public key of a private key file, and of a public key file. pub is zeroed on
 * failure. */
lq_status lq_ed25519_public_from_private(const char *key_pem_path, uint8_t pub[32], lq_error *err);
lq_status lq_ed25519_public_from_pem(const char *pub_pem_path, uint8_t pub[32], lq_error *err);

/* Writes the signature file atomically (lq_write_file_atomic). */
lq_status lq_sig_write(const char *path, const uint8_t sig[64], const uint8_t pub[32],
                       lq_error *err);

/* Reads a signature file, accepting exactly the format above (no other spacing, case, line
 * ending, order or trailing byte). sig and pub are zeroed on failure. */
lq_status lq_sig_read(const char *path, uint8_t sig[64], uint8_t pub[32], lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
