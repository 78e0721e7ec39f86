"""Our strict safetensors reader against the reference implementation (the `safetensors`
Python package, Rust core).

1. Files written by the reference writer (every dtype it supports, scalars, empty tensors,
   3000 tensors, metadata) must open in our reader with the same names, dtypes, shapes and
   bytes (compared by FNV-1a hash).
2. Over the malformed corpus (gen_corpus), every file our reader accepts must be accepted by
   the reference with the same contents: we may only be stricter, never looser. The files
   only the reference accepts are listed (our deliberate extra rules).

usage: interop_st.py ST_DUMP GEN_CORPUS
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors import SafetensorError, TensorSpec, deserialize, serialize

FNV_OFFSET, FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def fnv1a(data):
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


# Element bits by header dtype (safetensors README / tensor.rs, as in mxfp4_formats.md 3.2).
BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
        "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
        "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64, "F4": 4}
TORCH_NAME = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "F8_E5M2": "float8_e5m2",
              "F8_E4M3": "float8_e4m3fn", "F8_E8M0": "float8_e8m0fnu",
              "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz",
              "I16": "int16", "U16": "uint16", "F16": "float16", "BF16": "bfloat16",
              "I32": "int32", "U32": "uint32", "F32": "float32", "C64": "complex64",
              "F64": "float64", "I64": "int64", "U64": "uint64", "F4": "float4_e2m1fn_x2"}


def peer_file(path, tensors, metadata):
    """tensors: list of (name, header dtype, logical shape). Random bytes, written by the
    reference serializer."""
    rng = np.random.default_rng(12345)
    specs, keep = {}, []
    for name, dt, shape in tensors:
        numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
        nbytes = numel * BITS[dt] // 8
        buf = np.frombuffer(rng.bytes(max(nbytes, 1)), dtype=np.uint8).copy()
        keep.append(buf)
        # F4: the spec takes the storage shape and doubles the last dimension itself.
        sshape = list(shape[:-1]) + [shape[-1] // 2] if dt == "F4" else list(shape)
        specs[name] = TensorSpec(dtype=TORCH_NAME[dt], shape=sshape, data_ptr=buf.ctypes.data,
                                 data_len=nbytes)
    data = serialize(specs, metadata=metadata)
    with open(path, "wb") as f:
        f.write(bytes(data))


def reference_view(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        items = deserialize(raw)
    except (SafetensorError, Exception) as e:  # the binding raises several types
        return None, str(e)
    return {name: (v["dtype"], list(v["shape"]), fnv1a(v["data"])) for name, v in items}, None


def header_metadata(path):
    """__metadata__ as Python's own json module reads it from the header."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]).get("__metadata__", {})


def ours(st_dump, paths):
    out = subprocess.run([st_dump] + paths, check=True, capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        o = json.loads(line)
        res[o["file"]] = o
    assert len(res) == len(paths), "st_dump printed %d lines for %d files" % (len(res), len(paths))
    return res


def as_view(o):
    return {t["name"]: (t["dtype"], [int(d) for d in t["shape"]], t["fnv"]) for t in o["tensors"]}


def main():
    st_dump, gen_corpus = sys.argv[1], sys.argv[2]
    failures = []
    with tempfile.TemporaryDirectory(prefix="lqinterop-") as tmp:
        peer = []
        p = os.path.join(tmp, "peer-mixed.safetensors")
        tensors = [("t.%s" % dt.lower(), dt, [3, 4]) for dt in BITS]
        tensors += [("scalar", "F32", []), ("empty", "BF16", [0, 7]), ("flag", "BOOL", [5]),
                    ("odd.u8", "U8", [7]), ("f4.wide", "F4", [3, 8])]
        peer_file(p, tensors, {"format": "pt", "note": "quote \" and \u00e9"})
        peer.append(p)
        p = os.path.join(tmp, "peer-many.safetensors")
        peer_file(p, [("model.layers.%d.w" % i, ["BF16", "F8_E4M3", "U8", "F32"][i % 4],
                       [1 + i % 3, 2]) for i in range(3000)], None)
        peer.append(p)
        p = os.path.join(tmp, "peer-empty.safetensors")
        peer_file(p, [], {"format": "pt"})
        peer.append(p)

        mine = ours(st_dump, peer)
        for p in peer:
            ref, why = reference_view(p)
            assert ref is not None, "the reference rejects its own file %s: %s" % (p, why)
            o = mine[p]
            if not o["ok"]:
                failures.append("%s: we reject a reference-written file (%s)" % (p, o["rule"]))
                continue
            if as_view(o) != ref:
                failures.append("%s: contents differ from the reference" % p)
            ref_meta = header_metadata(p)
            if o["metadata"] != ref_meta:
                failures.append("%s: metadata %r vs %r" % (p, o["metadata"], ref_meta))
            print("peer file %s: %d tensors agree" % (os.path.basename(p), len(ref)))

        cdir = os.path.join(tmp, "corpus")
        os.mkdir(cdir)
        subprocess.run([gen_corpus, cdir], check=True)
        files = sorted(os.path.join(cdir, f) for f in os.listdir(cdir))
        mine = ours(st_dump, files)
        both_ok = both_reject = stricter = 0
        for p in files:
            ref, why = reference_view(p)
            o = mine[p]
            name = os.path.basename(p)
            if o["ok"]:
                if ref is None:
                    failures.append("%s: we accept, the reference rejects (%s)" % (name, why))
                elif as_view(o) != ref:
                    failures.append("%s: contents differ from the reference" % name)
                else:
                    both_ok += 1
            elif ref is None:
                both_reject += 1
            else:
                stricter += 1
                print("only the reference accepts %s (our rule %s)" % (name, o["rule"]))
        print("corpus: %d files, both accept %d, both reject %d, only the reference accepts %d"
              % (len(files), both_ok, both_reject, stricter))
        if both_ok < 10:
            failures.append("too few valid corpus files (%d)" % both_ok)

    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
