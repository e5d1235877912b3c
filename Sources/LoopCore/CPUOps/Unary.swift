import Foundation

extension CPUOps {
    /// One elementwise function (see `UnaryKind`). `scale` is used by `.fill` (out = scale) and
    /// `.scale` (out = scale * x) and ignored by the others.
    @inline(__always) public static func unaryValue(_ kind: UnaryKind, _ x: Float, scale: Float) -> Float {
        switch kind {
        case .sigmoid: return 1 / (1 + Foundation.exp(-x))
        // PyTorch's softplus (beta 1, threshold 20): linear above 20.
        case .softplus: return x > 20 ? x : Foundation.log1p(Foundation.exp(x))
        case .exp: return Foundation.exp(x)
        case .silu: return x / (1 + Foundation.exp(-x))
        case .fill: return scale
        case .scale: return scale * x
        }
    }

    /// out[r, j] = f(x[r, j]) for j in 0..<dim. `out` may alias `x`.
    public static func unary(kind: UnaryKind, x: CPURows, out: CPURows, rows: Int, dim: Int, scale: Float) {
        for r in 0..<rows {
            let xr = x.row(r)
            let o = out.row(r)
            for j in 0..<dim {
                o[j] = unaryValue(kind, kind == .fill ? 0 : xr[j], scale: scale)
            }
        }
    }
}
