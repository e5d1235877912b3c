import Foundation
import LoopCore

/// What the KV slots of passes a token skipped hold for later tokens.
public enum KVPolicy: String, Sendable, CaseIterable {
    /// Skipped passes' slots get the K/V of the last pass the token ran (a later token at pass
    /// k reads the latest computed pass's K/V for that layer).
    case latest
    /// One slot per physical layer, overwritten by every pass (Huginn's compress-s4).
    case shared
    /// The family's reference behaviour: Ouro computes every pass and only chooses which state
    /// reaches the head (no passes are skipped); Huginn and LoopUS behave as `latest`.
    case reference
}

public struct GenerationOptions: Sendable {
    public var maxTokens: Int = 64
    public var sampling = SamplingOptions()
    public var exit: ExitPolicy = .none
    public var minPasses: Int = 1
    public var kv: KVPolicy = .latest
    public var stopTokens: Set<Int> = []
    public var stopStrings: [String] = []
    public var ignoreEOS = false
    /// Huginn: start each token's recurrence from the previous token's final state.
    public var warmStart = false
    /// Ouro Q-exit: take the exit decision on the device (Op.exitDecide and conditional
    /// sections: one submission per token) where the backend can, instead of reading the gate
    /// on the host after every pass. nil = the backend configuration's `device-exit`.
    public var deviceExit: Bool?
    public init() {}
}

public struct GenerationResult: Sendable {
    public var promptTokens: Int
    public var ids: [Int] = []
    public var passes: [Int] = []
    public var prefillSeconds: Double = 0
    public var decodeSeconds: Double = 0
    public var stopReason = "max-tokens"
    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(max(promptTokens - 1, 0)) / prefillSeconds : 0 }
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(ids.count) / decodeSeconds : 0 }
    public var meanPasses: Double { passes.isEmpty ? 0 : Double(passes.reduce(0, +)) / Double(passes.count) }
}

/// Prefill + token-by-token decode over a `Model`, with exit policies that really skip the
/// remaining passes of a token.
public final class Generator {
    public let model: Model
    let kvPolicy: KVPolicy
    let prelude: [Op]
    let warmPrelude: [Op]
    let passes: [[Op]]
    let head: [Op]
    let headArgmax: [Op]
    /// The head without its trailing logits product: prefill keeps the head's KV writes (coda /
    /// decoder layers) but never reads the prompt rows' logits (the last prompt token is decoded).
    let prefillHead: [Op]
    /// Prefill's sections — prelude, passes, `prefillHead` — with the ops whose results nothing
    /// reads removed (`Liveness.prune`: in the last pass's last layer everything past the K/V
    /// writes, and every exit signal). Cold: nothing is read after prefill but the KV caches;
    /// warm: the last row's state is (warm start). A section that lost ops gets its own name
    /// ("pass3-pruned"), so it never shares a recorded command buffer with decode's.
    let prefillCold: [([Op], String)]
    let prefillWarm: [([Op], String)]
    /// Greedy decode with a static exit policy decodes up to this many tokens per call where
    /// the backend can (`PlanBackend.runGreedyChain`), so a small model pays the host's round
    /// trip once per chain instead of once per token; stop tokens and strings are checked after
    /// each chain, and the tokens computed past a stop are dropped (a chain is at most as long
    /// as the tokens accepted before it, so that costs at most 2x on a short answer). 1 = one
    /// call per token. Default: the backend configuration's `chain`.
    public var chainTokens: Int
    /// false: prefill with every op of every pass. Default: the configuration's `prune`.
    public var prunePrefill: Bool
    /// kvSlots[t] = the K slots written by pass t, in layer order.
    let passSlots: [[Int]]
    /// The section name of pass t. Backends record and replay sections by name, and `.shared`
    /// rewrites the passes' KV slots, so its passes get names of their own: two generators with
    /// different KV policies over one model (a server) never replay each other's recordings.
    let passNames: [String]
    private var position = 0
    private var hasState = false

