import Foundation
import LoopCore
@testable import LoopEngine
import LoopTestSupport
import Testing

/// MLX-quantized folders written by `loopvk quantize --type mlx4|mlx8` and read back: mlx-lm's
/// layout (U32 words, scales, biases, "quantization" in config.json), the same dequantized
/// weights as the CPU twin of the format, the GPU against the CPU on the block kernels, and
/// the logits' distance from the unquantized folder.
@Suite(.serialized)
struct MLXTests {
    static let work = scratchFolder("loopvk-mlx-tests")

    static func mlx(_ fixture: String, bits: Int, groupSize: Int) throws -> URL {
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let out = work.appendingPathComponent("\(fixture)-mlx\(bits)g\(groupSize)")
        if !FileManager.default.fileExists(atPath: out.path) {
            _ = try Quantize.runMLX(model: fixtureURL(fixture), bits: bits, groupSize: groupSize, out: out)
        }
        return out
    }

    /// The files are mlx-lm's layout, and each weight reads back as the format's dequantization
    /// of the source, within half a quantization step of every source value.
    @Test(arguments: [(4, 32), (8, 64)])
    func writtenFolderHasMLXLayout(bits: Int, groupSize: Int) throws {
        let dir = try Self.mlx("ouro-tiny-fp32", bits: bits, groupSize: groupSize)
        let config = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as? [String: Any])
        let q = try #require(config["quantization"] as? [String: Any])
        #expect(q["bits"] as? Int == bits && q["group_size"] as? Int == groupSize)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("generation_config.json").path))
        let raw = try SafeTensorsFile(path: dir.appendingPathComponent("model.safetensors").path)
        let name = "model.layers.0.self_attn.q_proj.weight"
        let w = try #require(raw.tensors[name]), s = try #require(raw.tensors["model.layers.0.self_attn.q_proj.scales"])
        let source = try Checkpoint(directory: fixtureURL("ouro-tiny-fp32"))
        let shape = try #require(source.info(name)).shape
        #expect(w.dtype == .u32 && w.shape == [shape[0], shape[1] * bits / 32])
        #expect(s.dtype == .bf16 && s.shape == [shape[0], shape[1] / groupSize])
        #expect(raw.tensors["model.layers.0.input_layernorm.weight"]?.dtype == .f32)

