import Foundation
import LoopCore

/// Sampling settings. `temperature == 0` is greedy (the first maximal index, as the
/// references decode).
public struct SamplingOptions: Sendable, Equatable {
    public var temperature: Float = 0
    public var topK: Int = 0            // 0 = off
    public var topP: Float = 1          // 1 = off
    public var minP: Float = 0          // 0 = off
    public var repetitionPenalty: Float = 1
    public var seed: UInt64 = 0

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0, repetitionPenalty: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.minP = minP
        self.repetitionPenalty = repetitionPenalty; self.seed = seed
    }

    public var isGreedy: Bool { temperature == 0 }

    /// Throws a clear error for an out-of-range option.
    public func validate() throws {
        guard temperature.isFinite, temperature >= 0, temperature <= 100 else { throw LoopError.invalidArgument("--temperature must be in 0...100, got \(temperature)") }
        guard topK >= 0 else { throw LoopError.invalidArgument("--top-k must be >= 0, got \(topK)") }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw LoopError.invalidArgument("--top-p must be in (0, 1], got \(topP)") }
        guard minP.isFinite, minP >= 0, minP <= 1 else { throw LoopError.invalidArgument("--min-p must be in [0, 1], got \(minP)") }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0, repetitionPenalty <= 10 else {
            throw LoopError.invalidArgument("--repetition-penalty must be in (0, 10], got \(repetitionPenalty)")
        }
    }
}

/// Picks the next token from a row of logits. Deterministic for a given seed on any backend.
public struct Sampler: Sendable {
    public let options: SamplingOptions
    private var rng: SplitMix64

    public init(_ options: SamplingOptions) {
        self.options = options
        rng = SplitMix64(seed: options.seed)
    }

    /// The first index of the maximum (NaN never wins).
    public static func argmax(_ logits: [Float]) -> Int {
        var best = 0
        var bestValue = -Float.infinity
        var found = false
        for (i, v) in logits.enumerated() where !v.isNaN && (!found || v > bestValue) {
            best = i; bestValue = v; found = true
        }
        return best
    }

    public mutating func next(_ logitsIn: [Float], history: [Int]) -> Int {
        var logits = logitsIn
        if options.repetitionPenalty != 1 {
            for t in Set(history) where t >= 0 && t < logits.count {
                logits[t] = logits[t] > 0 ? logits[t] / options.repetitionPenalty : logits[t] * options.repetitionPenalty
            }
        }
        if options.isGreedy { return Self.argmax(logits) }

        // Candidates sorted by logit (ties: lower index first, so results are reproducible).
        var idx = logits.indices.filter { !logits[$0].isNaN }
        idx.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if options.topK > 0 && idx.count > options.topK { idx.removeSubrange(options.topK...) }
        guard let top = idx.first else { return 0 }
        let m = Double(logits[top])
        let t = Double(options.temperature)
        var probs = idx.map { exp((Double(logits[$0]) - m) / t) }
        var sum = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= sum }
        if options.minP > 0 {
            let cut = Double(options.minP) * probs[0]
            let keep = probs.firstIndex { $0 < cut } ?? probs.count
            idx.removeSubrange(keep...); probs.removeSubrange(keep...)
        }
        if options.topP < 1 {
            var acc = 0.0
            var keep = probs.count
            for (i, p) in probs.enumerated() {
                acc += p
                if acc >= Double(options.topP) { keep = i + 1; break }
            }
            idx.removeSubrange(keep...); probs.removeSubrange(keep...)
        }
        sum = probs.reduce(0, +)
        let u = rng.nextDouble() * sum
        var acc = 0.0
        for (i, p) in probs.enumerated() {
            acc += p
            if u < acc { return idx[i] }
        }
        return idx[idx.count - 1]
    }
}
