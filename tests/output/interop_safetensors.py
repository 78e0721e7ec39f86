"""Interop checks of libquant's output files against peer libraries.

Runs tests/output/interop_gen (path given as argv[1]) into a scratch directory, then:
  (a) loads every safetensors file with the `safetensors` library (safe_open and deserialize)
      and checks names, dtypes, shapes and raw bytes against values regenerated here;
  (b) checks that safetensors.serialize of the same tensors with metadata {"format": "pt"} is
      byte-identical to our file;
  (c) checks the sharded checkpoint's index against the shards, against huggingface_hub's
      sharding rule, and against the text json.dumps(index, indent=2, sort_keys=True) + "\n"
      (what transformers writes);
  (d) checks the torch zips with zipfile and pickletools: entry names and order, stored method,
      64-byte alignment of every record's data, CRCs, record contents, and data.pkl both
      opcode by opcode and byte for byte against CPython's own pickler driven the way
      torch.save drives it (torch itself is not needed: its two globals are stood in for by
      stub modules with the same names).

Deterministic bytes, the same algorithm as interop_gen.c: byte k of the tensor with seed s is
((k * 2654435761 + s * 2654435769 + 12345) mod 2**32) >> 24, and for BOOL that value & 1. A
tensor's seed is its index in ALL_DTYPES, or 100 + its index in SHARDED. Mask embeddings hold
bf16 element i = (i * 40503 + 7) mod 2**16.

Exit status 0 when every check passes, 1 otherwise (failures are listed on stderr).
"""
import collections
import ctypes
import io
import json
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import tempfile
import types
import zipfile

import ml_dtypes
import numpy as np
import safetensors
from safetensors import TensorSpec, deserialize, safe_open, serialize

FAILURES = []
CHECKS = [0]


def check(cond, what):
    CHECKS[0] += 1
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, file=sys.stderr)


# name, safetensors dtype, shape -- keep in sync with ALL in interop_gen.c
ALL_DTYPES = [
    ("f32", "F32", [3, 5]),
    ("f16", "F16", [7]),
    ("bf16", "BF16", [2, 3, 4]),
    ("f8_e4m3", "F8_E4M3", [16, 8]),
    ("f8_e5m2", "F8_E5M2", [9]),
    ("f8_e8m0.scale", "F8_E8M0", [4, 2]),
    ("u8.blocks", "U8", [33]),
    ("i8", "I8", [5, 5]),
    ("i32", "I32", [6]),
    ("i64", "I64", [3]),
    ("f64", "F64", [2, 2]),
    ("bool", "BOOL", [10]),
    ("i16", "I16", [3]),
    ("u16", "U16", [2]),
    ("u32", "U32", [2]),
    ("u64", "U64", [2]),
    ("c64", "C64", [2]),
    ("f4.packed", "F4", [4, 6]),
    ("empty.f32", "F32", [0, 4]),
    ("empty.bf16", "BF16", [3, 0]),
    ("scalar.f32", "F32", []),
    ("scalar.i64", "I64", []),
    ("model.layers.0.mlp.experts.17.down_proj.weight", "BF16", [4, 8]),
    ('esc"q\\b\n\x01\x7f', "U8", [2]),
    ("utf8.\u00e9\u20ac\U0001F600", "U8", [3]),
]

# keep in sync with SHARDED in interop_gen.c (seeds 100 + index)
SHARDED = [
    ("model.embed_tokens.weight", "BF16", [64, 16]),
    ("model.layers.0.self_attn.q_proj.weight", "BF16", [16, 16]),
    ("model.layers.0.mlp.experts.0.gate_proj.weight_blocks", "U8", [16, 1, 16]),
    ("model.layers.0.mlp.experts.0.gate_proj.weight_scales", "U8", [16, 1]),
    ("model.layers.0.mlp.experts.1.gate_proj.weight_blocks", "U8", [16, 1, 16]),
    ("model.layers.0.mlp.experts.1.gate_proj.weight_scales", "U8", [16, 1]),
    ("model.layers.0.input_layernorm.weight", "F32", [16]),
    ("model.layers.1.self_attn.q_proj.weight", "F8_E4M3", [32, 32]),
    ("model.layers.1.self_attn.q_proj.weight_scale_inv", "F32", [1, 1]),
    ("model.norm.weight", "BF16", [16]),
    ("lm_head.weight", "BF16", [64, 16]),
]
SHARD_MAX = 1500

