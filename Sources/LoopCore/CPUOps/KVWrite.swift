extension CPUOps {
    /// Copies `rows` rows of `width` values from `src` into a KV cache (row stride `width`)
    /// at cache rows pos0 ..< pos0 + rows.
    /// `type` .f16: values are rounded to half precision (to nearest even), as kv_write.comp's
    /// KV_F16 stores them; the cache itself stays Float.
    public static func kvWrite(src: CPURows, rows: Int, width: Int, cache: UnsafeMutablePointer<Float>, pos0: Int, type: KVCacheType = .f32) {
        for r in 0..<rows {
            let s = src.row(r)
            let d = cache + (pos0 + r) * width
            switch type {
            case .f32: for j in 0..<width { d[j] = s[j] }
            case .f16: for j in 0..<width { d[j] = Float(Float16(s[j])) }
            }
        }
    }
}
