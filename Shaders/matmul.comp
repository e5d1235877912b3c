#version 450
// Matrix-matrix product for prefill: out[r, o] (+)= sum_k x[r, k] * W[o, k] + bias[o].
// Same bindings and push constants as matvec.comp (chunked W: features o0 ..< o0 + ocount).
// Two read paths (the host picks one per device, see KernelConfig.read):
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
// READ_TEXEL 1 and LANE_FEATURES 1: interleaved W (IL = 32), aligned operands, a workgroup of
//   8 invocations computes 128 features x 8 rows without subgroup operations; see main() there.
//   SILU 1: the stacked gate/up product, 64 gate and the 64 matching up features per workgroup,
//   with H = silu(gate) * up stored too (see silu_store).
//   OUT_VEC4 1: an invocation's 4 consecutive features go out as one vec4 (see store_lf).
#include "common.glsl"

#ifndef READ_TEXEL
#define READ_TEXEL 0
#endif
#ifndef WG_REDUCE
#define WG_REDUCE 0
#endif
#ifndef LANE_FEATURES
#define LANE_FEATURES 0
#endif
#ifndef SILU
#define SILU 0
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

#ifndef OUT_VEC4
#define OUT_VEC4 0
#endif

layout(binding = 0) uniform usamplerBuffer X;      // x, f32 bits; x_col: element index in the view
layout(binding = 1) uniform usamplerBuffer W;      // W; w_base: element index in the view
layout(std430, binding = 2) readonly buffer Bs { uint B[]; };
#if OUT_VEC4
layout(std430, binding = 3) buffer Out { vec4 o[]; };
#else
layout(std430, binding = 3) buffer Out { float o[]; };
#endif

layout(push_constant) uniform P {
    uint in_f; uint x_stride; uint x_col; uint o_stride;
    uint o_col; uint w_base; uint b_base; uint has_bias;
    uint accumulate; uint o0; uint ocount; uint rows;
#if SILU
    uint silu_dim; uint h_stride; uint h_col;
#endif
} p;

layout(constant_id = 2) const uint FEATS = 8u;     // features per workgroup
layout(constant_id = 3) const uint RROWS = 8u;     // rows per workgroup
layout(constant_id = 4) const uint ALIGNED = 1u;   // see the header
layout(constant_id = 5) const uint IL = 0u;        // W layout: 0 row-major, else interleave block

const uint EPT = W_EPT;                            // W elements per texel (weight_formats.glsl)

float x_at(uint i) { return uintBitsToFloat(texelFetch(X, int(i >> 2u))[i & 3u]); }
float w_at(uint i) { return w_texel_at(W, i); }

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

#if LANE_FEATURES
// Interleaved W (IL = 32), ALIGNED, 8 invocations, no subgroup operations: a workgroup computes
// 4 blocks (128 features) for 8 rows. Invocation `lane` owns features 4 * lane ..< 4 * lane + 4
// of each block (as matvec.comp does), so a step of k fetches 16 W texels per invocation, the
// workgroup reading each block as one 512-byte run, and the 8 rows' x texels at addresses all
// invocations share; 16 x 8 running sums, each x texel serving 16 features and each W texel
// 8 rows. On lavapipe every texelFetch is a gather whether or not the address is uniform, and
// subgroupBroadcast is slower still, so the shape is chosen to get the most multiply-adds out
// of each fetch (the shapes tried and their figures: README, "Performance").
// A W texel's elements as w_texel orders them (weight_formats.glsl), and each row's x values in
// the same order; 4-element texels (f32) use wa and E only.
#if W_EPT_IS_4
#define WLOAD(i, bx) { vec4 unused_c; w_texel(texelFetch(W, int(bx)), wa[i], unused_c); }
#define XROW(xr) vec4 E = uintBitsToFloat(texelFetch(X, int(xr + t)));
#define DOTR(i) dot(wa[i], E)
#else
#define WLOAD(i, bx) w_texel(texelFetch(W, int(bx)), wa[i], wc[i]);
#define XROW(xr) vec4 E, O; w_x_order(uintBitsToFloat(texelFetch(X, int(xr + 2u * t))), uintBitsToFloat(texelFetch(X, int(xr + 2u * t + 1u))), E, O);
#define DOTR(i) (dot(wa[i], E) + dot(wc[i], O))
#endif
// Every index below is a literal after expansion: lavapipe keeps arrays indexed dynamically in
// memory (a gather/scatter per access).
#define BLOCK(k) WLOAD(4 * k, b[k] + t * 32u) WLOAD(4 * k + 1, b[k] + t * 32u + 1u) \
    WLOAD(4 * k + 2, b[k] + t * 32u + 2u) WLOAD(4 * k + 3, b[k] + t * 32u + 3u)
