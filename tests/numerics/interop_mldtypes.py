"""Checks libquant's number formats against ml_dtypes (the peer library that JAX and PyTorch
tooling use for these formats).

Usage: python interop_mldtypes.py PATH/TO/interop_gen

Runs interop_gen into a temporary directory, then compares:
  * decoding: float4_e2m1fn (16 codes), float8_e8m0fnu (256), float8_e4m3fn, float8_e5m2
    (256 each), bfloat16 and float16 (65536 each) -> bit-identical float32, NaN included;
  * encoding of the >= 1e6 inputs in enc_in.f32 (random patterns of every class, every
    midpoint between adjacent codes and its neighbours, out-of-range values) with astype:
    e4m3fn (non-saturating), e5m2, bfloat16, float16 -> identical bytes;
  * MXFP4: the scaled values x * 2^-e of >= 1e6 elements per scale mode encode to our codes
    with astype(float4_e2m1fn), and value(code) * value(scale) in float32 equals our
    dequantized float bit for bit (also for random codes under every scale byte 0..254).
Exclusions, stated precisely:
  * float16 encoding of NaN inputs: numpy keeps payload bits, we return the quiet NaN 0x7E00;
    both are NaN with the input's sign, which is what is compared there.
  * MXFP4 never encodes NaN or inf (the codec rejects them), so ml_dtypes' e2m1 handling of
    those inputs (NaN -> 0x8/0x0, inf -> saturate) is not exercised.
Everything else must match exactly. Exits 1 on any mismatch, 77 if ml_dtypes is missing."""

import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import ml_dtypes
except ImportError as exc:  # pragma: no cover - environment problem, not a test failure
    print(f"interop_mldtypes: skipped ({exc})")
    sys.exit(77)

FAILED = []


def report(name, mismatches, total):
    status = "ok" if mismatches == 0 else "MISMATCH"
    print(f"{name:<44} {total:>9} compared  {mismatches:>7} mismatches  {status}")
    if mismatches:
        FAILED.append(name)


