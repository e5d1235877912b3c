extension CPUOps {
    /// Copies `rows` rows of `width` values from `src` into a KV cache (row stride `width`)
    /// at cache rows pos0 ..< pos0 + rows.
    public static func kvWrite(src: CPURows, rows: Int, width: Int, cache: UnsafeMutablePointer<Float>, pos0: Int) {
        for r in 0..<rows {
            let s = src.row(r)
            let d = cache + (pos0 + r) * width
            for j in 0..<width { d[j] = s[j] }
        }
    }
}
