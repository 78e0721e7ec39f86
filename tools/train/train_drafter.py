"""Trains a DFlash drafter (dflash_model.Drafter) for a MiMo target and exports it in our drafter layout.

usage: train_drafter.py train TARGET_DIR OUTDIR [options]     generate data, train, evaluate, export
       train_drafter.py export OUTDIR DEST_DIR [--target T]   the checkpoint's drafter -> DEST_DIR
       train_drafter.py eval TARGET_DIR DRAFTER_DIR OUTDIR     simulated greedy DFlash decode (held-out)
       train_drafter.py parity MKFIXTURE                       this forward vs tools/oracle/dflash_oracle.py

Data (shared/reference/dflash.md 4): prompts are windows of --prompt-len ids (a list N,N,...
splits the sequences evenly over several lengths) from --prompt-file (.u16 / .i32 raw little-endian
ids, .npy, or text with ids separated by commas, blanks or newlines; the last 5% of the file is kept
for the held-out prompts unless --eval-file gives them), else uniform random ids below
--random-vocab (default vocab_size - 8, clear of the special ids at the top). The target
(transformers' MiMoV2FlashForCausalLM in float32, loaded from TARGET_DIR in our hub dialect)
continues each prompt by --gen-tokens tokens, greedy with --temperature 0 (the default) or sampled at
that temperature (no top-k / top-p); with --stop-at-eos (default) a sequence ends after its first
eos_token_id. Sequences and settings are kept in OUTDIR/data.pt and reused by --resume. The target's
residual stream after each of --taps (for the last layer: before the final norm) is captured by one
teacher-forced forward over each whole sequence.

Training: each step takes --batch sequences and --anchors random anchor positions a per sequence,
drawn without replacement from the generated part (prompt_len <= a <= len - 2, as at inference where
the first anchor is the first generated token); the block is [x_a, MASK x (B-1)] at positions
a..a+B-1, it sees context positions c < a with (a + k) - c < --window and its own B rows
(non-causal); row k predicts x_{a+k} (labels past the sequence's end are masked). Loss: cross entropy
weighted exp(-(k-1)/gamma), k = 1..B-1 (gamma --gamma, default 4 for B = 8 as in the paper: 7/5/4
for B = 16/10/8), normalized by the weights of the valid labels. AdamW (betas 0.9/0.95, weight decay
--weight-decay) at --lr with linear warmup over --warmup (fraction of --steps) and cosine decay to
--min-lr-ratio x lr; gradients clipped to --clip. The target's embed_tokens and lm_head are frozen
(buffers, not parameters); the mask embedding is trained, initialised with the mean embedding row.

Logs: OUTDIR/log.jsonl, one line per --log-every steps: loss, lr, grad norm, acc_k (k = 1..B-1,
argmax == label over the interval), tau_est = 1 + sum_k prod_{i<=k} acc_i (the brief's estimate, from
per-position accuracies) and tau_block = mean over full blocks of 1 + the number of leading correct
drafts (the acceptance length of a greedy verify at a uniformly random anchor).
Checkpoints: OUTDIR/ckpt.pt (model, optimizer, scheduler, step, RNG states, args) every --ckpt-every
steps, at --max-minutes and at the end, written atomically; `--resume` continues bit for bit (same
flags: those that change the model, the data or the schedule must match, else it stops).

Evaluation (end of training, and the `eval` command): --eval-prompts held-out prompts (a different
random seed, or the held-out tail of --prompt-file) continued greedily by the target for
--eval-tokens tokens (eos ignored); then (1) the random-anchor statistics above over every anchor, and
(2) a simulated greedy DFlash decode that follows runtime/dflash.c's rt_generate: the first token
comes from the prefill, each step drafts with block min(B, tokens left) at the anchor p, accepts the
leading drafts equal to the target's greedy tokens, p += a + 1; tau = tokens per step. Since the
greedy DFlash output equals plain greedy, this predicts `mimo-run --dflash --ignore-eos` step for step.
OUTDIR/eval.json holds the prompts, the tokens and both figures.

Export: OUTDIR/dflash (config.json, dflash_draft_model.safetensors BF16, model.safetensors.index.json,
mask_embedding.pt = {"mask_token_id": int, "embedding": bf16[H]}), the layout of mimo-mkfixture's
drafter and libquant/drafter.h; --export-to DIR writes a second copy there (e.g. TARGET_DIR/dflash).
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dflash_model as dm  # noqa: E402

# flags that must not change on --resume (the model, the data and the schedule depend on them)
FIXED = ("taps", "layers", "heads", "kv_heads", "head_dim", "intermediate", "block", "window", "rope_theta",
         "partial_rotary", "value_scale", "no_sinks", "mask_id", "rms_eps", "seed", "prompt_file", "prompt_len",
         "gen_tokens", "num_seqs", "temperature", "stop_at_eos", "random_vocab", "steps", "lr", "warmup",
         "min_lr_ratio", "batch", "anchors", "gamma", "weight_decay", "clip", "init_std", "soft_labels",
         "online_taps", "init_from")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Prompts and data.

def read_ids(path):
    if path.endswith(".u16"):
        return np.fromfile(path, dtype="<u2").astype(np.int64)
    if path.endswith(".i32"):
        return np.fromfile(path, dtype="<i4").astype(np.int64)
    if path.endswith(".npy"):
        return np.load(path).reshape(-1).astype(np.int64)
    txt = open(path).read().replace(",", " ").split()
    try:
        return np.array([int(t) for t in txt], dtype=np.int64)
    except ValueError as e:
        raise SystemExit(f"{path}: not a list of integer token ids ({e})")


def int_list(text):
    """"32" or "32,64,128" -> [32] / [32, 64, 128] (argparse type)."""
    try:
        v = [int(x) for x in str(text).split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected N or N,N,...")
    if not v or min(v) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: lengths must be >= 1")
    return v


def make_prompts(a, vocab, n, rng, heldout, plen):
    """n prompts [n, plen] int64: windows of the prompt file (train part; held out: --eval-file when given,
    else the file's last 5%) or random ids."""
    if a.prompt_file:
        path = getattr(a, "eval_file", None) if heldout else None
        ids = read_ids(path or a.prompt_file)
        if ids.min() < 0 or ids.max() >= vocab:
            raise SystemExit(f"{path or a.prompt_file}: ids outside 0..{vocab - 1}")
        cut = int(len(ids) * 0.95)
        lo, hi = ((0, len(ids)) if path else (cut, len(ids))) if heldout else (0, cut)
        if hi - lo < plen + 1:
            raise SystemExit(f"{path or a.prompt_file}: {hi - lo} ids in the {'held-out' if heldout else 'training'} "
                             f"part, fewer than the prompt length {plen}")
        if getattr(a, "prompt_sampling", "stream") == "doc":
            # a document uniformly (documents are separated by the <|endoftext|> id, --doc-sep-id), then a
            # window inside it: every file weighs the same, as in mimo-eval's prompt rule, where windows
            # drawn uniformly over the stream favour long files
            part = ids[lo:hi]
            cuts = np.flatnonzero(part == a.doc_sep_id)
            bounds = np.concatenate(([0], cuts + 1, [len(part)]))
            docs = [(lo + b0, lo + b1) for b0, b1 in zip(bounds[:-1], bounds[1:]) if b1 - b0 > plen]
            if not docs:
                raise SystemExit(f"{path or a.prompt_file}: no document longer than the prompt length {plen}")
            pick = rng.integers(0, len(docs), size=n)
            starts = [int(rng.integers(docs[d][0], docs[d][1] - plen)) for d in pick]
        else:
            starts = rng.integers(lo, hi - plen, size=n)
        return np.stack([ids[s:s + plen] for s in starts])
    top = a.random_vocab or vocab - 8
    if not 1 <= top <= vocab:
        raise SystemExit(f"--random-vocab {top} outside 1..{vocab}")
    return rng.integers(0, top, size=(n, plen)).astype(np.int64)


@torch.no_grad()
def generate(model, hub, prompts, new_tokens, temperature, stop_at_eos, gen_batch, device, seed, what):
    """Target continuations: tokens [n, P + new] int64 and lengths [n] (cut after the first eos).
    A plain decode loop on a DynamicCache (transformers' generate() is ~10x slower on the CPU for this
    model); greedy = argmax, else sampling from softmax(logits / temperature) with torch's RNG."""
    from transformers import DynamicCache
    torch.manual_seed(seed)
    out, t0 = [], time.time()
    for i in range(0, len(prompts), gen_batch):
        x = torch.from_numpy(prompts[i:i + gen_batch]).to(device)
        cache = DynamicCache(config=model.config)
        # only the last position's logits: a batch of 8192 prompts of 128 ids would otherwise hold
        # 8192 x 128 x vocab floats
        logits = model(x, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1].float()
        toks = [x]
        for j in range(new_tokens):
            if temperature > 0:
                nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1)
            else:
                nxt = logits.argmax(-1, keepdim=True)
            toks.append(nxt)
            if j + 1 < new_tokens:
                logits = model(nxt, past_key_values=cache, use_cache=True).logits[:, -1].float()
        out.append(torch.cat(toks, 1).cpu())
        log(f"{what}: {i + len(x)}/{len(prompts)} sequences, {time.time() - t0:.0f} s")
    tok = torch.cat(out)
    P = prompts.shape[1]
    lens = torch.full((len(tok),), tok.shape[1], dtype=torch.long)
    eos = hub.get("eos_token_id")
    if stop_at_eos and eos is not None:
        eos_ids = eos if isinstance(eos, list) else [eos]
        for i in range(len(tok)):
            hit = [j for j in range(P, tok.shape[1]) if int(tok[i, j]) in eos_ids]
            if hit:
                lens[i] = hit[0] + 1
    return tok, lens


