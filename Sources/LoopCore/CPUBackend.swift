import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The CPU reference backend: executes plan ops one by one with the `CPUOps` twins, all in
/// fp32 (with `.bf16` numerics in the layout, rounding to bf16 where the official code's
/// bfloat16 run rounds: every op's stored output and the points inside ops, see `Numerics`). Activations hold `maxRows` rows of their declared width; the KV cache holds
/// `kvSlots x 2 (K, V) x kvRows x kvWidth` values (pages of sequences, see `StepRows`). Everything starts zero-filled.
/// Every op is validated before it runs (activation names and column windows, weight sizes,
/// token ids, positions, slots); violations throw `LoopError.invalidArgument`.
public final class CPUBackend: PlanBackend {
    public let layout: BackendLayout
    public let weights: WeightStore
    public var name: String { "cpu-reference" }
    public var config: KernelConfig
    /// Sections run one after another; conditional ones check their flag first.
    public var capabilities: BackendCapabilities { BackendCapabilities(greedyChain: 0, conditionalSections: true) }

    private var acts: [String: UnsafeMutableBufferPointer<Float>] = [:]
    /// bf16 numerics: round as the official code's bfloat16 run does.
    private let roundBF16: Bool
    private let kv: UnsafeMutablePointer<Float>
    private let kvCount: Int

    /// `kernels`: nil = the defaults with `LOOPVK_KERNELS` applied (only chain, prune and
    /// device-exit mean anything here).
    public init(layout: BackendLayout, weights: WeightStore, kernels: KernelConfig? = nil) throws {
        config = try kernels ?? KernelConfig.resolve(for: .cpuReference, deviceName: "cpu-reference", check: false)
        guard layout.maxRows > 0 else { throw LoopError.invalidArgument("backend layout: maxRows must be positive, got \(layout.maxRows)") }
        guard layout.maxContext > 0 else { throw LoopError.invalidArgument("backend layout: maxContext must be positive, got \(layout.maxContext)") }
        guard layout.kvSlots >= 0, layout.kvWidth >= 0 else {
            throw LoopError.invalidArgument("backend layout: kvSlots \(layout.kvSlots) and kvWidth \(layout.kvWidth) must not be negative")
        }
        self.layout = layout
        self.weights = weights
        roundBF16 = layout.numerics == .bf16
        for (name, width) in layout.activations {
            guard width > 0 else { throw LoopError.invalidArgument("activation \(name) has width \(width)") }
            let (count, overflow) = width.multipliedReportingOverflow(by: layout.maxRows)
            guard !overflow else { throw LoopError.invalidArgument("activation \(name) is too large") }
            let buf = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
            buf.initialize(repeating: 0)
            acts[name] = buf
        }
        var total = layout.kvSlots
        for f in [2, layout.kvRows, layout.kvWidth] {
            let (p, o) = total.multipliedReportingOverflow(by: f)
            guard !o else { throw LoopError.invalidArgument("KV cache size overflows") }
            total = p
        }
        kvCount = total
        // calloc: zero pages are only committed when written.
        guard let raw = calloc(max(total, 1), MemoryLayout<Float>.stride) else {
            for (_, b) in acts { b.deallocate() }
            throw LoopError.invalidArgument("cannot allocate a KV cache of \(total) floats")
        }
        kv = raw.bindMemory(to: Float.self, capacity: max(total, 1))
    }

    /// Convenience: sizes from a plan, weights from a checkpoint plus the plan's computed tensors.
    public convenience init(plan: LoopPlan, checkpoint: Checkpoint?, maxRows: Int, maxContext: Int? = nil) throws {
        try self.init(layout: BackendLayout(plan: plan, maxRows: maxRows, maxContext: maxContext),
                      weights: WeightStore(checkpoint: checkpoint, plan: plan))
    }

    deinit {
        for (_, b) in acts { b.deallocate() }
        free(kv)
    }

    // MARK: - PlanBackend

    public func run(_ ops: [Op], section: SectionKey, rows step: StepRows) throws {
        let n = step.count
        guard n > 0 else { throw LoopError.invalidArgument("\(section): a run needs at least one row (no tokens given)") }
        try step.validate(layout, what: "\(section)")
        if let c = section.condition, try read(ExitControl.act, rows: 1)[c] == 0 { return }
        for (i, op) in ops.enumerated() {
            do {
                try execute(op, step: step)
                if roundBF16 { try roundOutput(op, rows: n) }
            } catch let LoopError.invalidArgument(msg) {
                throw LoopError.invalidArgument("\(section) op \(i) (\(op.kindName)): \(msg)")
            }
        }
    }

