import Foundation
import LoopCore

/// When a token stops looping. Parsed from `--exit POLICY[:THRESHOLD]`.
public enum ExitPolicy: Sendable, Equatable, CustomStringConvertible {
    /// Every pass runs.
    case none
    /// Exactly k passes (1-based count).
    case fixed(Int)
    /// Ouro: the first pass whose exit CDF (from the gate) reaches q.
    case qExit(Float)
    /// Huginn's zero-shot criteria, checked after each pass.
    case huginn(HuginnCriterion, threshold: Float)
    /// LoopUS: the confidence head (threshold / cdf) or the state change (convergence).
    case loopus(HaltingStrategy, threshold: Float)

    public enum HuginnCriterion: String, Sendable, CaseIterable {
        case kl, minpKL = "minp-kl", entropyDiff = "entropy-diff", latentDiff = "latent-diff", cosine, argmaxStability = "argmax-stability"

        /// The reference's "auto" thresholds.
        public var autoThreshold: Float {
            switch self {
            case .kl: return 1e-3
            case .minpKL: return 1e-5
            case .entropyDiff: return 1e-3
            case .latentDiff: return 0.03
            case .cosine: return 1e-3
            case .argmaxStability: return 5
            }
        }
        /// Whether the criterion needs logits after every pass (the head runs each pass).
        var needsLogits: Bool { self != .latentDiff && self != .cosine }
    }

    public var description: String {
        switch self {
        case .none: return "none"
        case .fixed(let k): return "fixed:\(k)"
        case .qExit(let q): return "q-exit:\(q)"
        case .huginn(let c, let t): return "\(c.rawValue):\(t)"
        case .loopus(let s, let t): return "\(s.rawValue):\(t)"
        }
    }

    /// Parses `POLICY[:THRESHOLD]` for a loaded model (its exit rules; errors say why a rule is missing).
    public static func parse(_ text: String, info: ModelInfo) throws -> ExitPolicy {
        do {
            return try parse(text, rules: info.exitRules, modelType: info.modelType)
        } catch LoopError.invalidArgument(let m) where info.exitRulesNote != nil && m.contains("needs") {
            throw LoopError.invalidArgument(m + ": " + info.exitRulesNote!)
        }
    }

    /// Parses `POLICY[:THRESHOLD]` for a model that offers `rules` (its `ModelInfo.exitRules`;
    /// `modelType` names it in errors). Errors name the accepted policies.
    public static func parse(_ text: String, rules: Set<ExitRuleFamily>, modelType: String) throws -> ExitPolicy {
        func offered(_ rule: ExitRuleFamily, _ what: String) throws {
            guard rules.contains(rule) else {
                let has = rules.isEmpty ? "only none and fixed:K" : "none, fixed:K, " + rules.map(\.policies).sorted().joined(separator: ", ")
                throw LoopError.invalidArgument("--exit \(what) needs \(rule.modelName) model; this one (\(modelType)) offers \(has)")
            }
        }
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        let name = parts.first?.lowercased() ?? ""
        var value: Float?
        if parts.count == 2 {
            guard let v = Float(parts[1]), v.isFinite else { throw LoopError.invalidArgument("--exit \(text): \"\(parts[1])\" is not a number") }
            value = v
        }
        func unit(_ v: Float) throws -> Float {
            guard v >= 0, v <= 1 else { throw LoopError.invalidArgument("--exit \(text): the threshold must be in [0, 1]") }
            return v
        }
        switch name {
        case "none", "off", "all": return .none
        case "fixed", "pass":
            guard let v = value, v >= 1, v == v.rounded() else { throw LoopError.invalidArgument("--exit fixed:K needs a pass count K >= 1") }
            return .fixed(Int(v))
        case "q-exit", "qexit", "q":
            try offered(.qExit, "q-exit")
            return .qExit(try unit(value ?? 0.5))
        case "threshold", "cdf", "convergence":
            try offered(.loopusHalting, name)
            let s = HaltingStrategy(rawValue: name)!
            if s == .convergence {
                let e = value ?? 0.01
                guard e > 0 else { throw LoopError.invalidArgument("--exit convergence:EPS needs EPS > 0") }
                return .loopus(s, threshold: e)
            }
            return .loopus(s, threshold: try unit(value ?? 0.9))
        default:
            if let c = HuginnCriterion(rawValue: name) {
                try offered(.huginnCriteria, name)
                let t = value ?? c.autoThreshold
                guard t > 0 else { throw LoopError.invalidArgument("--exit \(text): the threshold must be positive") }
                return .huginn(c, threshold: t)
            }
            throw LoopError.invalidArgument("unknown exit policy \"\(name)\"; use none, fixed:K, q-exit:Q (Ouro), kl, minp-kl, entropy-diff, latent-diff, cosine, argmax-stability (Huginn), threshold:Q, cdf:Q, convergence:EPS (LoopUS)")
        }
    }

