"""Trains the nano MiMo target (transformers' MiMoV2FlashForCausalLM, every MiMo feature on: hybrid
SWA/global attention with sinks, 128/64 head dims with partial RoPE, value scale, sigmoid router
with an aux-loss-free correction bias, dense layer 0) on the corpus made by corpus.py.

usage: train_target.py CORPUS_DIR OUTDIR [--steps N] [--batch B] [--seq L] [--lr LR]
                       [--max-minutes M] [--resume] [--device cuda|cpu]

Resumable: OUTDIR/ckpt.pt holds model, optimizer, step and RNG states and is rewritten every
--ckpt-every steps and when the time budget runs out; --resume continues from it. OUTDIR/log.jsonl
has one line per logged step (loss, lr, tokens, seconds, held-out losses). At the end (or at the
time limit) the model is exported in the hub layout (mimo_hub.export_hub) to OUTDIR/bf16 with the
corpus tokenizer.

Correction bias: after every step each MoE layer's e_score_correction_bias moves by
--bias-rate x sign(mean load - expert load) over the step's tokens (DeepSeek-V3's aux-loss-free
balancing; the bias selects experts but never weights them, as in MiMo).
"""
import argparse
import json
import math
import os
import shutil
import time

import numpy as np
import torch
from transformers import MiMoV2FlashForCausalLM

import mimo_hub


def batches(data, batch, seq, gen):
    n = len(data) - seq - 1
    while True:
        idx = torch.randint(0, n, (batch,), generator=gen)
        x = np.stack([data[i:i + seq + 1] for i in idx.tolist()]).astype(np.int64)
        yield torch.from_numpy(x)


@torch.no_grad()
def eval_loss(model, data, seq, device, max_tokens=65536):
    model.eval()
    tot, cnt = 0.0, 0
    n = min(len(data) - 1, max_tokens)
    for s in range(0, n - seq, seq):
        x = torch.from_numpy(data[s:s + seq + 1].astype(np.int64))[None].to(device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(x[:, :-1]).logits.float()
        tot += torch.nn.functional.cross_entropy(logits[0], x[0, 1:], reduction="sum").item()
        cnt += seq
    model.train()
    return tot / max(cnt, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=float, default=0.03)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--bias-rate", type=float, default=1e-3)
    ap.add_argument("--max-minutes", type=float, default=1e9)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--eval-tokens", type=int, default=65536)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    t_start = time.time()
    os.makedirs(a.out, exist_ok=True)
    dev = a.device
    torch.manual_seed(a.seed)
    hub = dict(mimo_hub.NANO)
    cfg = mimo_hub.hub_to_port(hub)
    cfg._attn_implementation = "eager"
    model = MiMoV2FlashForCausalLM(cfg).to(dev)
    nparam = sum(p.numel() for p in model.parameters())
    train = np.fromfile(os.path.join(a.corpus, "train.u16"), dtype=np.uint16)
    ev = {k: np.fromfile(os.path.join(a.corpus, "eval_%s.u16" % k), dtype=np.uint16) for k in ("code", "prose")}
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(a.seed)
    step = 0
    ck = os.path.join(a.out, "ckpt.pt")
    if a.resume and os.path.exists(ck):
        st = torch.load(ck, map_location=dev, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        gen.set_state(st["gen"])
        torch.set_rng_state(st["rng"])
        print("resumed at step", step, flush=True)
    # capture each MoE router's choices for the bias update
    routers = []
    for layer in model.model.layers:
        gate = getattr(layer.mlp, "gate", None)
        if gate is not None and hasattr(gate, "e_score_correction_bias"):
            rec = {"gate": gate, "idx": None}
            def hook(mod, inp, out, rec=rec):
                rec["idx"] = out[2].detach()
            gate.register_forward_hook(hook)
            routers.append(rec)
    log = open(os.path.join(a.out, "log.jsonl"), "a")
    it = batches(train, a.batch, a.seq, gen)
    warm = max(1, int(a.warmup * a.steps))
    model.train()

    def save():
        tmp = ck + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "gen": gen.get_state(),
                    "rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, ck)

    t0 = time.time()
    while step < a.steps:
        lr = a.lr * (step + 1) / warm if step < warm else \
            a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, a.steps - warm))))
        for g in opt.param_groups:
            g["lr"] = lr
        x = next(it).to(dev, non_blocking=True)
        with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            logits = model(x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for rec in routers:
                E = rec["gate"].e_score_correction_bias.numel()
                load = torch.bincount(rec["idx"].reshape(-1), minlength=E).float()
                rec["gate"].e_score_correction_bias += a.bias_rate * torch.sign(load.mean() - load)
        step += 1
        if step % a.log_every == 0 or step == a.steps:
            rec = {"step": step, "loss": round(loss.item(), 5), "lr": lr, "tokens": step * a.batch * a.seq,
                   "seconds": round(time.time() - t0, 1)}
            if step % a.eval_every == 0 or step == a.steps:
                for k, d in ev.items():
                    rec["eval_" + k] = round(eval_loss(model, d, a.seq, dev, a.eval_tokens), 5)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
        if step % a.ckpt_every == 0:
            save()
        if (time.time() - t_start) / 60 > a.max_minutes:
            print("time budget reached at step", step, flush=True)
            break
    save()
    model.eval()
    outdir = os.path.join(a.out, "bf16")
    mimo_hub.export_hub(model, hub, outdir)
    shutil.copy(os.path.join(a.corpus, "tokenizer.json"), os.path.join(outdir, "tokenizer.json"))
    final = {"step": step, "params": nparam, "minutes": round((time.time() - t_start) / 60, 2)}
    for k, d in ev.items():
        final["eval_" + k] = eval_loss(model, d, a.seq, dev, a.eval_tokens)
        final["ppl_" + k] = math.exp(final["eval_" + k])
    with open(os.path.join(a.out, "final.json"), "w") as f:
        json.dump(final, f, indent=2)
    print(json.dumps(final), flush=True)


if __name__ == "__main__":
    main()
