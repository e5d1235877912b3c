#version 450
// Copies a column window: out[r, o_col + i] = src[r, s_col + i], i < width.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer S { float s[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };

layout(push_constant) uniform P { uint width; uint s_stride; uint s_col; uint o_stride; uint o_col; uint rows; } p;

void main() {
    uint i = gl_GlobalInvocationID.x;
    uint r = gl_GlobalInvocationID.y;
    if (i >= p.width || r >= p.rows) return;
    o[r * p.o_stride + p.o_col + i] = s[r * p.s_stride + p.s_col + i];
}