#define ACC4(A, i) A[i] += DOTR(i); A[i + 1] += DOTR(i + 1); A[i + 2] += DOTR(i + 2); A[i + 3] += DOTR(i + 3);
#define ROW(r, A) { XROW(xr[r]) ACC4(A, 0) ACC4(A, 4) ACC4(A, 8) ACC4(A, 12) }
#if OUT_VEC4
// OUT_VEC4 1 (the output's stride, column, o0 and ocount, and H's, multiples of 4): an
// invocation's 4 consecutive features of a block go out as one vec4 (a storage-buffer access
// is a loop over the invocations on lavapipe).
#define V4(A, i) vec4(A[i], A[(i) + 1], A[(i) + 2], A[(i) + 3])
#define STORE4(r, A, i) store_lf(j0 + 32u * uint((i) / 4) + f0, r0 + uint(r), V4(A, i));
vec4 bias4(uint i) { return vec4(LOAD_B(B, i), LOAD_B(B, i + 1u), LOAD_B(B, i + 2u), LOAD_B(B, i + 3u)); }
#define VT vec4
#define BIAS(i) bias4(i)
#define OUT(i) o[(i) / 4u]
#else
#define STORE(r, A, i) store_lf(j0 + 32u * uint((i) / 4) + f0 + uint((i) % 4), r0 + uint(r), A[i]);
#define STORE4(r, A, i) STORE(r, A, i) STORE(r, A, i + 1) STORE(r, A, i + 2) STORE(r, A, i + 3)
#define VT float
#define BIAS(i) LOAD_B(B, i)
#define OUT(i) o[i]
#endif
#if SILU
// Blocks 0, 1 are gate features j0 ..< j0 + 64, blocks 2, 3 the up features silu_dim further on:
// store both and H[r, f] = silu(gate) * up.
#if OUT_VEC4
#define STORE_ROW(r, A) silu_store(j0 + f0, r0 + uint(r), V4(A, 0), V4(A, 8)); silu_store(j0 + 32u + f0, r0 + uint(r), V4(A, 4), V4(A, 12));
layout(std430, binding = 4) writeonly buffer H { vec4 h[]; };
#else
#define STORE_SILU(r, A, i) silu_store(j0 + 32u * uint((i) / 4) + f0 + uint((i) % 4), r0 + uint(r), A[i], A[(i) + 8]);
#define STORE_ROW(r, A) STORE_SILU(r, A, 0) STORE_SILU(r, A, 1) STORE_SILU(r, A, 2) STORE_SILU(r, A, 3) \
    STORE_SILU(r, A, 4) STORE_SILU(r, A, 5) STORE_SILU(r, A, 6) STORE_SILU(r, A, 7)
layout(std430, binding = 4) writeonly buffer H { float h[]; };
#endif

// Gate feature f (and with OUT_VEC4 the 3 after it) of row r.
void silu_store(uint f, uint r, VT g, VT u) {
    if (f >= p.silu_dim || r >= p.rows) return;
    if (p.has_bias != 0u) { g += BIAS(p.b_base + p.o0 + f); u += BIAS(p.b_base + p.o0 + p.silu_dim + f); }
    uint ob = r * p.o_stride + p.o_col + p.o0;
    OUT(ob + f) = g;
    OUT(ob + p.silu_dim + f) = u;
#if OUT_VEC4
    h[(r * p.h_stride + p.h_col + f) / 4u] = SILU_MUL(g, u);
#else
    h[r * p.h_stride + p.h_col + f] = SILU_MUL(g, u);
#endif
}
#else
#define STORE_ROW(r, A) STORE4(r, A, 0) STORE4(r, A, 4) STORE4(r, A, 8) STORE4(r, A, 12)
#endif

