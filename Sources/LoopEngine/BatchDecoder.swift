import Foundation
import LoopCore

/// Continuous batching over one `Model`: sequences join and leave between steps; a step
/// prefills one chunk of a new prompt, then decodes one token of every running sequence as the
/// rows of one batch (each weight read once per pass for all rows), each row at its own
/// position over its own KV pages (`StepRows`).
///
/// Early exit per row: every row follows its own exit policy; a row that stops after pass k
/// leaves the later passes of that step (the batch shrinks pass by pass: the rows that go on
/// are moved to the front, the stopped rows' state is kept aside and put back for the head),
/// so a step costs what its rows' passes cost. Its skipped passes' KV slots get the KV fill of
/// its KV policy, as `Generator` does for one sequence, so each sequence decodes what it would
/// decode alone (up to the rounding of a matrix product over more rows).
///
/// Memory: the backend's KV pool (`BackendLayout.kvRows`, `Model(batch:)`) is shared out in
/// pages as sequences grow and taken back when they end; a sequence is admitted only when the
/// pages for its prompt plus its `maxTokens` are free of other sequences' reservations, so a
/// running sequence never waits for memory.
///
/// Not thread-safe: one thread calls `add`, `cancel` and `step` (the server's decode worker).
public final class BatchDecoder {
    public let model: Model
    /// Rows of one decode step at most.
    public let maxBatch: Int
    /// Prompt rows prefilled per step, between two decode steps (several short prompts' chunks,
    /// or one chunk of a long one).
    public var prefillChunk: Int

    /// A token chosen for a sequence, or its end.
    public enum Event: Sendable, Equatable {
        case token(sequence: Int, id: Int, passes: Int)
        case finished(sequence: Int, stopReason: String)
    }

    final class Sequence {
        let id: Int
        let options: GenerationOptions
        let greedy: Bool
        var sampler: Sampler
        var history: [Int]
        /// Prompt tokens still to prefill (all but the last).
        var pending: ArraySlice<Int>
        /// The next input token (the last prompt token, then each choice).
        var token: Int
        /// Positions written to the KV cache so far (= the position of `token`).
        var position = 0
        var pages: [Int32] = []
        let reservedPages: Int
        var generated = 0
        init(id: Int, prompt: [Int], options: GenerationOptions, reservedPages: Int) {
            self.id = id; self.options = options; self.reservedPages = reservedPages
            greedy = options.sampling.isGreedy && options.sampling.repetitionPenalty == 1
            sampler = Sampler(options.sampling)
            history = prompt
            pending = prompt.dropLast()
            token = prompt[prompt.count - 1]
        }
    }

    private var generators: [KVPolicy: Generator] = [:]
    private var pool: KVPagePool
    private var reserved = 0
    /// Running sequences in admission order.
    private var sequences: [Sequence] = []
    private var nextID = 0
    /// Activations a later pass or the head reads before writing them (see `carriedActs`).
    private let carried: [String]

    /// `maxBatch`: at most the model's `layout.maxSequences`.
    public init(model: Model, maxBatch: Int) throws {
        guard maxBatch >= 1, maxBatch <= model.layout.maxSequences else {
            throw LoopError.invalidArgument("a batch of \(maxBatch) rows needs a model loaded for \(maxBatch) sequences (it holds \(model.layout.maxSequences))")
        }
        self.model = model
        self.maxBatch = maxBatch
        prefillChunk = min(model.layout.maxRows, 64)
        pool = KVPagePool(pages: model.layout.kvRows / KVPages.rows)
        carried = Self.carriedActs(model.plan)
    }

    /// KV pages of the pool, and those not reserved by a running sequence.
    public var totalPages: Int { pool.pageCount }
    public var unreservedPages: Int { pool.pageCount - reserved }
    /// Sequences admitted and not finished.
    public var running: Int { sequences.count }
    /// Running sequences whose prompt is not all prefilled yet.
    public var prefilling: Int { sequences.filter { !$0.pending.isEmpty }.count }

    /// The pages a sequence of `promptTokens` that may generate `maxTokens` reserves.
    public static func pagesNeeded(promptTokens: Int, maxTokens: Int) -> Int { KVPages.pages(positions: promptTokens + maxTokens) }

