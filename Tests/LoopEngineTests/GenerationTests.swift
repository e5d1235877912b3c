import Foundation
import LoopCore
@testable import LoopEngine
import LoopTestSupport
import LoopVulkan
import Testing

/// Both backends, when Vulkan is present (lavapipe in CI).
let backendChoices: [BackendChoice] = {
    var list: [BackendChoice] = [.cpu]
    if (try? VulkanContext.listDevices().isEmpty) == false { list.append(.vulkan(device: nil)) }
    return list
}()

@Suite(.serialized) struct GenerationTests {
    func golden(_ fixture: String) throws -> Goldens {
        try Goldens(fixtureURL(fixture).appendingPathComponent("golden.safetensors"))
    }

    func greedy(_ fixture: String, _ choice: BackendChoice, kv: KVPolicy = .latest, count: Int = 8) throws -> [Int] {
        let g = try golden(fixture)
        let model = try Model(directory: fixtureURL(fixture), backend: choice, maxContext: 64, maxRows: 16)
        var options = GenerationOptions()
        options.maxTokens = count
        options.ignoreEOS = true
        options.kv = kv
        return try Generator(model: model, kv: kv).generate(prompt: try g.i("input_ids"), options: options).ids
    }

    /// Greedy decode through prefill + the KV cache reproduces the official implementations'
    /// generated ids, on the CPU reference and on Vulkan.
    @Test(arguments: backendChoices)
    func greedyMatchesFixtures(choice: BackendChoice) throws {
        #expect(try greedy("ouro-tiny-fp32", choice) == (try golden("ouro-tiny-fp32").i("gen_ids")))
        #expect(try greedy("ouro-tiny-bf16", choice) == (try golden("ouro-tiny-bf16").i("gen_ids")))
        #expect(try greedy("loopus-tiny-qwen3-fp32", choice) == (try golden("loopus-tiny-qwen3-fp32").i("gen_ids")))
        #expect(try greedy("huginn-tiny-fp32", choice) == (try golden("huginn-tiny-fp32").i("gen_full_ids")))
        // Huginn's compress-s4 cache = one slot per physical core layer (`--kv shared`).
        #expect(try greedy("huginn-tiny-fp32", choice, kv: .shared) == (try golden("huginn-tiny-fp32").i("gen_s4_ids")))
    }

    /// Generators with different KV policies over one model (what `loopvk serve` holds, one per
    /// policy a request asks for) give what each gives alone: `.shared` passes are recorded
    /// under their own section names, so neither replays the other's recorded slots.
    @Test(arguments: backendChoices)
    func generatorsOfDifferentKVPoliciesShareAModel(choice: BackendChoice) throws {
        let dir = Paths.defaultModel
        let prompt = [9, 5, 2, 12, 8, 5, 22, 6, 4]
        func options(_ exit: ExitPolicy) -> GenerationOptions {
            var o = GenerationOptions()
            o.maxTokens = 8
            o.ignoreEOS = true
            o.exit = exit
            return o
        }
        let runs: [(KVPolicy, ExitPolicy)] = [(.shared, .fixed(2)), (.latest, .none), (.latest, .fixed(1)), (.shared, .fixed(2)), (.latest, .qExit(0.5))]
        // Each alone, on a model of its own.
        let alone = try runs.map { kv, exit in
            try Generator(model: try Model(directory: dir, backend: choice, maxContext: 64, maxRows: 16), kv: kv).generate(prompt: prompt, options: options(exit)).ids
        }
        let model = try Model(directory: dir, backend: choice, maxContext: 64, maxRows: 16)
        var generators: [KVPolicy: Generator] = [:]
        for ((kv, exit), want) in zip(runs, alone) {
            let gen = generators[kv] ?? Generator(model: model, kv: kv)
            generators[kv] = gen
            #expect(try gen.generate(prompt: prompt, options: options(exit)).ids == want, "kv \(kv) exit \(exit)")
        }
        #expect(alone[0] != alone[1])   // the policies differ on this prompt, so a mix-up shows
    }

