import Foundation
import LoopCore
import LoopEngine
import LoopTestSupport
import LoopTokenizer
import Testing

/// `LoopReport`: its numbers are the lens's and the generation's, its exit decisions are the
/// families' own rules, its page has every section and escapes token text.
@Suite(.serialized) struct ReportTests {
    static let fixtures = ["ouro-tiny-fp32", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"]

    func model(_ fixture: String, _ choice: BackendChoice = .cpu, passes: Int? = nil) throws -> Model {
        try Model(directory: fixtureURL(fixture), passes: passes, backend: choice, maxContext: 64, maxRows: 32)
    }

    /// The fixture's prompt (chosen by its maker so greedy continuations are not tie-prone).
    func prompt(_ fixture: String) throws -> [Int] {
        Array(try Goldens(fixtureURL(fixture).appendingPathComponent("golden.safetensors")).i("input_ids").prefix(6))
    }

    func request(_ prompt: [Int], exit: ExitPolicy = .none, tokens: Int = 4, kv: KVPolicy = .latest) -> ReportRequest {
        var r = ReportRequest(prompt: prompt)
        r.generation.maxTokens = tokens
        r.generation.ignoreEOS = true
        r.generation.exit = exit
        r.kv = kv
        return r
    }

    /// Index of the first maximal value, and the 1-based rank of `id` by a full sort (ties: lower id first).
    func argmax(_ v: ArraySlice<Float>) -> Int { v.indices.max { v[$0] < v[$1] || (v[$0] == v[$1] && $0 > $1) }! - v.startIndex }
    func rankBySort(_ id: Int, _ v: ArraySlice<Float>) -> Int {
        let order = v.indices.sorted { v[$0] > v[$1] || (v[$0] == v[$1] && $0 < $1) }.map { $0 - v.startIndex }
        return order.firstIndex(of: id)! + 1
    }

    /// Every readout against a lens run of its own over the same rows: top tokens, ranks, KL 0
    /// and cosine 1 at the final pass; decode's tokens are the lens's final-pass argmax.
    @Test(arguments: fixtures)
    func readoutsAreTheLensOwn(fixture: String) throws {
        let m = try model(fixture)
        let p = try prompt(fixture)
        let report = try LoopReport.build(model: m, request: request(p))
        #expect(report.generated.count == 4)
        let rows = p + report.generated.dropLast()
        let lens = try m.lens(tokens: rows)
        let T = m.plan.passCount, V = m.plan.vocab
        #expect(report.positions.count == rows.count)
        #expect(report.positions.allSatisfy { $0.passes.count == T })
        for pos in report.positions {
            let r = pos.index
            let final = argmax(lens.logits[T - 1][(r * V)..<((r + 1) * V)])
            for (t, x) in pos.passes.enumerated() {
                let l = lens.logits[t][(r * V)..<((r + 1) * V)]
                #expect(x.top.first?.id == argmax(l), "row \(r) pass \(t + 1)")
                #expect(x.top.count == 5)
                #expect(zip(x.top, x.top.dropFirst()).allSatisfy { $0.probability >= $1.probability })
                #expect(x.finalRank == rankBySort(final, l), "row \(r) pass \(t + 1)")
                if let next = pos.next { #expect(x.nextRank == rankBySort(next, l)) }
                #expect(x.klToFinal >= 0 && x.cosineToFinal <= 1 + 1e-5)
            }
            #expect(pos.passes[T - 1].klToFinal == 0)
            #expect(abs(pos.passes[T - 1].cosineToFinal - 1) < 1e-5)
            #expect(pos.passes[T - 1].finalRank == 1)
        }
        // Greedy with every pass: each generated token is the final pass's top token of the row
        // that predicted it, and decode ran every pass there.
        for (i, id) in report.generated.enumerated() {
            let pos = report.positions[p.count - 1 + i]
            #expect(pos.next == id && pos.nextGenerated && pos.decodePasses == T)
            #expect(pos.passes[T - 1].top.first?.id == id)
        }
        #expect(report.agreement == [4, 4])
        #expect(report.lensMatchesDecode)
        #expect(report.positions.prefix(p.count - 1).allSatisfy { $0.decodePasses == nil && !$0.nextGenerated })
    }

    /// Ouro: the signal is the exit CDF and the rule's stop is the reference's Q-exit choice.
    @Test func ouroSignalIsTheExitCDF() throws {
        let m = try model("ouro-tiny-fp32")
        let p = try prompt("ouro-tiny-fp32")
        let q: Float = 0.6
        let report = try LoopReport.build(model: m, request: request(p, exit: .qExit(q)))
        let lens = try m.lens(tokens: p + report.generated.dropLast())
        #expect(report.signal?.threshold == q && report.signal?.comparison == ">=" && report.signal?.usedByRun == true)
        for pos in report.positions {
            let gates = lens.exits.map { $0[pos.index] }
            let cdf = OuroQExit.distribution(gateLogits: gates).cdf
            for t in 0..<(cdf.count - 1) { #expect(abs(pos.passes[t].signal! - cdf[t]) < 1e-5) }
            #expect(pos.passes.map(\.exitActivation) == gates)
            #expect(pos.rulePasses == OuroQExit.exitPass(gateLogits: gates, threshold: q) + 1)
        }
    }

    /// Decode's passes per token are the generator's own under the same policy; with Ouro's
    /// reference KV (every pass computed) the lens is exact, so each token is the lens's top
    /// token at the pass decode stopped at.
    @Test(arguments: [KVPolicy.latest, .reference])
    func decodePassesAreTheGeneratorOwn(kv: KVPolicy) throws {
        let m = try model("ouro-tiny-fp32")
        let p = try prompt("ouro-tiny-fp32")
        let req = request(p, exit: .qExit(0.5), tokens: 6, kv: kv)
        var options = req.generation
        options.kv = kv
        let direct = try Generator(model: m, kv: kv).generate(prompt: p, options: options)
        let report = try LoopReport.build(model: m, request: req)
        #expect(report.generated == direct.ids)
        #expect(report.positions.compactMap(\.decodePasses) == direct.passes)
        if kv == .reference {
            #expect(report.lensMatchesDecode)
            #expect(report.agreement == [6, 6])
        } else {
            #expect(report.lensMatchesDecode == !direct.passes.contains { $0 < m.plan.passCount })
        }
    }

    /// LoopUS: the rule's stop is `LoopUSHalting.passesRun` over the lens's q values.
    @Test(arguments: [ExitPolicy.loopus(.threshold, threshold: 0.5), .loopus(.cdf, threshold: 0.9)])
    func loopusRuleIsTheHaltingRule(exit: ExitPolicy) throws {
        let m = try model("loopus-tiny-qwen3-fp32")
        let p = try prompt("loopus-tiny-qwen3-fp32")
        let report = try LoopReport.build(model: m, request: request(p, exit: exit))
        let lens = try m.lens(tokens: p + report.generated.dropLast())
        guard case let .loopus(strategy, threshold) = exit else { return }
        let settings = LoopUSHalting.Settings(strategy: strategy, threshold: threshold)
        for pos in report.positions {
            let q = lens.exits.map { $0[pos.index] }
            #expect(pos.rulePasses == LoopUSHalting.passesRun(q: q, settings: settings), "row \(pos.index)")
            if strategy == .threshold { #expect(pos.passes.map(\.signal) == q) }
        }
    }

    /// Huginn at 32 passes: every pass is in the data and the heatmaps, the KL criterion is
    /// KL(previous pass ‖ this pass) (the first pass against uniform), and the page stays small.
    @Test func huginnAt32Passes() throws {
        let m = try model("huginn-tiny-fp32", passes: 32)
        let p = try prompt("huginn-tiny-fp32")
        let report = try LoopReport.build(model: m, request: request(p, exit: .huginn(.kl, threshold: 1e-3), tokens: 3))
        let lens = try m.lens(tokens: p + report.generated.dropLast())
        let V = m.plan.vocab
        #expect(report.passCount == 32)
        func logProbs(_ t: Int, _ r: Int) -> [Double] {
            let l = lens.logits[t][(r * V)..<((r + 1) * V)].map(Double.init)
            let mx = l.max()!, lse = mx + log(l.reduce(0) { $0 + exp($1 - mx) })
            return l.map { $0 - lse }
        }
        for pos in report.positions {
            for t in [0, 1, 15, 31] {
                let cur = logProbs(t, pos.index)
                let prev = t == 0 ? [Double](repeating: -log(Double(V)), count: V) : logProbs(t - 1, pos.index)
                let kl = zip(prev, cur).reduce(0.0) { $0 + exp($1.0) * ($1.0 - $1.1) }
                let got = Double(pos.passes[t].signal!)
                #expect(abs(got - kl) <= 1e-4 * max(1, abs(kl)) + 1e-7, "row \(pos.index) pass \(t + 1): \(got) vs \(kl)")
            }
            let firstBelow = pos.passes.firstIndex { $0.signal! < 1e-3 }.map { $0 + 1 } ?? 32
            #expect(pos.rulePasses == firstBelow)
        }
        let html = report.html()
        #expect(html.contains("<th>32</th>"))
        #expect(html.utf8.count < 400_000, "\(html.utf8.count) bytes")
    }

    /// The page: every section, token text escaped in markup and in the data block, no
    /// reference to anything outside it.
    @Test func htmlHasTheSectionsAndEscapesTokenText() throws {
        let m = try model("ouro-tiny-fp32")
        let report = try LoopReport.build(model: m, request: request(try prompt("ouro-tiny-fp32"), exit: .qExit(0.5)),
                                          tokenText: { "<b\($0)&x>" })
        let html = report.html()
        for id in ["summary", "sequence", "exit", "lens", "detail", "convergence", "gpu", "eval"] {
            #expect(html.contains("id=\"\(id)\""), "section \(id) missing")
        }
        let some = report.generated[0]
        #expect(!html.contains("<b\(some)&x>"))
        #expect(html.contains("&lt;b\(some)&amp;x&gt;"))
        #expect(html.contains("\\u003cb\(some)\\u0026x\\u003e"))
        #expect(html.components(separatedBy: "<script").count == 3 && html.components(separatedBy: "</script>").count == 3)
        for external in ["src=", "href=", "url(", "@import", "http://", "https://"] { #expect(!html.contains(external), "\(external)") }
        // Without a Vulkan profile the GPU section says why.
        #expect(report.profile == nil && html.contains("CPU reference"))
    }

    /// --eval: `loopvk eval --json` output (one report per line) feeds the accuracy section;
    /// malformed files are refused with the file's name and what is wrong.
    @Test func evalResultsAndBadEvalFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let tasks = Array(try EvalTask.load(Paths.defaultModel.appendingPathComponent("eval-dev.jsonl")).prefix(6))
        let tokenizer = try Tokenizer(contentsOf: Paths.defaultModel.appendingPathComponent("tokenizer.json"))
        var lines: [String] = []
        for passes in [1, 4] {
            let m = try Model(directory: Paths.defaultModel, passes: passes, backend: .cpu, maxContext: 64, maxRows: 32)
            let r = try Evaluation.run(model: m, tokenizer: tokenizer, tasks: tasks, exit: .none, stopTokens: [0])
            lines.append(String(decoding: try JSONEncoder().encode(r), as: UTF8.self))
        }
        let good = dir.appendingPathComponent("evals.jsonl")
        try (lines.joined(separator: "\n") + "\n").write(to: good, atomically: true, encoding: .utf8)
        let evals = try LoopReport.loadEvals(good)
        #expect(evals.map(\.report.passes) == [1, 4])
        let array = dir.appendingPathComponent("array.json")
        try ("[" + lines.joined(separator: ",") + "]").write(to: array, atomically: true, encoding: .utf8)
        #expect(try LoopReport.loadEvals(array).count == 2)

        let m = try Model(directory: Paths.defaultModel, backend: .cpu, maxContext: 64, maxRows: 32)
        var req = request(tokenizer.encode("Q: 7 plus 5 minus 9 A:"), tokens: 2)
        req.evals = evals
        let html = try LoopReport.build(model: m, request: req, tokenizer: tokenizer).html()
        #expect(html.contains("accuracy against passes"))
        #expect(html.contains(String(format: "%.3f", evals[1].report.accuracy)))

        for (name, text, why) in [("empty.json", "", "empty"), ("garbage.json", "{not json", "line 1"),
                                  ("shape.json", "{\"tasks\": 3}", "missing"), ("array.json", "[1, 2]", "wrong type")] {
            let url = dir.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            #expect { try LoopReport.loadEvals(url) } throws: { e in
                "\(e)".contains(name) && "\(e)".contains(why) && "\(e)".contains("loopvk eval --json")
            }
        }
        #expect(throws: LoopError.self) { try LoopReport.loadEvals(dir.appendingPathComponent("absent.json")) }
    }

    @Test func badInputIsAClearError() throws {
        let m = try model("ouro-tiny-fp32")
        #expect { try LoopReport.build(model: m, request: request([])) } throws: { "\($0)".contains("at least one prompt token") }
        #expect { try LoopReport.build(model: m, request: request([3, 99999])) } throws: { "\($0)".contains("outside the vocabulary") }
        var wide = request([3, 5])
        wide.topK = 0
        #expect { try LoopReport.build(model: m, request: wide) } throws: { "\($0)".contains("top-k") }
        #expect { try LoopReport.build(model: m, request: request([3, 5], tokens: 40)) } throws: { "\($0)".contains("rows per call") }
    }

    /// On Vulkan the report carries the profile of the same run: every pass, op kinds, bars.
    @Test(.enabled(if: backendChoices.count > 1), arguments: fixtures)
    func vulkanReportHasTheRunsProfile(fixture: String) throws {
        let m = try model(fixture, .vulkan(device: nil))
        let report = try LoopReport.build(model: m, request: request(try prompt(fixture)))
        let profile = try #require(report.profile)
        #expect(profile.decodeTokens == report.generated.count && profile.promptTokens == report.promptTokens)
        let sections = Set(profile.byOpAndPass.map(\.section))
        for t in 1...m.plan.passCount { #expect(sections.contains("pass \(t)")) }
        let html = report.html()
        #expect(html.contains("class=\"chart bars\""))
        for t in 1...m.plan.passCount { #expect(html.contains("<th>pass \(t)</th>")) }
        #expect(report.agreement == [4, 4])
    }
}
