"""A trainable DFlash drafter in PyTorch (the forward of tools/oracle/dflash_oracle.py, batched over
many blocks), the MiMo target loader with tap capture, and the export to our drafter layout.

Drafter forward (shared/reference/dflash.md 1, mimo_arch.md 5.2; the same math as the oracle):
  context   ctx = RMSNorm(fc(concat of the target's residual after layers target_layer_ids); hidden_norm)
  block     [anchor, MASK x (B-1)] at positions a..a+B-1; the anchor row is the target's embed_tokens
            row, every MASK row the trainable mask embedding (mask_embedding.pt)
  layer     x = RMSNorm(h; input_layernorm); q/k/v projections; per-head RMSNorm q_norm / k_norm;
            NeoX rotate-half RoPE on the first head_dim * partial_rotary_factor dims (theta =
            rope_theta, angles from float64); v *= value scale. Context rows get k_proj / k_norm /
            RoPE at their own positions and v_proj * value scale. A block row at position q sees
            context position c iff c < a and q - c < W, and all B rows of its own block (non-causal),
            never another block. Scores * head_dim^-0.5, GQA (query head j reads KV head
            j // (heads / kv heads)), one sink logit per head in the softmax denominator only.
            h += o_proj(attn); h += down(silu(gate(y)) * up(y)), y = RMSNorm(h; post_attention_layernorm)
  logits    RMSNorm(h; norm) then the target's lm_head (frozen); row k (1..B-1) predicts x_{a+k}.
Many blocks share one forward: the context keys of a sequence are computed once and every block of
that sequence attends to them through one dense additive mask.
"""
import json
import os
import shutil
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------
# Target.

def hub_to_port(hub):
    """MiMoV2FlashConfig (transformers' port) from a config.json in our hub dialect (mimo_hub)."""
    import mimo_hub
    return mimo_hub.hub_to_port(hub)