    public func read(_ act: String, rows: Int) throws -> [Float] {
        let (buf, width) = try activation(act)
        guard rows >= 0, rows <= layout.maxRows else {
            throw LoopError.invalidArgument("read \(act): \(rows) rows, the backend holds \(layout.maxRows)")
        }
        return Array(buf[0..<(rows * width)])
    }

    public func write(_ act: String, values: [Float]) throws {
        let (buf, width) = try activation(act)
        guard values.count % width == 0 else {
            throw LoopError.invalidArgument("write \(act): \(values.count) values are not whole rows of width \(width)")
        }
        guard values.count / width <= layout.maxRows else {
            throw LoopError.invalidArgument("write \(act): \(values.count / width) rows, the backend holds \(layout.maxRows)")
        }
        for (i, v) in values.enumerated() { buf[i] = v }
    }

    public func readKV(slot: Int, part: KVPart, rows: Int) throws -> [Float] {
        guard slot >= 0, slot < layout.kvSlots else {
            throw LoopError.invalidArgument("readKV: slot \(slot) out of range 0..<\(layout.kvSlots)")
        }
        guard rows >= 0, rows <= layout.kvRows else {
            throw LoopError.invalidArgument("readKV: \(rows) rows, the cache holds \(layout.kvRows)")
        }
        let p = kvBase(slot: slot, part: part)
        return Array(UnsafeBufferPointer(start: p, count: rows * layout.kvWidth))
    }

    // MARK: - Validation helpers

    private func activation(_ name: String) throws -> (UnsafeMutableBufferPointer<Float>, Int) {
        guard let buf = acts[name], let width = layout.activations[name] else {
            throw LoopError.invalidArgument("unknown activation \(name)")
        }
        return (buf, width)
    }

    /// A checked column window `ref` of `width` columns.
    private func rows(_ ref: ActRef, width: Int) throws -> CPURows {
        let (buf, w) = try activation(ref.name)
        guard width >= 0, ref.col >= 0, ref.col + width <= w else {
            throw LoopError.invalidArgument("columns \(ref.col)..<\(ref.col + width) of \(ref.name) exceed its width \(w)")
        }
        return CPURows(buf, stride: w, col: ref.col)
    }

    /// The weight widened to fp32 (WeightStore caches it, once per process-wide store).
    private func weightFloats(_ name: String) throws -> [Float] {
        do { return try weights.floats(name) } catch {
            throw LoopError.invalidArgument("weight \(name) is not available (\(error))")
        }
    }

    /// Runs `body` with the `count` weight values starting at `ref.offset` (checked).
    private func withWeight<R>(_ ref: WeightRef, count: Int, _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        let w = try weightFloats(ref.name)
        guard ref.offset >= 0, count >= 0, ref.offset + count <= w.count else {
            throw LoopError.invalidArgument("weight \(ref) needs elements \(ref.offset)..<\(ref.offset + count), it has \(w.count)")
        }
        return try w.withUnsafeBufferPointer { p in
            try body(UnsafeBufferPointer(rebasing: p[ref.offset..<(ref.offset + count)]))
        }
    }

    private func withOptionalWeight<R>(_ ref: WeightRef?, count: Int, _ body: (UnsafeBufferPointer<Float>?) throws -> R) throws -> R {
        guard let ref else { return try body(nil) }
        return try withWeight(ref, count: count) { try body($0) }
    }

    private func kvBase(slot: Int, part: KVPart) -> UnsafeMutablePointer<Float> {
        kv + ((slot * 2 + Int(part.rawValue)) * layout.kvRows) * layout.kvWidth
    }

    private func checkSlot(_ slot: Int) throws {
        guard slot >= 0, slot < layout.kvSlots else {
            throw LoopError.invalidArgument("KV slot \(slot) out of range 0..<\(layout.kvSlots)")
        }
    }

    private func positive(_ values: [(String, Int)]) throws {
        for (k, v) in values where v <= 0 { throw LoopError.invalidArgument("\(k) must be positive, got \(v)") }
    }

