#version 450
// Matrix-vector product for decode (few rows): out[r, o] (+)= sum_k x[r, k] * W[o, k] + bias[o].
// W [out, in] in W_DTYPE, bias in B_DTYPE, fp32 accumulation. A large W is bound in chunks of
// output features: this dispatch computes features o0 ..< o0 + ocount. Two read paths (the host
// picks one per device, see KernelConfig.read):
//
// READ_TEXEL 0 (storage buffers): one workgroup per (output feature, row); invocations stride
//   over k, subgroup + shared-memory reduction.
//   VEC16 1 (GPUs; in_f, the window's element base, x's column and stride whole 16-byte
//   texels): a subgroup per output feature, the workgroup's gl_NumSubgroups features side by
//   side; each invocation loads 16 bytes of W (8 bf16/f16 or 4 f32) and the x values they
//   multiply per step, consecutive invocations consecutive 16-byte words (coalesced), then one
//   subgroupAdd. Every W byte is fetched once; no shared memory, no barrier.
// READ_TEXEL 1 (uniform texel buffers): W and x are R32G32B32A32_UINT views, 16 bytes per
//   texelFetch (4 f32 or 8 f16/bf16). Two W layouts (the host picks per weight, see
//   encodeTexelLinear in Encoders/Linear.swift):
//   INTERLEAVED 1: W was uploaded in blocks of ROWS (32) features, texel-major inside a block:
//     texel t of feature f sits at block(f) * ROWS * nt + t * ROWS + f % ROWS (nt texels per
//     row; the last block is zero-padded). A workgroup computes one block; each invocation
//     owns RPL = ROWS / invocations features and walks all of k, so the workgroup reads its
//     block as one sequential stream and needs no reduction at all. On a CPU device the
//     hardware prefetcher follows one stream well and 32 poorly, so this reads much faster
//     than row-major blocks. ALIGNED = 1 when x starts on a whole texel (vector x loads).
//   INTERLEAVED 0: row-major W whose rows do not start on whole texels (in_f not a multiple of
//     the elements per texel, or an odd element offset): a subgroup computes ROWS features,
//     each invocation strides over k keeping ROWS running sums, one subgroupAdd per feature,
//     fetching the texel holding each element.
// ARGMAX 1 (with INTERLEAVED): greedy decode's head with the argmax fused in, see argmax_step.
// SILU 1 (with INTERLEAVED): the stacked gate/up product with silu(gate) * up fused in, see silu_store.
#include "common.glsl"

#ifndef READ_TEXEL
#define READ_TEXEL 0
#endif
#ifndef WG_REDUCE
#define WG_REDUCE 0
#endif
#ifndef ARGMAX
#define ARGMAX 0
#endif
#ifndef SILU
#define SILU 0
#endif

layout(push_constant) uniform P {
    uint in_f; uint x_stride; uint x_col; uint o_stride;
    uint o_col; uint w_base; uint b_base; uint has_bias;
    uint accumulate; uint o0; uint ocount; uint rows;
#if ARGMAX
    uint am_col; uint am_groups;
#endif
#if SILU
    uint silu_dim; uint h_stride; uint h_col;
#endif
} p;

layout(std430, binding = 2) readonly buffer Bs { uint B[]; };
layout(std430, binding = 3) buffer Out { float o[]; };

void store(uint r, uint of, float acc) {
    if (p.has_bias != 0u) acc += LOAD_B(B, p.b_base + of);
    uint oi = r * p.o_stride + p.o_col + of;
    if (p.accumulate != 0u) o[oi] += acc; else o[oi] = acc;
}

#ifndef VEC16
#define VEC16 0
#endif

#if READ_TEXEL == 0 && VEC16

layout(std430, binding = 0) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer Wt { uvec4 W[]; };

void main() {
    // j is the same across a subgroup, so a subgroup past the end leaves as a whole.
    uint j = gl_WorkGroupID.x * gl_NumSubgroups + gl_SubgroupID;
    uint r = gl_WorkGroupID.y;
    if (j >= p.ocount || r >= p.rows) return;
    const uint XV = W_EPT / 4u;                 // x vec4s per W texel
    uint nt = p.in_f / W_EPT;
    uint wb = (p.w_base + j * p.in_f) / W_EPT;
    uint xb = (r * p.x_stride + p.x_col) / 4u;
    float acc = 0.0;
    for (uint t = gl_SubgroupInvocationID; t < nt; t += gl_SubgroupSize) {
        vec4 x0 = x4[xb + XV * t];
        vec4 x1 = XV == 2u ? x4[xb + XV * t + 1u] : vec4(0.0);
        acc += w_texel_dot(W[wb + t], x0, x1);
    }
    acc = subgroupAdd(acc);
    if (subgroupElect()) store(r, p.o0 + j, acc);
}

