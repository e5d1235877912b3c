import Foundation
import LoopCore
import LoopTokenizer

/// Everything `loopvk report` shows about one run, built from the engine's own results: the
/// generation (`GenerationResult`: tokens and passes per token), one `LensResult` over the
/// prompt and the generated tokens (per-pass logits, states, exit activations), the
/// `ProfileReport` of the same generation and, optionally, `EvalReport`s of `loopvk eval --json`.
/// `html()` (ReportHTML.swift) renders it as one self-contained page.
///
/// Rows: row r reads token r of `prompt + generated` and predicts token r + 1. The lens runs
/// every pass at every row in one call, so its readouts at a generated row equal what decode
/// computed there whenever decode's KV slots held real K/V of every pass (every token ran every
/// pass, or Ouro's reference KV policy, which computes them all); otherwise (an exit policy that
/// skipped passes under `latest`, or `shared`) later rows can differ slightly from decode, and
/// `lensMatchesDecode` is false. `agreement` counts the generated tokens that equal the lens's
/// top token at the pass decode stopped at.
public struct LoopReport: Sendable, Codable {
    public struct Candidate: Sendable, Codable, Equatable {
        public var id: Int
        public var text: String
        public var probability: Float
    }

    /// One row's readout after one pass.
    public struct PassReadout: Sendable, Codable {
        /// The top-k tokens of the head on this pass's state, most probable first (ties: lower id).
        public var top: [Candidate]
        /// Rank (1 = most probable) of the final pass's top token at this pass.
        public var finalRank: Int
        /// Rank and probability of the row's next token in the sequence, where there is one.
        public var nextRank: Int?
        public var nextProbability: Float?
        /// KL(pass t ‖ final pass) of the next-token distributions, in nats (0 at the final pass).
        public var klToFinal: Float
        /// cos(state after pass t, state after the final pass).
        public var cosineToFinal: Float
        /// The exit signal `ExitTracker` compares with the threshold after this pass (see
        /// `ExitSignalInfo`), nil where it has none yet (e.g. the first pass of latent-diff).
        public var signal: Float?
        /// The plan's raw exit activation (Ouro gate logit, LoopUS q), where the family has one.
        public var exitActivation: Float?
    }

    public struct Position: Sendable, Codable {
        public var index: Int
        public var token: Int
        public var text: String
        /// The input token was generated (not part of the prompt).
        public var generated: Bool
        /// The next token of the sequence (the prompt's next token, or the generated one).
        public var next: Int?
        public var nextText: String?
        public var nextGenerated: Bool
        /// Passes decode ran at this row to choose `next` (nil: a prefill row, every pass ran).
        public var decodePasses: Int?
        /// Passes after which the exit rule (replayed on the lens readouts) stops: the first pass
        /// where the signal crosses the threshold, or every pass.
        public var rulePasses: Int
        public var passes: [PassReadout]
    }

    /// What the exit signal is and how it meets the threshold.
    public struct ExitSignalInfo: Sendable, Codable {
        /// The policy whose signal is shown (the run's, or the family's default when the run's
        /// policy has no signal: none, fixed:K).
        public var policy: String
        public var name: String
        public var threshold: Float
        /// How the signal is compared with the threshold to stop: ">=", ">" or "<".
        public var comparison: String
        /// The run's own policy (false: shown for reference, decode did not use it).
        public var usedByRun: Bool
    }

    public struct EvalEntry: Sendable, Codable {
        public var source: String
        public var report: EvalReport
    }

    public var model: String
    public var modelType: String
    public var backend: String
    public var passCount: Int
    public var vocab: Int
    public var exit: String
    public var kv: String
    public var greedy: Bool
    public var promptTokens: Int
    public var generated: [Int]
    public var stopReason: String
    public var signal: ExitSignalInfo?
    public var positions: [Position]
    public var topK: Int
    public var lensMatchesDecode: Bool
    /// Generated tokens equal to the lens's top token at the pass decode stopped at / all
    /// generated tokens (only meaningful for greedy decoding).
    public var agreement: [Int]
    public var profile: ProfileReport?
    /// Why there is no profile, where there is none.
    public var profileNote: String?
    public var evals: [EvalEntry]
}

