"""Our tokenizer (runtime/tokenizer.c, through tok_dump) against the reference implementation, the
Python `tokenizers` library (Rust core), which gives the ids we must match.

For the fixture tokenizer.json and four variants of it (extra added tokens with lstrip / rstrip /
normalized / non-special; the GPT-2 style ByteLevel(use_regex) pre-tokenizer without normalizer;
ignore_merges; merges in the legacy "a b" string form), over
  - every entry of corpus.json, every line of every entry, and all entries joined as one text,
  - 3000 random strings (seeded) drawn from a pool of tricky pieces,
  - (fixture only) a Unicode sweep: every assigned code point alone, every combining mark
    between a base and a mark of another class, and 50000 random mixes,
it checks:
  1. our ids == Tokenizer.encode(text).ids, exactly;
  2. our decode(ids) == the library's decode(ids, skip_special_tokens=False), and both ==
     NFC(text) (text itself for the variant without normalizer; not checked for the added-tokens
     variant, whose non-normalized "the" cuts "the\u0301" before NFC can compose it);
  3. random id sequences (all ids, byte tokens that form broken UTF-8, special tokens) decode
     identically with skip_special_tokens False and True (U+FFFD placement included), and ids
     outside the vocab, which the library drops silently, are refused by us (TOK_DECODE_ID).

usage: interop_tokenizers.py TOK_DUMP TOKENIZER_JSON CORPUS_JSON
"""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import unicodedata

import tokenizers
from tokenizers import AddedToken, Tokenizer

POOL = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") +
        list(".,;:!?-_()[]{}<>/\\|@#$%^&*+=~`\"'") +
        ["'s", "'T", "'re", "'LL", "'d", "\u2019s", " ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000",
         "\u180e", "\u2028", "\u0085", "\u200b", "\u000b",
         "的", "量化", "模型", "東京", "カタカナ", "한국어", "\u1100", "\u1161", "\u11a8", "\uac00",
         "e\u0301", "\u0301", "\u0308", "\u0323", "\u0327", "\u093c", "\u3099", "\u00e9", "\u00c5", "\u212b",
         "\u1e0b", "\u0344", "\u0958", "\u0f73",
         "😀", "👍", "🏽", "\u200d", "👩\u200d💻", "\ufe0f", "🇯🇵", "🚀",
         "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|MASK|>", "<|", "|>", "im_end",
         "مرحبا", "שלום", "١٢٣", "Ⅷ", "½", "ſ", "\u212a", "Straße", "İ", "ı",
         "hello", " world", "The", " the", "def ", "return", "    ", "\t\t"])


def nfc(s):
    return unicodedata.normalize("NFC", s)


def run_dump(tok_dump, mode, tok_path, payload):
    with tempfile.TemporaryDirectory() as d:
        inp, out = os.path.join(d, "in.bin"), os.path.join(d, "out.txt")
        with open(inp, "wb") as f:
            f.write(payload)
        r = subprocess.run([tok_dump, mode, tok_path, inp, out], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("tok_dump %s failed (%d): %s" % (mode, r.returncode, r.stderr))
        with open(out, encoding="ascii") as f:
            return f.read().split("\n")[:-1]


def encode_ours(tok_dump, tok_path, texts):
    payload = b"".join(struct.pack("<I", len(b)) + b for b in (t.encode("utf-8") for t in texts))
    res = []
    for line in run_dump(tok_dump, "encode", tok_path, payload):
        if line.startswith("err "):
            res.append((None, line[4:]))
            continue
        head, dec = line.split(" | ")
        parts = head.split()
        ids = [int(x) for x in parts[2:]]
        assert len(ids) == int(parts[1])
        res.append((ids, b"" if dec == "-" else bytes.fromhex(dec)))
    if len(res) != len(texts):
        raise SystemExit("tok_dump gave %d results for %d texts" % (len(res), len(texts)))
    return res


def decode_ours(tok_dump, tok_path, seqs):
    payload = b"".join(struct.pack("<I", len(s)) + struct.pack("<%di" % len(s), *s) for s in seqs)
    res = []
    for line in run_dump(tok_dump, "decode", tok_path, payload):
        if line.startswith("err "):
            res.append(("err", line[4:]))
            continue
        a, b = line.split(" ")
        res.append(tuple(b"" if x == "-" else bytes.fromhex(x) for x in (a, b)))
    return res


def random_texts(n, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(POOL) for _ in range(rng.randint(0, 40))) for _ in range(n)]


