#version 450
// The product with a block-quantized weight (Q8_0, Q4_0, Q4_K, Q6_K, MLX affine; see
// block_formats.glsl): out[r, o] (+)= sum_k x[r, k] * W[o, k] + bias[o], fp32 accumulation,
// decode and prefill alike. Same push constants as matvec.comp (chunked W: features
// o0 ..< o0 + ocount) except that w_base is the byte address of the window's first row in the
// W binding.
//
// A subgroup per output feature, the workgroup's gl_NumSubgroups features side by side, and up
// to RB (8) rows per workgroup (gl_WorkGroupID.y: rows 8y ..< 8y + 8): each invocation takes
// 32-element chunks of the row in turn (consecutive invocations consecutive chunks), decodes
// each chunk once for all the workgroup's rows, and the rows' sums end in one subgroupAdd each.
// READ_TEXEL 1 binds W as a R32G32B32A32_UINT texel view instead of a storage buffer.
#include "common.glsl"

#ifndef READ_TEXEL
#define READ_TEXEL 0
#endif

layout(push_constant) uniform P {
    uint in_f; uint x_stride; uint x_col; uint o_stride;
    uint o_col; uint w_base; uint b_base; uint has_bias;
    uint accumulate; uint o0; uint ocount; uint rows;
} p;

layout(std430, binding = 0) readonly buffer X { float x[]; };
#if READ_TEXEL
layout(binding = 1) uniform usamplerBuffer W;
#define W_WORD(i) texelFetch(W, int((i) >> 2u))[(i) & 3u]
#else
layout(std430, binding = 1) readonly buffer Wt { uint W[]; };
#define W_WORD(i) W[(i)]
#endif
layout(std430, binding = 2) readonly buffer Bs { uint B[]; };
layout(std430, binding = 3) buffer Out { float o[]; };

#include "block_formats.glsl"

const uint RB = 8u;

void main() {
    uint j = gl_WorkGroupID.x * gl_NumSubgroups + gl_SubgroupID;   // same across a subgroup
    uint r0 = gl_WorkGroupID.y * RB;
    if (j >= p.ocount || r0 >= p.rows) return;
    uint nr = min(RB, p.rows - r0);
    uint row = p.w_base + j * W_ROW_BYTES(p.in_f);
    uint chunks = p.in_f / 32u;
    float acc[RB];
    for (uint r = 0u; r < RB; r++) acc[r] = 0.0;
    for (uint c = gl_SubgroupInvocationID; c < chunks; c += gl_SubgroupSize) {
        for (uint e = 0u; e < 4u; e++) {
            vec4 lo, hi;
            block_decode8(row, c, e, lo, hi);
            uint k = 32u * c + 8u * e;
            for (uint r = 0u; r < RB; r++) {
                if (r >= nr) break;
                uint xb = (r0 + r) * p.x_stride + p.x_col + k;
                acc[r] += dot(lo, vec4(x[xb], x[xb + 1u], x[xb + 2u], x[xb + 3u]))
                        + dot(hi, vec4(x[xb + 4u], x[xb + 5u], x[xb + 6u], x[xb + 7u]));
            }
        }
    }
    for (uint r = 0u; r < RB; r++) {
        if (r >= nr) break;
        float s = subgroupAdd(acc[r]);
        if (subgroupElect()) {
            uint of = p.o0 + j;
            if (p.has_bias != 0u) s += LOAD_B(B, p.b_base + of);
            uint oi = (r0 + r) * p.o_stride + p.o_col + of;
            if (p.accumulate != 0u) o[oi] += s; else o[oi] = s;
        }
    }
}
