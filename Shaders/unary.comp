#version 450
// Elementwise functions: kind 0 sigmoid, 1 softplus (PyTorch: x for x > 20), 2 exp, 3 silu,
// 4 fill (out = scale), 5 scale (out = scale * x).
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };

layout(push_constant) uniform P {
    uint dim; uint x_stride; uint x_col; uint o_stride;
    uint o_col; uint kind; float scale; uint rows;
} p;

void main() {
    uint i = gl_GlobalInvocationID.x;
    uint r = gl_GlobalInvocationID.y;
    if (i >= p.dim || r >= p.rows) return;
    float v = p.kind == 4u ? 0.0 : x[r * p.x_stride + p.x_col + i];
    float y;
    switch (p.kind) {
        case 0u: y = 1.0 / (1.0 + exp(-v)); break;
        case 1u: y = v > 20.0 ? v : log(1.0 + exp(v)); break;
        case 2u: y = exp(v); break;
        case 3u: y = v / (1.0 + exp(-v)); break;
        case 4u: y = p.scale; break;
        default: y = p.scale * v; break;
    }
    o[r * p.o_stride + p.o_col + i] = y;
}
