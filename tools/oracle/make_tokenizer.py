"""Trains the fixture tokenizer: a Qwen2-style byte-level BPE tokenizer.json of exactly 4096 ids.

usage: make_tokenizer.py OUT_TOKENIZER_JSON

Configuration (the one Qwen2 / MiMo ship): model BPE (byte-level vocab + merges, no unk, no
dropout), normalizer NFC, pre_tokenizer Sequence[Split(Qwen2 regex, Isolated, invert false),
ByteLevel(add_prefix_space false, trim_offsets true, use_regex false)], post_processor ByteLevel,
decoder ByteLevel. Ids 0..4091 are the 256 byte tokens plus the learned merges; then the special
tokens 4092 <|im_start|>, 4093 <|im_end|>, 4094 <|endoftext|>, 4095 <|MASK|> are added after
training, so (as in Qwen2) they live in added_tokens only, not in the model vocab.

The training corpus is deterministic and built from text every Debian machine has: every file of
/usr/share/common-licenses (sorted by name), the top-level modules of the running Python's standard
library (sorted by name), and the multi-script paragraphs written below. The result depends on the
Python version (stdlib sources) and on the tokenizers version; fixtures/tokenizer/README.md records
both for the committed file.
"""
import glob
import os
import sys
import sysconfig

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

# The Qwen2 pre-tokenizer pattern (contractions, letters with one leading non-letter, single
# digits, punctuation runs, newline runs, whitespace not followed by non-space).
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                 r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")

SPECIAL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|MASK|>"]
VOCAB = 4096
BPE_VOCAB = VOCAB - len(SPECIAL)

MULTISCRIPT = """\
机器学习模型的量化是一种把权重从高精度转换为低精度的技术，可以显著减少显存占用并提高推理速度。
混合专家模型只激活一部分专家，因此每个词元的计算量远小于参数总量。我们用中文、日本語、한국어来测试分词器。
日本語の文章も少し入れておきます。東京は日本の首都で、ひらがなとカタカナと漢字を使います。
한국어 문장도 조금 넣습니다. 서울은 대한민국의 수도입니다. 토크나이저는 바이트 단위로 동작합니다.
Emoji: 😀 😃 😄 👍 👍🏽 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 🇯🇵 🇫🇷 ❤️ ✨ 🚀 🔥 — and a few symbols: € £ ¥ ₹ © ® ™ ° ± × ÷ → ⇒ ∀ ∃ ∑ ∫ √ ∞.
Русский текст: квантование весов уменьшает размер модели. Ελληνικά: η γλώσσα των θεών.
العربية: تعلم الآلة هو فرع من الذكاء الاصطناعي. עברית: למידת מכונה היא תחום במדעי המחשב.
हिन्दी: मशीन लर्निंग कृत्रिम बुद्धिमत्ता की एक शाखा है। ไทย: การเรียนรู้ของเครื่อง Tiếng Việt: học máy.
Français : l'apprentissage automatique, c'est génial ! Deutsch: Größenänderung, Straße, Übergröße.
Español: ¿Dónde está la biblioteca? Português: não, coração, ação. Türkçe: İstanbul, ığdır, şeker.
"""


def corpus():
    texts = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                texts.append(f.read())
    stdlib = sysconfig.get_paths()["stdlib"]
    for path in sorted(glob.glob(os.path.join(stdlib, "*.py"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            texts.append(f.read())
    texts.extend([MULTISCRIPT] * 20)
    return texts


def build():
    tok = Tokenizer(models.BPE(dropout=None, unk_token=None, fuse_unk=False, byte_fallback=False,
                               ignore_merges=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(corpus(), trainer=trainer)
    if tok.get_vocab_size() != BPE_VOCAB:
        sys.exit("make_tokenizer: training gave %d ids, need %d" % (tok.get_vocab_size(), BPE_VOCAB))
    tok.add_special_tokens([tokenizers.AddedToken(s, special=True, normalized=False) for s in SPECIAL])
    for i, s in enumerate(SPECIAL):
        if tok.token_to_id(s) != BPE_VOCAB + i:
            sys.exit("make_tokenizer: %s got id %s" % (s, tok.token_to_id(s)))
    if tok.get_vocab_size() != VOCAB:
        sys.exit("make_tokenizer: %d ids in all, need %d" % (tok.get_vocab_size(), VOCAB))
    return tok


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    tok = build()
    out = sys.argv[1]
    tmp = out + ".tmp"
    tok.save(tmp, pretty=True)
    os.replace(tmp, out)
    print("%s: %d ids (tokenizers %s, Python %s)" % (out, tok.get_vocab_size(), tokenizers.__version__,
                                                   sys.version.split()[0]))


if __name__ == "__main__":
    main()
