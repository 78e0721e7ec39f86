"""Builds the nano model's corpus and tokenizer from text that exists offline on the training host.

usage: corpus.py OUTDIR [--vocab 8192] [--max-mb 256] [--tokenizer FILE]

Code: every *.py file of the running Python's standard library and of its site-packages
directories, deduplicated by content (SHA-256), files of 1 KB..256 KB only. Prose: the long
descriptions in site-packages' *.dist-info/METADATA files and the *.md / *.rst / *.txt files there
(READMEs, changelogs, licenses), deduplicated the same way. Held out for evaluation (never trained
on): code files whose SHA-256 of content starts with "00" or "01" (~0.8%), prose files whose
SHA-256 starts with "0" (~6%); their paths are written
to OUTDIR/heldout_code.txt and OUTDIR/heldout_prose.txt (copied into the repository with the model).

Writes OUTDIR/tokenizer.json (Qwen2-style byte-level BPE, the configuration of
tools/oracle/make_tokenizer.py, vocab ids 0..V-5 learned, then <|im_start|> <|im_end|>
<|endoftext|> <|MASK|>), OUTDIR/{train,eval_code,eval_prose}.u16 (token ids, documents separated by
<|endoftext|>), OUTDIR/corpus.json (counts, sizes, versions). With --tokenizer FILE no tokenizer is
trained: the corpus is encoded with FILE (e.g. fixtures/nano/bf16/tokenizer.json, to rebuild the nano
model's corpus on a fresh host).
"""
import argparse
import glob
import hashlib
import importlib.util
import json
import os
import site
import sys
import sysconfig

import numpy as np
import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("make_tokenizer", os.path.join(here, "..", "oracle", "make_tokenizer.py"))
mt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mt)


def roots():
    r = [sysconfig.get_paths()["stdlib"]] + list(site.getsitepackages())
    extra = "/usr/lib/python3/dist-packages"
    if os.path.isdir(extra):
        r.append(extra)
    return [p for p in dict.fromkeys(r) if os.path.isdir(p)]


def read(path):
    try:
        with open(path, "rb") as f:
            b = f.read()
        return b.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def metadata_description(text):
    # the body after the header block of a METADATA file (RFC 822 style), the long description
    parts = text.split("\n\n", 1)
    return parts[1] if len(parts) == 2 else ""


def collect(max_bytes):
    seen = set()
    code, prose = [], []
    for root in roots():
        for path in sorted(glob.glob(os.path.join(root, "**", "*"), recursive=True)):
            if not os.path.isfile(path):
                continue
            base = os.path.basename(path)
            kind = None
            if path.endswith(".py"):
                kind = "code"
            elif base == "METADATA" and ".dist-info" in path:
                kind = "meta"
            elif path.endswith((".md", ".rst", ".txt")) and ("site-packages" in path or "dist-packages" in path):
                kind = "prose"
            if not kind:
                continue
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            if size < 1024 or size > 256 * 1024:
                continue
            t = read(path)
            if t is None:
                continue
            if kind == "meta":
                t = metadata_description(t)
                if len(t) < 1024:
                    continue
            h = hashlib.sha256(t.encode()).hexdigest()
            if h in seen:
                continue
            seen.add(h)
            (code if kind == "code" else prose).append((h, path, t))
    # the held-out files first (all of them), then training code up to max_bytes
    total = 0
    keep_code = []
    for item in code:
        if heldout(item[0]):
            keep_code.append(item)
        elif total <= max_bytes:
            keep_code.append(item)
            total += len(item[2])
    return keep_code, prose


def heldout(h):
    """Held-out code: SHA-256 of the content starting with 00 or 01 (~0.8%)."""
    return h[:2] in ("00", "01")


def heldout_prose(h):
    """Held-out prose: SHA-256 starting with 0 (~6%; prose files are fewer and shorter)."""
    return h[:1] == "0"


def train_tokenizer(texts, vocab):
    tok = Tokenizer(models.BPE(dropout=None, unk_token=None, fuse_unk=False, byte_fallback=False,
                               ignore_merges=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(mt.QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    bpe = vocab - len(mt.SPECIAL)
    trainer = trainers.BpeTrainer(vocab_size=bpe, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(texts, trainer=trainer)
    if tok.get_vocab_size() != bpe:
        sys.exit("corpus: training gave %d ids, need %d" % (tok.get_vocab_size(), bpe))
    tok.add_special_tokens([tokenizers.AddedToken(s, special=True, normalized=False) for s in mt.SPECIAL])
    for i, s in enumerate(mt.SPECIAL):
        if tok.token_to_id(s) != bpe + i:
            sys.exit("corpus: %s got id %s" % (s, tok.token_to_id(s)))
    return tok


def encode(tok, docs, path):
    eot = tok.token_to_id("<|endoftext|>")
    out = []
    for i in range(0, len(docs), 256):
        for enc in tok.encode_batch([d for d in docs[i:i + 256]]):
            out.extend(enc.ids)
            out.append(eot)
    a = np.asarray(out, dtype=np.uint16)
    a.tofile(path)
    return len(a)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--max-mb", type=int, default=256)
    ap.add_argument("--tokenizer", default=None,
                    help="encode with this tokenizer.json instead of training one (rebuilds a model's corpus)")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    code, prose = collect(a.max_mb << 20)
    held = heldout
    tr_code = [t for h, p, t in code if not held(h)]
    tr_prose = [t for h, p, t in prose if not heldout_prose(h)]
    ev_code = [(p, t) for h, p, t in code if held(h)]
    ev_prose = [(p, t) for h, p, t in prose if heldout_prose(h)]
    if a.tokenizer:
        tok = Tokenizer.from_file(a.tokenizer)
        if tok.get_vocab_size() != a.vocab:
            raise SystemExit(f"{a.tokenizer}: vocabulary {tok.get_vocab_size()}, not --vocab {a.vocab}")
    else:
        tok = train_tokenizer(tr_code + tr_prose + [mt.MULTISCRIPT] * 20, a.vocab)
    tok.save(os.path.join(a.outdir, "tokenizer.json"), pretty=True)
    for name, items in (("heldout_code.txt", ev_code), ("heldout_prose.txt", ev_prose)):
        with open(os.path.join(a.outdir, name), "w") as f:
            for p, _ in items:
                f.write(p + "\n")
    n_train = encode(tok, tr_code + tr_prose, os.path.join(a.outdir, "train.u16"))
    n_ec = encode(tok, [t for _, t in ev_code], os.path.join(a.outdir, "eval_code.u16"))
    n_ep = encode(tok, [t for _, t in ev_prose], os.path.join(a.outdir, "eval_prose.u16"))
    info = {"roots": roots(), "python": sys.version.split()[0], "tokenizers": tokenizers.__version__,
            "vocab": a.vocab, "files": {"code_train": len(tr_code), "prose_train": len(tr_prose),
                                        "code_eval": len(ev_code), "prose_eval": len(ev_prose)},
            "bytes": {"code_train": sum(map(len, tr_code)), "prose_train": sum(map(len, tr_prose))},
            "tokens": {"train": n_train, "eval_code": n_ec, "eval_prose": n_ep}}
    with open(os.path.join(a.outdir, "corpus.json"), "w") as f:
        json.dump(info, f, indent=2)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
