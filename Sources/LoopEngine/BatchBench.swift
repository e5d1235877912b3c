import Foundation
import LoopCore

/// Decode throughput of continuous batching (`loopvk bench-batch`): for each batch size B,
/// B sequences of the same prompt length decode together through a `BatchDecoder`; the figure
/// is the aggregate tokens/s of the steps in which all B rows decode (no prefill chunk, no row
/// finished yet). Each row takes the next exit policy of `exits` in turn, so a mix of fixed
/// pass counts measures what rows that leave the batch early save against the same batch at
/// full depth (`exits` = [.none]).
public enum BatchBench {
    public struct Row: Sendable, Codable {
        public var batch: Int
        public var exits: String
        /// Aggregate decode tokens/s over the full-batch steps (median of runs).
        public var tokensPerSecond: Double
        /// Milliseconds per full-batch step (median of runs).
        public var stepMilliseconds: Double
        /// Passes per token, averaged over the rows' tokens.
        public var meanPasses: Double
        /// Against batch 1 with the same exits, in the same run.
        public var speedup: Double
    }
    public struct Report: Sendable, Codable {
        public var model: String
        public var backend: String
        public var passes: Int
        public var promptTokens: Int
        public var decodeTokens: Int
        public var runs: Int
        public var rows: [Row]
    }

    /// `model` must be loaded for `batches.max()` sequences with a KV budget that holds them.
    public static func run(model: Model, batches: [Int], exitMixes: [[ExitPolicy]], promptTokens: Int, decodeTokens: Int, runs: Int,
                           progress: ((String) -> Void)? = nil) throws -> Report {
        guard promptTokens >= 1, decodeTokens >= 2, runs >= 1, !batches.isEmpty, !exitMixes.isEmpty else {
            throw LoopError.invalidArgument("bench-batch needs --prompt-tokens >= 1, --decode-tokens >= 2, --runs >= 1 and batch sizes")
        }
        let maxBatch = batches.max()!
        let dec = try BatchDecoder(model: model, maxBatch: maxBatch)
        let need = maxBatch * BatchDecoder.pagesNeeded(promptTokens: promptTokens, maxTokens: decodeTokens)
        guard need <= dec.totalPages else {
            throw LoopError.invalidArgument("\(maxBatch) sequences of \(promptTokens) + \(decodeTokens) positions need \(need) KV pages; the budget holds \(dec.totalPages) (raise --kv-budget)")
        }
        guard decodeTokens > maxBatch / 4 + 2 else {
            throw LoopError.invalidArgument("--decode-tokens \(decodeTokens) is too few for a full batch of \(maxBatch) rows to decode together (prompts are prefilled a few per step); give more than \(maxBatch / 4 + 2)")
        }
        var rows: [Row] = []
        for exits in exitMixes {
            var base: Double?
            for b in batches {
                var rates: [Double] = [], steps: [Double] = []
                var passes = 0, tokens = 0
                for run in 0..<(runs + 1) {   // the first run warms up (records the sections of this batch size)
                    progress?("batch \(b), exits \(exits.map(\.description).joined(separator: ",")), run \(run)/\(runs)")
                    for i in 0..<b {
                        var o = GenerationOptions()
                        o.maxTokens = decodeTokens
                        o.ignoreEOS = true
                        o.exit = exits[i % exits.count]
                        _ = try dec.add(prompt: Bench.prompt(promptTokens, vocab: model.plan.vocab).map { ($0 + 37 * i) % model.plan.vocab }, options: o)
                    }
                    var fullTime = 0.0, fullTokens = 0, fullSteps = 0
                    while dec.running > 0 {
                        let full = dec.prefilling == 0 && dec.running == b
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        let events = try dec.step()
                        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                        let got = events.compactMap { e -> Int? in if case let .token(_, _, p) = e { return p } else { return nil } }
                        // A step in which a row finishes still decoded every row.
                        if full && got.count == b {
                            fullTime += dt; fullTokens += b; fullSteps += 1
                            if run > 0 { passes += got.reduce(0, +); tokens += got.count }
                        }
                    }
                    if run > 0, fullSteps > 0 {
                        rates.append(Double(fullTokens) / fullTime)
                        steps.append(fullTime / Double(fullSteps) * 1e3)
                    }
                }
                let rate = median(rates)
                if b == batches.first { base = rate }
                rows.append(Row(batch: b, exits: exits.map(\.description).joined(separator: ","), tokensPerSecond: rate, stepMilliseconds: median(steps),
                                meanPasses: tokens > 0 ? Double(passes) / Double(tokens) : 0, speedup: (base ?? 0) > 0 ? rate / base! : 0))
            }
        }
        return Report(model: model.checkpoint.directory.lastPathComponent, backend: model.backend.name, passes: model.plan.passCount,
                      promptTokens: promptTokens, decodeTokens: decodeTokens, runs: runs, rows: rows)
    }

    static func median(_ xs: [Double]) -> Double {
        guard !xs.isEmpty else { return 0 }
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
