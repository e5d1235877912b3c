#!/usr/bin/env bash
# Accuracy and speed of the bundled looped-arith model against passes and the Q-exit threshold,
# as a Markdown table (the one in README.md).  tools/eval-table.sh [LOOPVK_BINARY] [extra args, e.g. --cpu]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then swift build -c release --product loopvk >&2; bin=.build/release/loopvk; fi
shift || true
tasks=Models/looped-arith/eval-dev.jsonl
echo "| setting | d1 | d2 | d3 | d4 | d5 | d6 | all | mean passes / token | decode tok/s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
run() {
  json=$("$bin" eval --tasks "$tasks" --json "$@")
  python3 - "$json" "$*" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
accs = {g["difficulty"]: g["correct"] / g["count"] for g in r["groups"]}
cells = " | ".join(f"{accs.get(d, float('nan')):.3f}" for d in range(1, 7))
print(f"| {sys.argv[2].replace('--', '')} | {cells} | {r['correct']/r['tasks']:.3f} | {r['meanPasses']:.2f} | {r['decodeTokensPerSecond']:.1f} |")
PY
}
for p in 1 2 3 4; do run --passes $p "$@"; done
for q in 0.5 0.7 0.9; do run --exit q-exit:$q "$@"; done