def load_target(hf_dir, dtype=torch.float32, device="cpu"):
    """transformers' MiMoV2FlashForCausalLM from an HF directory in our hub dialect. The weights are
    linked into a temporary directory beside the translated config; every tensor of the files must be
    used and every parameter must come from them. Returns (model, hub config dict)."""
    from transformers import MiMoV2FlashForCausalLM
    hub = json.load(open(os.path.join(hf_dir, "config.json")))
    cfg = hub_to_port(hub)
    work = tempfile.mkdtemp(prefix="mimo-target-")
    try:
        for f in os.listdir(hf_dir):
            if f.endswith(".safetensors") or f == "model.safetensors.index.json":
                os.symlink(os.path.abspath(os.path.join(hf_dir, f)), os.path.join(work, f))
        cfg.save_pretrained(work)
        model, info = MiMoV2FlashForCausalLM.from_pretrained(work, dtype=dtype, output_loading_info=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        raise SystemExit(f"{hf_dir}: transformers did not take every weight from the files as they are: {bad}")
    model.eval().requires_grad_(False)
    return model.to(device), hub


class TapTarget:
    """The target with forward hooks capturing the residual stream after each tapped decoder layer
    (for the last layer that is the state before the final norm: hidden_states[l + 1] would be the
    normed one)."""

    def __init__(self, model, taps):
        self.model = model
        self.taps = list(taps)
        n = model.config.num_hidden_layers
        if any(l < 0 or l >= n for l in self.taps):
            raise SystemExit(f"target_layer_ids {self.taps}: the target has {n} layers")
        self._cap = {}
        self._hooks = [model.model.layers[l].register_forward_hook(self._hook(l)) for l in self.taps]

    def _hook(self, l):
        def f(_mod, _inp, out):
            self._cap[l] = out[0] if isinstance(out, tuple) else out
        return f

    @torch.no_grad()
    def taps_of(self, ids, with_last=False):
        """ids [S, T] long -> taps [S, T, n * Ht] float32 (concatenated in the order of the ids); with_last:
        (taps, the final-normed hidden states [S, T, Ht], whose lm_head rows are the target's logits)."""
        self._cap = {}
        last = self.model.model(ids).last_hidden_state  # decoder only: the lm_head is applied by the caller
        out = torch.cat([self._cap[l].float() for l in self.taps], dim=-1)
        self._cap = {}
        return (out, last) if with_last else out


# ---------------------------------------------------------------------------------------------
# Drafter.

def rmsnorm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


class DrafterLayer(nn.Module):
    def __init__(self, H, I, nh, nkv, d, sinks):
        super().__init__()
        self.input_layernorm = nn.Parameter(torch.ones(H))
        self.post_attention_layernorm = nn.Parameter(torch.ones(H))
        self.q_proj = nn.Linear(H, nh * d, bias=False)
        self.k_proj = nn.Linear(H, nkv * d, bias=False)
        self.v_proj = nn.Linear(H, nkv * d, bias=False)
        self.o_proj = nn.Linear(nh * d, H, bias=False)
        self.q_norm = nn.Parameter(torch.ones(d))
        self.k_norm = nn.Parameter(torch.ones(d))
        self.sink = nn.Parameter(torch.zeros(nh)) if sinks else None
        self.gate_proj = nn.Linear(H, I, bias=False)
        self.up_proj = nn.Linear(H, I, bias=False)
        self.down_proj = nn.Linear(I, H, bias=False)


class Drafter(nn.Module):
    """cfg: dict with hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
    num_key_value_heads, head_dim, rms_norm_eps, partial_rotary_factor, rope_theta, block_size,
    target_layer_ids, target_hidden_size, window, value_scale, sinks, mask_token_id.
    embed / lm_head: the target's tables [V, H] (frozen buffers, not saved with the drafter)."""

    def __init__(self, cfg, embed, lm_head):
        super().__init__()
        self.cfg = dict(cfg)
        H, d = cfg["hidden_size"], cfg["head_dim"]
        self.H, self.d = H, d
        self.nh, self.nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        if self.nh % self.nkv:
            raise SystemExit("drafter: num_attention_heads must be a multiple of num_key_value_heads")
        self.eps = cfg["rms_norm_eps"]
        self.rot = int(d * cfg["partial_rotary_factor"])
        if self.rot % 2 or self.rot < 2:
            raise SystemExit("drafter: head_dim * partial_rotary_factor must be an even number >= 2")
        self.theta = float(cfg["rope_theta"])
        self.W = int(cfg["window"])
        self.vscale = float(cfg["value_scale"])
        self.B = int(cfg["block_size"])
        nt = len(cfg["target_layer_ids"])
        if embed.shape[1] != H:
            raise SystemExit(f"drafter hidden {H} differs from the target's {embed.shape[1]}: the drafter embeds "
                             "with the target's table")
        self.fc = nn.Linear(nt * cfg["target_hidden_size"], H, bias=False)
        self.hidden_norm = nn.Parameter(torch.ones(H))
        self.layers = nn.ModuleList(DrafterLayer(H, cfg["intermediate_size"], self.nh, self.nkv, d, cfg["sinks"])
                                    for _ in range(cfg["num_hidden_layers"]))
        self.norm = nn.Parameter(torch.ones(H))
        self.mask_embedding = nn.Parameter(embed.float().mean(0).clone())
        self.register_buffer("embed", embed.detach().float(), persistent=False)
        self.register_buffer("lm_head", lm_head.detach().float(), persistent=False)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=cfg.get("init_std", 0.02))

    # -- pieces ------------------------------------------------------------------------------
    def rope_tables(self, pos):
        """pos long [...] -> cos, sin float32 [..., rot] (angles in float64, as the oracle)."""
        inv = self.theta ** (-torch.arange(0, self.rot, 2, dtype=torch.float64, device=pos.device) / self.rot)
        ang = pos.to(torch.float64)[..., None] * inv
        cos = torch.cat([ang.cos(), ang.cos()], -1).float()
        sin = torch.cat([ang.sin(), ang.sin()], -1).float()
        return cos, sin

    def rope(self, x, cos, sin):
        """x [..., T, heads, d]; cos/sin [..., T, rot] broadcast over heads."""
        half = self.rot // 2
        xr, xp = x[..., :self.rot], x[..., self.rot:]
        rh = torch.cat([-xr[..., half:], xr[..., :half]], -1)
        c, s = cos.unsqueeze(-2), sin.unsqueeze(-2)
        return torch.cat([xr * c + rh * s, xp], -1)

    def context(self, taps):
        return rmsnorm(self.fc(taps), self.hidden_norm, self.eps)

    # -- the batched forward -----------------------------------------------------------------
    def forward(self, taps, tokens, anchors, block=None):
        """taps [S, T, n*Ht], tokens [S, T'] long (T' >= T: the anchors' tokens), anchors [S, A] long
        with 1 <= anchor <= T (context = positions < anchor, all inside taps). block = B by default.
        Returns final hidden states of the mask rows [S, A, B-1, H] (apply logits() for the vocab)."""
        B = block or self.B
        S, T, _ = taps.shape
        A = anchors.shape[1]
        R = A * B
        dev = taps.device
        nh, nkv, d = self.nh, self.nkv, self.d
        ctx = self.context(taps)  # [S, T, H]
        off = torch.arange(B, device=dev)
        pos_b = (anchors[:, :, None] + off).reshape(S, R)  # block row positions
        anc_r = anchors[:, :, None].expand(S, A, B).reshape(S, R)
        pos_c = torch.arange(T, device=dev)
        # additive mask on the context keys [S, 1, R, T]: c visible iff c < anchor and q - c < W. The
        # block keys are attended per block (each row sees the B rows of its own block, non-causal,
        # never another block), so the scores are [.., R, T] for the context plus [.., R, B] in-block.
        vis_c = (pos_c[None, None, :] < anc_r[:, :, None]) & ((pos_b[:, :, None] - pos_c[None, None, :]) < self.W)
        bias = torch.zeros(vis_c.shape, device=dev, dtype=torch.float32).masked_fill(~vis_c, float("-inf"))
        bias = bias[:, None]
        cos_b, sin_b = self.rope_tables(pos_b)
        cos_c, sin_c = self.rope_tables(pos_c)
        cos_c, sin_c = cos_c[None], sin_c[None]
        first = torch.gather(tokens, 1, anchors)  # [S, A]
        h = torch.cat([self.embed[first][:, :, None, :],
                       self.mask_embedding.expand(S, A, B - 1, self.H)], 2).reshape(S, R, self.H)
        g = nh // nkv
        scale = d ** -0.5
        for L in self.layers:
            x = rmsnorm(h, L.input_layernorm, self.eps)
            q = self.rope(rmsnorm(L.q_proj(x).view(S, R, nh, d), L.q_norm, self.eps), cos_b, sin_b)
            kb = self.rope(rmsnorm(L.k_proj(x).view(S, R, nkv, d), L.k_norm, self.eps), cos_b, sin_b)
            vb = L.v_proj(x).view(S, R, nkv, d) * self.vscale
            kc = self.rope(rmsnorm(L.k_proj(ctx).view(S, T, nkv, d), L.k_norm, self.eps), cos_c, sin_c)
            vc = L.v_proj(ctx).view(S, T, nkv, d) * self.vscale
            # GQA: query head j reads KV head j // g; queries grouped as [S, nkv, g, R, d]
            qg = q.view(S, R, nkv, g, d).permute(0, 2, 3, 1, 4)
            kc, vc = kc.permute(0, 2, 1, 3)[:, :, None], vc.permute(0, 2, 1, 3)[:, :, None]  # [S, nkv, 1, T, d]
            kb = kb.view(S, A, B, nkv, d).permute(0, 3, 1, 2, 4)[:, :, None]  # [S, nkv, 1, A, B, d]
            vb = vb.view(S, A, B, nkv, d).permute(0, 3, 1, 2, 4)[:, :, None]
            s_c = torch.matmul(qg, kc.transpose(-1, -2)) * scale + bias[:, :, None]  # [S, nkv, g, R, T]
            qb = qg.reshape(S, nkv, g, A, B, d)
            s_b = torch.matmul(qb, kb.transpose(-1, -2)).reshape(S, nkv, g, R, B) * scale
            parts = [s_c, s_b]
            if L.sink is not None:
                parts.append(L.sink.view(1, nkv, g, 1, 1).expand(S, nkv, g, R, 1))
            p = torch.softmax(torch.cat(parts, -1), -1)
            o = torch.matmul(p[..., :T], vc) + torch.matmul(p[..., T:T + B].reshape(S, nkv, g, A, B, B),
                                                             vb).reshape(S, nkv, g, R, d)
            o = o.permute(0, 3, 1, 2, 4).reshape(S, R, nh * d)
            h = h + L.o_proj(o)
            y = rmsnorm(h, L.post_attention_layernorm, self.eps)
            h = h + L.down_proj(F.silu(L.gate_proj(y)) * L.up_proj(y))
        out = rmsnorm(h, self.norm, self.eps).view(S, A, B, self.H)
        return out[:, :, 1:]

    def logits(self, hidden):
        return (hidden.reshape(-1, self.H) @ self.lm_head.T).view(*hidden.shape[:-1], -1)


