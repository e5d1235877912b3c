#!/usr/bin/env bash
# Decode speed per weight format, LoopVK beside llama.cpp's CPU backend on the same GGUF files,
# in one run (this machine's bandwidth drifts: compare only figures from one run, as ratios).
#
#   tools/format-speed.sh [--loopvk BIN] [--llama-bench BIN] [--runs N] [--decode N] FILE_OR_FOLDER...
#
# For each model: `loopvk bench` (decode tok/s, bytes per token, GB/s) and, for .gguf files of
# an architecture llama.cpp knows, `llama-bench -p 0 -n N -t $(nproc)` (tg tok/s). Files are
# taken in the order given, interleaved, so that drift spreads over all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
loopvk=.build/release/loopvk; llamabench=${LLAMA_BENCH:-}; runs=3; decode=16
models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --loopvk) loopvk=$2; shift 2 ;;
    --llama-bench) llamabench=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --decode) decode=$2; shift 2 ;;
    -h|--help) sed -n 2,9p "$0"; exit 0 ;;
    *) models+=("$1"); shift ;;
  esac
done
[ ${#models[@]} -gt 0 ] || { echo "format-speed: give model files or folders (see --help)"; exit 2; }
[ -x "$loopvk" ] || { echo "format-speed: $loopvk not found (swift build -c release)"; exit 2; }
printf '| model | engine | decode tok/s | bytes/token | GB/s |\n|---|---|---|---|---|\n'
for m in "${models[@]}"; do
  out=$("$loopvk" bench --model "$m" --prompt-tokens 16 --decode-tokens "$decode" --runs "$runs" --no-cpu 2>&1) || { echo "| $(basename "$m") | LoopVK | failed: $(echo "$out" | tail -1) | | |"; continue; }
  tok=$(echo "$out" | awk '/^decode/ {print $2; exit}')
  bpt=$(echo "$out" | awk '/^bytes\/token/ {print $2" "$3; exit}')
  gbs=$(echo "$out" | awk '/^bytes\/token/ {print $5; exit}')
  echo "| $(basename "$m") | LoopVK (lavapipe) | $tok | $bpt | $gbs |"
  if [ -n "$llamabench" ] && [[ "$m" == *.gguf ]]; then
    lb=$("$llamabench" -m "$m" -p 0 -n "$decode" -r "$runs" -t "$(nproc)" -o csv 2>/dev/null | tail -1) || lb=""
    tg=$(echo "$lb" | awk -F, 'NF > 2 && $1 != "build_commit" {gsub(/"/,""); print $(NF-1)}')
    [ -n "$tg" ] && echo "| $(basename "$m") | llama.cpp CPU ($(nproc) threads) | $(printf '%.2f' "$tg") | | |" || echo "| $(basename "$m") | llama.cpp CPU | not loadable | | |"
  fi
done