    public init(model: Model, kv: KVPolicy = .latest) {
        self.model = model
        self.kvPolicy = kv
        chainTokens = max(1, min(KernelConfig.maxChain, model.backend.config.chain))
        prunePrefill = model.backend.config.prune
        let plan = model.plan
        passSlots = plan.passes.map { ops in ops.compactMap { op -> Int? in
            if case let .kvWrite(_, slot, .k) = op { return slot } else { return nil }
        } }
        var ps = plan.passes
        if kv == .shared, let first = passSlots.first {
            // Pass t's i-th layer uses pass 0's i-th slot.
            for t in ps.indices where passSlots[t].count == first.count {
                let map = Dictionary(uniqueKeysWithValues: zip(passSlots[t], first))
                ps[t] = ps[t].map { Self.remap($0, map) }
            }
        }
        passes = ps
        let tag = kv == .shared ? "-kv-shared" : ""
        passNames = ps.indices.map { "pass\($0)\(tag)" }
        prelude = plan.prelude
        // Warm start: drop the state initialisation (fills of the state activation).
        warmPrelude = plan.prelude.filter { op in
            if case let .unary(.fill, _, out, _, _) = op, out.name == plan.stateAct { return false }
            return true
        }
        head = plan.head
        var ph = plan.head
        while let last = ph.last, last.output?.name == plan.logitsAct { ph.removeLast() }
        prefillHead = ph
        headArgmax = plan.head + [.argmax(x: ActRef(plan.logitsAct), out: ActRef(Model.argmaxAct), dim: plan.vocab)]
        let full = Self.fullPrefill(prelude: prelude, passes: ps, head: ph, passNames: passNames)
        prefillCold = Self.pruned(full, liveOut: [], suffix: "-pruned")
        prefillWarm = Self.pruned(full, liveOut: [plan.stateAct], suffix: "-pruned-warm")
    }

    static func fullPrefill(prelude: [Op], passes: [[Op]], head: [Op], passNames: [String]? = nil) -> [([Op], String)] {
        [(prelude, "prelude")] + passes.enumerated().map { ($0.element, passNames?[$0.offset] ?? "pass\($0.offset)") } + [(head, "head-prefill")]
    }

    static func pruned(_ sections: [([Op], String)], liveOut: Set<String>, suffix: String) -> [([Op], String)] {
        let kept = Liveness.prune(sections.map(\.0), liveOut: liveOut)
        return zip(sections, kept).map { s, ops in (ops, ops.count == s.0.count ? s.1 : s.1 + suffix) }
    }

    /// The sections prefill runs (see `prefillCold`).
    func prefillSections(warm: Bool) -> [([Op], String)] {
        prunePrefill ? (warm ? prefillWarm : prefillCold) : Self.fullPrefill(prelude: prelude, passes: passes, head: prefillHead, passNames: passNames)
    }

    static func remap(_ op: Op, _ map: [Int: Int]) -> Op {
        switch op {
        case let .kvWrite(src, slot, part): return .kvWrite(src: src, slot: map[slot] ?? slot, part: part)
        case let .attention(q, slot, out, h, kvh, hd, s): return .attention(q: q, slot: map[slot] ?? slot, out: out, heads: h, kvHeads: kvh, headDim: hd, scale: s)
        default: return op
        }
    }

    /// Ops that fill the slots of passes k..<T with pass k-1's K/V at the current rows.
    func kvFill(afterPasses k: Int) -> [Op] {
        guard kvPolicy != .shared, k > 0, k < passSlots.count else { return [] }
        var ops: [Op] = []
        for j in k..<passSlots.count where passSlots[j].count == passSlots[k - 1].count {
            for (from, to) in zip(passSlots[k - 1], passSlots[j]) { ops.append(.kvCopy(from: from, to: to)) }
        }
        return ops
    }

    /// Whether Q-exit decisions can be taken on the device: the plan has Ouro's gate (so the
    /// layout has the control row) and the backend can skip sections on a device value.
    var canDecideOnDevice: Bool {
        guard model.plan.exitSignal == .ouroGateLogit, model.plan.exitAct != nil, model.layout.activations[ExitControl.act] != nil else { return false }
        return backend.capabilities.conditionalSections
    }

