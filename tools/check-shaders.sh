#!/usr/bin/env bash
# Compiles every shader in Shaders/ with glslc for each weight dtype variant and validates the
# SPIR-V with spirv-val, so a broken shader fails fast with its file name.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v glslc >/dev/null || { echo "check-shaders: glslc not found (apt-get install glslc)"; exit 1; }
command -v spirv-val >/dev/null || { echo "check-shaders: spirv-val not found (apt-get install spirv-tools)"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0; count=0
for f in Shaders/*.comp; do
  # Shaders with a texel read path (READ_TEXEL) are checked on both paths, the texel one with
  # and without its workgroup reduction (t = 2).
  paths=0; grep -q READ_TEXEL "$f" && paths="0 1 2"
  # Weight formats: the float ones, plus the block formats (block_formats.glsl) where the
  # shader reads them.
  dtypes="0 1 2"; grep -q '"block_formats.glsl"' "$f" && dtypes="0 1 2 10 11 12 13 20"
  # linear_block.comp reads block formats only, and has an INTERLEAVED texel kernel (t = 3; with
  # the SILU epilogue t = 4).
  [ "$(basename "$f")" = linear_block.comp ] && dtypes="10 11 12 13 20" && paths="0 1 3 4"
  for t in $paths; do
  for w in $dtypes; do
    out="$tmp/$(basename "$f").$w.$t.spv"
    if ! glslc --target-env=vulkan1.2 -IShaders -DW_DTYPE=$w -DB_DTYPE=$w -DREAD_TEXEL=$((t > 0)) -DWG_REDUCE=$((t == 2)) $([ $t -ge 3 ] && echo -DINTERLEAVED=1) $([ $t = 4 ] && echo -DSILU=1) -o "$out" "$f"; then
      echo "check-shaders: FAILED to compile $f (W_DTYPE=$w READ_TEXEL=$t)"; fail=1; continue
    fi
    if ! spirv-val --target-env vulkan1.2 "$out"; then
      echo "check-shaders: FAILED spirv-val $f (W_DTYPE=$w READ_TEXEL=$t)"; fail=1; continue
    fi
    count=$((count + 1))
  done
  done
done
# Kernel variants behind other defines the host sets (see Kernels.swift), each for every dtype.
extra=("matmul.comp -DREAD_TEXEL=1 -DLANE_FEATURES=1"
       "attention.comp -DREAD_TEXEL=1 -DLANE_ROWS=1 -DNT=16u"
       "attention.comp -DREAD_TEXEL=1 -DLANE_ROWS=8 -DNT=16u"
       "attention.comp -DREAD_TEXEL=1 -DLANE_HEADS=1 -DNT=16u"
       "attention.comp -DSPLIT=1"
       "matvec.comp -DVEC16=1"
       "argmax.comp -DSPLIT=1 -DSTAGE=1"
       "argmax.comp -DSPLIT=1 -DSTAGE=2"
       "matvec.comp -DREAD_TEXEL=1 -DARGMAX=1"
       "matvec.comp -DREAD_TEXEL=1 -DSILU=1"
       "matmul.comp -DREAD_TEXEL=1 -DLANE_FEATURES=1 -DSILU=1"
       "matmul.comp -DREAD_TEXEL=1 -DLANE_FEATURES=1 -DOUT_VEC4=1"
       "matmul.comp -DREAD_TEXEL=1 -DLANE_FEATURES=1 -DSILU=1 -DOUT_VEC4=1"
       "kv_copy.comp -DPAIRS=8"
       "kv_copy.comp -DPAIRS=8 -DKV_F16=1"
       "kv_write.comp -DKV_F16=1"
       "rope.comp -DKV_F16=1"
       "rope.comp -DVEC4=1 -DKV_F16=1"
       "attention.comp -DKV_F16=1"
       "attention.comp -DSPLIT=1 -DKV_F16=1"
       "attention.comp -DSUBGROUP_ONLY=1 -DKV_F16=1"
       "attention.comp -DVEC=1 -DKEY_LANES=1 -DKEY_SLICES=6"
       "attention.comp -DSPLIT=1 -DVEC=1 -DKEY_LANES=16 -DKEY_SLICES=16 -DKV_F16=1"
       "attention.comp -DSPLIT=1 -DKEY_LANES=4 -DKEY_SLICES=16 -DKV_F16=1"
       "attention.comp -DSPLIT=1 -DKEY_LANES=16 -DKEY_SLICES=4 -DCLUSTERED=1 -DMERGE_CLUSTERS=2u"
       "attention.comp -DREAD_TEXEL=1 -DSUBGROUP_ONLY=1 -DNT=16u -DKV_F16=1"
       "attention.comp -DREAD_TEXEL=1 -DLANE_ROWS=8 -DNT=16u -DKV_F16=1"
       "attention.comp -DREAD_TEXEL=1 -DLANE_HEADS=1 -DNT=16u -DKV_F16=1"
       "silu_mul.comp -DVEC4=1"
       "rope.comp -DVEC4=1"
       "rmsnorm.comp -DVEC4=1"
       "rmsnorm.comp -DVEC4=1 -DSUBGROUP_ONLY=1")
# MLX's other bit widths, group sizes and scale dtypes (W_DTYPE 20).
for f in linear_block.comp embedding.comp; do
  for v in "-DMLX_BITS=8 -DMLX_GS=32" "-DMLX_BITS=4 -DMLX_GS=128 -DMLX_SCALE_BF16=0" "-DMLX_BITS=8 -DMLX_GS=128 -DMLX_SCALE_BF16=0"; do
    out="$tmp/mlx.$count.spv"
    if ! glslc --target-env=vulkan1.2 -IShaders -DW_DTYPE=20 $v -o "$out" "Shaders/$f" || ! spirv-val --target-env vulkan1.2 "$out"; then
      echo "check-shaders: FAILED $f (W_DTYPE=20 $v)"; fail=1; continue
    fi
    count=$((count + 1))
  done
done
for e in "${extra[@]}"; do
  set -- $e; f=Shaders/$1; shift
  for w in 0 1 2; do
    out="$tmp/extra.$count.spv"
    if ! glslc --target-env=vulkan1.2 -IShaders -DW_DTYPE=$w -DB_DTYPE=$w "$@" -o "$out" "$f" || ! spirv-val --target-env vulkan1.2 "$out"; then
      echo "check-shaders: FAILED $f (W_DTYPE=$w $*)"; fail=1; continue
    fi
    count=$((count + 1))
  done
done
[ $fail -eq 0 ] || exit 1
echo "check-shaders: $count shader variants compiled and validated"