    /// Sampling with a seed gives the same tokens on both backends and on a second run.
    /// Prefill without the ops whose results nothing reads (`Liveness.prune`) leaves the same
    /// KV caches: the decoded tokens and the last token's logits equal those after a prefill of
    /// every op, for prompts in one and in several chunks, with and without a warm start.
    @Test(arguments: backendChoices)
    func prunedPrefillEqualsFullPrefill(choice: BackendChoice) throws {
        for fixture in ["ouro-tiny-fp32", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"] {
            for (prompt, warm) in [([5, 9, 17, 3, 8], false), (Array(3..<14), false), (Array(3..<14), true)] {
                var o = GenerationOptions()
                o.maxTokens = 3
                o.ignoreEOS = true
                o.warmStart = warm
                o.sampling = SamplingOptions(temperature: 0.7, topK: 0, topP: 1, seed: 9)
                var outs: [([Int], [Float])] = []
                var model: Model!
                for prune in [false, true] {
                    // A fresh model each time: KV caches left by the other run would hide a missing write.
                    model = try Model(directory: fixtureURL(fixture), backend: choice, maxContext: 64, maxRows: 4)
                    let gen = Generator(model: model)
                    gen.prunePrefill = prune
                    let ids = try gen.generate(prompt: prompt, options: o).ids
                    outs.append((ids, try model.backend.read(model.plan.logitsAct, rows: 1)))
                }
                #expect(outs[0].0 == outs[1].0, "\(fixture) warm \(warm)")
                let sameLogits = outs[0].1 == outs[1].1
                #expect(sameLogits, "\(fixture) warm \(warm): the last token's logits differ")
                let gen = Generator(model: model)
                #expect(gen.prefillSections(warm: warm).map(\.0).joined().count < Generator.fullPrefill(prelude: gen.prelude, passes: gen.passes, head: gen.prefillHead).map(\.0).joined().count)
            }
        }
    }

    /// Greedy decode in chains (several tokens per submission, `VulkanBackend.runGreedyChain`)
    /// gives the ids, pass counts and last logits of a submission per token: three families, no
    /// exit policy and fixed:2, a token budget that is not whole chains (1, 1, 2, 4, 8, 5), and a
    /// stop token met inside a chain; with the validation layer on and silent.
    @Test(.enabled(if: backendChoices.count > 1)) func greedyChainsEqualOneTokenPerSubmission() throws {
        VulkanContext.validationOverride = true
        defer { VulkanContext.validationOverride = nil }
        for fixture in ["ouro-tiny-fp32", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"] {
            for exit in [ExitPolicy.none, .fixed(2)] {
                var stop: Int?
                for stopping in [false, true] {
                    var runs: [(ids: [Int], passes: [Int], reason: String, logits: [Float])] = []
                    for chain in [1, 8] {
                        let model = try Model(directory: fixtureURL(fixture), backend: .vulkan(device: nil), maxContext: 64, maxRows: 16)
                        let gen = Generator(model: model)
                        gen.chainTokens = chain
                        var o = GenerationOptions()
                        o.maxTokens = 21
                        o.exit = exit
                        o.ignoreEOS = !stopping
                        if stopping, let stop { o.stopTokens = [stop] }
                        let r = try gen.generate(prompt: [5, 9, 17, 3, 8], options: o)
                        runs.append((r.ids, r.passes, r.stopReason, try model.backend.read(model.plan.logitsAct, rows: 1)))
                    }
                    let what = "\(fixture) \(exit) stop \(stop.map(String.init) ?? "-")"
                    #expect(runs[0].ids == runs[1].ids, "\(what)")
                    #expect(runs[0].passes == runs[1].passes, "\(what)")
                    #expect(runs[0].reason == runs[1].reason, "\(what)")
                    if !stopping {
                        #expect(runs[0].ids.count == 21)
                        let sameLogits = runs[0].logits == runs[1].logits
                        #expect(sameLogits, "\(what): the last token's logits differ")
                        // Stop at the 12th token's id (inside the chain of 8 that starts at token 9).
                        stop = runs[0].ids[11]
                    } else {
                        #expect(runs[0].reason == "eos" && runs[0].ids.count <= 12, "\(what)")
                    }
                }
            }
        }
        let messages = ValidationLog.all
        #expect(messages.count == 0, "validation messages: \(messages.prefix(2))")
    }

    @Test func sameSeedSameTokensOnBothBackends() throws {
        var results: [[Int]] = []
        for fixture in ["ouro-tiny-fp32", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"] {
            var perBackend: [[Int]] = []
            for choice in backendChoices + [.cpu] {
                let model = try Model(directory: fixtureURL(fixture), backend: choice, maxContext: 64, maxRows: 16)
                var o = GenerationOptions()
                o.maxTokens = 12
                o.ignoreEOS = true
                o.sampling = SamplingOptions(temperature: 0.8, topK: 50, topP: 0.95, seed: 1234)
                perBackend.append(try Generator(model: model).generate(prompt: [5, 9, 17, 3, 8], options: o).ids)
            }
            #expect(Set(perBackend.map { $0.description }).count == 1, "\(fixture): \(perBackend)")
            results.append(perBackend[0])
        }
        // Different seeds give different samples somewhere (the sampler is not greedy in disguise).
        let model = try Model(directory: fixtureURL("ouro-tiny-fp32"), backend: .cpu, maxContext: 64, maxRows: 16)
        var o = GenerationOptions()
        o.maxTokens = 12
        o.ignoreEOS = true
        o.sampling = SamplingOptions(temperature: 0.8, topK: 50, topP: 0.95, seed: 99)
        #expect(try Generator(model: model).generate(prompt: [5, 9, 17, 3, 8], options: o).ids != results[0])
    }

