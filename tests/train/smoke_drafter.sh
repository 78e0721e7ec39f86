#!/usr/bin/env bash
# Manual smoke test of tools/train/train_drafter.py on the CPU (not part of the meson suites):
#   1. parity: the trainer's drafter forward against tools/oracle/dflash_oracle.py on the tiny
#      fixture's drafter (worst |diff| of the logits <= 1e-4), export round trip exact
#   2. resume: 12 steps straight and 6 + --resume 6 give bit-identical weights and logs
#   3. train a 2-layer drafter (hidden 256, taps 0,5,11, window 64, block 8) for the tiny fixture
#      (`mimo-mkfixture --preset tiny --variant bf16 --no-drafter`) and export it into T/dflash
#   4. `mimo-verify T --only drafter` accepts the export
#   5. on each held-out prompt: `mimo-run --dflash` and `--no-dflash` (64 tokens, --ignore-eos) give
#      the same tokens, equal to the trainer's greedy tokens (transformers), and the runtime's tau
#      equals the trainer's simulated decode tau within TAU_TOL; the pooled runtime tau > MIN_TAU
#
# usage: tests/train/smoke_drafter.sh [WORKDIR]
# env:   BUILD (default build-train), PY (default python3; a Python with torch and
#        transformers >= 5), STEPS (2000), NUM_SEQS (4096), GEN_TOKENS (32), BATCH (30), ANCHORS (8), LR (2e-3),
#        MIN_TAU (1.5), TAU_TOL (0.25), THREADS (all cores)
# Exit status 0 when every check passes, 1 otherwise. Takes ~15 minutes on 2 cores.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build-train}
PY=${PY:-python3}
STEPS=${STEPS:-2000}
NUM_SEQS=${NUM_SEQS:-4096}
GEN_TOKENS=${GEN_TOKENS:-32}
BATCH=${BATCH:-30}
ANCHORS=${ANCHORS:-8}
LR=${LR:-2e-3}
MIN_TAU=${MIN_TAU:-1.5}
TAU_TOL=${TAU_TOL:-0.25}
THREADS=${THREADS:-$(nproc)}
W=${1:-$(mktemp -d /tmp/smoke-drafter.XXXXXX)}
mkdir -p "$W"
MK="$top/$BUILD/tools/mimo-mkfixture"
RUN="$top/$BUILD/tools/mimo-run"
VFY="$top/$BUILD/tools/mimo-verify"
TD="$top/tools/train/train_drafter.py"
for b in "$MK" "$RUN" "$VFY"; do
  [ -x "$b" ] || { echo "smoke_drafter: $b not built (source scripts/env.sh && mimo_setup $BUILD)" >&2; exit 1; }
done
fail=0
t0=$(date +%s)
echo "== workdir $W"

echo "== 1. parity with the oracle"
"$PY" "$TD" parity "$MK" 2>&1 | grep -v -i "warn\|loading weights" || fail=1

echo "== 2. resume is bit-exact"
rm -rf "$W/T" "$W/r1" "$W/r2"
"$MK" --preset tiny --variant bf16 --no-drafter --out "$W/T" -q >/dev/null
small=(--num-seqs 8 --gen-tokens 24 --gen-batch 8 --eval-prompts 1 --eval-tokens 16 --steps 12 --batch 2
       --anchors 8 --log-every 3 --ckpt-every 4 --stop-at-eos 0 --threads "$THREADS")