BITS = {"BOOL": 8, "F4": 4, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
        "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
        "C64": 64, "F64": 64, "I64": 64, "U64": 64}
# safetensors' TensorSpec takes the framework-style names
SPEC_DTYPE = {"BOOL": "bool", "F4": "float4_e2m1fn_x2", "U8": "uint8", "I8": "int8",
              "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn", "F8_E8M0": "float8_e8m0fnu",
              "I16": "int16", "U16": "uint16", "F16": "float16", "BF16": "bfloat16",
              "I32": "int32", "U32": "uint32", "F32": "float32", "C64": "complex64",
              "F64": "float64", "I64": "int64", "U64": "uint64"}
# numpy views for value checks (ml_dtypes for the types numpy lacks)
NP_DTYPE = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "F8_E5M2": ml_dtypes.float8_e5m2,
            "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E8M0": ml_dtypes.float8_e8m0fnu,
            "I16": np.int16, "U16": np.uint16, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
            "I32": np.int32, "U32": np.uint32, "F32": np.float32, "C64": np.complex64,
            "F64": np.float64, "I64": np.int64, "U64": np.uint64}


def nbytes(dtype, shape):
    n = 1
    for d in shape:
        n *= d
    return n * BITS[dtype] // 8


def gen_bytes(n, seed, is_bool):
    k = np.arange(n, dtype=np.uint64)
    x = (k * np.uint64(2654435761) + np.uint64(seed * 2654435769 + 12345)) & np.uint64(0xFFFFFFFF)
    b = (x >> np.uint64(24)).astype(np.uint8)
    if is_bool:
        b &= 1
    return b.tobytes()


def enable_np_float8():
    # safetensors' numpy backend looks the float8 types up as attributes of numpy; ml_dtypes
    # provides the same types, so expose them there for safe_open(framework="np").
    for name in ("float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu"):
        if not hasattr(np, name):
            setattr(np, name, getattr(ml_dtypes, name))


def spec_of(dtype, shape, data, keep):
    buf = ctypes.create_string_buffer(data, max(len(data), 1))
    keep.append(buf)
    spec_shape = list(shape)
    if dtype == "F4":
        spec_shape[-1] //= 2  # TensorSpec takes the packed storage shape for F4 and doubles it
    return TensorSpec(dtype=SPEC_DTYPE[dtype], shape=spec_shape, data_ptr=ctypes.addressof(buf),
                      data_len=len(data))


def check_safetensors_file(path, expected):
    """expected: {name: (dtype, shape, bytes)}"""
    label = os.path.basename(path)
    with open(path, "rb") as f:
        raw = f.read()
    # (a) deserialize: raw bytes
    got = {name: info for name, info in deserialize(raw)}
    check(set(got) == set(expected), f"{label}: tensor names {sorted(got)}")
    for name, (dtype, shape, data) in expected.items():
        info = got.get(name)
        if info is None:
            continue
        check(info["dtype"] == dtype, f"{label}:{name!r}: dtype {info['dtype']} != {dtype}")
        check(list(info["shape"]) == shape, f"{label}:{name!r}: shape {info['shape']} != {shape}")
        check(bytes(info["data"]) == data, f"{label}:{name!r}: data bytes differ")
    # (a) safe_open: metadata, dtype and shape of every slice, values where numpy can hold them
    with safe_open(path, framework="np") as f:
        check(f.metadata() == {"format": "pt"}, f"{label}: metadata {f.metadata()}")
        check(set(f.keys()) == set(expected), f"{label}: safe_open keys")
        for name, (dtype, shape, data) in expected.items():
            sl = f.get_slice(name)
            check(sl.get_dtype() == dtype, f"{label}:{name!r}: slice dtype {sl.get_dtype()}")
            check(list(sl.get_shape()) == shape, f"{label}:{name!r}: slice shape")
            if dtype == "F4":
                continue  # numpy has no packed fp4 type; bytes were compared above
            t = f.get_tensor(name)
            want = np.frombuffer(data, dtype=NP_DTYPE[dtype]).reshape(shape)
            check(t.dtype == want.dtype, f"{label}:{name!r}: numpy dtype {t.dtype}")
            check(t.shape == want.shape, f"{label}:{name!r}: numpy shape {t.shape}")
            check(t.tobytes() == want.tobytes(), f"{label}:{name!r}: numpy values differ")
    # (b) the reference serializer writes exactly our file
    keep = []
    specs = {name: spec_of(dtype, shape, data, keep)
             for name, (dtype, shape, data) in expected.items()}
    ref = bytes(serialize(specs, metadata={"format": "pt"}))
    check(ref == raw, f"{label}: differs from safetensors.serialize "
                      f"(ours {len(raw)} bytes, reference {len(ref)} bytes; first difference at "
                      f"{next((i for i, (a, b) in enumerate(zip(raw, ref)) if a != b), min(len(raw), len(ref)))})")
    n = struct.unpack("<Q", raw[:8])[0]
    check(n % 8 == 0, f"{label}: header length {n} not a multiple of 8")


