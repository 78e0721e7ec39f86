/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, as iSCSI and ext4 use it): a cheap
 * per-tensor checksum in the manifest, so a verifier can name the tensor that holds a damaged
 * byte (the file's SHA-256 stays the integrity guarantee). */
#ifndef LIBQUANT_CRC32C_H
#define LIBQUANT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Continues crc (0 to start, or a previous result) over n bytes. lq_crc32c(0, "123456789", 9) is
 * 0xE3069283. Uses the SSE4.2 instruction where the processor has it; the same values otherwise. */
uint32_t lq_crc32c(uint32_t crc, const void *data, size_t n);
/* The portable path only (tests compare the two). */
uint32_t lq_crc32c_portable(uint32_t crc, const void *data, size_t n);

#ifdef __cplusplus
}
#endif
#endif
