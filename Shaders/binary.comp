#version 450
// Elementwise a (op) b: kind 0 add (residual add), 1 sub, 2 mul. b_stride 0 broadcasts one row.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) buffer Out { float o[]; };

layout(push_constant) uniform P {
    uint dim; uint a_stride; uint a_col; uint b_stride;
    uint b_col; uint o_stride; uint o_col; uint kind; uint rows;
} p;

void main() {
    uint i = gl_GlobalInvocationID.x;
    uint r = gl_GlobalInvocationID.y;
    if (i >= p.dim || r >= p.rows) return;
    float x = a[r * p.a_stride + p.a_col + i];
    float y = b[r * p.b_stride + p.b_col + i];
    float v = p.kind == 0u ? x + y : (p.kind == 1u ? x - y : x * y);
    o[r * p.o_stride + p.o_col + i] = v;
}