    /// The device-side Q-exit decision after pass `t` (see `Op.exitDecide`).
    func exitDecision(after t: Int, threshold: Float, minPasses: Int) -> Op {
        .exitDecide(signal: ActRef(model.plan.exitAct ?? ""), control: ActRef(ExitControl.act), pass: t, passes: passes.count,
                    threshold: threshold, minPasses: max(1, minPasses))
    }

    /// Pass `t` followed by the device decision, and its section name (the threshold and
    /// minimum are recorded into the decision, so they are part of the name).
    func deviceExitPass(_ t: Int, threshold: Float, minPasses: Int) -> [Op] {
        passes[t] + [exitDecision(after: t, threshold: threshold, minPasses: minPasses)]
    }
    func deviceExitSectionName(_ t: Int, threshold: Float, minPasses: Int) -> String {
        "\(passNames[t])+exit(q \(threshold), min \(max(1, minPasses)))"
    }

    /// One token with the Q-exit decision on the device, in one submission: pass 0, then each
    /// later pass only if the decision after the previous one says so, the KV fill of the pass
    /// count it stopped at, the head. Returns the passes used.
    func stepDecidingOnDevice(_ pre: ([Op], String), head: ([Op], String), threshold: Float, minPasses: Int, tok: [Int32], pos: Int) throws -> Int {
        let total = passes.count
        try backend.write(ExitControl.act, values: ExitControl.initial(passes: total))
        var parts: [([Op], String, Int?)] = [(pre.0, pre.1, nil)]
        for t in 0..<total {
            parts.append((deviceExitPass(t, threshold: threshold, minPasses: minPasses), deviceExitSectionName(t, threshold: threshold, minPasses: minPasses),
                          t == 0 ? nil : ExitControl.run(t)))
        }
        for k in 1..<total { parts.append((kvFill(afterPasses: k), "kvfill\(k)", ExitControl.stoppedAfter(k, passes: total))) }
        parts.append((head.0, head.1, nil))
        try chain(parts, tok, pos)
        return Int(try backend.read(ExitControl.act, rows: 1)[1])
    }

    /// Starts a new sequence (positions from 0).
    public func reset() {
        position = 0
        hasState = false
    }

    var backend: PlanBackend { model.backend }

    func run(_ ops: [Op], _ name: String, _ tokens: [Int32], _ pos0: Int) throws {
        try chain([(ops, name)], tokens, pos0)
    }

    /// Runs sections back to back (one submission where the backend can).
    func chain(_ parts: [([Op], String)], _ tokens: [Int32], _ pos0: Int) throws {
        try chain(parts.map { ($0.0, $0.1, nil) }, tokens, pos0)
    }

    /// The same with conditional sections (run only when their `ExitControl` flag is set).
    func chain(_ parts: [([Op], String, Int?)], _ tokens: [Int32], _ pos0: Int) throws {
        try chain(parts, rows: .consecutive(tokens: tokens, pos0: pos0))
    }

    /// Sections over any rows (a batch of sequences: `BatchDecoder`); empty ones are skipped.
    func chain(_ parts: [([Op], String, Int?)], rows: StepRows) throws {
        let list = parts.filter { !$0.0.isEmpty }
            .map { (ops: $0.0, section: SectionKey($0.1, rows: rows.count, condition: $0.2, batch: rows.independent)) }
        if !list.isEmpty { try backend.runSections(list, rows: rows) }
    }
    func chain(_ parts: [([Op], String)], rows: StepRows) throws {
        try chain(parts.map { ($0.0, $0.1, nil) }, rows: rows)
    }

    /// Prefill: every pass for every row (KV of all passes), in chunks of the backend's rows.
    func prefill(_ tokens: [Int], warm: Bool) throws {
        var i = 0
        let chunk = model.layout.maxRows
        while i < tokens.count {
            let part = tokens[i..<min(i + chunk, tokens.count)].map { Int32($0) }
            // Only the last chunk's last row's state can be read afterwards.
            try chain(prefillSections(warm: warm && i + chunk >= tokens.count), part, position)
            position += part.count
            i += part.count
        }
    }