def compare_encode(name, tok_dump, tok_path, ref, texts, normalizes, roundtrip, failures):
    ours = encode_ours(tok_dump, tok_path, texts)
    n_ids = 0
    bad = 0
    for text, (ids, dec) in zip(texts, ours):
        want = ref.encode(text).ids
        n_ids += len(want)
        if ids is None:
            bad += 1
            failures.append("%s: we refused %r: %s" % (name, text[:60], dec))
            continue
        if ids != want:
            bad += 1
            k = next((i for i, (a, b) in enumerate(zip(ids, want)) if a != b), min(len(ids), len(want)))
            failures.append("%s: ids differ for %r at %d: ours %s, library %s"
                            % (name, text[:60], k, ids[k:k + 5], want[k:k + 5]))
            continue
        lib_dec = ref.decode(want, skip_special_tokens=False)
        if dec != lib_dec.encode("utf-8"):
            bad += 1
            k = next((i for i, (a, b) in enumerate(zip(dec, lib_dec.encode("utf-8"))) if a != b), 0)
            failures.append("%s: decode differs for %r from byte %d: ours %r, library %r"
                            % (name, text[:60], k, dec[k:k + 20], lib_dec.encode("utf-8")[k:k + 20]))
            continue
        # decode(encode(x)) == NFC(x): holds when no added token with normalized = false keeps
        # a combining mark away from its base (true of the fixture; not of every variant).
        if roundtrip and lib_dec != (nfc(text) if normalizes else text):
            bad += 1
            failures.append("%s: decode(encode(%r)) is %r, not the NFC form" % (name, text[:60], lib_dec[:60]))
    return n_ids, bad


def check_tokenizer(name, tok_dump, tok_path, corpus, normalizes, roundtrip, failures):
    ref = Tokenizer.from_file(tok_path)
    lines = [ln for entry in corpus for ln in entry.splitlines(keepends=True)]
    sets = [("corpus entries", corpus), ("corpus lines", lines), ("corpus joined", ["".join(corpus)]),
            ("random strings", random_texts(3000, 20240601))]
    for label, texts in sets:
        n_ids, bad = compare_encode(name, tok_dump, tok_path, ref, texts, normalizes, roundtrip, failures)
        print("%s: %s: %d texts, %d ids compared, %d mismatches" % (name, label, len(texts), n_ids, bad))
    return ref


def unicode_sweep(seed):
    """Every assigned code point alone; every combining mark after a base and before a mark of
    another class (canonical reordering happens only when both classes are known, so this shows
    which Unicode version's NFC data are in use: the library's are Unicode 9.0); random mixes of
    code points and combining marks."""
    assigned = [chr(c) for c in range(0x110000)
                if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) != "Cn"]
    marks = [c for c in assigned if unicodedata.combining(c)]
    texts = list(assigned)
    for m in marks:
        texts.append("a" + m + ("\u0334" if unicodedata.combining(m) > 1 else "\u0301"))
        texts.append("a" + "\u0301\u0334" + m)
    rng = random.Random(seed)
    for _ in range(50000):
        texts.append("".join(rng.choice(assigned) if rng.random() < 0.6 else rng.choice(marks)
                             for _ in range(rng.randint(1, 8))))
    return texts


def check_sweep(name, tok_dump, tok_path, ref, failures):
    texts = unicode_sweep(99)
    ours = encode_ours(tok_dump, tok_path, texts)
    want = [e.ids for e in ref.encode_batch(texts)]
    bad = 0
    for text, (ids, _), w in zip(texts, ours, want):
        if ids != w:
            bad += 1
            failures.append("%s: unicode sweep: ids differ for %s: ours %s, library %s"
                            % (name, ascii(text), ids and ids[:8], w[:8]))
    print("%s: unicode sweep: %d texts, %d ids compared, %d mismatches"
          % (name, len(texts), sum(map(len, want)), bad))


