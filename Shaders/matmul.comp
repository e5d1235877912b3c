#version 450
// Matrix-matrix product for prefill: out[r, o] (+)= sum_k x[r, k] * W[o, k] + bias[o].
// Same bindings and push constants as matvec.comp (chunked W: features o0 ..< o0 + ocount).
// Two read paths (the host picks one per device, see ReadPath.swift):
//
// READ_TEXEL 0 (storage buffers): a 16x16 workgroup computes a 64 (rows) x 64 (features) tile,
//   4x4 outputs per invocation, stepping through k in slabs of 16 held in shared memory. Any
//   M/N/K (edges are masked).
// READ_TEXEL 1 (uniform texel buffers): W and x are R32G32B32A32_UINT views (16 bytes per
//   texelFetch). A workgroup (one subgroup) computes FEATS features x RROWS rows: each
//   invocation strides over the texels of k keeping FEATS x RROWS running sums, so each W fetch
//   serves RROWS rows and each x fetch FEATS features; one subgroupAdd per output at the end,
//   no barrier. ALIGNED = 1 when W rows, x rows and in_f are whole texels; otherwise a scalar
//   path fetches the texel holding each element.
#include "common.glsl"

#ifndef READ_TEXEL
#define READ_TEXEL 0
#endif
#ifndef WG_REDUCE
#define WG_REDUCE 0
#endif

#if READ_TEXEL == 0

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Wt { uint W[]; };
layout(std430, binding = 2) readonly buffer Bs { uint B[]; };
layout(std430, binding = 3) buffer Out { float o[]; };

layout(push_constant) uniform P {
    uint in_f; uint x_stride; uint x_col; uint o_stride;
    uint o_col; uint w_base; uint b_base; uint has_bias;
    uint accumulate; uint o0; uint ocount; uint rows;
} p;

const uint TILE = 64u;
const uint KS = 16u;
shared float xs[KS][TILE];   // xs[k][row]
shared float ws[KS][TILE];   // ws[k][feature]

void main() {
    uint tx = gl_LocalInvocationID.x;   // feature direction
    uint ty = gl_LocalInvocationID.y;   // row direction
    uint tid = ty * 16u + tx;
    uint f0 = gl_WorkGroupID.x * TILE;
    uint r0 = gl_WorkGroupID.y * TILE;
    float acc[4][4];
    for (uint i = 0u; i < 4u; i++) for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;

    for (uint k0 = 0u; k0 < p.in_f; k0 += KS) {
        // 64x16 values of x and of W per slab: 4 each per invocation.
        for (uint e = tid; e < TILE * KS; e += 256u) {
            uint t = e / KS, k = e % KS;
            uint gk = k0 + k;
            uint gr = r0 + t;
            xs[k][t] = (gr < p.rows && gk < p.in_f) ? x[gr * p.x_stride + p.x_col + gk] : 0.0;
            uint gf = f0 + t;
            ws[k][t] = (gf < p.ocount && gk < p.in_f) ? LOAD_W(W, p.w_base + gf * p.in_f + gk) : 0.0;
        }
        barrier();
        for (uint k = 0u; k < KS; k++) {
            float xv[4], wv[4];
            for (uint i = 0u; i < 4u; i++) { xv[i] = xs[k][ty + 16u * i]; wv[i] = ws[k][tx + 16u * i]; }
            for (uint i = 0u; i < 4u; i++) for (uint j = 0u; j < 4u; j++) acc[i][j] += xv[i] * wv[j];
        }
        barrier();
    }
    for (uint i = 0u; i < 4u; i++) {
        uint r = r0 + ty + 16u * i;
        if (r >= p.rows) continue;
        for (uint j = 0u; j < 4u; j++) {
            uint f = f0 + tx + 16u * j;
            if (f >= p.ocount) continue;
            uint of = p.o0 + f;
            float v = acc[i][j];
            if (p.has_bias != 0u) v += LOAD_B(B, p.b_base + of);
            uint oi = r * p.o_stride + p.o_col + of;
            if (p.accumulate != 0u) o[oi] += v; else o[oi] = v;
        }
    }
}

#else

layout(binding = 0) uniform usamplerBuffer X;      // x, f32 bits; x_col: element index in the view
layout(binding = 1) uniform usamplerBuffer W;      // W; w_base: element index in the view
layout(std430, binding = 2) readonly buffer Bs { uint B[]; };
layout(std430, binding = 3) buffer Out { float o[]; };

layout(push_constant) uniform P {
    uint in_f; uint x_stride; uint x_col; uint o_stride;
    uint o_col; uint w_base; uint b_base; uint has_bias;
    uint accumulate; uint o0; uint ocount; uint rows;
} p;

