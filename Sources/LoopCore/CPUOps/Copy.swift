extension CPUOps {
    /// out[r, 0..<width] = src[r, 0..<width] (column windows: concatenation and splitting).
    /// Overlapping windows of one matrix are copied as if through a temporary row.
    public static func copy(src: CPURows, out: CPURows, rows: Int, width: Int) {
        for r in 0..<rows {
            out.row(r).update(from: src.row(r), count: width)
        }
    }
}
