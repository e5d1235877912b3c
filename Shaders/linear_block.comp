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
//
// INTERLEAVED 1 (texel read path, CPU devices): W is the interleaved copy (see
// DeviceBuffers.interleavedWeight): per group of ROWS (32) features, main texel u of block b of
// feature i at (b * MT + u) * ROWS + i (MT = texels per block minus its side bytes), then the
// side bytes (16-bit scales, S per block) in texels of SB = 16 / S blocks: block b of feature
// i in texel (b / SB) * ROWS + i at byte (b % SB) * S. w_base is the texel index of the
// window's first group. A workgroup is one subgroup and computes one group for TR rows
// (decode: 1); each invocation owns RPL = ROWS / XL features and walks all of k, so the
// workgroup reads its group as one sequential stream, no reduction (matvec.comp's interleaved
// kernel for the float formats). x (a texel view) is fetched once per block by the subgroup
// together and shared with subgroupShuffle; each block's decode (block_formats.glsl, il_block)
// is shared by the TR rows.
#include "common.glsl"

#ifndef READ_TEXEL
#define READ_TEXEL 0
#endif
#ifndef INTERLEAVED
#define INTERLEAVED 0
#endif

#if INTERLEAVED
#extension GL_KHR_shader_subgroup_shuffle : require
layout(constant_id = 2) const uint ROWS = 32u;   // features per group
layout(constant_id = 3) const uint ALIGNED = 1u; // x rows start on whole texels
layout(constant_id = 4) const uint TR = 1u;      // rows per workgroup
layout(constant_id = 5) const uint RPL = 4u;     // features per invocation
layout(constant_id = 6) const uint XL = 8u;      // invocations (one subgroup) sharing x

#ifndef SILU
#define SILU 0
#endif
layout(push_constant) uniform P {
    uint in_f; uint x_stride; uint x_col; uint o_stride;
    uint o_col; uint w_base; uint b_base; uint has_bias;
    uint accumulate; uint o0; uint ocount; uint rows;
#if SILU
    uint silu_dim; uint h_stride; uint h_col;
#endif
} p;

layout(binding = 0) uniform usamplerBuffer X;
layout(binding = 1) uniform usamplerBuffer W;
layout(std430, binding = 2) readonly buffer Bs { uint B[]; };
layout(std430, binding = 3) buffer Out { float o[]; };
#if SILU
// Gated SiLU fused in (as matvec.comp's SILU, see Fusion.swift): W is a stacked gate/up
// product, features 0 ..< silu_dim the gate, silu_dim ..< 2 silu_dim the up; a workgroup takes
// gate group g and up group g + silu_dim / ROWS (two streams over the same x), stores both
// outputs and H[r, f] = silu(gate) * up. Binding 4: H.
layout(std430, binding = 4) writeonly buffer H { float h[]; };
const uint IL_NS = 2u;
#else
const uint IL_NS = 1u;
#endif
#define W_WORD(i) texelFetch(W, int((i) >> 2u))[(i) & 3u]

// (il_texel, il_side, il_x4, il_add: see block_formats.glsl; defined after it.)
uvec4 il_texel(uint b, uint u, uint i);
uint il_side(uint b, uint i);
vec4 il_x4(uint r, uint k);
void il_add(uint i, uint r, float v);
uint il_nr;           // real rows in the tile
uint il_side(uint b, uint i);
#define BLOCK_INTERLEAVED 1

#else
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

#endif

#include "block_formats.glsl"

#if INTERLEAVED
// Side bytes: SB blocks' worth per feature in one texel (block b of feature i in texel
// (b / SB) * ROWS + i, at byte (b % SB) * S), fetched once per SB blocks.
const uint IL_S = W_SIDE_BYTES, IL_SB = IL_S == 0u ? 1u : 16u / max(IL_S, 1u);
// x: the tile's x over one block, fetched once per block by the whole subgroup (invocation l
// holds texels l, l + XL, ...), read through subgroupShuffle.
const uint IL_XT = W_BLOCK_ELEMS / 4u, IL_NXW = (IL_XT + XL - 1u) / XL;
// Per stream s (the group; with SILU also its up group): il_main[s] the texel of (block 0,
// texel 0, feature f0), il_side_base[s] of (side texel 0, feature f0); il_s the stream il_block
// works on.
uint il_main[IL_NS], il_side_base[IL_NS], il_s;
uint il_mt;           // main texels per block
uint il_x[TR];        // element index of each tile row's x in X
float il_acc[IL_NS * RPL * TR];
uvec4 il_sd[IL_NS * RPL];
vec4 il_xs[TR * IL_NXW];

