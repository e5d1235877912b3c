#version 450
// Gated SiLU: out = silu(gate) * up = gate / (1 + exp(-gate)) * up.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer G { float g[]; };
layout(std430, binding = 1) readonly buffer U { float u[]; };
layout(std430, binding = 2) writeonly buffer Out { float o[]; };

layout(push_constant) uniform P {
    uint dim; uint g_stride; uint g_col; uint u_stride;
    uint u_col; uint o_stride; uint o_col; uint rows;
} p;

void main() {
    uint i = gl_GlobalInvocationID.x;
    uint r = gl_GlobalInvocationID.y;
    if (i >= p.dim || r >= p.rows) return;
    float a = g[r * p.g_stride + p.g_col + i];
    o[r * p.o_stride + p.o_col + i] = a / (1.0 + exp(-a)) * u[r * p.u_stride + p.u_col + i];
}