#elif READ_TEXEL == 0

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

layout(constant_id = 2) const uint ROWS = 32u;        // features per workgroup (interleaved: the block)
layout(constant_id = 3) const uint ALIGNED = 1u;      // x starts on a whole texel
layout(constant_id = 4) const uint INTERLEAVED = 1u;  // W layout, see the header
layout(constant_id = 5) const uint RPL = 4u;          // interleaved: features per invocation

layout(binding = 0) uniform usamplerBuffer X;      // x, f32 bits; x_col: element index in the view
layout(binding = 1) uniform usamplerBuffer W;      // W; w_base: element index in the view

const uint EPT = W_EPT;                            // W elements per texel (weight_formats.glsl)

float x_at(uint i) { return uintBitsToFloat(texelFetch(X, int(i >> 2u))[i & 3u]); }
float w_at(uint i) { return w_texel_at(W, i); }

// Four consecutive x values from element i (i on a whole texel when ALIGNED).
vec4 x4(uint i) {
    if (ALIGNED != 0u) return uintBitsToFloat(texelFetch(X, int(i >> 2u)));
    return vec4(x_at(i), x_at(i + 1u), x_at(i + 2u), x_at(i + 3u));
}

// One W texel (EPT elements) dotted with the x values it multiplies: xa = x[0..3], xc = x[4..7]
// (xa only when EPT is 4).
float texel_dot(uvec4 w, vec4 xa, vec4 xc) { return w_texel_dot(w, xa, xc); }

// Sum of one feature's partial sums over the workgroup (row-major branch). The host makes a
// workgroup one subgroup; WG_REDUCE (GPUs) adds a shared-memory step for drivers that split
// it anyway. lavapipe compiles any shader containing barrier() into coroutines (~20% here).
float feature_sum(float v) {
#if WG_REDUCE
    if (gl_NumSubgroups > 1u) return workgroup_sum(v);
#endif
    return subgroupAdd(v);
}

#if SILU
// Gated SiLU fused into the stacked gate/up product (see Fusion.swift): features 0 ..< silu_dim
// are the gate, silu_dim ..< 2 silu_dim the up; a workgroup takes gate block j and the up block
// silu_dim / ROWS blocks later, stores both (so the product's output stays whole) and
// H[r, f] = silu(gate) * up. Binding 4: H.
layout(std430, binding = 4) writeonly buffer H { float h[]; };

void silu_store(uint r, uint f, float g, float u) {
    if (p.has_bias != 0u) { g += LOAD_B(B, p.b_base + p.o0 + f); u += LOAD_B(B, p.b_base + p.o0 + p.silu_dim + f); }
    uint ob = r * p.o_stride + p.o_col + p.o0;
    o[ob + f] = g;
    o[ob + p.silu_dim + f] = u;
    h[r * p.h_stride + p.h_col + f] = SILU_MUL(g, u);
}
#endif

#if ARGMAX
// Greedy decode's head (one row, interleaved W, one chunk, not accumulating) with the argmax
// fused in: each workgroup stores its logits and its best (value, first index) in Scratch, then
// counts itself done; the last one to finish reduces all the workgroups' bests and writes the
// index (as a float, like argmax.comp: the first maximal index, NaN never wins, 0 when every
// value is NaN) to Am[am_col], and zeroes the counter for the next token.
layout(std430, binding = 4) coherent buffer Scratch { uint done_count; uint best[]; };  // best: (value bits, index) per workgroup
layout(std430, binding = 5) writeonly buffer Am { float am[]; };
const uint NONE = 0xFFFFFFFFu;

// The subgroup's (largest value, smallest index holding it); NONE when it has no value.
uint best_index(float v, uint i, out float m) {
    m = subgroupMax(i == NONE ? -1.0 / 0.0 : v);
    return subgroupMin(i != NONE && v == m ? i : NONE);
}

