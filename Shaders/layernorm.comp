#version 450
// LayerNorm with optional bias: out = (x - mean) / sqrt(var + eps) * w + b, one workgroup per row.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Wt { uint W[]; };
layout(std430, binding = 2) readonly buffer Bs { uint B[]; };
layout(std430, binding = 3) writeonly buffer Out { float o[]; };

layout(push_constant) uniform P {
    uint dim; uint x_stride; uint x_col; uint o_stride;
    uint o_col; uint w_base; uint b_base; float eps; uint has_bias;
} p;

void main() {
    uint r = gl_WorkGroupID.x;
    uint n = gl_WorkGroupSize.x;
    uint xb = r * p.x_stride + p.x_col;
    float s = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < p.dim; i += n) s += x[xb + i];
    float mean = workgroup_sum(s) / float(p.dim);
    float v = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < p.dim; i += n) { float d = x[xb + i] - mean; v += d * d; }
    float inv = 1.0 / sqrt(workgroup_sum(v) / float(p.dim) + p.eps);
    for (uint i = gl_LocalInvocationID.x; i < p.dim; i += n) {
        float y = (x[xb + i] - mean) * inv * LOAD_W(W, p.w_base + i);
        if (p.has_bias != 0u) y += LOAD_B(B, p.b_base + i);
        o[r * p.o_stride + p.o_col + i] = y;
    }
}