@torch.no_grad()
def compute_taps(tt, tok, batch, device, dtype):
    out = None
    for i in range(0, len(tok), batch):
        t = tt.taps_of(tok[i:i + batch].to(device)).to(dtype)
        if out is None:  # one allocation: a concatenation would hold the data twice
            out = torch.empty((len(tok),) + tuple(t.shape[1:]), dtype=dtype, device=t.device)
        out[i:i + len(t)] = t
    return out


# ---------------------------------------------------------------------------------------------
# Loss and statistics.

def sample_anchors(lens, plens, A, gen):
    """anchors [S, A] drawn without replacement from P_i..len_i-2 (with replacement when fewer exist)."""
    S = len(lens)
    anchors = torch.empty(S, A, dtype=torch.long)
    for i in range(S):
        P = int(plens[i])
        n = int(lens[i]) - 1 - P
        if n <= 0:
            raise SystemExit(f"a sequence of length {int(lens[i])} has no anchor after the prompt of {P}")
        if n >= A:
            anchors[i] = P + torch.randperm(n, generator=gen)[:A]
        else:
            anchors[i] = P + torch.randint(0, n, (A,), generator=gen)
    return anchors


def soft_targets(lm_head, last, anchors, B):
    """The target's next-token distributions for the draft rows: row k of the block at anchor a is
    labelled x_{a+k}, which the target predicts from position a+k-1. last [S, T, H] final-normed
    hidden states -> probabilities [S, A, B-1, V] (positions past the end are clamped; their rows
    are masked by block_loss)."""
    S, A = anchors.shape
    T, H = last.shape[1], last.shape[2]
    k = torch.arange(1, B, device=last.device)
    pos = (anchors[:, :, None] + k - 1).clamp(max=T - 1).reshape(S, -1, 1).expand(-1, -1, H)
    h = torch.gather(last, 1, pos).view(S, A, B - 1, H)
    return torch.softmax(lm_head(h).float(), -1)