void argmax_step(uint r, uint f0, float acc[RPL]) {
    float bv = -1.0 / 0.0;
    uint bi = NONE;
    for (uint i = 0u; i < RPL; i++) {
        uint f = f0 + i;
        if (f >= p.ocount) break;
        float v = acc[i] + (p.has_bias != 0u ? LOAD_B(B, p.b_base + p.o0 + f) : 0.0);
        o[r * p.o_stride + p.o_col + p.o0 + f] = v;
        if (!isnan(v) && (bi == NONE || v > bv)) { bv = v; bi = p.o0 + f; }
    }
    float m;
    uint win = best_index(bv, bi, m);
    uint wg = gl_WorkGroupID.x;
    uint ticket = 0u;
    if (gl_LocalInvocationID.x == 0u) {
        best[2u * wg] = floatBitsToUint(m);
        best[2u * wg + 1u] = win;
        memoryBarrierBuffer();
        ticket = atomicAdd(done_count, 1u);
    }
    if (subgroupMax(ticket) != p.am_groups - 1u) return;
    // The last workgroup: every other one's best is written (each made it visible before
    // counting itself).
    memoryBarrierBuffer();
    bv = -1.0 / 0.0;
    bi = NONE;
    for (uint g = gl_LocalInvocationID.x; g < p.am_groups; g += gl_WorkGroupSize.x) {
        float v = uintBitsToFloat(best[2u * g]);
        uint i = best[2u * g + 1u];
        if (i != NONE && (bi == NONE || v > bv || (v == bv && i < bi))) { bv = v; bi = i; }
    }
    win = best_index(bv, bi, m);
    if (gl_LocalInvocationID.x == 0u) {
        am[p.am_col] = win == NONE ? 0.0 : float(win);
        done_count = 0u;
    }
}
#endif

void main() {
    uint j0 = gl_WorkGroupID.x * ROWS;  // first feature of this workgroup within the chunk
    uint r = gl_WorkGroupID.y;
    if (j0 >= p.ocount || r >= p.rows) return;
    uint lane = gl_LocalInvocationID.x;
    uint xb = r * p.x_stride + p.x_col;

    if (INTERLEAVED != 0u) {
        uint nt = p.in_f / EPT;
        uint f0 = lane * RPL;           // this invocation's first feature within the block
        uint base = p.w_base / EPT + j0 * nt + f0;
        float acc[RPL];
        for (uint i = 0u; i < RPL; i++) acc[i] = 0.0;
#if SILU
        // The up half: the same rows silu_dim further on (silu_dim / ROWS blocks later).
        float accu[RPL];
        for (uint i = 0u; i < RPL; i++) accu[i] = 0.0;
        uint baseu = base + p.silu_dim * nt;
#endif
        for (uint t = 0u; t < nt; t++) {
            vec4 xa = x4(xb + t * EPT);
            vec4 xc = EPT == 8u ? x4(xb + t * EPT + 4u) : xa;
            uint b = base + t * ROWS;
            for (uint i = 0u; i < RPL; i++) acc[i] += texel_dot(texelFetch(W, int(b + i)), xa, xc);
#if SILU
            uint bu = baseu + t * ROWS;
            for (uint i = 0u; i < RPL; i++) accu[i] += texel_dot(texelFetch(W, int(bu + i)), xa, xc);
#endif
        }
#if SILU
        for (uint i = 0u; i < RPL; i++) {
            uint f = j0 + f0 + i;
            if (f < p.silu_dim) silu_store(r, f, acc[i], accu[i]);
        }
#elif ARGMAX
        argmax_step(r, j0 + f0, acc);
#else
        for (uint i = 0u; i < RPL; i++)
            if (j0 + f0 + i < p.ocount) store(r, p.o0 + j0 + f0 + i, acc[i]);
#endif
        return;
    }

    uint n = gl_WorkGroupSize.x;
    uint last = p.ocount - 1u;          // features past the end read the last one, unused
    float acc[ROWS];
    for (uint i = 0u; i < ROWS; i++) acc[i] = 0.0;
    uint we[ROWS];
    for (uint i = 0u; i < ROWS; i++) we[i] = p.w_base + min(j0 + i, last) * p.in_f;
    for (uint k = lane; k < p.in_f; k += n) {
        float xv = x_at(xb + k);
        for (uint i = 0u; i < ROWS; i++) acc[i] += xv * w_at(we[i] + k);
    }
    for (uint i = 0u; i < ROWS; i++) {
        float s = feature_sum(acc[i]);
        if (lane == 0u && j0 + i < p.ocount) store(r, p.o0 + j0 + i, s);
    }
}

#endif