def expected_set(table, seed_base, indices=None):
    out = {}
    for i, (name, dtype, shape) in enumerate(table):
        if indices is not None and i not in indices:
            continue
        out[name] = (dtype, shape, gen_bytes(nbytes(dtype, shape), seed_base + i, dtype == "BOOL"))
    return out


def hub_plan(sizes, max_size):
    """huggingface_hub split_state_dict_into_shards_factory, without shared storages."""
    shard_list, current, current_size = [], [], 0
    for i, size in enumerate(sizes):
        if size > max_size:
            shard_list.append([i])
            continue
        if current_size + size > max_size:
            shard_list.append(current)
            current, current_size = [], 0
        current.append(i)
        current_size += size
    if current:
        shard_list.append(current)
    return shard_list


def check_sharded(d):
    sizes = [nbytes(dt, sh) for _, dt, sh in SHARDED]
    plan = hub_plan(sizes, SHARD_MAX)
    n = len(plan)
    names = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    present = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    check(present == sorted(names), f"sharded: files {present} != {names}")
    ipath = os.path.join(d, "model.safetensors.index.json")
    with open(ipath, "rb") as f:
        text = f.read()
    index = json.loads(text)
    check(text.decode("utf-8") == json.dumps(index, indent=2, sort_keys=True) + "\n",
          "index: not formatted as json.dumps(indent=2, sort_keys=True) + newline")
    check(index.get("metadata") == {"total_size": sum(sizes)},
          f"index: metadata {index.get('metadata')} (want total_size {sum(sizes)})")
    want_map = {SHARDED[i][0]: names[s] for s, members in enumerate(plan) for i in members}
    check(index.get("weight_map") == want_map, "index: weight_map differs from hub's plan")
    seen = collections.Counter()
    for s, members in enumerate(plan):
        path = os.path.join(d, names[s])
        if not os.path.exists(path):
            continue
        check_safetensors_file(path, expected_set(SHARDED, 100, set(members)))
        with safe_open(path, framework="np") as f:
            for k in f.keys():
                seen[k] += 1
                check(index["weight_map"].get(k) == names[s], f"index: {k} not mapped to {names[s]}")
    check(all(seen[name] == 1 for name, _, _ in SHARDED) and len(seen) == len(SHARDED),
          "sharded: every tensor must be in exactly one shard")


# ---- torch zip ----