layout(constant_id = 2) const uint FEATS = 8u;     // features per workgroup
layout(constant_id = 3) const uint RROWS = 8u;     // rows per workgroup
layout(constant_id = 4) const uint ALIGNED = 1u;   // see the header

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

float out_sum(float v) {
#if WG_REDUCE
    if (gl_NumSubgroups > 1u) return workgroup_sum(v);
#endif
    return subgroupAdd(v);
}

void main() {
    uint j0 = gl_WorkGroupID.x * FEATS;  // first feature within the chunk
    uint r0 = gl_WorkGroupID.y * RROWS;  // first row
    if (j0 >= p.ocount || r0 >= p.rows) return;
    uint lane = gl_LocalInvocationID.x;
    uint n = gl_WorkGroupSize.x;
    uint lastF = p.ocount - 1u, lastR = p.rows - 1u;  // past the end: read the last, store nothing
    float acc[FEATS * RROWS];
    for (uint i = 0u; i < FEATS * RROWS; i++) acc[i] = 0.0;

    if (ALIGNED != 0u) {
        uint nt = p.in_f / EPT;          // texels per W row
        uint wt[FEATS];
        for (uint i = 0u; i < FEATS; i++) wt[i] = p.w_base / EPT + min(j0 + i, lastF) * nt;
        uint xt[RROWS];
        for (uint r = 0u; r < RROWS; r++) xt[r] = (min(r0 + r, lastR) * p.x_stride + p.x_col) >> 2u;
        for (uint t = lane; t < nt; t += n) {
#if W_DTYPE == 0
            vec4 xv[RROWS];
            for (uint r = 0u; r < RROWS; r++) xv[r] = uintBitsToFloat(texelFetch(X, int(xt[r] + t)));
            for (uint i = 0u; i < FEATS; i++) {
                vec4 w = uintBitsToFloat(texelFetch(W, int(wt[i] + t)));
                for (uint r = 0u; r < RROWS; r++) acc[i * RROWS + r] += dot(w, xv[r]);
            }
#else
            vec4 xa[RROWS], xc[RROWS];
            for (uint r = 0u; r < RROWS; r++) {
                vec4 a = uintBitsToFloat(texelFetch(X, int(xt[r] + 2u * t)));
                vec4 c = uintBitsToFloat(texelFetch(X, int(xt[r] + 2u * t + 1u)));
#if W_DTYPE == 1
                xa[r] = a; xc[r] = c;
#else
                // bf16 pairs per word: the low half is the even element, the high half the odd one.
                xa[r] = vec4(a.x, a.z, c.x, c.z);
                xc[r] = vec4(a.y, a.w, c.y, c.w);
#endif
            }
            for (uint i = 0u; i < FEATS; i++) {
                uvec4 w = texelFetch(W, int(wt[i] + t));
#if W_DTYPE == 1
                vec4 wa = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
                vec4 wc = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
#else
                vec4 wa = uintBitsToFloat(w << 16u);
                vec4 wc = uintBitsToFloat(w & 0xFFFF0000u);
#endif
                for (uint r = 0u; r < RROWS; r++) acc[i * RROWS + r] += dot(wa, xa[r]) + dot(wc, xc[r]);
            }
#endif
        }
    } else {
        uint we[FEATS];
        for (uint i = 0u; i < FEATS; i++) we[i] = p.w_base + min(j0 + i, lastF) * p.in_f;
        uint xe[RROWS];
        for (uint r = 0u; r < RROWS; r++) xe[r] = min(r0 + r, lastR) * p.x_stride + p.x_col;
        for (uint k = lane; k < p.in_f; k += n) {
            float xv[RROWS];
            for (uint r = 0u; r < RROWS; r++) xv[r] = x_at(xe[r] + k);
            for (uint i = 0u; i < FEATS; i++) {
                float w = w_at(we[i] + k);
                for (uint r = 0u; r < RROWS; r++) acc[i * RROWS + r] += w * xv[r];
            }
        }
    }

    for (uint i = 0u; i < FEATS; i++) {
        uint of = p.o0 + j0 + i;
        float bias = (p.has_bias != 0u && j0 + i < p.ocount) ? LOAD_B(B, p.b_base + of) : 0.0;
        for (uint r = 0u; r < RROWS; r++) {
            float s = out_sum(acc[i * RROWS + r]);
            if (lane == 0u && j0 + i < p.ocount && r0 + r < p.rows) {
                uint oi = (r0 + r) * p.o_stride + p.o_col + of;
                if (p.accumulate != 0u) o[oi] += s + bias; else o[oi] = s + bias;
            }
        }
    }
}

#endif
