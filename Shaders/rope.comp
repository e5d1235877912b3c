#version 450
// Rotary position embedding, in place, at the rows' positions (row_pos), from a table
// [positions, head_dim/2, 2] of (cos, sin). layout 0: rotate-half (dim i pairs with i + d/2);
// layout 1: interleaved pairs (2i, 2i+1). One invocation per (pair, head, row).
// kv = 1 (rope and the k/v cache writes fused, see Fusion.swift): heads kv_head0 ..< heads are
//   K heads, whose rotated values are also stored in the K cache at the row's cache row (kv_row), and
//   the grid has kv_width / head_dim more "heads" that copy V into the V cache (the caches
//   hold KV_T, see common.glsl).
// VEC4 1 (rotate-half layout, head_dim a multiple of 8, every column, stride and base a
//   multiple of 4): one invocation per (4 pairs, head) along x, rows along y, all accesses
//   vec4. On lavapipe a storage-buffer access is a loop over the invocations, so a quarter as
//   many accesses is most of the cost.
#include "common.glsl"

#ifndef VEC4
#define VEC4 0
#endif
#if VEC4
#define T vec4
#define CT KV_T4
#else
#define T float
#define CT KV_T
#endif

layout(std430, binding = 0) buffer X { T x[]; };
layout(std430, binding = 1) readonly buffer Tab { T tab[]; };
STEP_STATE(2)
layout(std430, binding = 3) writeonly buffer CK { CT cache_k[]; };
layout(std430, binding = 4) readonly buffer V { T v[]; };
layout(std430, binding = 5) writeonly buffer CV { CT cache_v[]; };

layout(push_constant) uniform P {
    uint heads; uint head_dim; uint x_stride; uint x_col;
    uint t_base; uint t_positions; uint layout_kind; uint kv;
    uint kv_head0; uint kv_width; uint max_rows; uint v_stride;
    uint v_col;
} p;

#if VEC4
// Push constants stay in elements; indices below are in vec4s. Pairs 4j ..< 4j + 4 of head h.
void main() {
    uint q4 = p.head_dim / 8u;                 // vec4s per half head
    uint h = gl_GlobalInvocationID.x / q4, j = gl_GlobalInvocationID.x % q4;
    uint r = gl_GlobalInvocationID.y;
    uint vHeads = p.kv != 0u ? p.kv_width / p.head_dim : 0u;
    if (h >= p.heads + vHeads || r >= step_rows) return;
    uint pos = row_pos(r), crow = kv_row(r, pos);
    if (h >= p.heads) {
        // V copy: vec4s j and j + q4 of V head h - heads.
        if (crow >= p.max_rows) return;
        uint jv = (h - p.heads) * 2u * q4 + j;
        uint cvb = crow * (p.kv_width / 4u) + jv, vb = (r * p.v_stride + p.v_col) / 4u + jv;
        cache_v[cvb] = CT(v[vb]);
        cache_v[cvb + q4] = CT(v[vb + q4]);
        return;
    }
    if (pos >= p.t_positions) return;
    uint ti = p.t_base / 4u + (pos * (p.head_dim / 2u) + 4u * j) / 2u;   // (cos, sin) of 4 pairs
    vec4 t0 = tab[ti], t1 = tab[ti + 1u];
    vec4 c = vec4(t0.x, t0.z, t1.x, t1.z), s = vec4(t0.y, t0.w, t1.y, t1.w);
    uint base = (r * p.x_stride + p.x_col) / 4u + h * 2u * q4 + j;
    vec4 a = x[base], b = x[base + q4];
    vec4 ra = a * c - b * s, rb = b * c + a * s;
    x[base] = ra;
    x[base + q4] = rb;
    if (p.kv != 0u && h >= p.kv_head0 && crow < p.max_rows) {
        uint kb = crow * (p.kv_width / 4u) + (h - p.kv_head0) * 2u * q4 + j;
        cache_k[kb] = CT(ra);
        cache_k[kb + q4] = CT(rb);
    }
}
#else
void main() {
    uint half_d = p.head_dim / 2u;
    uint i = gl_GlobalInvocationID.x;
    uint h = gl_GlobalInvocationID.y;
    uint r = gl_GlobalInvocationID.z;
    if (i >= half_d || r >= step_rows) return;
    uint pos = row_pos(r), crow = kv_row(r, pos);
    if (h >= p.heads) {
        // V copy (kv = 1): elements i and i + half_d of V head h - heads.
        uint j = (h - p.heads) * p.head_dim + i;
        if (p.kv == 0u || j >= p.kv_width || crow >= p.max_rows) return;
        cache_v[crow * p.kv_width + j] = CT(v[r * p.v_stride + p.v_col + j]);
        cache_v[crow * p.kv_width + j + half_d] = CT(v[r * p.v_stride + p.v_col + j + half_d]);
        return;
    }
    if (pos >= p.t_positions) return;
    float c = tab[p.t_base + (pos * half_d + i) * 2u];
    float s = tab[p.t_base + (pos * half_d + i) * 2u + 1u];
    uint base = r * p.x_stride + p.x_col + h * p.head_dim;
    uint da = p.layout_kind == 0u ? i : 2u * i;             // offsets of the pair in the head
    uint db = p.layout_kind == 0u ? i + half_d : 2u * i + 1u;
    float a = x[base + da], b = x[base + db];
    float ra = a * c - b * s, rb = b * c + a * s;
    x[base + da] = ra;
    x[base + db] = rb;
    if (p.kv != 0u && h >= p.kv_head0 && crow < p.max_rows) {
        uint kb = crow * p.kv_width + (h - p.kv_head0) * p.head_dim;
        cache_k[kb + da] = CT(ra);
        cache_k[kb + db] = CT(rb);
    }
}
#endif