def block_loss(model, taps, tok, lens, anchors, gamma, B, soft=None, soft_w=0.0):
    """Returns (loss, stats) with stats = dict of summed counts for acc_k and tau_block. With soft
    ([S, A, B-1, V] target probabilities), the per-row loss is (1 - soft_w) x CE(label) + soft_w x
    CE(soft) (distillation on the target's whole distribution; the label is its argmax)."""
    S, A = anchors.shape
    hid = model(taps, tok, anchors, block=B)  # [S, A, B-1, H]
    logits = model.logits(hid).float()
    k = torch.arange(1, B, device=taps.device)
    lab_pos = anchors[:, :, None] + k  # [S, A, B-1]
    valid = lab_pos < lens.to(taps.device)[:, None, None]
    labels = torch.gather(tok, 1, lab_pos.clamp(max=tok.shape[1] - 1).reshape(S, -1)).view(S, A, B - 1)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none").view(S, A, B - 1)
    w = torch.exp(-(k - 1).float() / gamma)[None, None, :] * valid
    row = ce
    if soft is not None and soft_w > 0:
        row = (1 - soft_w) * ce + soft_w * -(soft * F.log_softmax(logits, -1)).sum(-1)
    loss = (row * w).sum() / w.sum().clamp(min=1e-9)
    with torch.no_grad():
        right = (logits.argmax(-1) == labels) & valid
        full = valid.all(-1)
        lead = torch.cumprod(right.long(), -1).sum(-1)  # leading correct drafts
        st = {"right": right.sum((0, 1)).double().cpu(), "valid": valid.sum((0, 1)).double().cpu(),
              "tau_sum": float((lead + 1)[full].sum()), "tau_n": float(full.sum()),
              "ce_k": (ce * valid).sum((0, 1)).double().cpu()}
    return loss, st


def merge(acc, st):
    if acc is None:
        return {k: (v.clone() if torch.is_tensor(v) else v) for k, v in st.items()}
    for k, v in st.items():
        acc[k] = acc[k] + v
    return acc


def summarize(acc):
    acck = (acc["right"] / acc["valid"].clamp(min=1)).tolist()
    tau, prod = 1.0, 1.0
    for x in acck:
        prod *= x
        tau += prod
    return {"acc_k": [round(x, 4) for x in acck], "tau_est": round(tau, 4),
            "tau_block": round(acc["tau_sum"] / max(acc["tau_n"], 1), 4),
            "ce_k": [round(x, 4) for x in (acc["ce_k"] / acc["valid"].clamp(min=1)).tolist()]}


# ---------------------------------------------------------------------------------------------
# Evaluation.

