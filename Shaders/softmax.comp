#version 450
// Softmax over each row of `dim` values (one workgroup per row), max-subtracted, fp32.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };

layout(push_constant) uniform P { uint dim; uint x_stride; uint x_col; uint o_stride; uint o_col; } p;

void main() {
    uint r = gl_WorkGroupID.x;
    uint t = gl_LocalInvocationID.x;
    uint n = gl_WorkGroupSize.x;
    uint xb = r * p.x_stride + p.x_col;
    float m = -1.0 / 0.0;
    for (uint i = t; i < p.dim; i += n) m = max(m, x[xb + i]);
    m = workgroup_max(m);
    float s = 0.0;
    for (uint i = t; i < p.dim; i += n) s += exp(x[xb + i] - m);
    s = workgroup_sum(s);
    for (uint i = t; i < p.dim; i += n) o[r * p.o_stride + p.o_col + i] = exp(x[xb + i] - m) / s;
}
