import Foundation

extension CPUOps {
    /// Causal grouped-query attention. Query row r (at `step.positions[r]`) attends to its
    /// sequence's positions 0 ... positions[r], found at cache rows `step.kvRow(r, j)` (its KV
    /// pages). `keys` / `values` are caches with row stride `kvStride`; KV head g sits
    /// at columns g*headDim ..< (g+1)*headDim. Query head h reads KV head h / (heads / kvHeads).
    /// out[r, h*headDim + d] = sum_j softmax_j(scale · q·k_j) · v_j[d]  (fp32, max-subtracted).
    ///
    /// `roundBF16` (bf16 numerics), as torch's CPU flash-attention kernel computes a bfloat16
    /// call: scores, their max and the denominator in fp32, the numerators exp(s − max) rounded
    /// to bf16 before the fp32 weighted sum of V, the quotient rounded to bf16.
    public static func attention(q: CPURows, step: StepRows, keys: UnsafePointer<Float>,
                                 values: UnsafePointer<Float>, kvStride: Int, out: CPURows,
                                 heads: Int, kvHeads: Int, headDim: Int, scale: Float, roundBF16: Bool = false) {
        let group = heads / kvHeads
        var scores = [Float](repeating: 0, count: (step.positions.max() ?? 0) + 1)
        var acc = [Float](repeating: 0, count: headDim)
        for r in 0..<step.count {
            let n = step.positions[r] + 1
            let cacheRow = (0..<n).map { step.kvRow(r, $0) * kvStride }
            let qr = q.row(r)
            let orow = out.row(r)
            for h in 0..<heads {
                let qh = qr + h * headDim
                let kvCol = (h / group) * headDim
                var maxScore = -Float.infinity
                for j in 0..<n {
                    let kj = keys + cacheRow[j] + kvCol
                    var dot: Float = 0
                    for d in 0..<headDim { dot += qh[d] * kj[d] }
                    let s = dot * scale
                    scores[j] = s
                    if s > maxScore { maxScore = s }
                }
                var sum: Float = 0
                for j in 0..<n {
                    let e = Foundation.exp(scores[j] - maxScore)
                    scores[j] = e
                    sum += e
                }
                for d in 0..<headDim { acc[d] = 0 }
                if roundBF16 {
                    for j in 0..<n {
                        let p = bf16(scores[j])
                        let vj = values + cacheRow[j] + kvCol
                        for d in 0..<headDim { acc[d] += p * vj[d] }
                    }
                    let oh = orow + h * headDim
                    for d in 0..<headDim { oh[d] = bf16(acc[d] / sum) }
                    continue
                }
                for j in 0..<n {
                    let p = scores[j] / sum
                    let vj = values + cacheRow[j] + kvCol
                    for d in 0..<headDim { acc[d] += p * vj[d] }
                }
                let oh = orow + h * headDim
                for d in 0..<headDim { oh[d] = acc[d] }
            }
        }
    }
}
