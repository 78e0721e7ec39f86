"""Interop check of libquant's JSON writer (jsonw) against Python's json module.

Runs jsonw_interop_gen (path in argv[1]; it documents its output format), rebuilds every
document from the generator's token list alone, and compares our bytes with
  compact:  json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
  indent 2: json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
  indent 4: json.dumps(obj, indent=4, ensure_ascii=False) + "\n"
encoded as UTF-8. Keys keep insertion order (dicts do). ensure_ascii=False is the writer's
documented choice: non-ASCII text is written raw.

Doubles: json.dumps would print repr(float), which is not what the writer promises, so each
double becomes a placeholder string "@@<n>@@" and after dumping the quoted placeholder is
replaced by Python's own "%.*g" formatting of the value ("%.17g" for the exact variant), or by
"null" for NaN/Inf (the writer's documented policy). For the exact variant, float() of the text
must also give back the same bits. Generator strings never contain '@', so placeholders cannot
collide with data.

Exit status 0 when every comparison matches, 1 otherwise (first mismatches on stderr).
"""
import json
import math
import struct
import subprocess
import sys


def f64(hex16):
    return struct.unpack(">d", bytes.fromhex(hex16))[0]


def build(tokens):
    """Object from the token list, plus the expected text of each placeholder."""
    numbers = []
    stack = [[]]  # each frame: a list (array or the top level) or [dict, pending_key]
    keys = []

    def put(value):
        top = stack[-1]
        if isinstance(top, dict):
            top[keys.pop()] = value
        else:
            top.append(value)

    def number(text):
        numbers.append(text)
        return "@@%d@@" % (len(numbers) - 1)

    for t in tokens:
        c, rest = t[0], t[1:]
        if c == "{":
            stack.append({})
        elif c == "[":
            stack.append([])
        elif c in "}]":
            v = stack.pop()
            put(v)
        elif c == "k":
            keys.append(bytes.fromhex(rest).decode("utf-8"))
        elif c == "s":
            put(bytes.fromhex(rest).decode("utf-8"))
        elif c in "ui":
            put(int(rest))
        elif c == "d":
            digits, bits = rest.split(":")
            v = f64(bits)
            put(number("%.*g" % (int(digits), v) if math.isfinite(v) else "null"))
        elif c == "x":
            v = f64(rest)
            if math.isfinite(v):
                text = "%.17g" % v
                back = float(text)
                if struct.pack(">d", back) != struct.pack(">d", v):
                    raise AssertionError("%.17g does not round-trip for %r" % (v, v))
                put(number(text))
            else:
                put(number("null"))
        elif c == "t":
            put(True)
        elif c == "f":
            put(False)
        elif c == "n":
            put(None)
        else:
            raise ValueError("unknown token %r" % t)
    assert len(stack) == 1 and len(stack[0]) == 1 and not keys
    return stack[0][0], numbers


def render(obj, numbers, **kw):
    text = json.dumps(obj, ensure_ascii=False, **kw)
    # Placeholders are replaced in one pass over the text, so a number's text can never be
    # mistaken for another placeholder.
    out, i = [], 0
    while True:
        j = text.find('"@@', i)
        if j < 0:
            out.append(text[i:])
            break
        k = text.index('@@"', j + 3)
        out.append(text[i:j])
        out.append(numbers[int(text[j + 3:k])])
        i = k + 3
    return "".join(out)


def main():
    gen = sys.argv[1]
    proc = subprocess.run([gen, "400"], check=True, capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    failures = 0
    cases = comparisons = 0
    i = 0
    while i < len(lines):
        assert lines[i].startswith("case "), lines[i]
        name = lines[i]
        tokens = lines[i + 1].split()[1:]
        outs = {}
        for line in lines[i + 2:i + 5]:
            tag, _, hexdata = line.partition(" ")
            outs[tag] = bytes.fromhex(hexdata)
        i += 5
        cases += 1
        obj, numbers = build(tokens)
        want = {
            "out0": render(obj, numbers, separators=(",", ":")),
            "out2": render(obj, numbers, indent=2) + "\n",
            "out4": render(obj, numbers, indent=4) + "\n",
        }
        for tag, text in want.items():
            comparisons += 1
            if outs[tag] != text.encode("utf-8"):
                failures += 1
                if failures <= 5:
                    print("%s %s differs:\n ours:   %r\n python: %r"
                          % (name, tag, outs[tag], text.encode("utf-8")), file=sys.stderr)
    print("jsonw interop: %d cases, %d comparisons, %d mismatches"
          % (cases, comparisons, failures), file=sys.stderr)
    if cases < 400:
        print("expected 400 cases", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
