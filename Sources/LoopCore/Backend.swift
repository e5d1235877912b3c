import Foundation

/// Where a backend finds the tensors an op names: checkpoint tensors (kept in their stored
/// dtype, read through the mmap) and fp32 tensors the plan builder computed.
public final class WeightStore: @unchecked Sendable {
    public let checkpoint: Checkpoint?
    private var memory: [String: (dtype: DType, shape: [Int], data: Data)] = [:]
    private var floatCache: [String: [Float]] = [:]
    private let lock = NSLock()

    /// Row-stacked tensors: name -> the checkpoint tensors whose rows it stacks.
    private let concatenated: [String: [String]]

    public init(checkpoint: Checkpoint?, computed: [String: HostTensor] = [:], concatenated: [String: [String]] = [:]) {
        self.checkpoint = checkpoint
        self.concatenated = concatenated
        for (k, t) in computed { add(k, shape: t.shape, floats: t.values) }
    }

    /// The tensors a plan's ops name: the checkpoint's, the plan's computed and stacked ones.
    public convenience init(checkpoint: Checkpoint?, plan: LoopPlan) {
        self.init(checkpoint: checkpoint, computed: plan.computed, concatenated: plan.concatenated)
    }

    /// Adds an fp32 tensor held in memory (plan-computed tensors, tests).
    public func add(_ name: String, shape: [Int], floats: [Float]) {
        add(name, dtype: .f32, shape: shape, data: floats.withUnsafeBytes { Data($0) })
    }

    /// Adds fp32 values stored as `dtype` (16-bit types rounded to nearest even, as checkpoints
    /// store them): the inputs of parity checks.
    public func add(_ name: String, dtype: DType, shape: [Int], floats values: [Float]) {
        let data: Data
        switch dtype {
        case .f16: data = values.map { Float16Bits.floatToF16($0) }.withUnsafeBytes { Data($0) }
        case .bf16: data = values.map { Float16Bits.floatToBF16($0) }.withUnsafeBytes { Data($0) }
        default:
            guard let format = dtype.weightFormat else { preconditionFailure("\(dtype) is not a weight format") }
            data = Data(format.quantize(values))
        }
        add(name, dtype: dtype, shape: shape, data: data)
    }

    /// Adds a tensor of any dtype held in memory (16-bit values as their bit patterns).
    public func add(_ name: String, dtype: DType, shape: [Int], data: Data) {
        lock.lock(); defer { lock.unlock() }
        memory[name] = (dtype, shape, data)
        floatCache[name] = nil
    }

    public func info(_ name: String) throws -> (dtype: DType, shape: [Int]) {
        lock.lock(); defer { lock.unlock() }
        if let m = memory[name] { return (m.dtype, m.shape) }
        if let i = checkpoint?.info(name) { return (i.dtype, i.shape) }
        if let parts = concatenated[name], let ck = checkpoint {
            let infos = try parts.map { p -> TensorInfo in
                guard let i = ck.info(p) else { throw LoopError.missingTensor(p) }
                return i
            }
            return (infos[0].dtype, [infos.reduce(0) { $0 + $1.shape[0] }] + infos[0].shape.dropFirst())
        }
        throw LoopError.missingTensor(name)
    }

    /// Stacks the rows of a concatenated tensor's parts into memory (once).
    private func materialize(_ name: String, _ parts: [String], _ ck: Checkpoint) throws {
        var data = Data()
        var dtype: DType?
        var rows = 0, tail: [Int] = []
        for p in parts {
            let (info, raw) = try ck.bytes(p)
            if dtype == nil { dtype = info.dtype; tail = Array(info.shape.dropFirst()) }
            guard info.dtype == dtype, Array(info.shape.dropFirst()) == tail else {
                throw LoopError.invalidArgument("cannot stack \(p) (\(info.dtype.rawValue) \(info.shape)) with \(parts[0])")
            }
            rows += info.shape.first ?? 1
            data.append(contentsOf: raw)
        }
        add(name, dtype: dtype!, shape: [rows] + tail, data: data)
    }

    /// Drops the host copy of a row-stacked tensor (it is rebuilt from the checkpoint if asked
    /// for again): a device backend that has uploaded it needs no host copy.
    public func releaseStacked(_ name: String) {
        lock.lock(); defer { lock.unlock() }
        if concatenated[name] != nil { memory[name] = nil; floatCache[name] = nil }
    }

