#version 450
// Ouro's Q-exit decision on the device after pass pass_index of passes (row 0), so a token's
// passes need no host round trip. The rule is OuroQExit's (Sources/LoopCore/ExitRules.swift);
// CPU twin: CPUOps.exitDecide; layout of the control row: ExitControl. remaining *= 1 - sigmoid(gate logit); stop when 1 - remaining >= threshold
// with at least min_passes done, or at the last pass: record the passes used and the
// stopped-after flag (which KV fill runs); otherwise flag the next pass to run. Later sections
// run only when their flag is non-zero (VK_EXT_conditional_rendering).
// gate 1 (the gate's one-output linear fused in, see Fusion.swift): first s = x . W + b over
// in_f values, one workgroup (a lone decision dispatch costs as much as a pass's norm).
#include "common.glsl"

layout(std430, binding = 0) buffer S { float s[]; };
layout(std430, binding = 1) buffer C { float c[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer Wt { uint W[]; };
layout(std430, binding = 4) readonly buffer Bs { uint B[]; };

layout(push_constant) uniform P {
    uint s_col; uint c_col; uint pass_index; uint passes;
    float threshold; uint min_passes; uint gate; uint in_f;
    uint x_col; uint w_base; uint b_base; uint has_bias;
} p;

void main() {
    float signal;
    if (p.gate != 0u) {
        float acc = 0.0;
        for (uint k = gl_LocalInvocationID.x; k < p.in_f; k += gl_WorkGroupSize.x) acc += x[p.x_col + k] * LOAD_W(W, p.w_base + k);
        acc = workgroup_sum(acc);
        if (p.has_bias != 0u) acc += LOAD_B(B, p.b_base);
        signal = acc;
        if (gl_LocalInvocationID.x == 0u) s[p.s_col] = signal;
    } else {
        signal = s[p.s_col];
    }
    if (gl_LocalInvocationID.x != 0u) return;
    float lambda = 1.0 / (1.0 + exp(-signal));
    float remaining = c[p.c_col] * (1.0 - lambda);
    c[p.c_col] = remaining;
    uint done = p.pass_index + 1u;
    if (done >= p.passes || (1.0 - remaining >= p.threshold && done >= p.min_passes)) {
        c[p.c_col + 1u] = float(done);
        c[p.c_col + 2u + p.passes + done] = 1.0;
    } else {
        c[p.c_col + 2u + done] = 1.0;
    }
}
