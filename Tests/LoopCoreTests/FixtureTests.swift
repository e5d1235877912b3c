import Foundation
import Testing
import LoopCore
import LoopTestSupport

/// The golden fixtures on the CPU reference backend.
@Suite struct FixtureTests {
    static func cpuBackend(_ plan: LoopPlan, _ weights: WeightStore) throws -> PlanBackend {
        try CPUBackend(layout: BackendLayout(plan: plan, maxRows: 32, maxContext: 64), weights: weights)
    }

    @Test(arguments: ["ouro-tiny-fp32", "ouro-tiny-bf16", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"])
    func cpuMatchesGoldens(fixture: String) throws {
        let cmp = try checkFixture(name: fixture, makeBackend: Self.cpuBackend)
        print(cmp.report)
        #expect(!cmp.stats.isEmpty)
    }
}