@torch.no_grad()
def simulate_decode(model, taps, seq, P, n_new, B):
    """Greedy DFlash as rt_generate runs it, against the target's greedy tokens seq (prompt + >= n_new).
    Returns (tau, accept_hist[1..B], steps)."""
    dev = taps.device
    tok = seq[None].to(dev)
    p, left = P, n_new - 1  # the first generated token (position P) comes from the prefill
    hist = [0] * (B + 1)
    while left > 0:
        bs = min(B, left)
        a = 0
        if bs > 1:
            hid = model(taps[None, :p], tok, torch.tensor([[p]], device=dev), block=bs)
            drafts = model.logits(hid)[0, 0].argmax(-1).tolist()
            truth = seq[p + 1:p + bs].tolist()
            while a < len(drafts) and drafts[a] == truth[a]:
                a += 1
        hist[a + 1] += 1
        p += a + 1
        left -= a + 1
    steps = sum(hist)
    return sum(i * h for i, h in enumerate(hist)) / steps, hist[1:], steps


@torch.no_grad()
def heldout_stats(model, taps, ev, device, B, gamma):
    """Random-anchor statistics over every anchor of the held-out sequences (taps precomputed)."""
    was = model.training
    model.eval()
    tok, P = ev["tokens"], ev["prompt_len"]
    acc = None
    for i in range(len(tok)):
        anchors = torch.arange(P, tok.shape[1] - 1)[None].to(device)
        _, st = block_loss(model, taps[i:i + 1].to(device), tok[i:i + 1].to(device),
                           torch.tensor([tok.shape[1]]), anchors, gamma, B)
        acc = merge(acc, st)
    model.train(was)
    return summarize(acc)


@torch.no_grad()
def evaluate(model, tt, ev, device, B, gamma, batch):
    """ev: dict tokens [n, P + N], prompt_len, new. Returns the eval report."""
    model.eval()
    tok, P, N = ev["tokens"], ev["prompt_len"], ev["new"]
    taps = compute_taps(tt, tok, batch, device, torch.float32)
    rep = heldout_stats(model, taps, ev, device, B, gamma)
    per = []
    for i in range(len(tok)):
        tau, hist, steps = simulate_decode(model, taps[i].to(device), tok[i], P, N, B)
        per.append({"prompt": tok[i, :P].tolist(), "tokens": tok[i, P:P + N].tolist(), "sim_tau": round(tau, 6),
                    "sim_accept_hist": hist, "sim_steps": steps})
    tot_tok = sum(sum((j + 1) * h for j, h in enumerate(r["sim_accept_hist"])) for r in per)
    rep["sim_tau_mean"] = round(sum(r["sim_tau"] for r in per) / len(per), 4)
    rep["sim_tau_pooled"] = round(tot_tok / sum(r["sim_steps"] for r in per), 4)
    rep["prompts"] = per
    model.train()
    return rep


# ---------------------------------------------------------------------------------------------
# Train.

def lr_factor(step, total, warm, floor):
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def save_ckpt(path, model, opt, sched, step, gen, args, cfg):
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step,
             "rng": {"torch": torch.get_rng_state(), "data": gen.get_state(), "python": random.getstate(),
                     "numpy": np.random.get_state(),
                     "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
             "args": vars(args), "cfg": cfg}
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def build_cfg(a, hub):
    taps = [int(x) for x in a.taps.split(",")]
    nl = hub["num_hidden_layers"]
    if taps != sorted(set(taps)) or taps[0] < 0 or taps[-1] >= nl:
        raise SystemExit(f"--taps {a.taps}: strictly increasing ids below the target's {nl} layers")
    mask_id = a.mask_id if a.mask_id is not None else hub["vocab_size"] - 1
    if not 0 <= mask_id < hub["vocab_size"]:
        raise SystemExit(f"--mask-id {mask_id} outside the target's vocabulary")
    if a.block < 2:
        raise SystemExit("--block must be >= 2")
    return {"hidden_size": hub["hidden_size"], "intermediate_size": a.intermediate or 2 * hub["hidden_size"],
            "num_hidden_layers": a.layers, "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads,
            "head_dim": a.head_dim, "rms_norm_eps": a.rms_eps, "partial_rotary_factor": a.partial_rotary,
            "rope_theta": a.rope_theta, "block_size": a.block, "target_layer_ids": taps,
            "target_hidden_size": hub["hidden_size"], "window": a.window, "value_scale": a.value_scale,
            "sinks": not a.no_sinks, "mask_token_id": mask_id, "num_anchors": a.anchors,
            "loss_decay_gamma": a.gamma, "init_std": a.init_std}


