import Foundation

extension CPUOps {
    /// SwiGLU core: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)). `out` may alias an input.
    /// `roundBF16` (bf16 numerics): silu(gate) is rounded to bf16 before the multiply, and the product.
    public static func siluMul(gate: CPURows, up: CPURows, out: CPURows, rows: Int, dim: Int, roundBF16: Bool = false) {
        for r in 0..<rows {
            let g = gate.row(r)
            let u = up.row(r)
            let o = out.row(r)
            for j in 0..<dim {
                let gv = g[j]
                if roundBF16 {
                    o[j] = bf16(bf16(gv / (1 + Foundation.exp(-gv))) * u[j])
                } else {
                    o[j] = gv / (1 + Foundation.exp(-gv)) * u[j]
                }
            }
        }
    }
}
