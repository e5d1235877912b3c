extension CPUOps {
    /// In-place rotary embedding of `heads` heads of `headDim` values per row; row r is at
    /// position positions[r]. `table` is [positions, headDim/2, 2] holding (cos, sin) of pair i.
    ///
    /// `.rotateHalf` pairs dim i with dim i + headDim/2:
    ///   x[i]' = x[i]·cos − x[i+h]·sin,  x[i+h]' = x[i+h]·cos + x[i]·sin
    /// `.interleaved` pairs dim 2i with dim 2i+1:
    ///   x[2i]' = x[2i]·cos − x[2i+1]·sin,  x[2i+1]' = x[2i+1]·cos + x[2i]·sin
    ///
    /// `roundBF16` (bf16 numerics): each product and the sum are rounded to bf16, as
    /// `q * cos + rotate_half(q) * sin` computes in torch bfloat16 (the table holds bf16 values).
    public static func rope(x: CPURows, positions: [Int], heads: Int, headDim: Int,
                            table: UnsafeBufferPointer<Float>, layout: RopeLayout, roundBF16: Bool = false) {
        let half = headDim / 2
        for (r, pos) in positions.enumerated() {
            let t = pos * half * 2
            let xr = x.row(r)
            for h in 0..<heads {
                let v = xr + h * headDim
                for i in 0..<half {
                    let c = table[t + 2 * i]
                    let s = table[t + 2 * i + 1]
                    let (ia, ib) = layout == .rotateHalf ? (i, i + half) : (2 * i, 2 * i + 1)
                    let a = v[ia]
                    let b = v[ib]
                    if roundBF16 {
                        v[ia] = bf16(bf16(a * c) - bf16(b * s))
                        v[ib] = bf16(bf16(b * c) + bf16(a * s))
                    } else {
                        v[ia] = a * c - b * s
                        v[ib] = b * c + a * s
                    }
                }
            }
        }
    }
}
