#version 450
// RMSNorm over groups of `dim` values (one workgroup per (row, group)), statistic in fp32:
//   mode 0: out = x * inversesqrt(mean(x^2) + eps) * w
//   mode 1: out += x * inversesqrt(mean(x^2) + eps) * w        (residual add of a normalized branch)
//   mode 2: s = x + add; out = s * inversesqrt(mean(s^2) + eps) * w   (normalize the sum)
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(std430, binding = 2) readonly buffer Wt { uint W[]; };
layout(std430, binding = 3) buffer Out { float o[]; };

layout(push_constant) uniform P {
    uint dim; uint groups; uint x_stride; uint x_col;
    uint a_stride; uint a_col; uint o_stride; uint o_col;
    uint w_base; float eps; uint mode; uint has_weight;
} p;

float value(uint r, uint i) {
    float v = x[r * p.x_stride + p.x_col + i];
    if (p.mode == 2u) v += a[r * p.a_stride + p.a_col + i];
    return v;
}

void main() {
    uint g = gl_WorkGroupID.x;
    uint r = gl_WorkGroupID.y;
    uint base = g * p.dim;
    uint n = gl_WorkGroupSize.x;
    float ss = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < p.dim; i += n) {
        float v = value(r, base + i);
        ss += v * v;
    }
    ss = workgroup_sum(ss);
    float inv = 1.0 / sqrt(ss / float(p.dim) + p.eps);
    for (uint i = gl_LocalInvocationID.x; i < p.dim; i += n) {
        float y = value(r, base + i) * inv;
        if (p.has_weight != 0u) y *= LOAD_W(W, p.w_base + i);
        uint oi = r * p.o_stride + p.o_col + base + i;
        if (p.mode == 1u) o[oi] += y; else o[oi] = y;
    }
}
