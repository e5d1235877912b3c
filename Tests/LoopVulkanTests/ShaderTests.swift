import Foundation
import LoopCore
@testable import LoopVulkan
import Testing

@Suite struct ShaderTests {
    /// Every shader file is embedded in the binary, and every .comp compiles with shaderc for
    /// each weight dtype (and on both read paths where it has a texel path).
    @Test func everyShaderCompiles() throws {
        let names = ShaderSource.names.filter { $0.hasSuffix(".comp") }
        #expect(names.count >= 14)
        for n in names {
            // (READ_TEXEL, WG_REDUCE) for shaders with a texel read path.
            let paths = try ShaderSource.text(n).contains("READ_TEXEL") ? [("0", "0"), ("1", "0"), ("1", "1")] : [("0", "0")]
            for w in ["0", "1", "2"] {
                for (t, r) in paths {
                    let words = try ShaderCompiler.shared.spirv(n, defines: ["W_DTYPE": w, "B_DTYPE": w, "READ_TEXEL": t, "WG_REDUCE": r])
                    #expect(words.first == 0x0723_0203, "\(n) (READ_TEXEL=\(t), WG_REDUCE=\(r)) did not produce SPIR-V")
                }
            }
        }
        #expect(try ShaderSource.text("matvec.comp").contains("READ_TEXEL"))
    }

    /// Each shader in Shaders/ is the GPU side of a plan op and has a CPU twin (the op list);
    /// attention_combine is attention's second kernel when it is split (flash-decoding); advance
    /// moves a greedy chain (several tokens per submission) on to its next token.
    @Test func everyShaderIsAnOp() throws {
        let opShaders: Set<String> = ["embedding", "rmsnorm", "layernorm", "matvec", "matmul", "rope", "kv_write", "attention", "advance",
                                      "attention_combine", "silu_mul", "unary", "binary", "copy", "argmax", "softmax", "kv_copy", "exit_decide"]
        let files = Set(ShaderSource.names.filter { $0.hasSuffix(".comp") }.map { String($0.dropLast(5)) })
        #expect(files == opShaders)
    }

    @Test func brokenShaderNamesTheFile() throws {
        do {
            _ = try ShaderCompiler.shared.compile(source: "#version 450\nvoid main() { undefined_symbol = 1; }\n", name: "broken.comp")
            Issue.record("a broken shader compiled")
        } catch {
            #expect("\(error)".contains("broken.comp"))
            #expect("\(error)".contains("undefined_symbol"))
        }
    }
}

/// Tensors larger than maxStorageBufferRange (128 MiB on lavapipe) are bound in chunks; on the
/// texel path W is split into views of at most maxTexelBufferElements texels (2 GiB on lavapipe,
/// so the test also runs with views capped at maxStorageBufferRange).
@Suite(.serialized, .enabled(if: GPU.available))
struct LargeTensorTests {
    static let cases: [(ReadPath, Int?)] = GPU.readPaths.flatMap { path in
        path == .texel ? [(path, nil), (path, Int(GPU.context!.info.maxStorageBufferRange))] : [(path, nil)]
    }

    @Test(arguments: cases)
    func linearAndEmbeddingOverTheBindingLimit(path: ReadPath, viewBytes: Int?) throws {
        let ctx = GPU.context!
        let inF = 2048
        let outF = Int(ctx.info.maxStorageBufferRange) / (inF * 2) + 700   // bf16 rows past the limit
        var rng = SeededRandom(seed: 99)
        let w = WeightStore(checkpoint: nil)
        addWeight(w, "big", .bf16, [outF, inF], rng.floats(outF * inF, 0.05))
        let layout = BackendLayout(activations: ["x": inF, "y": outF, "e": inF, "z": outF], kvSlots: 0, kvWidth: 1, maxContext: 8, maxRows: 2)
        let gpu = try VulkanBackend(context: ctx, layout: layout, weights: w, readPath: path)
        if let viewBytes { gpu.kernels.maxTexelBytes = viewBytes }
        let x = rng.floats(2 * inF)
        let tokens: [Int32] = [Int32(outF - 3), 11]
        let ops: [Op] = [.linear(x: ActRef("x"), weight: WeightRef("big"), bias: nil, out: ActRef("y"), inFeatures: inF, outFeatures: outF, accumulate: false),
                         .embed(table: WeightRef("big"), vocab: outF, dim: inF, out: ActRef("e"), scale: 1)]
        // One row: the decode GEMV (matvec.comp) on the chosen read path.
        let decode: [Op] = [.linear(x: ActRef("x"), weight: WeightRef("big"), bias: nil, out: ActRef("z"), inFeatures: inF, outFeatures: outF, accumulate: false)]
        try gpu.write("x", values: x)
        try gpu.run(ops, section: SectionKey("big", rows: 2), tokens: tokens, pos0: 0)
        try gpu.run(decode, section: SectionKey("decode", rows: 1), tokens: [0], pos0: 0)
        // The CPU reference is the same for every case: computed once.
        let ref = try Self.reference.get(w: w, layout: layout, x: x, tokens: tokens, ops: ops, decode: decode)
        #expect(nmse(try gpu.read("y", rows: 2), ref.y) <= 5e-4)
        #expect(try gpu.read("e", rows: 2) == ref.e)
        #expect(nmse(try gpu.read("z", rows: 1), ref.z) <= 5e-4)
        if path == .texel {
            let rowsPerView = ((viewBytes ?? Int(ctx.info.maxTexelBufferElements) * 16) - 32) / (inF * 2)
            #expect(gpu.recordedCounts(SectionKey("decode", rows: 1))?.dispatches == (outF + rowsPerView - 1) / rowsPerView)
        }
        GPU.expectNoValidationMessages()
    }

