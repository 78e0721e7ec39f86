"""Golden outputs of the tiny fixture's DFlash drafter and of a greedy DFlash decode, from a PyTorch
drafter written from the DFlash description (shared/reference/dflash.md sections 1 and 3, mimo_arch.md
5.2) on top of Hugging Face transformers' MiMoV2FlashForCausalLM in float32 as the target.

usage: dflash_oracle.py MKFIXTURE OUTDIR [--seed N] [--drafter-rope-base rope_theta|backbone_rotary_base]
                        [--bf16-golden DIR]

The target and the drafter are those of `mimo-mkfixture --preset tiny --variant bf16` (the drafter is
written into DIR/dflash: config.json, dflash_draft_model.safetensors, mask_embedding.pt).

Drafter forward (float32 throughout; weights BF16 widened exactly):
  taps      the target's residual stream after decoder layers target_layer_ids ([0, 5, 11]); for the
            last layer the residual before the final norm (a forward hook on every tapped layer; the
            non-last taps are checked equal to transformers' hidden_states[l + 1] and the last one's
            final norm to hidden_states[-1]); concatenated per position in the order of the ids
  context   ctx = RMSNorm(fc(taps); hidden_norm), one row per committed position
  block     [anchor, MASK x (B-1)] at positions p..p+B-1: the anchor embedded with the target's
            embed_tokens, every MASK row replaced by mask_embedding.pt's vector
  layer     Qwen3-style pre-norm: x = RMSNorm(h; input_layernorm); q/k/v projections; per-head
            q_norm / k_norm RMSNorm over head_dim; NeoX rotate-half RoPE on the first
            head_dim * partial_rotary_factor dims (theta = rope_theta by default); v *= value scale;
            the context rows get k_proj/k_norm/RoPE at their own positions and v_proj * value scale.
            Keys = context keys then block keys. A query at position q sees context position c iff
            c < p and q - c < W (W = swa_window_size, every layer, use_swa) and all B block keys
            (non-causal). Scores scaled by head_dim^-0.5, GQA (query head h reads KV head
            h // (heads / kv_heads)), one sink logit per head in the softmax denominator only.
            h += o_proj(attn); h += down(silu(gate(y)) * up(y)) with y = RMSNorm(h; post_attention_layernorm)
  logits    RMSNorm(h; norm) then the TARGET lm_head; row j (1..B-1) predicts the token at p + j.
RoPE angles are computed in float64 from integer positions and rounded to float32 cos/sin.

Decode loop (dflash.md section 3, greedy): prefill the prompt with a KV cache; x_N = argmax of the last
row. Each step: anchor x_p (p = committed tokens before it); draft 7 tokens from the features of
positions < p; the target verifies [x_p, d_1..d_7] at positions p..p+7 in ONE forward on top of its
KV cache (transformers' DynamicCache holding every position, so the sliding-window layers see the
window through their mask); y = argmax per row; a = number of leading d_j equal to y_(j-1); commit
d_1..d_a and the bonus y_a; the target cache is truncated to p + a + 1 entries (x_p and the accepted
drafts; the bonus is not cached), the features of positions p..p+a join the drafter's context, and
the drafter keeps no block K/V. p <- p + a + 1. The block size stays 8 to the end; tokens past the
budget are cut. Every verify is also recomputed without a cache (teacher-forced full forward) and
must give the same argmax rows; the largest logit difference is recorded.

Writes to OUTDIR (zstd level 19, raw little-endian):
  case_ids.i32          101 random ids (the sequence of the single-forward cases)
  case_taps.f32         [100, 3, 256] tap features of positions 0..99 (order of target_layer_ids)
  case_ctx.f32          [100, 256] fc + hidden_norm context features of positions 0..99
  case_logits.f32       [5, 7, vocab] draft logits for p in (1, 17, 64, 65, 100): anchor case_ids[p],
                        context = positions < p; row j-1 predicts position p + j
  trace.i32             [steps, 10]: p, d_1..d_7, a, bonus per decode step
  trace_forced.i32      the same for a decode whose drafts are forced (the plain greedy tokens with the one
                        at index step % 8 corrupted), so that a takes every value 0..7: the fixture's
                        untrained drafter is never accepted, and this trace exercises the rollback
  dflash_tokens.i32     the 48 tokens the DFlash decode emitted after the prompt
  greedy_tokens.i32     the 48 plain greedy tokens (transformers generate, KV cache) after the prompt
  golden.json           versions, commands, sha256 of the files read, drafter settings, statistics
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
import zstandard
from transformers import MiMoV2FlashForCausalLM
from transformers.cache_utils import DynamicCache, DynamicLayer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import mimo_hub  # noqa: E402  (the hub dialect -> transformers' port, shared with the trainers)

SEQ_SEED = 20261124  # golden_tiny.py's prompt generator: the first 48 ids equal tiny-bf16's prompt
SEQ_LEN = 101
CASE_P = (1, 17, 64, 65, 100)
PROMPT_LEN = 40
NEW_TOKENS = 48


# ---------------------------------------------------------------------------------------------
# Files.

def read_safetensors(path):
    """{name: float32 tensor} for BF16/F32 tensors, read from the header and raw data."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        shape = tuple(info["shape"])
        count = math.prod(shape)
        if info["dtype"] == "BF16":
            if b - a != 2 * count:
                raise ValueError(f"{path}: {name}: size")
            u = np.frombuffer(raw, "<u2", count, 8 + n + a)
            arr = (u.astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] == "F32":
            if b - a != 4 * count:
                raise ValueError(f"{path}: {name}: size")
            arr = np.frombuffer(raw, "<f4", count, 8 + n + a)
        else:
            raise ValueError(f"{path}: {name}: dtype {info['dtype']} not expected in the drafter")
        out[name] = torch.from_numpy(arr.reshape(shape).copy())
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_zst(path, arr):
    data = np.ascontiguousarray(arr).tobytes()
    with open(path + ".zst", "wb") as f:
        f.write(zstandard.ZstdCompressor(level=19, write_content_size=True).compress(data))


