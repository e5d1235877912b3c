import Foundation
import LoopCore
@testable import LoopVulkan
import Testing

@Suite struct ShaderTests {
    /// Every shader file is embedded in the binary, and every .comp compiles with shaderc for
    /// each weight format it serves (and on both read paths where it has a texel path): the
    /// element formats everywhere, the block formats (GGUF, MLX) in linear_block and embedding.
    @Test func everyShaderCompiles() throws {
        let names = ShaderSource.names.filter { $0.hasSuffix(".comp") }
        #expect(names.count >= 14)
        let elementFormats = WeightFormat.all.filter { !$0.isBlock }
        let blockFormats = WeightFormat.all.filter(\.isBlock)
        #expect(blockFormats.count >= 4)
        for n in names {
            let text = try ShaderSource.text(n)
            // (READ_TEXEL, WG_REDUCE) for shaders with a texel read path.
            let paths = text.contains("READ_TEXEL") ? [("0", "0"), ("1", "0"), ("1", "1")] : [("0", "0")]
            let formats: [WeightFormat] = n == "linear_block.comp" ? blockFormats
                : text.contains("W_IS_BLOCK") ? elementFormats + blockFormats : elementFormats
            for f in formats {
                for (t, r) in paths {
                    var defines = ["W_DTYPE": "\(f.shaderCode)", "B_DTYPE": f.isBlock ? "0" : "\(f.shaderCode)", "READ_TEXEL": t, "WG_REDUCE": r]
                    defines.merge(f.shaderDefines) { a, _ in a }
                    let words = try ShaderCompiler.shared.spirv(n, defines: defines)
                    #expect(words.first == 0x0723_0203, "\(n) (\(f.name), READ_TEXEL=\(t), WG_REDUCE=\(r)) did not produce SPIR-V")
                }
            }
        }
        #expect(try ShaderSource.text("matvec.comp").contains("READ_TEXEL"))
    }

