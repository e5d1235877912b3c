extension CPUOps {
    /// Copies rows of `width` values from `src` into a KV cache (row stride `width`): row r
    /// to cache row `cacheRows[r]` (its position's physical row, `StepRows.kvRow`).
    /// `type` .f16: values are rounded to half precision (to nearest even), as kv_write.comp's
    /// KV_F16 stores them; the cache itself stays Float.
    public static func kvWrite(src: CPURows, cacheRows: [Int], width: Int, cache: UnsafeMutablePointer<Float>, type: KVCacheType = .f32) {
        for (r, row) in cacheRows.enumerated() {
            let s = src.row(r)
            let d = cache + row * width
            switch type {
            case .f32: for j in 0..<width { d[j] = s[j] }
            case .f16: for j in 0..<width { d[j] = Float(Float16(s[j])) }
            }
        }
    }
}
