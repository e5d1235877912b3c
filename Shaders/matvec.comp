#version 450
// Matrix-vector product for decode (few rows): out[r, o] (+)= sum_k x[r, k] * W[o, k] + bias[o].
// One workgroup per (output feature, row); invocations stride over k, fp32 accumulation,
// subgroup + shared-memory reduction. W [out, in] in W_DTYPE, bias in B_DTYPE. A large W is
// bound in chunks of output features: this dispatch computes features o0 ..< o0 + ocount.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Wt { uint W[]; };
layout(std430, binding = 2) readonly buffer Bs { uint B[]; };
layout(std430, binding = 3) buffer Out { float o[]; };

layout(push_constant) uniform P {
    uint in_f; uint x_stride; uint x_col; uint o_stride;
    uint o_col; uint w_base; uint b_base; uint has_bias;
    uint accumulate; uint o0; uint ocount; uint rows;
} p;

void main() {
    uint j = gl_WorkGroupID.x;          // feature within this chunk
    uint r = gl_WorkGroupID.y;
    if (j >= p.ocount || r >= p.rows) return;
    uint n = gl_WorkGroupSize.x;
    uint xb = r * p.x_stride + p.x_col;
    uint wb = p.w_base + j * p.in_f;
    float acc = 0.0;
    for (uint k = gl_LocalInvocationID.x; k < p.in_f; k += n) acc += x[xb + k] * LOAD_W(W, wb + k);
    acc = workgroup_sum(acc);
    if (gl_LocalInvocationID.x == 0u) {
        uint of = p.o0 + j;
        if (p.has_bias != 0u) acc += LOAD_B(B, p.b_base + of);
        uint oi = r * p.o_stride + p.o_col + of;
        if (p.accumulate != 0u) o[oi] += acc; else o[oi] = acc;
    }
}
