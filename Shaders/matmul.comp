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
//   no barrier. W is row-major, or (IL > 0) in matvec.comp's interleaved layout: blocks of IL
//   features, texel t of feature f at block(f) * IL * nt + t * IL + f % IL. ALIGNED = 1 when
//   x rows (and row-major W rows) start on whole texels and in_f is whole texels; otherwise a
//   scalar path fetches the texel holding each element.
#include "common.glsl"

#ifndef READ_TEXEL
#define READ_TEXEL 0
#endif
#ifndef WG_REDUCE
#define WG_REDUCE 0
#endif
#ifndef UNROLLED_8X8
#define UNROLLED_8X8 0
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
layout(constant_id = 5) const uint IL = 0u;        // W layout: 0 row-major, else interleave block

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

// Texel index of texel 0 of feature f (within the chunk) and the step between its texels.
uint w_row(uint f, uint nt) { return IL == 0u ? p.w_base / EPT + f * nt : p.w_base / EPT + (f / IL) * IL * nt + f % IL; }
const uint WSTEP = IL == 0u ? 1u : IL;

// Element k of feature f (scalar branch), either layout.
float w_elem(uint f, uint k) {
    if (IL == 0u) return w_at(p.w_base + f * p.in_f + k);
    uint i = w_row(f, p.in_f / EPT) + (k / EPT) * IL;
    return w_at(i * EPT + k % EPT);
}

float out_sum(float v) {
#if WG_REDUCE
    if (gl_NumSubgroups > 1u) return workgroup_sum(v);
#endif
    return subgroupAdd(v);
}

#if UNROLLED_8X8
// FEATS = RROWS = 8, ALIGNED = 1, written out so that every accumulator, x vector and W row
// index is a constant index: lavapipe keeps arrays with any dynamic index in memory (a
// gather/scatter per access), which made the loop form ~2x slower.
#define LOAD_X(r) { uint xr = (min(r0 + r, lastR) * p.x_stride + p.x_col) >> 2u; xt[r] = xr; }
#define FEATURE(i, A) { \
    uvec4 w = texelFetch(W, int(wt[i] + t * WSTEP)); \
    WDECODE \
    A[0] += DOT_ROW(0); A[1] += DOT_ROW(1); A[2] += DOT_ROW(2); A[3] += DOT_ROW(3); \
    A[4] += DOT_ROW(4); A[5] += DOT_ROW(5); A[6] += DOT_ROW(6); A[7] += DOT_ROW(7); }
#if W_DTYPE == 0
#define WDECODE vec4 wa = uintBitsToFloat(w);
#define DOT_ROW(r) dot(wa, xa[r])
#define LOAD_XV(r) { xa[r] = uintBitsToFloat(texelFetch(X, int(xt[r] + t))); }
#else
#if W_DTYPE == 1
#define WDECODE vec4 wa = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y)); vec4 wc = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
#define LOAD_XV(r) { xa[r] = uintBitsToFloat(texelFetch(X, int(xt[r] + 2u * t))); xc[r] = uintBitsToFloat(texelFetch(X, int(xt[r] + 2u * t + 1u))); }
#else
#define WDECODE vec4 wa = uintBitsToFloat(w << 16u); vec4 wc = uintBitsToFloat(w & 0xFFFF0000u);
#define LOAD_XV(r) { vec4 a = uintBitsToFloat(texelFetch(X, int(xt[r] + 2u * t))); vec4 c = uintBitsToFloat(texelFetch(X, int(xt[r] + 2u * t + 1u))); \
    xa[r] = vec4(a.x, a.z, c.x, c.z); xc[r] = vec4(a.y, a.w, c.y, c.w); }
#endif
#define DOT_ROW(r) (dot(wa, xa[r]) + dot(wc, xc[r]))
#endif
#define STORE_ROW(i, A, r) { float s = out_sum(A[r]); \
    if (lane == 0u && j0 + i < p.ocount && r0 + r < p.rows) { uint oi = (r0 + r) * p.o_stride + p.o_col + p.o0 + j0 + i; \
        if (p.accumulate != 0u) o[oi] += s + bias; else o[oi] = s + bias; } }
