#version 450
// Copies KV cache rows step_pos0 ..< step_pos0 + rows from one slot to another: what a token
// that stopped early leaves in the slots of the passes it skipped (the "latest" KV policy).
#include "common.glsl"

layout(std430, binding = 0) readonly buffer S { float src[]; };
layout(std430, binding = 1) writeonly buffer D { float dst[]; };
STEP_STATE(2)

layout(push_constant) uniform P { uint width; uint max_rows; } p;

void main() {
    uint c = gl_GlobalInvocationID.x;
    uint r = gl_GlobalInvocationID.y;
    if (c >= p.width || r >= step_rows) return;
    uint pos = step_pos0 + r;
    if (pos >= p.max_rows) return;
    dst[pos * p.width + c] = src[pos * p.width + c];
}
