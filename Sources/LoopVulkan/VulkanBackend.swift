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
    let kernels: Kernels
    private var acts: [String: BufferSlice] = [:]
    private var kv: [BufferSlice] = []          // slot * 2 + part
    let step: BufferSlice
    private var weightSlices: [String: (slice: BufferSlice, dtype: DType, count: Int)] = [:]
    private var sections: [SectionKey: RecordedCommands] = [:]
    private let dummy: BufferSlice
    /// Host time spent recording vs replaying (submit + wait), for benchmarks.
    public private(set) var recordSeconds: Double = 0
    public private(set) var submitSeconds: Double = 0
    public private(set) var submits = 0

    /// How the decode GEMV reads weights and its input vector on this device.
    public var readPath: ReadPath { kernels.readPath }

    /// `readPath`: nil takes `LOOPVK_READ_PATH` from the environment, else the device's
    /// preferred path (texel views on CPU devices, storage buffers on GPUs).
    public init(context: VulkanContext, layout: BackendLayout, weights: WeightStore, readPath: ReadPath? = nil) throws {
        self.context = context
        self.layout = layout
        self.weights = weights
        arena = MemoryArena(context: context, hostVisible: false)
        hostArena = MemoryArena(context: context, hostVisible: true, blockSize: 1 << 20)
        kernels = Kernels(context: context, readPath: try ReadPath.resolve(readPath, for: context.info))
        let limit = context.info.maxStorageBufferRange
        // Activations prefer host-visible memory so reads need no staging copy.
        let actArena = MemoryArena(context: context, hostVisible: false)
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
        dummy = try hostArena.allocate(16)
        try context.fill(dummy, byteCount: 16)
    }
    private let actArenaKeep: MemoryArena

    /// Device bytes allocated for weights, activations and KV.
    public var deviceBytes: UInt64 { arena.allocatedBytes + actArenaKeep.allocatedBytes + hostArena.allocatedBytes }

    /// Uploads the named weights now (otherwise each is uploaded when first used).
    public func preload(_ names: [String], progress: ((Int, Int) -> Void)? = nil) throws {
        let total = try names.reduce(0) { $0 + (try weights.info($1).shape.reduce(1, *)) }
        var done = 0
        for n in names {
            _ = try weight(n)
            done += try weights.info(n).shape.reduce(1, *)
            progress?(done, total)
        }
    }

    func weight(_ name: String) throws -> (slice: BufferSlice, dtype: DType, count: Int) {
        if let w = weightSlices[name] { return w }
        let w: (BufferSlice, DType, Int) = try weights.withBytes(name) { dtype, shape, raw in
            guard dtype.isFloat else { throw LoopError.wrongDType(tensor: name, found: dtype.rawValue) }
            let slice = try arena.allocate(raw.count)
            try context.upload(raw, to: slice)
            return (slice, dtype, shape.reduce(1, *))
        }
        weightSlices[name] = w
        return w
    }

    /// An fp32 copy of a weight (for operands the shaders read as floats).
    func weightF32(_ name: String) throws -> BufferSlice {
        let w = try weight(name)
        if w.dtype == .f32 { return w.slice }
        let key = name + "#f32"
        if let s = weightSlices[key] { return s.slice }
        let f = try weights.floats(name)
        let s = try arena.allocate(f.count * 4)
        try f.withUnsafeBytes { try context.upload($0, to: s) }
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

    public func run(_ ops: [Op], section: SectionKey, tokens: [Int32], pos0: Int) throws {
        let rows = tokens.count
        guard rows > 0, rows <= layout.maxRows else {
            throw LoopError.invalidArgument("a call must have 1...\(layout.maxRows) rows, got \(rows)")
        }
        guard section.rows == rows else { throw LoopError.invalidArgument("section \(section) run with \(rows) rows") }
        guard pos0 >= 0, pos0 + rows <= layout.maxContext else {
            throw LoopError.invalidArgument("positions \(pos0)..<\(pos0 + rows) exceed the context of \(layout.maxContext) tokens")
        }
        // Step state: pos0, rows, then token ids.
        var header: [UInt32] = [UInt32(pos0), UInt32(rows), 0, 0] + tokens.map { UInt32(bitPattern: $0) }
        try header.withUnsafeMutableBytes { try context.upload(UnsafeRawBufferPointer($0), to: step) }

        let cb: RecordedCommands
        if let c = sections[section] {
            cb = c
        } else {
            let t0 = DispatchTime.now().uptimeNanoseconds
            cb = try context.record()
            var tracker = HazardTracker()
            for op in ops { try kernels.encode(op, rows: rows, into: cb, backend: self, tracker: &tracker) }
            try cb.end()
            sections[section] = cb
            recordSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        let t1 = DispatchTime.now().uptimeNanoseconds
        try context.submit([cb])
        submitSeconds += Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9
        submits += 1
    }

    /// Runs several recorded-or-new sections back to back in ONE submission (all passes of a
    /// token when no exit policy needs to look between them).
    public func runChained(_ parts: [(ops: [Op], section: SectionKey)], tokens: [Int32], pos0: Int) throws {
        // Record any missing section first (through run's checks), without submitting twice.
        for p in parts where sections[p.section] == nil {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let cb = try context.record()
            var tracker = HazardTracker()
            for op in p.ops { try kernels.encode(op, rows: tokens.count, into: cb, backend: self, tracker: &tracker) }
            try cb.end()
            sections[p.section] = cb
            recordSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        guard tokens.count > 0, tokens.count <= layout.maxRows, pos0 >= 0, pos0 + tokens.count <= layout.maxContext else {
            throw LoopError.invalidArgument("positions \(pos0)..<\(pos0 + tokens.count) exceed the context of \(layout.maxContext) tokens")
        }
        var header: [UInt32] = [UInt32(pos0), UInt32(tokens.count), 0, 0] + tokens.map { UInt32(bitPattern: $0) }
        try header.withUnsafeMutableBytes { try context.upload(UnsafeRawBufferPointer($0), to: step) }
        let t1 = DispatchTime.now().uptimeNanoseconds
        try context.submit(parts.map { sections[$0.section]! })
        submitSeconds += Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9
        submits += 1
    }

    /// Dispatches and barriers recorded per section (for reports).
    public func recordedCounts(_ key: SectionKey) -> (dispatches: Int, barriers: Int)? {
        sections[key].map { ($0.dispatchCount, $0.barrierCount) }
    }

    public func read(_ act: String, rows: Int) throws -> [Float] {
        let w = try width(act)
        guard rows <= layout.maxRows else { throw LoopError.invalidArgument("read of \(rows) rows > \(layout.maxRows)") }
        var out = [Float](repeating: 0, count: rows * w)
        try out.withUnsafeMutableBytes { try context.download(try self.act(act), into: $0) }
        return out
    }

    public func write(_ act: String, values: [Float]) throws {
        let w = try width(act)
        guard values.count % w == 0, values.count / w <= layout.maxRows else {
            throw LoopError.invalidArgument("write of \(values.count) values into \(act) (width \(w))")
        }
        try values.withUnsafeBytes { try context.upload($0, to: try self.act(act)) }
    }

    public func readKV(slot: Int, part: KVPart, rows: Int) throws -> [Float] {
        guard rows <= layout.maxContext else { throw LoopError.invalidArgument("KV read of \(rows) rows > \(layout.maxContext)") }
        var out = [Float](repeating: 0, count: rows * layout.kvWidth)
        try out.withUnsafeMutableBytes { try context.download(try kvSlice(slot, part), into: $0) }
        return out
    }

    /// Zeroes every KV slot (a new sequence).
    public func clearKV() throws {
        for s in kv { try context.fill(s, byteCount: Int(s.size)) }
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