    /// One token through the model at the current position: returns the next-token logits (or
    /// the greedy choice) and the passes used.
    func decodeToken(_ token: Int, options: GenerationOptions, greedy: Bool) throws -> (next: Int?, logits: [Float]?, passes: Int) {
        let tok = [Int32(token)]
        let pos = position
        let pre = options.warmStart && hasState ? warmPrelude : prelude
        let preName = options.warmStart && hasState ? "prelude-warm" : "prelude"
        let total = passes.count
        let headOps = greedy ? headArgmax : head
        let headName = greedy ? "head-argmax" : "head"
        var used = total

        var policy = options.exit
        if case .fixed(let k) = policy, k >= total { policy = .none }
        let computeAll = computesAllPasses

        if let k = staticPasses(options) {
            used = k
            try chain(staticSections((pre, preName), head: (headOps, headName), passes: k), tok, pos)
        } else if case .qExit(let q) = policy, !computeAll, options.deviceExit ?? backend.config.deviceExit, canDecideOnDevice {
            used = try stepDecidingOnDevice((pre, preName), head: (headOps, headName), threshold: q, minPasses: options.minPasses, tok: tok, pos: pos)
        } else {
            var tracker = ExitTracker(policy: policy, totalPasses: total, minPasses: options.minPasses, qEvalInterval: model.info.qEvalInterval ?? 1)
            var chosenState: [Float]?
            let plan = model.plan
            // The prelude goes with pass 0 in one submission unless the policy must see the
            // state before the first pass.
            if policy.needsState {
                try run(pre, preName, tok, pos)
                _ = tracker.shouldStop(after: -1, exitSignal: nil, state: try backend.read(plan.stateAct, rows: 1), logits: nil)
            }
            for t in 0..<total {
                if t == 0 && !policy.needsState {
                    try chain([(pre, preName), (passes[0], passNames[0])], tok, pos)
                } else {
                    try run(passes[t], passNames[t], tok, pos)
                }
                let signal = policy.needsExitSignal ? try plan.exitAct.map { try backend.read($0, rows: 1)[0] } : nil
                let state = policy.needsState ? try backend.read(plan.stateAct, rows: 1) : nil
                var logits: [Float]?
                if policy.needsLogits {
                    try run(head, "head", tok, pos)
                    logits = try backend.read(plan.logitsAct, rows: 1)
                }
                if tracker.shouldStop(after: t, exitSignal: signal, state: state, logits: logits) {
                    used = t + 1
                    if computeAll && used < total {
                        // Ouro reference: keep computing every pass, but the head sees pass t*.
                        chosenState = try backend.read(plan.stateAct, rows: 1)
                        for t2 in (t + 1)..<total { try run(passes[t2], passNames[t2], tok, pos) }
                    }
                    break
                }
            }
            if let s = chosenState { try backend.write(plan.stateAct, values: s) }
            try chain([(computeAll ? [] : kvFill(afterPasses: used), "kvfill\(used)"), (headOps, headName)], tok, pos)
        }
        position += 1
        hasState = true
        if greedy { return (Int(try backend.read(Model.argmaxAct, rows: 1)[0]), nil, used) }
        return (nil, try backend.read(model.plan.logitsAct, rows: 1), used)
    }

    /// Greedy tokens from `token` in one submission (see `chainTokens`), or nil where a chain
    /// does not apply: not greedy, an exit policy that looks between passes, a warm start, the
    /// backend cannot chain (the CPU reference, profiling). Returns the choices and the passes each used.
    func decodeChain(_ token: Int, count: Int, options: GenerationOptions, greedy: Bool) throws -> (ids: [Int], passes: Int)? {
        guard greedy, count >= 2, !options.warmStart, backend.capabilities.greedyChain >= count,
              let used = staticPasses(options) else { return nil }
        let parts = staticSections((prelude, "prelude"), head: (headArgmax, "head-argmax"), passes: used)
            .filter { !$0.0.isEmpty }.map { (ops: $0.0, section: SectionKey($0.1, rows: 1)) }
        let ids = try backend.runGreedyChain(parts, argmax: ActRef(Model.argmaxAct), token: Int32(token), pos0: position, count: count)
        return (ids.map { Int($0) }, used)
    }

