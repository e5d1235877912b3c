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
//
// BLOCK_INTERLEAVED 1 (linear_block.comp's texel kernel over the interleaved copy, see
// DeviceBuffers.interleavedWeight): `il_block(b)` adds block b (E = elements per block) of
// the invocation's RPL features times TR rows of x to their sums, through the kernel's
//   il_texel(b, u, i)   main texel u of block b of feature i (the block minus its side bytes,
//                       WeightFormat.sideBytes, as 16-byte texels in stored order)
//   il_side(b, i)       the side bytes of block b of feature i (16-bit scales) in one uint
//   il_x4(r, k)         x[row r of the tile, elements k ..< k + 4 of block b]; il_nr rows are real
//   il_add(i, r, v)     sum[feature i, row r] += v
// Each format's branch decodes a texel once for all TR rows and folds a scale's offset
// (Q4_0's -8, K-quant minimums, MLX's bias) into one multiply of the x sum.

#define W_IS_BLOCK (W_DTYPE >= 10)
#ifndef BLOCK_INTERLEAVED
#define BLOCK_INTERLEAVED 0
#endif

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
const uint W_BLOCK_ELEMS = 32u, W_MAIN_BYTES = 32u, W_SIDE_BYTES = 2u;   // interleaved copy: d apart
void block_decode8(uint row, uint c, uint e, out vec4 lo, out vec4 hi) {
    uint a = row + 34u * c;
    float d = w_half(a);
    uint b = a + 2u + 8u * e;
    lo = d * i8x4(w_u32(b));
    hi = d * i8x4(w_u32(b + 4u));
}

#elif W_DTYPE == 11
#define W_ROW_BYTES(n) ((n) / 32u * 18u)
const uint W_BLOCK_ELEMS = 32u, W_MAIN_BYTES = 16u, W_SIDE_BYTES = 2u;
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
const uint W_BLOCK_ELEMS = 256u, W_MAIN_BYTES = 144u, W_SIDE_BYTES = 0u;
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
const uint W_BLOCK_ELEMS = 256u, W_MAIN_BYTES = 208u, W_SIDE_BYTES = 2u;
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
const uint W_BLOCK_ELEMS = MLX_GS, W_MAIN_BYTES = MLX_GS * MLX_BITS / 8u, W_SIDE_BYTES = 4u;
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

#if BLOCK_INTERLEAVED
float il_half(uint side, uint which) { return unpackHalf2x16(side >> (16u * which)).x; }
float il_sum(vec4 a) { return a.x + a.y + a.z + a.w; }

// In-place unpacking: each byte or nibble of a word masked where it lies and converted, so it
// comes out times 2^(its bit offset); the x values it multiplies are scaled by the inverse power
// of two beforehand (exact, once per block for all the features), so a value costs a mask and a
// convert instead of a shift, a mask and a convert. The top one is shifted down instead (it may
// not convert as a signed int). Values are unsigned: Q8_0's bytes are flipped to q + 128 first
// (the 128 comes off with the x sum).
vec4 il_bytes(uint w) { return vec4(float(int(w & 0xFFu)), float(int(w & 0xFF00u)), float(int(w & 0xFF0000u)), float(int(w >> 24u))); }
const vec4 IL_BYTES = vec4(1.0, 1.0 / 256.0, 1.0 / 65536.0, 1.0);
// Bits 0, 8, 16, 24 and 4, 12, 20, 28: the low and the high nibbles of a word's bytes.
vec4 il_lo_nibbles(uint w) { return vec4(float(int(w & 0xFu)), float(int(w & 0xF00u)), float(int(w & 0xF0000u)), float(int(w & 0xF000000u))); }
vec4 il_hi_nibbles(uint w) { return vec4(float(int(w & 0xF0u)), float(int(w & 0xF000u)), float(int(w & 0xF00000u)), float(int(w >> 28u))); }
const vec4 IL_LO_NIBBLES = vec4(1.0, 1.0 / 256.0, 1.0 / 65536.0, 1.0 / 16777216.0);
const vec4 IL_HI_NIBBLES = vec4(1.0 / 16.0, 1.0 / 4096.0, 1.0 / 1048576.0, 1.0);

