#!/usr/bin/env bash
# Runs the benchmark suite and writes a Markdown table (stdout, and out/bench.md).
#   tools/bench.sh [LOOPVK_BINARY]      default: builds and uses .build/release/loopvk
# Synthetic checkpoints are written once to out/synth/ (ouro-bench 285 MB; set BENCH_BIG=1 to
# add the Ouro-1.4B shape, 2.9 GB, and BENCH_HUGE=1 the Huginn-3.5B shape, 7.1 GB, at 4 and 32
# passes with a 4-token prompt, 2 decode tokens and one run: a 32-pass token reads ~100 GB;
# no CPU reference there: its fp32 copy of the weights, 14 GB, does not fit beside the device's).
# Set BENCH_RUNS / BENCH_DECODE to change the effort, BENCH_ONLY=NAME to run only the models whose
# path contains NAME. Every case has one warm-up run (pipelines built, caches filled).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then swift build -c release --product loopvk >&2; bin=.build/release/loopvk; fi
runs=${BENCH_RUNS:-3}; decode=${BENCH_DECODE:-16}
mkdir -p out/synth
synth() { [ -f "out/synth/$2/config.json" ] || "$bin" synth --family "$1" --preset "$2" --out "out/synth/$2" >&2; }
# Each case: model passes prompt-tokens decode-tokens runs cpu-decode-tokens (0: no CPU reference)
std="64 $decode $runs 8"
cases=("Models/looped-arith 4 $std" "Models/looped-arith 1 $std")
synth ouro ouro-bench; cases+=("out/synth/ouro-bench 4 $std" "out/synth/ouro-bench 1 $std")
if [ "${BENCH_BIG:-0}" = 1 ]; then synth ouro ouro-1.4b; cases+=("out/synth/ouro-1.4b 4 $std" "out/synth/ouro-1.4b 1 $std"); fi
if [ "${BENCH_HUGE:-0}" = 1 ]; then synth huginn huginn-3.5b; cases+=("out/synth/huginn-3.5b 4 4 2 1 0" "out/synth/huginn-3.5b 32 4 2 1 0"); fi
{
  echo "| device | model | passes | prompt + decode | prefill tok/s | decode tok/s | prefill / decode | GB/s | roofline fraction | vs CPU | dispatches/token |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for c in "${cases[@]}"; do
    set -- $c
    if [ -n "${BENCH_ONLY:-}" ] && [[ "$1" != *"$BENCH_ONLY"* ]]; then continue; fi
    json=$("$bin" bench --model "$1" --passes "$2" --prompt-tokens "$3" --decode-tokens "$4" --runs "$5" $([ "$6" = 0 ] && echo --no-cpu || echo --cpu-decode-tokens "$6") --warmup 1 --json)
    python3 - "$json" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
vs = r.get("speedupVsCPU")
pre, dec = r['prefillTokensPerSecond']['median'], r['decodeTokensPerSecond']['median']
print(f"| {r['device']} | {r['model']} | {r['passes']} | {r['promptTokens']} + {r['decodeTokens']} x {r['runs']} | {pre:.1f} | "
      f"{dec:.2f} | {pre / dec if dec > 0 else 0:.1f}x | {r['decodeGBPerSecond']:.2f} | {100*r['rooflineFraction']:.1f}% of {max(r['copyGBPerSecond'], r['readGBPerSecond']):.2f} GB/s (copy {r['copyGBPerSecond']:.2f}, reads {r['readGBPerSecond']:.2f}) | "
      f"{'%.2fx' % vs if vs else '-'} | {r['dispatchesPerToken']} |")
PY
  done
} | tee out/bench.md
