import Foundation

// Block-quantized weight formats: GGUF's Q8_0, Q4_0, Q4_K and Q6_K (ggml's layouts, byte for
// byte) and MLX's affine quantization (repacked per group, see `MLXAffine`). Each has the CPU
// dequantization (the twin of Shaders/block_formats.glsl) and a quantizer (ggml's reference
// algorithms for the GGUF formats; `loopvk quantize` and the parity tests use them). Rows are
// whole blocks: a weight [out, in] of a block format stores each row as in / elementsPerBlock
// blocks, so rows (and row-stacked tensors) are byte ranges.

/// ggml's block layouts. All multi-byte fields are little-endian.
public enum GGMLBlocks {
    public static let qk = 32        // elements per Q8_0 / Q4_0 block
    public static let qkK = 256      // elements per K-quant super-block

    @inline(__always) static func half(_ raw: UnsafeRawBufferPointer, _ at: Int) -> Float {
        Float16Bits.f16ToFloat(raw.loadUnaligned(fromByteOffset: at, as: UInt16.self))
    }
    @inline(__always) static func putHalf(_ v: Float, _ out: inout [UInt8], _ at: Int) {
        let h = Float16Bits.floatToF16(v)
        out[at] = UInt8(h & 0xFF); out[at + 1] = UInt8(h >> 8)
    }
    /// Float of the f16 a value is stored as (what the dequantizer will see).
    @inline(__always) static func viaHalf(_ v: Float) -> Float { Float16Bits.f16ToFloat(Float16Bits.floatToF16(v)) }
    /// ggml's nearest_int: round half to even.
    @inline(__always) static func nearest(_ v: Float) -> Int { Int(v.rounded(.toNearestOrEven)) }

    // MARK: Q8_0 — { f16 d; int8 qs[32] } = 34 bytes; x = d * q.

    public static func dequantizeQ8_0(_ raw: UnsafeRawBufferPointer, _ n: Int) -> [Float] {
        var y = [Float](repeating: 0, count: n)
        for b in 0..<(n / qk) {
            let o = b * 34, d = half(raw, o)
            for j in 0..<qk { y[b * qk + j] = d * Float(Int8(bitPattern: raw[o + 2 + j])) }
        }
        return y
    }

