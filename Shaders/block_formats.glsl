// Block-quantized weight formats: how a shader reads them, one branch per format (the layouts
// and their CPU twins are in Sources/LoopCore/BlockFormats.swift and MLXAffine.swift; the
// format's `shaderCode` is W_DTYPE here). Rows are whole blocks; a row starts at a byte address.
// Every format is read in chunks of 32 elements (a Q8_0/Q4_0 block, a K-quant sub-block, part
// of an MLX group), 8 elements at a time:
//
//   W_WORD(i)                       32-bit word i of the weight binding (the including shader
//                                   defines it: a storage-buffer array or a texel view)
//   W_ROW_BYTES(in_f)               bytes of one row of in_f elements
//   block_decode8(row, c, e, lo, hi) elements 8e ..< 8e + 8 of chunk c of the row at byte `row`
//   block_elem(row, k)              element k of that row
//
// Codes: 10 Q8_0 {f16 d; i8 q[32]} (34 B / 32); 11 Q4_0 {f16 d; u8 q[16]} (18 B / 32, low
// nibbles elements 0-15, high nibbles 16-31, value q - 8); 12 Q4_K (144 B / 256: f16 d, f16 dmin,
// 12 bytes of 6-bit scales and mins, 128 bytes of nibbles); 13 Q6_K (210 B / 256: ql[128],
// qh[64], i8 scales[16], f16 d); 20 MLX affine (MLX_BITS 4|8, MLX_GS 32|64|128, per group a
// 16-bit scale and bias (MLX_SCALE_BF16 1: bf16, 0: f16) then the packed values).
// Addresses are even (block sizes and row starts are), so 16-bit reads never straddle words.

#define W_IS_BLOCK (W_DTYPE >= 10)

// 16 / 32 bits at an even byte address; one byte.
uint w_u16(uint a) { uint w = W_WORD(a >> 2u); return (a & 2u) != 0u ? w >> 16u : w & 0xFFFFu; }
uint w_u32(uint a) {
    if ((a & 2u) == 0u) return W_WORD(a >> 2u);
    return (W_WORD(a >> 2u) >> 16u) | (W_WORD((a >> 2u) + 1u) << 16u);
}
uint w_u8(uint a) { return (W_WORD(a >> 2u) >> ((a & 3u) * 8u)) & 0xFFu; }
float w_half(uint a) { return unpackHalf2x16(w_u16(a)).x; }

// Four signed bytes / four nibbles (from bit `shift` of each byte) of a word, as floats.
vec4 i8x4(uint w) { return vec4(ivec4(int(w << 24u) >> 24, int(w << 16u) >> 24, int(w << 8u) >> 24, int(w) >> 24)); }
vec4 u4x4(uint w, uint shift) { return vec4(uvec4(w >> shift, w >> (shift + 8u), w >> (shift + 16u), w >> (shift + 24u)) & 15u); }

#if W_DTYPE == 10
#define W_ROW_BYTES(n) ((n) / 32u * 34u)
void block_decode8(uint row, uint c, uint e, out vec4 lo, out vec4 hi) {
    uint a = row + 34u * c;
    float d = w_half(a);
    uint b = a + 2u + 8u * e;
    lo = d * i8x4(w_u32(b));
    hi = d * i8x4(w_u32(b + 4u));
}

#elif W_DTYPE == 11
#define W_ROW_BYTES(n) ((n) / 32u * 18u)
void block_decode8(uint row, uint c, uint e, out vec4 lo, out vec4 hi) {
    uint a = row + 18u * c;
    float d = w_half(a);
    uint b = a + 2u + 8u * (e & 1u);    // elements 0-15: low nibbles of bytes 0-15; 16-31: high
    uint shift = (e >> 1u) * 4u;
    lo = d * (u4x4(w_u32(b), shift) - 8.0);
    hi = d * (u4x4(w_u32(b + 4u), shift) - 8.0);
}

#elif W_DTYPE == 12
#define W_ROW_BYTES(n) ((n) / 256u * 144u)
void block_decode8(uint row, uint c, uint e, out vec4 lo, out vec4 hi) {
    uint a = row + 144u * (c >> 3u), j = c & 7u;
    vec2 dm = unpackHalf2x16(w_u32(a));
    // ggml's get_scale_min_k4: 6-bit scale and min of sub-block j from the 12 packed bytes.
    uint sc, m;
    if (j < 4u) {
        sc = w_u8(a + 4u + j) & 63u;
        m = w_u8(a + 8u + j) & 63u;
    } else {
        uint q = w_u8(a + 8u + j);
        sc = (q & 15u) | ((w_u8(a + j) >> 6u) << 4u);
        m = (q >> 4u) | ((w_u8(a + 4u + j) >> 6u) << 4u);
    }
    float d = dm.x * float(sc), mn = dm.y * float(m);
    uint b = a + 16u + (j >> 1u) * 32u + 8u * e;   // sub-blocks 2i, 2i+1: low, high nibbles of 32 bytes
    uint shift = (j & 1u) * 4u;
    lo = d * u4x4(w_u32(b), shift) - mn;
    hi = d * u4x4(w_u32(b + 4u), shift) - mn;
}