# ---------------------------------------------------------------------------------------------
# Config and export (the layout mimo-mkfixture writes, libquant/drafter.h).

def export_config(cfg, target_hub):
    dc = {
        "target_layer_ids": list(cfg["target_layer_ids"]),
        "mask_token_id": int(cfg["mask_token_id"]),
        "num_anchors": int(cfg.get("num_anchors", 512)),
        "block_size": int(cfg["block_size"]),
        "loss_decay_gamma": float(cfg.get("loss_decay_gamma", 7.0)),
        "use_swa": True,
        "swa_window_size": int(cfg["window"]),
        # the drafter was trained with rope_theta; the same value here, so that a reader of either
        # key gets the base the weights were trained with
        "backbone_rotary_base": float(cfg["rope_theta"]),
        "attention_value_scale": float(cfg["value_scale"]),
        "attention_sink_bias": bool(cfg["sinks"]),
    }
    return {
        "architectures": ["DFlashDraftModel"],
        "model_type": "qwen3",
        "hidden_size": cfg["hidden_size"],
        "intermediate_size": cfg["intermediate_size"],
        "num_hidden_layers": cfg["num_hidden_layers"],
        "num_attention_heads": cfg["num_attention_heads"],
        "num_key_value_heads": cfg["num_key_value_heads"],
        "head_dim": cfg["head_dim"],
        "v_head_dim": cfg["head_dim"],
        "partial_rotary_factor": cfg["partial_rotary_factor"],
        "rope_theta": cfg["rope_theta"],
        "sliding_window": int(cfg["window"]),
        "max_position_embeddings": int(target_hub.get("max_position_embeddings", 8192)),
        "block_size": int(cfg["block_size"]),
        "num_target_layers": int(target_hub["num_hidden_layers"]),
        "rms_norm_eps": cfg["rms_norm_eps"],
        "vocab_size": int(target_hub["vocab_size"]),
        "torch_dtype": "bfloat16",
        "hidden_act": "silu",
        "attention_bias": False,
        "tie_word_embeddings": False,
        "dflash_config": dc,
    }


