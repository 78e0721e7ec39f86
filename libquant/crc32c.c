/* CRC-32C (crc32c.h): a slicing-free table path and the SSE4.2 crc32 instruction.
 *
 * One chain of crc32 instructions waits for each result before the next (a latency of about three
 * cycles for 8 bytes), so long inputs run three independent chains over three consecutive
 * stretches of STRETCH bytes and join them: the CRC register is linear, so the register after
 * stretches A then B is shift(register after A) xor (register after B started from 0), where
 * shift is what STRETCH zero bytes do to a register. shift is linear too and is applied as four
 * byte tables, built once by running the instruction over zero bytes. */
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

#include <pthread.h>

#define STRETCH ((size_t)4096)

static uint32_t shift_table[4][256];
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

__attribute__((target("sse4.2"))) static uint32_t run_zeros(uint32_t c, size_t n)
{
    uint64_t r = c;
    for (size_t i = 0; i < n; i += 8)
        r = _mm_crc32_u64(r, 0);
    return (uint32_t)r;
}

static void make_shift_table(void)
{
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++)
            shift_table[k][b] = run_zeros(b << (8 * k), STRETCH);
}

static uint32_t shift_stretch(uint32_t c)
{
    return shift_table[0][c & 0xFF] ^ shift_table[1][(c >> 8) & 0xFF] ^ shift_table[2][(c >> 16) & 0xFF] ^
           shift_table[3][c >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = ~crc;
    if (n >= 3 * STRETCH) {
        pthread_once(&shift_once, make_shift_table);
        for (; n >= 3 * STRETCH; n -= 3 * STRETCH, p += 3 * STRETCH) {
            uint64_t a = c, b = 0, d = 0;
            for (size_t i = 0; i < STRETCH; i += 8) {
                uint64_t va, vb, vd;
                memcpy(&va, p + i, 8);
                memcpy(&vb, p + STRETCH + i, 8);
                memcpy(&vd, p + 2 * STRETCH + i, 8);
                a = _mm_crc32_u64(a, va);
                b = _mm_crc32_u64(b, vb);
                d = _mm_crc32_u64(d, vd);
            }
            c = shift_stretch(shift_stretch((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)d;
        }
    }
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
