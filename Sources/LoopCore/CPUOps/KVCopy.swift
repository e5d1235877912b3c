extension CPUOps {
    /// Copies cache rows pos0 ..< pos0 + rows (each `width` values) from one slot to another.
    public static func kvCopy(from: UnsafeMutablePointer<Float>, to: UnsafeMutablePointer<Float>, rows: Int, width: Int, pos0: Int) {
        for r in 0..<rows {
            let base = (pos0 + r) * width
            for c in 0..<width { to[base + c] = from[base + c] }
        }
    }
}
