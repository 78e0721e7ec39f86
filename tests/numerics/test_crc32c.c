/* CRC-32C: the check value of the Rocksoft model for CRC-32C ("123456789" -> 0xE3069283, as
 * listed for CRC-32/ISCSI in the CRC catalogue), RFC 3720 B.4's 32 zero bytes -> 0x8A9136AA and
 * 32 0xFF bytes -> 0x62A8AB43, incremental == one-shot, and the SSE4.2 path == the table path on
 * random data of every length up to 100 and at every misalignment, and on lengths around the
 * three-stretch path (multiples of 12 KiB, plus and minus a few bytes) at several start offsets. */
#include <stdlib.h>

#include "../harness.h"
#include "libquant/crc32c.h"

int main(void)
{
    CHECK_EQ_U64(lq_crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ_U64(lq_crc32c_portable(0, "123456789", 9), 0xE3069283u);
    uint8_t z[32], f[32];
    memset(z, 0, sizeof z);
    memset(f, 0xFF, sizeof f);
    CHECK_EQ_U64(lq_crc32c(0, z, 32), 0x8A9136AAu);
    CHECK_EQ_U64(lq_crc32c(0, f, 32), 0x62A8AB43u);
    CHECK_EQ_U64(lq_crc32c(lq_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    CHECK_EQ_U64(lq_crc32c(0, "", 0), 0);
    uint8_t buf[128];
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < sizeof buf; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        buf[i] = (uint8_t)s;
    }
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= 108; n++)
            CHECK(lq_crc32c(7, buf + off, n) == lq_crc32c_portable(7, buf + off, n));
    size_t bn = 80000;
    uint8_t *big = malloc(bn);
    CHECK(big != NULL);
    if (big) {
        for (size_t i = 0; i < bn; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            big[i] = (uint8_t)s;
        }
        const size_t lens[] = {12287, 12288, 12289, 12296, 24575, 24576, 36871, 50000, 79990};
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
            for (size_t off = 0; off < 10; off += 3)
                CHECK(lq_crc32c(0x1234567u, big + off, lens[k]) == lq_crc32c_portable(0x1234567u, big + off, lens[k]));
        /* incremental over uneven pieces == one shot */
        uint32_t inc = 0;
        for (size_t o = 0, step = 1; o < bn; o += step, step = step * 3 + 1)
            inc = lq_crc32c(inc, big + o, step < bn - o ? step : bn - o);
        CHECK(inc == lq_crc32c_portable(0, big, bn));
        free(big);
    }
    return th_finish("test_crc32c");
}
