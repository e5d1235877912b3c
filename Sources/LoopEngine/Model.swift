import Foundation
import LoopCore
import LoopVulkan

/// Which backend executes the plan.
public enum BackendChoice: Sendable, Equatable {
    /// The CPU reference (fp32, plain loops).
    case cpu
    /// A Vulkan device: nil = automatic choice (`LOOPVK_DEVICE`, else discrete > integrated > CPU).
    case vulkan(device: String?)
}

/// The size of a batch's KV pool (`Model(batch:)`).
public enum KVBudget: Sendable, Equatable {
    /// Bytes of device (or host) memory: as many whole pages as fit.
    case bytes(Int)
    /// Positions (of all sequences together), rounded up to whole pages.
    case positions(Int)
}

/// A checkpoint folder opened, its plan built, and a backend holding its weights.
public final class Model {
    public let checkpoint: Checkpoint
    public let plan: LoopPlan
    public let info: ModelInfo
    public let backend: PlanBackend
    /// The backend when it is a Vulkan device (profiling, bench and device reports use it).
    public let vulkan: VulkanBackend?
    public let layout: BackendLayout
    /// Every tensor the plan names (checkpoint, computed, stacked).
    public let weights: WeightStore
    /// One-float activation that greedy decoding reads instead of a whole logits row.
    public static let argmaxAct = "argmax"
    /// Seconds `init` took: opening the checkpoint, the device, and uploading every weight.
    public private(set) var loadSeconds: Double = 0
    /// Positions allocated when the caller names no context length.
    public static let defaultContext = 4096