"$PY" "$TD" train "$W/T" "$W/r1" "${small[@]}" >"$W/r1.log" 2>&1 || { tail "$W/r1.log"; fail=1; }
mkdir -p "$W/r2" && cp "$W/r1/data.pt" "$W/r2/"
"$PY" "$TD" train "$W/T" "$W/r2" "${small[@]}" --stop-after 6 >"$W/r2a.log" 2>&1 || { tail "$W/r2a.log"; fail=1; }
"$PY" "$TD" train "$W/T" "$W/r2" "${small[@]}" --resume >"$W/r2b.log" 2>&1 || { tail "$W/r2b.log"; fail=1; }
"$PY" - "$W/r1" "$W/r2" <<'EOF' || fail=1
import json, sys, torch
a, b = (torch.load(d + "/ckpt.pt", weights_only=False) for d in sys.argv[1:3])
same = a["step"] == b["step"] == 12 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
la = [json.loads(l)["loss"] for l in open(sys.argv[1] + "/log.jsonl")]
lb = [json.loads(l)["loss"] for l in open(sys.argv[2] + "/log.jsonl")]
print(f"straight: step {a['step']} losses {la}\nresumed:  step {b['step']} losses {lb}")
print("resume bit-exact:", "YES" if same and la == lb else "NO")
sys.exit(0 if same and la == lb else 1)
EOF

echo "== 3. train (steps $STEPS, $NUM_SEQS sequences of 16 + $GEN_TOKENS tokens, batch $BATCH x $ANCHORS blocks, lr $LR)"
rm -rf "$W/run"
"$PY" "$TD" train "$W/T" "$W/run" --num-seqs "$NUM_SEQS" --gen-tokens "$GEN_TOKENS" --stop-at-eos 0 \
  --gen-batch 256 --steps "$STEPS" --batch "$BATCH" --anchors "$ANCHORS" --lr "$LR" --log-every 100 --eval-every 250 \
  --ckpt-every 500 --eval-prompts 8 --eval-tokens 64 --threads "$THREADS" --export-to "$W/T/dflash" 2>&1 \
  | grep --line-buffered -v -i "warn\|loading weights\|detach" | tee "$W/train.log" || fail=1

echo "== 4. mimo-verify --only drafter"
"$VFY" "$W/T" --only drafter || fail=1

echo "== 5. runtime tau vs the trainer's simulated decode"
"$PY" - "$W" "$RUN" "$MIN_TAU" "$TAU_TOL" "$THREADS" <<'EOF' || fail=1
import json, subprocess, sys
w, run, min_tau, tol, threads = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
ev = json.load(open(w + "/run/eval.json"))
ok, rt_tok, rt_steps = True, 0, 0
for i, r in enumerate(ev["prompts"]):
    ids = ",".join(map(str, r["prompt"]))
    base = [run, w + "/T", "--prompt-ids", ids, "--max-tokens", str(len(r["tokens"])), "--ignore-eos",
            "--format", "json", "--threads", threads]
    d = json.loads(subprocess.run(base + ["--dflash"], check=True, capture_output=True, text=True).stdout)
    g = json.loads(subprocess.run(base + ["--no-dflash"], check=True, capture_output=True, text=True).stdout)
    same = d["tokens"] == g["tokens"]
    ref = g["tokens"] == r["tokens"]
    hist_rt = d["accept_hist"][:len(r["sim_accept_hist"])]
    good = same and ref and abs(d["tau"] - r["sim_tau"]) <= tol
    ok &= good
    rt_tok += sum((j + 1) * h for j, h in enumerate(d["accept_hist"]))
    rt_steps += d["steps"]
    print(f"prompt {i}: runtime tau {d['tau']:.3f} (hist {hist_rt}) | trainer simulated {r['sim_tau']:.3f} "
          f"(hist {r['sim_accept_hist']}) | dflash == greedy: {'YES' if same else 'NO'}, runtime greedy == "
          f"transformers greedy: {'YES' if ref else 'NO'} -> {'ok' if good else 'FAIL'}")
pooled = rt_tok / rt_steps
print(f"pooled: runtime tau {pooled:.3f} (> {min_tau}: {'YES' if pooled > min_tau else 'NO'}), trainer simulated "
      f"{ev['sim_tau_pooled']:.3f}, random-anchor estimates tau_est {ev['tau_est']:.3f} tau_block "
      f"{ev['tau_block']:.3f}, acc_k {ev['acc_k']}")
ok &= pooled > min_tau
sys.exit(0 if ok else 1)
EOF

echo "== wall time $(( $(date +%s) - t0 )) s"
if [ $fail -ne 0 ]; then echo "SMOKE FAILED"; exit 1; fi
echo "SMOKE PASSED"