    /// Whether a sequence of this size can be admitted now (a free row and unreserved pages).
    public func canAdmit(promptTokens: Int, maxTokens: Int) -> Bool {
        sequences.count < maxBatch && Self.pagesNeeded(promptTokens: promptTokens, maxTokens: maxTokens) <= unreservedPages
    }

    /// Admits a sequence; its tokens come from later `step`s. Throws for a request that can
    /// never run (bad ids, over the context or the whole pool, options the batch cannot honour)
    /// and when there is no room now (`canAdmit`).
    public func add(prompt: [Int], options: GenerationOptions) throws -> Int {
        guard !prompt.isEmpty else { throw LoopError.invalidArgument("the prompt is empty") }
        try options.sampling.validate()
        guard options.maxTokens >= 0 else { throw LoopError.invalidArgument("maxTokens must be >= 0") }
        guard !options.warmStart else { throw LoopError.unsupported("warm start is not batched (it carries one sequence's state from token to token)") }
        let context = model.layout.maxContext
        guard prompt.count + options.maxTokens <= context else {
            throw LoopError.invalidArgument("the prompt (\(prompt.count) tokens) and maxTokens (\(options.maxTokens)) exceed the context of \(context) positions")
        }
        for t in prompt where t < 0 || t >= model.plan.vocab {
            throw LoopError.invalidArgument("token id \(t) is outside the vocabulary 0..<\(model.plan.vocab)")
        }
        let need = Self.pagesNeeded(promptTokens: prompt.count, maxTokens: options.maxTokens)
        guard need <= pool.pageCount else {
            throw LoopError.invalidArgument("the sequence needs \(need) KV pages but the whole KV budget holds \(pool.pageCount) (\(pool.pageCount * KVPages.rows) positions)")
        }
        guard canAdmit(promptTokens: prompt.count, maxTokens: options.maxTokens) else {
            throw LoopError.invalidArgument("no room: \(sequences.count) of \(maxBatch) rows busy, \(unreservedPages) of \(pool.pageCount) KV pages unreserved, \(need) needed")
        }
        let s = Sequence(id: nextID, prompt: prompt, options: options, reservedPages: need)
        nextID += 1
        reserved += need
        sequences.append(s)
        return s.id
    }

    /// Ends a sequence now (its pages go back to the pool); no event follows. Unknown ids are ignored.
    public func cancel(_ id: Int) {
        guard let i = sequences.firstIndex(where: { $0.id == id }) else { return }
        release(sequences.remove(at: i))
    }

    private func release(_ s: Sequence) {
        pool.give(s.pages)
        s.pages = []
        reserved -= s.reservedPages
    }

    func generator(_ kv: KVPolicy) -> Generator {
        if let g = generators[kv] { return g }
        let g = Generator(model: model, kv: kv)
        generators[kv] = g
        return g
    }

    /// Makes the sequence's pages cover positions 0 ..< `positions` (within its reservation).
    private func grow(_ s: Sequence, to positions: Int) {
        let need = KVPages.pages(positions: positions) - s.pages.count
        guard need > 0 else { return }
        // The reservation guarantees these pages are free.
        s.pages += pool.take(need)!
    }

    /// One step: prefill chunks of the oldest sequences with prompt left, then one token of
    /// every sequence whose prompt is in (grouped by KV policy: each group one batch). Returns
    /// the tokens chosen and the sequences that ended (their pages are free again).
    public func step() throws -> [Event] {
        // Prompt chunks, oldest sequence first, up to `prefillChunk` rows in all (each
        // sequence's chunk is its own call: its rows share one page table).
        var budget = prefillChunk
        for s in sequences where !s.pending.isEmpty && budget > 0 {
            let part = Array(s.pending.prefix(budget))
            budget -= part.count
            grow(s, to: s.position + part.count)
            let g = generator(s.options.kv)
            try g.chain(g.prefillSections(warm: false), rows: .consecutive(tokens: part.map { Int32($0) }, pos0: s.position, table: s.pages))
            s.position += part.count
            s.pending = s.pending.dropFirst(part.count)
        }
        var events: [Event] = []
        var ended: [Sequence] = []
        // Sequences asked for no tokens end at once.
        for s in sequences where s.pending.isEmpty && s.options.maxTokens == 0 {
            events.append(.finished(sequence: s.id, stopReason: "max-tokens"))
            ended.append(s)
        }
        let ready = sequences.filter { $0.pending.isEmpty && $0.options.maxTokens > 0 }
        for kv in KVPolicy.allCases {
            let group = ready.filter { $0.options.kv == kv }
            guard !group.isEmpty else { continue }
            let chosen = try decode(group, generator(kv))
            for (s, (id, passes)) in zip(group, chosen) {
                s.position += 1
                s.generated += 1
                s.history.append(id)
                s.token = id
                events.append(.token(sequence: s.id, id: id, passes: passes))
                if !s.options.ignoreEOS && s.options.stopTokens.contains(id) {
                    events.append(.finished(sequence: s.id, stopReason: "eos")); ended.append(s)
                } else if s.generated >= s.options.maxTokens {
                    events.append(.finished(sequence: s.id, stopReason: "max-tokens")); ended.append(s)
                }
            }
        }
        for s in ended { cancel(s.id) }
        return events
    }

