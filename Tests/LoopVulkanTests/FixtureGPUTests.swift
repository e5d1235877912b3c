import Foundation
import LoopCore
import LoopTestSupport
@testable import LoopVulkan
import Testing

/// The golden fixtures (official implementations' outputs per pass) on the Vulkan backend,
/// through the same driver and checks as the CPU reference.
@Suite(.serialized, .enabled(if: GPU.available))
struct FixtureGPUTests {
    @Test(arguments: ["ouro-tiny-fp32", "ouro-tiny-bf16", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"], GPU.readPaths)
    func vulkanMatchesGoldens(fixture: String, path: ReadPath) throws {
        let cmp = try checkFixture(name: fixture) { plan, weights in
            try VulkanBackend(context: GPU.context!, layout: BackendLayout(plan: plan, maxRows: 32, maxContext: 64), weights: weights, kernels: GPU.kernels(read: path, "kv=f32"))
        }
        print(cmp.report)
        #expect(!cmp.stats.isEmpty)
        GPU.expectNoValidationMessages()
    }

    /// The f16 KV cache (the default where the device has 16-bit storage) on both read paths
    /// and the `gpu` preset: the goldens within `f16KVTolerance`, ids and exits exact.
    @Test(arguments: ["ouro-tiny-fp32", "ouro-tiny-bf16", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"], GPU.readPaths.map { "read=\($0)" } + ["gpu"])
    func vulkanMatchesGoldensWithF16KV(fixture: String, spec: String) throws {
        let cmp = try checkFixture(name: fixture, atol: f16KVTolerance, rtol: f16KVTolerance) { plan, weights in
            try VulkanBackend(context: GPU.context!, layout: BackendLayout(plan: plan, maxRows: 32, maxContext: 64), weights: weights,
                              kernels: GPU.kernels(spec + ",kv=f16"))
        }
        #expect(!cmp.stats.isEmpty && !cmp.exactChecks.isEmpty)
        GPU.expectNoValidationMessages()
    }

    /// The same with device memory left unmapped: every weight upload, fill, activation write
    /// and read goes through a staging copy, as on a discrete GPU whose device memory the host
    /// cannot map (lavapipe maps everything otherwise, so this is the only run of that path).
    @Test(arguments: ["ouro-tiny-bf16", "huginn-tiny-fp32"], GPU.readPaths)
    func unmappedDeviceMemoryMatchesGoldens(fixture: String, path: ReadPath) throws {
        let cmp = try checkFixture(name: fixture) { plan, weights in
            let vb = try VulkanBackend(context: GPU.context!, layout: BackendLayout(plan: plan, maxRows: 32, maxContext: 64), weights: weights,
                                       kernels: GPU.kernels(read: path, "memory=unmapped,kv=f32"))
            #expect(!(try vb.act(plan.stateAct)).isHostVisible)
            return vb
        }
        #expect(!cmp.stats.isEmpty)
        GPU.expectNoValidationMessages()
    }
}