#define STORE_FEATURE(i, A) { float bias = (p.has_bias != 0u && j0 + i < p.ocount) ? LOAD_B(B, p.b_base + p.o0 + j0 + i) : 0.0; \
    STORE_ROW(i, A, 0) STORE_ROW(i, A, 1) STORE_ROW(i, A, 2) STORE_ROW(i, A, 3) \
    STORE_ROW(i, A, 4) STORE_ROW(i, A, 5) STORE_ROW(i, A, 6) STORE_ROW(i, A, 7) }

void main() {
    uint j0 = gl_WorkGroupID.x * 8u;
    uint r0 = gl_WorkGroupID.y * 8u;
    if (j0 >= p.ocount || r0 >= p.rows) return;
    uint lane = gl_LocalInvocationID.x;
    uint n = gl_WorkGroupSize.x;
    uint lastF = p.ocount - 1u, lastR = p.rows - 1u;
    uint nt = p.in_f / EPT;
    uint wt[8] = uint[8](w_row(min(j0, lastF), nt), w_row(min(j0 + 1u, lastF), nt), w_row(min(j0 + 2u, lastF), nt),
                         w_row(min(j0 + 3u, lastF), nt), w_row(min(j0 + 4u, lastF), nt), w_row(min(j0 + 5u, lastF), nt),
                         w_row(min(j0 + 6u, lastF), nt), w_row(min(j0 + 7u, lastF), nt));
    uint xt[8];
    LOAD_X(0) LOAD_X(1) LOAD_X(2) LOAD_X(3) LOAD_X(4) LOAD_X(5) LOAD_X(6) LOAD_X(7)
    float a0[8] = float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    float a1[8] = a0, a2[8] = a0, a3[8] = a0, a4[8] = a0, a5[8] = a0, a6[8] = a0, a7[8] = a0;
    for (uint t = lane; t < nt; t += n) {
        vec4 xa[8];
#if W_DTYPE != 0
        vec4 xc[8];
#endif
        LOAD_XV(0) LOAD_XV(1) LOAD_XV(2) LOAD_XV(3) LOAD_XV(4) LOAD_XV(5) LOAD_XV(6) LOAD_XV(7)
        FEATURE(0, a0) FEATURE(1, a1) FEATURE(2, a2) FEATURE(3, a3)
        FEATURE(4, a4) FEATURE(5, a5) FEATURE(6, a6) FEATURE(7, a7)
    }
    STORE_FEATURE(0, a0) STORE_FEATURE(1, a1) STORE_FEATURE(2, a2) STORE_FEATURE(3, a3)
    STORE_FEATURE(4, a4) STORE_FEATURE(5, a5) STORE_FEATURE(6, a6) STORE_FEATURE(7, a7)
}

#else

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
        for (uint i = 0u; i < FEATS; i++) wt[i] = w_row(min(j0 + i, lastF), nt);
        uint xt[RROWS];
        for (uint r = 0u; r < RROWS; r++) xt[r] = (min(r0 + r, lastR) * p.x_stride + p.x_col) >> 2u;
        for (uint t = lane; t < nt; t += n) {
#if W_DTYPE == 0
            vec4 xv[RROWS];
            for (uint r = 0u; r < RROWS; r++) xv[r] = uintBitsToFloat(texelFetch(X, int(xt[r] + t)));
            for (uint i = 0u; i < FEATS; i++) {
                vec4 w = uintBitsToFloat(texelFetch(W, int(wt[i] + t * WSTEP)));
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
                uvec4 w = texelFetch(W, int(wt[i] + t * WSTEP));
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
        uint wf[FEATS];
        for (uint i = 0u; i < FEATS; i++) wf[i] = min(j0 + i, lastF);
        uint xe[RROWS];
        for (uint r = 0u; r < RROWS; r++) xe[r] = min(r0 + r, lastR) * p.x_stride + p.x_col;
        for (uint k = lane; k < p.in_f; k += n) {
            float xv[RROWS];
            for (uint r = 0u; r < RROWS; r++) xv[r] = x_at(xe[r] + k);
            for (uint i = 0u; i < FEATS; i++) {
                float w = w_elem(wf[i], k);
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

#endif  // UNROLLED_8X8

#endif
