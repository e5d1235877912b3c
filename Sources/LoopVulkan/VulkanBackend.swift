import Foundation
import LoopCore

/// Executes loop-plan ops on a Vulkan device. Weights are uploaded once (16-bit kept 16-bit);
/// each section (prelude, pass t, head, ...) is recorded once per row count into a command
/// buffer and replayed; per-call values (first position, row count, token ids) live in a small
/// host-visible "step state" buffer that the shaders read.
public final class VulkanBackend: PlanBackend {
    public let context: VulkanContext
    public let layout: BackendLayout
    public let weights: WeightStore
    public var name: String { "vulkan:\(context.info.name)" }

    let arena: MemoryArena
    let hostArena: MemoryArena
    /// Staging for `read`/`write` where activations are not mapped (see `StagingCache`).
    let staging = StagingCache()
    let kernels: Kernels
    private var acts: [String: BufferSlice] = [:]
    private var kv: [BufferSlice] = []          // slot * 2 + part
    let step: BufferSlice
    /// The ids a greedy chain chose (`runGreedyChain`).
    let chainResults: BufferSlice
    private var weightSlices: [String: (slice: BufferSlice, dtype: DType, count: Int)] = [:]
    private var sections: [SectionKey: RecordedCommands] = [:]
    private let dummy: BufferSlice
    /// Host time spent recording vs replaying (submit + wait), for benchmarks.
    public private(set) var recordSeconds: Double = 0
    public private(set) var submitSeconds: Double = 0
    public private(set) var submits = 0

