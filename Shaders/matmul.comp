#version 450
// Tiled matrix-matrix product for prefill: out[r, o] (+)= sum_k x[r, k] * W[o, k] + bias[o].
// A 16x16 workgroup computes a 64 (rows) x 64 (features) tile, 4x4 outputs per invocation,
// stepping through k in slabs of 16 held in shared memory. Any M/N/K (edges are masked).
// Same bindings and push constants as matvec.comp (chunked W: features o0 ..< o0 + ocount).
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