def hub_tensors(model):
    """{hub name: bf16 tensor} as libquant/drafter.h expects (no "model." prefix)."""
    t = {"fc.weight": model.fc.weight, "hidden_norm.weight": model.hidden_norm, "norm.weight": model.norm}
    for i, L in enumerate(model.layers):
        p = f"layers.{i}."
        t.update({p + "input_layernorm.weight": L.input_layernorm,
                  p + "post_attention_layernorm.weight": L.post_attention_layernorm,
                  p + "self_attn.q_proj.weight": L.q_proj.weight, p + "self_attn.k_proj.weight": L.k_proj.weight,
                  p + "self_attn.v_proj.weight": L.v_proj.weight, p + "self_attn.o_proj.weight": L.o_proj.weight,
                  p + "self_attn.q_norm.weight": L.q_norm, p + "self_attn.k_norm.weight": L.k_norm,
                  p + "mlp.gate_proj.weight": L.gate_proj.weight, p + "mlp.up_proj.weight": L.up_proj.weight,
                  p + "mlp.down_proj.weight": L.down_proj.weight})
        if L.sink is not None:
            t[p + "self_attn.attention_sink_bias"] = L.sink
    return {k: v.detach().to("cpu", torch.bfloat16).contiguous() for k, v in t.items()}


def load_hub_tensors(model, tensors):
    """The inverse of hub_tensors (values widened to float32); every tensor must be used."""
    ref = hub_tensors(model)
    if set(ref) != set(tensors):
        raise SystemExit(f"drafter tensors: missing {sorted(set(ref) - set(tensors))}, "
                         f"extra {sorted(set(tensors) - set(ref))}")
    named = {"fc.weight": model.fc.weight, "hidden_norm.weight": model.hidden_norm, "norm.weight": model.norm}
    for i, L in enumerate(model.layers):
        p = f"layers.{i}."
        named.update({p + "input_layernorm.weight": L.input_layernorm,
                      p + "post_attention_layernorm.weight": L.post_attention_layernorm,
                      p + "self_attn.q_proj.weight": L.q_proj.weight, p + "self_attn.k_proj.weight": L.k_proj.weight,
                      p + "self_attn.v_proj.weight": L.v_proj.weight, p + "self_attn.o_proj.weight": L.o_proj.weight,
                      p + "self_attn.q_norm.weight": L.q_norm, p + "self_attn.k_norm.weight": L.k_norm,
                      p + "mlp.gate_proj.weight": L.gate_proj.weight, p + "mlp.up_proj.weight": L.up_proj.weight,
                      p + "mlp.down_proj.weight": L.down_proj.weight})
        if L.sink is not None:
            named[p + "self_attn.attention_sink_bias"] = L.sink
    with torch.no_grad():
        for k, p in named.items():
            if tuple(tensors[k].shape) != tuple(p.shape):
                raise SystemExit(f"drafter {k}: shape {tuple(tensors[k].shape)}, expected {tuple(p.shape)}")
            p.copy_(tensors[k].float())


