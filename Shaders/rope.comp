#version 450
// Rotary position embedding, in place, at positions step_pos0 + row, from a table
// [positions, head_dim/2, 2] of (cos, sin). layout 0: rotate-half (dim i pairs with i + d/2);
// layout 1: interleaved pairs (2i, 2i+1). One invocation per (pair, head, row).
#include "common.glsl"

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer T { float tab[]; };
STEP_STATE(2)

layout(push_constant) uniform P {
    uint heads; uint head_dim; uint x_stride; uint x_col;
    uint t_base; uint t_positions; uint layout_kind;
} p;

void main() {
    uint half_d = p.head_dim / 2u;
    uint i = gl_GlobalInvocationID.x;
    uint h = gl_GlobalInvocationID.y;
    uint r = gl_GlobalInvocationID.z;
    if (i >= half_d || h >= p.heads || r >= step_rows) return;
    uint pos = step_pos0 + r;
    if (pos >= p.t_positions) return;
    float c = tab[p.t_base + (pos * half_d + i) * 2u];
    float s = tab[p.t_base + (pos * half_d + i) * 2u + 1u];
    uint base = r * p.x_stride + p.x_col + h * p.head_dim;
    uint ia = p.layout_kind == 0u ? base + i : base + 2u * i;
    uint ib = p.layout_kind == 0u ? base + i + half_d : base + 2u * i + 1u;
    float a = x[ia], b = x[ib];
    x[ia] = a * c - b * s;
    x[ib] = b * c + a * s;
}