    /// What the policy needs to see after each pass.
    var needsExitSignal: Bool {
        switch self { case .qExit, .loopus(.threshold, _), .loopus(.cdf, _): return true; default: return false }
    }
    var needsState: Bool {
        switch self { case .loopus(.convergence, _): return true; case .huginn(let c, _): return !c.needsLogits; default: return false }
    }
    var needsLogits: Bool {
        if case .huginn(let c, _) = self { return c.needsLogits }
        return false
    }
    /// True when the pass count does not depend on what the passes compute.
    var isStatic: Bool {
        switch self { case .none, .fixed: return true; default: return false }
    }
}

extension ExitRuleFamily {
    /// The `--exit` policies of the rule, for messages.
    var policies: String {
        switch self {
        case .qExit: return "q-exit:Q"
        case .huginnCriteria: return ExitPolicy.HuginnCriterion.allCases.map(\.rawValue).joined(separator: ", ")
        case .loopusHalting: return "threshold:Q, cdf:Q, convergence:EPS"
        }
    }
    var modelName: String {
        switch self { case .qExit: return "an Ouro"; case .huginnCriteria: return "a Huginn"; case .loopusHalting: return "a LoopUS" }
    }
}

/// Follows one token through its passes and says when to stop.
struct ExitTracker {
    let policy: ExitPolicy
    let totalPasses: Int
    let minPasses: Int
    private var remaining: Float = 1          // Ouro: Π(1 − λ)
    private var loopus: LoopUSHalting?
    private var prevLogProbs: [Float]?
    private var prevEntropy: Float?
    private var prevState: [Float]?
    private var prevArgmax = -1
    private var sameArgmax = 0

    init(policy: ExitPolicy, totalPasses: Int, minPasses: Int = 1, qEvalInterval: Int = 1) {
        self.policy = policy
        self.totalPasses = totalPasses
        self.minPasses = max(1, minPasses)
        if case let .loopus(strategy, threshold) = policy {
            loopus = LoopUSHalting(.init(strategy: strategy, threshold: threshold, epsilon: threshold, evalInterval: qEvalInterval), passes: totalPasses)
        }
    }

    /// The value the policy compared with its threshold after the last pass seen (Ouro: the exit
    /// CDF; LoopUS: q, the cdf or the state change; Huginn: the criterion), nil where the policy
    /// has none (none, fixed:K) or had nothing to compare yet.
    private(set) var signal: Float?

    /// Called after pass `t` (0-based) with what the policy asked for. True = stop now.
    mutating func shouldStop(after t: Int, exitSignal: Float?, state: [Float]?, logits: [Float]?) -> Bool {
        let fires = observe(after: t, exitSignal: exitSignal, state: state, logits: logits)
        return t + 1 >= totalPasses || fires
    }

