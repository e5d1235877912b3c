#!/usr/bin/env bash
# The prepared check for a lent GPU machine (the device tool: an NVIDIA H200, no Swift and no
# network there, 15 minutes of device time per task including the machine's start).
#
#   tools/device-check.sh prepare     here: the static release binary (.devcheck/loopvk) and the
#                                     Vulkan loader packages (.gl/*.deb) the device needs
#   tools/device-check.sh device      there, in one command of at most 8 minutes: every step
#                                     below; writes device-check.md, device-check.json and
#                                     device-check.log to $OUT
#   tools/device-check.sh --dry-run   here, on lavapipe: prepare, then the same steps at sizes
#                                     a 2-core CPU finishes in minutes (fewer tokens and runs,
#                                     Huginn at 4 passes, the PyTorch peer on the CPU with the
#                                     ouro-bench shape); writes to out/device-check/ (or $OUT)
#
# The device call (device tool `run`; prepare first):
#   command: tools/device-check.sh device    carry: [".devcheck", ".gl"]    timeout_s: 540
#
# Steps: `devices`; `selftest --json`; the fixture goldens through `compare --golden` (kv=f32 at
# the fp32 tolerance, and the default f16 KV at its stated one); `bench --json` on ouro-bench,
# the Ouro-1.4B and Huginn-3.5B shapes (synthesised there) and Ouro-1.4B quantized to q8_0 and
# q4_0 by `loopvk quantize`; one token's `profile`; the PyTorch
# peer (tools/torch_peer.py: transformers' Llama with the Ouro-1.4B shape unrolled to 4 x 24
# layers, bf16, KV cache, batch 1) on the same GPU; then tools/device_check_table.py makes the
# Markdown table. Each step runs under its own time limit and is logged with its exit status, so
# one failing step still leaves the others' figures.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}

prepare() {
  set -e
  echo "== static release build (.devcheck/loopvk)"
  nice -n 5 swift build -c release --static-swift-stdlib --scratch-path .build-static --product loopvk
  mkdir -p .devcheck
  cp .build-static/release/loopvk .devcheck/loopvk
  grep -qx '/.devcheck/' .git/info/exclude 2>/dev/null || echo /.devcheck/ >> .git/info/exclude
  if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    echo "== Vulkan loader packages (.gl)"
    grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >> .git/info/exclude
    mkdir -p .gl /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    apt-get $o update -qq
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  fi
  echo "prepared: $(du -sh .devcheck .gl | tr '\n' ' ')"
  set +e
}

# step NAME LIMIT_S CMD...: runs CMD with stdout to $work/NAME.out, logs rc and seconds.
step() {
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name: $*" | tee -a "$log"
  timeout -k 10 "$limit" "$@" > "$work/$name.out" 2> "$work/$name.err"
  local rc=$?
  echo "   rc=$rc in $((SECONDS - t0)) s" | tee -a "$log"
  tail -n 5 "$work/$name.err" | sed 's/^/   | /' >> "$log"
  echo "$name $rc $((SECONDS - t0))" >> "$work/steps.txt"
}

run_steps() {
  local size=$1   # full | dry
  work=$(mktemp -d /tmp/devcheck.XXXX)
  log="$dest/device-check.log"
  : > "$log"
  models=/tmp/devcheck-models
  mkdir -p "$models"
  local bin=.devcheck/loopvk
  echo "device-check ($size) $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)" | tee -a "$log"
  if [ "$size" = full ]; then
    bench="--prompt-tokens 512 --decode-tokens 64 --runs 3 --warmup 1 --no-cpu --json"
    huginn_passes=""
    peer="--shape ouro-1.4b --device cuda --prompt-tokens 512 --decode-tokens 64 --runs 3"
  else
    bench="--prompt-tokens 16 --decode-tokens 4 --runs 1 --warmup 0 --no-cpu --json"
    huginn_passes="--passes 4"
    peer="--shape ouro-bench --device cpu --prompt-tokens 16 --decode-tokens 4 --runs 1"
  fi
  step devices 60 $bin devices
  step selftest 180 $bin selftest --json
  for f in ouro-tiny-fp32 ouro-tiny-bf16 huginn-tiny-fp32 loopus-tiny-qwen3-fp32; do
    step "golden-$f-kvf32" 60 $bin compare --golden --model "Tests/Fixtures/$f" --kernels kv=f32 --json
    step "golden-$f-kvf16" 60 $bin compare --golden --model "Tests/Fixtures/$f" --kernels kv=f16 --atol 2e-3 --rtol 2e-3 --json
  done
  step synth-ouro-bench 120 $bin synth --family ouro --preset ouro-bench --out "$models/ouro-bench"
  step synth-ouro-1.4b 180 $bin synth --family ouro --preset ouro-1.4b --out "$models/ouro-1.4b"
  step synth-huginn-3.5b 240 $bin synth --family huginn --preset huginn-3.5b --out "$models/huginn-3.5b"
  step bench-ouro-bench 120 $bin bench --model "$models/ouro-bench" $bench
  step bench-ouro-1.4b 240 $bin bench --model "$models/ouro-1.4b" $bench
  step bench-huginn-3.5b 300 $bin bench --model "$models/huginn-3.5b" $huginn_passes $bench
  # Block formats: the Ouro-1.4B shape quantized here (llama.cpp's per-tensor choices).
  step quantize-ouro-1.4b-q8_0 240 $bin quantize --model "$models/ouro-1.4b" --type q8_0 --out "$models/ouro-1.4b-q8_0.gguf"
  step quantize-ouro-1.4b-q4_0 240 $bin quantize --model "$models/ouro-1.4b" --type q4_0 --out "$models/ouro-1.4b-q4_0.gguf"
  step bench-ouro-1.4b-q8_0 240 $bin bench --model "$models/ouro-1.4b-q8_0.gguf" $bench
  step bench-ouro-1.4b-q4_0 240 $bin bench --model "$models/ouro-1.4b-q4_0.gguf" $bench
  step profile-ouro-1.4b 180 $bin profile --model "$models/ouro-1.4b" --tokens 1,2,3,4 --decode-tokens 1 --json
  if command -v python3 >/dev/null; then
    local py=python3
    [ -n "${LOOPVK_PEER_PYTHON:-}" ] && py=$LOOPVK_PEER_PYTHON
    step peer-pytorch 240 $py tools/torch_peer.py $peer
  fi
  python3 tools/device_check_table.py "$work" "$size" "$dest/device-check.json" > "$dest/device-check.md"
  echo "== table: $dest/device-check.md" | tee -a "$log"
  cat "$dest/device-check.md"
  rm -rf "$work"
  rm -rf "$models"
  return 0
}

case "$mode" in
  prepare)
    prepare ;;
  device)
    [ -x .devcheck/loopvk ] || { echo "device-check: .devcheck/loopvk missing: run 'tools/device-check.sh prepare' here and carry .devcheck"; exit 2; }
    if ls .gl/*.deb >/dev/null 2>&1 && ! ldconfig -p | grep -q libvulkan.so.1; then
      for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
    fi
    if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
      export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    dest=${OUT:-out/device-check}; mkdir -p "$dest"
    run_steps full ;;
  --dry-run)
    prepare || exit 1
    dest=${OUT:-out/device-check}; mkdir -p "$dest"
    run_steps dry ;;
  *)
    sed -n '2,24p' "$0"; exit 2 ;;
esac
