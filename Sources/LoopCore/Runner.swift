import Foundation

/// How a forward decides which pass's state reaches the head.
public enum ExitRule: Sendable, Equatable {
    /// Run every pass; the head reads the last state.
    case allPasses
    /// Ouro's Q-exit: run every pass (as the reference does, so every KV slot is filled), then
    /// per row take the state of the first pass whose exit CDF reaches `threshold` (else the last).
    case ouroQExit(threshold: Float)
    /// Run every pass; the head reads the state of pass `pass` (0-based) for every row
    /// (Ouro's `early_exit_step`).
    case fixedPass(Int)
    /// LoopUS halting on the last row (see `LoopUSHalting`): stop after the pass where the rule
    /// fires. Passes after it are not run, so their KV slots keep stale rows for this position
    /// (the reference leaves them empty).
    case loopus(LoopUSHalting.Settings)
}

/// The result of one forward call.
public struct ForwardResult: Sendable {
    public var rows: Int
    /// rows x vocab logits.
    public var logits: [Float]
    /// Passes executed.
    public var passesRun: Int
    /// exitSignals[t] = the plan's exit activation after pass t (one value per row); empty
    /// when the plan has no exit signal.
    public var exitSignals: [[Float]]
    /// Per row: the 0-based pass whose state fed the head.
    public var exitPasses: [Int]

    /// The logits of one row.
    public func logits(row: Int) -> ArraySlice<Float> {
        let v = logits.count / max(rows, 1)
        return logits[(row * v)..<((row + 1) * v)]
    }
}

/// LoopUS halting rules as the reference applies them after each pass (batch of one, last row).
public struct LoopUSHalting: Sendable {
    public struct Settings: Sendable, Equatable {
        public var strategy: HaltingStrategy
        public var threshold: Float
        public var epsilon: Float
        public var evalInterval: Int
        public init(strategy: HaltingStrategy, threshold: Float, epsilon: Float = 0.01, evalInterval: Int = 1) {
            self.strategy = strategy; self.threshold = threshold; self.epsilon = epsilon; self.evalInterval = max(1, evalInterval)
        }
        /// The settings of a LoopUS config.
        public init?(info: ModelInfo) {
            guard let s = info.haltingStrategy, let q = info.qThreshold else { return nil }
            self.init(strategy: s, threshold: q, epsilon: info.convergenceEpsilon ?? 0.01, evalInterval: info.qEvalInterval ?? 1)
        }
    }

    public let settings: Settings
    public let passes: Int
    private var logSurvival: Float = 0
    /// The cdf rule's 1 − Π(1 − q) over the passes evaluated so far.
    public var cdf: Float { 1 - Foundation.exp(logSurvival) }

    public init(_ settings: Settings, passes: Int) { self.settings = settings; self.passes = passes }

    /// Whether to stop after pass `t` (0-based), given q of the last row after the gate and the
    /// norm of the last row's state change over the pass. q is evaluated (and the cdf updated) only
    /// on passes where (t + 1) % interval == 0 or on the last pass; tests are strict (`>`, `<`).
    public mutating func shouldStop(afterPass t: Int, q: Float, stateChangeNorm: Float) -> Bool {
        switch settings.strategy {
        case .convergence:
            return stateChangeNorm < settings.epsilon
        case .threshold, .cdf:
            let evaluate = (t + 1) % settings.evalInterval == 0 || t == passes - 1
            guard evaluate else { return false }
            if settings.strategy == .threshold { return q > settings.threshold }
            logSurvival += Foundation.log1p(-min(q, 1 - 1e-7))
            return cdf > settings.threshold
        }
    }

    /// Passes the reference runs for a sequence of per-pass q values (threshold / cdf rules).
    public static func passesRun(q: [Float], settings: Settings) -> Int {
        var h = LoopUSHalting(settings, passes: q.count)
        for (t, v) in q.enumerated() where h.shouldStop(afterPass: t, q: v, stateChangeNorm: .infinity) { return t + 1 }
        return q.count
    }
}

/// Drives any `PlanBackend` through a plan: prelude, passes, head, exit rules, greedy decoding.
/// The CPU reference and the Vulkan backend run through this same driver.
public struct PlanRunner {
    public let plan: LoopPlan
    public let backend: PlanBackend

    public init(plan: LoopPlan, backend: PlanBackend) { self.plan = plan; self.backend = backend }

    // MARK: Steps

    public func prelude(tokens: [Int32], pos0: Int) throws {
        try backend.run(plan.prelude, section: SectionKey("prelude", rows: tokens.count), tokens: tokens, pos0: pos0)
    }

    /// Runs pass `t` (0-based).
    public func pass(_ t: Int, tokens: [Int32], pos0: Int) throws {
        guard t >= 0, t < plan.passCount else {
            throw LoopError.invalidArgument("pass \(t) out of range 0..<\(plan.passCount)")
        }
        try backend.run(plan.passes[t], section: SectionKey("pass\(t)", rows: tokens.count), tokens: tokens, pos0: pos0)
    }

    /// Runs the head on the current state; returns rows x vocab logits.
    public func head(tokens: [Int32], pos0: Int) throws -> [Float] {
        try backend.run(plan.head, section: SectionKey("head", rows: tokens.count), tokens: tokens, pos0: pos0)
        return try backend.read(plan.logitsAct, rows: tokens.count)
    }

    /// The recurrent state (rows x hidden).
    public func state(rows: Int) throws -> [Float] { try backend.read(plan.stateAct, rows: rows) }

