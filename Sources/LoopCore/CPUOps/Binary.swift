extension CPUOps {
    @inline(__always) public static func binaryValue(_ kind: BinaryKind, _ a: Float, _ b: Float) -> Float {
        switch kind {
        case .add: return a + b
        case .sub: return a - b
        case .mul: return a * b
        }
    }

    /// out[r, j] = a[r, j] (op) b[r, j]. `out` may alias an input.
    public static func binary(kind: BinaryKind, a: CPURows, b: CPURows, out: CPURows, rows: Int, dim: Int) {
        for r in 0..<rows {
            let ar = a.row(r)
            let br = b.row(r)
            let o = out.row(r)
            for j in 0..<dim { o[j] = binaryValue(kind, ar[j], br[j]) }
        }
    }

    /// out[r, j] = a[r, j] (op) w[j]: a weight row of length dim broadcast over rows.
    public static func binary(kind: BinaryKind, a: CPURows, row w: UnsafeBufferPointer<Float>, out: CPURows, rows: Int, dim: Int) {
        for r in 0..<rows {
            let ar = a.row(r)
            let o = out.row(r)
            for j in 0..<dim { o[j] = binaryValue(kind, ar[j], w[j]) }
        }
    }
}
