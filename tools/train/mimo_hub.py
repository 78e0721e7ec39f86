"""The MiMo hub dialect (config.json keys and tensor names as Xiaomi ships MiMo-V2-Flash, which our
runtime and tools read) <-> transformers' MiMoV2Flash port. Used by the training scripts to build a
model with the port and to export it in the hub layout.
"""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import MiMoV2FlashConfig

# Geometry of the nano model (hub dialect). The port derives SWA KV heads as 2 x global KV heads,
# so the hub config states exactly that.
NANO = {
    "architectures": ["MiMoV2FlashForCausalLM"], "model_type": "mimo_v2_flash",
    "vocab_size": 8192, "hidden_size": 256, "num_hidden_layers": 6,
    "hybrid_layer_pattern": [0, 1, 1, 0, 1, 1], "moe_layer_freq": [0, 1, 1, 1, 1, 1],
    "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 128, "v_head_dim": 64,
    "swa_num_attention_heads": 4, "swa_num_key_value_heads": 2, "swa_head_dim": 128, "swa_v_head_dim": 64,
    "partial_rotary_factor": 0.5, "rope_theta": 5000000, "swa_rope_theta": 10000,
    "sliding_window": 128, "sliding_window_size": 128, "attention_chunk_size": 128,
    "add_swa_attention_sink_bias": True, "add_full_attention_sink_bias": False,
    "attention_value_scale": 0.707, "attention_bias": False,
    "intermediate_size": 768, "moe_intermediate_size": 128, "n_routed_experts": 8, "num_experts_per_tok": 2,
    "n_shared_experts": None, "scoring_func": "sigmoid", "topk_method": "noaux_tc", "n_group": 1, "topk_group": 1,
    "norm_topk_prob": True, "routed_scaling_factor": None, "layernorm_epsilon": 1e-05, "hidden_act": "silu",
    "max_position_embeddings": 8192, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "bos_token_id": None, "eos_token_id": 8189, "pad_token_id": 8190,
}


def hub_to_port(hub):
    """A MiMoV2FlashConfig from a hub-dialect dict (either model type; the oracles and the trainers use it)."""
    # keys the port does not know; the stored layout (quantization_config, the fused-qkv layout and
    # its model_type) is the loader's business: the port is always given split, float weights
    drop = {"attention_chunk_size", "sliding_window_size", "n_shared_experts", "scoring_func", "topk_method",
            "swa_num_attention_heads", "swa_num_key_value_heads", "swa_head_dim", "swa_v_head_dim",
            "add_swa_attention_sink_bias", "add_full_attention_sink_bias", "quantization_config",
            "attention_projection_layout", "model_type"}
    if hub["swa_num_key_value_heads"] != 2 * hub["num_key_value_heads"]:
        raise ValueError("the transformers port hard-codes SWA KV heads = 2 x full KV heads")
    kw = {k: v for k, v in hub.items() if k not in drop}
    kw["architectures"] = ["MiMoV2FlashForCausalLM"]
    kw["rms_norm_eps"] = kw.pop("layernorm_epsilon")
    kw["layer_types"] = ["sliding_attention" if p == 1 else "full_attention" for p in kw.pop("hybrid_layer_pattern")]
    kw["mlp_layer_types"] = ["sparse" if f == 1 else "dense" for f in kw.pop("moe_layer_freq")]
    if kw.get("routed_scaling_factor") is None:
        kw["routed_scaling_factor"] = 1.0
    prf = kw.pop("partial_rotary_factor")
    kw["rope_parameters"] = {
        "full_attention": {"rope_type": "default", "rope_theta": kw.pop("rope_theta"), "partial_rotary_factor": prf},
        "sliding_attention": {"rope_type": "default", "rope_theta": kw.pop("swa_rope_theta"),
                              "partial_rotary_factor": prf},
    }
    return MiMoV2FlashConfig(**kw)


def port_state_to_hub(sd):
    """Port tensor names -> hub names: sinks -> attention_sink_bias, packed experts split per expert."""
    out = {}
    for k, v in sd.items():
        v = v.detach().cpu().contiguous()
        if k.endswith("mlp.experts.gate_up_proj"):
            pre = k[: -len("gate_up_proj")]
            inter = v.shape[1] // 2
            for e in range(v.shape[0]):
                out[f"{pre}{e}.gate_proj.weight"] = v[e, :inter].clone()
                out[f"{pre}{e}.up_proj.weight"] = v[e, inter:].clone()
        elif k.endswith("mlp.experts.down_proj"):
            pre = k[: -len("down_proj")]
            for e in range(v.shape[0]):
                out[f"{pre}{e}.down_proj.weight"] = v[e].clone()
        elif k.endswith("self_attn.sinks"):
            out[k[: -len("sinks")] + "attention_sink_bias"] = v
        else:
            out[k] = v
    return out


def export_hub(model, hub, outdir, dtype=torch.bfloat16):
    """Writes outdir/config.json (hub dialect) and outdir/model.safetensors (BF16; the router's
    correction bias and weights in F32, as MiMo ships them)."""
    os.makedirs(outdir, exist_ok=True)
    sd = port_state_to_hub(model.state_dict())
    ts = {}
    for k, v in sd.items():
        keep_f32 = k.endswith("e_score_correction_bias") or k.endswith("mlp.gate.weight")
        ts[k] = v.to(torch.float32 if keep_f32 else dtype).contiguous()
    save_file(ts, os.path.join(outdir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(hub, f, indent=2)
        f.write("\n")
    return ts