/// What `LoopReport.build` runs.
public struct ReportRequest: Sendable {
    public var prompt: [Int]
    public var generation = GenerationOptions()
    public var kv: KVPolicy = .latest
    public var topK = 5
    /// Profile the generation (exact mode: per op and pass). Needs a Vulkan device with
    /// timestamps; without one the report says so and has no GPU section.
    public var profile = true
    public var evals: [LoopReport.EvalEntry] = []
    public init(prompt: [Int]) { self.prompt = prompt }
}

extension LoopReport {
    /// Generates with `request.generation` (profiled on a Vulkan device), runs the lens over the
    /// prompt and the generated tokens, and assembles the report. `tokenText` names a token in
    /// the page (default: the tokenizer's text, else "#id").
    public static func build(model: Model, request: ReportRequest, tokenizer: Tokenizer? = nil,
                             tokenText: ((Int) -> String)? = nil) throws -> LoopReport {
        let prompt = request.prompt
        guard !prompt.isEmpty else { throw LoopError.invalidArgument("the report needs at least one prompt token") }
        guard (1...50).contains(request.topK) else { throw LoopError.invalidArgument("top-k must be in 1...50, got \(request.topK)") }
        let rowsNeeded = prompt.count + max(request.generation.maxTokens - 1, 0)
        guard rowsNeeded <= model.layout.maxRows else {
            throw LoopError.invalidArgument("the report's lens reads \(rowsNeeded) rows (prompt + max tokens - 1) in one call but the model was opened with \(model.layout.maxRows) rows per call")
        }
        let name = tokenText ?? { id in Self.tokenText(id, tokenizer: tokenizer) }

        // 1. The run: generation, profiled where there is a device with timestamps.
        var profile: ProfileReport?
        var profileNote: String?
        let generation: GenerationResult
        if request.profile, let vb = model.vulkan, vb.context.supportsTimestamps {
            let r = try Profiler.run(model: model, prompt: prompt, options: request.generation, kv: request.kv, mode: .exact)
            profile = r.report
            generation = r.generation
        } else {
            profileNote = !request.profile ? "profiling was not asked for"
                : model.vulkan == nil ? "no GPU profile: the run used the CPU reference backend"
                : "no GPU profile: the device has no compute-queue timestamps"
            generation = try Generator(model: model, kv: request.kv).generate(prompt: prompt, options: request.generation)
        }

        // 2. The lens over the rows whose predictions the run made.
        let sequence = prompt + generation.ids
        let input = generation.ids.isEmpty ? prompt : Array(sequence.dropLast())
        let lens = try model.lens(tokens: input)

        // 3. Per row and pass.
        let signalPolicy = Self.signalPolicy(for: request.generation.exit, info: model.info)
        let T = lens.logits.count, V = lens.vocab, H = lens.hidden
        var positions: [Position] = []
        var agree = 0
        for r in 0..<lens.tokens {
            func logits(_ t: Int) -> ArraySlice<Float> { lens.logits[t][(r * V)..<((r + 1) * V)] }
            func state(_ t: Int) -> ArraySlice<Float> { lens.states[t][(r * H)..<((r + 1) * H)] }
            let finalLogits = logits(T - 1)
            let finalLogProbs = Self.logSoftmax(finalLogits)
            let finalToken = PlanRunner.argmax(finalLogits)
            let next = r + 1 < sequence.count ? sequence[r + 1] : nil

            var tracker = signalPolicy.map {
                ExitTracker(policy: $0, totalPasses: T, minPasses: request.generation.minPasses, qEvalInterval: model.info.qEvalInterval ?? 1)
            }
            if let p = signalPolicy, p.needsState, !lens.initialState.isEmpty {
                _ = tracker?.shouldStop(after: -1, exitSignal: nil, state: Array(lens.initialState[(r * H)..<((r + 1) * H)]), logits: nil)
            }
            var rulePasses = T
            var readouts: [PassReadout] = []
            for t in 0..<T {
                let l = logits(t)
                let lp = Self.logSoftmax(l)
                let exitValue = t < lens.exits.count ? lens.exits[t][r] : nil
                var signal: Float?
                if tracker != nil {
                    let stops = tracker!.shouldStop(after: t, exitSignal: exitValue, state: Array(state(t)), logits: Array(l))
                    signal = tracker!.signal
                    if stops && rulePasses == T { rulePasses = t + 1 }
                }
                let top = Self.topK(l, request.topK).map { Candidate(id: $0, text: name($0), probability: Foundation.exp(lp[$0])) }
                readouts.append(PassReadout(
                    top: top, finalRank: Self.rank(of: finalToken, in: l),
                    nextRank: next.map { Self.rank(of: $0, in: l) }, nextProbability: next.map { Foundation.exp(lp[$0]) },
                    klToFinal: Self.kl(lp, finalLogProbs), cosineToFinal: Self.cosine(state(t), state(T - 1)),
                    signal: signal, exitActivation: exitValue))
            }
            let decodeIndex = r - (prompt.count - 1)
            let decodePasses = decodeIndex >= 0 && decodeIndex < generation.passes.count ? generation.passes[decodeIndex] : nil
            if let k = decodePasses, let n = next, readouts[k - 1].top.first?.id == n { agree += 1 }
            positions.append(Position(index: r, token: input[r], text: name(input[r]), generated: r >= prompt.count,
                                      next: next, nextText: next.map(name), nextGenerated: r + 1 >= prompt.count,
                                      decodePasses: decodePasses, rulePasses: rulePasses, passes: readouts))
        }
        let skipped = generation.passes.contains { $0 < T }
        let allComputed = request.kv == .reference && model.info.referenceComputesAllPasses
        let info = signalPolicy.flatMap { Self.signalInfo($0, usedByRun: $0 == request.generation.exit) }
        return LoopReport(
            model: model.checkpoint.directory.lastPathComponent, modelType: model.info.modelType, backend: model.backend.name,
            passCount: T, vocab: V, exit: request.generation.exit.description, kv: request.kv.rawValue,
            greedy: request.generation.sampling.isGreedy, promptTokens: prompt.count, generated: generation.ids,
            stopReason: generation.stopReason, signal: info, positions: positions, topK: request.topK,
            lensMatchesDecode: request.kv != .shared && (!skipped || allComputed), agreement: [agree, generation.ids.count],
            profile: profile, profileNote: profileNote, evals: request.evals)
    }

