import Foundation
import LoopCore
import LoopTestSupport
import LoopVulkan
import Testing

/// A generated checkpoint with the Ouro-1.4B shapes (hidden 2048, vocab 49152: the embedding and
/// lm_head are 192 MiB each in bf16, over lavapipe's 128 MiB maxStorageBufferRange) but 2
/// layers: the whole model runs on Vulkan through the chunked binding path and matches the CPU
/// reference pass by pass.
@Suite(.serialized, .enabled(if: GPU.available))
struct LargeCheckpointTests {
    @Test func ouro14bShapedTwoLayersMatchesCPU() throws {
        var preset = try Synth.preset(family: "ouro", name: "ouro-1.4b")
        guard case .ouro(var d, let passes) = preset.model else { Issue.record("ouro-1.4b is not an Ouro preset"); return }
        d.layers = 2
        preset.model = .ouro(d, passes: passes)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loopvk-ouro14-2l-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Synth.write(preset, to: dir, seed: 3, progress: nil)

        let ck = try Checkpoint(directory: dir)
        let embedBytes = ck.info("model.embed_tokens.weight")?.byteCount ?? 0
        #expect(UInt64(embedBytes) > GPU.context!.info.maxStorageBufferRange)
        let (plan, _) = try ModelFamily.plan(checkpoint: ck, passes: 2, maxContext: 16)
        let weights = WeightStore(checkpoint: ck, plan: plan)
        let layout = BackendLayout(plan: plan, maxRows: 3, maxContext: 16)
        let tokens: [Int32] = [17, 48_000, 31_337]
        var results: [[Float]] = []
        for backend in [try CPUBackend(layout: layout, weights: weights) as PlanBackend,
                        try VulkanBackend(context: GPU.context!, layout: layout, weights: weights)] {
            let runner = PlanRunner(plan: plan, backend: backend)
            try runner.prelude(tokens: tokens, pos0: 0)
            var out: [Float] = []
            for t in 0..<plan.passCount {
                try runner.pass(t, tokens: tokens, pos0: 0)
                out += try runner.state(rows: 3)
                out += try runner.head(tokens: tokens, pos0: 0)
            }
            results.append(out)
        }
        #expect(results[1].allSatisfy { $0.isFinite })
        #expect(nmse(results[1], results[0]) <= 5e-4)
        GPU.expectNoValidationMessages()
    }
}
