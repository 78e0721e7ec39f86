"""Golden outputs of the tiny MiMo fixture from Hugging Face transformers' MiMoV2FlashForCausalLM
(the independent oracle for the CPU runtime; run on the GPU host, whose transformers 5.x has the
port).

usage: golden_tiny.py MKFIXTURE OUTDIR

Writes to OUTDIR raw little-endian arrays and golden.json describing them:
  prompt.i32           the prompt ids (48 tokens, longer than the SWA window of 16)
  logits.f32           teacher-forced logits [48, vocab] in fp32
  hidden.f32           per-layer hidden states [layers + 1, 48, hidden] (embeddings, then after
                       every decoder layer; transformers' output_hidden_states convention, the last
                       one after the final norm)
  greedy.i32           32 greedy tokens continuing the prompt (KV cache on)
The fixture is written by our own mimo-mkfixture (--preset tiny --variant bf16, seed 1); its config
is translated from Xiaomi's hub dialect to the port's (the port ignores hub keys: GPU_HOST notes),
and the model runs in float32 on the CPU so the comparison is fp32 against fp32.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import MiMoV2FlashForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import mimo_hub  # noqa: E402  (the hub dialect -> transformers' port, shared with the trainers)


def main():
    mk, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="mimo-golden-")
    try:
        src = os.path.join(work, "hub")
        subprocess.run([mk, "--preset", "tiny", "--variant", "bf16", "--out", src, "--no-drafter", "-q"], check=True,
                       stdout=subprocess.DEVNULL)
        hub = json.load(open(os.path.join(src, "config.json")))
        cfg = mimo_hub.hub_to_port(hub)
        tr = os.path.join(work, "tr")
        shutil.copytree(src, tr)
        cfg.save_pretrained(tr)  # overwrites config.json in the port's dialect; weights keep hub names
        torch.manual_seed(0)
        model, info = MiMoV2FlashForCausalLM.from_pretrained(tr, torch_dtype=torch.float32, output_loading_info=True)
        model.eval()
        # Every weight must come from the file (none left at init values) and every tensor of the
        # file must be used.
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if bad:
            sys.exit("golden_tiny: weights not loaded as they are: %s" % bad)
        rng = np.random.default_rng(20261124)
        prompt = rng.integers(0, hub["vocab_size"] - 8, size=48).astype(np.int32)
        ids = torch.tensor(prompt[None, :].astype(np.int64))
        with torch.no_grad():
            o = model(ids, output_hidden_states=True, use_cache=False)
            logits = o.logits[0].float().numpy()
            hidden = torch.stack([h[0] for h in o.hidden_states]).float().numpy()
            gen = model.generate(ids, max_new_tokens=32, do_sample=False, use_cache=True,
                                 eos_token_id=None, pad_token_id=0)
        greedy = gen[0, 48:].numpy().astype(np.int32)
        prompt.tofile(os.path.join(out, "prompt.i32"))
        logits.astype("<f4").tofile(os.path.join(out, "logits.f32"))
        hidden.astype("<f4").tofile(os.path.join(out, "hidden.f32"))
        greedy.tofile(os.path.join(out, "greedy.i32"))
        import transformers
        meta = {"fixture": "mimo-mkfixture --preset tiny --variant bf16 --seed 1",
                "transformers": transformers.__version__, "torch": torch.__version__,
                "dtype": "float32", "prompt_len": 48, "vocab": int(logits.shape[1]),
                "hidden_shape": list(hidden.shape), "greedy_len": int(greedy.shape[0]),
                "config": cfg.to_dict()}
        json.dump(meta, open(os.path.join(out, "golden.json"), "w"), indent=2, sort_keys=True, default=str)
        print("logits", logits.shape, "hidden", hidden.shape, "greedy", greedy.tolist())
        print("logit stats", float(logits.std()), float(np.abs(logits).max()))
    finally:
        shutil.rmtree(work, ignore_errors=True)


main()
