// Shared declarations for LoopVK compute shaders (included by every *.comp).
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

layout(local_size_x_id = 0, local_size_y_id = 1) in;

// Weights are bound as arrays of 32-bit words whatever their dtype, so 16-bit tensors need no
// 16-bit storage feature: W_DTYPE 0 = f32, 1 = f16, 2 = bf16 (bf16 = the top 16 bits of an f32).
#ifndef W_DTYPE
#define W_DTYPE 0
#endif
#if W_DTYPE == 0
#define LOAD_W(buf, i) uintBitsToFloat(buf[(i)])
#elif W_DTYPE == 1
#define LOAD_W(buf, i) unpackHalf2x16(buf[(i) >> 1u] >> (((i) & 1u) * 16u)).x
#else
#define LOAD_W(buf, i) uintBitsToFloat((((i) & 1u) == 0u) ? (buf[(i) >> 1u] << 16u) : (buf[(i) >> 1u] & 0xFFFF0000u))
#endif

// A second weight operand (bias) may be stored in another dtype.
#ifndef B_DTYPE
#define B_DTYPE 0
#endif
#if B_DTYPE == 0
#define LOAD_B(buf, i) uintBitsToFloat(buf[(i)])
#elif B_DTYPE == 1
#define LOAD_B(buf, i) unpackHalf2x16(buf[(i) >> 1u] >> (((i) & 1u) * 16u)).x
#else
#define LOAD_B(buf, i) uintBitsToFloat((((i) & 1u) == 0u) ? (buf[(i) >> 1u] << 16u) : (buf[(i) >> 1u] & 0xFFFF0000u))
#endif

// The per-call "step state": first position of the rows, row count, and the rows' token ids.
// Recorded command buffers read it, so they replay unchanged for every decode token.
// Gated SiLU of a gate and an up value (float or vec4): silu(g) * u = g / (1 + exp(-g)) * u.
// silu_mul.comp and the gate/up products' fused epilogues (matvec.comp, matmul.comp SILU).
#define SILU_MUL(g, u) ((g) / (1.0 + exp(-(g))) * (u))

#define STEP_STATE(b) layout(std430, binding = b) readonly buffer StepState { uint step_pos0; uint step_rows; uint step_pad0; uint step_pad1; uint step_tokens[]; };

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
