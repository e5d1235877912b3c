#version 450
// RMSNorm over groups of `dim` values (one workgroup per (row, group)), statistic in fp32:
//   mode 0: out = x * inversesqrt(mean(x^2) + eps) * w
//   mode 1: out += x * inversesqrt(mean(x^2) + eps) * w        (residual add of a normalized branch)
//   mode 2: s = x + add; out = s * inversesqrt(mean(s^2) + eps) * w   (normalize the sum)
// chain 1 (a fused pair of plan ops, see Fusion.swift): then out2 = out * inversesqrt(mean(out^2)
//   + eps2) * w2, the next plain norm of the row just written (norm + residual + next norm in
//   one dispatch). Each invocation reads back only the elements it wrote itself.
// VEC4 1: activations move as vec4 and the weights 4 elements per load (dim, strides and
// columns in units of 4 floats; the host sets it when all, and the weight bases, are multiples
// of 4): on lavapipe each storage-buffer access is a per-invocation loop, so a quarter as many
// is most of this shader's cost.
#include "common.glsl"

#ifndef VEC4
#define VEC4 0
#endif
#if VEC4
#define T vec4
#define SQ(v) dot(v, v)
const uint PER = 4u;
// The weights' 4 elements of a vec4 in one load too (weight_formats.glsl).
#define WT W_VEC4_T
#define LOAD_T(B, i) w_vec4(B[i])
#else
#define T float
#define SQ(v) ((v) * (v))
#define WT uint
#define LOAD_T(B, i) LOAD_W(B, i)
const uint PER = 1u;
#endif

layout(std430, binding = 0) readonly buffer X { T x[]; };
layout(std430, binding = 1) readonly buffer A { T a[]; };
layout(std430, binding = 2) readonly buffer Wt { WT W[]; };
layout(std430, binding = 3) buffer Out { T o[]; };
layout(std430, binding = 4) readonly buffer Wt2 { WT W2[]; };
layout(std430, binding = 5) buffer Out2 { T o2[]; };

layout(push_constant) uniform P {
    uint dim; uint groups; uint x_stride; uint x_col;
    uint a_stride; uint a_col; uint o_stride; uint o_col;
    uint w_base; float eps; uint mode; uint has_weight;
    uint chain; uint o2_stride; uint o2_col; uint w2_base;
    float eps2; uint has_weight2;
} p;

T value(uint r, uint i) {
    T v = x[r * p.x_stride + p.x_col + i];
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
        T v = value(r, base + i);
        ss += SQ(v);
    }
    ss = workgroup_sum(ss);
    float inv = 1.0 / sqrt(ss / float(p.dim * PER) + p.eps);
    for (uint i = gl_LocalInvocationID.x; i < p.dim; i += n) {
        T y = value(r, base + i) * inv;
        if (p.has_weight != 0u) y *= LOAD_T(W, p.w_base / PER + i);
        uint oi = r * p.o_stride + p.o_col + base + i;
        if (p.mode == 1u) o[oi] += y; else o[oi] = y;
    }
    if (p.chain == 0u) return;
    float ss2 = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < p.dim; i += n) {
        T v = o[r * p.o_stride + p.o_col + base + i];
        ss2 += SQ(v);
    }
    ss2 = workgroup_sum(ss2);
    float inv2 = 1.0 / sqrt(ss2 / float(p.dim * PER) + p.eps2);
    for (uint i = gl_LocalInvocationID.x; i < p.dim; i += n) {
        T y = o[r * p.o_stride + p.o_col + base + i] * inv2;
        if (p.has_weight2 != 0u) y *= LOAD_T(W2, p.w2_base / PER + i);
        o2[r * p.o2_stride + p.o2_col + base + i] = y;
    }
}
