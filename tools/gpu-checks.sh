#!/usr/bin/env bash
# The GPU configurations CI checks beyond `swift test` (which runs lavapipe at its default
# subgroup size, 8, in the device's own configuration):
#  1. the GPU suites (op parity, fusions, fixture goldens, the `gpu` preset end to end) at
#     subgroup sizes 4 and 16 (LP_NATIVE_VECTOR_WIDTH 128 and 512);
#  2. `loopvk selftest` at subgroup sizes 4, 8 and 16, and with `--kernels gpu` (storage path,
#     shared-memory reductions, flash-decoding splits, staged transfers).
# Wider vector widths are outside Mesa's range (llvmpipe itself computes wrong results there),
# so subgroups of 32 and 64 are for real hardware. Needs the debug build `swift test` made.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
suites='OpParityTests|FusionTests|FixtureGPUTests|GPUPresetTests|DispatchCheckTests'
for width in 128 512; do
  echo "== GPU suites at subgroup size $((width / 32)) (LP_NATIVE_VECTOR_WIDTH=$width)"
  LP_NATIVE_VECTOR_WIDTH=$width swift test --skip-build --filter "$suites"
done
for width in 128 256 512; do
  echo "== selftest at subgroup size $((width / 32))"
  LP_NATIVE_VECTOR_WIDTH=$width .build/debug/loopvk selftest
done
echo "== selftest with --kernels gpu"
.build/debug/loopvk selftest --kernels gpu
