/// Element types a checkpoint may store. Compute is always fp32; 16-bit weights stay 16-bit in
/// memory and are widened where they are read.
public enum DType: String, Sendable, Codable, CaseIterable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"
    case i32 = "I32"

    public var byteSize: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .i64: return 8
        }
    }

    public var isFloat: Bool { weightFormat != nil }
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
