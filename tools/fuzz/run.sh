#!/usr/bin/env bash
# Builds the libFuzzer targets of tools/fuzz with swiftc (-sanitize=fuzzer,address), seeds
# their corpora from the fixtures, and runs each for SECONDS (default 600).
#
#   tools/fuzz/run.sh [SECONDS] [TARGET...]      targets: safetensors_header config_plan
#                                                         tokenizer_load tokenizer_encode (default: all)
# Environment:
#   FUZZ_JOBS=2          run two targets at a time (default 1; the machine is shared, keep it <= 2)
#   FUZZ_BUILD_ONLY=1    build, do not run
#   FUZZ_ARGS="..."      extra libFuzzer flags
#   LOOPVK_FUZZ_MODELS   folder with ouro-tiny-fp32/ huginn-tiny-fp32/ loopus-tiny-qwen3-fp32/
#                        (default ../shared/fixtures)
#
# Everything goes under .build-fuzz/: bin/ (targets), corpus/<target>/ (grows between runs),
# seeds/<target>/, artifacts/<target>/ (crash-*, timeout-*, oom-*, slow-unit-* inputs: add each
# one to Tests/Fixtures/fuzz-regressions/ with a test), logs/<target>.log.
# Every run: -timeout=10 (a unit over 10 s is a hang) and -rss_limit_mb=2048 (also the
# malloc limit: one allocation over 2 GB is reported).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
SECONDS_EACH=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(safetensors_header config_plan tokenizer_load tokenizer_encode)
OUT=$REPO/.build-fuzz
MODELS=${LOOPVK_FUZZ_MODELS:-$REPO/../shared/fixtures}
TOKENIZERS=$REPO/Tests/Fixtures/tokenizers
export LOOPVK_FUZZ_MODELS=$MODELS LOOPVK_FUZZ_TOKENIZERS=$TOKENIZERS
# Swift's own crash backtracer would race with the sanitizer's report: libFuzzer reports crashes.
export SWIFT_BACKTRACE=enable=no
export LSAN_OPTIONS=suppressions=$REPO/tools/fuzz/lsan.supp:print_suppressions=0
mkdir -p "$OUT"/{bin,corpus,seeds,artifacts,logs}

module_of() {
  case $1 in
    safetensors_header|config_plan) echo LoopCore ;;
    tokenizer_*) echo LoopTokenizer ;;
    *) echo "unknown target $1" >&2; exit 2 ;;
  esac
}

build() {
  local t=$1 module sources support=()
  module=$(module_of "$t")
  mapfile -t sources < <(find "Sources/$module" -name '*.swift' | sort)
  [ "$module" = LoopCore ] && support=(tools/fuzz/LoopCoreFuzzSupport.swift)
  local bin=$OUT/bin/$t
  if [ -x "$bin" ] && [ -z "$(find "${sources[@]}" "${support[@]}" "tools/fuzz/$t.swift" -newer "$bin" | head -1)" ]; then
    echo "[build] $t is up to date"; return
  fi
  echo "[build] $t (module $module, ${#sources[@]} sources)"
  nice -n 10 swiftc -sanitize=fuzzer,address -parse-as-library -swift-version 6 -O -g -use-ld=lld \
    -module-name "$module" "${sources[@]}" "${support[@]}" "tools/fuzz/$t.swift" -o "$bin"
}

seed() {
  local t=$1 dir=$OUT/seeds/$1
  rm -rf "$dir"; mkdir -p "$dir"
  case $t in
    safetensors_header)
      python3 tools/fuzz/make_seeds.py safetensors "$dir" "$MODELS" ;;
    config_plan)
      for m in ouro-tiny-fp32 huginn-tiny-fp32 loopus-tiny-qwen3-fp32; do cp "$MODELS/$m/config.json" "$dir/$m.json"; done
      python3 tools/fuzz/make_seeds.py config "$dir" "$MODELS" ;;
    tokenizer_load)
      for d in "$TOKENIZERS"/*/; do cp "$d/tokenizer.json" "$dir/$(basename "$d").json"; done
      cp Tests/Fixtures/looped-arith-tokenizer/tokenizer.json "$dir/looped-arith.json"
      python3 tools/fuzz/make_seeds.py tokenizer "$dir" "$MODELS" ;;
    tokenizer_encode)
      python3 tools/fuzz/make_seeds.py text "$dir" "$TOKENIZERS" ;;
  esac
}

run() {
  local t=$1 dict=()
  [ -f "tools/fuzz/dicts/$t.dict" ] && dict=(-dict="tools/fuzz/dicts/$t.dict")
  mkdir -p "$OUT/corpus/$t" "$OUT/artifacts/$t"
  echo "[run] $t for ${SECONDS_EACH}s (log: $OUT/logs/$t.log)"
  # shellcheck disable=SC2086
  nice -n 10 "$OUT/bin/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t/" "${dict[@]}" ${FUZZ_ARGS:-} \
    "$OUT/corpus/$t" "$OUT/seeds/$t" > "$OUT/logs/$t.log" 2>&1 || true
  local execs secs
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$OUT/logs/$t.log" | awk '{print $2}' | tail -1)
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$OUT/logs/$t.log" | awk '{print $5}' | tail -1)
  echo "[done] $t: ${execs:-?} executions in ${secs:-?}s; artifacts: $(ls "$OUT/artifacts/$t" | wc -l)"
  grep -E '^==[0-9]+==ERROR|Fatal error|SUMMARY|ALARM|out-of-memory|malloc\(' "$OUT/logs/$t.log" | head -5 || true
}

for t in "${TARGETS[@]}"; do build "$t"; done
[ -n "${FUZZ_BUILD_ONLY:-}" ] && exit 0
for t in "${TARGETS[@]}"; do seed "$t"; done

JOBS=${FUZZ_JOBS:-1}
running=0
for t in "${TARGETS[@]}"; do
  run "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
echo "[artifacts]"; find "$OUT/artifacts" -type f | sort
