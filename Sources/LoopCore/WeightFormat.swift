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
    /// `count` elements (a whole number of blocks) from their stored bytes.
    public let dequantize: @Sendable (_ raw: UnsafeRawBufferPointer, _ count: Int) -> [Float]

    public init(name: String, elementsPerBlock: Int, bytesPerBlock: Int, shaderCode: Int,
                dequantize: @escaping @Sendable (_ raw: UnsafeRawBufferPointer, _ count: Int) -> [Float]) {
        self.name = name; self.elementsPerBlock = elementsPerBlock; self.bytesPerBlock = bytesPerBlock
        self.shaderCode = shaderCode; self.dequantize = dequantize
    }

    public var description: String { name }

    /// Bytes that `elements` elements take (whole blocks), or nil when they are not whole blocks.
    public func bytes(elements: Int) -> Int? {
        guard elements >= 0, elements % elementsPerBlock == 0 else { return nil }
        let (b, overflow) = (elements / elementsPerBlock).multipliedReportingOverflow(by: bytesPerBlock)
        return overflow ? nil : b
    }

    /// Bytes of one element where blocks hold one element (the 32- and 16-bit floats).
    public var elementBytes: Int? { elementsPerBlock == 1 ? bytesPerBlock : nil }

    public static let f32 = WeightFormat(name: "f32", elementsPerBlock: 1, bytesPerBlock: 4, shaderCode: 0) { raw, n in
        (0..<n).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
    }
    public static let f16 = WeightFormat(name: "f16", elementsPerBlock: 1, bytesPerBlock: 2, shaderCode: 1) { raw, n in
        (0..<n).map { Float16Bits.f16ToFloat(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
    }
    public static let bf16 = WeightFormat(name: "bf16", elementsPerBlock: 1, bytesPerBlock: 2, shaderCode: 2) { raw, n in
        (0..<n).map { Float16Bits.bf16ToFloat(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
    }

    /// The formats the engine reads weights in.
    public static let all: [WeightFormat] = [.f32, .f16, .bf16]
}

extension DType {
    /// The weight format of a float dtype; nil for the integer dtypes (not weights).
    public var weightFormat: WeightFormat? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .i32, .i64: return nil
        }
    }
}
