import Foundation

/// MLX's affine quantization (mlx-lm's quantized checkpoints): a weight [out, in] is stored as
/// `weight` U32 [out, in * bits / 32] (element i of a row at bits i * bits ..< (i + 1) * bits of
/// the little-endian words), `scales` and `biases` [out, in / groupSize] in the model's 16-bit
/// dtype; w = scale * q + bias per group. The engine repacks the three tensors into one block
/// format, per group: the scale, the bias (2 bytes each, as stored), then the group's packed
/// bytes — the same bytes, so a weight's size is unchanged, and each group is whole 32-bit
/// words (4 + groupSize * bits / 8 bytes) for the shaders.
public enum MLXAffine {
    public struct Variant: Sendable {
        public let dtype: DType, bits: Int, groupSize: Int, scales: DType
        public var format: WeightFormat { MLXAffine.format(bits: bits, groupSize: groupSize, scales: scales) }
    }

    public static let formats: [Variant] = [
        Variant(dtype: .mlx4g32bf16, bits: 4, groupSize: 32, scales: .bf16), Variant(dtype: .mlx4g64bf16, bits: 4, groupSize: 64, scales: .bf16),
        Variant(dtype: .mlx4g128bf16, bits: 4, groupSize: 128, scales: .bf16), Variant(dtype: .mlx8g32bf16, bits: 8, groupSize: 32, scales: .bf16),
        Variant(dtype: .mlx8g64bf16, bits: 8, groupSize: 64, scales: .bf16), Variant(dtype: .mlx8g128bf16, bits: 8, groupSize: 128, scales: .bf16),
        Variant(dtype: .mlx4g32f16, bits: 4, groupSize: 32, scales: .f16), Variant(dtype: .mlx4g64f16, bits: 4, groupSize: 64, scales: .f16),
        Variant(dtype: .mlx4g128f16, bits: 4, groupSize: 128, scales: .f16), Variant(dtype: .mlx8g32f16, bits: 8, groupSize: 32, scales: .f16),
        Variant(dtype: .mlx8g64f16, bits: 8, groupSize: 64, scales: .f16), Variant(dtype: .mlx8g128f16, bits: 8, groupSize: 128, scales: .f16),
    ]

    /// The dtype of the repacked format, nil for an unsupported combination.
    public static func dtype(bits: Int, groupSize: Int, scales: DType) -> DType? {
        formats.first { $0.bits == bits && $0.groupSize == groupSize && $0.scales == scales }?.dtype
    }

    static func scaleValue(_ bits: UInt16, _ dtype: DType) -> Float {
        dtype == .bf16 ? Float16Bits.bf16ToFloat(bits) : Float16Bits.f16ToFloat(bits)
    }
    static func scaleBits(_ v: Float, _ dtype: DType) -> UInt16 {
        dtype == .bf16 ? Float16Bits.floatToBF16(v) : Float16Bits.floatToF16(v)
    }

    public static func format(bits: Int, groupSize gs: Int, scales: DType) -> WeightFormat {
        let name = "mlx\(bits)g\(gs)-\(scales.rawValue.lowercased())"
        let packed = gs * bits / 8, block = 4 + packed, mask = (1 << bits) - 1
        return WeightFormat(
            name: name, elementsPerBlock: gs, bytesPerBlock: block, shaderCode: 20,
            shaderDefines: ["MLX_BITS": "\(bits)", "MLX_GS": "\(gs)", "MLX_SCALE_BF16": scales == .bf16 ? "1" : "0"], sideBytes: 0..<4,
            dequantize: { raw, n in
                var y = [Float](repeating: 0, count: n)
                for g in 0..<(n / gs) {
                    let o = g * block
                    let s = scaleValue(raw.loadUnaligned(fromByteOffset: o, as: UInt16.self), scales)
                    let b = scaleValue(raw.loadUnaligned(fromByteOffset: o + 2, as: UInt16.self), scales)
                    for i in 0..<gs {
                        let bit = i * bits
                        let q = (Int(raw[o + 4 + bit / 8]) >> (bit % 8)) & mask
                        y[g * gs + i] = s * Float(q) + b
                    }
                }
                return y
            },
            quantize: { x in
                // mlx.core.quantize's rule: the scale spans [min, max] in 2^bits - 1 steps, the
                // bias is the group's minimum (both as stored, 16-bit).
                var out = [UInt8](repeating: 0, count: x.count / gs * block)
                for g in 0..<(x.count / gs) {
                    let v = x[(g * gs)..<((g + 1) * gs)]
                    let lo = v.min()!, hi = v.max()!
                    let sBits = scaleBits(max((hi - lo) / Float(mask), 1e-7), scales), bBits = scaleBits(lo, scales)
                    let s = scaleValue(sBits, scales), b = scaleValue(bBits, scales)
                    let o = g * block
                    out[o] = UInt8(sBits & 0xFF); out[o + 1] = UInt8(sBits >> 8)
                    out[o + 2] = UInt8(bBits & 0xFF); out[o + 3] = UInt8(bBits >> 8)
                    for (i, e) in v.enumerated() {
                        let q = max(0, min(mask, Int(((e - b) / s).rounded(.toNearestOrEven))))
                        let bit = i * bits
                        out[o + 4 + bit / 8] |= UInt8(q << (bit % 8))
                    }
                }
                return out
            })
    }

    /// One weight's three MLX tensors repacked into the block format (rows x inF elements).
    public static func repack(weight: UnsafeRawBufferPointer, scales: UnsafeRawBufferPointer, biases: UnsafeRawBufferPointer,
                              rows: Int, inF: Int, bits: Int, groupSize gs: Int) -> Data {
        let groups = rows * inF / gs, packed = gs * bits / 8, block = 4 + packed
        var out = Data(count: groups * block)
        out.withUnsafeMutableBytes { dst in
            let d = dst.baseAddress!
            for g in 0..<groups {
                let o = d + g * block
                o.storeBytes(of: scales.loadUnaligned(fromByteOffset: g * 2, as: UInt16.self), as: UInt16.self)
                (o + 2).storeBytes(of: biases.loadUnaligned(fromByteOffset: g * 2, as: UInt16.self), as: UInt16.self)
                (o + 4).copyMemory(from: weight.baseAddress! + g * packed, byteCount: packed)
            }
        }
        return out
    }

    /// Splits a repacked weight back into MLX's three tensors (weight words, scales, biases):
    /// for writing MLX checkpoints in tests and tools.
    public static func unpack(_ blocks: [UInt8], groups: Int, bits: Int, groupSize gs: Int) -> (weight: [UInt8], scales: [UInt8], biases: [UInt8]) {
        let packed = gs * bits / 8, block = 4 + packed
        var w = [UInt8](), s = [UInt8](), b = [UInt8]()
        w.reserveCapacity(groups * packed)
        for g in 0..<groups {
            let o = g * block
            s += blocks[o..<(o + 2)]; b += blocks[(o + 2)..<(o + 4)]; w += blocks[(o + 4)..<(o + block)]
        }
        return (w, s, b)
    }
}
