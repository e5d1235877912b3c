import Foundation
import LoopCore
@testable import LoopEngine
import LoopTestSupport
import LoopVulkan
import Testing

/// Continuous batching (`BatchDecoder`): every sequence decodes what it decodes alone, whatever
/// runs beside it — other prompts and lengths, other exit policies (rows leaving the batch at
/// mixed passes), KV policies, sampling — and whenever it joins.
@Suite(.serialized) struct BatchDecoderTests {
    struct Request {
        var prompt: [Int]
        var exit: ExitPolicy = .none
        var kv: KVPolicy = .latest
        var maxTokens = 6
        var temperature: Float = 0
        /// Steps of the batch before this request joins.
        var joinAt = 0
        func options() -> GenerationOptions {
            var o = GenerationOptions()
            o.maxTokens = maxTokens
            o.ignoreEOS = true
            o.exit = exit
            o.kv = kv
            o.sampling = SamplingOptions(temperature: temperature, seed: 11)
            return o
        }
    }

    /// `kernels`: a kernel configuration for Vulkan (`GPUPresetTests` runs these with `gpu`).
    var kernels: String? = nil

    func model(_ dir: URL, _ choice: BackendChoice, sequences: Int = 1, kvBudget: KVBudget? = nil) throws -> Model {
        try Model(directory: dir, backend: choice, maxContext: 64, maxRows: 16, kernels: choice == .cpu ? nil : kernels, batch: (sequences, kvBudget))
    }

    /// Each request through the single-sequence `Generator` on a fresh model.
    func alone(_ dir: URL, _ choice: BackendChoice, _ requests: [Request]) throws -> [(ids: [Int], passes: [Int])] {
        try requests.map { r in
            let res = try Generator(model: try model(dir, choice), kv: r.kv).generate(prompt: r.prompt, options: r.options())
            return (res.ids, res.passes)
        }
    }

    /// All requests through one `BatchDecoder`, each joining at its step; returns each one's
    /// ids and passes, and the largest batch seen.
    func batched(_ dir: URL, _ choice: BackendChoice, _ requests: [Request], maxBatch: Int = 16) throws -> (results: [(ids: [Int], passes: [Int])], widest: Int) {
        // A KV budget of one context per row.
        let m = try model(dir, choice, sequences: maxBatch, kvBudget: .positions(maxBatch * 64))
        let dec = try BatchDecoder(model: m, maxBatch: maxBatch)
        var seqOf: [Int: Int] = [:]
        var out = requests.map { _ in (ids: [Int](), passes: [Int]()) }
        var done = Set<Int>()
        var step = 0, widest = 0
        while done.count < requests.count {
            for (i, r) in requests.enumerated() where r.joinAt == step { seqOf[try dec.add(prompt: r.prompt, options: r.options())] = i }
            widest = max(widest, dec.running)
            for e in try dec.step() {
                switch e {
                case let .token(s, id, passes): out[seqOf[s]!].ids.append(id); out[seqOf[s]!].passes.append(passes)
                case let .finished(s, _): done.insert(seqOf[s]!)
                }
            }
            step += 1
            #expect(step < 500, "the batch does not finish")
            if step >= 500 { break }
        }
        #expect(dec.unreservedPages == dec.totalPages, "pages left reserved after every sequence ended")
        return (out, widest)
    }