# ---------------------------------------------------------------------------------------------
# Target with tap capture.

class Target:
    def __init__(self, model, taps):
        self.model = model
        self.taps = list(taps)
        self.nl = model.config.num_hidden_layers
        self._cap = {}
        for l in self.taps:
            model.model.layers[l].register_forward_hook(self._hook(l))

    def _hook(self, l):
        def f(_mod, _inp, out):
            self._cap[l] = (out[0] if isinstance(out, tuple) else out).detach()
        return f

    @torch.no_grad()
    def forward(self, ids, cache=None):
        """ids: list of ints appended after the cache's content. Returns logits [T, V], taps [T, n, H]."""
        self._cap = {}
        x = torch.tensor([ids], dtype=torch.long)
        o = self.model(x, past_key_values=cache, use_cache=cache is not None, output_hidden_states=True)
        taps = torch.stack([self._cap[l][0] for l in self.taps], dim=1)
        hs = o.hidden_states
        for i, l in enumerate(self.taps):
            if l + 1 < self.nl:
                if not torch.equal(taps[:, i], hs[l + 1][0]):
                    raise RuntimeError(f"tap {l}: hook output differs from hidden_states[{l + 1}]")
            else:  # the last layer: hidden_states[-1] is after the final norm, the tap before it
                normed = self.model.model.norm(taps[:, i])
                if not torch.allclose(normed, hs[-1][0], rtol=0, atol=1e-6):
                    raise RuntimeError("last tap: final norm of the tap differs from hidden_states[-1]")
                if torch.allclose(taps[:, i], hs[-1][0], rtol=0, atol=1e-3):
                    raise RuntimeError("last tap equals the post-norm state")
        return o.logits[0].float(), taps


def truncate_cache(cache, n):
    for layer in cache.layers:
        if type(layer) is not DynamicLayer:
            raise RuntimeError(f"cache layer {type(layer).__name__}: truncation needs every position kept")
        layer.keys = layer.keys[..., :n, :]
        layer.values = layer.values[..., :n, :]
    if cache.get_seq_length() != n:
        raise RuntimeError("cache truncation failed")


# ---------------------------------------------------------------------------------------------
# Drafter.

def rmsnorm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


