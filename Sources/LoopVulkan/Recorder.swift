import Foundation
import LoopCore

/// Records sections into command buffers — once per section key (name, rows, condition), then
/// replayed — tracking hazards between their dispatches; writes the step state; submits one or
/// several sections (or a whole greedy chain) at a time; keeps the profile of what ran.
final class Recorder {
    let context: VulkanContext
    let kernels: Kernels
    let buffers: DeviceBuffers
    private var sections: [SectionKey: RecordedCommands] = [:]
    /// Host time spent recording vs replaying (submit + wait), for benchmarks.
    private(set) var recordSeconds: Double = 0
    private(set) var submitSeconds: Double = 0
    private(set) var submits = 0
    private(set) var gpuIntervals: [VulkanBackend.GPUInterval] = []
    private(set) var hostPhases: [VulkanBackend.HostPhase] = []
    /// Dispatches executed (summed over submitted command buffers) since `clearProfile`.
    private(set) var dispatchesSubmitted = 0
    private let epoch = DispatchTime.now().uptimeNanoseconds
    private func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds - epoch) / 1e9 }

    /// Sections recorded from now on carry GPU timestamps (see `ProfileMode`).
    var profileMode: ProfileMode? {
        didSet { if oldValue != profileMode { sections.removeAll() } }
    }

    init(context: VulkanContext, kernels: Kernels, buffers: DeviceBuffers) {
        self.context = context
        self.kernels = kernels
        self.buffers = buffers
    }

    /// Drops every recorded section (the kernel configuration changed).
    func invalidate() { sections.removeAll() }
    func clearProfile() { gpuIntervals.removeAll(); hostPhases.removeAll(); dispatchesSubmitted = 0 }

    /// Dispatches and barriers recorded in a section.
    func recordedCounts(_ key: SectionKey) -> (dispatches: Int, barriers: Int)? {
        sections[key].map { ($0.dispatchCount, $0.barrierCount) }
    }

    /// The section's command buffer, recorded now if it has not been yet.
    func recorded(_ ops: [Op], _ section: SectionKey) throws -> RecordedCommands {
        if let c = sections[section] { return c }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let start = now()
        let cb = try context.record(profile: profileMode, capacity: profileMode == nil ? 0 : 4 * ops.count + 16)
        var tracker = HazardTracker()
        // A conditional section (exit decided on the device) runs only if its control flag is set.
        if let c = section.condition { try cb.beginCondition(try buffers.act(ExitControl.act), byteOffset: 4 * c) }
        for step in FusedOps.fuse(ops, kvWidth: buffers.layout.kvWidth, enabled: kernels.config.fusion) {
            try kernels.encode(step, rows: section.rows, batch: section.batch, into: cb, buffers: buffers, tracker: &tracker)
        }
        if section.condition != nil { cb.endCondition() }
        try cb.end()
        sections[section] = cb
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        recordSeconds += dt
        if profileMode != nil { hostPhases.append(VulkanBackend.HostPhase(name: "record", seconds: dt, detail: section.name, start: start, submission: submits)) }
        return cb
    }

    func submit(_ list: [(RecordedCommands, SectionKey)], pos0: Int, rows: Int) throws {
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
        hostPhases.append(VulkanBackend.HostPhase(name: "submit", seconds: context.lastSubmitSeconds, detail: names, start: start, submission: index))
        hostPhases.append(VulkanBackend.HostPhase(name: "wait", seconds: context.lastWaitSeconds, detail: names, start: start + context.lastSubmitSeconds, submission: index))
        for (cb, key) in list {
            for (label, ns) in try cb.intervals() {
                gpuIntervals.append(VulkanBackend.GPUInterval(section: key.name, label: label, nanoseconds: ns, pos0: pos0, rows: rows, submission: index))
            }
        }
    }

    /// Runs several recorded-or-new sections back to back in ONE submission (all passes of a
    /// token when no exit policy needs to look between them).
    func runSections(_ parts: [Section], rows step: StepRows) throws {
        let rows = step.count
        try step.validate(buffers.layout, what: "a call")
        for p in parts where p.section.rows != rows || p.section.batch != step.independent {
            throw LoopError.invalidArgument("section \(p.section) run with \(rows) \(step.independent ? "independent " : "")rows")
        }
        let cbs = try parts.map { (try recorded($0.ops, $0.section), $0.section) }
        try setStep(step)
        try submit(cbs, pos0: step.positions[0], rows: rows)
    }

    /// The step state the shaders read (STEP_STATE in common.glsl): first position, rows, the
    /// chain index (0), the row stride S; then S token ids, S positions, S table offsets and
    /// the page tables.
    func setStep(_ step: StepRows) throws {
        let stride = max(buffers.layout.maxRows, 1)
        var words = [UInt32](repeating: 0, count: 4 + 3 * stride)
        words[0] = UInt32(step.positions[0]); words[1] = UInt32(step.count); words[3] = UInt32(stride)
        var offsets: [UInt32] = []
        var off = 0
        for t in step.tables { offsets.append(UInt32(off)); off += t.count }
        for r in 0..<step.count {
            words[4 + r] = UInt32(bitPattern: step.tokens[r])
            words[4 + stride + r] = UInt32(step.positions[r])
            words[4 + 2 * stride + r] = offsets[step.tableOf[r]]
        }
        for t in step.tables { words.append(contentsOf: t.map { UInt32(bitPattern: $0) }) }
        guard words.count * 4 <= DeviceBuffers.stepBytes(buffers.layout) else {
            throw LoopError.invalidArgument("the rows' page tables (\(off) pages) exceed the step state")
        }
        try words.withUnsafeMutableBytes { try context.upload(UnsafeRawBufferPointer($0), to: buffers.step) }
    }

    /// Greedy decode of `count` tokens in ONE submission: `parts` (one token's sections, the last
    /// leaving the greedy choice in `argmax`) run `count` times, each time followed by
    /// advance.comp, which appends the choice to a result list, makes it the next token and
    /// moves pos0 on. The chain starts from `token` at `pos0`; returns the `count` choices. On a
    /// small model the host's round trip per submission is a large share of a token.
    func runGreedyChain(_ parts: [Section], argmax: ActRef, token: Int32, pos0: Int, count: Int) throws -> [Int32] {
        guard count >= 1, count <= KernelConfig.maxChain else { throw LoopError.invalidArgument("a greedy chain has 1...\(KernelConfig.maxChain) tokens, got \(count)") }
        guard pos0 >= 0, pos0 + count <= buffers.layout.maxContext else {
            throw LoopError.invalidArgument("positions \(pos0)..<\(pos0 + count) exceed the context of \(buffers.layout.maxContext) tokens")
        }
        let step = StepRows.consecutive(tokens: [token], pos0: pos0, through: pos0 + count)
        try step.validate(buffers.layout, what: "a greedy chain")
        for p in parts where p.section.rows != 1 { throw LoopError.invalidArgument("section \(p.section) in a greedy chain: one row per token") }
        guard profileMode == nil else { throw LoopError.invalidArgument("a greedy chain is not profiled (its sections repeat in one submission)") }
        let cbs = try parts.map { (try recorded($0.ops, $0.section), $0.section) }
        let key = SectionKey("advance(\(argmax))", rows: 1)
        let advance: RecordedCommands
        if let c = sections[key] {
            advance = c
        } else {
            let cb = try context.record(profile: nil, capacity: 0)
            try kernels.encodeAdvance(argmax: argmax, results: buffers.chainResults, into: cb, buffers: buffers)
            try cb.end()
            sections[key] = cb
            advance = cb
        }
        try setStep(step)
        let one = cbs + [(advance, key)]
        try submit(Array((0..<count).map { _ in one }.joined()), pos0: pos0, rows: 1)
        var ids = [Int32](repeating: 0, count: count)
        try ids.withUnsafeMutableBytes { try context.download(buffers.chainResults, into: $0, cache: buffers.staging) }
        return ids
    }

}

/// Tracks what dispatches since the last barrier read and wrote, so a barrier is recorded only
/// before a dispatch that has a real hazard (read-after-write, write-after-read/write).
struct HazardTracker {
    private var written: Set<BufferHandle> = []
    private var read: Set<BufferHandle> = []

    /// Returns true when a barrier is needed before a dispatch with these reads and writes.
    mutating func needsBarrier(reads: [BufferHandle], writes: [BufferHandle]) -> Bool {
        let hazard = reads.contains { written.contains($0) } || writes.contains { written.contains($0) || read.contains($0) }
        if hazard { written.removeAll(); read.removeAll() }
        read.formUnion(reads)
        written.formUnion(writes)
        return hazard
    }
}

/// A buffer a dispatch reads or writes, for hazard tracking: an activation, one part of a KV
/// slot, or a kernel's scratch buffer.
enum BufferHandle: Hashable {
    case act(String)
    case kv(slot: Int, part: KVPart)
    case scratch(DeviceBuffers.Scratch)
}
