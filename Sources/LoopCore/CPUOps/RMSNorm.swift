extension CPUOps {
    /// Root-mean-square norm of `groups` independent groups of `dim` values per row.
    ///
    /// For each group: s = x (+ add for `.normalizeSum`); inv = 1 / sqrt(mean(s²) + eps) with
    /// the statistic in fp32; y = s * inv * w (w = 1 when `weight` is nil; the same `dim`
    /// weights apply to every group). `.plain` stores y, `.accumulate` adds y into out,
    /// `.normalizeSum` stores y. `out` may alias `x` or `add` (each group is read before it
    /// is written).
    ///
    /// `roundBF16` (bf16 numerics, `Numerics`): s = bf16(x + add) for `.normalizeSum`; y =
    /// bf16(bf16(s * inv) * w), i.e. the normalized value is cast before the weight multiply as the
    /// official RMSNorms do; `.accumulate` adds bf16 y. The caller rounds what the op stores.
    public static func rmsNorm(x: CPURows, add: CPURows?, weight: UnsafeBufferPointer<Float>?, out: CPURows,
                               rows: Int, dim: Int, groups: Int, eps: Float, mode: NormMode, roundBF16: Bool = false) {
        var s = [Float](repeating: 0, count: dim)
        for r in 0..<rows {
            let xr = x.row(r)
            let ar = add?.row(r)
            let orow = out.row(r)
            for g in 0..<groups {
                let base = g * dim
                var sumSq: Float = 0
                for j in 0..<dim {
                    var v = xr[base + j]
                    if mode == .normalizeSum, let ar { v += ar[base + j]; if roundBF16 { v = bf16(v) } }
                    s[j] = v
                    sumSq += v * v
                }
                let inv = 1 / (sumSq / Float(dim) + eps).squareRoot()
                for j in 0..<dim {
                    var y = s[j] * inv
                    if roundBF16 { y = bf16(y) }
                    if let weight { y *= weight[j]; if roundBF16 { y = bf16(y) } }
                    if mode == .accumulate {
                        orow[base + j] += y
                    } else {
                        orow[base + j] = y
                    }
                }
            }
        }
    }
}
