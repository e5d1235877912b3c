#version 450
// Argmax over each row of `dim` values (one workgroup per row): the FIRST maximal index, as
// the references' greedy decoding takes it; NaN never wins. Writes the index as a float.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };

layout(push_constant) uniform P { uint dim; uint x_stride; uint x_col; uint o_stride; uint o_col; } p;

#if !SUBGROUP_ONLY
shared float best_v[256];
shared uint best_i[256];
#endif

void main() {
    uint r = gl_WorkGroupID.x;
    uint t = gl_LocalInvocationID.x;
    uint n = gl_WorkGroupSize.x;
    float bv = -1.0 / 0.0;
    uint bi = 0xFFFFFFFFu;
    for (uint i = t; i < p.dim; i += n) {
        float v = x[r * p.x_stride + p.x_col + i];
        if (!isnan(v) && (bi == 0xFFFFFFFFu || v > bv)) { bv = v; bi = i; }
    }
#if SUBGROUP_ONLY
    // One subgroup: the largest value, then the smallest index holding it.
    float m = subgroupMax(bi == 0xFFFFFFFFu ? -1.0 / 0.0 : bv);
    uint win = subgroupMin(bi != 0xFFFFFFFFu && bv == m ? bi : 0xFFFFFFFFu);
    if (t == 0u) o[r * p.o_stride + p.o_col] = win == 0xFFFFFFFFu ? 0.0 : float(win);
}
#else
    best_v[t] = bv; best_i[t] = bi;
    barrier();
    for (uint s = n / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            float ov = best_v[t + s]; uint oi = best_i[t + s];
            bool take = oi != 0xFFFFFFFFu && (best_i[t] == 0xFFFFFFFFu || ov > best_v[t] || (ov == best_v[t] && oi < best_i[t]));
            if (take) { best_v[t] = ov; best_i[t] = oi; }
        }
        barrier();
    }
    if (t == 0u) o[r * p.o_stride + p.o_col] = best_i[0] == 0xFFFFFFFFu ? 0.0 : float(best_i[0]);
}
#endif
