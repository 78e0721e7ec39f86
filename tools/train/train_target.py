"""Trains the nano MiMo target (transformers' MiMoV2FlashForCausalLM, every MiMo feature on: hybrid
SWA/global attention with sinks, 128/64 head dims with partial RoPE, value scale, sigmoid router
with an aux-loss-free correction bias, dense layer 0) on the corpus made by corpus.py.

usage: train_target.py CORPUS_DIR OUTDIR [--steps N] [--batch B] [--seq L] [--lr LR]
                       [--max-minutes M] [--resume] [--device cuda|cpu]
                       [--init-from HUB_DIR] [--qat] [--qat-kl BETA] [--qat-ce-bf W]

Resumable: OUTDIR/ckpt.pt holds model, optimizer, step and RNG states and is rewritten every
--ckpt-every steps and when the time budget runs out; --resume continues from it. OUTDIR/log.jsonl
has one line per logged step (loss, lr, tokens, seconds, held-out losses). At the end (or at the
time limit) the model is exported in the hub layout (mimo_hub.export_hub) to OUTDIR/bf16 with the
corpus tokenizer.

Quantization-aware fine-tuning (--qat, usually with --init-from a trained checkpoint): every step
runs the model twice on the batch, once as it is and once with every routed expert's weights
replaced by their MXFP4 value as mimo-quantize rounds them (mxfp4_fake: E2M1 x E8M0 per 32 inputs,
`mse` scale rule, of the BF16 value of the weight; straight-through gradient). The loss is
(1 - W) CE(quantized) + W CE(as is) + BETA KL(p_as_is || p_quantized): both models stay good and
they are pulled together, which is what top-1 agreement between the BF16 source and the MXFP4
artifact measures. The weights stay off the MXFP4 grid (the log's `qerr`: the mean relative squared
error of the experts' rounding, 0.0125 for the model trained without it). The held-out evaluations
then also give the quantized model's loss and the top-1 agreement of the two.

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
import mxfp4_fake


def batches(data, batch, seq, gen):
    n = len(data) - seq - 1
    while True:
        idx = torch.randint(0, n, (batch,), generator=gen)
        x = np.stack([data[i:i + seq + 1] for i in idx.tolist()]).astype(np.int64)
        yield torch.from_numpy(x)


def expert_params(model):
    """names of the routed experts' packed weights ([E, out, in]: blocks of 32 along `in`)."""
    return [n for n, _ in model.named_parameters()
            if n.endswith("mlp.experts.gate_up_proj") or n.endswith("mlp.experts.down_proj")]


def quant_forward(model, names, x):
    """logits of the model with its routed experts at their MXFP4 value (straight-through)."""
    params = dict(model.named_parameters())
    over = {n: mxfp4_fake.ste(params[n]) for n in names}
    return torch.func.functional_call(model, over, (x,)).logits


@torch.no_grad()
def eval_loss(model, data, seq, device, max_tokens=65536, qnames=None):
    """mean held-out loss; with qnames also (quantized loss, top-1 agreement of the two)."""
    model.eval()
    tot, totq, agree, cnt = 0.0, 0.0, 0, 0
    n = min(len(data) - 1, max_tokens)
    for s in range(0, n - seq, seq):
        x = torch.from_numpy(data[s:s + seq + 1].astype(np.int64))[None].to(device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(x[:, :-1]).logits.float()
            if qnames:
                lq = quant_forward(model, qnames, x[:, :-1]).float()
        tot += torch.nn.functional.cross_entropy(logits[0], x[0, 1:], reduction="sum").item()
        if qnames:
            totq += torch.nn.functional.cross_entropy(lq[0], x[0, 1:], reduction="sum").item()
            agree += (lq[0].argmax(-1) == logits[0].argmax(-1)).sum().item()
        cnt += seq
    model.train()
    if qnames:
        return tot / max(cnt, 1), totq / max(cnt, 1), agree / max(cnt, 1)
    return tot / max(cnt, 1)


def qerr(model, names):
    """mean over experts of the relative squared error of their MXFP4 rounding."""
    params = dict(model.named_parameters())
    errs = [mxfp4_fake.rel_err(params[n][e]) for n in names for e in range(params[n].shape[0])]
    return sum(errs) / len(errs)


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
    ap.add_argument("--init-from", help="start from this hub checkpoint (config.json + safetensors)")
    ap.add_argument("--qat", action="store_true", help="quantization-aware: MXFP4 experts (see above)")
    ap.add_argument("--qat-kl", type=float, default=1.0, help="BETA: weight of KL(as is || quantized)")
    ap.add_argument("--qat-ce-bf", type=float, default=0.5, help="W: weight of the as-is model's CE")
    a = ap.parse_args()
    t_start = time.time()
    os.makedirs(a.out, exist_ok=True)
    dev = a.device
    torch.manual_seed(a.seed)
    if a.init_from:
        import dflash_model
        model, hub = dflash_model.load_target(a.init_from, dtype=torch.float32, device=dev)
        model.requires_grad_(True)
        model.config._attn_implementation = "eager"
    else:
        hub = dict(mimo_hub.NANO)
        cfg = mimo_hub.hub_to_port(hub)
        cfg._attn_implementation = "eager"
        model = MiMoV2FlashForCausalLM(cfg).to(dev)
    qnames = expert_params(model) if a.qat else None
    if a.qat and not qnames:
        raise SystemExit("--qat: the model has no routed experts")
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
        y = x[:, 1:].reshape(-1)
        with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            if qnames:
                lq = quant_forward(model, qnames, x[:, :-1]).float().reshape(y.numel(), -1)
            logits = model(x[:, :-1]).logits  # last: the router hooks keep this pass's choices
        logits = logits.float().reshape(y.numel(), -1)
        loss = torch.nn.functional.cross_entropy(logits, y)
        extra = {}
        if qnames:
            loss_q = torch.nn.functional.cross_entropy(lq, y)
            lp, lpq = torch.log_softmax(logits, -1), torch.log_softmax(lq, -1)
            kl = (lp.exp() * (lp - lpq)).sum(-1).mean()
            extra = {"loss_q": round(loss_q.item(), 5), "kl": round(kl.item(), 5)}
            loss = (1 - a.qat_ce_bf) * loss_q + a.qat_ce_bf * loss + a.qat_kl * kl
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
                   "seconds": round(time.time() - t0, 1), **extra}
            if step % a.eval_every == 0 or step == a.steps:
                for k, d in ev.items():
                    r = eval_loss(model, d, a.seq, dev, a.eval_tokens, qnames)
                    if qnames:
                        rec["eval_" + k], rec["evalq_" + k], rec["agree_" + k] = (round(v, 5) for v in r)
                    else:
                        rec["eval_" + k] = round(r, 5)
                if qnames:
                    rec["qerr"] = round(qerr(model, qnames), 5)
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
        r = eval_loss(model, d, a.seq, dev, a.eval_tokens, qnames)
        if qnames:
            final["eval_" + k], final["evalq_" + k], final["agree_" + k] = r
            final["pplq_" + k] = math.exp(final["evalq_" + k])
        else:
            final["eval_" + k] = r
        final["ppl_" + k] = math.exp(final["eval_" + k])
    if qnames:
        final["qerr"] = qerr(model, qnames)
    with open(os.path.join(a.out, "final.json"), "w") as f:
        json.dump(final, f, indent=2)
    print(json.dumps(final), flush=True)


if __name__ == "__main__":
    main()
