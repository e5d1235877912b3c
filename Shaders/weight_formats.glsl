// Weight formats: how a shader reads a weight's elements, one branch per format
// (Sources/LoopCore/WeightFormat.swift lists them; its `shaderCode` is W_DTYPE / B_DTYPE here,
// its `dequantize` the CPU twin). A new format is a new branch of each definition below.
//
//   LOAD_W(buf, i), LOAD_B(buf, i)  element i of a weight (W_DTYPE) / bias (B_DTYPE) bound as
//                                   an array of 32-bit words
//   W_EPT, W_EPT_IS_4               elements per 16-byte texel (a constant; a macro for #if)
//   w_texel_at(W, i)                element i of a weight read through a texel view
//   w_texel(w, a, c)                a texel's W_EPT elements as two vec4s in the format's order
//                                   (c unused when W_EPT is 4)
//   w_x_order(x0, x1, a, c)         the 8 activations x0 = [0..3], x1 = [4..7] in that order
//   w_texel_dot(w, x0, x1)          a texel dotted with the activations it multiplies
//   W_VEC4_T, w_vec4(w)             4 consecutive elements as one storage-buffer load
//
// Formats: 0 f32; 1 f16 (IEEE half, two per word, the even element in the low half);
// 2 bf16 (the top 16 bits of an f32, two per word, the even element in the low half).

#ifndef W_DTYPE
#define W_DTYPE 0
#endif
#ifndef B_DTYPE
#define B_DTYPE 0
#endif

float weight_word_element(uint word, uint i, uint dtype) {
    if (dtype == 1u) return unpackHalf2x16(word >> ((i & 1u) * 16u)).x;
    return uintBitsToFloat((i & 1u) == 0u ? word << 16u : word & 0xFFFF0000u);
}
// (The dtype is a literal after expansion, so each use compiles to one branch.)
#define LOAD_FMT(buf, i, dtype) ((dtype) == 0 ? uintBitsToFloat(buf[(i)]) : weight_word_element(buf[(i) >> 1u], (i), uint(dtype)))
#define LOAD_W(buf, i) LOAD_FMT(buf, i, W_DTYPE)
#define LOAD_B(buf, i) LOAD_FMT(buf, i, B_DTYPE)

#if W_DTYPE == 0
const uint W_EPT = 4u;
#define W_EPT_IS_4 1
#define W_VEC4_T uvec4
vec4 w_vec4(uvec4 w) { return uintBitsToFloat(w); }
void w_texel(uvec4 w, out vec4 a, out vec4 c) { a = uintBitsToFloat(w); c = vec4(0.0); }
void w_x_order(vec4 x0, vec4 x1, out vec4 a, out vec4 c) { a = x0; c = x1; }
#elif W_DTYPE == 1
const uint W_EPT = 8u;
#define W_EPT_IS_4 0
#define W_VEC4_T uvec2
vec4 w_vec4(uvec2 w) { return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y)); }
void w_texel(uvec4 w, out vec4 a, out vec4 c) {
    a = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
    c = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
}
void w_x_order(vec4 x0, vec4 x1, out vec4 a, out vec4 c) { a = x0; c = x1; }
#else
const uint W_EPT = 8u;
#define W_EPT_IS_4 0
#define W_VEC4_T uvec2
vec4 w_vec4(uvec2 w) { return uintBitsToFloat(uvec4(w.x << 16u, w.x & 0xFFFF0000u, w.y << 16u, w.y & 0xFFFF0000u)); }
// The low halves (even elements) in a, the high halves (odd elements) in c: no shuffles.
void w_texel(uvec4 w, out vec4 a, out vec4 c) { a = uintBitsToFloat(w << 16u); c = uintBitsToFloat(w & 0xFFFF0000u); }
void w_x_order(vec4 x0, vec4 x1, out vec4 a, out vec4 c) { a = vec4(x0.x, x0.z, x1.x, x1.z); c = vec4(x0.y, x0.w, x1.y, x1.w); }
#endif

float w_texel_dot(uvec4 w, vec4 x0, vec4 x1) {
    vec4 a, c, xa, xc;
    w_texel(w, a, c);
    if (W_EPT == 4u) return dot(a, x0);
    w_x_order(x0, x1, xa, xc);
    return dot(a, xa) + dot(c, xc);
}

// Element i of W through a texel view.
#define w_texel_at(W, i) (W_EPT == 4u ? uintBitsToFloat(texelFetch(W, int((i) >> 2u))[(i) & 3u]) \
                                      : weight_word_element(texelFetch(W, int((i) >> 3u))[((i) >> 1u) & 3u], (i), uint(W_DTYPE)))
