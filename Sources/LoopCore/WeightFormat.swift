import Foundation

/// How a weight tensor's elements are stored, as data: elements per block, bytes per block,
/// the CPU dequantization (the twin of the shader's load functions), and the shaders'
/// `W_DTYPE` code, whose load functions live in one include, `Shaders/weight_formats.glsl`.
/// Adding a format means one entry here (plus its `DType` case where a checkpoint names it)
/// and its branch of that include; sizes, uploads and the CPU reference follow from the entry.
///
/// A block format such as GGUF's Q4_0 (32 elements in 18 bytes: an f16 scale and 16 bytes of
/// 4-bit values) is one entry with `elementsPerBlock` 32 and `bytesPerBlock` 18.
public struct WeightFormat: Sendable, CustomStringConvertible {
    public let name: String
    public let elementsPerBlock: Int
    public let bytesPerBlock: Int
    /// `W_DTYPE` / `B_DTYPE` in the shaders.
    public let shaderCode: Int
    /// Further defines the shaders read this format with (MLX's bits, group size, scale type).
    public let shaderDefines: [String: String]
    /// `count` elements (a whole number of blocks) from their stored bytes.
    public let dequantize: @Sendable (_ raw: UnsafeRawBufferPointer, _ count: Int) -> [Float]
    /// Stored bytes of `values` (a whole number of blocks): rounding to nearest for the float
    /// formats, the reference quantizer for the block formats.
    public let quantize: @Sendable (_ values: [Float]) -> [UInt8]
    /// A block format's bytes that the texel path's interleaved copy stores apart from the rest
    /// of the block (its 16-bit scales: Q8_0's and Q4_0's d, Q6_K's d, MLX's scale and bias),
    /// so that the rest is whole 16-byte texels (see `interleavedMainBytes`). Empty for the
    /// float formats and for Q4_K (144 bytes, nine texels as stored).
    public let sideBytes: Range<Int>

    public init(name: String, elementsPerBlock: Int, bytesPerBlock: Int, shaderCode: Int, shaderDefines: [String: String] = [:],
                sideBytes: Range<Int> = 0..<0,
                dequantize: @escaping @Sendable (_ raw: UnsafeRawBufferPointer, _ count: Int) -> [Float],
                quantize: @escaping @Sendable (_ values: [Float]) -> [UInt8]) {
        self.name = name; self.elementsPerBlock = elementsPerBlock; self.bytesPerBlock = bytesPerBlock
        self.shaderCode = shaderCode; self.shaderDefines = shaderDefines; self.sideBytes = sideBytes
        self.dequantize = dequantize; self.quantize = quantize
    }

    /// Bytes of a block that the interleaved copy keeps as 16-byte texels (all but `sideBytes`,
    /// which sit at the block's start or end, so the rest is one run), or nil when they are not
    /// whole texels (the format has no interleaved copy).
    public var interleavedMainBytes: Int? {
        let m = bytesPerBlock - sideBytes.count
        let atAnEnd = sideBytes.isEmpty || sideBytes.lowerBound == 0 || sideBytes.upperBound == bytesPerBlock
        return isBlock && atAnEnd && m > 0 && m % 16 == 0 && (sideBytes.isEmpty || 16 % sideBytes.count == 0) ? m : nil
    }

    /// Blocks whose side bytes share one 16-byte texel per row in the interleaved copy.
    public var interleavedSideBlocks: Int { sideBytes.isEmpty ? 1 : 16 / sideBytes.count }

    /// Bytes of one group of `rows` rows of `inF` elements in the interleaved copy (see
    /// DeviceBuffers.interleavedWeight): the main texels, then the side texels (16 / S blocks'
    /// side bytes per row and texel, the last texel of a row padded). Nil without a copy.
    public func interleavedGroupBytes(rows: Int, inF: Int) -> Int? {
        guard let m = interleavedMainBytes, inF % elementsPerBlock == 0 else { return nil }
        let nb = inF / elementsPerBlock, sb = interleavedSideBlocks
        return rows * nb * m + (sideBytes.isEmpty ? 0 : (nb + sb - 1) / sb * rows * 16)
    }