        let ck = try Checkpoint(directory: dir)
        let info = try #require(ck.info(name))
        #expect(info.dtype == MLXAffine.dtype(bits: bits, groupSize: groupSize, scales: .bf16))
        let read = try ck.floats(name), original = try source.floats(name)
        let format = MLXAffine.format(bits: bits, groupSize: groupSize, scales: .bf16)
        let expected = format.quantize(original).withUnsafeBytes { format.dequantize($0, original.count) }
        #expect(read == expected)
        for g in 0..<(original.count / groupSize) {
            let v = original[(g * groupSize)..<((g + 1) * groupSize)]
            let step = (v.max()! - v.min()!) / Float((1 << bits) - 1)
            // Half a step, plus the bf16 rounding of the scale and bias (2^-8 relative).
            let tolerance = step / 2 + (abs(v.min()!) + step * Float((1 << bits) - 1)) / 128
            let worst = v.indices.map { abs(read[$0] - original[$0]) }.max()!
            #expect(worst <= tolerance, "group \(g): error \(worst) > \(tolerance)")
        }
    }

    /// MLX folders of each family on the GPU's block kernels against the CPU twins, op by op.
    @Test(.enabled(if: backendChoices.count > 1),
          arguments: [("ouro-tiny-fp32", 4, 32), ("ouro-tiny-bf16", 8, 32), ("loopus-tiny-qwen3-fp32", 4, 64), ("loopus-tiny-qwen3-fp32", 8, 128)])
    func mlxFolderRunsTheSameOnGPUAndCPU(fixture: String, bits: Int, groupSize: Int) throws {
        let dir = try Self.mlx(fixture, bits: bits, groupSize: groupSize)
        let gpu = try Model(directory: dir, backend: .vulkan(device: nil), maxContext: 32, maxRows: 16, kernels: "kv=f32")
        let cpu = try Model(directory: dir, backend: .cpu, maxContext: 32, maxRows: 16)
        #expect(cpu.plan.allOps.contains { op in op.weights.contains { (try? cpu.weights.info($0.name).dtype.isBlock) == true } })
        let r = try Comparison.run(gpu: gpu, cpu: cpu, tokens: [1, 7, 30, 2, 11])
        #expect(r.passed, "\(fixture) mlx\(bits)g\(groupSize): \(r.ops.filter { !$0.passed })")
    }

    /// The quantized folder's weights and logits per pass against the unquantized folder's (CPU,
    /// same plan). Weights: rounding a group of 32 to 2^bits levels leaves an error of about
    /// step / sqrt(12) with step = range / (2^bits - 1), a range of about 4 sigma for these
    /// Gaussian weights: weight NMSE ~ (4 / 15)^2 / 12 = 6e-3 at 4 bits, 2e-5 at 8 bits (bounds
    /// 1e-2 and 5e-5). Logits: that error compounds over 4 passes of 2 layers of a random
    /// network; bounds 1e-3 (8 bits) and 0.2 (4 bits), measured in the README's MLX table.
    @Test(arguments: [(8, 32, 5e-5, 1e-3), (4, 32, 1e-2, 0.2)])
    func mlxWeightsAndLogitsStayNearTheFolder(bits: Int, groupSize: Int, weightBound: Double, logitsBound: Double) throws {
        let dir = try Self.mlx("ouro-tiny-fp32", bits: bits, groupSize: groupSize)
        let name = "model.layers.1.mlp.down_proj.weight"
        let w = try Checkpoint(directory: dir).floats(name), w0 = try Checkpoint(directory: fixtureURL("ouro-tiny-fp32")).floats(name)
        var num = 0.0, den = 0.0
        for i in w0.indices { num += Double(w[i] - w0[i]) * Double(w[i] - w0[i]); den += Double(w0[i]) * Double(w0[i]) }
        let weightNMSE = num / den
        #expect(weightNMSE <= weightBound && weightNMSE > weightBound / 20, "mlx\(bits)g\(groupSize) \(name): weight NMSE \(weightNMSE)")
        let quantized = try Model(directory: dir, backend: .cpu, maxContext: 32, maxRows: 16)
        let folder = try Model(directory: fixtureURL("ouro-tiny-fp32"), backend: .cpu, maxContext: 32, maxRows: 16)
        let r = try Comparison.run(gpu: quantized, cpu: folder, tokens: [1, 7, 30, 2, 11])
        #expect(r.logits.count == folder.plan.passCount)
        for l in r.logits {
            print("mlx\(bits)g\(groupSize) \(l.section): logits NMSE \(l.nmse)")
            #expect(l.nmse <= logitsBound && l.nmse > 0, "mlx\(bits)g\(groupSize) \(l.section): logits NMSE \(l.nmse)")
        }
    }

    /// `compare --against`'s figures: a model against itself agrees exactly; an 8-bit MLX
    /// folder against its source moves the logits a little (KL > 0) on every pass.
    @Test func agreementFigures() throws {
        let folder = try Model(directory: fixtureURL("ouro-tiny-fp32"), backend: .cpu, maxContext: 32, maxRows: 16)
        let tokens = [1, 7, 30, 2, 11, 5, 9, 100]
        for p in try Comparison.agreement(model: folder, reference: folder, tokens: tokens) {
            #expect(p.meanKL == 0 && p.maxKL == 0 && p.top1 == 1 && p.relRMS == 0, "\(p)")
        }
        let q = try Model(directory: Self.mlx("ouro-tiny-fp32", bits: 8, groupSize: 32), backend: .cpu, maxContext: 32, maxRows: 16)
        let passes = try Comparison.agreement(model: q, reference: folder, tokens: tokens)
        #expect(passes.count == folder.plan.passCount)
        for p in passes {
            #expect(p.meanKL > 0 && p.meanKL <= p.maxKL && p.maxKL < 0.01, "\(p)")
            #expect(p.relRMS > 0 && p.relRMS < 0.05, "\(p)")
        }
    }

    /// Bad requests name the problem and leave nothing behind.
    @Test func badRequestsAreClearErrors() throws {
        try FileManager.default.createDirectory(at: Self.work, withIntermediateDirectories: true)
        let out = Self.work.appendingPathComponent("bad-gs")
        #expect(throws: LoopError.self) { try Quantize.runMLX(model: fixtureURL("ouro-tiny-fp32"), bits: 4, groupSize: 48, out: out) }
        #expect(!FileManager.default.fileExists(atPath: out.path))
        let full = Self.work.appendingPathComponent("not-empty")
        try FileManager.default.createDirectory(at: full, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: full.appendingPathComponent("keep.txt"))
        do {
            _ = try Quantize.runMLX(model: fixtureURL("ouro-tiny-fp32"), bits: 4, groupSize: 32, out: full)
            Issue.record("no error for a non-empty output folder")
        } catch {
            #expect("\(error)".contains("not an empty folder"), "\(error)")
        }
        #expect(try String(contentsOf: full.appendingPathComponent("keep.txt"), encoding: .utf8) == "x")
        let twice = try Self.mlx("ouro-tiny-fp32", bits: 4, groupSize: 32)
        #expect(throws: LoopError.self) { try Quantize.runMLX(model: twice, bits: 4, groupSize: 32, out: Self.work.appendingPathComponent("twice")) }
    }
}