def check_decode(name, tok_dump, tok_path, ref, failures):
    rng = random.Random(7)
    vocab = ref.get_vocab_size()
    seqs = [[rng.randrange(vocab) for _ in range(rng.randint(0, 24))] for _ in range(2000)]
    # Byte tokens only: joined bytes that are mostly broken UTF-8.
    byte_ids = [ref.token_to_id(c) for c in tokenizers.pre_tokenizers.ByteLevel.alphabet()]
    seqs += [[rng.choice(byte_ids) for _ in range(rng.randint(1, 12))] for _ in range(2000)]
    ours = decode_ours(tok_dump, tok_path, seqs)
    bad = 0
    for s, got in zip(seqs, ours):
        want = (ref.decode(s, skip_special_tokens=False).encode("utf-8"),
                ref.decode(s, skip_special_tokens=True).encode("utf-8"))
        if got != want:
            bad += 1
            failures.append("%s: decode of %s: ours %r, library %r" % (name, s[:8], got, want))
    print("%s: decode: %d id sequences, %d mismatches" % (name, len(seqs), bad))
    outside = [[vocab], [-1], [0, vocab + 100, 1]]
    got = decode_ours(tok_dump, tok_path, outside)
    for s, g in zip(outside, got):
        if g != ("err", "TOK_DECODE_ID"):
            failures.append("%s: ids %s outside the vocab were not refused: %r" % (name, s, g))
    print("%s: decode: %d sequences with ids outside the vocab refused (the library drops them)"
          % (name, sum(g == ("err", "TOK_DECODE_ID") for g in got)))


def variants(base_path, d):
    with open(base_path, encoding="utf-8") as f:
        base = json.load(f)
    out = []
    # 1. Extra added tokens through the library's own API (it writes the JSON).
    t = Tokenizer.from_file(base_path)
    t.add_tokens([AddedToken("<tool>", lstrip=True, rstrip=True, normalized=False, special=False),
                  AddedToken("cafe\u0301", normalized=True, special=False),
                  AddedToken("the", normalized=False, special=False),
                  AddedToken("  ", normalized=False, special=False)])
    t.add_special_tokens([AddedToken("[SEP]", lstrip=True, special=True, normalized=False)])
    p = os.path.join(d, "added.json")
    t.save(p)
    out.append(("added-tokens", p, True))
    # 2. GPT-2 style: ByteLevel with its own regex, no normalizer.
    v = json.loads(json.dumps(base))
    v["normalizer"] = None
    v["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True}
    out.append(("gpt2-bytelevel", v, False))
    # 3. ignore_merges: a word found whole in the vocab is one token.
    v = json.loads(json.dumps(base))
    v["model"]["ignore_merges"] = True
    out.append(("ignore-merges", v, True))
    # 4. Legacy merges: "a b" strings.
    v = json.loads(json.dumps(base))
    v["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in v["model"]["merges"]]
    out.append(("legacy-merges", v, True))
    res = []
    for name, obj, norm in out:
        if isinstance(obj, dict):
            p = os.path.join(d, name + ".json")
            with open(p, "w", encoding="utf-8") as f:
                json.dump(obj, f, ensure_ascii=False)
            obj = p
        res.append((name, obj, norm))
    return res


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    tok_dump, tok_path, corpus_path = sys.argv[1:]
    with open(corpus_path, encoding="utf-8") as f:
        corpus = json.load(f)
    print("tokenizers %s, corpus %s: %d entries" % (tokenizers.__version__, os.path.basename(corpus_path),
                                                   len(corpus)))
    failures = []
    ref = check_tokenizer("fixture", tok_dump, tok_path, corpus, True, True, failures)
    check_decode("fixture", tok_dump, tok_path, ref, failures)
    check_sweep("fixture", tok_dump, tok_path, ref, failures)
    with tempfile.TemporaryDirectory() as d:
        for name, path, norm in variants(tok_path, d):
            ref = check_tokenizer(name, tok_dump, path, corpus, norm, name != "added-tokens", failures)
            if name == "added-tokens":
                check_decode(name, tok_dump, path, ref, failures)
    for f in failures[:30]:
        print("FAIL:", f)
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