// Feature f (and with OUT_VEC4 the 3 after it) of row r.
void store_lf(uint f, uint r, VT v) {
    if (f >= p.ocount || r >= p.rows) return;
    uint of = p.o0 + f;
    if (p.has_bias != 0u) v += BIAS(p.b_base + of);
    uint oi = r * p.o_stride + p.o_col + of;
    if (p.accumulate != 0u) OUT(oi) += v; else OUT(oi) = v;
}

void main() {
    uint r0 = gl_WorkGroupID.x * 8u;    // rows first: the workgroups sharing a W block run together
    uint lane = gl_LocalInvocationID.x;
    uint nt = p.in_f / EPT;
    uint f0 = lane * 4u;
    uint b[4];                          // texel 0 of this invocation's first feature per block
#if SILU
    uint j0 = gl_WorkGroupID.y * 64u;   // first gate feature
    if (j0 >= p.silu_dim || r0 >= p.rows) return;
    for (uint k = 0u; k < 4u; k++) {
        uint jg = j0 + 32u * (k % 2u) < p.silu_dim ? j0 + 32u * (k % 2u) : j0;   // past the end: reread, store nothing
        b[k] = p.w_base / EPT + (jg + (k < 2u ? 0u : p.silu_dim)) * nt + f0;
    }
#else
    uint j0 = gl_WorkGroupID.y * 128u;  // first feature within the chunk
    if (j0 >= p.ocount || r0 >= p.rows) return;
    for (uint k = 0u; k < 4u; k++) {
        uint jb = j0 + 32u * k < p.ocount ? j0 + 32u * k : j0;   // past the end: reread, store nothing
        b[k] = p.w_base / EPT + jb * nt + f0;
    }
#endif
    uint xr[8];                         // texel 0 of each row of x (past the end: the last row)
    for (uint r = 0u; r < 8u; r++) xr[r] = (min(r0 + r, p.rows - 1u) * p.x_stride + p.x_col) >> 2u;
    // 8 rows x 16 features of running sums, one array per row.
    float a0[16] = float[16](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    float a1[16] = a0, a2[16] = a0, a3[16] = a0, a4[16] = a0, a5[16] = a0, a6[16] = a0, a7[16] = a0;
    for (uint t = 0u; t < nt; t++) {
        vec4 wa[16];
#if !W_EPT_IS_4
        vec4 wc[16];
#endif
        BLOCK(0) BLOCK(1) BLOCK(2) BLOCK(3)
        ROW(0, a0) ROW(1, a1) ROW(2, a2) ROW(3, a3) ROW(4, a4) ROW(5, a5) ROW(6, a6) ROW(7, a7)
    }
    STORE_ROW(0, a0) STORE_ROW(1, a1) STORE_ROW(2, a2) STORE_ROW(3, a3)
    STORE_ROW(4, a4) STORE_ROW(5, a5) STORE_ROW(6, a6) STORE_ROW(7, a7)
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
#if W_EPT_IS_4
            vec4 xv[RROWS];
            for (uint r = 0u; r < RROWS; r++) xv[r] = uintBitsToFloat(texelFetch(X, int(xt[r] + t)));
            for (uint i = 0u; i < FEATS; i++) {
                vec4 w, unused_c;
                w_texel(texelFetch(W, int(wt[i] + t * WSTEP)), w, unused_c);
                for (uint r = 0u; r < RROWS; r++) acc[i * RROWS + r] += dot(w, xv[r]);
            }
#else
            // x in the order w_texel puts a texel's elements in (weight_formats.glsl).
            vec4 xa[RROWS], xc[RROWS];
            for (uint r = 0u; r < RROWS; r++) {
                w_x_order(uintBitsToFloat(texelFetch(X, int(xt[r] + 2u * t))), uintBitsToFloat(texelFetch(X, int(xt[r] + 2u * t + 1u))), xa[r], xc[r]);
            }
            for (uint i = 0u; i < FEATS; i++) {
                vec4 wa, wc;
                w_texel(texelFetch(W, int(wt[i] + t * WSTEP)), wa, wc);
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

#endif  // LANE_FEATURES

#endif
