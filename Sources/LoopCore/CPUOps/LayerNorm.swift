extension CPUOps {
    /// Layer norm over `dim` values per row: out = (x - mean) / sqrt(var + eps) * w + b, with the
    /// biased variance (divided by dim), statistics in fp32. `out` may alias `x`.
    public static func layerNorm(x: CPURows, weight: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?,
                                 out: CPURows, rows: Int, dim: Int, eps: Float) {
        for r in 0..<rows {
            let xr = x.row(r)
            let orow = out.row(r)
            var sum: Float = 0
            for j in 0..<dim { sum += xr[j] }
            let mean = sum / Float(dim)
            var sumSq: Float = 0
            for j in 0..<dim {
                let d = xr[j] - mean
                sumSq += d * d
            }
            let inv = 1 / (sumSq / Float(dim) + eps).squareRoot()
            for j in 0..<dim {
                var y = (xr[j] - mean) * inv * weight[j]
                if let bias { y += bias[j] }
                orow[j] = y
            }
        }
    }
}
