import Foundation

extension CPUOps {
    /// out[r, :] = exp(x[r, :] - max) / sum(exp(x[r, :] - max)) over `dim` values.
    public static func softmax(x: CPURows, out: CPURows, rows: Int, dim: Int) {
        for r in 0..<rows {
            let xr = x.row(r)
            let o = out.row(r)
            var m = -Float.infinity
            for j in 0..<dim { m = max(m, xr[j]) }
            var s: Float = 0
            for j in 0..<dim { s += Foundation.exp(xr[j] - m) }
            for j in 0..<dim { o[j] = Foundation.exp(xr[j] - m) / s }
        }
    }
}
