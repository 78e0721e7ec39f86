"""MXFP4 fake quantization in torch, as mimo-quantize rounds the routed experts (libquant/mxfp4.c):
blocks of 32 values along the input (last) dimension, E2M1 elements rounded to nearest with ties to
the even code and saturation at 6, one E8M0 power-of-two scale per block chosen by the `mse` rule
(the OCP floor exponent floor(log2 amax) - 2, or floor + 1 when that gives a strictly smaller squared
error; only considered when amax / 2^floor > 7, where the floor scale saturates).

Every step is exact in float32 for BF16 inputs (products and sums of values with at most 8+3
significant bits and power-of-two scales; the squared-error difference of a 32-block fits in the
24-bit significand), so `fake_quant` on the BF16 value of a weight gives the artifact's dequantized
weight bit for bit; `check` below compares it with a float64 evaluation.

`ste(w)`: the straight-through estimator used for quantization-aware training: the forward value is
fake_quant(bf16(w)), the gradient passes to w unchanged.
"""
import torch

_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def _mag_code(y):
    """E2M1 magnitude code 0..7 of y >= 0 with the round-to-nearest-even decision points."""
    return ((y > 0.25).to(torch.int64) + (y >= 0.75) + (y > 1.25) + (y >= 1.75)
            + (y > 2.5) + (y >= 3.5) + (y > 5.0))


def _q(y):
    grid = torch.tensor(_GRID, dtype=y.dtype, device=y.device)
    return grid[_mag_code(y)]


def _floor_exp(amax):
    """floor(log2 amax) - 2 clamped to [-127, 127]; amax 0 gives -127."""
    _, ex = torch.frexp(amax)  # amax = m 2^ex, m in [0.5, 1)
    e = torch.where(amax > 0, ex.to(torch.int64) - 1, torch.full_like(ex, -127, dtype=torch.int64))
    return torch.clamp(e - 2, -127, 127)


def block_exponents(xb):
    """xb [..., 32] -> exponent [...] (int64) of each block's scale under the `mse` rule."""
    amax = xb.abs().amax(-1)
    ef = _floor_exp(amax)
    s = torch.pow(2.0, -ef.to(xb.dtype))
    y = xb.abs() * s[..., None]
    q0 = _q(y)
    q1 = 2.0 * _q(y * 0.5)
    # err(floor + 1) - err(floor) in units of 2^(2 ef): (y - q1)^2 - (y - q0)^2
    d = ((q0 - q1) * (2.0 * y - q0 - q1)).sum(-1)
    take = (ef < 127) & (amax * s > 7.0) & (d < 0.0)
    return torch.where(take, ef + 1, ef)


def fake_quant(w):
    """w [..., K] with K % 32 == 0 -> the dequantized MXFP4 value (same dtype as w; float32 or
    float64 expected). Blocks run along the last dimension."""
    K = w.shape[-1]
    if K % 32:
        raise ValueError(f"last dimension {K} is not a multiple of 32")
    xb = w.reshape(*w.shape[:-1], K // 32, 32)
    e = block_exponents(xb)
    s = torch.pow(2.0, e.to(w.dtype))[..., None]
    return (torch.sign(xb) * _q(xb.abs() / s) * s).reshape(w.shape)


def ste(w):
    """Straight-through MXFP4 of bf16(w): forward fake_quant(bf16(w)), gradient identity."""
    with torch.no_grad():
        q = fake_quant(w.detach().to(torch.bfloat16).float()).to(w.dtype)
    return w + (q - w).detach()


def rel_err(w):
    """||Q(bf16 w) - bf16 w||^2 / ||bf16 w||^2: how far the weights sit from the MXFP4 grid."""
    b = w.detach().to(torch.bfloat16).float()
    q = fake_quant(b)
    return ((q - b).pow(2).sum() / b.pow(2).sum().clamp_min(1e-30)).item()


def check(w):
    """True when the float32 evaluation equals the float64 one on bf16(w) bit for bit."""
    b = w.detach().to(torch.bfloat16)
    return torch.equal(fake_quant(b.float()).double(), fake_quant(b.double()))