    /// The CPU backend's outputs for the test above, computed by the first case that asks.
    final class Reference: @unchecked Sendable {
        private let lock = NSLock()
        private var value: (y: [Float], e: [Float], z: [Float])?

        func get(w: WeightStore, layout: BackendLayout, x: [Float], tokens: [Int32], ops: [Op], decode: [Op]) throws -> (y: [Float], e: [Float], z: [Float]) {
            lock.lock(); defer { lock.unlock() }
            if let value { return value }
            let cpu = try CPUBackend(layout: layout, weights: w)
            try cpu.write("x", values: x)
            try cpu.run(ops, section: SectionKey("big", rows: 2), tokens: tokens, pos0: 0)
            try cpu.run(decode, section: SectionKey("decode", rows: 1), tokens: [0], pos0: 0)
            let v = (try cpu.read("y", rows: 2), try cpu.read("e", rows: 2), try cpu.read("z", rows: 1))
            value = v
            return v
        }
    }
    static let reference = Reference()
}

/// Which read path the decode GEMV takes: per device kind, forced by argument or environment.
@Suite struct ReadPathTests {
    static func device(_ kind: DeviceInfo.Kind, texel: Bool = true) -> DeviceInfo {
        DeviceInfo(index: 0, name: "test device", kind: kind, apiVersion: "1.3.0", driverVersion: "0", driverName: "test", heaps: [],
                   subgroupSize: 32, subgroupShuffle: true, maxStorageBufferRange: 1 << 27, minStorageBufferOffsetAlignment: 16, maxComputeSharedMemory: 32768,
                   storageBuffer16Bit: true, shaderFloat16: true, timestampPeriod: 1, maxTexelBufferElements: 1 << 27,
                   minTexelBufferOffsetAlignment: 16, uniformTexelBuffers: texel)
    }

    @Test func choice() throws {
        #expect(try ReadPath.resolve(nil, for: Self.device(.cpu), environment: [:]) == .texel)
        #expect(try ReadPath.resolve(nil, for: Self.device(.cpu, texel: false), environment: [:]) == .storage)
        #expect(try ReadPath.resolve(nil, for: Self.device(.discrete), environment: [:]) == .storage)
        #expect(try ReadPath.resolve(nil, for: Self.device(.integrated), environment: [:]) == .storage)
        #expect(try ReadPath.resolve(nil, for: Self.device(.discrete), environment: ["LOOPVK_READ_PATH": "texel"]) == .texel)
        #expect(try ReadPath.resolve(nil, for: Self.device(.cpu), environment: ["LOOPVK_READ_PATH": "Storage"]) == .storage)
        #expect(try ReadPath.resolve(.storage, for: Self.device(.cpu), environment: ["LOOPVK_READ_PATH": "texel"]) == .storage)
        #expect(throws: VulkanError.self) { try ReadPath.resolve(nil, for: Self.device(.cpu), environment: ["LOOPVK_READ_PATH": "ssbo"]) }
        #expect(throws: VulkanError.self) { try ReadPath.resolve(.texel, for: Self.device(.discrete, texel: false), environment: [:]) }
    }
}
