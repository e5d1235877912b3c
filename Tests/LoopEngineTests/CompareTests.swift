import Foundation
import LoopCore
import LoopEngine
import LoopTestSupport
import Testing

@Suite(.serialized, .enabled(if: backendChoices.count > 1))
struct CompareTests {
    @Test func fixturesPassOpByOp() throws {
        for fixture in ["ouro-tiny-fp32", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"] {
            let gpu = try Model(directory: fixtureURL(fixture), backend: .vulkan(device: nil), maxContext: 32, maxRows: 16)
            let cpu = try Model(directory: fixtureURL(fixture), backend: .cpu, maxContext: 32, maxRows: 16)
            let r = try Comparison.run(gpu: gpu, cpu: cpu, tokens: [1, 7, 30, 2, 11])
            #expect(r.passed, "\(fixture): \(r.ops.filter { !$0.passed })")
            #expect(r.logits.count == gpu.plan.passCount)
            #expect(Set(r.ops.map(\.section)).isSuperset(of: (1...gpu.plan.passCount).map { "pass \($0)" }))
        }
    }

    /// A NaN in one weight of the second layer: compare fails and names where NaN first appeared.
    @Test func nonFiniteOutputIsReportedWithOpAndPass() throws {
        let src = fixtureURL("ouro-tiny-fp32")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loopvk-nan-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for f in ["config.json", "generation_config.json"] {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        let ck = try Checkpoint(directory: src)
        var entries: [SafeTensorsWriter.Entry] = []
        for name in ck.tensorNames {
            var v = try ck.floats(name)
            if name == "model.layers.1.mlp.down_proj.weight" { v[5] = .nan }
            entries.append(.f32(name, shape: ck.info(name)!.shape, v))
        }
        try SafeTensorsWriter.write(entries, to: dir.appendingPathComponent("model.safetensors"))
        let gpu = try Model(directory: dir, backend: .vulkan(device: nil), maxContext: 16, maxRows: 8)
        let cpu = try Model(directory: dir, backend: .cpu, maxContext: 16, maxRows: 8)
        let r = try Comparison.run(gpu: gpu, cpu: cpu, tokens: [1, 7, 30])
        #expect(!r.passed)
        // The first op to produce NaN is layer 1's down projection in pass 1 (a matmul).
        let first = r.firstNonFinite ?? ""
        #expect(first.hasPrefix("pass 1 op ") && first.hasSuffix("(matmul)"), "\(first)")
        #expect(r.ops.contains { $0.section == "pass 1" && $0.op == "matmul" && $0.nonFinite })
        #expect(!r.ops.contains { $0.section == "prelude" && $0.nonFinite })
    }
}