class Drafter:
    def __init__(self, ddir, target_model, rope_base_key):
        cfg = json.load(open(os.path.join(ddir, "config.json")))
        dc = cfg["dflash_config"]
        self.cfg = cfg
        self.H = cfg["hidden_size"]
        self.nh = cfg["num_attention_heads"]
        self.nkv = cfg["num_key_value_heads"]
        self.d = cfg["head_dim"]
        if cfg.get("v_head_dim", self.d) != self.d:
            raise ValueError("drafter v_head_dim != head_dim")
        self.L = cfg["num_hidden_layers"]
        self.eps = cfg["rms_norm_eps"]
        self.B = dc.get("block_size", cfg.get("block_size"))
        self.taps = dc["target_layer_ids"]
        self.mask_id = dc["mask_token_id"]
        self.vscale = dc.get("attention_value_scale", 1.0)
        self.use_sink = dc.get("attention_sink_bias", cfg.get("add_swa_attention_sink_bias", False))
        if "layer_types" in cfg or cfg.get("is_causal") or dc.get("causal"):
            raise ValueError("this oracle implements the non-causal all-SWA (use_swa, no layer_types) drafter only")
        if not dc.get("use_swa"):
            raise ValueError("use_swa is not set")
        self.W = dc.get("swa_window_size", cfg.get("sliding_window"))
        self.rot = int(self.d * cfg.get("partial_rotary_factor", 1.0))
        self.rope_base_key = rope_base_key
        self.theta = float(dc[rope_base_key] if rope_base_key == "backbone_rotary_base" else cfg["rope_theta"])
        if cfg.get("hidden_act", "silu") != "silu" or cfg.get("attention_bias"):
            raise ValueError("drafter: only silu, no attention bias")
        files = sorted(f for f in os.listdir(ddir) if f.endswith(".safetensors"))
        w = {}
        for f in files:
            w.update(read_safetensors(os.path.join(ddir, f)))
        self.w = w
        self.files = {f: sha256_file(os.path.join(ddir, f)) for f in files + ["config.json", "mask_embedding.pt"]}
        nt = len(self.taps)
        tH = target_model.config.hidden_size
        want = {"fc.weight": (self.H, nt * tH), "hidden_norm.weight": (self.H,), "norm.weight": (self.H,)}
        for i in range(self.L):
            p = f"layers.{i}."
            want.update({p + "input_layernorm.weight": (self.H,), p + "post_attention_layernorm.weight": (self.H,),
                         p + "self_attn.q_proj.weight": (self.nh * self.d, self.H),
                         p + "self_attn.k_proj.weight": (self.nkv * self.d, self.H),
                         p + "self_attn.v_proj.weight": (self.nkv * self.d, self.H),
                         p + "self_attn.o_proj.weight": (self.H, self.nh * self.d),
                         p + "self_attn.q_norm.weight": (self.d,), p + "self_attn.k_norm.weight": (self.d,),
                         p + "mlp.gate_proj.weight": (cfg["intermediate_size"], self.H),
                         p + "mlp.up_proj.weight": (cfg["intermediate_size"], self.H),
                         p + "mlp.down_proj.weight": (self.H, cfg["intermediate_size"])})
            if self.use_sink:
                want[p + "self_attn.attention_sink_bias"] = (self.nh,)
        if set(want) != set(w):
            raise ValueError(f"drafter tensors: missing {sorted(set(want) - set(w))}, extra {sorted(set(w) - set(want))}")
        for k, s in want.items():
            if tuple(w[k].shape) != s:
                raise ValueError(f"drafter {k}: shape {tuple(w[k].shape)}, expected {s}")
        me = torch.load(os.path.join(ddir, "mask_embedding.pt"), map_location="cpu", weights_only=True)
        if int(me["mask_token_id"]) != self.mask_id:
            raise ValueError(f"mask_embedding.pt id {me['mask_token_id']} != config {self.mask_id}")
        self.mask_emb = me["embedding"].float().reshape(-1)
        if self.mask_emb.shape[0] != self.H or self.mask_id >= target_model.config.vocab_size:
            raise ValueError("mask embedding length or id")
        self.embed = target_model.model.embed_tokens.weight.detach()
        self.lm_head = target_model.lm_head.weight.detach()

    def rope(self, x, pos):
        """x [T, heads, d]; NeoX rotate-half on the first self.rot dims."""
        half = self.rot // 2
        inv = self.theta ** (-torch.arange(0, self.rot, 2, dtype=torch.float64) / self.rot)
        ang = pos.to(torch.float64)[:, None] * inv[None, :]
        cos = torch.cat([ang.cos(), ang.cos()], -1).float()[:, None, :]
        sin = torch.cat([ang.sin(), ang.sin()], -1).float()[:, None, :]
        xr, xp = x[..., :self.rot], x[..., self.rot:]
        rh = torch.cat([-xr[..., half:], xr[..., :half]], -1)
        return torch.cat([xr * cos + rh * sin, xp], -1)

    def context(self, taps):
        """taps [n, len(ids), Ht] -> ctx [n, H]."""
        x = taps.reshape(taps.shape[0], -1)
        return rmsnorm(x @ self.w["fc.weight"].T, self.w["hidden_norm.weight"], self.eps)

    @torch.no_grad()
    def draft_logits(self, ctx, anchor, p):
        """ctx [>=p, H] context features of positions 0..; returns logits [B-1, V] for positions p+1..p+B-1."""
        B, d, nh, nkv = self.B, self.d, self.nh, self.nkv
        ctx = ctx[:p]
        pos_c = torch.arange(p)
        pos_b = torch.arange(p, p + B)
        h = torch.empty(B, self.H)
        h[0] = self.embed[anchor]
        h[1:] = self.mask_emb  # MASK rows: mask_embedding.pt replaces embed_tokens[mask_token_id]
        # visibility [B, p + B]: context c < p (all here) and q - c < W; every block key
        vis_c = (pos_b[:, None] - pos_c[None, :]) < self.W
        vis = torch.cat([vis_c, torch.ones(B, B, dtype=torch.bool)], 1)
        bias = torch.zeros(B, p + B).masked_fill(~vis, float("-inf"))
        g = nh // nkv
        for i in range(self.L):
            pre = f"layers.{i}."
            w = lambda n: self.w[pre + n]
            x = rmsnorm(h, w("input_layernorm.weight"), self.eps)
            q = rmsnorm((x @ w("self_attn.q_proj.weight").T).view(B, nh, d), w("self_attn.q_norm.weight"), self.eps)
            kb = rmsnorm((x @ w("self_attn.k_proj.weight").T).view(B, nkv, d), w("self_attn.k_norm.weight"), self.eps)
            vb = (x @ w("self_attn.v_proj.weight").T).view(B, nkv, d) * self.vscale
            kc = rmsnorm((ctx @ w("self_attn.k_proj.weight").T).view(p, nkv, d), w("self_attn.k_norm.weight"), self.eps)
            vc = (ctx @ w("self_attn.v_proj.weight").T).view(p, nkv, d) * self.vscale
            q = self.rope(q, pos_b)
            k = torch.cat([self.rope(kc, pos_c), self.rope(kb, pos_b)], 0)  # [p+B, nkv, d]
            v = torch.cat([vc, vb], 0)
            k = k.repeat_interleave(g, dim=1)  # query head j reads KV head j // g
            v = v.repeat_interleave(g, dim=1)
            s = torch.einsum("qhd,khd->hqk", q, k) * d ** -0.5 + bias[None]
            if self.use_sink:
                sink = w("self_attn.attention_sink_bias")[:, None, None].expand(nh, B, 1)
                s = torch.cat([s, sink], -1)
            prob = torch.softmax(s, -1)[..., :p + B]
            o = torch.einsum("hqk,khd->qhd", prob, v).reshape(B, nh * d)
            h = h + o @ w("self_attn.o_proj.weight").T
            y = rmsnorm(h, w("post_attention_layernorm.weight"), self.eps)
            h = h + (F.silu(y @ w("mlp.gate_proj.weight").T) * (y @ w("mlp.up_proj.weight").T)) @ w("mlp.down_proj.weight").T
        out = rmsnorm(h, self.w["norm.weight"], self.eps)
        return (out @ self.lm_head.T)[1:]