    /// Several elements per block (a quantized format): read by the block kernels.
    public var isBlock: Bool { elementsPerBlock > 1 }

    public var description: String { name }

    /// Bytes that `elements` elements take (whole blocks), or nil when they are not whole blocks.
    public func bytes(elements: Int) -> Int? {
        guard elements >= 0, elements % elementsPerBlock == 0 else { return nil }
        let (b, overflow) = (elements / elementsPerBlock).multipliedReportingOverflow(by: bytesPerBlock)
        return overflow ? nil : b
    }

    /// Bytes of one element where blocks hold one element (the 32- and 16-bit floats).
    public var elementBytes: Int? { elementsPerBlock == 1 ? bytesPerBlock : nil }

    static func bytes<T>(_ v: [T]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }

    public static let f32 = WeightFormat(name: "f32", elementsPerBlock: 1, bytesPerBlock: 4, shaderCode: 0, dequantize: { raw, n in
        (0..<n).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
    }, quantize: { bytes($0) })
    public static let f16 = WeightFormat(name: "f16", elementsPerBlock: 1, bytesPerBlock: 2, shaderCode: 1, dequantize: { raw, n in
        (0..<n).map { Float16Bits.f16ToFloat(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
    }, quantize: { bytes($0.map(Float16Bits.floatToF16)) })
    public static let bf16 = WeightFormat(name: "bf16", elementsPerBlock: 1, bytesPerBlock: 2, shaderCode: 2, dequantize: { raw, n in
        (0..<n).map { Float16Bits.bf16ToFloat(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
    }, quantize: { bytes($0.map(Float16Bits.floatToBF16)) })

    // GGUF's block formats, ggml's layouts (BlockFormats.swift; shaders: block_formats.glsl).
    public static let q8_0 = WeightFormat(name: "q8_0", elementsPerBlock: 32, bytesPerBlock: 34, shaderCode: 10, sideBytes: 0..<2,
                                          dequantize: GGMLBlocks.dequantizeQ8_0, quantize: GGMLBlocks.quantizeQ8_0)
    public static let q4_0 = WeightFormat(name: "q4_0", elementsPerBlock: 32, bytesPerBlock: 18, shaderCode: 11, sideBytes: 0..<2,
                                          dequantize: GGMLBlocks.dequantizeQ4_0, quantize: GGMLBlocks.quantizeQ4_0)
    public static let q4_k = WeightFormat(name: "q4_k", elementsPerBlock: 256, bytesPerBlock: 144, shaderCode: 12,
                                          dequantize: GGMLBlocks.dequantizeQ4_K, quantize: GGMLBlocks.quantizeQ4_K)
    public static let q6_k = WeightFormat(name: "q6_k", elementsPerBlock: 256, bytesPerBlock: 210, shaderCode: 13, sideBytes: 208..<210,
                                          dequantize: GGMLBlocks.dequantizeQ6_K, quantize: GGMLBlocks.quantizeQ6_K)

    /// MLX's affine quantization as the engine stores it: per group of `groupSize` elements its
    /// scale and bias (16-bit, MLX's dtype) then the packed values as MLX packs them (see MLXAffine).
    public static func mlx(bits: Int, groupSize: Int, scales: DType) -> WeightFormat {
        MLXAffine.format(bits: bits, groupSize: groupSize, scales: scales)
    }

    /// The formats the engine reads weights in.
    public static let all: [WeightFormat] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_k, .q6_k] + MLXAffine.formats.map(\.format)
}

extension DType {
    /// The weight format of a float dtype; nil for the integer dtypes (not weights).
    public var weightFormat: WeightFormat? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .q4_k: return .q4_k
        case .q6_k: return .q6_k
        case .i32, .i64, .u32: return nil
        default: return MLXAffine.formats.first { $0.dtype == self }?.format
        }
    }
}