    // MARK: - Execution

    /// bf16 numerics: rounds the window an op stored to bf16, as every op of a torch bfloat16 run
    /// returns a bf16 tensor (indices, the exit control row and the KV cache are left alone: the
    /// cache receives values that are bf16 already).
    private func roundOutput(_ op: Op, rows n: Int) throws {
        let width: Int
        switch op {
        case let .embed(_, _, dim, _, _): width = dim
        case let .rmsNorm(_, _, _, _, dim, groups, _, _): width = dim * groups
        case let .layerNorm(_, _, _, _, dim, _): width = dim
        case let .linear(_, _, _, _, _, outF, _): width = outF
        case let .rope(_, heads, headDim, _, _, _): width = heads * headDim
        case let .attention(_, _, _, heads, _, headDim, _): width = heads * headDim
        case let .siluMul(_, _, _, dim), let .unary(_, _, _, dim, _), let .binary(_, _, _, _, dim), let .softmax(_, _, dim):
            width = dim
        case let .copy(_, _, w): width = w
        case .kvWrite, .kvCopy, .argmax, .exitDecide: return
        }
        guard let out = op.output else { return }
        let o = try rows(out, width: width)
        for r in 0..<n {
            let p = o.row(r)
            for j in 0..<width { p[j] = bf16(p[j]) }
        }
    }