    /// Drops the resident pages of a checkpoint tensor (or of each part of a stacked one) once a
    /// device holds its copy; the bytes are read back from the file if asked for again.
    public func releaseResident(_ name: String) {
        guard let ck = checkpoint else { return }
        for part in concatenated[name] ?? [name] { ck.releaseResidentPages(of: part) }
    }

    /// Calls `body` with the tensor's stored bytes.
    public func withBytes<R>(_ name: String, _ body: (DType, [Int], UnsafeRawBufferPointer) throws -> R) throws -> R {
        lock.lock()
        if memory[name] == nil, let parts = concatenated[name], let ck = checkpoint {
            lock.unlock()
            try materialize(name, parts, ck)
            lock.lock()
        }
        if let m = memory[name] {
            lock.unlock()
            return try m.data.withUnsafeBytes { try body(m.dtype, m.shape, $0) }
        }
        lock.unlock()
        guard let ck = checkpoint else { throw LoopError.missingTensor(name) }
        let (info, raw) = try ck.bytes(name)
        return try body(info.dtype, info.shape, raw)
    }

    /// Calls `body` with the tensor's stored bytes as the checkpoint holds them, without
    /// stacking: the parts of a row-stacked tensor in order (each straight from the mapped
    /// file), one buffer for any other tensor. Uploads copy the parts where they belong
    /// instead of building the stack on the host first.
    public func withParts<R>(_ name: String, _ body: (DType, [Int], [UnsafeRawBufferPointer]) throws -> R) throws -> R {
        lock.lock()
        let inMemory = memory[name] != nil
        lock.unlock()
        guard !inMemory, let partNames = concatenated[name], let ck = checkpoint else {
            return try withBytes(name) { try body($0, $1, [$2]) }
        }
        let (dtype, shape) = try info(name)
        var parts: [UnsafeRawBufferPointer] = []
        for p in partNames {
            let (i, raw) = try ck.bytes(p)
            guard i.dtype == dtype, Array(i.shape.dropFirst()) == Array(shape.dropFirst()) else {
                throw LoopError.invalidArgument("cannot stack \(p) (\(i.dtype.rawValue) \(i.shape)) with \(partNames[0])")
            }
            parts.append(raw)
        }
        return try body(dtype, shape, parts)
    }

    /// The tensor widened to fp32 (cached: the CPU reference reads weights this way).
    public func floats(_ name: String) throws -> [Float] {
        lock.lock()
        if let f = floatCache[name] { lock.unlock(); return f }
        lock.unlock()
        let f = try withBytes(name) { dtype, shape, raw in
            SafeTensorsFile.toFloats(raw, dtype: dtype, count: shape.reduce(1, *))
        }
        lock.lock(); floatCache[name] = f; lock.unlock()
        return f
    }
}

/// Identifies a group of ops that a backend may record once and replay (for example "pass 2
/// with 1 row"). Backends that record command buffers cache them under this key.
public struct SectionKey: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var rows: Int
    /// When set, the section runs only if element `condition` of row 0 of `ExitControl.act` is
    /// non-zero at the time it would start (decided on the device, no host round trip).
    public var condition: Int?
    /// The rows are separate sequences (`StepRows.independent`, a batched decode step).
    public var batch: Bool
    public init(_ name: String, rows: Int, condition: Int? = nil, batch: Bool = false) {
        self.name = name; self.rows = rows; self.condition = condition; self.batch = batch
    }
    public var description: String { "\(name)x\(rows)" + (batch ? "b" : "") + (condition.map { "?\($0)" } ?? "") }
}

/// A section to run: its ops and the key it is recorded (and replayed) under.
public typealias Section = (ops: [Op], section: SectionKey)

/// What a backend can do beyond running sections one after another; the decode driver asks
/// for these instead of looking at the backend's type.
public struct BackendCapabilities: Sendable, Equatable {
    /// `runGreedyChain` decodes up to this many greedy tokens in one call (0: not supported,
    /// or not now, e.g. while profiling).
    public var greedyChain: Int
    /// Sections with a `condition` run (or not) on a value the device computed, without a
    /// host round trip between them.
    public var conditionalSections: Bool
    public init(greedyChain: Int, conditionalSections: Bool) {
        self.greedyChain = greedyChain; self.conditionalSections = conditionalSections
    }
}

