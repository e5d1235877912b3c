extension CPUOps {
    /// Copies the cache rows `cacheRows` (each `width` values; the current rows' physical rows,
    /// `StepRows.kvRow`) from one slot to another.
    public static func kvCopy(from: UnsafeMutablePointer<Float>, to: UnsafeMutablePointer<Float>, cacheRows: [Int], width: Int) {
        for row in cacheRows {
            let base = row * width
            for c in 0..<width { to[base + c] = from[base + c] }
        }
    }
}