#if W_DTYPE == 10
// Q8_0: side d; texels 0, 1: q[0..15], q[16..31].
void il_block(uint b) {
    float d[RPL];
    for (uint i = 0u; i < RPL; i++) d[i] = il_half(il_side(b, i), 0u);
    for (uint u = 0u; u < 2u; u++) {
        vec4 xv[TR * 4u];
        float sx[TR];
        for (uint r = 0u; r < TR; r++) {
            if (r >= il_nr) break;
            vec4 a = vec4(0.0);
            for (uint q = 0u; q < 4u; q++) { vec4 x = il_x4(r, 16u * u + 4u * q); a += x; xv[4u * r + q] = x * IL_BYTES; }
            sx[r] = il_sum(a);
        }
        for (uint i = 0u; i < RPL; i++) {
            uvec4 w = il_texel(b, u, i) ^ 0x80808080u;      // q + 128
            vec4 q0 = il_bytes(w.x), q1 = il_bytes(w.y), q2 = il_bytes(w.z), q3 = il_bytes(w.w);
            for (uint r = 0u; r < TR; r++) {
                if (r >= il_nr) break;
                float t = dot(q0, xv[4u * r]) + dot(q1, xv[4u * r + 1u]) + dot(q2, xv[4u * r + 2u]) + dot(q3, xv[4u * r + 3u]);
                il_add(i, r, d[i] * (t - 128.0 * sx[r]));
            }
        }
    }
}

#elif W_DTYPE == 11
// Q4_0: side d; texel 0: byte j's low nibble is element j, its high nibble element 16 + j.
void il_block(uint b) {
    vec4 xv[TR * 8u];
    float sx[TR];
    for (uint r = 0u; r < TR; r++) {
        if (r >= il_nr) break;
        vec4 s = vec4(0.0);
        for (uint q = 0u; q < 8u; q++) { vec4 x = il_x4(r, 4u * q); s += x; xv[8u * r + q] = x * (q < 4u ? IL_LO_NIBBLES : IL_HI_NIBBLES); }
        sx[r] = il_sum(s);
    }
    for (uint i = 0u; i < RPL; i++) {
        float d = il_half(il_side(b, i), 0u);
        uvec4 w = il_texel(b, 0u, i);
        vec4 lo0 = il_lo_nibbles(w.x), lo1 = il_lo_nibbles(w.y), lo2 = il_lo_nibbles(w.z), lo3 = il_lo_nibbles(w.w);
        vec4 hi0 = il_hi_nibbles(w.x), hi1 = il_hi_nibbles(w.y), hi2 = il_hi_nibbles(w.z), hi3 = il_hi_nibbles(w.w);
        for (uint r = 0u; r < TR; r++) {
            if (r >= il_nr) break;
            uint x0 = 8u * r;
            float t = dot(lo0, xv[x0]) + dot(lo1, xv[x0 + 1u]) + dot(lo2, xv[x0 + 2u]) + dot(lo3, xv[x0 + 3u])
                    + dot(hi0, xv[x0 + 4u]) + dot(hi1, xv[x0 + 5u]) + dot(hi2, xv[x0 + 6u]) + dot(hi3, xv[x0 + 7u]);
            il_add(i, r, d * (t - 8.0 * sx[r]));
        }
    }
}

