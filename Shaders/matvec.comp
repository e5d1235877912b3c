#version 450
// Matrix-vector product for decode (few rows): out[r, o] (+)= sum_k x[r, k] * W[o, k] + bias[o].
// W [out, in] in W_DTYPE, bias in B_DTYPE, fp32 accumulation. A large W is bound in chunks of
// output features: this dispatch computes features o0 ..< o0 + ocount. Two read paths (the host
// picks one per device, see ReadPath.swift):
//
// READ_TEXEL 0 (storage buffers): one workgroup per (output feature, row); invocations stride
//   over k, subgroup + shared-memory reduction.
// READ_TEXEL 1 (uniform texel buffers): W and x are R32G32B32A32_UINT views, 16 bytes per
//   texelFetch (4 f32 or 8 f16/bf16). A workgroup (one subgroup) computes ROWS output features
//   for one row of x: each invocation strides over the texels of k keeping ROWS running sums, so
//   each fetch of x serves ROWS rows of W (32 by default: on lavapipe the number of fetches, not
//   the bandwidth, is the limit), then one subgroupAdd per feature. ALIGNED = 1 when every
//   W row and the x row start on a whole texel and in_f fills whole texels; otherwise a scalar
//   path fetches the texel holding each element.
#include "common.glsl"

#ifndef READ_TEXEL
#define READ_TEXEL 0
#endif
#ifndef WG_REDUCE
#define WG_REDUCE 0
#endif

layout(push_constant) uniform P {
    uint in_f; uint x_stride; uint x_col; uint o_stride;
    uint o_col; uint w_base; uint b_base; uint has_bias;
    uint accumulate; uint o0; uint ocount; uint rows;
} p;

layout(std430, binding = 2) readonly buffer Bs { uint B[]; };
layout(std430, binding = 3) buffer Out { float o[]; };

void store(uint r, uint of, float acc) {
    if (p.has_bias != 0u) acc += LOAD_B(B, p.b_base + of);
    uint oi = r * p.o_stride + p.o_col + of;
    if (p.accumulate != 0u) o[oi] += acc; else o[oi] = acc;
}

#if READ_TEXEL == 0

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Wt { uint W[]; };

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
    if (gl_LocalInvocationID.x == 0u) store(r, p.o0 + j, acc);
}

#else

layout(constant_id = 2) const uint ROWS = 32u;     // features per workgroup
layout(constant_id = 3) const uint ALIGNED = 1u;   // see the header

layout(binding = 0) uniform usamplerBuffer X;      // x, f32 bits; x_col: element index in the view
layout(binding = 1) uniform usamplerBuffer W;      // W; w_base: element index in the view

#if W_DTYPE == 0
const uint EPT = 4u;                               // W elements per texel
#else
const uint EPT = 8u;
#endif

float x_at(uint i) { return uintBitsToFloat(texelFetch(X, int(i >> 2u))[i & 3u]); }

float w_at(uint i) {
#if W_DTYPE == 0
    return uintBitsToFloat(texelFetch(W, int(i >> 2u))[i & 3u]);
#else
    uint word = texelFetch(W, int(i >> 3u))[(i >> 1u) & 3u];
#if W_DTYPE == 1
    return unpackHalf2x16(word >> ((i & 1u) * 16u)).x;
#else
    return uintBitsToFloat((i & 1u) == 0u ? word << 16u : word & 0xFFFF0000u);
#endif
#endif
}

// Sum of one feature's partial sums over the workgroup. The host makes a workgroup one
// subgroup; WG_REDUCE (GPUs) adds a shared-memory step for drivers that split it anyway.
// lavapipe compiles any shader containing barrier() into coroutines, which costs ~20% here.
float feature_sum(float v) {
#if WG_REDUCE
    if (gl_NumSubgroups > 1u) return workgroup_sum(v);
#endif
    return subgroupAdd(v);
}

void main() {
    uint j0 = gl_WorkGroupID.x * ROWS;  // first feature of this workgroup within the chunk
    uint r = gl_WorkGroupID.y;
    if (j0 >= p.ocount || r >= p.rows) return;
    uint lane = gl_LocalInvocationID.x;
    uint n = gl_WorkGroupSize.x;
    uint last = p.ocount - 1u;          // features past the end read the last one, unused
    uint xb = r * p.x_stride + p.x_col;
    float acc[ROWS];
    for (uint i = 0u; i < ROWS; i++) acc[i] = 0.0;

    if (ALIGNED != 0u) {
        uint nt = p.in_f / EPT;         // texels per W row
        uint wt[ROWS];
        for (uint i = 0u; i < ROWS; i++) wt[i] = p.w_base / EPT + min(j0 + i, last) * nt;
        uint xt = xb >> 2u;
        for (uint t = lane; t < nt; t += n) {
#if W_DTYPE == 0
            vec4 xv = uintBitsToFloat(texelFetch(X, int(xt + t)));
            for (uint i = 0u; i < ROWS; i++) acc[i] += dot(uintBitsToFloat(texelFetch(W, int(wt[i] + t))), xv);
#else
            vec4 xa = uintBitsToFloat(texelFetch(X, int(xt + 2u * t)));
            vec4 xc = uintBitsToFloat(texelFetch(X, int(xt + 2u * t + 1u)));
#if W_DTYPE == 1
            for (uint i = 0u; i < ROWS; i++) {
                uvec4 w = texelFetch(W, int(wt[i] + t));
                acc[i] += dot(vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y)), xa)
                        + dot(vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w)), xc);
            }
#else
            // bf16 pairs per word: the low half is the even element, the high half the odd one.
            vec4 xe = vec4(xa.x, xa.z, xc.x, xc.z);
            vec4 xo = vec4(xa.y, xa.w, xc.y, xc.w);
            for (uint i = 0u; i < ROWS; i++) {
                uvec4 w = texelFetch(W, int(wt[i] + t));
                acc[i] += dot(uintBitsToFloat(w << 16u), xe) + dot(uintBitsToFloat(w & 0xFFFF0000u), xo);
            }
#endif
#endif
        }
    } else {
        uint we[ROWS];
        for (uint i = 0u; i < ROWS; i++) we[i] = p.w_base + min(j0 + i, last) * p.in_f;
        for (uint k = lane; k < p.in_f; k += n) {
            float xv = x_at(xb + k);
            for (uint i = 0u; i < ROWS; i++) acc[i] += xv * w_at(we[i] + k);
        }
    }

    for (uint i = 0u; i < ROWS; i++) {
        float s = feature_sum(acc[i]);
        if (lane == 0u && j0 + i < p.ocount) store(r, p.o0 + j0 + i, s);
    }
}

#endif
