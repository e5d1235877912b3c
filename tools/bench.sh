#!/usr/bin/env bash
# Runs the benchmark suite and writes a Markdown table (stdout, and out/bench.md).
#   tools/bench.sh [LOOPVK_BINARY]      default: builds and uses .build/release/loopvk
# Synthetic checkpoints are written once to out/synth/ (ouro-bench 285 MB; set BENCH_BIG=1 to
# add the Ouro-1.4B shape, 2.9 GB). Set BENCH_RUNS / BENCH_DECODE to change the effort.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then swift build -c release --product loopvk >&2; bin=.build/release/loopvk; fi
runs=${BENCH_RUNS:-3}; decode=${BENCH_DECODE:-16}
mkdir -p out/synth
synth() { [ -f "out/synth/$2/config.json" ] || "$bin" synth --family "$1" --preset "$2" --out "out/synth/$2" >&2; }
cases=("Models/looped-arith 4" "Models/looped-arith 1")
synth ouro ouro-bench; cases+=("out/synth/ouro-bench 4" "out/synth/ouro-bench 1")
if [ "${BENCH_BIG:-0}" = 1 ]; then synth ouro ouro-1.4b; cases+=("out/synth/ouro-1.4b 4" "out/synth/ouro-1.4b 1"); fi
{
  echo "| device | model | passes | prefill tok/s | decode tok/s | GB/s | roofline fraction | vs CPU | dispatches/token |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for c in "${cases[@]}"; do
    set -- $c
    json=$("$bin" bench --model "$1" --passes "$2" --runs "$runs" --decode-tokens "$decode" --prompt-tokens 64 --json)
    python3 - "$json" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
vs = r.get("speedupVsCPU")
print(f"| {r['device']} | {r['model']} | {r['passes']} | {r['prefillTokensPerSecond']['median']:.1f} | "
      f"{r['decodeTokensPerSecond']['median']:.2f} | {r['decodeGBPerSecond']:.2f} | {100*r['rooflineFraction']:.1f}% of {max(r['copyGBPerSecond'], r['readGBPerSecond']):.2f} GB/s (copy {r['copyGBPerSecond']:.2f}, reads {r['readGBPerSecond']:.2f}) | "
      f"{'%.2fx' % vs if vs else '-'} | {r['dispatchesPerToken']} |")
PY
  done
} | tee out/bench.md
