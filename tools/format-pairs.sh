#!/usr/bin/env bash
# Decode speed of model A against model B as paired runs: `loopvk bench` on A then B, N times,
# and the median of the per-pair ratios A/B (pairing keeps the ratio meaningful while this
# machine's speed drifts; a single run of each can be off by 30%).
#
#   tools/format-pairs.sh A B [N=5]      e.g. a q8_0 GGUF against its bf16 folder
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,6p "$0"; exit 2; }
bin=${LOOPVK:-.build/release/loopvk}
[ -x "$bin" ] || { echo "format-pairs: $bin not found (swift build -c release)"; exit 2; }
tok() { "$bin" bench --model "$1" --prompt-tokens 16 --decode-tokens 16 --runs 2 --no-cpu 2>&1 | awk '/^decode/ {print $2; exit}'; }
a=$1; b=$2; n=${3:-5}; ratios=()
for i in $(seq 1 "$n"); do
  ta=$(tok "$a"); tb=$(tok "$b")
  [ -n "$ta" ] && [ -n "$tb" ] || { echo "format-pairs: bench failed on pair $i"; exit 1; }
  r=$(python3 -c "print(f'{$ta / $tb:.3f}')"); ratios+=("$r")
  echo "pair $i: $(basename "$a") $ta tok/s, $(basename "$b") $tb tok/s, ratio $r"
done
python3 -c "import statistics, sys; v = [float(x) for x in sys.argv[1:]]; print(f'median ratio {statistics.median(v):.3f} (min {min(v):.3f}, max {max(v):.3f}, {len(v)} pairs)')" "${ratios[@]}"
