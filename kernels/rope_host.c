/* The RoPE frequency table on the host (rope.h): powf from the same libm as rt_rope, so the
 * device rotates with the CPU's frequencies bit for bit. */
#include "rope.h"

#include <math.h>

void kn_rope_inv_freq(double theta, uint32_t rd, float *out)
{
    for (uint32_t i = 0; i < rd / 2; i++)
        out[i] = 1.0f / powf((float)theta, (float)(2 * i) / (float)rd);
}