    /// One decode token for each of `group`'s sequences (one KV policy): returns the choices
    /// and the passes each row ran.
    private func decode(_ group: [Sequence], _ g: Generator) throws -> [(Int, Int)] {
        let backend = model.backend
        let plan = model.plan
        let n = group.count
        for s in group { grow(s, to: s.position + 1) }
        let total = g.passes.count
        let computeAll = g.computesAllPasses
        /// The rows `idx` of the group as one call.
        func rows(_ idx: [Int]) -> StepRows {
            StepRows(tokens: idx.map { Int32(group[$0].token) }, positions: idx.map { group[$0].position },
                     tableOf: Array(0..<idx.count), tables: idx.map { group[$0].pages }, independent: idx.count > 1)
        }
        func run(_ parts: [([Op], String)], _ idx: [Int]) throws { try g.chain(parts, rows: rows(idx)) }
        func policy(_ s: Sequence) -> ExitPolicy {
            if case .fixed(let k) = s.options.exit, k >= total { return .none }
            return s.options.exit
        }
        let policies = group.map(policy)
        let greedyHead = group.contains { $0.greedy }
        let headOps = greedyHead ? g.headArgmax : g.head
        let headName = greedyHead ? "head-argmax" : "head"
        let all = Array(0..<n)
        let vocab = model.layout.activations[plan.logitsAct] ?? plan.vocab
        var used = [Int](repeating: total, count: n)

        let staticK = group.map { g.staticPasses($0.options) }
        if let k = staticK.first ?? nil, staticK.allSatisfy({ $0 == k }) {
            // Every row runs the same passes: one submission, as a lone sequence's static step.
            try run(g.staticSections((g.prelude, "prelude"), head: (headOps, headName), passes: k), all)
            used = Array(repeating: k, count: n)
        } else {
            var trackers = group.indices.map { ExitTracker(policy: policies[$0], totalPasses: total, minPasses: group[$0].options.minPasses,
                                                           qEvalInterval: model.info.qEvalInterval ?? 1) }
            let needsState = policies.contains { $0.needsState }
            let needsSignal = policies.contains { $0.needsExitSignal }
            let needsLogits = policies.contains { $0.needsLogits }
            let signalWidth = plan.exitAct.flatMap { model.layout.activations[$0] } ?? 1
            let hidden = model.layout.activations[plan.stateAct] ?? plan.hidden
            /// Device rows in order: active[i] is the group row in device row i.
            var active = all
            /// Values of the carried activations of rows that stopped (or, computing every
            /// pass, of the state each row chose), by group row.
            var saved: [Int: [String: [Float]]] = [:]
            var stopped = Set<Int>()
            if needsState {
                try run([(g.prelude, "prelude")], active)
                let st = try backend.read(plan.stateAct, rows: n)
                for r in all where policies[r].needsState {
                    _ = trackers[r].shouldStop(after: -1, exitSignal: nil, state: Array(st[(r * hidden)..<((r + 1) * hidden)]), logits: nil)
                }
            }
            for t in 0..<total {
                let m = active.count
                if t == 0 && !needsState {
                    try run([(g.prelude, "prelude"), (g.passes[0], g.passNames[0])], active)
                } else {
                    try run([(g.passes[t], g.passNames[t])], active)
                }
                let signal = needsSignal ? try plan.exitAct.map { try backend.read($0, rows: m) } : nil
                let state = needsState ? try backend.read(plan.stateAct, rows: m) : nil
                var logits: [Float]?
                if needsLogits {
                    try run([(g.head, "head")], active)
                    logits = try backend.read(plan.logitsAct, rows: m)
                }
                var stopNow: [Int] = []   // device rows
                for (i, r) in active.enumerated() where !stopped.contains(r) {
                    let p = policies[r]
                    let stop = trackers[r].shouldStop(after: t, exitSignal: signal.map { $0[i * signalWidth] },
                                                      state: p.needsState ? state.map { Array($0[(i * hidden)..<((i + 1) * hidden)]) } : nil,
                                                      logits: p.needsLogits ? logits.map { Array($0[(i * vocab)..<((i + 1) * vocab)]) } : nil)
                    if stop || t == total - 1 { used[r] = t + 1 }
                    if stop && t < total - 1 { stopNow.append(i) }
                }
                guard !stopNow.isEmpty else { continue }
                let values = try carried.map { ($0, try backend.read($0, rows: m), model.layout.activations[$0] ?? 0) }
                for i in stopNow {
                    let r = active[i]
                    var v: [String: [Float]] = [:]
                    for (name, all, w) in values where !computeAll || name == plan.stateAct { v[name] = Array(all[(i * w)..<((i + 1) * w)]) }
                    saved[r] = v
                    stopped.insert(r)
                }
                if computeAll { continue }   // Ouro's reference: every row computes every pass
                let keep = active.indices.filter { !stopNow.contains($0) }
                if keep.isEmpty { active = []; break }
                if keep != Array(0..<keep.count) {
                    for (name, all, w) in values {
                        try backend.write(name, values: keep.flatMap { all[($0 * w)..<(($0 + 1) * w)] })
                    }
                }
                active = keep.map { active[$0] }
            }
            // Skipped passes' KV slots, per pass count.
            if !computeAll {
                for k in Set(used) where k < total {
                    try run([(g.kvFill(afterPasses: k), "kvfill\(k)")], all.filter { used[$0] == k })
                }
            }
            // Every row's carried values back in group order for the head.
            if !saved.isEmpty {
                let m = active.count
                for name in carried where !computeAll || name == plan.stateAct {
                    guard let w = model.layout.activations[name] else { continue }
                    let dev = m > 0 ? try backend.read(name, rows: m) : []
                    var out: [Float] = []
                    out.reserveCapacity(n * w)
                    for r in all {
                        if let v = saved[r]?[name] { out += v } else if let i = active.firstIndex(of: r) { out += dev[(i * w)..<((i + 1) * w)] }
                    }
                    try backend.write(name, values: out)
                }
            }
            try run([(headOps, headName)], all)
        }

        let argmax = greedyHead ? try backend.read(Model.argmaxAct, rows: n) : []
        let sampled = group.contains { !$0.greedy }
        let logits = sampled ? try backend.read(plan.logitsAct, rows: n) : []
        var out: [(Int, Int)] = []
        for (r, s) in group.enumerated() {
            let id = s.greedy ? Int(argmax[r]) : s.sampler.next(Array(logits[(r * vocab)..<((r + 1) * vocab)]), history: s.history)
            out.append((id, used[r]))
        }
        return out
    }

    /// Activations the passes and the head read that a row's earlier sections wrote: what a
    /// row that stops early must keep for the head, and what moves when the batch shrinks.
    /// An activation counts when a pass or the head reads it before writing it, or when the
    /// prelude writes it and a pass or the head reads it (Huginn's injected prelude output).
    static func carriedActs(_ plan: LoopPlan) -> [String] {
        var names = Set<String>()
        var preludeWrites = Set<String>()
        for op in plan.prelude { if let o = op.output { preludeWrites.insert(o.name) } }
        for ops in plan.passes + [plan.head] {
            var written = Set<String>()
            for op in ops {
                for i in op.inputs where !written.contains(i.name) || preludeWrites.contains(i.name) { names.insert(i.name) }
                if let o = op.output { written.insert(o.name) }
            }
        }
        names.remove(ExitControl.act)
        names.remove(Model.argmaxAct)
        return names.sorted()
    }
}
