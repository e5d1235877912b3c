import Foundation
import LoopCore
import LoopTestSupport
import Testing

/// The block formats' CPU twins against llama.cpp's own Python reference (gguf-py, see
/// tools/block_format_vectors.py: its Q8_0/Q4_0 quantization of seeded values, and its
/// dequantization of those and of random valid Q4_K/Q6_K super-blocks), and the quantizers'
/// round-trip error; MLX's affine groups against their definition.
struct BlockFormatTests {
    static func vectors(_ file: String) throws -> Data {
        try Data(contentsOf: fixtureURL("block-formats").appendingPathComponent(file))
    }
    static func floats(_ file: String) throws -> [Float] {
        try vectors(file).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
    static func dequantize(_ format: WeightFormat, _ bytes: Data) -> [Float] {
        let n = bytes.count / format.bytesPerBlock * format.elementsPerBlock
        return bytes.withUnsafeBytes { format.dequantize($0, n) }
    }

    @Test(arguments: ["q8_0", "q4_0", "q4_k", "q6_k"])
    func dequantizationMatchesGGUFPy(name: String) throws {
        let format = try #require(WeightFormat.all.first { $0.name == name })
        let ours = Self.dequantize(format, try Self.vectors("\(name).bin"))
        let theirs = try Self.floats("\(name).deq.f32")
        #expect(ours.count == theirs.count && ours.count == 1024)
        var worst: Float = ours.count == theirs.count ? 0 : .infinity
        for (a, b) in zip(ours, theirs) { worst = max(worst, abs(a - b) / max(abs(b), 1e-6)) }
        #expect(worst <= 1e-6, "\(name): relative difference \(worst) from gguf-py's dequantization")
    }

    /// ggml's reference quantizers (gguf-py implements Q8_0 and Q4_0 bit for bit): the same bytes.
    @Test(arguments: ["q8_0", "q4_0"])
    func quantizationMatchesGGUFPyByteForByte(name: String) throws {
        let format = try #require(WeightFormat.all.first { $0.name == name })
        let x = try Self.floats("x.f32")
        let ours = format.quantize(x), theirs = [UInt8](try Self.vectors("\(name).bin"))
        var differing = 0
        for (a, b) in zip(ours, theirs) where a != b { differing += 1 }
        #expect(ours.count == theirs.count && differing == 0, "\(name): \(differing) of \(theirs.count) bytes differ from gguf-py's")
    }

    /// Quantize then dequantize: the error each format's bits allow (NMSE bounds from the
    /// formats' resolution on normal values: 8 bits ~ 1e-4, 6 bits ~ 1e-3, 4 bits ~ 1e-2).
    @Test(arguments: [("q8_0", 1e-4), ("q4_0", 1.5e-2), ("q4_k", 1e-2), ("q6_k", 1.5e-3),
                      ("mlx4g64-bf16", 1.5e-2), ("mlx4g32-f16", 1e-2), ("mlx8g128-bf16", 1e-4), ("mlx8g32-f16", 1e-4)])
    func quantizeRoundTrip(name: String, bound: Double) throws {
        let format = try #require(WeightFormat.all.first { $0.name == name })
        let x = try Self.floats("x.f32")
        let y = Self.dequantize(format, Data(format.quantize(x)))
        let e = Parity.nmse(y, x)
        let ok = y.count == x.count && e <= bound
        #expect(ok, "\(name): round-trip NMSE \(e) > \(bound)")
        #expect(e > 0, "\(name): a lossless round trip means the quantizer did not quantize")
        // The all-zero block (row 1, elements 32..<64) stays zero where it is a whole block or
        // a K-quant sub-block with its own scale and min (an affine MLX group of 64 or 128 spans
        // other values too, and its bias is their minimum).
        guard !(name.hasPrefix("mlx") && format.elementsPerBlock > 32) else { return }
        let zeros = y[(512 + 32)..<(512 + 64)].allSatisfy { v in v == 0 }
        #expect(zeros, "\(name): zeros did not stay zeros")
    }

    /// An MLX group by hand: w = scale * q + bias, q packed from the low bits of each word.
    @Test func mlxGroupsByDefinition() throws {
        let format = WeightFormat.mlx(bits: 4, groupSize: 32, scales: .f16)
        var block = [UInt8](repeating: 0, count: 20)
        let s = Float16Bits.floatToF16(0.25), b = Float16Bits.floatToF16(-1.5)
        block[0] = UInt8(s & 0xFF); block[1] = UInt8(s >> 8); block[2] = UInt8(b & 0xFF); block[3] = UInt8(b >> 8)
        let q = (0..<32).map { ($0 * 7 + 3) % 16 }
        for (i, v) in q.enumerated() { block[4 + i / 2] |= UInt8(v << (4 * (i % 2))) }
        let y = Self.dequantize(format, Data(block))
        let expected: [Float] = q.map { v -> Float in 0.25 * Float(v) - 1.5 }
        #expect(y == expected)

        // 8 bits, bf16 scales: element i is byte i of the group.
        let f8 = WeightFormat.mlx(bits: 8, groupSize: 32, scales: .bf16)
        var b8 = [UInt8](repeating: 0, count: 36)
        let s8 = Float16Bits.floatToBF16(0.5), o8 = Float16Bits.floatToBF16(2)
        b8[0] = UInt8(s8 & 0xFF); b8[1] = UInt8(s8 >> 8); b8[2] = UInt8(o8 & 0xFF); b8[3] = UInt8(o8 >> 8)
        for i in 0..<32 { b8[4 + i] = UInt8(i * 8) }
        let expected8: [Float] = (0..<32).map { i -> Float in 0.5 * Float(i * 8) + 2 }
        #expect(Self.dequantize(f8, Data(b8)) == expected8)
    }

    /// MLX's three tensors (packed words, scales, biases) -> the engine's groups -> back.
    @Test func mlxRepackRoundTrip() throws {
        let format = WeightFormat.mlx(bits: 4, groupSize: 64, scales: .bf16)
        let x = try Self.floats("x.f32")
        let blocks = format.quantize(x)
        let groups = x.count / 64
        let (w, s, b) = MLXAffine.unpack(blocks, groups: groups, bits: 4, groupSize: 64)
        #expect(w.count == x.count / 2)
        #expect(s.count == groups * 2 && b.count == groups * 2)
        let repacked = w.withUnsafeBytes { wr in s.withUnsafeBytes { sr in b.withUnsafeBytes { br in
            MLXAffine.repack(weight: wr, scales: sr, biases: br, rows: 2, inF: 512, bits: 4, groupSize: 64)
        } } }
        #expect([UInt8](repacked) == blocks)
    }

    @Test func blockSizes() {
        #expect(WeightFormat.q8_0.bytes(elements: 64) == 68)
        #expect(WeightFormat.q4_0.bytes(elements: 64) == 36)
        #expect(WeightFormat.q4_k.bytes(elements: 512) == 288)
        #expect(WeightFormat.q6_k.bytes(elements: 512) == 420)
        #expect(WeightFormat.q4_k.bytes(elements: 300) == nil)
        #expect(WeightFormat.mlx(bits: 4, groupSize: 64, scales: .bf16).bytes(elements: 128) == 72)
        for f in WeightFormat.all { #expect(DType.allCases.contains { $0.weightFormat?.name == f.name }, "\(f.name) has no DType") }
    }
}
