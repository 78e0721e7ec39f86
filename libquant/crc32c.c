/* CRC-32C (crc32c.h): a slicing-free table path and the SSE4.2 crc32 instruction. */
#include "crc32c.h"

#include <string.h>

static uint32_t table[256];
static int table_ready;

static void make_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
    table_ready = 1;
}

uint32_t lq_crc32c_portable(uint32_t crc, const void *data, size_t n)
{
    if (!table_ready)
        make_table(); /* idempotent: concurrent first calls write the same values */
    const uint8_t *p = data;
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++)
        c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return ~c;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n; n--, p++)
        c32 = _mm_crc32_u8(c32, *p);
    return ~c32;
}
#endif

uint32_t lq_crc32c(uint32_t crc, const void *data, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("sse4.2"))
        return crc_sse42(crc, data, n);
#endif
    return lq_crc32c_portable(crc, data, n);
}
