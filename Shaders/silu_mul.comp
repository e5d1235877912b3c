#version 450
// Gated SiLU: out = silu(gate) * up = gate / (1 + exp(-gate)) * up.
// VEC4 1: each invocation takes 4 consecutive values through vec4 loads and stores (the host
// sets it when dim, the columns and the strides are multiples of 4). On lavapipe a storage
// buffer access is a per-invocation loop, so a quarter as many accesses is most of the cost.
#include "common.glsl"

#ifndef VEC4
#define VEC4 0
#endif
#if VEC4
#define T vec4
#else
#define T float
#endif

layout(std430, binding = 0) readonly buffer G { T g[]; };
layout(std430, binding = 1) readonly buffer U { T u[]; };
layout(std430, binding = 2) writeonly buffer Out { T o[]; };

// With VEC4, dim, strides and columns are in vec4 units.
layout(push_constant) uniform P {
    uint dim; uint g_stride; uint g_col; uint u_stride;
    uint u_col; uint o_stride; uint o_col; uint rows;
} p;

void main() {
    uint i = gl_GlobalInvocationID.x;
    uint r = gl_GlobalInvocationID.y;
    if (i >= p.dim || r >= p.rows) return;
    T a = g[r * p.g_stride + p.g_col + i];   // (once: SILU_MUL reads its gate twice)
    o[r * p.o_stride + p.o_col + i] = SILU_MUL(a, u[r * p.u_stride + p.u_col + i]);
}
