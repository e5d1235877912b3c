#!/usr/bin/env bash
# Builds a static release binary of loopvk (Swift runtime linked in, shaders embedded) that can
# be copied to a machine with a GPU and no Swift toolchain. It still needs that machine's
# Vulkan loader (libvulkan.so.1) and driver. Output: out/loopvk
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib --product loopvk
mkdir -p out
cp .build/release/loopvk out/loopvk
echo "built out/loopvk ($(du -h out/loopvk | cut -f1)); needs libvulkan.so.1 on the target:"
ldd out/loopvk | grep -E "vulkan|not found" || true