def cmd_train(a):
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    np.random.seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = a.device
    os.makedirs(a.out, exist_ok=True)
    ckpt_path = os.path.join(a.out, "ckpt.pt")
    data_path = os.path.join(a.out, "data.pt")
    state = None
    if os.path.exists(ckpt_path):
        if not a.resume:
            raise SystemExit(f"{ckpt_path} exists: pass --resume to continue it, or choose another OUTDIR")
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        diff = [k for k in FIXED if state["args"].get(k) != getattr(a, k)]
        if diff:
            raise SystemExit(f"--resume: {', '.join('--' + k.replace('_', '-') for k in diff)} differ from the "
                             f"checkpoint's ({', '.join(str(state['args'].get(k)) for k in diff)})")
    t_start = time.time()
    model_t, hub = dm.load_target(a.target, dtype=torch.float32, device=dev)
    cfg = build_cfg(a, hub)
    tt = dm.TapTarget(model_t, cfg["target_layer_ids"])
    B = cfg["block_size"]

    # data
    gen_meta = {k: getattr(a, k) for k in ("seed", "prompt_file", "prompt_len", "gen_tokens", "num_seqs",
                                           "temperature", "stop_at_eos", "random_vocab", "eval_prompts",
                                           "eval_tokens", "eval_file", "eval_prompt_len", "prompt_sampling",
                                           "doc_sep_id")}
    gen_meta["target"] = os.path.abspath(a.target)
    if os.path.exists(data_path):
        data = torch.load(data_path, map_location="cpu", weights_only=False)
        if data["meta"] != gen_meta:
            raise SystemExit(f"{data_path} was generated with other settings: {data['meta']} (now {gen_meta}); "
                             "remove it or use another OUTDIR")
        log(f"data: {data_path} reused ({len(data['tokens'])} sequences)")
    else:
        rng = np.random.default_rng(a.seed)
        # the sequences are split evenly over the prompt lengths (the first ones take the remainder)
        L, parts = len(a.prompt_len), []
        for j, plen in enumerate(a.prompt_len):
            n = a.num_seqs // L + (1 if j < a.num_seqs % L else 0)
            prompts = make_prompts(a, hub["vocab_size"], n, rng, heldout=False, plen=plen)
            t, l = generate(model_t, hub, prompts, a.gen_tokens, a.temperature, a.stop_at_eos, a.gen_batch, dev,
                            a.seed + j, f"train data (prompt {plen})")
            parts.append((t, l, torch.full((n,), plen, dtype=torch.long)))
        width = max(t.shape[1] for t, _, _ in parts)
        tok = torch.cat([F.pad(t, (0, width - t.shape[1])) for t, _, _ in parts])
        lens = torch.cat([l for _, l, _ in parts])
        plens = torch.cat([p for _, _, p in parts])
        erng = np.random.default_rng(a.seed + 7919)
        eplen = a.eval_prompt_len or a.prompt_len[0]
        eprompts = make_prompts(a, hub["vocab_size"], a.eval_prompts, erng, heldout=True, plen=eplen)
        etok, _ = generate(model_t, hub, eprompts, a.eval_tokens, 0.0, False, a.gen_batch, dev, a.seed, "eval data")
        data = {"meta": gen_meta, "tokens": tok, "lens": lens, "plens": plens,
                "eval": {"tokens": etok, "prompt_len": eplen, "new": a.eval_tokens},
                "seconds": time.time() - t_start}
        torch.save(data, data_path + ".tmp")
        os.replace(data_path + ".tmp", data_path)
        log(f"data: {len(tok)} sequences of {tok.shape[1]} tokens generated in {data['seconds']:.0f} s")
    tok, lens, plens = data["tokens"], data["lens"], data["plens"]
    if a.data_only:
        log("--data-only: data written, stopping")
        return
    t0 = time.time()
    taps_all = None
    if not a.online_taps:
        tap_dtype = torch.bfloat16 if a.tap_dtype == "bf16" else torch.float32
        taps_all = compute_taps(tt, tok, a.gen_batch, dev, tap_dtype)
        log(f"taps: {tuple(taps_all.shape)} {a.tap_dtype} in {time.time() - t0:.0f} s "
            f"({taps_all.numel() * taps_all.element_size() / 2**20:.0f} MiB)")
    elif a.soft_labels == 0:
        log("taps: computed for each batch (--online-taps)")
    if a.soft_labels > 0 and not a.online_taps:
        raise SystemExit("--soft-labels needs --online-taps (the target's distributions come from its forward)")

    eval_taps = compute_taps(tt, data["eval"]["tokens"], a.gen_batch, dev, torch.float32) if a.eval_every else None
    model = dm.Drafter(cfg, model_t.model.embed_tokens.weight, model_t.lm_head.weight).to(dev)
    nparam = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay}, {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95))
    warm = max(1, int(round(a.warmup * a.steps)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, a.steps, warm, a.min_lr_ratio))
    gen = torch.Generator().manual_seed(a.seed)
    step = 0
    if a.init_from and state is None:
        # start from an exported drafter (fine-tuning on new data): same architecture, fresh optimizer
        init = dm.load_exported(a.init_from, model_t, hub)
        diff = [k for k in cfg if k not in ("num_anchors", "loss_decay_gamma", "init_std")
                and init.cfg.get(k) != cfg[k]]
        if diff:
            raise SystemExit(f"--init-from {a.init_from}: {', '.join(f'{k} {init.cfg.get(k)} != {cfg[k]}' for k in diff)} "
                             "(the flags must describe the same drafter)")
        model.load_state_dict(init.to(dev).state_dict())
        log(f"initialised from {a.init_from}")
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step = state["step"]
        gen.set_state(state["rng"]["data"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        if state["rng"].get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        # log lines past the checkpoint (written after it, before an interruption) are dropped: those
        # steps run again
        lp = os.path.join(a.out, "log.jsonl")
        if os.path.exists(lp):
            keep = [l for l in open(lp) if l.strip() and json.loads(l)["step"] <= step]
            open(lp, "w").writelines(keep)
        log(f"resumed at step {step}")
    log(f"drafter: {nparam} trainable parameters, {cfg['num_hidden_layers']} layers, block {B}, taps "
        f"{cfg['target_layer_ids']}, window {cfg['window']}; {a.steps} steps of {a.batch} x {a.anchors} blocks")
    logf = open(os.path.join(a.out, "log.jsonl"), "a")
    acc, t_log, n_log, loss_sum = None, time.time(), 0, 0.0
    t_train = time.time()
    stopped = False
    model.train()
    while step < a.steps:
        idx = torch.randint(0, len(tok), (a.batch,), generator=gen)
        bl = lens[idx]
        T = int(bl.max())
        anchors = sample_anchors(bl, plens[idx], a.anchors, gen)
        btok = tok[idx, :T].to(dev)
        anchors = anchors.to(dev)
        soft = None
        if taps_all is not None:
            taps = taps_all[idx, :T].to(dev).float()
        elif a.soft_labels > 0:
            taps, last = tt.taps_of(btok, with_last=True)
            with torch.no_grad():
                soft = soft_targets(model_t.lm_head, last, anchors, B)
        else:
            taps = tt.taps_of(btok)
        loss, st = block_loss(model, taps, btok, bl, anchors, a.gamma, B, soft, a.soft_labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        sched.step()
        step += 1
        acc = merge(acc, st)
        loss_sum += loss.item()
        n_log += 1
        if step % a.log_every == 0 or step == a.steps:
            s = summarize(acc)
            rec = {"step": step, "loss": round(loss_sum / n_log, 5), "lr": opt.param_groups[0]["lr"],
                   "grad_norm": round(float(gn), 4), "acc_k": s["acc_k"], "tau_est": s["tau_est"],
                   "tau_block": s["tau_block"], "s_per_step": round((time.time() - t_log) / n_log, 4),
                   "elapsed_s": round(time.time() - t_start, 1)}
            if a.eval_every and (step % a.eval_every == 0 or step == a.steps):
                h = heldout_stats(model, eval_taps, data["eval"], dev, B, a.gamma)
                rec["heldout"] = {k: h[k] for k in ("acc_k", "tau_est", "tau_block")}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            log(f"step {step}: loss {rec['loss']:.4f} tau_est {s['tau_est']:.3f} tau_block {s['tau_block']:.3f} "
                f"acc {s['acc_k']} ({rec['s_per_step']:.3f} s/step)"
                + (f"; held-out tau_est {rec['heldout']['tau_est']:.3f} tau_block {rec['heldout']['tau_block']:.3f}"
                   if "heldout" in rec else ""))
            acc, t_log, n_log, loss_sum = None, time.time(), 0, 0.0
        out_of_time = ((a.max_minutes and (time.time() - t_train) > 60 * a.max_minutes)
                       or (a.deadline and time.time() > a.deadline))
        stop_now = a.stop_after and step >= a.stop_after
        if step % a.ckpt_every == 0 or step == a.steps or out_of_time or stop_now:
            save_ckpt(ckpt_path, model, opt, sched, step, gen, a, cfg)
        if stop_now:
            log(f"--stop-after {a.stop_after}: checkpoint written, stopping")
            stopped = True
            break
        if out_of_time:
            log(f"time limit (--max-minutes / --deadline) reached at step {step}: checkpoint written")
            stopped = True
            break
    train_s = time.time() - t_train
    logf.close()
    if stopped and a.stop_after:
        return
    # evaluate and export
    rep = evaluate(model, tt, data["eval"], dev, B, a.gamma, a.gen_batch)
    rep.update({"step": step, "train_seconds": round(train_s, 1), "total_seconds": round(time.time() - t_start, 1)})
    json.dump(rep, open(os.path.join(a.out, "eval.json"), "w"), indent=1)
    log(f"held-out: tau_est {rep['tau_est']} tau_block {rep['tau_block']} simulated decode tau "
        f"{[r['sim_tau'] for r in rep['prompts']]} (mean {rep['sim_tau_mean']}) acc {rep['acc_k']}")
    for d in [os.path.join(a.out, "dflash")] + ([a.export_to] if a.export_to else []):
        dm.export_drafter(model, hub, d)
        log(f"exported to {d}")


def cmd_export(a):
    state = torch.load(os.path.join(a.out, "ckpt.pt"), map_location="cpu", weights_only=False)
    target = a.target or state["args"]["target"]
    model_t, hub = dm.load_target(target)
    model = dm.Drafter(state["cfg"], model_t.model.embed_tokens.weight, model_t.lm_head.weight)
    model.load_state_dict(state["model"])
    dm.export_drafter(model, hub, a.dest)
    log(f"step {state['step']} exported to {a.dest}")


def cmd_eval(a):
    if a.threads:
        torch.set_num_threads(a.threads)
    model_t, hub = dm.load_target(a.target, device=a.device)
    model = dm.load_exported(a.drafter, model_t, hub).to(a.device)
    tt = dm.TapTarget(model_t, model.cfg["target_layer_ids"])
    rng = np.random.default_rng(a.seed + 7919)
    prompts = make_prompts(a, hub["vocab_size"], a.eval_prompts, rng, heldout=True, plen=a.prompt_len)
    etok, _ = generate(model_t, hub, prompts, a.eval_tokens, 0.0, False, a.gen_batch, a.device, a.seed, "eval data")
    rep = evaluate(model, tt, {"tokens": etok, "prompt_len": a.prompt_len, "new": a.eval_tokens}, a.device,
                   model.B, a.gamma, a.gen_batch)
    os.makedirs(a.out, exist_ok=True)
    json.dump(rep, open(os.path.join(a.out, "eval.json"), "w"), indent=1)
    log(f"tau_est {rep['tau_est']} tau_block {rep['tau_block']} simulated tau {rep['sim_tau_mean']} acc {rep['acc_k']}")


def cmd_parity(a):
    """Loads mimo-mkfixture's tiny drafter into this module's Drafter and into the oracle's, and compares
    draft logits at several anchors of one random sequence, one block per forward and all in one."""
    import importlib.util
    import subprocess
    import tempfile
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("dflash_oracle",
                                                  os.path.join(here, "..", "oracle", "dflash_oracle.py"))
    orc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(orc)
    work = tempfile.mkdtemp(prefix="mimo-parity-")
    subprocess.run([a.mkfixture, "--preset", "tiny", "--variant", "bf16", "--out", work + "/T", "-q"], check=True,
                   stdout=subprocess.DEVNULL)
    model_t, hub = dm.load_target(work + "/T")
    ddir = work + "/T/dflash"
    mine = dm.load_exported(ddir, model_t, hub)
    ref = orc.Drafter(ddir, model_t, "rope_theta")
    tt = dm.TapTarget(model_t, mine.cfg["target_layer_ids"])
    g = torch.Generator().manual_seed(5)
    seq = torch.randint(0, hub["vocab_size"] - 8, (1, 101), generator=g)
    taps = tt.taps_of(seq[:, :100])
    ctx_ref = ref.context(taps[0].view(100, len(ref.taps), -1))
    ps = [1, 17, 64, 65, 93]
    with torch.no_grad():
        batched = mine.logits(mine(taps, seq, torch.tensor([ps])))[0]  # [5, B-1, V]
        worst = 0.0
        for i, p in enumerate(ps):
            want = ref.draft_logits(ctx_ref, int(seq[0, p]), p)
            one = mine.logits(mine(taps[:, :p], seq, torch.tensor([[p]])))[0, 0]
            d1 = float((one - want).abs().max())
            d2 = float((batched[i] - want).abs().max())
            worst = max(worst, d1, d2)
            print(f"p={p}: max |this - oracle| single {d1:.3g}, batched {d2:.3g}; logit std {float(want.std()):.3f}")
        # round trip: export then reload gives the same weights
        dm.export_drafter(mine, hub, work + "/rt")
        back = dm.load_exported(work + "/rt", model_t, hub)
        rt = max(float((x - y).abs().max()) for x, y in zip(mine.parameters(), back.parameters()))
    import shutil
    shutil.rmtree(work, ignore_errors=True)
    print(f"parity: worst {worst:.3g} (tolerance 1e-4); export round trip max |diff| {rt:.3g}")
    if worst > 1e-4 or rt != 0.0:
        raise SystemExit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("target")
    t.add_argument("out")
    m = t.add_argument_group("drafter")
    m.add_argument("--taps", default="0,5,11", help="target_layer_ids, comma separated (default 0,5,11)")
    m.add_argument("--layers", type=int, default=2)
    m.add_argument("--heads", type=int, default=4)
    m.add_argument("--kv-heads", type=int, default=2)
    m.add_argument("--head-dim", type=int, default=64)
    m.add_argument("--intermediate", type=int, default=0, help="default 2 x hidden")
    m.add_argument("--block", type=int, default=8)
    m.add_argument("--window", type=int, default=64, help="SWA window on context keys (q - c < W)")
    m.add_argument("--rope-theta", type=float, default=10000.0)
    m.add_argument("--partial-rotary", type=float, default=0.5)
    m.add_argument("--value-scale", type=float, default=0.612)
    m.add_argument("--no-sinks", action="store_true", help="no per-head attention sink logits")
    m.add_argument("--mask-id", type=int, default=None, help="mask_token_id (default vocab_size - 1)")
    m.add_argument("--rms-eps", type=float, default=1e-5)
    m.add_argument("--init-std", type=float, default=0.02)
    m.add_argument("--init-from", default=None, help="start from this exported drafter directory (its weights; "
                   "the optimizer starts fresh) instead of random weights")
    d = t.add_argument_group("data")
    d.add_argument("--prompt-file", default=None)
    d.add_argument("--prompt-len", type=int_list, default=[16],
                   help="prompt length, or several (N,N,...): the sequences are split evenly over them")
    d.add_argument("--random-vocab", type=int, default=0, help="random prompt ids below this (default vocab - 8)")
    d.add_argument("--num-seqs", type=int, default=256)
    d.add_argument("--gen-tokens", type=int, default=96)
    d.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    d.add_argument("--stop-at-eos", type=int, default=1, choices=(0, 1))
    d.add_argument("--gen-batch", type=int, default=64)
    d.add_argument("--tap-dtype", choices=("f32", "bf16"), default="f32")
    d.add_argument("--online-taps", action="store_true",
                   help="compute each batch's taps with a target forward instead of storing all (memory: tokens only)")
    d.add_argument("--data-only", action="store_true", help="generate OUTDIR/data.pt and stop")
    d.add_argument("--eval-prompts", type=int, default=4)
    d.add_argument("--eval-file", default=None,
                   help="held-out prompts from these ids (e.g. CORPUS/eval_code.u16; default: the last 5%% of "
                        "--prompt-file)")
    d.add_argument("--eval-prompt-len", type=int, default=0, help="default: the first --prompt-len")
    d.add_argument("--prompt-sampling", choices=("stream", "doc"), default="stream",
                   help="prompt windows uniform over the id stream (default) or a uniform document first")
    d.add_argument("--doc-sep-id", type=int, default=8190, help="document separator id for --prompt-sampling doc")
    d.add_argument("--eval-tokens", type=int, default=64)
    o = t.add_argument_group("optimization")
    o.add_argument("--steps", type=int, default=1000)
    o.add_argument("--batch", type=int, default=8, help="sequences per step")
    o.add_argument("--anchors", type=int, default=64, help="anchors (blocks) per sequence")
    o.add_argument("--gamma", type=float, default=4.0)
    o.add_argument("--soft-labels", type=float, default=0.0,
                   help="weight of distillation on the target's distribution (0..1; needs --online-taps)")
    o.add_argument("--lr", type=float, default=6e-4)
    o.add_argument("--warmup", type=float, default=0.04)
    o.add_argument("--min-lr-ratio", type=float, default=0.0)
    o.add_argument("--weight-decay", type=float, default=0.0)
    o.add_argument("--clip", type=float, default=1.0)
    r = t.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    r.add_argument("--threads", type=int, default=0)
    r.add_argument("--log-every", type=int, default=10)
    r.add_argument("--ckpt-every", type=int, default=100)
    r.add_argument("--eval-every", type=int, default=0, help="held-out random-anchor statistics every N steps "
                   "(at a logging step; 0 = only at the end)")
    r.add_argument("--max-minutes", type=float, default=0)
    r.add_argument("--deadline", type=float, default=0,
                   help="stop training (checkpoint, evaluate, export) at this Unix time")
    r.add_argument("--stop-after", type=int, default=0, help="checkpoint and stop after this step (tests resume)")
    r.add_argument("--resume", action="store_true")
    r.add_argument("--export-to", default=None)
    e = sub.add_parser("export")
    e.add_argument("out")
    e.add_argument("dest")
    e.add_argument("--target", default=None)
    v = sub.add_parser("eval")
    v.add_argument("target")
    v.add_argument("drafter")
    v.add_argument("out")
    for k, val in (("--prompt-file", None), ("--eval-file", None), ("--prompt-len", 16), ("--random-vocab", 0), ("--eval-prompts", 4),
                   ("--eval-tokens", 64), ("--seed", 0), ("--gen-batch", 64), ("--threads", 0), ("--gamma", 4.0)):
        v.add_argument(k, type=type(val) if val is not None else str, default=val)
    v.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p = sub.add_parser("parity")
    p.add_argument("mkfixture")
    a = ap.parse_args()
    if a.cmd == "train":
        a.target = os.path.abspath(a.target)
    {"train": cmd_train, "export": cmd_export, "eval": cmd_eval, "parity": cmd_parity}[a.cmd](a)


if __name__ == "__main__":
    main()
