#!/usr/bin/env bash
# Example release gate for any CI system: verify a mimo-quantize artifact against its source with a
# pinned policy and a trusted public key; keep the JSON, JUnit and HTML reports as CI artifacts.
# With --source, a policy with a "model" section also runs both models through the CPU runtime
# (top-1 agreement, KL, perplexity, hidden-state cosine; docs/cli.md, "The model check").
#   usage: ci-gate.sh ARTIFACT SOURCE POLICY.json PUBKEY.pem [REPORT_DIR]
# Exit status: mimo-verify's (0 pass, 1 a check failed, 2 usage, 3 unreadable input).
set -uo pipefail
artifact=$1 source=$2 policy=$3 pubkey=$4 out=${5:-mimo-verify-reports}
verify=${MIMO_VERIFY:-mimo-verify}
mkdir -p "$out"
"$verify" "$artifact" --source "$source" --policy "$policy" --pubkey "$pubkey" \
  --report "$out/verify.json" --junit "$out/verify.junit.xml" --html "$out/verify.html"
rc=$?
echo "mimo-verify exit status $rc; reports in $out/"
exit $rc