    /// The policy whose signal the report shows: the run's where it has one, else the family's
    /// default rule (Ouro: Q-exit at the config's early_exit_threshold; LoopUS: the config's
    /// halting rule; Huginn: KL at the reference's auto threshold), nil for a family without one.
    static func signalPolicy(for exit: ExitPolicy, info: ModelInfo) -> ExitPolicy? {
        switch exit {
        case .qExit, .huginn, .loopus: return exit
        case .none, .fixed: break
        }
        if info.exitRules.contains(.qExit) { return .qExit(info.earlyExitThreshold ?? 1) }
        if info.exitRules.contains(.loopusHalting), let s = info.haltingStrategy {
            return .loopus(s, threshold: s == .convergence ? (info.convergenceEpsilon ?? 0.01) : (info.qThreshold ?? 0.9))
        }
        if info.exitRules.contains(.huginnCriteria) { return .huginn(.kl, threshold: ExitPolicy.HuginnCriterion.kl.autoThreshold) }
        return nil
    }

    static func signalInfo(_ p: ExitPolicy, usedByRun: Bool) -> ExitSignalInfo? {
        func info(_ name: String, _ threshold: Float, _ cmp: String) -> ExitSignalInfo {
            ExitSignalInfo(policy: p.description, name: name, threshold: threshold, comparison: cmp, usedByRun: usedByRun)
        }
        switch p {
        case .none, .fixed: return nil
        case .qExit(let q): return info("exit CDF 1 − Π(1 − λ)", q, ">=")
        case .loopus(.threshold, let q): return info("q (confidence head)", q, ">")
        case .loopus(.cdf, let q): return info("cdf 1 − Π(1 − q)", q, ">")
        case .loopus(.convergence, let e): return info("‖Δh‖ over the pass", e, "<")
        case .huginn(let c, let t):
            switch c {
            case .kl: return info("KL(previous pass ‖ this pass)", t, "<")
            case .minpKL: return info("min-p KL(previous ‖ this)", t, "<")
            case .entropyDiff: return info("|entropy change|", t, "<")
            case .latentDiff: return info("‖x − x_prev‖ / ‖x‖", t, "<")
            case .cosine: return info("1 − cos(x, x_prev)", t, "<")
            case .argmaxStability: return info("passes with the same argmax", t, ">=")
            }
        }
    }

    /// A token as the page shows it: the tokenizer's text with whitespace made visible, or "#id".
    public static func tokenText(_ id: Int, tokenizer: Tokenizer?) -> String {
        guard let tokenizer, tokenizer.token(for: id) != nil else { return "#\(id)" }
        let s = tokenizer.decode([id])
        if s.isEmpty { return "∅" }
        return s.replacingOccurrences(of: " ", with: "␣").replacingOccurrences(of: "\n", with: "↵")
            .replacingOccurrences(of: "\t", with: "⇥").replacingOccurrences(of: "\r", with: "␍")
    }