# ---------------------------------------------------------------------------------------------
# Decode.

def dflash_decode(tgt, dr, prompt, n_new, truth=None):
    """Greedy DFlash decode. With `truth` (prompt + the plain greedy continuation, long enough), the drafts
    are not the drafter's: step s proposes the true tokens with the one at index s % B corrupted (none when
    s % B == B - 1), so the accepted count runs through 0..B-1 and every rollback length is exercised."""
    cache = DynamicCache()  # no config: every layer keeps every position (truncatable)
    logits, taps = tgt.forward(list(prompt), cache)
    committed = list(prompt) + [int(logits[-1].argmax())]
    feats = [taps]  # features of positions 0..len-2 (the anchor's are not known yet)
    trace, worst = [], 0.0
    while len(committed) - len(prompt) < n_new:
        p = len(committed) - 1
        F_all = torch.cat(feats, 0)
        assert F_all.shape[0] == p and cache.get_seq_length() == p
        ctx = dr.context(F_all)
        drafts = [int(t) for t in dr.draft_logits(ctx, committed[p], p).argmax(-1)]
        if truth is not None:
            k = len(trace) % dr.B
            drafts = list(truth[p + 1:p + dr.B])
            if k < dr.B - 1:
                drafts[k] = (drafts[k] + 1) % dr.mask_id
        block = [committed[p]] + drafts
        vlog, vtaps = tgt.forward(block, cache)  # one forward at positions p..p+B-1 on the cache
        y = [int(t) for t in vlog.argmax(-1)]
        # teacher-forced full recompute of the same rows, no cache
        flog, ftaps = tgt.forward(committed[:p] + block, None)
        if [int(t) for t in flog[p:].argmax(-1)] != y:
            raise RuntimeError(f"step at p={p}: cached verify and full recompute disagree on argmax")
        worst = max(worst, float((flog[p:] - vlog).abs().max()), float((ftaps[p:] - vtaps).abs().max()))
        a = 0
        while a < len(drafts) and drafts[a] == y[a]:
            a += 1
        if truth is not None and a != min(len(trace) % dr.B, dr.B - 1):
            raise RuntimeError(f"forced drafts at p={p}: accepted {a}, expected {len(trace) % dr.B}")
        bonus = y[a]
        committed += drafts[:a] + [bonus]
        feats.append(vtaps[:a + 1])  # x_p and the accepted drafts; never a rejected row
        truncate_cache(cache, p + a + 1)
        trace.append([p] + drafts + [a, bonus])
    return committed[len(prompt):len(prompt) + n_new], trace, torch.cat(feats, 0), worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mkfixture")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1, help="mimo-mkfixture seed (default 1)")
    ap.add_argument("--drafter-rope-base", choices=("rope_theta", "backbone_rotary_base"), default="rope_theta",
                    help="config key giving the drafter's RoPE base (default rope_theta)")
    ap.add_argument("--bf16-golden", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                          "fixtures", "golden", "tiny-bf16"),
                    help="golden_tiny.py's output the target must reproduce ('' to skip)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="mimo-dflash-")
    try:
        src = os.path.join(work, "hub")
        cmd = [a.mkfixture, "--preset", "tiny", "--variant", "bf16", "--seed", str(a.seed), "--out", src, "-q"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        hub = json.load(open(os.path.join(src, "config.json")))
        cfg = mimo_hub.hub_to_port(hub)
        tr = os.path.join(work, "tr")
        shutil.copytree(src, tr, ignore=shutil.ignore_patterns("dflash"))
        cfg.save_pretrained(tr)
        torch.manual_seed(0)
        model, info = MiMoV2FlashForCausalLM.from_pretrained(tr, dtype=torch.float32, output_loading_info=True)
        model.eval()
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if bad:
            raise RuntimeError(f"transformers did not take every weight from the file: {bad}")
        dr = Drafter(os.path.join(src, "dflash"), model, a.drafter_rope_base)
        tgt = Target(model, dr.taps)
        rng = np.random.default_rng(SEQ_SEED)
        seq = rng.integers(0, hub["vocab_size"] - 8, size=SEQ_LEN).astype(np.int32)

        # The target must be golden_tiny.py's (same prompt generator: the first 48 ids are its prompt).
        if a.bf16_golden and os.path.isdir(a.bf16_golden):
            def rd(n, dt):
                return np.frombuffer(zstandard.ZstdDecompressor().decompress(
                    open(os.path.join(a.bf16_golden, n + ".zst"), "rb").read()), dt)
            gp, gl = rd("prompt.i32", "<i4"), rd("logits.f32", "<f4").reshape(len(rd("prompt.i32", "<i4")), -1)
            if not np.array_equal(gp, seq[:len(gp)]):
                raise RuntimeError("the sequence does not start with tiny-bf16's prompt")
            lg, _ = tgt.forward([int(t) for t in gp])
            dmax = float((lg - torch.from_numpy(gl.copy())).abs().max())
            print(f"target vs {a.bf16_golden}: logits max |diff| {dmax:.3g}")
            if dmax > 1e-4:
                raise RuntimeError("the target does not reproduce the tiny-bf16 golden")

        # (1) single-forward cases
        _, taps = tgt.forward([int(t) for t in seq[:SEQ_LEN - 1]])
        ctx = dr.context(taps)
        case_logits = torch.stack([dr.draft_logits(ctx, int(seq[p]), p) for p in CASE_P])
        # context features are per position: the prefix forward gives the same rows
        _, taps40 = tgt.forward([int(t) for t in seq[:40]])
        if float((taps40 - taps[:40]).abs().max()) > 1e-5:
            raise RuntimeError("tap features of a prefix differ from the long forward's")
        # the window rule, probed: for p = 100 the context rows >= p and <= p - W are invisible, p - W + 1
        # (seen by the anchor row only) is visible
        p = CASE_P[-1]
        for c, visible in ((p - dr.W, False), (p - dr.W + 1, True)):
            bumped = ctx.clone()
            bumped[c] += 1.0
            changed = not torch.equal(dr.draft_logits(bumped, int(seq[p]), p), case_logits[-1])
            if changed != visible:
                raise RuntimeError(f"window: context position {c} is {'visible' if changed else 'hidden'} at "
                                   f"p={p}, expected {'visible' if visible else 'hidden'}")
        if not torch.equal(dr.draft_logits(torch.cat([ctx, torch.ones(5, dr.H)]), int(seq[p]), p), case_logits[-1]):
            raise RuntimeError("context rows at positions >= p change the drafts")
        for i, p in enumerate(CASE_P):
            print(f"case p={p}: drafts {case_logits[i].argmax(-1).tolist()} logit std {float(case_logits[i].std()):.4f}")

        # (2) greedy DFlash decode against plain greedy
        prompt = [int(t) for t in seq[:PROMPT_LEN]]
        toks, trace, feats, worst = dflash_decode(tgt, dr, prompt, NEW_TOKENS)
        with torch.no_grad():
            gen = model.generate(torch.tensor([prompt]), max_new_tokens=NEW_TOKENS, do_sample=False, use_cache=True,
                                 eos_token_id=None, pad_token_id=0)
        greedy = gen[0, PROMPT_LEN:].tolist()
        with torch.no_grad():
            gen = model.generate(torch.tensor([prompt]), max_new_tokens=NEW_TOKENS + dr.B, do_sample=False,
                                 use_cache=True, eos_token_id=None, pad_token_id=0)
        longer = gen[0].tolist()
        if longer[PROMPT_LEN:PROMPT_LEN + NEW_TOKENS] != greedy:
            raise RuntimeError("greedy continuation depends on its length")
        ftoks, ftrace, _, fworst = dflash_decode(tgt, dr, prompt, NEW_TOKENS, truth=longer)
        facc = [t[8] for t in ftrace]
        print(f"forced-draft decode: steps {len(ftrace)}, accepted {facc}, output == plain greedy:",
              "YES" if ftoks == greedy else "NO")
        worst = max(worst, fworst)
        # the drafter's context store equals the features of a one-shot forward of the committed prefix
        _, ftaps = tgt.forward(prompt + toks[:feats.shape[0] - PROMPT_LEN])
        feat_diff = float((ftaps - feats).abs().max())
        acc = [t[8] for t in trace]
        same = toks == greedy
        print(f"DFlash steps {len(trace)}, accepted per step {acc}, mean tokens/step {np.mean(acc) + 1:.3f}")
        print(f"verify with KV cache vs full recompute: max |diff| {worst:.3g}; context store vs one-shot "
              f"features: max |diff| {feat_diff:.3g}")
        print(f"DFlash tokens {toks}")
        print(f"greedy tokens {greedy}")
        print("DFlash output == plain greedy:", "YES" if same else "NO")
        if not same or ftoks != greedy:
            raise SystemExit(1)

        write_zst(os.path.join(a.out, "case_ids.i32"), seq.astype("<i4"))
        write_zst(os.path.join(a.out, "case_taps.f32"), taps.numpy().astype("<f4"))
        write_zst(os.path.join(a.out, "case_ctx.f32"), ctx.numpy().astype("<f4"))
        write_zst(os.path.join(a.out, "case_logits.f32"), case_logits.numpy().astype("<f4"))
        write_zst(os.path.join(a.out, "trace.i32"), np.array(trace, dtype="<i4"))
        write_zst(os.path.join(a.out, "trace_forced.i32"), np.array(ftrace, dtype="<i4"))
        write_zst(os.path.join(a.out, "dflash_tokens.i32"), np.array(toks, dtype="<i4"))
        write_zst(os.path.join(a.out, "greedy_tokens.i32"), np.array(greedy, dtype="<i4"))
        import transformers
        meta = {
            "fixture": " ".join(["mimo-mkfixture"] + cmd[1:-2] + ["DIR"]),
            "oracle": "python3 tools/oracle/dflash_oracle.py MKFIXTURE OUTDIR --seed %d --drafter-rope-base %s"
                      % (a.seed, a.drafter_rope_base),
            "transformers": transformers.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "dtype": "float32",
            "target_weight_files_sha256": {f: sha256_file(os.path.join(src, f)) for f in sorted(os.listdir(src))
                                           if f.endswith(".safetensors") or f.endswith(".json")},
            "drafter_files_sha256": dr.files,
            "drafter": {"block_size": dr.B, "target_layer_ids": dr.taps, "mask_token_id": dr.mask_id,
                        "window": dr.W, "window_rule": "context c visible to query q iff c < p and q - c < W; "
                                                       "all block keys visible (non-causal)",
                        "rope_base_key": dr.rope_base_key, "rope_theta": dr.theta, "rotary_dims": dr.rot,
                        "rope_style": "neox rotate-half on the first rotary_dims of each head, float64 angles",
                        "value_scale": dr.vscale, "sinks": bool(dr.use_sink), "rms_norm_eps": dr.eps,
                        "last_tap": "residual stream before the target's final norm"},
            "cases": {"seq_seed": SEQ_SEED, "seq_len": SEQ_LEN, "context_positions": SEQ_LEN - 1,
                      "p": list(CASE_P), "case_logits_shape": list(case_logits.shape),
                      "case_taps_shape": list(taps.shape), "case_ctx_shape": list(ctx.shape)},
            "decode": {"prompt": "case_ids[:%d]" % PROMPT_LEN, "new_tokens": NEW_TOKENS, "block_size": dr.B,
                       "steps": len(trace), "trace_columns": ["p", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "a",
                                                              "bonus"],
                       "accepted": acc, "tokens_per_step": float(np.mean(acc) + 1),
                       "verify": "one target forward over [anchor, d1..d7] on a KV cache truncated to p+a+1 "
                                 "after each step; each step also recomputed teacher-forced without a cache",
                       "verify_cache_vs_recompute_max_abs": worst, "context_store_vs_one_shot_max_abs": feat_diff,
                       "dflash_equals_greedy": same,
                       "forced": {"rule": "step s proposes the plain greedy tokens of positions p+1..p+7 with the "
                                          "one at index s %% 8 replaced by (token + 1) %% %d (none when s %% 8 == 7)"
                                          % dr.mask_id,
                                  "steps": len(ftrace), "accepted": facc, "equals_greedy": ftoks == greedy}},
            "config": cfg.to_dict(),
            "drafter_config": dr.cfg,
        }
        json.dump(meta, open(os.path.join(a.out, "golden.json"), "w"), indent=2, sort_keys=True, default=str)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