    /// The exit activation (one value per row), or [] when the plan has none.
    public func exitValues(rows: Int) throws -> [Float] {
        guard let e = plan.exitAct else { return [] }
        return try backend.read(e, rows: rows)
    }

    // MARK: Forward

    /// One call over `tokens` at positions pos0 ..< pos0 + n: prelude, passes per `exit`, head.
    public func forward(tokens: [Int32], pos0: Int = 0, exit: ExitRule = .allPasses) throws -> ForwardResult {
        let n = tokens.count
        let T = plan.passCount
        let hidden = plan.hidden
        try prelude(tokens: tokens, pos0: pos0)
        var signals: [[Float]] = []
        var exitPasses = [Int](repeating: T - 1, count: n)
        var passesRun = T

        switch exit {
        case .allPasses:
            for t in 0..<T {
                try pass(t, tokens: tokens, pos0: pos0)
                if plan.exitAct != nil { signals.append(try exitValues(rows: n)) }
            }

        case .ouroQExit, .fixedPass:
            var states: [[Float]] = []
            for t in 0..<T {
                try pass(t, tokens: tokens, pos0: pos0)
                states.append(try state(rows: n))
                if plan.exitAct != nil { signals.append(try exitValues(rows: n)) }
            }
            if case .fixedPass(let k) = exit {
                guard k >= 0, k < T else { throw LoopError.invalidArgument("exit pass \(k) out of range 0..<\(T)") }
                exitPasses = [Int](repeating: k, count: n)
            } else if case .ouroQExit(let q) = exit {
                guard plan.exitSignal == .ouroGateLogit else {
                    throw LoopError.invalidArgument("the Q-exit rule needs Ouro gate logits; this plan's exit signal is \(plan.exitSignal)")
                }
                for r in 0..<n {
                    exitPasses[r] = Self.ouroExitPass(gateLogits: signals.map { $0[r] }, threshold: q, numerics: plan.numerics)
                }
            }
            if exitPasses.contains(where: { $0 != T - 1 }) {
                var chosen = [Float](repeating: 0, count: n * hidden)
                for r in 0..<n {
                    for j in 0..<hidden { chosen[r * hidden + j] = states[exitPasses[r]][r * hidden + j] }
                }
                try backend.write(plan.stateAct, values: chosen)
            }

        case .loopus(let settings):
            guard plan.exitSignal == .loopusConfidence else {
                throw LoopError.invalidArgument("LoopUS halting needs a LoopUS plan; this plan's exit signal is \(plan.exitSignal)")
            }
            var halting = LoopUSHalting(settings, passes: T)
            var before = Array(try state(rows: n).suffix(hidden))
            for t in 0..<T {
                try pass(t, tokens: tokens, pos0: pos0)
                let q = try exitValues(rows: n)
                signals.append(q)
                let after = Array(try state(rows: n).suffix(hidden))
                var sq: Float = 0
                for j in 0..<hidden { let d = after[j] - before[j]; sq += d * d }
                before = after
                if halting.shouldStop(afterPass: t, q: q[n - 1], stateChangeNorm: sq.squareRoot()) {
                    passesRun = t + 1
                    break
                }
            }
            exitPasses = [Int](repeating: passesRun - 1, count: n)
        }
        let logits = try head(tokens: tokens, pos0: pos0)
        return ForwardResult(rows: n, logits: logits, passesRun: passesRun, exitSignals: signals, exitPasses: exitPasses)
    }

    /// Greedy decoding through the KV cache: the prompt in one call at pos0 0, then one token
    /// per call with pos0 advancing. Returns `count` new ids and, for each, the last-row logits
    /// that produced it.
    public func greedy(prompt: [Int32], count: Int, exit: ExitRule = .allPasses) throws -> (ids: [Int32], logits: [[Float]]) {
        guard !prompt.isEmpty else { throw LoopError.invalidArgument("greedy decoding needs a non-empty prompt") }
        var ids: [Int32] = []
        var rows: [[Float]] = []
        var result = try forward(tokens: prompt, pos0: 0, exit: exit)
        var pos = prompt.count
        while ids.count < count {
            let last = result.logits(row: result.rows - 1)
            rows.append(Array(last))
            let next = Int32(Self.argmax(last))
            ids.append(next)
            if ids.count == count { break }
            result = try forward(tokens: [next], pos0: pos, exit: exit)
            pos += 1
        }
        return (ids, rows)
    }

    // MARK: Host-side rules

    /// Index of the first maximal value (NaNs are never chosen unless every value is NaN -> 0).
    public static func argmax<C: Collection>(_ values: C) -> Int where C.Element == Float {
        var best = 0
        var bestValue = -Float.infinity
        var found = false
        for (i, v) in values.enumerated() where !v.isNaN {
            if !found || v > bestValue { best = i; bestValue = v; found = true }
        }
        return best
    }

    /// Ouro's exit distribution for one position (see `OuroQExit`, where the rule is written).
    public static func ouroExitDistribution(gateLogits: [Float], numerics: Numerics = .fp32) -> (pdf: [Float], cdf: [Float]) {
        OuroQExit.distribution(gateLogits: gateLogits, numerics: numerics)
    }

    /// Ouro's Q-exit choice for one position (see `OuroQExit`).
    public static func ouroExitPass(gateLogits: [Float], threshold: Float, numerics: Numerics = .fp32) -> Int {
        OuroQExit.exitPass(gateLogits: gateLogits, threshold: threshold, numerics: numerics)
    }
}