    public static func quantizeQ8_0(_ x: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: x.count / qk * 34)
        for b in 0..<(x.count / qk) {
            let v = x[(b * qk)..<((b + 1) * qk)]
            let amax = v.reduce(Float(0)) { max($0, abs($1)) }
            let d = amax / 127, id: Float = d != 0 ? 1 / d : 0
            putHalf(d, &out, b * 34)
            for (j, e) in v.enumerated() {
                out[b * 34 + 2 + j] = UInt8(bitPattern: Int8(clamping: Int((e * id).rounded(.toNearestOrAwayFromZero))))
            }
        }
        return out
    }

    // MARK: Q4_0 — { f16 d; u8 qs[16] } = 18 bytes; x[j] = d * ((qs[j] & 15) - 8), x[j+16] = d * ((qs[j] >> 4) - 8).

    public static func dequantizeQ4_0(_ raw: UnsafeRawBufferPointer, _ n: Int) -> [Float] {
        var y = [Float](repeating: 0, count: n)
        for b in 0..<(n / qk) {
            let o = b * 18, d = half(raw, o)
            for j in 0..<16 {
                let q = raw[o + 2 + j]
                y[b * qk + j] = d * Float(Int(q & 0x0F) - 8)
                y[b * qk + j + 16] = d * Float(Int(q >> 4) - 8)
            }
        }
        return y
    }

    public static func quantizeQ4_0(_ x: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: x.count / qk * 18)
        for b in 0..<(x.count / qk) {
            let v = Array(x[(b * qk)..<((b + 1) * qk)])
            var amax: Float = 0, mx: Float = 0
            for e in v where abs(e) > amax { amax = abs(e); mx = e }
            let d = mx / -8, id: Float = d != 0 ? 1 / d : 0
            putHalf(d, &out, b * 18)
            for j in 0..<16 {
                // (int8_t)(x * id + 8.5f): truncation toward zero, then at most 15.
                let q0 = min(15, Int(Int8(clamping: Int(v[j] * id + 8.5))))
                let q1 = min(15, Int(Int8(clamping: Int(v[j + 16] * id + 8.5))))
                out[b * 18 + 2 + j] = UInt8(max(0, q0)) | (UInt8(max(0, q1)) << 4)
            }
        }
        return out
    }

    // MARK: Q4_K — { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] } = 144 bytes per 256 elements:
    // 8 sub-blocks of 32 with 6-bit scale sc and min m: x = d * sc * q - dmin * m.

    /// Sub-block j's 6-bit (scale, min) from the 12 packed bytes (ggml's get_scale_min_k4).
    @inline(__always) static func scaleMinK4(_ j: Int, _ q: (Int) -> UInt8) -> (UInt8, UInt8) {
        if j < 4 { return (q(j) & 63, q(j + 4) & 63) }
        return ((q(j + 4) & 0x0F) | ((q(j - 4) >> 6) << 4), (q(j + 4) >> 4) | ((q(j) >> 6) << 4))
    }

    public static func dequantizeQ4_K(_ raw: UnsafeRawBufferPointer, _ n: Int) -> [Float] {
        var y = [Float](repeating: 0, count: n)
        for b in 0..<(n / qkK) {
            let o = b * 144, d = half(raw, o), dmin = half(raw, o + 2)
            for j in 0..<8 {
                let (sc, m) = scaleMinK4(j) { raw[o + 4 + $0] }
                let qBase = o + 16 + (j / 2) * 32, high = j % 2 == 1
                for l in 0..<32 {
                    let q = high ? raw[qBase + l] >> 4 : raw[qBase + l] & 0x0F
                    y[b * qkK + j * 32 + l] = d * Float(sc) * Float(q) - dmin * Float(m)
                }
            }
        }
        return y
    }

    /// ggml's make_qkx2_quants: levels 0...nmax with a scale and a (non-positive) offset, by a
    /// weighted least-squares search over `nstep` + 1 candidate scales. Returns (scale, -min).
    static func makeQKX2(_ x: ArraySlice<Float>, nmax: Int, weights w: [Float], levels L: inout [UInt8],
                         rmin: Float, rdelta: Float, nstep: Int) -> (scale: Float, negMin: Float) {
        let x = Array(x), n = x.count
        var mn = x[0], mx = x[0], sumW = w[0], sumX = w[0] * x[0]
        for i in 1..<n { mn = min(mn, x[i]); mx = max(mx, x[i]); sumW += w[i]; sumX += w[i] * x[i] }
        if mn > 0 { mn = 0 }
        if mx == mn { for i in 0..<n { L[i] = 0 }; return (0, -mn) }
        var iscale = Float(nmax) / (mx - mn), scale = 1 / iscale
        var bestError: Float = 0
        for i in 0..<n {
            let l = max(0, min(nmax, nearest(iscale * (x[i] - mn))))
            L[i] = UInt8(l)
            let diff = scale * Float(l) + mn - x[i]
            bestError += w[i] * diff * diff
        }
        var aux = [UInt8](repeating: 0, count: n)
        for step in 0...nstep {
            iscale = (rmin + rdelta * Float(step) + Float(nmax)) / (mx - mn)
            var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
            for i in 0..<n {
                let l = max(0, min(nmax, nearest(iscale * (x[i] - mn))))
                aux[i] = UInt8(l)
                sumL += w[i] * Float(l); sumL2 += w[i] * Float(l * l); sumXL += w[i] * Float(l) * x[i]
            }
            let D = sumW * sumL2 - sumL * sumL
            guard D > 0 else { continue }
            var thisScale = (sumW * sumXL - sumX * sumL) / D
            var thisMin = (sumL2 * sumX - sumL * sumXL) / D
            if thisMin > 0 { thisMin = 0; thisScale = sumXL / sumL2 }
            var err: Float = 0
            for i in 0..<n { let diff = thisScale * Float(aux[i]) + thisMin - x[i]; err += w[i] * diff * diff }
            if err < bestError { L = aux; bestError = err; scale = thisScale; mn = thisMin }
        }
        return (scale, -mn)
    }

    public static func quantizeQ4_K(_ x: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: x.count / qkK * 144)
        for b in 0..<(x.count / qkK) {
            let base = b * qkK, o = b * 144
            var scales = [Float](repeating: 0, count: 8), mins = [Float](repeating: 0, count: 8)
            var L = [UInt8](repeating: 0, count: qkK)
            var maxScale: Float = 0, maxMin: Float = 0
            for j in 0..<8 {
                let sub = x[(base + 32 * j)..<(base + 32 * j + 32)]
                let avX = (sub.reduce(Float(0)) { $0 + $1 * $1 } / 32).squareRoot()
                let w = sub.map { avX + abs($0) }
                var lv = [UInt8](repeating: 0, count: 32)
                let (s, m) = makeQKX2(sub, nmax: 15, weights: w, levels: &lv, rmin: -1, rdelta: 0.1, nstep: 20)
                scales[j] = s; mins[j] = m
                maxScale = max(maxScale, s); maxMin = max(maxMin, m)
            }
            let invScale: Float = maxScale > 0 ? 63 / maxScale : 0, invMin: Float = maxMin > 0 ? 63 / maxMin : 0
            var packed = [UInt8](repeating: 0, count: 12)
            for j in 0..<8 {
                let ls = UInt8(min(63, nearest(invScale * scales[j]))), lm = UInt8(min(63, nearest(invMin * mins[j])))
                if j < 4 {
                    packed[j] = ls; packed[j + 4] = lm
                } else {
                    packed[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4)
                    packed[j - 4] |= (ls >> 4) << 6
                    packed[j] |= (lm >> 4) << 6
                }
            }
            putHalf(maxScale / 63, &out, o)
            putHalf(maxMin / 63, &out, o + 2)
            let d = viaHalf(maxScale / 63), dmin = viaHalf(maxMin / 63)
            for j in 0..<8 {
                let (sc, m) = scaleMinK4(j) { packed[$0] }
                let dj = d * Float(sc)
                guard dj != 0 else { continue }
                let dm = dmin * Float(m)
                for i in 0..<32 { L[32 * j + i] = UInt8(max(0, min(15, nearest((x[base + 32 * j + i] + dm) / dj)))) }
            }
            for k in 0..<12 { out[o + 4 + k] = packed[k] }
            for j in stride(from: 0, to: qkK, by: 64) {
                for l in 0..<32 { out[o + 16 + j / 2 + l] = L[j + l] | (L[j + l + 32] << 4) }
            }
        }
        return out
    }

    // MARK: Q6_K — { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d } = 210 bytes per 256 elements:
    // 6-bit q (low 4 bits in ql, high 2 in qh) - 32, 16 sub-blocks of 16 with an 8-bit scale.

    public static func dequantizeQ6_K(_ raw: UnsafeRawBufferPointer, _ n: Int) -> [Float] {
        var y = [Float](repeating: 0, count: n)
        for b in 0..<(n / qkK) {
            let o = b * 210, d = half(raw, o + 208)
            for half in 0..<2 {
                let ql = o + 64 * half, qh = o + 128 + 32 * half, sc = o + 192 + 8 * half, yb = b * qkK + 128 * half
                for l in 0..<32 {
                    let s = l / 16
                    let h = raw[qh + l]
                    let q1 = Int((raw[ql + l] & 0x0F) | ((h & 3) << 4)) - 32
                    let q2 = Int((raw[ql + l + 32] & 0x0F) | (((h >> 2) & 3) << 4)) - 32
                    let q3 = Int((raw[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32
                    let q4 = Int((raw[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32
                    func scale(_ k: Int) -> Float { Float(Int8(bitPattern: raw[sc + k])) }
                    y[yb + l] = d * scale(s) * Float(q1)
                    y[yb + l + 32] = d * scale(s + 2) * Float(q2)
                    y[yb + l + 64] = d * scale(s + 4) * Float(q3)
                    y[yb + l + 96] = d * scale(s + 6) * Float(q4)
                }
            }
        }
        return y
    }

    /// ggml's make_qx_quants with rmse_type 1: symmetric levels -nmax ..< nmax, a scale chosen
    /// among 19 candidates by squared-error-weighted fit. Levels are stored + nmax.
    static func makeQX(_ x: ArraySlice<Float>, nmax: Int, levels L: inout [UInt8]) -> Float {
        let x = Array(x)
        var amax: Float = 0, mx: Float = 0
        for v in x where abs(v) > amax { amax = abs(v); mx = v }
        if amax < 1e-15 { for i in 0..<x.count { L[i] = 0 }; return 0 }
        func fit(_ iscale: Float) -> (sumLX: Float, sumL2: Float, levels: [Int]) {
            var sumLX: Float = 0, sumL2: Float = 0, lv = [Int](repeating: 0, count: x.count)
            for (i, v) in x.enumerated() {
                let l = max(-nmax, min(nmax - 1, nearest(iscale * v)))
                lv[i] = l
                let w = v * v
                sumLX += w * v * Float(l); sumL2 += w * Float(l * l)
            }
            return (sumLX, sumL2, lv)
        }
        var (sumLX, sumL2, lv) = fit(-Float(nmax) / mx)
        for i in 0..<x.count { L[i] = UInt8(lv[i] + nmax) }
        var scale: Float = sumL2 != 0 ? sumLX / sumL2 : 0
        var best = scale * sumLX
        for step in -9...9 where step != 0 {
            (sumLX, sumL2, lv) = fit(-(Float(nmax) + 0.1 * Float(step)) / mx)
            if sumL2 > 0 && sumLX * sumLX > best * sumL2 {
                for i in 0..<x.count { L[i] = UInt8(lv[i] + nmax) }
                scale = sumLX / sumL2; best = scale * sumLX
            }
        }
        return scale
    }

    public static func quantizeQ6_K(_ x: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: x.count / qkK * 210)
        for b in 0..<(x.count / qkK) {
            let base = b * qkK, o = b * 210
            var L = [UInt8](repeating: 0, count: qkK), scales = [Float](repeating: 0, count: 16)
            var maxScale: Float = 0, maxAbs: Float = 0
            for ib in 0..<16 {
                var lv = [UInt8](repeating: 0, count: 16)
                let s = makeQX(x[(base + 16 * ib)..<(base + 16 * ib + 16)], nmax: 32, levels: &lv)
                scales[ib] = s
                if abs(s) > maxAbs { maxAbs = abs(s); maxScale = s }
            }
            guard maxAbs != 0 else { continue }     // an all-zero block: every byte 0
            let iscale = -128 / maxScale
            putHalf(1 / iscale, &out, o + 208)
            let d = viaHalf(1 / iscale)
            var sc = [Int8](repeating: 0, count: 16)
            for ib in 0..<16 { sc[ib] = Int8(clamping: min(127, nearest(iscale * scales[ib]))); out[o + 192 + ib] = UInt8(bitPattern: sc[ib]) }
            for j in 0..<16 {
                let dj = d * Float(sc[j])
                guard dj != 0 else { continue }
                for i in 0..<16 { L[16 * j + i] = UInt8(max(-32, min(31, nearest(x[base + 16 * j + i] / dj))) + 32) }
            }
            for half in 0..<2 {
                let j = 128 * half, ql = o + 64 * half, qh = o + 128 + 32 * half
                for l in 0..<32 {
                    let q1 = L[j + l] & 0x0F, q2 = L[j + l + 32] & 0x0F, q3 = L[j + l + 64] & 0x0F, q4 = L[j + l + 96] & 0x0F
                    out[ql + l] = q1 | (q3 << 4)
                    out[ql + l + 32] = q2 | (q4 << 4)
                    out[qh + l] = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6)
                }
            }
        }
        return out
    }
}