    /// Opens `directory`. `passes`: nil = config default. `maxContext`: cap on positions (KV
    /// cache rows), default min(config limit, 4096). `maxRows`: rows per call (prefill chunk).
    /// `kernels`: overrides of the device's kernel configuration in `KernelConfig`'s syntax
    /// (`read=storage,splits=8`, `gpu`), applied after `LOOPVK_KERNELS`.
    /// `numerics`: how activations are rounded (`Numerics`; `.bf16` needs the CPU backend).
    /// `batch`: sequences one call may carry (a `BatchDecoder`'s rows) and the KV pool's size
    /// (nil = one whole context, as a single sequence needs).
    public init(directory: URL, passes: Int? = nil, backend choice: BackendChoice = .vulkan(device: nil),
                maxContext: Int? = nil, maxRows: Int = 256, kernels: String? = nil, numerics: Numerics = .fp32,
                batch: (sequences: Int, kv: KVBudget?) = (1, nil), progress: ((Double) -> Void)? = nil) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        checkpoint = try Checkpoint.open(directory)
        guard maxRows >= 1 else { throw LoopError.invalidArgument("rows per call must be positive") }
        if let m = maxContext, m < 1 { throw LoopError.invalidArgument("context length must be positive, got \(m)") }
        // The RoPE tables and the KV cache are built for the context actually allocated.
        if numerics != .fp32, case .vulkan = choice {
            throw LoopError.unsupported("--numerics \(numerics.rawValue) runs on the CPU reference only (add --cpu); the Vulkan kernels compute in fp32")
        }
        var (plan, info) = try ModelFamily.plan(checkpoint: checkpoint, passes: passes, maxContext: maxContext ?? Self.defaultContext, numerics: numerics)
        plan.activations[Self.argmaxAct] = 1
        self.plan = plan
        self.info = info
        let context = plan.maxContext
        var layout = BackendLayout(plan: plan, maxRows: min(maxRows, context), maxContext: context)
        layout.hostIO.insert(Self.argmaxAct)
        guard batch.sequences >= 1, batch.sequences <= layout.maxRows else {
            throw LoopError.invalidArgument("a batch of \(batch.sequences) sequences needs 1...\(layout.maxRows) rows per call")
        }
        layout.maxSequences = batch.sequences
        /// The pool's pages for a budget, at the backend's bytes per cached value.
        func budget(_ kvBytes: Int) throws {
            guard let kv = batch.kv else { return }
            if case .positions(let p) = kv {
                guard p >= 1 else { throw LoopError.invalidArgument("a KV budget of \(p) positions holds nothing") }
                layout.kvRows = KVPages.pages(positions: p) * KVPages.rows
                return
            }
            guard case .bytes(let bytes) = kv else { return }
            let page = Self.kvPageBytes(layout: layout, kvBytes: kvBytes)
            let pages = page == 0 ? 1 : bytes / page
            guard pages >= 1 else {
                throw LoopError.invalidArgument("a KV budget of \(bytes) bytes holds no page (\(KVPages.rows) positions take \(page) bytes with this model)")
            }
            layout.kvRows = pages * KVPages.rows
        }
        let weights = WeightStore(checkpoint: checkpoint, plan: plan)
        self.weights = weights
        switch choice {
        case .cpu:
            let config = try KernelConfig.resolve(for: .cpuReference, deviceName: "cpu-reference", override: kernels, check: false)
            try budget(4)
            self.layout = layout
            backend = try CPUBackend(layout: layout, weights: weights, kernels: config)
            vulkan = nil
            progress?(1)
        case .vulkan(let name):
            let ctx = try VulkanContext(deviceName: name)
            let config = try KernelConfig.resolve(for: ctx.info.traits, deviceName: ctx.info.name, override: kernels)
            try budget(config.kv.byteSize)
            self.layout = layout
            try Self.checkFits(plan: plan, layout: layout, weights: weights, context: ctx, config: config)
            let vb = try VulkanBackend(context: ctx, layout: layout, weights: weights, kernels: config)
            try vb.preload(plan.allOps) { done, total in progress?(total == 0 ? 1 : Double(done) / Double(total)) }
            // The device holds its copies now: the mapped checkpoint need not stay resident.
            checkpoint.releaseResidentPages()
            backend = vb
            vulkan = vb
        }
        loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Bytes of KV cache one page (`KVPages.rows` positions of every slot, K and V) takes (the
    /// CPU reference keeps fp32 whatever `kv` says).
    public var kvPageBytes: Int { Self.kvPageBytes(layout: layout, kvBytes: vulkan == nil ? 4 : backend.config.kv.byteSize) }
    static func kvPageBytes(layout: BackendLayout, kvBytes: Int) -> Int { layout.kvSlots * 2 * KVPages.rows * layout.kvWidth * kvBytes }

    /// Refuses, before allocating, a model that cannot fit in the device's memory.
    static func checkFits(plan: LoopPlan, layout: BackendLayout, weights: WeightStore, context: VulkanContext, config: KernelConfig) throws {
        let bytes = try VulkanBackend.weightBytes(plan.allOps, weights: weights, context: context, kernels: config)
        let acts = UInt64(layout.activations.values.reduce(0, +) * layout.maxRows * 4)
        let kv = UInt64(layout.kvSlots * 2 * layout.kvRows * layout.kvWidth * config.kv.byteSize)
        let need = bytes + acts + kv
        var have = context.info.heaps.filter(\.deviceLocal).map(\.size).max() ?? 0
        // A CPU device's "device memory" is host memory (lavapipe reports a 2 GiB heap but
        // allocates from the process): hold it to the machine's physical memory instead.
        if context.info.kind == .cpu { have = max(have, ProcessInfo.processInfo.physicalMemory * 3 / 4) }
        if need > have {
            func gib(_ b: UInt64) -> String { String(format: "%.2f GiB", Double(b) / 1_073_741_824) }
            throw LoopError.invalidArgument("the model needs \(gib(need)) of device memory (weights \(gib(bytes)), activations \(gib(acts)), KV cache \(gib(kv))) but \(context.info.name) has \(gib(have)); try a shorter --context or --cpu")
        }
    }
}
