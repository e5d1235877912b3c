import Foundation
import Testing
import LoopCore
import LoopTestSupport

/// The golden fixtures on the CPU reference backend.
@Suite struct FixtureTests {
    static func cpuBackend(_ plan: LoopPlan, _ weights: WeightStore) throws -> PlanBackend {
        try CPUBackend(layout: BackendLayout(plan: plan, maxRows: 32, maxContext: 64), weights: weights,
                       kernels: KernelConfig.resolve(for: .cpuReference, deviceName: "cpu-reference", override: "kv=f32", check: false))
    }

    @Test(arguments: ["ouro-tiny-fp32", "ouro-tiny-bf16", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"])
    func cpuMatchesGoldens(fixture: String) throws {
        let cmp = try checkFixture(name: fixture, makeBackend: Self.cpuBackend)
        print(cmp.report)
        #expect(!cmp.stats.isEmpty)
    }

    /// With the f16 KV cache the CPU twin rounds what it caches as the shaders do; the goldens
    /// hold at `f16KVTolerance`, the greedy ids and exit decisions exactly.
    @Test(arguments: ["ouro-tiny-fp32", "ouro-tiny-bf16", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"])
    func cpuMatchesGoldensWithF16KV(fixture: String) throws {
        let config = try KernelConfig.resolve(for: .cpuReference, deviceName: "cpu-reference", override: "kv=f16", check: false)
        let cmp = try checkFixture(name: fixture, atol: f16KVTolerance, rtol: f16KVTolerance) { plan, weights in
            try CPUBackend(layout: BackendLayout(plan: plan, maxRows: 32, maxContext: 64), weights: weights, kernels: config)
        }
        #expect(!cmp.stats.isEmpty && !cmp.exactChecks.isEmpty)
        // The rounding is real: some tensor is off by more than the fp32 tolerance.
        #expect(cmp.stats.contains { $0.maxAbs > 2e-5 })
    }
}
