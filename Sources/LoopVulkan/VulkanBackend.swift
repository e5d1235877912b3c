import Foundation
import LoopCore

/// Executes loop-plan ops on a Vulkan device: the `PlanBackend` over three parts — the device
/// buffers (`DeviceBuffers`: weights uploaded once, 16-bit kept 16-bit; activations; KV), the
/// encoders (`Kernels`, choosing variants from the `KernelConfig`) and the `Recorder` (each
/// section recorded once per row count into a command buffer and replayed; per-call values in
/// a small step-state buffer the shaders read).
public final class VulkanBackend: PlanBackend {
    public let context: VulkanContext
    public let layout: BackendLayout
    public let weights: WeightStore
    public var name: String { "vulkan:\(context.info.name)" }
    let kernels: Kernels
    let buffers: DeviceBuffers
    let recorder: Recorder

    /// `kernels`: nil = the device's configuration (`KernelConfig.resolve`: its defaults and
    /// `LOOPVK_KERNELS`). With `mapMemory` off, device memory stays unmapped even where the
    /// device could map it, so every upload and read takes a discrete GPU's staging path.
    public init(context: VulkanContext, layout: BackendLayout, weights: WeightStore, kernels config: KernelConfig? = nil) throws {
        guard layout.numerics == .fp32 else {
            throw LoopError.unsupported("--numerics \(layout.numerics.rawValue) runs on the CPU reference only (add --cpu); the Vulkan kernels compute in fp32")
        }
        let traits = context.info.traits, deviceName = context.info.name
        let config = try config.map { c in try c.validate(for: traits, deviceName: deviceName); return c }
            ?? KernelConfig.resolve(for: traits, deviceName: deviceName)
        self.context = context
        self.layout = layout
        self.weights = weights
        kernels = Kernels(context: context, config: config)
        buffers = try DeviceBuffers(context: context, layout: layout, weights: weights, mapMemory: config.mapMemory, kv: config.kv)
        recorder = Recorder(context: context, kernels: kernels, buffers: buffers)
    }

    /// Every kernel choice this backend records with (see KernelConfig). Changing it drops the
    /// recorded sections, so the next run records with the new choices. (`mapMemory` and `kv`
    /// take effect only at creation: the buffers keep theirs.)
    public var config: KernelConfig {
        get { kernels.config }
        set { if newValue != kernels.config { kernels.config = newValue; recorder.invalidate() } }
    }

    /// How products read weights and activations on this device.
    public var readPath: ReadPath { kernels.readPath }

    /// Greedy chains where the configuration allows them (not while profiling: a chain's
    /// sections repeat in one submission); conditional sections where the device has
    /// VK_EXT_conditional_rendering.
    public var capabilities: BackendCapabilities {
        BackendCapabilities(greedyChain: profileMode == nil && config.chain > 1 ? config.chain : 0,
                            conditionalSections: context.info.conditionalRendering)
    }

    /// How recording groups `ops` into dispatch steps: each step's profile label (op kinds
    /// joined by "+" when fused) and the plan ops it computes.
    public func steps(_ ops: [Op]) -> [(label: String, ops: [Op])] {
        FusedOps.fuse(ops, kvWidth: layout.kvWidth, enabled: config.fusion).map { ($0.label, $0.ops) }
    }

    // MARK: Weights

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
    public var deviceBytes: UInt64 { buffers.allocatedBytes }

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
            case .plain(let name): _ = try buffers.weight(name)
            case let .interleaved(name, inF, block, firstRow): _ = try buffers.interleavedWeight(name, inFeatures: inF, block: block, firstRow: firstRow)
            }
            done += n
            progress?(done, total)
        }
    }

    /// The device copies uploaded so far (`WeightCopy.key`s; "#f32" for fp32 copies).
    var uploadedWeights: Set<String> { buffers.uploadedWeights }
    /// Bytes of the uploaded weight copies.
    var uploadedWeightBytes: UInt64 { buffers.uploadedWeightBytes }
    func act(_ name: String) throws -> BufferSlice { try buffers.act(name) }

    // MARK: Running

    public func run(_ ops: [Op], section: SectionKey, rows: StepRows) throws {
        try recorder.runSections([(ops, section)], rows: rows)
    }

    /// Runs sections back to back in ONE submission (all passes of a token when no exit policy
    /// needs to look between them).
    public func runSections(_ parts: [Section], rows: StepRows) throws {
        try recorder.runSections(parts, rows: rows)
    }

    /// Greedy decode of `count` tokens in ONE submission (see `Recorder.runGreedyChain`).
    public func runGreedyChain(_ parts: [Section], argmax: ActRef, token: Int32, pos0: Int, count: Int) throws -> [Int32] {
        try recorder.runGreedyChain(parts, argmax: argmax, token: token, pos0: pos0, count: count)
    }

    /// Dispatches and barriers recorded per section (for reports).
    public func recordedCounts(_ key: SectionKey) -> (dispatches: Int, barriers: Int)? { recorder.recordedCounts(key) }

    public func read(_ act: String, rows: Int) throws -> [Float] {
        let w = try buffers.width(act)
        guard rows <= layout.maxRows else { throw LoopError.invalidArgument("read of \(rows) rows > \(layout.maxRows)") }
        var out = [Float](repeating: 0, count: rows * w)
        try out.withUnsafeMutableBytes { try context.download(try buffers.act(act), into: $0, cache: buffers.staging) }
        return out
    }

    public func write(_ act: String, values: [Float]) throws {
        let w = try buffers.width(act)
        guard values.count % w == 0, values.count / w <= layout.maxRows else {
            throw LoopError.invalidArgument("write of \(values.count) values into \(act) (width \(w))")
        }
        try values.withUnsafeBytes { try context.upload($0, to: try buffers.act(act), cache: buffers.staging) }
    }

    public func readKV(slot: Int, part: KVPart, rows: Int) throws -> [Float] {
        guard rows <= layout.kvRows else { throw LoopError.invalidArgument("KV read of \(rows) rows > \(layout.kvRows)") }
        let n = rows * layout.kvWidth
        switch buffers.kvType {
        case .f32:
            var out = [Float](repeating: 0, count: n)
            try out.withUnsafeMutableBytes { try context.download(try buffers.kvSlice(slot, part), into: $0, cache: buffers.staging) }
            return out
        case .f16:
            var half = [Float16](repeating: 0, count: n)
            try half.withUnsafeMutableBytes { try context.download(try buffers.kvSlice(slot, part), into: $0, cache: buffers.staging) }
            return half.map { Float($0) }
        }
    }

    // MARK: Profiling

    /// Profiling: sections recorded from now on carry GPU timestamps (see `ProfileMode`).
    public var profileMode: ProfileMode? {
        get { recorder.profileMode }
        set { recorder.profileMode = newValue }
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
    public var gpuIntervals: [GPUInterval] { recorder.gpuIntervals }
    public var hostPhases: [HostPhase] { recorder.hostPhases }
    /// Dispatches executed (summed over submitted command buffers) since `clearProfile`.
    public var dispatchesSubmitted: Int { recorder.dispatchesSubmitted }
    public func clearProfile() { recorder.clearProfile() }
    /// Host time spent recording vs replaying (submit + wait), for benchmarks.
    public var recordSeconds: Double { recorder.recordSeconds }
    public var submitSeconds: Double { recorder.submitSeconds }
    public var submits: Int { recorder.submits }

}