    private func execute(_ op: Op, step: StepRows) throws {
        let tokens = step.tokens
        let cacheRows = { (0..<step.count).map { step.kvRow($0, step.positions[$0]) } }
        let n = tokens.count
        switch op {
        case let .embed(table, vocab, dim, out, scale):
            try positive([("vocab", vocab), ("dim", dim)])
            for (r, t) in tokens.enumerated() where t < 0 || Int(t) >= vocab {
                throw LoopError.invalidArgument("token id \(t) at row \(r) is outside the vocabulary 0..<\(vocab)")
            }
            let o = try rows(out, width: dim)
            try withWeight(table, count: vocab * dim) { t in
                CPUOps.embedding(ids: tokens, table: t, dim: dim, scale: scale, out: o)
            }

        case let .rmsNorm(x, add, weight, out, dim, groups, eps, mode):
            try positive([("dim", dim), ("groups", groups)])
            let xr = try rows(x, width: dim * groups)
            let orow = try rows(out, width: dim * groups)
            var ar: CPURows? = nil
            if mode == .normalizeSum {
                guard let add else { throw LoopError.invalidArgument("normalizeSum needs an add operand") }
                ar = try rows(add, width: dim * groups)
            }
            try withOptionalWeight(weight, count: dim) { w in
                CPUOps.rmsNorm(x: xr, add: ar, weight: w, out: orow, rows: n, dim: dim, groups: groups, eps: eps, mode: mode, roundBF16: roundBF16)
            }

        case let .layerNorm(x, weight, bias, out, dim, eps):
            try positive([("dim", dim)])
            let xr = try rows(x, width: dim)
            let orow = try rows(out, width: dim)
            try withWeight(weight, count: dim) { w in
                try withOptionalWeight(bias, count: dim) { b in
                    CPUOps.layerNorm(x: xr, weight: w, bias: b, out: orow, rows: n, dim: dim, eps: eps)
                }
            }

        case let .linear(x, weight, bias, out, inF, outF, acc):
            try positive([("inFeatures", inF), ("outFeatures", outF)])
            let xr = try rows(x, width: inF)
            let orow = try rows(out, width: outF)
            if x.name == out.name {
                throw LoopError.invalidArgument("linear input and output are the same activation \(x.name)")
            }
            try withWeight(weight, count: inF * outF) { w in
                try withOptionalWeight(bias, count: outF) { b in
                    CPUOps.linear(x: xr, weight: w, bias: b, out: orow, rows: n, inFeatures: inF, outFeatures: outF, accumulate: acc, roundBF16: roundBF16)
                }
            }

        case let .rope(x, heads, headDim, table, tablePositions, layout):
            try positive([("heads", heads), ("headDim", headDim), ("tablePositions", tablePositions)])
            guard headDim % 2 == 0 else { throw LoopError.invalidArgument("RoPE headDim \(headDim) is odd") }
            guard let last = step.positions.max(), last < tablePositions else {
                throw LoopError.invalidArgument("positions up to \(step.positions.max() ?? 0) exceed the RoPE table's \(tablePositions) positions")
            }
            let xr = try rows(x, width: heads * headDim)
            try withWeight(table, count: tablePositions * headDim) { t in
                CPUOps.rope(x: xr, positions: step.positions, heads: heads, headDim: headDim, table: t, layout: layout, roundBF16: roundBF16)
            }

        case let .kvWrite(src, slot, part):
            try checkSlot(slot)
            let s = try rows(src, width: layout.kvWidth)
            CPUOps.kvWrite(src: s, cacheRows: cacheRows(), width: layout.kvWidth, cache: kvBase(slot: slot, part: part), type: config.kv)

        case let .attention(q, slot, out, heads, kvHeads, headDim, scale):
            try checkSlot(slot)
            try positive([("heads", heads), ("kvHeads", kvHeads), ("headDim", headDim)])
            guard heads % kvHeads == 0 else { throw LoopError.invalidArgument("heads \(heads) is not a multiple of kvHeads \(kvHeads)") }
            guard kvHeads * headDim <= layout.kvWidth else {
                throw LoopError.invalidArgument("kvHeads \(kvHeads) x headDim \(headDim) exceed the KV width \(layout.kvWidth)")
            }
            let qr = try rows(q, width: heads * headDim)
            let orow = try rows(out, width: heads * headDim)
            if q.name == out.name {
                throw LoopError.invalidArgument("attention query and output are the same activation \(q.name)")
            }
            CPUOps.attention(q: qr, step: step, keys: kvBase(slot: slot, part: .k), values: kvBase(slot: slot, part: .v),
                             kvStride: layout.kvWidth, out: orow, heads: heads, kvHeads: kvHeads, headDim: headDim, scale: scale,
                             roundBF16: roundBF16)

        case let .siluMul(gate, up, out, dim):
            try positive([("dim", dim)])
            CPUOps.siluMul(gate: try rows(gate, width: dim), up: try rows(up, width: dim), out: try rows(out, width: dim), rows: n, dim: dim,
                           roundBF16: roundBF16)

        case let .unary(kind, x, out, dim, scale):
            try positive([("dim", dim)])
            let orow = try rows(out, width: dim)
            let xr = kind == .fill ? orow : try rows(x, width: dim)
            CPUOps.unary(kind: kind, x: xr, out: orow, rows: n, dim: dim, scale: scale)

        case let .binary(kind, a, b, out, dim):
            try positive([("dim", dim)])
            let ar = try rows(a, width: dim)
            let orow = try rows(out, width: dim)
            switch b {
            case .act(let bref):
                CPUOps.binary(kind: kind, a: ar, b: try rows(bref, width: dim), out: orow, rows: n, dim: dim)
            case .row(let w):
                try withWeight(w, count: dim) { wr in
                    CPUOps.binary(kind: kind, a: ar, row: wr, out: orow, rows: n, dim: dim)
                }
            }

        case let .copy(src, out, width):
            try positive([("width", width)])
            CPUOps.copy(src: try rows(src, width: width), out: try rows(out, width: width), rows: n, width: width)

        case let .kvCopy(from, to):
            try checkSlot(from)
            try checkSlot(to)
            let phys = cacheRows()
            for part in [KVPart.k, .v] {
                CPUOps.kvCopy(from: kvBase(slot: from, part: part), to: kvBase(slot: to, part: part), cacheRows: phys, width: layout.kvWidth)
            }

        case let .argmax(x, out, dim):
            try positive([("dim", dim)])
            CPUOps.argmax(x: try rows(x, width: dim), out: try rows(out, width: 1), rows: n, dim: dim)

        case let .softmax(x, out, dim):
            try positive([("dim", dim)])
            CPUOps.softmax(x: try rows(x, width: dim), out: try rows(out, width: dim), rows: n, dim: dim)

        case let .exitDecide(signal, control, pass, passes, threshold, minPasses):
            try positive([("passes", passes)])
            CPUOps.exitDecide(signal: try rows(signal, width: 1), control: try rows(control, width: ExitControl.width(passes: passes)),
                              pass: pass, passes: passes, threshold: threshold, minPasses: minPasses)
        }
    }
}
