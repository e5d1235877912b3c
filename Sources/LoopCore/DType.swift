/// Element types a checkpoint may store. Compute is always fp32; 16-bit weights stay 16-bit in
/// memory and are widened where they are read.
public enum DType: String, Sendable, Codable, CaseIterable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"
    case i32 = "I32"
    /// MLX's packed quantized weights (8 or 4 values per word); read with their scales and
    /// biases into one of the `mlx*` block formats (see MLXAffine).
    case u32 = "U32"
    // Block formats (see BlockFormats.swift and WeightFormat): GGUF's, and MLX's affine
    // quantization as the engine repacks it (bits, group size, the scales' and biases' dtype).
    case q8_0 = "Q8_0"
    case q4_0 = "Q4_0"
    case q4_k = "Q4_K"
    case q6_k = "Q6_K"
    case mlx4g32bf16 = "MLX4G32_BF16", mlx4g64bf16 = "MLX4G64_BF16", mlx4g128bf16 = "MLX4G128_BF16"
    case mlx8g32bf16 = "MLX8G32_BF16", mlx8g64bf16 = "MLX8G64_BF16", mlx8g128bf16 = "MLX8G128_BF16"
    case mlx4g32f16 = "MLX4G32_F16", mlx4g64f16 = "MLX4G64_F16", mlx4g128f16 = "MLX4G128_F16"
    case mlx8g32f16 = "MLX8G32_F16", mlx8g64f16 = "MLX8G64_F16", mlx8g128f16 = "MLX8G128_F16"

    /// Bytes of one element of an element type; for a block format, bytes per element rounded
    /// up (sizes of block formats come from `weightFormat.bytes(elements:)`).
    public var byteSize: Int {
        switch self {
        case .f32, .i32, .u32: return 4
        case .f16, .bf16: return 2
        case .i64: return 8
        default: return 1
        }
    }

    public var isFloat: Bool { weightFormat != nil }
    /// A format of several elements per block (quantized).
    public var isBlock: Bool { (weightFormat?.elementsPerBlock ?? 1) > 1 }
    /// The dtypes a safetensors header may name.
    public var isSafeTensorsType: Bool { [.f32, .f16, .bf16, .i64, .i32, .u32].contains(self) }
}

/// Bit-exact conversions between fp32 and the 16-bit float formats.
public enum Float16Bits {
    /// bf16 -> fp32: the 16 bits are the top half of an fp32.
    @inline(__always) public static func bf16ToFloat(_ b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }

    /// fp32 -> bf16 with round-to-nearest-even (NaN stays NaN), as PyTorch rounds.
    @inline(__always) public static func floatToBF16(_ f: Float) -> UInt16 {
        let u = f.bitPattern
        if f.isNaN { return UInt16(truncatingIfNeeded: (u >> 16) | 0x40) }
        let rounding = ((u >> 16) & 1) &+ 0x7FFF
        return UInt16(truncatingIfNeeded: (u &+ rounding) >> 16)
    }

    /// Rounds an fp32 value to the nearest bf16 value.
    @inline(__always) public static func roundToBF16(_ f: Float) -> Float {
        bf16ToFloat(floatToBF16(f))
    }

    /// IEEE half -> fp32.
    @inline(__always) public static func f16ToFloat(_ h: UInt16) -> Float {
        Float(Float16(bitPattern: h))
    }

    /// fp32 -> IEEE half, round-to-nearest-even.
    @inline(__always) public static func floatToF16(_ f: Float) -> UInt16 {
        Float16(f).bitPattern
    }
}
