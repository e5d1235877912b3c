#version 450
// Argmax over each row of `dim` values (one workgroup per row): the FIRST maximal index, as
// the references' greedy decoding takes it; NaN never wins. Writes the index as a float.
// SPLIT 1 (GPUs, a long row such as a vocabulary): two dispatches. STAGE 1: workgroup
// (g, r) takes values g * chunk ..< (g + 1) * chunk of row r and writes its best (value,
// index as float bits) to Out[(r * groups + g) * 2 ..]; STAGE 2: a workgroup per row reduces
// the row's `groups` partial bests from X into the index. So a 150k vocabulary keeps many
// workgroups busy instead of one.
#include "common.glsl"

#ifndef SPLIT
#define SPLIT 0
#endif
#ifndef STAGE
#define STAGE 1
#endif

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };

layout(push_constant) uniform P { uint dim; uint x_stride; uint x_col; uint o_stride; uint o_col; uint chunk; uint groups; } p;

const uint NONE = 0xFFFFFFFFu;

#if !SUBGROUP_ONLY
shared float best_v[256];
shared uint best_i[256];
#endif

// Whether candidate (ov, oi) beats (bv, bi): a value, larger, or equal at a smaller index.
bool beats(float ov, uint oi, float bv, uint bi) {
    return oi != NONE && (bi == NONE || ov > bv || (ov == bv && oi < bi));
}

// The workgroup's best of every invocation's (bv, bi), in every invocation.
void workgroup_best(inout float bv, inout uint bi) {
#if SUBGROUP_ONLY
    // One subgroup: the largest value, then the smallest index holding it.
    float m = subgroupMax(bi == NONE ? -1.0 / 0.0 : bv);
    bi = subgroupMin(bi != NONE && bv == m ? bi : NONE);
    bv = m;
#else
    uint t = gl_LocalInvocationID.x;
    best_v[t] = bv; best_i[t] = bi;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2u; s > 0u; s >>= 1u) {
        if (t < s && beats(best_v[t + s], best_i[t + s], best_v[t], best_i[t])) { best_v[t] = best_v[t + s]; best_i[t] = best_i[t + s]; }
        barrier();
    }
    bv = best_v[0]; bi = best_i[0];
#endif
}

void main() {
    uint t = gl_LocalInvocationID.x;
    uint n = gl_WorkGroupSize.x;
    float bv = -1.0 / 0.0;
    uint bi = NONE;
#if SPLIT && STAGE == 2
    uint r = gl_WorkGroupID.x;
    for (uint g = t; g < p.groups; g += n) {
        uint k = (r * p.groups + g) * 2u;
        float v = x[k];
        uint i = floatBitsToUint(x[k + 1u]);
        if (beats(v, i, bv, bi)) { bv = v; bi = i; }
    }
#else
#if SPLIT
    uint r = gl_WorkGroupID.y;
    uint i0 = gl_WorkGroupID.x * p.chunk, i1 = min(p.dim, i0 + p.chunk);
#else
    uint r = gl_WorkGroupID.x;
    uint i0 = 0u, i1 = p.dim;
#endif
    for (uint i = i0 + t; i < i1; i += n) {
        float v = x[r * p.x_stride + p.x_col + i];
        if (!isnan(v) && (bi == NONE || v > bv)) { bv = v; bi = i; }
    }
#endif
    workgroup_best(bv, bi);
    if (t != 0u) return;
#if SPLIT && STAGE == 1
    uint k = (r * p.groups + gl_WorkGroupID.x) * 2u;
    o[k] = bv;
    o[k + 1u] = uintBitsToFloat(bi);
#else
    o[r * p.o_stride + p.o_col] = bi == NONE ? 0.0 : float(bi);
#endif
}