def bits32(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def same_f32(ours, theirs):
    """Bitwise equality (NaN payloads and the sign of zero included)."""
    return bits32(ours) == bits32(theirs)


def load(d, name, dtype):
    return np.fromfile(os.path.join(d, name), dtype=dtype)


def check_decoders(d):
    codes8 = np.arange(256, dtype=np.uint8)
    codes16 = np.arange(65536, dtype=np.uint16)
    e2m1 = np.arange(16, dtype=np.uint8).view(ml_dtypes.float4_e2m1fn).astype(np.float32)
    ours = load(d, "dec_e2m1.f32", np.float32)
    report("decode float4_e2m1fn (codes 0..15)", int((~same_f32(ours, e2m1)).sum()), 16)

    theirs = codes8.view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    ours = load(d, "dec_e8m0.f32", np.float32)
    report("decode float8_e8m0fnu (0..254, 255 = NaN)", int((~same_f32(ours, theirs)).sum()), 256)
    if not np.isnan(ours[255]):
        report("decode float8_e8m0fnu 255 is NaN", 1, 1)

    for fmt, dt in (("e4m3", ml_dtypes.float8_e4m3fn), ("e5m2", ml_dtypes.float8_e5m2)):
        theirs = codes8.view(dt).astype(np.float32)
        ours = load(d, f"dec_{fmt}.f32", np.float32)
        report(f"decode {np.dtype(dt).name}", int((~same_f32(ours, theirs)).sum()), 256)

    theirs = codes16.view(ml_dtypes.bfloat16).astype(np.float32)
    ours = load(d, "dec_bf16.f32", np.float32)
    report("decode bfloat16", int((~same_f32(ours, theirs)).sum()), 65536)

    theirs = codes16.view(np.float16).astype(np.float32)
    ours = load(d, "dec_f16.f32", np.float32)
    report("decode float16 (numpy)", int((~same_f32(ours, theirs)).sum()), 65536)


def check_encoders(d):
    x = load(d, "enc_in.f32", np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        for fmt, dt in (("e4m3", ml_dtypes.float8_e4m3fn), ("e5m2", ml_dtypes.float8_e5m2)):
            ours = load(d, f"enc_{fmt}.u8", np.uint8)
            theirs = x.astype(dt).view(np.uint8)
            bad = ours != theirs
            report(f"encode f32 -> {np.dtype(dt).name}", int(bad.sum()), x.size)
            show(x, ours, theirs, bad)
        ours = load(d, "enc_bf16.u16", np.uint16)
        theirs = x.astype(ml_dtypes.bfloat16).view(np.uint16)
        bad = ours != theirs
        report("encode f32 -> bfloat16", int(bad.sum()), x.size)
        show(x, ours, theirs, bad)
        ours = load(d, "enc_f16.u16", np.uint16)
        theirs = x.astype(np.float16).view(np.uint16)
        nan_in = np.isnan(x)
        bad = (ours != theirs) & ~nan_in
        report("encode f32 -> float16 (non-NaN inputs)", int(bad.sum()), int((~nan_in).sum()))
        show(x, ours, theirs, bad)
        o16 = ours[nan_in].view(np.float16)
        t16 = theirs[nan_in].view(np.float16)
        bad_nan = ~(np.isnan(o16) & np.isnan(t16) & (np.signbit(o16) == np.signbit(t16)))
        report("encode f32 -> float16 (NaN inputs: NaN, same sign)", int(bad_nan.sum()), int(nan_in.sum()))
    print(f"  encoder inputs: {x.size} values, {int(np.isnan(x).sum())} NaN, "
          f"{int(np.isinf(x).sum())} inf, {int(((x != 0) & (np.abs(x) < 2.0**-126)).sum())} subnormal")


def show(x, ours, theirs, bad):
    for i in np.flatnonzero(bad)[:5]:
        print(f"    input {float(x[i])!r} (0x{int(bits32(x[i:i+1])[0]):08X}): ours 0x{int(ours[i]):X}, "
              f"ml_dtypes 0x{int(theirs[i]):X}")


def unpack(packed):
    codes = np.empty(packed.size * 2, dtype=np.uint8)
    codes[0::2] = packed & 0x0F
    codes[1::2] = packed >> 4
    return codes


def mx_decode(packed, scales):
    codes = unpack(packed)
    vals = codes.view(ml_dtypes.float4_e2m1fn).astype(np.float32)
    sc = scales.view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    with np.errstate(over="ignore"):
        return vals * np.repeat(sc, 32)


def check_mxfp4(d):
    for mode in ("floor", "rceil", "even", "mse"):
        y = load(d, f"mx_{mode}_y.f32", np.float32)
        packed = load(d, f"mx_{mode}_packed.u8", np.uint8)
        scales = load(d, f"mx_{mode}_scales.u8", np.uint8)
        deq = load(d, f"mx_{mode}_deq.f32", np.float32)
        codes = unpack(packed)
        theirs = y.astype(ml_dtypes.float4_e2m1fn).view(np.uint8)
        bad = codes != theirs
        report(f"MXFP4 {mode}: x*2^-e -> float4_e2m1fn codes", int(bad.sum()), y.size)
        show(y, codes, theirs, bad)
        ties = np.isin(np.abs(y), np.float32([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]))
        print(f"  {mode}: {int(ties.sum())} elements exactly at a decision point, "
              f"{int((np.abs(y) > 6).sum())} above 6, scales {int(scales.min())}..{int(scales.max())}")
        if (scales == 255).any():
            report(f"MXFP4 {mode}: no scale byte 0xFF", int((scales == 255).sum()), scales.size)
        theirs_v = mx_decode(packed, scales)
        report(f"MXFP4 {mode}: value(code) * value(scale) == ours",
               int((~same_f32(deq, theirs_v)).sum()), deq.size)
    packed = load(d, "mxr_packed.u8", np.uint8)
    scales = load(d, "mxr_scales.u8", np.uint8)
    deq = load(d, "mxr_deq.f32", np.float32)
    theirs_v = mx_decode(packed, scales)
    report("MXFP4 random codes, scales 0..254: decode", int((~same_f32(deq, theirs_v)).sum()), deq.size)


def main():
    if len(sys.argv) != 2:
        print("usage: interop_mldtypes.py PATH/TO/interop_gen", file=sys.stderr)
        return 2
    print(f"ml_dtypes {ml_dtypes.__version__}, numpy {np.__version__}")
    with tempfile.TemporaryDirectory(prefix="mimo-interop-") as d:
        subprocess.run([sys.argv[1], d], check=True)
        check_decoders(d)
        check_encoders(d)
        check_mxfp4(d)
    if FAILED:
        print(f"interop_mldtypes: {len(FAILED)} check(s) failed: {', '.join(FAILED)}")
        return 1
    print("interop_mldtypes: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