def torch_reference_pickle(mask_id, h):
    """data.pkl as torch.save writes it, produced by CPython's pickler: a pickler subclass
    whose persistent_id returns ('storage', torch.BFloat16Storage, '0', 'cpu', h) for the
    storage (torch/serialization.py _save), and a tensor whose __reduce_ex__ returns
    (torch._utils._rebuild_tensor_v2, (storage, 0, (h,), (1,), False, OrderedDict()))
    (torch/_tensor.py _reduce_ex_internal). Stub modules stand in for torch."""
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")

    class BFloat16Storage:
        pass

    BFloat16Storage.__module__ = "torch"
    BFloat16Storage.__qualname__ = "BFloat16Storage"

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch_mod.BFloat16Storage = BFloat16Storage
    torch_mod._utils = utils_mod
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"] = torch_mod
    sys.modules["torch._utils"] = utils_mod
    try:
        class Storage:
            pass

        storage = Storage()

        class Tensor:
            def __reduce_ex__(self, proto):
                return (_rebuild_tensor_v2,
                        (storage, 0, tuple([h]), tuple([1]), False, collections.OrderedDict()))

        class TorchPickler(pickle.Pickler):
            def persistent_id(self, obj):
                if obj is storage:
                    return ("storage", BFloat16Storage, "0", "cpu", h)
                return None

        buf = io.BytesIO()
        TorchPickler(buf, protocol=2).dump({"mask_token_id": mask_id, "embedding": Tensor()})
        return buf.getvalue()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def restricted_load(data):
    """Unpickles data.pkl without torch: only the three globals torch needs resolve."""
    rebuilt = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            allowed = {("torch._utils", "_rebuild_tensor_v2"): lambda *a: ("tensor", a),
                       ("torch", "BFloat16Storage"): "BFloat16Storage",
                       ("collections", "OrderedDict"): collections.OrderedDict}
            if (module, name) not in allowed:
                raise pickle.UnpicklingError(f"global {module}.{name} not allowed")
            return allowed[(module, name)]

        def persistent_load(self, pid):
            rebuilt["pid"] = pid
            return ("storage", pid)

    return Unpickler(io.BytesIO(data)).load(), rebuilt


def check_torch_zip(path, archive, mask_id, h):
    label = os.path.basename(path)
    with open(path, "rb") as f:
        raw = f.read()
    check(raw[:4] == b"PK\x03\x04", f"{label}: torch.load's magic check wants PK\\3\\4 first")
    zf = zipfile.ZipFile(path)
    names = [i.filename for i in zf.infolist()]
    want_names = [f"{archive}/{n}" for n in ("data.pkl", ".format_version", ".storage_alignment",
                                             "byteorder", "data/0", "version",
                                             ".data/serialization_id")]
    check(names == want_names, f"{label}: entries {names}")
    check(zf.testzip() is None, f"{label}: CRC check failed")
    for info in zf.infolist():
        check(info.compress_type == zipfile.ZIP_STORED, f"{label}:{info.filename}: not stored")
        check(info.flag_bits & 0x1 == 0, f"{label}:{info.filename}: encrypted")
        check(info.flag_bits == 0x0808, f"{label}:{info.filename}: flags {info.flag_bits:#x}")
        check(info.date_time == (1980, 0, 0, 0, 0, 0),
              f"{label}:{info.filename}: date_time {info.date_time} (torch's miniz writes 0)")
        # data offset from the local header (torch's getRecordOffset does the same)
        lh = raw[info.header_offset:info.header_offset + 30]
        sig, _, _, _, _, _, _, _, _, nlen, xlen = struct.unpack("<IHHHHHIIIHH", lh)
        check(sig == 0x04034B50, f"{label}:{info.filename}: local header signature")
        off = info.header_offset + 30 + nlen + xlen
        check(off % 64 == 0, f"{label}:{info.filename}: data at {off}, not 64-byte aligned")
        extra = raw[info.header_offset + 30 + nlen:off]
        check(extra[:2] == b"FB" and struct.unpack("<H", extra[2:4])[0] == xlen - 4 and
              set(extra[4:]) <= {ord("Z")}, f"{label}:{info.filename}: padding extra field")
        data = raw[off:off + info.file_size]
        check(data == zf.read(info), f"{label}:{info.filename}: local data differs")
        desc = raw[off + info.file_size:off + info.file_size + 16]
        check(desc == struct.pack("<IIII", 0x08074B50, info.CRC, info.file_size, info.file_size),
              f"{label}:{info.filename}: data descriptor")
    rd = {n.split("/", 1)[1]: zf.read(n) for n in names}
    check(rd.get(".format_version") == b"1", f"{label}: .format_version")
    check(rd.get(".storage_alignment") == b"64", f"{label}: .storage_alignment")
    check(rd.get("byteorder") == b"little", f"{label}: byteorder")
    check(rd.get("version") == b"3\n", f"{label}: version")
    sid = rd.get(".data/serialization_id", b"")
    check(len(sid) == 40 and sid.isdigit(), f"{label}: serialization_id {sid!r}")
    emb = np.frombuffer(rd.get("data/0", b""), dtype="<u2")
    want = ((np.arange(h, dtype=np.uint64) * 40503 + 7) & 0xFFFF).astype("<u2")
    check(emb.shape == (h,) and np.array_equal(emb, want), f"{label}: data/0 bytes")
    # end of file: zip64 end record, zip64 locator, end record, as miniz writes with zip64 on
    check(raw[-22:-18] == b"PK\x05\x06" and raw[-42:-38] == b"PK\x06\x07" and
          raw[-98:-94] == b"PK\x06\x06", f"{label}: end records")

    pkl = rd.get("data.pkl", b"")
    ops = [op.name for op, _, _ in pickletools.genops(pkl)]
    out = io.StringIO()
    pickletools.dis(pkl, out=out)  # raises on inconsistent memo or stack
    want_ops = (["PROTO", "EMPTY_DICT", "BINPUT", "MARK", "BINUNICODE", "BINPUT", None,
                 "BINUNICODE", "BINPUT", "GLOBAL", "BINPUT", "MARK", "MARK", "BINUNICODE",
                 "BINPUT", "GLOBAL", "BINPUT", "BINUNICODE", "BINPUT", "BINUNICODE", "BINPUT",
                 None, "TUPLE", "BINPUT", "BINPERSID", "BININT1", None, "TUPLE1", "BINPUT",
                 "BININT1", "TUPLE1", "BINPUT", "NEWFALSE", "GLOBAL", "BINPUT", "EMPTY_TUPLE",
                 "REDUCE", "BINPUT", "TUPLE", "BINPUT", "REDUCE", "BINPUT", "SETITEMS", "STOP"])
    int_ops = {"BININT1", "BININT2", "BININT", "LONG1"}
    check(len(ops) == len(want_ops) and
          all(w == o or (w is None and o in int_ops) for w, o in zip(want_ops, ops)),
          f"{label}: pickle opcodes {ops}")
    ref = torch_reference_pickle(mask_id, h)
    check(pkl == ref, f"{label}: data.pkl differs from CPython's pickle of the torch objects\n"
                      f"ours: {pkl!r}\nref:  {ref!r}")
    obj, seen = restricted_load(pkl)
    check(isinstance(obj, dict) and list(obj) == ["mask_token_id", "embedding"],
          f"{label}: unpickled keys")
    check(obj.get("mask_token_id") == mask_id, f"{label}: mask_token_id {obj.get('mask_token_id')}")
    check(seen.get("pid") == ("storage", "BFloat16Storage", "0", "cpu", h),
          f"{label}: persistent id {seen.get('pid')}")
    t = obj.get("embedding")
    check(isinstance(t, tuple) and t[0] == "tensor" and t[1][1:5] == (0, (h,), (1,), False) and
          t[1][5] == collections.OrderedDict(), f"{label}: rebuild arguments {t}")


