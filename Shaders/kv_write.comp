#version 450
// Appends rows to a KV cache: cache[kv_row(r, row_pos(r)), c] = src[r, c], c < width (each
// row at its position in its sequence's pages; max_rows: the cache's physical rows). z = 1 (a fused
// pair of plan ops, see Fusion.swift): the same for a second source and cache (k and v of one
// layer in one dispatch). The cache holds KV_T (float, or float16_t with KV_F16, see common.glsl).
#include "common.glsl"

layout(std430, binding = 0) readonly buffer S { float src[]; };
layout(std430, binding = 1) writeonly buffer C { KV_T cache[]; };
STEP_STATE(2)
layout(std430, binding = 3) readonly buffer S2 { float src2[]; };
layout(std430, binding = 4) writeonly buffer C2 { KV_T cache2[]; };

layout(push_constant) uniform P { uint width; uint s_stride; uint s_col; uint max_rows; uint s2_stride; uint s2_col; } p;

void main() {
    uint c = gl_GlobalInvocationID.x;
    uint r = gl_GlobalInvocationID.y;
    if (c >= p.width || r >= step_rows) return;
    uint pos = kv_row(r, row_pos(r));
    if (pos >= p.max_rows) return;
    if (gl_GlobalInvocationID.z == 0u) cache[pos * p.width + c] = KV_T(src[r * p.s_stride + p.s_col + c]);
    else cache2[pos * p.width + c] = KV_T(src2[r * p.s2_stride + p.s2_col + c]);
}
