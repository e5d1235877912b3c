// Shared declarations for LoopVK compute shaders (included by every *.comp).
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

layout(local_size_x_id = 0, local_size_y_id = 1) in;

// Weights are bound as arrays of 32-bit words (or texel views) whatever their format, so
// 16-bit tensors need no 16-bit storage feature; the formats' load functions:
#include "weight_formats.glsl"

// Gated SiLU of a gate and an up value (float or vec4): silu(g) * u = g / (1 + exp(-g)) * u.
// silu_mul.comp and the gate/up products' fused epilogues (matvec.comp, matmul.comp SILU).
#define SILU_MUL(g, u) ((g) / (1.0 + exp(-(g))) * (u))

// The KV cache's element type (KernelConfig.kv): KV_F16 1 stores float16_t through 16-bit
// storage (writes round to nearest, reads widen to float; no f16 arithmetic), else float.
// KV_LD4(view, i): 4 cached values from element i (a multiple of 4) of a R32G32B32A32_UINT
// texel view of the cache (4 floats or 8 halves per texel).
#ifndef KV_F16
#define KV_F16 0
#endif
#if KV_F16
#extension GL_EXT_shader_16bit_storage : require
#define KV_T float16_t
#define KV_T4 f16vec4
vec4 kv_half4(uvec4 t, uint i) {
    uvec2 w = (i & 4u) != 0u ? t.zw : t.xy;
    return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
}
#define KV_LD4(b, i) kv_half4(texelFetch(b, int((i) >> 3u)), (i))
#else
#define KV_T float
#define KV_T4 vec4
#define KV_LD4(b, i) uintBitsToFloat(texelFetch(b, int((i) >> 2u)))
#endif

// The per-call "step state": where the rows sit and their token ids. Recorded command
// buffers read it, so they replay unchanged for every decode token.
// After the header (first position, rows, a greedy chain's index, the row stride S) come
// S token ids, S positions, S page-table offsets and the page tables (StepRows.swift): row r's
// sequence keeps its position j at physical cache row kv_row(r, j) (pages of 1 << KV_PAGE_SHIFT
// rows), so the rows of one call may be one sequence's prompt chunk or a batch of sequences.
#define KV_PAGE_SHIFT 4u
#define STEP_STATE(b) layout(std430, binding = b) readonly buffer StepState { uint step_pos0; uint step_rows; uint step_index; uint step_stride; uint step_tokens[]; }; \
uint row_pos(uint r) { return step_tokens[step_stride + r]; } \
uint kv_row(uint r, uint j) { return (step_tokens[3u * step_stride + step_tokens[2u * step_stride + r] + (j >> KV_PAGE_SHIFT)] << KV_PAGE_SHIFT) | (j & ((1u << KV_PAGE_SHIFT) - 1u)); }

// SUBGROUP_ONLY 1: the host makes each workgroup exactly one subgroup (CPU devices, where any
// barrier() makes lavapipe run the shader as coroutines, 15-25% slower), so the workgroup
// reductions are single subgroup operations with no shared memory and no barrier.
#ifndef SUBGROUP_ONLY
#define SUBGROUP_ONLY 0
#endif

#if SUBGROUP_ONLY
float workgroup_sum(float v) { return subgroupAdd(v); }
float workgroup_max(float v) { return subgroupMax(v); }
#else
// Sum over the whole workgroup (all invocations must call it).
shared float wg_red[64];
float workgroup_sum(float v) {
    v = subgroupAdd(v);
    if (subgroupElect()) wg_red[gl_SubgroupID] = v;
    barrier();
    float t = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; i++) t += wg_red[i];
    barrier();
    return t;
}

float workgroup_max(float v) {
    v = subgroupMax(v);
    if (subgroupElect()) wg_red[gl_SubgroupID] = v;
    barrier();
    float t = wg_red[0];
    for (uint i = 1u; i < gl_NumSubgroups; i++) t = max(t, wg_red[i]);
    barrier();
    return t;
}
#endif
