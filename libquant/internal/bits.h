/* Bit views of f32 values, shared by the numeric modules (memcpy is the defined way in C). */
#ifndef LIBQUANT_INTERNAL_BITS_H
#define LIBQUANT_INTERNAL_BITS_H

#include <stdint.h>
#include <string.h>

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#endif