def _atomic(path, write):
    tmp = f"{path}.tmp-{os.getpid()}"
    write(tmp)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)  # some writers create 0600
    os.replace(tmp, path)


def export_drafter(model, target_hub, out_dir):
    """Writes out_dir/{config.json, dflash_draft_model.safetensors, model.safetensors.index.json,
    mask_embedding.pt}: BF16 weights, the mask embedding as {"mask_token_id": int, "embedding": bf16[H]}."""
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    cfg = export_config(model.cfg, target_hub)
    tensors = hub_tensors(model)
    fname = "dflash_draft_model.safetensors"
    _atomic(os.path.join(out_dir, fname), lambda p: save_file(tensors, p, metadata={"format": "pt"}))
    index = {"metadata": {"total_size": sum(t.numel() * 2 for t in tensors.values())},
             "weight_map": {k: fname for k in sorted(tensors)}}
    _atomic(os.path.join(out_dir, "model.safetensors.index.json"),
            lambda p: open(p, "w").write(json.dumps(index, indent=2) + "\n"))
    emb = model.mask_embedding.detach().to("cpu", torch.bfloat16).contiguous().clone()
    _atomic(os.path.join(out_dir, "mask_embedding.pt"),
            lambda p: torch.save({"mask_token_id": int(model.cfg["mask_token_id"]), "embedding": emb}, p))
    _atomic(os.path.join(out_dir, "config.json"), lambda p: open(p, "w").write(json.dumps(cfg, indent=2) + "\n"))
    return cfg


def cfg_from_export(dcfg, target_hub):
    """Our Drafter cfg from a drafter config.json (the subset this trainer supports: use_swa, no
    layer_types, non-causal, no attention bias, v_head_dim == head_dim)."""
    dc = dcfg.get("dflash_config", {})
    if "layer_types" in dcfg or dcfg.get("is_causal") or dc.get("causal") or not dc.get("use_swa"):
        raise SystemExit("drafter config: only the non-causal all-SWA drafter (use_swa, no layer_types) is supported")
    if dcfg.get("v_head_dim", dcfg["head_dim"]) != dcfg["head_dim"] or dcfg.get("attention_bias"):
        raise SystemExit("drafter config: v_head_dim must equal head_dim and attention_bias be false")
    return {
        "hidden_size": dcfg["hidden_size"], "intermediate_size": dcfg["intermediate_size"],
        "num_hidden_layers": dcfg["num_hidden_layers"], "num_attention_heads": dcfg["num_attention_heads"],
        "num_key_value_heads": dcfg["num_key_value_heads"], "head_dim": dcfg["head_dim"],
        "rms_norm_eps": dcfg["rms_norm_eps"], "partial_rotary_factor": dcfg.get("partial_rotary_factor", 1.0),
        "rope_theta": dcfg.get("rope_theta", 10000.0),
        "block_size": dc.get("block_size", dcfg.get("block_size")),
        "target_layer_ids": dc["target_layer_ids"], "target_hidden_size": target_hub["hidden_size"],
        "window": dc.get("swa_window_size", dcfg.get("sliding_window")),
        "value_scale": dc.get("attention_value_scale", 1.0),
        "sinks": bool(dc.get("attention_sink_bias", dcfg.get("add_swa_attention_sink_bias", False))),
        "mask_token_id": dc.get("mask_token_id", dcfg.get("mask_token_id")),
        "num_anchors": dc.get("num_anchors", 512), "loss_decay_gamma": dc.get("loss_decay_gamma", 7.0),
    }


def load_exported(ddir, target_model, target_hub):
    """A Drafter from an exported directory (config, weights, mask embedding)."""
    from safetensors.torch import load_file
    dcfg = json.load(open(os.path.join(ddir, "config.json")))
    cfg = cfg_from_export(dcfg, target_hub)
    m = Drafter(cfg, target_model.model.embed_tokens.weight, target_model.lm_head.weight)
    tensors = {}
    for f in sorted(os.listdir(ddir)):
        if f.endswith(".safetensors"):
            tensors.update(load_file(os.path.join(ddir, f)))
    load_hub_tensors(m, tensors)
    me = torch.load(os.path.join(ddir, "mask_embedding.pt"), map_location="cpu", weights_only=True)
    if int(me["mask_token_id"]) != int(cfg["mask_token_id"]):
        raise SystemExit(f"{ddir}/mask_embedding.pt: mask_token_id {me['mask_token_id']} != "
                         f"config {cfg['mask_token_id']}")
    with torch.no_grad():
        m.mask_embedding.copy_(me["embedding"].float().reshape(-1))
    return m