    // MARK: Readout arithmetic (Double accumulation)

    static func logSoftmax(_ x: ArraySlice<Float>) -> [Float] {
        let m = x.max() ?? 0
        var sum = 0.0
        for v in x { sum += Foundation.exp(Double(v - m)) }
        let lse = Double(m) + Foundation.log(sum)
        return x.map { Float(Double($0) - lse) }
    }

    /// KL(p ‖ q) from log-probabilities.
    static func kl(_ lp: [Float], _ lq: [Float]) -> Float {
        var s = 0.0
        for i in lp.indices where lp[i] > -.infinity { s += Foundation.exp(Double(lp[i])) * Double(lp[i] - lq[i]) }
        return Float(max(s, 0))
    }

    static func cosine(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Float {
        var dot = 0.0, na = 0.0, nb = 0.0
        for (x, y) in zip(a, b) { dot += Double(x) * Double(y); na += Double(x) * Double(x); nb += Double(y) * Double(y) }
        return na > 0 && nb > 0 ? Float(dot / (na.squareRoot() * nb.squareRoot())) : 0
    }

    /// 1-based rank of `id` by logit, ties broken by the lower id (as argmax breaks them).
    static func rank(of id: Int, in logits: ArraySlice<Float>) -> Int {
        let base = logits.startIndex
        let v = logits[base + id]
        var above = 0
        for (j, x) in logits.enumerated() where x > v || (x == v && j < id) { above += 1 }
        return above + 1
    }

    /// The ids of the k largest logits, largest first (ties: lower id first).
    static func topK(_ logits: ArraySlice<Float>, _ k: Int) -> [Int] {
        var best: [(id: Int, v: Float)] = []
        for (j, x) in logits.enumerated() where !x.isNaN {
            if best.count < k || x > best[best.count - 1].v {
                let at = best.firstIndex { x > $0.v } ?? best.count
                best.insert((j, x), at: at)
                if best.count > k { best.removeLast() }
            }
        }
        return best.map(\.id)
    }

    // MARK: Eval results

    /// Reads `loopvk eval --json` output: one report, a JSON array of them, or one per line
    /// (the output of several runs appended to one file). Errors name the file and the problem.
    public static func loadEvals(_ url: URL) throws -> [EvalEntry] {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw LoopError.fileNotFound(url.path) }
        let file = url.lastPathComponent
        func fail(_ why: String) -> LoopError { .invalidArgument("--eval \(file): \(why); expected the output of `loopvk eval --json` (one report per line, or a JSON array of them)") }
        let decoder = JSONDecoder()
        var reports: [EvalReport] = []
        let text = String(decoding: data, as: UTF8.self)
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { throw fail("the file is empty") }
        if trimmed.hasPrefix("[") {
            do { reports = try decoder.decode([EvalReport].self, from: Data(trimmed.utf8)) } catch { throw fail(Self.describe(error)) }
        } else if let one = try? decoder.decode(EvalReport.self, from: Data(trimmed.utf8)) {
            reports = [one]
        } else {
            for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let l = line.trimmingCharacters(in: .whitespaces)
                if l.isEmpty { continue }
                do { reports.append(try decoder.decode(EvalReport.self, from: Data(l.utf8))) } catch { throw fail("line \(i + 1): \(Self.describe(error))") }
            }
        }
        guard !reports.isEmpty else { throw fail("no reports in it") }
        for r in reports where r.matches.count != r.tasks || r.groups.contains(where: { $0.correct > $0.count }) {
            throw fail("a report's counts disagree (\(r.tasks) tasks, \(r.matches.count) matches)")
        }
        return reports.map { EvalEntry(source: file, report: $0) }
    }

    static func describe(_ error: Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        func path(_ c: DecodingError.Context) -> String {
            let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "" : " at \(p)"
        }
        switch e {
        case .keyNotFound(let k, let c): return "key \"\(k.stringValue)\" is missing\(path(c))"
        case .typeMismatch(_, let c), .valueNotFound(_, let c): return "wrong type\(path(c)): \(c.debugDescription)"
        case .dataCorrupted(let c): return "not valid JSON\(path(c))"
        @unknown default: return "\(e)"
        }
    }
}