    /// Each shader in Shaders/ is the GPU side of a plan op and has a CPU twin (the op list);
    /// attention_combine is attention's second kernel when it is split (flash-decoding); advance
    /// moves a greedy chain (several tokens per submission) on to its next token; linear_block
    /// is the linear op's kernel for block-quantized weights (GGUF, MLX).
    @Test func everyShaderIsAnOp() throws {
        let opShaders: Set<String> = ["embedding", "rmsnorm", "layernorm", "matvec", "matmul", "rope", "kv_write", "attention", "advance",
                                      "attention_combine", "silu_mul", "unary", "binary", "copy", "argmax", "softmax", "kv_copy", "exit_decide",
                                      "linear_block"]
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
        let gpu = try VulkanBackend(context: ctx, layout: layout, weights: w, kernels: GPU.kernels(read: path))
        if let viewBytes { gpu.config.texelViewBytes = viewBytes }
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

/// The kernel configuration: defaults per device kind, the override syntax, presets, errors.
@Suite struct KernelConfigTests {
    static func device(_ kind: DeviceTraits.Kind, texel: Bool = true, subgroup: Int = 8, storage16: Bool = true) -> DeviceTraits {
        DeviceTraits(kind: kind, subgroupSize: subgroup, subgroupShuffle: true, uniformTexelBuffers: texel, conditionalSections: true,
                     storage16Bit: storage16, threads: 2)
    }

    @Test func defaultsFollowTheDevice() throws {
        let cpu = KernelConfig.defaults(for: Self.device(.cpu))
        #expect(cpu.read == .texel && cpu.reduce == .subgroup && cpu.splits == 1 && cpu.mapMemory && cpu.lanes == 8)
        #expect(KernelConfig.defaults(for: Self.device(.cpu, texel: false)).read == .storage)
        #expect(KernelConfig.defaults(for: Self.device(.cpu, subgroup: 1)).reduce == .shared)
        let gpu = KernelConfig.defaults(for: Self.device(.gpu, subgroup: 32))
        #expect(gpu.read == .storage && gpu.reduce == .shared && gpu.splits == nil && gpu.lanes == 32 && gpu.kv == .f16)
        // The f16 KV cache needs 16-bit storage: without it the default is f32 and asking for f16 is refused.
        let old = Self.device(.gpu, storage16: false)
        #expect(KernelConfig.defaults(for: old).kv == .f32)
        let f16 = try KernelConfig.defaults(for: old).applying("kv=f16", device: old)
        #expect { try f16.validate(for: old, deviceName: "gpu0") } throws: { "\($0)".contains("kv=f16") && "\($0)".contains("16-bit storage") }
    }

    @Test func overridesAndPresets() throws {
        let d = Self.device(.cpu)
        let base = KernelConfig.defaults(for: d)
        let c = try base.applying("read=storage, splits=8,fusion=off,chain=1,prune=0,matmul-tile=16x4,kv=f32", device: d)
        #expect(c.read == .storage && c.splits == 8 && !c.fusion && c.chain == 1 && !c.prune && c.matmulTile == (16, 4))
        let g = try base.applying("gpu", device: d)
        #expect(g.read == .storage && g.reduce == .shared && g.splits == nil && !g.mapMemory)
        // Later items win; a preset resets what came before it.
        #expect(try base.applying("gpu,read=texel", device: d).read == .texel)
        #expect(try base.applying("read=storage,default", device: d).read == .texel)
        // The description parses back to the same configuration.
        for config in [base, g, c] { #expect(try base.applying(config.description, device: d) == config) }
        // The environment comes first, the explicit override after it.
        let env = [LoopEnvironment.kernelsKey: "gpu,splits=4"]
        let r = try KernelConfig.resolve(for: d, deviceName: "t", override: "splits=2", environment: env)
        #expect(r.read == .storage && r.splits == 2)
        #expect(try KernelConfig.resolve(for: d, deviceName: "t", environment: [:]) == base)
        #expect(try base.applying("gpu,splits=8,splits=auto,compute-units=132", device: d).splits == nil)
    }

    /// The flash-decoding split count (KernelConfig.attentionSplits): enough workgroups for
    /// `workgroupsPerComputeUnit` per compute unit, at least 1, at most one split per
    /// `minKeysPerSplit` keys of the context; an explicit `splits=N` wins.
    @Test func splitCountFollowsTheDeviceAndTheContext() throws {
        let d = Self.device(.gpu, subgroup: 32)
        var c = try KernelConfig.defaults(for: d).applying("compute-units=132", device: d)
        #expect(c.splits == nil && KernelConfig.minKeysPerSplit == 64 && KernelConfig.workgroupsPerComputeUnit == 4)
        #expect(c.attentionSplits(heads: 16, context: 4096) == 33)       // ceil(528 / 16)
        #expect(c.attentionSplits(heads: 16, context: 1000) == 16)       // ceil(1000 / 64)
        #expect(c.attentionSplits(heads: 600, context: 4096) == 1)       // enough heads already
        #expect(c.attentionSplits(heads: 32, context: 1) == 1)           // a 1-position cache
        #expect(c.attentionSplits(heads: 1, context: 1 << 20) == 528)
        c.computeUnits = 4096
        #expect(c.attentionSplits(heads: 1, context: 1 << 30) == KernelConfig.maxSplits)
        c.splits = 5
        #expect(c.attentionSplits(heads: 600, context: 1) == 5)          // explicit: as given
        #expect(c.description.contains("splits=5,compute-units=4096"))
        #expect(KernelConfig.defaults(for: d).description.contains("splits=auto,compute-units=16"))
    }

    @Test func errorsNameTheValidChoices() throws {
        let d = Self.device(.cpu)
        let base = KernelConfig.defaults(for: d)
        func message(_ spec: String) -> String {
            do { _ = try base.applying(spec, device: d); return "" } catch { return "\(error)" }
        }
        #expect(message("read=ssbo").contains("storage|texel"))
        #expect(message("bogus=1").contains("unknown key \"bogus\"") && message("bogus=1").contains("splits="))
        #expect(message("laptop").contains("unknown preset") && message("laptop").contains("gpu"))
        #expect(message("splits=0").contains("1..1024"))
        #expect(message("chain=65").contains("1..64"))
        #expect(message("fusion=maybe").contains("on|off"))
        #expect(throws: LoopError.self) { try KernelConfig.resolve(for: Self.device(.gpu, texel: false), deviceName: "t", override: "read=texel", environment: [:]) }
        #expect(throws: LoopError.self) { try KernelConfig.resolve(for: Self.device(.cpu, subgroup: 1), deviceName: "t", override: "reduce=subgroup", environment: [:]) }
        #expect(throws: LoopError.self) { try KernelConfig.resolve(for: d, deviceName: "t", environment: [LoopEnvironment.kernelsKey: "read=nope"]) }
    }
}