#elif W_DTYPE == 12
// Q4_K: texel 0: d, dmin, the 12 bytes of 6-bit scales and mins; texels 1 + 2p, 2 + 2p: the
// 32 bytes of sub-blocks 2p (low nibbles, elements 64p + 0..31) and 2p + 1 (high nibbles,
// 64p + 32..63), 16 bytes each.
uint il_byte(uvec4 h, uint k) { return (h[1u + (k >> 2u)] >> (8u * (k & 3u))) & 255u; }
// ggml's get_scale_min_k4 over the header texel: scale and min of sub-block j.
vec2 il_scale_min(uvec4 h, uint j) {
    if (j < 4u) return vec2(float(il_byte(h, j) & 63u), float(il_byte(h, j + 4u) & 63u));
    uint q = il_byte(h, j + 4u);
    return vec2(float((q & 15u) | ((il_byte(h, j - 4u) >> 6u) << 4u)), float((q >> 4u) | ((il_byte(h, j) >> 6u) << 4u)));
}
void il_block(uint b) {
    uvec4 hdr[RPL];
    for (uint i = 0u; i < RPL; i++) hdr[i] = il_texel(b, 0u, i);
    for (uint p2 = 0u; p2 < 4u; p2++) {
        // Per feature: scale and min of the pair's two sub-blocks (d * sc, dmin * m).
        vec4 dm[RPL];
        for (uint i = 0u; i < RPL; i++) {
            vec2 f = unpackHalf2x16(hdr[i].x);
            vec2 a = il_scale_min(hdr[i], 2u * p2), c = il_scale_min(hdr[i], 2u * p2 + 1u);
            dm[i] = vec4(f.x * a.x, f.y * a.y, f.x * c.x, f.y * c.y);
        }
        for (uint hp = 0u; hp < 2u; hp++) {
            vec4 xv[TR * 8u];
            vec2 sx[TR];
            for (uint r = 0u; r < TR; r++) {
                if (r >= il_nr) break;
                uint k = 64u * p2 + 16u * hp;
                vec4 sl = vec4(0.0), sh = vec4(0.0);
                for (uint q = 0u; q < 4u; q++) {
                    vec4 xl = il_x4(r, k + 4u * q), xh = il_x4(r, k + 32u + 4u * q);
                    sl += xl; sh += xh;
                    xv[8u * r + q] = xl * IL_LO_NIBBLES;
                    xv[8u * r + 4u + q] = xh * IL_HI_NIBBLES;
                }
                sx[r] = vec2(il_sum(sl), il_sum(sh));
            }
            for (uint i = 0u; i < RPL; i++) {
                uvec4 w = il_texel(b, 1u + 2u * p2 + hp, i);
                vec4 lo0 = il_lo_nibbles(w.x), lo1 = il_lo_nibbles(w.y), lo2 = il_lo_nibbles(w.z), lo3 = il_lo_nibbles(w.w);
                vec4 hi0 = il_hi_nibbles(w.x), hi1 = il_hi_nibbles(w.y), hi2 = il_hi_nibbles(w.z), hi3 = il_hi_nibbles(w.w);
                for (uint r = 0u; r < TR; r++) {
                    if (r >= il_nr) break;
                    uint x0 = 8u * r;
                    float tl = dot(lo0, xv[x0]) + dot(lo1, xv[x0 + 1u]) + dot(lo2, xv[x0 + 2u]) + dot(lo3, xv[x0 + 3u]);
                    float th = dot(hi0, xv[x0 + 4u]) + dot(hi1, xv[x0 + 5u]) + dot(hi2, xv[x0 + 6u]) + dot(hi3, xv[x0 + 7u]);
                    il_add(i, r, dm[i].x * tl - dm[i].y * sx[r].x + dm[i].z * th - dm[i].w * sx[r].y);
                }
            }
        }
    }
}

#elif W_DTYPE == 13
// Q6_K: side d; texels 0-7 ql[128], 8-11 qh[64], 12 the 16 int8 scales. Half h, segment s
// (16 bytes t = 16s ..< 16s + 16 of the half): ql texels A = 4h + s, B = 4h + 2 + s, qh texel
// 8 + 2h + s give elements 128h + 16s + 32g + (0..15) for g = 0..3 (A low, B low, A high,
// B high nibbles; qh bits 2g), scale 8h + s + 2g.
// Four 6-bit values (one per byte of the words) built in one word, then converted.
vec4 il_q6(uint ql, uint shift, uint qh, uint g) {
    uint q = ((ql >> shift) & 0x0F0F0F0Fu) | (((qh >> (2u * g)) & 0x03030303u) << 4u);
    return vec4(uvec4(q, q >> 8u, q >> 16u, q >> 24u) & 63u);
}
float il_scale6(uvec4 sc, uint k) { return float(int(sc[k >> 2u] << (24u - 8u * (k & 3u))) >> 24); }
void il_block(uint b) {
    uvec4 sc[RPL];
    float d[RPL];
    for (uint i = 0u; i < RPL; i++) { sc[i] = il_texel(b, 12u, i); d[i] = il_half(il_side(b, i), 0u); }
    for (uint h = 0u; h < 2u; h++) {
        for (uint s = 0u; s < 2u; s++) {
            vec4 xv[TR * 16u];
            vec4 sx[TR];
            for (uint r = 0u; r < TR; r++) {
                if (r >= il_nr) break;
                uint k = 128u * h + 16u * s;
                for (uint g = 0u; g < 4u; g++) {
                    vec4 a = vec4(0.0);
                    for (uint q = 0u; q < 4u; q++) { xv[16u * r + 4u * g + q] = il_x4(r, k + 32u * g + 4u * q); a += xv[16u * r + 4u * g + q]; }
                    sx[r][g] = il_sum(a);
                }
            }
            for (uint i = 0u; i < RPL; i++) {
                uvec4 A = il_texel(b, 4u * h + s, i), B = il_texel(b, 4u * h + 2u + s, i), H = il_texel(b, 8u + 2u * h + s, i);
                vec4 sg = d[i] * vec4(il_scale6(sc[i], 8u * h + s), il_scale6(sc[i], 8u * h + s + 2u),
                                      il_scale6(sc[i], 8u * h + s + 4u), il_scale6(sc[i], 8u * h + s + 6u));
                for (uint r = 0u; r < TR; r++) {
                    if (r >= il_nr) break;
                    vec4 t = vec4(0.0);
                    for (uint q = 0u; q < 4u; q++) {
                        uint x0 = 16u * r + q;
                        t.x += dot(il_q6(A[q], 0u, H[q], 0u), xv[x0]);
                        t.y += dot(il_q6(B[q], 0u, H[q], 1u), xv[x0 + 4u]);
                        t.z += dot(il_q6(A[q], 4u, H[q], 2u), xv[x0 + 8u]);
                        t.w += dot(il_q6(B[q], 4u, H[q], 3u), xv[x0 + 12u]);
                    }
                    il_add(i, r, dot(sg, t - 32.0 * sx[r]));
                }
            }
        }
    }
}