uvec4 il_texel(uint b, uint u, uint i) { return texelFetch(W, int(il_main[il_s] + (b * il_mt + u) * ROWS + i)); }
uint il_side(uint b, uint i) {
    uint a = (b % IL_SB) * IL_S;
    uint w = il_sd[il_s * RPL + i][a >> 2u];
    return IL_S == 4u ? w : (w >> (8u * (a & 3u))) & 0xFFFFu;
}
vec4 il_x4(uint r, uint k) { uint t = k >> 2u; return subgroupShuffle(il_xs[r * IL_NXW + t / XL], t % XL); }
void il_add(uint i, uint r, float v) { il_acc[(il_s * RPL + i) * TR + r] += v; }

vec4 il_fetch_x(uint e) {
    if (ALIGNED != 0u) return uintBitsToFloat(texelFetch(X, int(e >> 2u)));
    return vec4(uintBitsToFloat(texelFetch(X, int(e >> 2u))[e & 3u]), uintBitsToFloat(texelFetch(X, int((e + 1u) >> 2u))[(e + 1u) & 3u]),
                uintBitsToFloat(texelFetch(X, int((e + 2u) >> 2u))[(e + 2u) & 3u]), uintBitsToFloat(texelFetch(X, int((e + 3u) >> 2u))[(e + 3u) & 3u]));
}

void main() {
    uint g = gl_WorkGroupID.x, j0 = g * ROWS;
    uint r0 = gl_WorkGroupID.y * TR;
#if SILU
    if (j0 >= p.silu_dim || r0 >= p.rows) return;
#else
    if (j0 >= p.ocount || r0 >= p.rows) return;
#endif
    il_nr = min(TR, p.rows - r0);
    uint lane = gl_SubgroupInvocationID, f0 = lane * RPL;
    uint nb = p.in_f / W_BLOCK_ELEMS;
    il_mt = W_MAIN_BYTES / 16u;
    uint sideTexels = IL_S == 0u ? 0u : (nb + IL_SB - 1u) / IL_SB * ROWS;
    uint groupTexels = ROWS * nb * il_mt + sideTexels;
    for (uint s = 0u; s < IL_NS; s++) {
#if SILU
        uint gb = p.w_base + (g + s * (p.silu_dim / ROWS)) * groupTexels;
#else
        uint gb = p.w_base + g * groupTexels;
#endif
        il_main[s] = gb + f0;
        il_side_base[s] = gb + ROWS * nb * il_mt + f0;
    }
    for (uint r = 0u; r < TR; r++) il_x[r] = (r0 + min(r, il_nr - 1u)) * p.x_stride + p.x_col;
    for (uint i = 0u; i < IL_NS * RPL * TR; i++) il_acc[i] = 0.0;
    for (uint b = 0u; b < nb; b++) {
        if (IL_S != 0u && b % IL_SB == 0u)
            for (uint s = 0u; s < IL_NS; s++)
                for (uint i = 0u; i < RPL; i++) il_sd[s * RPL + i] = texelFetch(W, int(il_side_base[s] + (b / IL_SB) * ROWS + i));
        for (uint r = 0u; r < TR; r++) {
            if (r >= il_nr) break;
            for (uint w = 0u; w < IL_NXW; w++) il_xs[r * IL_NXW + w] = il_fetch_x(il_x[r] + W_BLOCK_ELEMS * b + 4u * min(w * XL + lane, IL_XT - 1u));
        }
        for (uint s = 0u; s < IL_NS; s++) { il_s = s; il_block(b); }
    }
    for (uint i = 0u; i < RPL; i++) {
        uint f = j0 + f0 + i;
#if SILU
        if (f >= p.silu_dim) break;
        float bg = p.has_bias != 0u ? LOAD_B(B, p.b_base + p.o0 + f) : 0.0;
        float bu = p.has_bias != 0u ? LOAD_B(B, p.b_base + p.o0 + p.silu_dim + f) : 0.0;
        for (uint r = 0u; r < TR; r++) {
            if (r >= il_nr) break;
            float gv = il_acc[i * TR + r] + bg, uv = il_acc[(RPL + i) * TR + r] + bu;
            uint ob = (r0 + r) * p.o_stride + p.o_col + p.o0;
            o[ob + f] = gv;
            o[ob + p.silu_dim + f] = uv;
            h[(r0 + r) * p.h_stride + p.h_col + f] = SILU_MUL(gv, uv);
        }
#else
        if (f >= p.ocount) break;
        uint of = p.o0 + f;
        float bias = p.has_bias != 0u ? LOAD_B(B, p.b_base + of) : 0.0;
        for (uint r = 0u; r < TR; r++) {
            if (r >= il_nr) break;
            uint oi = (r0 + r) * p.o_stride + p.o_col + of;
            float s = il_acc[i * TR + r] + bias;
            if (p.accumulate != 0u) o[oi] += s; else o[oi] = s;
        }
#endif
    }
}


#else
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
#endif