def main():
    if len(sys.argv) != 2:
        print("usage: interop_safetensors.py <interop_gen executable>", file=sys.stderr)
        return 2
    enable_np_float8()
    print(f"safetensors {safetensors.__version__}, numpy {np.__version__}, "
          f"ml_dtypes {ml_dtypes.__version__}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="lq-interop-") as d:
        r = subprocess.run([sys.argv[1], d], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout + r.stderr, file=sys.stderr)
            check(False, f"interop_gen exited {r.returncode}")
            return 1
        check_safetensors_file(os.path.join(d, "all_dtypes.safetensors"),
                               expected_set(ALL_DTYPES, 0))
        check_sharded(os.path.join(d, "sharded"))
        single = os.listdir(os.path.join(d, "single"))
        check(single == ["model.safetensors"], f"single: files {single}")
        check_safetensors_file(os.path.join(d, "single", "model.safetensors"),
                               expected_set(SHARDED, 100, {0, 1, 2}))
        check_torch_zip(os.path.join(d, "mask_embedding.pt"), "mask_embedding", 151669, 64)
        check_torch_zip(os.path.join(d, "mask_big.pt"), "mask_big", 2 ** 40, 70000)
        check_torch_zip(os.path.join(d, "mask_neg.pt"), "mask_neg", -5, 300)
    print(f"interop_safetensors: {CHECKS[0]} checks, {len(FAILURES)} failed", file=sys.stderr)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
