#version 450
// Greedy decode of several tokens in one submission (VulkanBackend.runGreedyChain): after a
// token's sections this appends the greedy choice (the head's argmax, a float) to the results
// and makes it the next token: step_tokens[0] = id, pos0 and row 0's position + 1, and the
// chain index + 1 (see STEP_STATE in common.glsl; the host's page table covers the chain). One invocation; the host sets the step state once per chain.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) buffer Step { uint pos0; uint rows; uint index; uint stride; uint tokens[]; } st;
layout(std430, binding = 2) writeonly buffer R { uint results[]; };

layout(push_constant) uniform P { uint a_col; } p;

void main() {
    uint id = uint(a[p.a_col]);
    results[st.index] = id;
    st.index += 1u;
    st.tokens[0] = id;
    st.pos0 += 1u;
    st.tokens[st.stride] += 1u;
}
