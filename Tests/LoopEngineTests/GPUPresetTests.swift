import Foundation
import LoopCore
@testable import LoopEngine
import LoopTestSupport
import LoopVulkan
import Testing

/// The configuration a discrete GPU gets (`--kernels gpu`: storage buffers, shared-memory
/// reductions, flash-decoding splits, device memory unmapped so every transfer is staged), end
/// to end on whatever Vulkan device is here (lavapipe in CI), with `kv=f32` so the fp32 goldens
/// hold: the fixtures' goldens per pass, their greedy ids, and generations with exit policies
/// against the CPU reference.
@Suite(.serialized, .enabled(if: backendChoices.count > 1))
struct GPUPresetTests {
    static let spec = "gpu,kv=f32"

    @Test func presetIsTheGPUPath() throws {
        let model = try Model(directory: Paths.defaultModel, kernels: Self.spec)
        let c = try #require(model.vulkan).config
        #expect(c.read == .storage && c.reduce == .shared && c.splits == nil && !c.mapMemory && c.kv == .f32)
    }

    /// With device memory unmapped (a discrete GPU), a Q-exit token decided on the device is
    /// one submission: the exit control row, the greedy choice and the logits live in
    /// host-visible memory, so no staging copy runs between tokens.
    @Test func aTokenIsOneSubmission() throws {
        let model = try Model(directory: Paths.defaultModel, kernels: Self.spec)
        let vb = try #require(model.vulkan)
        let gen = Generator(model: model)
        #expect(gen.canDecideOnDevice)
        var o = GenerationOptions()
        o.maxTokens = 6
        o.ignoreEOS = true
        o.exit = .qExit(0.5)
        let prompt = [51, 28, 280, 266, 278, 263, 282, 272, 28]
        _ = try gen.generate(prompt: prompt, options: o)        // records every section
        let (s0, t0) = (vb.submits, vb.context.transferSubmissions)
        let r = try gen.generate(prompt: prompt, options: o)
        #expect(r.ids.count == 6 && r.meanPasses < 4)
        #expect(vb.submits - s0 == 1 + r.ids.count, "prefill + one per token: \(vb.submits - s0)")
        #expect(vb.context.transferSubmissions - t0 == 0, "staging submissions: \(vb.context.transferSubmissions - t0)")
    }

    @Test(arguments: ["ouro-tiny-fp32", "ouro-tiny-bf16", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"])
    func fixtureGoldens(fixture: String) throws {
        VulkanContext.validationOverride = true
        defer { VulkanContext.validationOverride = nil }
        let context = try VulkanContext(validation: true)
        let config = try KernelConfig.resolve(for: context.info.traits, deviceName: context.info.name, override: Self.spec)
        ValidationLog.reset()
        let cmp = try checkFixture(name: fixture) { plan, weights in
            try VulkanBackend(context: context, layout: BackendLayout(plan: plan, maxRows: 32, maxContext: 64), weights: weights, kernels: config)
        }
        #expect(!cmp.stats.isEmpty)
        #expect(ValidationLog.all.isEmpty, "validation messages: \(ValidationLog.all.prefix(3))")
    }

    func generate(_ dir: URL, _ choice: BackendChoice, kernels: String?, prompt: [Int], exit: ExitPolicy, tokens: Int) throws -> GenerationResult {
        let model = try Model(directory: dir, backend: choice, maxContext: 64, maxRows: 16, kernels: kernels)
        var o = GenerationOptions()
        o.maxTokens = tokens
        o.ignoreEOS = true
        o.exit = exit
        return try Generator(model: model).generate(prompt: prompt, options: o)
    }

    @Test func greedyIdsAndExitPoliciesMatchTheCPU() throws {
        for fixture in ["ouro-tiny-fp32", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"] {
            let g = try Goldens(fixtureURL(fixture).appendingPathComponent("golden.safetensors"))
            let ids = try generate(fixtureURL(fixture), .vulkan(device: nil), kernels: Self.spec, prompt: try g.i("input_ids"), exit: .none, tokens: 8).ids
            #expect(ids == (try g.i(fixture.hasPrefix("huginn") ? "gen_full_ids" : "gen_ids")), "\(fixture)")
        }
        let prompt = [51, 28, 280, 266, 278, 263, 282, 272, 28]   // "Q: 7 plus 5 minus 9 A:"
        for exit in [ExitPolicy.qExit(0.5), .fixed(2)] {
            let gpu = try generate(Paths.defaultModel, .vulkan(device: nil), kernels: Self.spec, prompt: prompt, exit: exit, tokens: 6)
            let cpu = try generate(Paths.defaultModel, .cpu, kernels: nil, prompt: prompt, exit: exit, tokens: 6)
            #expect(gpu.ids == cpu.ids && gpu.passes == cpu.passes, "\(exit): \(gpu.ids) \(gpu.passes) vs \(cpu.ids) \(cpu.passes)")
        }
    }

    /// Continuous batching on the storage path: a batch of rows at their own positions and KV
    /// pages, leaving at mixed passes, decodes what each request decodes alone.
    @Test func batchedEqualsAlone() throws {
        let t = BatchDecoderTests(kernels: Self.spec)
        let dir = fixtureURL("ouro-tiny-fp32")
        let exits: [ExitPolicy] = [.none, .fixed(1), .qExit(0.3), .fixed(3)]
        let reqs = t.prompts(8, vocab: 300, seed: 5).enumerated().map { i, p in
            BatchDecoderTests.Request(prompt: p, exit: exits[i % exits.count], maxTokens: 3 + i % 4, joinAt: i < 5 ? 0 : i - 3)
        }
        let want = try t.alone(dir, .vulkan(device: nil), reqs)
        let (got, widest) = try t.batched(dir, .vulkan(device: nil), reqs)
        #expect(widest >= 5)
        for i in reqs.indices {
            #expect(got[i].ids == want[i].ids && got[i].passes == want[i].passes, "request \(i) (\(reqs[i].exit))")
        }
    }
}
