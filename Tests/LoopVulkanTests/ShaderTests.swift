import Foundation
import LoopCore
@testable import LoopVulkan
import Testing

@Suite struct ShaderTests {
    /// Every shader file is embedded in the binary, and every .comp compiles with shaderc for
    /// each weight dtype.
    @Test func everyShaderCompiles() throws {
        let names = ShaderSource.names.filter { $0.hasSuffix(".comp") }
        #expect(names.count >= 14)
        for n in names {
            for w in ["0", "1", "2"] {
                let words = try ShaderCompiler.shared.spirv(n, defines: ["W_DTYPE": w, "B_DTYPE": w])
                #expect(words.first == 0x0723_0203, "\(n) did not produce SPIR-V")
            }
        }
    }

    /// Each shader in Shaders/ is the GPU side of a plan op and has a CPU twin (the op list).
    @Test func everyShaderIsAnOp() throws {
        let opShaders: Set<String> = ["embedding", "rmsnorm", "layernorm", "matvec", "matmul", "rope", "kv_write", "attention",
                                      "silu_mul", "unary", "binary", "copy", "argmax", "softmax", "kv_copy"]
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

/// Tensors larger than maxStorageBufferRange (128 MiB on lavapipe) are bound in chunks.
@Suite(.serialized, .enabled(if: GPU.available))
struct LargeTensorTests {
    @Test func linearAndEmbeddingOverTheBindingLimit() throws {
        let ctx = GPU.context!
        let inF = 2048
        let outF = Int(ctx.info.maxStorageBufferRange) / (inF * 2) + 700   // bf16 rows past the limit
        var rng = SeededRandom(seed: 99)
        let w = WeightStore(checkpoint: nil)
        addWeight(w, "big", .bf16, [outF, inF], rng.floats(outF * inF, 0.05))
        let layout = BackendLayout(activations: ["x": inF, "y": outF, "e": inF], kvSlots: 0, kvWidth: 1, maxContext: 8, maxRows: 2)
        let cpu = try CPUBackend(layout: layout, weights: w)
        let gpu = try VulkanBackend(context: ctx, layout: layout, weights: w)
        let x = rng.floats(2 * inF)
        let tokens: [Int32] = [Int32(outF - 3), 11]
        let ops: [Op] = [.linear(x: ActRef("x"), weight: WeightRef("big"), bias: nil, out: ActRef("y"), inFeatures: inF, outFeatures: outF, accumulate: false),
                         .embed(table: WeightRef("big"), vocab: outF, dim: inF, out: ActRef("e"), scale: 1)]
        for b in [cpu as PlanBackend, gpu] {
            try b.write("x", values: x)
            try b.run(ops, section: SectionKey("big", rows: 2), tokens: tokens, pos0: 0)
        }
        #expect(nmse(try gpu.read("y", rows: 2), try cpu.read("y", rows: 2)) <= 5e-4)
        #expect(try gpu.read("e", rows: 2) == (try cpu.read("e", rows: 2)))
        GPU.expectNoValidationMessages()
    }
}
