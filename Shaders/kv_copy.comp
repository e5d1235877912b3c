#version 450
// Copies the current rows' KV cache rows (kv_row(r, row_pos(r))) from one slot to another: what a token
// that stopped early leaves in the slots of the passes it skipped (the "latest" KV policy).
// PAIRS 8 (a fused run of copies, see Fusion.swift): up to 8 (source, destination) buffer pairs
// in one dispatch, pair gl_WorkGroupID.z; the host binds unused pairs to the first one and
// dispatches only `count` in z. A dispatch has a fixed cost whatever its size, and a token that
// stops after pass 2 of Ouro's 4 refills 24 buffers. Values are KV_T (see common.glsl), copied exactly.
#include "common.glsl"

#ifndef PAIRS
#define PAIRS 1
#endif

layout(std430, binding = 0) readonly buffer S0 { KV_T s0[]; };
layout(std430, binding = 1) writeonly buffer D0 { KV_T d0[]; };
#if PAIRS == 8
layout(std430, binding = 2) readonly buffer S1 { KV_T s1[]; };
layout(std430, binding = 3) writeonly buffer D1 { KV_T d1[]; };
layout(std430, binding = 4) readonly buffer S2 { KV_T s2[]; };
layout(std430, binding = 5) writeonly buffer D2 { KV_T d2[]; };
layout(std430, binding = 6) readonly buffer S3 { KV_T s3[]; };
layout(std430, binding = 7) writeonly buffer D3 { KV_T d3[]; };
layout(std430, binding = 8) readonly buffer S4 { KV_T s4[]; };
layout(std430, binding = 9) writeonly buffer D4 { KV_T d4[]; };
layout(std430, binding = 10) readonly buffer S5 { KV_T s5[]; };
layout(std430, binding = 11) writeonly buffer D5 { KV_T d5[]; };
layout(std430, binding = 12) readonly buffer S6 { KV_T s6[]; };
layout(std430, binding = 13) writeonly buffer D6 { KV_T d6[]; };
layout(std430, binding = 14) readonly buffer S7 { KV_T s7[]; };
layout(std430, binding = 15) writeonly buffer D7 { KV_T d7[]; };
#endif
STEP_STATE(2 * PAIRS)

layout(push_constant) uniform P { uint width; uint max_rows; } p;

void main() {
    uint c = gl_GlobalInvocationID.x;
    uint r = gl_GlobalInvocationID.y;
    if (c >= p.width || r >= step_rows) return;
    uint pos = kv_row(r, row_pos(r));
    if (pos >= p.max_rows) return;
    uint i = pos * p.width + c;
#if PAIRS == 8
    switch (gl_WorkGroupID.z) {
    case 0u: d0[i] = s0[i]; break;
    case 1u: d1[i] = s1[i]; break;
    case 2u: d2[i] = s2[i]; break;
    case 3u: d3[i] = s3[i]; break;
    case 4u: d4[i] = s4[i]; break;
    case 5u: d5[i] = s5[i]; break;
    case 6u: d6[i] = s6[i]; break;
    default: d7[i] = s7[i]; break;
    }
#else
    d0[i] = s0[i];
#endif
}