    /// Profiling: sections recorded from now on carry GPU timestamps (see `ProfileMode`).
    public var profileMode: ProfileMode? {
        didSet { if oldValue != profileMode { sections.removeAll() } }
    }
    /// One timed GPU interval: a dispatch (exact mode) or a whole section (light mode).
    public struct GPUInterval: Sendable {
        public var section: String
        public var label: String
        public var nanoseconds: Double
        public var pos0: Int
        public var rows: Int
        /// Index of the submission (matches the `submit` host phase with the same index).
        public var submission: Int
    }
    /// A host-side phase: recording a section, submitting, waiting for the GPU.
    public struct HostPhase: Sendable {
        public var name: String
        public var seconds: Double
        public var detail: String
        /// Start, in seconds since the backend was created.
        public var start: Double
        public var submission: Int
    }
    private let epoch = DispatchTime.now().uptimeNanoseconds
    private func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds - epoch) / 1e9 }
    public private(set) var gpuIntervals: [GPUInterval] = []
    public private(set) var hostPhases: [HostPhase] = []
    /// Dispatches executed (summed over submitted command buffers) since `clearProfile`.
    public private(set) var dispatchesSubmitted = 0
    public func clearProfile() { gpuIntervals.removeAll(); hostPhases.removeAll(); dispatchesSubmitted = 0 }

    /// Every kernel choice this backend records with (see KernelConfig). Changing it drops the
    /// recorded sections, so the next run records with the new choices.
    public var config: KernelConfig {
        get { kernels.config }
        set { if newValue != kernels.config { kernels.config = newValue; sections.removeAll() } }
    }

    /// How recording groups `ops` into dispatch steps: each step's profile label (op kinds
    /// joined by "+" when fused) and the plan ops it computes.
    public func steps(_ ops: [Op]) -> [(label: String, ops: [Op])] {
        Step.fuse(ops, kvWidth: layout.kvWidth, enabled: config.fusion).map { ($0.label, $0.ops) }
    }

    /// How products read weights and activations on this device.
    public var readPath: ReadPath { kernels.readPath }

    /// `kernels`: nil = the device's configuration (`KernelConfig.resolve`: its defaults and
    /// `LOOPVK_KERNELS`). With `mapMemory` off, device memory stays unmapped even where the
    /// device could map it, so every upload and read takes a discrete GPU's staging path.
    public init(context: VulkanContext, layout: BackendLayout, weights: WeightStore, kernels config: KernelConfig? = nil) throws {
        let config = try config ?? KernelConfig.resolve(for: context.info.traits, deviceName: context.info.name)
        try config.validate(for: context.info.traits, deviceName: context.info.name)
        let mapDeviceMemory = config.mapMemory
        self.context = context
        self.layout = layout
        self.weights = weights
        arena = MemoryArena(context: context, hostVisible: false, map: mapDeviceMemory)
        hostArena = MemoryArena(context: context, hostVisible: true, blockSize: 1 << 20)
        kernels = Kernels(context: context, config: config)
        let limit = context.info.maxStorageBufferRange
        // Activations prefer host-visible memory so reads need no staging copy.
        let actArena = MemoryArena(context: context, hostVisible: false, map: mapDeviceMemory)
        for (name, width) in layout.activations.sorted(by: { $0.key < $1.key }) {
            let bytes = layout.maxRows * width * 4
            if UInt64(bytes) > limit {
                throw VulkanError("activation \(name)", message: "\(layout.maxRows) rows x \(width) floats = \(bytes) bytes exceed maxStorageBufferRange \(limit); use fewer rows per call")
            }
            let s = try actArena.allocate(bytes)
            try context.fill(s, byteCount: bytes)
            acts[name] = s
        }
        let kvBytes = layout.maxContext * layout.kvWidth * 4
        if UInt64(kvBytes) > limit {
            throw VulkanError("KV cache", message: "\(layout.maxContext) positions x \(layout.kvWidth) floats exceed maxStorageBufferRange \(limit); use a shorter context")
        }
        for _ in 0..<(layout.kvSlots * 2) {
            let s = try actArena.allocate(max(kvBytes, 4))
            try context.fill(s, byteCount: max(kvBytes, 4))
            kv.append(s)
        }
        actArenaKeep = actArena
        step = try hostArena.allocate(16 + 4 * max(layout.maxRows, 1))
        chainResults = try hostArena.allocate(4 * Self.maxChain)
        dummy = try hostArena.allocate(16)
        try context.fill(dummy, byteCount: 16)
    }
    private let actArenaKeep: MemoryArena

    /// A zero-filled device buffer of at least `bytes`, made on first use and kept, for kernels'
    /// own working memory: the fused head + argmax's per-workgroup bests and counter, the split
    /// attention's partial states. (A larger request makes a new buffer; sections recorded with
    /// the old one keep it.)
    func scratch(_ name: String, bytes: Int) throws -> BufferSlice {
        if let s = scratchBuffers[name], s.size >= UInt64(bytes) { return s }
        let s = try actArenaKeep.allocate(bytes)
        try context.fill(s, byteCount: bytes)
        scratchBuffers[name] = s
        return s
    }
    private var scratchBuffers: [String: BufferSlice] = [:]

    /// The distinct device copies of weights that `ops` read, in first-use order.
    static func weightCopies(_ ops: [Op], kernels: Kernels, weights: WeightStore) -> [WeightCopy] {
        var seen = Set<String>(), copies: [WeightCopy] = []
        for op in ops { for c in kernels.weightCopies(op, weights: weights) where seen.insert(c.key).inserted { copies.append(c) } }
        return copies
    }

    /// Device bytes the weights of `ops` will take on `context` before any is uploaded: every
    /// copy the read path makes (on the texel path a linear's interleaved copy, padded to whole
    /// blocks, and a tied embedding's second, plain copy for the lookup).
    public static func weightBytes(_ ops: [Op], weights: WeightStore, context: VulkanContext, kernels config: KernelConfig) throws -> UInt64 {
        let kernels = Kernels(context: context, config: config)
        return try weightCopies(ops, kernels: kernels, weights: weights).reduce(0) { $0 + UInt64(try $1.bytes(weights)) }
    }

    /// Device bytes allocated for weights, activations and KV.
    public var deviceBytes: UInt64 { arena.allocatedBytes + actArenaKeep.allocatedBytes + hostArena.allocatedBytes }

    /// Uploads the device copies of the weights that `ops` read, in the layout each op reads
    /// them in (otherwise each is uploaded when first used). `progress(done, total)` counts
    /// tensor elements.
    public func preload(_ ops: [Op], progress: ((Int, Int) -> Void)? = nil) throws {
        let copies = Self.weightCopies(ops, kernels: kernels, weights: weights)
        let sizes = try copies.map { try weights.info($0.name).shape.reduce(1, *) }
        let total = sizes.reduce(0, +)
        var done = 0
        for (c, n) in zip(copies, sizes) {
            switch c {
            case .plain(let name): _ = try weight(name)
            case let .interleaved(name, inF, block, firstRow): _ = try interleavedWeight(name, inFeatures: inF, block: block, firstRow: firstRow)
            }
            done += n
            progress?(done, total)
        }
    }

    func weight(_ name: String) throws -> (slice: BufferSlice, dtype: DType, count: Int) {
        if let w = weightSlices[name] { return w }
        let w: (BufferSlice, DType, Int) = try weights.withBytes(name) { dtype, shape, raw in
            guard dtype.isFloat else { throw LoopError.wrongDType(tensor: name, found: dtype.rawValue) }
            let slice = try arena.allocate(raw.count)
            try context.upload(raw, to: slice, cache: staging)
            return (slice, dtype, shape.reduce(1, *))
        }
        weightSlices[name] = w
        return w
    }

    /// The texel read path's copy of a weight seen as [rows, inF] (rows = elements / inF): rows
    /// firstRow ..< rows in blocks of `block` rows, each block stored texel-major (texel t of
    /// block row i at t * block + i, 16-byte texels), the last block zero-padded. matvec.comp
    /// reads a block as one sequential stream (see its header). Needs inF to fill whole texels.
    func interleavedWeight(_ name: String, inFeatures inF: Int, block: Int, firstRow: Int) throws -> (slice: BufferSlice, dtype: DType, count: Int) {
        let key = WeightCopy.interleaved(name: name, inFeatures: inF, block: block, firstRow: firstRow).key
        if let w = weightSlices[key] { return w }
        let w: (BufferSlice, DType, Int) = try weights.withBytes(name) { dtype, shape, raw in
            guard dtype.isFloat else { throw LoopError.wrongDType(tensor: name, found: dtype.rawValue) }
            let count = shape.reduce(1, *), es = dtype.byteSize
            guard inF > 0, block > 0, (inF * es) % 16 == 0, count % inF == 0, firstRow >= 0, firstRow < max(count / inF, 1) else {
                throw LoopError.invalidArgument("\(name) (\(count) elements) cannot be read as rows of \(inF) from row \(firstRow) in blocks of \(block)")
            }
            let rows = count / inF - firstRow, nt = inF * es / 16
            let blocks = (rows + block - 1) / block, blockBytes = block * nt * 16
            let slice = try arena.allocate(blocks * blockBytes)
            // A few MiB of blocks at a time: permute 16-byte texels on the host, then upload.
            let perChunk = max(1, (8 << 20) / blockBytes)
            var buffer = [UInt8](repeating: 0, count: min(perChunk, blocks) * blockBytes)
            let src = raw.baseAddress! + firstRow * inF * es
            var b0 = 0
            while b0 < blocks {
                let nb = min(perChunk, blocks - b0)
                try buffer.withUnsafeMutableBytes { dst in
                    let d = dst.baseAddress!
                    for b in 0..<nb {
                        for i in 0..<block {
                            let row = (b0 + b) * block + i
                            let out = d + (b * nt * block + i) * 16
                            if row >= rows {
                                for t in 0..<nt { (out + t * block * 16).storeBytes(of: SIMD2<UInt64>(0, 0), as: SIMD2<UInt64>.self) }
                                continue
                            }
                            let inp = src + row * nt * 16
                            for t in 0..<nt {
                                (out + t * block * 16).storeBytes(of: (inp + t * 16).loadUnaligned(as: SIMD2<UInt64>.self), as: SIMD2<UInt64>.self)
                            }
                        }
                    }
                    try context.upload(UnsafeRawBufferPointer(rebasing: dst[0..<(nb * blockBytes)]), to: slice, at: b0 * blockBytes, cache: staging)
                }
                b0 += nb
            }
            return (slice, dtype, blocks * block * inF)
        }
        weightSlices[key] = w
        weights.releaseStacked(name)
        return w
    }

    /// The device copies uploaded so far (`WeightCopy.key`s; "#f32" for fp32 copies).
    var uploadedWeights: Set<String> { Set(weightSlices.keys) }
    /// Bytes of the uploaded weight copies (each rounded up to 16 by the arena).
    var uploadedWeightBytes: UInt64 { weightSlices.values.reduce(0) { $0 + $1.slice.size } }

    /// An fp32 copy of a weight (for operands the shaders read as floats).
    func weightF32(_ name: String) throws -> BufferSlice {
        let w = try weight(name)
        if w.dtype == .f32 { return w.slice }
        let key = name + "#f32"
        if let s = weightSlices[key] { return s.slice }
        let f = try weights.floats(name)
        let s = try arena.allocate(f.count * 4)
        try f.withUnsafeBytes { try context.upload($0, to: s, cache: staging) }
        weightSlices[key] = (s, .f32, f.count)
        return s
    }

    func act(_ name: String) throws -> BufferSlice {
        guard let a = acts[name] else { throw LoopError.invalidArgument("the plan uses activation \(name), which was not declared") }
        return a
    }

    func width(_ name: String) throws -> Int {
        guard let w = layout.activations[name] else { throw LoopError.invalidArgument("undeclared activation \(name)") }
        return w
    }

    func kvSlice(_ slot: Int, _ part: KVPart) throws -> BufferSlice {
        guard slot >= 0, slot < layout.kvSlots else { throw LoopError.invalidArgument("KV slot \(slot) out of range 0..<\(layout.kvSlots)") }
        return kv[slot * 2 + Int(part.rawValue)]
    }

    var dummyBinding: Binding { Binding(dummy) }

    // MARK: PlanBackend

    /// Greedy chains where the configuration allows them (not while profiling: a chain's
    /// sections repeat in one submission); conditional sections where the device has
    /// VK_EXT_conditional_rendering.
    public var capabilities: BackendCapabilities {
        BackendCapabilities(greedyChain: profileMode == nil && config.chain > 1 ? config.chain : 0,
                            conditionalSections: context.info.conditionalRendering)
    }

    public func run(_ ops: [Op], section: SectionKey, tokens: [Int32], pos0: Int) throws {
        try runSections([(ops, section)], tokens: tokens, pos0: pos0)
    }

    /// The section's command buffer, recorded now if it has not been yet.
    private func recorded(_ ops: [Op], _ section: SectionKey) throws -> RecordedCommands {
        if let c = sections[section] { return c }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let start = now()
        let cb = try context.record(profile: profileMode, capacity: profileMode == nil ? 0 : 4 * ops.count + 16)
        var tracker = HazardTracker()
        // A conditional section (exit decided on the device) runs only if its control flag is set.
        if let c = section.condition { try cb.beginCondition(try act(ExitControl.act), byteOffset: 4 * c) }
        for step in Step.fuse(ops, kvWidth: layout.kvWidth, enabled: config.fusion) { try kernels.encode(step, rows: section.rows, into: cb, backend: self, tracker: &tracker) }
        if section.condition != nil { cb.endCondition() }
        try cb.end()
        sections[section] = cb
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        recordSeconds += dt
        if profileMode != nil { hostPhases.append(HostPhase(name: "record", seconds: dt, detail: section.name, start: start, submission: submits)) }
        return cb
    }

    private func submit(_ list: [(RecordedCommands, SectionKey)], pos0: Int, rows: Int) throws {
        let t1 = DispatchTime.now().uptimeNanoseconds
        let start = now()
        try context.submit(list.map(\.0))
        submitSeconds += Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9
        submits += 1
        let executed = list.reduce(0) { $0 + $1.0.dispatchCount }
        dispatchesSubmitted += executed
        VulkanObjects.dispatchesExecuted(executed)
        guard profileMode != nil else { return }
        let names = list.map(\.1.name).joined(separator: "+")
        let index = submits - 1
        hostPhases.append(HostPhase(name: "submit", seconds: context.lastSubmitSeconds, detail: names, start: start, submission: index))
        hostPhases.append(HostPhase(name: "wait", seconds: context.lastWaitSeconds, detail: names, start: start + context.lastSubmitSeconds, submission: index))
        for (cb, key) in list {
            for (label, ns) in try cb.intervals() {
                gpuIntervals.append(GPUInterval(section: key.name, label: label, nanoseconds: ns, pos0: pos0, rows: rows, submission: index))
            }
        }
    }

    /// Runs several recorded-or-new sections back to back in ONE submission (all passes of a
    /// token when no exit policy needs to look between them).
    public func runSections(_ parts: [Section], tokens: [Int32], pos0: Int) throws {
        let rows = tokens.count
        guard rows > 0, rows <= layout.maxRows else {
            throw LoopError.invalidArgument("a call must have 1...\(layout.maxRows) rows, got \(rows)")
        }
        for p in parts where p.section.rows != rows {
            throw LoopError.invalidArgument("section \(p.section) run with \(rows) rows")
        }
        guard pos0 >= 0, pos0 + rows <= layout.maxContext else {
            throw LoopError.invalidArgument("positions \(pos0)..<\(pos0 + rows) exceed the context of \(layout.maxContext) tokens")
        }
        let cbs = try parts.map { (try recorded($0.ops, $0.section), $0.section) }
        try setStep(pos0: pos0, tokens: tokens)
        try submit(cbs, pos0: pos0, rows: rows)
    }

    /// The step state the shaders read: pos0, rows, the chain index (0), padding, token ids.
    private func setStep(pos0: Int, tokens: [Int32]) throws {
        var header: [UInt32] = [UInt32(pos0), UInt32(tokens.count), 0, 0] + tokens.map { UInt32(bitPattern: $0) }
        try header.withUnsafeMutableBytes { try context.upload(UnsafeRawBufferPointer($0), to: step) }
    }

    /// The most tokens `runGreedyChain` decodes in one submission.
    public static let maxChain = KernelConfig.maxChain

    /// Greedy decode of `count` tokens in ONE submission: `parts` (one token's sections, the last
    /// leaving the greedy choice in `argmax`) run `count` times, each time followed by
    /// advance.comp, which appends the choice to a result list, makes it the next token and
    /// moves pos0 on. The chain starts from `token` at `pos0`; returns the `count` choices. On a
    /// small model the host's round trip per submission is a large share of a token.
    public func runGreedyChain(_ parts: [Section], argmax: ActRef, token: Int32, pos0: Int, count: Int) throws -> [Int32] {
        guard count >= 1, count <= Self.maxChain else { throw LoopError.invalidArgument("a greedy chain has 1...\(Self.maxChain) tokens, got \(count)") }
        guard pos0 >= 0, pos0 + count <= layout.maxContext else {
            throw LoopError.invalidArgument("positions \(pos0)..<\(pos0 + count) exceed the context of \(layout.maxContext) tokens")
        }
        for p in parts where p.section.rows != 1 { throw LoopError.invalidArgument("section \(p.section) in a greedy chain: one row per token") }
        guard profileMode == nil else { throw LoopError.invalidArgument("a greedy chain is not profiled (its sections repeat in one submission)") }
        let cbs = try parts.map { (try recorded($0.ops, $0.section), $0.section) }
        let key = SectionKey("advance(\(argmax))", rows: 1)
        let advance: RecordedCommands
        if let c = sections[key] {
            advance = c
        } else {
            let cb = try context.record(profile: nil, capacity: 0)
            try kernels.encodeAdvance(argmax: argmax, results: chainResults, into: cb, backend: self)
            try cb.end()
            sections[key] = cb
            advance = cb
        }
        try setStep(pos0: pos0, tokens: [token])
        let one = cbs + [(advance, key)]
        try submit(Array((0..<count).map { _ in one }.joined()), pos0: pos0, rows: 1)
        var ids = [Int32](repeating: 0, count: count)
        try ids.withUnsafeMutableBytes { try context.download(chainResults, into: $0, cache: staging) }
        return ids
    }

    /// Dispatches and barriers recorded per section (for reports).
    public func recordedCounts(_ key: SectionKey) -> (dispatches: Int, barriers: Int)? {
        sections[key].map { ($0.dispatchCount, $0.barrierCount) }
    }

    public func read(_ act: String, rows: Int) throws -> [Float] {
        let w = try width(act)
        guard rows <= layout.maxRows else { throw LoopError.invalidArgument("read of \(rows) rows > \(layout.maxRows)") }
        var out = [Float](repeating: 0, count: rows * w)
        try out.withUnsafeMutableBytes { try context.download(try self.act(act), into: $0, cache: staging) }
        return out
    }

    public func write(_ act: String, values: [Float]) throws {
        let w = try width(act)
        guard values.count % w == 0, values.count / w <= layout.maxRows else {
            throw LoopError.invalidArgument("write of \(values.count) values into \(act) (width \(w))")
        }
        try values.withUnsafeBytes { try context.upload($0, to: try self.act(act), cache: staging) }
    }

    public func readKV(slot: Int, part: KVPart, rows: Int) throws -> [Float] {
        guard rows <= layout.maxContext else { throw LoopError.invalidArgument("KV read of \(rows) rows > \(layout.maxContext)") }
        var out = [Float](repeating: 0, count: rows * layout.kvWidth)
        try out.withUnsafeMutableBytes { try context.download(try kvSlice(slot, part), into: $0, cache: staging) }
        return out
    }
}

/// Tracks what dispatches since the last barrier read and wrote, so a barrier is recorded only
/// before a dispatch that has a real hazard (read-after-write, write-after-read/write).
struct HazardTracker {
    private var written: Set<String> = []
    private var read: Set<String> = []

    /// Returns true when a barrier is needed before a dispatch with these reads and writes.
    mutating func needsBarrier(reads: [String], writes: [String]) -> Bool {
        let hazard = reads.contains { written.contains($0) } || writes.contains { written.contains($0) || read.contains($0) }
        if hazard { written.removeAll(); read.removeAll() }
        read.formUnion(reads)
        written.formUnion(writes)
        return hazard
    }
}
