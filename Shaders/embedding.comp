#version 450
// Embedding gather: out[r, :] = table[tokens[r], :] * scale, table [vocab, dim] in W_DTYPE.
// A large table is bound in row chunks: this dispatch handles token ids in [row0, row0 + nrows).
// A block-quantized table (block_formats.glsl): w_base is the byte address of row row0.
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Table { uint W[]; };
#define W_WORD(i) W[(i)]
#include "block_formats.glsl"
layout(std430, binding = 1) buffer Out { float o[]; };
STEP_STATE(2)

layout(push_constant) uniform P {
    uint dim; uint out_stride; uint out_col; uint w_base;
    uint row0; uint nrows; float scale;
} p;

void main() {
    uint d = gl_GlobalInvocationID.x;
    uint r = gl_GlobalInvocationID.y;
    if (d >= p.dim || r >= step_rows) return;
    uint tok = step_tokens[r];
    if (tok < p.row0 || tok >= p.row0 + p.nrows) return;
#if W_IS_BLOCK
    float v = block_elem(p.w_base + (tok - p.row0) * W_ROW_BYTES(p.dim), d);
#else
    float v = LOAD_W(W, p.w_base + (tok - p.row0) * p.dim + d);
#endif
    o[r * p.out_stride + p.out_col + d] = v * p.scale;
}
