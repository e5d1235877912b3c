extension CPUOps {
    /// Embedding lookup: `out[r, j] = table[ids[r], j] * scale` for j in 0..<dim.
    /// `table` is [vocab, dim] row-major; ids must already be checked against vocab.
    public static func embedding(ids: [Int32], table: UnsafeBufferPointer<Float>, dim: Int, scale: Float, out: CPURows) {
        for (r, id) in ids.enumerated() {
            let src = Int(id) * dim
            let o = out.row(r)
            for j in 0..<dim {
                o[j] = table[src + j] * scale
            }
        }
    }
}
