import Foundation
import Testing
import LoopCore
import LoopEngine
import LoopTestSupport

/// `--numerics bf16` through the engine: the CPU reference runs it, a Vulkan device refuses it.
@Suite struct NumericsEngineTests {
    @Test func vulkanRefusesBF16() throws {
        #expect {
            try Model(directory: fixtureURL("ouro-tiny-bf16"), backend: .vulkan(device: nil), maxContext: 64, maxRows: 16, numerics: .bf16)
        } throws: { "\($0)".contains("CPU reference") && "\($0)".contains("--cpu") }
    }

    @Test func cpuModelRunsBF16() throws {
        let model = try Model(directory: fixtureURL("ouro-tiny-bf16"), backend: .cpu, maxContext: 64, maxRows: 16, numerics: .bf16)
        #expect(model.plan.numerics == .bf16)
        #expect(model.layout.numerics == .bf16)
        let ids = try PlanRunner(plan: model.plan, backend: model.backend).greedy(prompt: [188, 182, 281], count: 3).ids
        #expect(ids.count == 3)
    }
}
