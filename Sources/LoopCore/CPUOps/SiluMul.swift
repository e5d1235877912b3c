import Foundation

extension CPUOps {
    /// SwiGLU core: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)). `out` may alias an input.
    public static func siluMul(gate: CPURows, up: CPURows, out: CPURows, rows: Int, dim: Int) {
        for r in 0..<rows {
            let g = gate.row(r)
            let u = up.row(r)
            let o = out.row(r)
            for j in 0..<dim {
                let gv = g[j]
                o[j] = gv / (1 + Foundation.exp(-gv)) * u[j]
            }
        }
    }
}