    /// Folds in pass `t` and says whether the policy's rule fires there (the last pass always
    /// stops, see `shouldStop`; the signal is computed there too, for reports).
    private mutating func observe(after t: Int, exitSignal: Float?, state: [Float]?, logits: [Float]?) -> Bool {
        let done = t + 1
        signal = nil
        switch policy {
        case .none: return false
        case .fixed(let k): return done >= k
        case .qExit(let q):
            remaining = OuroQExit.remaining(remaining, gateLogit: exitSignal ?? 0)
            signal = 1 - remaining
            return OuroQExit.stops(remaining: remaining, done: done, passes: totalPasses, threshold: q, minPasses: minPasses)
        case .loopus:
            var change = Float.infinity
            if let s = state, let p = prevState { change = Self.norm(zip(s, p).map { $0 - $1 }) }
            prevState = state
            guard let q = exitSignal ?? (state != nil ? 0 : nil) else { return false }
            let stop = loopus!.shouldStop(afterPass: t, q: q, stateChangeNorm: change)
            switch loopus!.settings.strategy {
            case .threshold: signal = q
            case .cdf: signal = loopus!.cdf
            case .convergence: signal = change.isFinite ? change : nil
            }
            return stop && done >= minPasses
        case .huginn(let c, let threshold):
            var stop = false
            switch c {
            case .latentDiff, .cosine:
                if let s = state, let p = prevState {
                    let value: Float
                    if c == .latentDiff {
                        value = Self.norm(zip(s, p).map { $0 - $1 }) / max(Self.norm(s), 1e-20)
                    } else {
                        let dot = zip(s, p).reduce(Float(0)) { $0 + $1.0 * $1.1 }
                        value = 1 - dot / max(Self.norm(s) * Self.norm(p), 1e-20)
                    }
                    signal = value
                    stop = value < threshold
                }
                prevState = state
            case .argmaxStability:
                let a = Sampler.argmax(logits ?? [])
                sameArgmax = a == prevArgmax ? sameArgmax + 1 : 1
                prevArgmax = a
                signal = Float(sameArgmax)
                stop = Float(sameArgmax) >= threshold
            case .kl, .minpKL, .entropyDiff:
                var lp = Self.logSoftmax(logits ?? [])
                if c == .minpKL { lp = Self.minP(lp, 0.1) }
                let prev = prevLogProbs ?? [Float](repeating: -Foundation.log(Float(max(lp.count, 1))), count: lp.count)
                if c == .entropyDiff {
                    let h = Self.entropy(lp)
                    let hp = prevEntropy ?? Foundation.log(Float(max(lp.count, 1)))
                    signal = abs(h - hp)
                    stop = abs(h - hp) < threshold
                    prevEntropy = h
                } else {
                    // KL(previous || current), as the reference's kl_div(new, old, log_target=True)
                    var kl: Float = 0
                    for i in lp.indices where prev[i] > -.infinity {
                        kl += Foundation.exp(prev[i]) * (prev[i] - lp[i])
                    }
                    signal = kl
                    stop = kl < threshold
                }
                prevLogProbs = lp
            }
            return stop && done >= minPasses
        }
    }

    static func norm(_ v: [Float]) -> Float { v.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot() }

    static func logSoftmax(_ x: [Float]) -> [Float] {
        let m = x.max() ?? 0
        let lse = m + Foundation.log(x.reduce(Float(0)) { $0 + Foundation.exp($1 - m) })
        return x.map { $0 - lse }
    }

    static func entropy(_ lp: [Float]) -> Float {
        -lp.reduce(Float(0)) { $1 > -.infinity ? $0 + Foundation.exp($1) * $1 : $0 }
    }

    /// Keeps tokens with p >= minP * max p (others get log-prob -inf), renormalised.
    static func minP(_ lp: [Float], _ minP: Float) -> [Float] {
        let cut = (lp.max() ?? 0) + Foundation.log(minP)
        let kept = lp.map { $0 >= cut ? $0 : -Float.infinity }
        let m = kept.max() ?? 0
        let lse = m + Foundation.log(kept.reduce(Float(0)) { $1 > -.infinity ? $0 + Foundation.exp($1 - m) : $0 })
        return kept.map { $0 > -.infinity ? $0 - lse : -.infinity }
    }
}