    /// An exit policy really skips passes, and both backends make the same choices.
    @Test func exitPoliciesSkipPasses() throws {
        let prompt = [51, 28, 280, 266, 278, 263, 282, 272, 28]   // "Q: 7 plus 5 minus 9 A:"
        var perBackend: [[Int]] = []
        for choice in backendChoices {
            let model = try Model(directory: Paths.defaultModel, backend: choice)
            var o = GenerationOptions()
            o.maxTokens = 6
            o.ignoreEOS = true
            o.exit = .qExit(0.5)
            let r = try Generator(model: model).generate(prompt: prompt, options: o)
            #expect(r.passes.allSatisfy { (1...4).contains($0) })
            #expect(r.meanPasses < 4, "q-exit 0.5 never stopped early: \(r.passes)")
            perBackend.append(r.ids + r.passes)
            o.exit = .fixed(2)
            let f = try Generator(model: model).generate(prompt: prompt, options: o)
            #expect(f.passes == [Int](repeating: 2, count: 6))
        }
        #expect(Set(perBackend.map { $0.description }).count == 1)
    }

    /// Q-exit decided on the device (exit_decide + conditional sections) chooses the same
    /// tokens and pass counts as the host reading the gate after every pass, on both backends,
    /// thresholds that stop early and late, with and without a minimum pass count.
    @Test func deviceExitDecisionsEqualHostDecisions() throws {
        let prompt = [51, 28, 280, 266, 278, 263, 282, 272, 28]   // "Q: 7 plus 5 minus 9 A:"
        for choice in backendChoices {
            let model = try Model(directory: Paths.defaultModel, backend: choice)
            let gen = Generator(model: model)
            #expect(gen.canDecideOnDevice, "\(choice): no device exit")
            for (q, minPasses) in [(Float(0.5), 1), (0.7, 1), (0.9, 3), (0.0, 1), (1.0, 1)] {
                var o = GenerationOptions()
                o.maxTokens = 6
                o.ignoreEOS = true
                o.exit = .qExit(q)
                o.minPasses = minPasses
                o.deviceExit = false
                let host = try gen.generate(prompt: prompt, options: o)
                o.deviceExit = true
                let device = try gen.generate(prompt: prompt, options: o)
                #expect(device.ids == host.ids, "\(choice) q \(q)")
                #expect(device.passes == host.passes, "\(choice) q \(q): \(device.passes) vs \(host.passes)")
                if q == 0 { #expect(device.passes.allSatisfy { $0 == minPasses }) }
            }
        }
    }

    @Test func badGenerationInputIsAClearError() throws {
        let model = try Model(directory: Paths.defaultModel, backend: .cpu, maxContext: 16)
        let gen = Generator(model: model)
        #expect(throws: LoopError.self) { try gen.generate(prompt: [], options: GenerationOptions()) }
        #expect(throws: LoopError.self) { try gen.generate(prompt: [Int](repeating: 5, count: 17), options: GenerationOptions()) }
        #expect(throws: LoopError.self) { try gen.generate(prompt: [100_000], options: GenerationOptions()) }
        var o = GenerationOptions()
        o.sampling.topP = 0
        #expect(throws: LoopError.self) { try gen.generate(prompt: [5], options: o) }
        let rules = model.info.exitRules
        #expect(rules == [.qExit])
        #expect(try ExitPolicy.parse("q-exit:0.7", rules: rules, modelType: "ouro") == .qExit(0.7))
        #expect(throws: LoopError.self) { try ExitPolicy.parse("q-exit:2", rules: rules, modelType: "ouro") }
        #expect(throws: LoopError.self) { try ExitPolicy.parse("kl", rules: rules, modelType: "ouro") }
        #expect(throws: LoopError.self) { try ExitPolicy.parse("q-exit", rules: [.huginnCriteria], modelType: "huginn_raven") }
        #expect(throws: LoopError.self) { try ExitPolicy.parse("bogus", rules: rules, modelType: "ouro") }
        #expect(throws: LoopError.self) { try Model(directory: Paths.defaultModel, passes: 0, backend: .cpu) }
    }
}