#elif W_DTYPE == 20
// MLX affine: side scale, bias; texel u: elements (16 / MLX_BITS * 8) u onwards, consecutive
// (4-bit: 32 per texel, element n of a word at bits 4n; 8-bit: 16, one per byte).
const uint IL_EPT = 128u / MLX_BITS;          // elements per texel
#if MLX_BITS == 4
// Elements 0-3 and 4-7 of a word (bits 4n), in place (see il_bytes).
vec4 il_mlx_lo(uint w) { return vec4(float(int(w & 0xFu)), float(int(w & 0xF0u)), float(int(w & 0xF00u)), float(int(w & 0xF000u))); }
vec4 il_mlx_hi(uint w) { return vec4(float(int(w & 0xF0000u)), float(int(w & 0xF00000u)), float(int(w & 0xF000000u)), float(int(w >> 28u))); }
const vec4 IL_MLX_LO = vec4(1.0, 1.0 / 16.0, 1.0 / 256.0, 1.0 / 4096.0), IL_MLX_HI = vec4(1.0 / 65536.0, 1.0 / 1048576.0, 1.0 / 16777216.0, 1.0);
vec4 il_mlx_scale(uint q) { return (q & 1u) == 0u ? IL_MLX_LO : IL_MLX_HI; }
#else
vec4 il_mlx_scale(uint q) { return IL_BYTES; }
#endif
void il_block(uint b) {
    vec2 sb[RPL];
    for (uint i = 0u; i < RPL; i++) { uint w = il_side(b, i); sb[i] = vec2(mlx_scale(w & 0xFFFFu), mlx_scale(w >> 16u)); }
    for (uint u = 0u; u < MLX_GS / IL_EPT; u++) {
        vec4 xv[TR * (IL_EPT / 4u)];
        float sx[TR];
        for (uint r = 0u; r < TR; r++) {
            if (r >= il_nr) break;
            vec4 a = vec4(0.0);
            for (uint q = 0u; q < IL_EPT / 4u; q++) { vec4 x = il_x4(r, IL_EPT * u + 4u * q); a += x; xv[(IL_EPT / 4u) * r + q] = x * il_mlx_scale(q); }
            sx[r] = il_sum(a);
        }
        for (uint i = 0u; i < RPL; i++) {
            uvec4 w = il_texel(b, u, i);
            for (uint r = 0u; r < TR; r++) {
                if (r >= il_nr) break;
                uint x0 = (IL_EPT / 4u) * r;
                float t = 0.0;
                for (uint c = 0u; c < 4u; c++) {
#if MLX_BITS == 4
                    t += dot(il_mlx_lo(w[c]), xv[x0 + 2u * c]) + dot(il_mlx_hi(w[c]), xv[x0 + 2u * c + 1u]);
#else
                    t += dot(il_bytes(w[c]), xv[x0 + c]);
#endif
                }
                il_add(i, r, sb[i].x * t + sb[i].y * sx[r]);
            }
        }
    }
}
#endif
#endif
