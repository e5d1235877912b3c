#version 450
// Rotary position embedding, in place, at positions step_pos0 + row, from a table
// [positions, head_dim/2, 2] of (cos, sin). layout 0: rotate-half (dim i pairs with i + d/2);
// layout 1: interleaved pairs (2i, 2i+1). One invocation per (pair, head, row).
// kv = 1 (rope and the k/v cache writes fused, see Fusion.swift): heads kv_head0 ..< heads are
//   K heads, whose rotated values are also stored in the K cache at row step_pos0 + row, and
//   the grid has kv_width / head_dim more "heads" that copy V into the V cache.
#include "common.glsl"

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer T { float tab[]; };
STEP_STATE(2)
layout(std430, binding = 3) writeonly buffer CK { float cache_k[]; };
layout(std430, binding = 4) readonly buffer V { float v[]; };
layout(std430, binding = 5) writeonly buffer CV { float cache_v[]; };

layout(push_constant) uniform P {
    uint heads; uint head_dim; uint x_stride; uint x_col;
    uint t_base; uint t_positions; uint layout_kind; uint kv;
    uint kv_head0; uint kv_width; uint max_rows; uint v_stride;
    uint v_col;
} p;

void main() {
    uint half_d = p.head_dim / 2u;
    uint i = gl_GlobalInvocationID.x;
    uint h = gl_GlobalInvocationID.y;
    uint r = gl_GlobalInvocationID.z;
    if (i >= half_d || r >= step_rows) return;
    uint pos = step_pos0 + r;
    if (h >= p.heads) {
        // V copy (kv = 1): elements i and i + half_d of V head h - heads.
        uint j = (h - p.heads) * p.head_dim + i;
        if (p.kv == 0u || j >= p.kv_width || pos >= p.max_rows) return;
        cache_v[pos * p.kv_width + j] = v[r * p.v_stride + p.v_col + j];
        cache_v[pos * p.kv_width + j + half_d] = v[r * p.v_stride + p.v_col + j + half_d];
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
    if (p.kv != 0u && h >= p.kv_head0 && pos < p.max_rows) {
        uint kb = pos * p.kv_width + (h - p.kv_head0) * p.head_dim;
        cache_k[kb + da] = ra;
        cache_k[kb + db] = rb;
    }
}