    func prompts(_ n: Int, vocab: Int, seed: UInt64) -> [[Int]] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { i in (0..<(1 + (i * 7) % 19)).map { _ in Int(rng.next() % UInt64(vocab - 3)) + 3 } }
    }

    /// The families' exit policies mixed in one batch, with staggered joins, both KV policies
    /// and a sampled row: ids and pass counts equal each request's alone.
    @Test(arguments: backendChoices)
    func batchedEqualsAloneOnTheFixtures(choice: BackendChoice) throws {
        let cases: [(String, [ExitPolicy])] = [
            ("ouro-tiny-fp32", [.none, .fixed(1), .qExit(0.3), .qExit(0.7), .fixed(3)]),
            ("huginn-tiny-fp32", [.none, .fixed(2), .huginn(.kl, threshold: 5e-4), .huginn(.latentDiff, threshold: 0.5), .huginn(.cosine, threshold: 1e-3)]),
            ("loopus-tiny-qwen3-fp32", [.none, .fixed(1), .loopus(.threshold, threshold: 0.5), .loopus(.convergence, threshold: 0.05), .fixed(2)]),
        ]
        for (fixture, exits) in cases {
            let dir = fixtureURL(fixture)
            let ps = prompts(10, vocab: 300, seed: UInt64(fixture.count))
            var reqs: [Request] = []
            for (i, p) in ps.enumerated() {
                reqs.append(Request(prompt: p, exit: exits[i % exits.count], kv: i == 7 ? .shared : .latest, maxTokens: 3 + i % 5,
                                    temperature: i == 4 ? 0.8 : 0, joinAt: i < 6 ? 0 : i - 4))
            }
            let want = try alone(dir, choice, reqs)
            let (got, widest) = try batched(dir, choice, reqs)
            #expect(widest >= 6)
            for i in reqs.indices {
                #expect(got[i].ids == want[i].ids, "\(fixture) request \(i) (\(reqs[i].exit), kv \(reqs[i].kv)): ids")
                #expect(got[i].passes == want[i].passes, "\(fixture) request \(i) (\(reqs[i].exit)): passes")
            }
            // The mix really exits at different passes within a step.
            let passSets = Set(got.flatMap(\.passes))
            #expect(passSets.count >= 2, "\(fixture): every row ran the same passes \(passSets)")
        }
    }

    /// The bundled model: 16 concurrent arithmetic prompts, greedy, the default Q-exit and
    /// fixed passes mixed, give each prompt's answer alone.
    @Test(arguments: backendChoices)
    func batchedEqualsAloneOnTheBundledModel(choice: BackendChoice) throws {
        let dir = Paths.defaultModel
        let tok = try ModelFiles.tokenizer(at: dir)
        var reqs: [Request] = []
        for i in 0..<16 {
            let text = "Q: \(i % 10) plus \((i * 3) % 10) minus \((i * 7) % 10) A:"
            reqs.append(Request(prompt: tok.encode(text, addSpecialTokens: true), exit: [ExitPolicy.none, .qExit(0.5), .fixed(2)][i % 3], maxTokens: 4))
        }
        let want = try alone(dir, choice, reqs)
        let (got, widest) = try batched(dir, choice, reqs)
        #expect(widest == 16)
        for i in reqs.indices { #expect(got[i].ids == want[i].ids, "request \(i)") }
    }

    /// Admission follows the KV budget: a pool of 4 pages holds two 2-page sequences at a
    /// time, the third waits for room, and a request larger than the pool is refused.
    @Test func admissionFollowsTheKVBudget() throws {
        let dir = fixtureURL("ouro-tiny-fp32")
        let probe = try model(dir, .cpu)
        let m = try model(dir, .cpu, sequences: 4, kvBudget: .bytes(4 * probe.kvPageBytes + 100))
        let dec = try BatchDecoder(model: m, maxBatch: 4)
        #expect(dec.totalPages == 4)
        var o = GenerationOptions()
        o.maxTokens = 20
        o.ignoreEOS = true
        _ = try dec.add(prompt: Array(3..<13), options: o)   // 30 positions: 2 pages
        _ = try dec.add(prompt: Array(3..<13), options: o)
        #expect(!dec.canAdmit(promptTokens: 10, maxTokens: 20))
        #expect(throws: LoopError.self) { try dec.add(prompt: Array(3..<13), options: o) }
        var big = o
        big.maxTokens = 60
        #expect(throws: LoopError.self) { try dec.add(prompt: [3], options: big) }
        dec.cancel(0)
        #expect(dec.canAdmit(promptTokens: 10, maxTokens: 20))
        while dec.running > 0 { _ = try dec.step() }
        #expect(dec.unreservedPages == 4)
    }
}
