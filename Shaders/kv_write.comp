#version 450
// Appends rows to a KV cache: cache[step_pos0 + r, c] = src[r, c], c < width.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer S { float src[]; };
layout(std430, binding = 1) writeonly buffer C { float cache[]; };
STEP_STATE(2)

layout(push_constant) uniform P { uint width; uint s_stride; uint s_col; uint max_rows; } p;

void main() {
    uint c = gl_GlobalInvocationID.x;
    uint r = gl_GlobalInvocationID.y;
    if (c >= p.width || r >= step_rows) return;
    uint pos = step_pos0 + r;
    if (pos >= p.max_rows) return;
    cache[pos * p.width + c] = src[r * p.s_stride + p.s_col + c];
}
