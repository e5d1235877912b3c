extension CPUOps {
    /// out[r, 0] = the first index of the maximum of x[r, 0..<dim], as a float. NaN never
    /// wins (an all-NaN row gives 0). Greedy decoding in the references takes the first index.
    public static func argmax(x: CPURows, out: CPURows, rows: Int, dim: Int) {
        for r in 0..<rows {
            let xr = x.row(r)
            var best = -1
            var bestValue = -Float.infinity
            for j in 0..<dim where !xr[j].isNaN && (best < 0 || xr[j] > bestValue) {
                best = j
                bestValue = xr[j]
            }
            out[r, 0] = Float(max(best, 0))
        }
    }
}