/// The one protocol through which the engine talks to a backend (CPU reference or Vulkan).
public protocol PlanBackend: AnyObject {
    /// Human-readable backend/device name.
    var name: String { get }
    /// The kernel configuration it runs with (the CPU reference reads only the engine-level
    /// keys: chain, prune, device-exit).
    var config: KernelConfig { get }
    var capabilities: BackendCapabilities { get }
    /// Runs `ops` over `rows` (their input ids, read by `embed`; positions; KV pages). Ops of
    /// one `section` must be the same each time the section is run with the same row count
    /// (they may be recorded once and replayed); `rows.independent` must match the key's `batch`.
    func run(_ ops: [Op], section: SectionKey, rows: StepRows) throws
    /// Runs sections back to back over the same rows (one submission where the backend can).
    func runSections(_ parts: [Section], rows: StepRows) throws
    /// Greedy decode of `count` tokens from `token` at `pos0`: `parts` (one token's sections,
    /// the last leaving the greedy choice in `argmax`) run `count` times, each choice becoming
    /// the next token. Returns the choices. Only where `capabilities.greedyChain >= count`.
    func runGreedyChain(_ parts: [Section], argmax: ActRef, token: Int32, pos0: Int, count: Int) throws -> [Int32]
    /// Reads the first `rows` rows of an activation (rows * width values).
    func read(_ act: String, rows: Int) throws -> [Float]
    /// Overwrites the first rows of an activation (values.count / width rows).
    func write(_ act: String, values: [Float]) throws
    /// Reads rows 0 ..< rows of one KV slot's K or V cache.
    func readKV(slot: Int, part: KVPart, rows: Int) throws -> [Float]
}

extension PlanBackend {
    public func runSections(_ parts: [Section], rows: StepRows) throws {
        for p in parts { try run(p.ops, section: p.section, rows: rows) }
    }
    /// One sequence's rows at consecutive positions from `pos0` (identity KV pages).
    public func run(_ ops: [Op], section: SectionKey, tokens: [Int32], pos0: Int) throws {
        try run(ops, section: section, rows: .consecutive(tokens: tokens, pos0: pos0))
    }
    public func runSections(_ parts: [Section], tokens: [Int32], pos0: Int) throws {
        try runSections(parts, rows: .consecutive(tokens: tokens, pos0: pos0))
    }
    public func runGreedyChain(_ parts: [Section], argmax: ActRef, token: Int32, pos0: Int, count: Int) throws -> [Int32] {
        throw LoopError.unsupported("\(name) does not decode greedy chains")
    }
}

/// Sizes a backend allocates for: activations for `maxRows` rows, KV for `maxContext` rows.
public struct BackendLayout: Sendable {
    public var activations: [String: Int]
    public var kvSlots: Int
    public var kvWidth: Int
    /// Positions one sequence may reach.
    public var maxContext: Int
    public var maxRows: Int
    /// Physical rows of each KV slot's cache: the page pool (`KVPages`). Default: one
    /// sequence's whole context.
    public var kvRows: Int
    /// Sequences (page tables) one call may carry: 1, or a batch decoder's batch size.
    public var maxSequences: Int = 1
    /// Activations the host reads or writes every token (the greedy choice, the exit control
    /// row, the logits, the exit signal): a device backend keeps them in host-visible memory,
    /// so a token needs no staging copy (and no submission beyond its own) on a discrete GPU.
    public var hostIO: Set<String> = []
    /// The plan's numerics (a backend that cannot round as `.bf16` asks must refuse it).
    public var numerics: Numerics = .fp32
    public init(activations: [String: Int], kvSlots: Int, kvWidth: Int, maxContext: Int, maxRows: Int) {
        self.activations = activations; self.kvSlots = kvSlots; self.kvWidth = kvWidth
        self.maxContext = maxContext; self.maxRows = maxRows
        kvRows = KVPages.pages(positions: maxContext) * KVPages.rows
    }

    public init(plan: LoopPlan, maxRows: Int, maxContext: Int? = nil) {
        var acts = plan.activations
        // Ouro's gate allows the exit decision on the device (Op.exitDecide).
        if plan.exitSignal == .ouroGateLogit { acts[ExitControl.act] = ExitControl.width(passes: plan.passCount) }
        self.init(activations: acts, kvSlots: plan.kvSlots, kvWidth: plan.kvWidth,
                  maxContext: min(maxContext ?? plan.maxContext, plan.maxContext), maxRows: maxRows)
        numerics = plan.numerics
        hostIO = Set([plan.logitsAct, ExitControl.act] + (plan.exitAct.map { [$0] } ?? [])).intersection(acts.keys)
    }
}