    /// The passes every token runs under a policy fixed in advance (none, fixed:k), or nil when
    /// the policy decides between passes (or Ouro's reference KV computes them all).
    func staticPasses(_ options: GenerationOptions) -> Int? {
        guard !computesAllPasses else { return nil }
        switch options.exit {
        case .none: return passes.count
        case .fixed(let k): return min(k, passes.count)
        default: return nil
        }
    }

    /// The reference KV policy of a family whose official code computes every pass (Ouro).
    var computesAllPasses: Bool { kvPolicy == .reference && model.info.referenceComputesAllPasses }

    /// One token's sections when it runs its first `k` passes: the prelude, the passes, the KV
    /// fill of the passes it skips, the head.
    func staticSections(_ pre: ([Op], String), head: ([Op], String), passes k: Int) -> [([Op], String)] {
        [pre] + (0..<k).map { (passes[$0], passNames[$0]) } + [(kvFill(afterPasses: k), "kvfill\(k)"), head]
    }

    /// Generates from `prompt` ids. `onToken(id, passes)` is called as each token is chosen.
    public func generate(prompt: [Int], options: GenerationOptions, onToken: (Int, Int) throws -> Bool = { _, _ in true }) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw LoopError.invalidArgument("the prompt is empty") }
        try options.sampling.validate()
        guard options.maxTokens >= 0 else { throw LoopError.invalidArgument("--max-tokens must be >= 0") }
        let context = model.layout.maxContext
        guard prompt.count <= context else {
            throw LoopError.invalidArgument("the prompt has \(prompt.count) tokens but the context holds \(context) (--context raises it, up to the model's own limit)")
        }
        for t in prompt where t < 0 || t >= model.plan.vocab {
            throw LoopError.invalidArgument("token id \(t) is outside the vocabulary 0..<\(model.plan.vocab)")
        }
        reset()
        var result = GenerationResult(promptTokens: prompt.count)
        var sampler = Sampler(options.sampling)
        let greedy = options.sampling.isGreedy && options.sampling.repetitionPenalty == 1

        let t0 = DispatchTime.now().uptimeNanoseconds
        try prefill(Array(prompt.dropLast()), warm: options.warmStart)
        if options.warmStart && prompt.count > 1 {
            // The first decode row starts from the last prompt row's final state.
            let w = model.plan.hidden
            let rows = (prompt.count - 1 - 1) % model.layout.maxRows + 1
            let s = try backend.read(model.plan.stateAct, rows: rows)
            try backend.write(model.plan.stateAct, values: Array(s[((rows - 1) * w)..<(rows * w)]))
            hasState = true
        }
        let t1 = DispatchTime.now().uptimeNanoseconds
        result.prefillSeconds = Double(t1 - t0) / 1e9

        var token = prompt[prompt.count - 1]
        var history = prompt
        let tDecode = DispatchTime.now().uptimeNanoseconds
        decoding: while result.ids.count < options.maxTokens {
            if position >= context { result.stopReason = "context-full"; break }
            // Chains grow with the tokens accepted so far (1, 1, 2, 4, 8, ...): a short answer that
            // stops early wastes at most as many tokens as it kept.
            let n = min(chainTokens, max(1, result.ids.count), options.maxTokens - result.ids.count, context - position)
            if let chain = try decodeChain(token, count: n, options: options, greedy: greedy) {
                let start = position
                for (i, id) in chain.ids.enumerated() {
                    position = start + i + 1
                    hasState = true
                    result.ids.append(id)
                    result.passes.append(chain.passes)
                    history.append(id)
                    token = id
                    if !(try onToken(id, chain.passes)) { result.stopReason = "stop-string"; break decoding }
                    if !options.ignoreEOS && options.stopTokens.contains(id) { result.stopReason = "eos"; break decoding }
                }
                continue
            }
            let (next, logits, used) = try decodeToken(token, options: options, greedy: greedy)
            let id = next ?? sampler.next(logits!, history: history)
            result.ids.append(id)
            result.passes.append(used)
            history.append(id)
            token = id
            if !(try onToken(id, used)) { result.stopReason = "stop-string"; break }
            if !options.ignoreEOS && options.stopTokens.contains(id) { result.stopReason = "eos"; break }
        }
        result.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - tDecode) / 1e9
        return result
    }
}
