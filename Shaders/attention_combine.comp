#version 450
// Flash-decoding, second step (see attention.comp SPLIT): for each (head, row), merges the
// splits' partial softmax states (m, l, acc[head_dim]) into the attention output:
//   M = max m_s,  L = sum l_s exp(m_s - M),  out = sum acc_s exp(m_s - M) / L.
// Empty splits (m = -inf, l = 0: past the current position) wrote nothing else and are skipped.
// One workgroup per (head, row).
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Part { float part[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };

layout(push_constant) uniform P { uint heads; uint head_dim; uint splits; uint o_stride; uint o_col; } p;

void main() {
    uint h = gl_WorkGroupID.x;
    uint r = gl_WorkGroupID.y;
    uint stride = p.head_dim + 2u;
    uint base = (r * p.heads + h) * p.splits * stride;
    float mx = -1.0 / 0.0;
    for (uint s = 0u; s < p.splits; s++) mx = max(mx, part[base + s * stride]);
    float l = 0.0;
    for (uint s = 0u; s < p.splits; s++) if (part[base + s * stride + 1u] > 0.0) l += part[base + s * stride + 1u] * exp(part[base + s * stride] - mx);
    uint ob = r * p.o_stride + p.o_col + h * p.head_dim;
    for (uint d = gl_LocalInvocationID.x; d < p.head_dim; d += gl_WorkGroupSize.x) {
        float a = 0.0;
        for (uint s = 0u; s < p.splits; s++) if (part[base + s * stride + 1u] > 0.0) a += part[base + s * stride + 2u + d] * exp(part[base + s * stride] - mx);
        o[ob + d] = a / l;
    }
}