#elif W_DTYPE == 13
#define W_ROW_BYTES(n) ((n) / 256u * 210u)
void block_decode8(uint row, uint c, uint e, out vec4 lo, out vec4 hi) {
    // Chunk c of the super-block: half h (128 elements), quarter q (32): element l of it has its
    // low 4 bits in ql[64h + 32(q & 1) + l] (high nibble when q >= 2), its high 2 bits at bit 2q
    // of qh[32h + l], and scale 8h + 2q + l / 16.
    uint a = row + 210u * (c >> 3u), h = (c >> 2u) & 1u, q = c & 3u;
    float d = w_half(a + 208u);
    uint l = 8u * e;
    uint sb = w_u8(a + 192u + 8u * h + 2u * q + (l >> 4u));
    float s = d * float(int(sb << 24u) >> 24);
    uint qlA = a + 64u * h + 32u * (q & 1u) + l, qhA = a + 128u + 32u * h + l;
    uint shift = (q >> 1u) * 4u;
    uint ql0 = w_u32(qlA), ql1 = w_u32(qlA + 4u), qh0 = w_u32(qhA), qh1 = w_u32(qhA + 4u);
    uvec4 hb0 = (uvec4(qh0, qh0 >> 8u, qh0 >> 16u, qh0 >> 24u) >> (2u * q)) & 3u;
    uvec4 hb1 = (uvec4(qh1, qh1 >> 8u, qh1 >> 16u, qh1 >> 24u) >> (2u * q)) & 3u;
    lo = s * (u4x4(ql0, shift) + vec4(hb0 * 16u) - 32.0);
    hi = s * (u4x4(ql1, shift) + vec4(hb1 * 16u) - 32.0);
}

#elif W_DTYPE == 20
#ifndef MLX_BITS
#define MLX_BITS 4
#endif
#ifndef MLX_GS
#define MLX_GS 64
#endif
#ifndef MLX_SCALE_BF16
#define MLX_SCALE_BF16 1
#endif
const uint MLX_GROUP_BYTES = 4u + MLX_GS * MLX_BITS / 8u;
#define W_ROW_BYTES(n) ((n) / MLX_GS * MLX_GROUP_BYTES)
float mlx_scale(uint bits16) {
#if MLX_SCALE_BF16
    return uintBitsToFloat(bits16 << 16u);
#else
    return unpackHalf2x16(bits16).x;
#endif
}
void block_decode8(uint row, uint c, uint e, out vec4 lo, out vec4 hi) {
    uint k = 32u * c + 8u * e;                   // element within the row
    uint a = row + (k / MLX_GS) * MLX_GROUP_BYTES;
    uint sb = w_u32(a);
    float s = mlx_scale(sb & 0xFFFFu), b = mlx_scale(sb >> 16u);
    uint off = a + 4u + (k % MLX_GS) * MLX_BITS / 8u;
#if MLX_BITS == 4
    uint w = w_u32(off);                         // element i at bits 4i
    lo = s * vec4(uvec4(w, w >> 4u, w >> 8u, w >> 12u) & 15u) + b;
    hi = s * vec4(uvec4(w >> 16u, w >> 20u, w >> 24u, w >> 28u) & 15u) + b;
#else
    uint w0 = w_u32(off), w1 = w_u32(off + 4u);  // element i at byte i
    lo = s * vec4(uvec4(w0, w0 >> 8u, w0 >> 16u, w0 >> 24u) & 255u) + b;
    hi = s * vec4(uvec4(w1, w1 >> 8u, w1 >> 16u, w1 >> 24u) & 255u) + b;
#endif
}
#endif

#if W_IS_BLOCK
float block_elem(uint row, uint k) {
    vec4 lo, hi;
    block_decode8(row, k >> 5u, (k >> 3u) & 3u, lo, hi);
    uint i = k & 7u;
    return i < 4u ? lo[i] : hi[i - 4u];
}
#endif
