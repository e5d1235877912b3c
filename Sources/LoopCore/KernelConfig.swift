import Foundation

// Every choice of how the engine runs a plan on a device lives in `KernelConfig`: its defaults
// are derived here from the device's traits, and the one override syntax (the environment's
// `LOOPVK_KERNELS` and the CLI's `--kernels`) is parsed here. This is also the only file that
// reads `LOOPVK_*` environment variables (see `LoopEnvironment`).

/// How `.linear` (and, on CPU devices, attention) reads weights and activations.
///
/// - `storage`: storage buffers (SSBOs). Right for GPUs.
/// - `texel`: uniform texel buffer views of format `R32G32B32A32_UINT` (16 bytes, e.g. 8 bf16,
///   per `texelFetch`). On lavapipe texel fetches are an order of magnitude faster than SSBO
///   loads (DESIGN.md, "Facts learned on this platform").
public enum ReadPath: String, Sendable, CaseIterable, CustomStringConvertible {
    case storage
    case texel
    public var description: String { rawValue }
}

/// How row reductions (norms, attention, argmax, softmax, exit decisions) combine lanes.
public enum Reduction: String, Sendable, CaseIterable, CustomStringConvertible {
    /// One subgroup per workgroup, subgroup operations only, no barrier (CPU devices: a
    /// `barrier()` makes lavapipe run a shader as coroutines).
    case subgroup
    /// Shared memory and barriers across a 64-invocation workgroup (GPUs).
    case shared
    public var description: String { rawValue }
}

/// The element type of the KV cache.
public enum KVCacheType: String, Sendable, CaseIterable, CustomStringConvertible {
    case f32
    case f16
    public var description: String { rawValue }
    /// Bytes per cached value.
    public var byteSize: Int { self == .f16 ? 2 : 4 }
}

/// What a kernel configuration's defaults depend on: the device's kind and capabilities.
public struct DeviceTraits: Sendable, Equatable {
    public enum Kind: String, Sendable { case cpu, gpu }
    public var kind: Kind
    public var subgroupSize: Int
    /// Subgroup shuffles in compute shaders (the subgroup-only reductions need them).
    public var subgroupShuffle: Bool
    /// `R32G32B32A32_UINT` uniform texel buffers (the texel read path needs them).
    public var uniformTexelBuffers: Bool
    /// VK_EXT_conditional_rendering (exit decisions taken on the device).
    public var conditionalSections: Bool
    /// 16-bit storage-buffer access (storageBuffer16BitAccess): the f16 KV cache needs it.
    public var storage16Bit: Bool
    /// Threads a CPU device runs workgroups on (lavapipe: `LP_NUM_THREADS`, 0 meaning the
    /// submitting thread alone; else one per core). 1 on GPUs (unused there).
    public var threads: Int
    /// Compute units (NVIDIA SMs, AMD CUs, CPU device threads; `DeviceInfo.computeUnits`): how
    /// many workgroups keep the device busy (the flash-decoding split count).
    public var computeUnits: Int
    public init(kind: Kind, subgroupSize: Int, subgroupShuffle: Bool, uniformTexelBuffers: Bool, conditionalSections: Bool,
                storage16Bit: Bool = true, threads: Int = 1, computeUnits: Int = 16) {
        self.kind = kind; self.subgroupSize = subgroupSize; self.subgroupShuffle = subgroupShuffle
        self.uniformTexelBuffers = uniformTexelBuffers; self.conditionalSections = conditionalSections
        self.storage16Bit = storage16Bit; self.threads = max(1, threads); self.computeUnits = max(1, computeUnits)
    }

    /// The CPU reference backend: no device, every engine-level feature available.
    public static let cpuReference = DeviceTraits(kind: .cpu, subgroupSize: 1, subgroupShuffle: false, uniformTexelBuffers: false,
                                                  conditionalSections: true, storage16Bit: true, threads: 1)

    /// Worker threads of a CPU Vulkan device as lavapipe counts them.
    public static func cpuDeviceThreads(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        max(1, Int(environment["LP_NUM_THREADS"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount)
    }
}

/// Every kernel choice of a backend, as one value. `defaults(for:)` derives them from the
/// device; `parse` applies overrides such as `read=storage,splits=8,fusion=off` or the preset
/// `gpu`. The CPU reference backend reads only the engine-level keys (chain, prune, device-exit).
public struct KernelConfig: Sendable, Equatable, CustomStringConvertible {
    // Read paths and reductions.
    /// How products (and on CPU devices attention) read weights and activations.
    public var read: ReadPath
    /// How row reductions combine lanes. The texel GEMV over row-major weights also adds a
    /// shared-memory step for workgroups wider than a subgroup when this is `.shared`.
    public var reduce: Reduction

    // Texel-path shapes.
    /// Invocations per texel-GEMV workgroup (the subgroup size, so the reduction is one subgroupAdd).
    public var lanes: Int
    /// Output features per workgroup of the texel GEMV over row-major weights (rows that are
    /// not whole texels).
    public var texelRows: Int
    /// Rows per block of the texel path's interleaved weight copy (0: keep weights row-major).
    /// A decode workgroup reads its block as one sequential stream.
    public var interleave: Int
    /// Output features x rows per workgroup of the texel subgroup matmul (row-major or
    /// unaligned operands; the aligned interleaved case has its own 128 x 8 kernel).
    public var matmulTile: (features: Int, rows: Int)
    /// The most rows one invocation owns in the texel prefill attention (attention.comp LANE_ROWS).
    public var laneRows: Int
    /// Texel decode attention with one invocation per query head (attention.comp LANE_HEADS)
    /// where ceil(heads / 8) workgroups keep every device thread busy.
    public var laneHeads: Bool
    /// Threads of a CPU device (see `DeviceTraits.threads`): decides `laneHeads` per shape.
    public var threads: Int
    /// Bytes one texel view may span; nil = the device's maxTexelBufferElements x 16. Lowered
    /// to exercise the splitting of products over several views.
    public var texelViewBytes: Int?

    // Storage-path choices.
    /// Flash-decoding: workgroups a decode token's attention splits each head's keys across
    /// (attention.comp SPLIT + attention_combine.comp); 1 = off; nil = chosen per attention op
    /// from the device and the context by `attentionSplits(heads:context:)`. Storage path with
    /// shared reductions only.
    public var splits: Int?
    /// Compute units of the device (see `DeviceTraits.computeUnits`); the automatic split count
    /// aims at `workgroupsPerComputeUnit` workgroups per unit.
    public var computeUnits: Int

    // Recording and the engine.
    /// Record consecutive ops that one shader computes together as one dispatch (Fusion.swift).
    public var fusion: Bool
    /// Greedy decode with a static exit policy: at most this many tokens per submission (1 = off).
    public var chain: Int
    /// Prefill drops the ops whose results nothing reads (Liveness.prune).
    public var prune: Bool
    /// Ouro's Q-exit decided on the device in one submission per token where the backend can.
    public var deviceExit: Bool
    /// The KV cache's element type: f16 (half the memory and the attention reads; the default
    /// where the device has 16-bit storage) or f32 (what the fp32 goldens are checked with).
    public var kv: KVCacheType
    /// Map device memory where the device allows it; false makes every transfer take the
    /// staging copies a discrete GPU needs (the `gpu` preset, tests of that path).
    public var mapMemory: Bool

    /// The most tokens a greedy chain may hold.
    public static let maxChain = 64

    // MARK: Flash-decoding split count (the one place it is chosen)

    /// Keys one split takes at least (attention.comp SPLIT_MIN_KEYS): below this a split's fixed
    /// cost (q, the merge, its partial state and the combine) outweighs its share of K and V.
    public static let minKeysPerSplit = 64
    /// Workgroups per compute unit the automatic split count aims at (latency hiding).
    public static let workgroupsPerComputeUnit = 4
    /// The most splits (the `splits` key's range).
    public static let maxSplits = 1024

    /// Workgroups per head for a decode attention of `heads` query heads over a cache of up to
    /// `context` positions: the explicit `splits` when set, else
    /// `clamp(ceil(computeUnits * workgroupsPerComputeUnit / heads), 1, ceil(context / minKeysPerSplit))`.
    /// The kernel also skips, at run time, the splits past the current position.
    public func attentionSplits(heads: Int, context: Int) -> Int {
        if let splits { return splits }
        let target = computeUnits * Self.workgroupsPerComputeUnit
        let wanted = (target + max(heads, 1) - 1) / max(heads, 1)
        let most = max(1, (context + Self.minKeysPerSplit - 1) / Self.minKeysPerSplit)
        return min(max(wanted, 1), most, Self.maxSplits)
    }

    /// The configuration a device gets when nothing is overridden.
    public static func defaults(for d: DeviceTraits) -> KernelConfig {
        let cpu = d.kind == .cpu
        return KernelConfig(
            read: cpu && d.uniformTexelBuffers ? .texel : .storage,
            reduce: cpu && d.subgroupSize >= 4 && d.subgroupShuffle ? .subgroup : .shared,
            lanes: min(max(d.subgroupSize, 1), 64), texelRows: 32, interleave: 32, matmulTile: (8, 8),
            laneRows: 8, laneHeads: true, threads: d.threads, texelViewBytes: nil,
            splits: cpu ? 1 : nil, computeUnits: d.computeUnits,
            fusion: true, chain: 8, prune: true, deviceExit: d.conditionalSections, kv: d.storage16Bit ? .f16 : .f32, mapMemory: true)
    }

    /// What a discrete GPU gets, on any device (lavapipe included): storage path, shared-memory
    /// reductions, flash-decoding splits, device memory left unmapped.
    public static func gpuPreset(for d: DeviceTraits) -> KernelConfig {
        var c = defaults(for: d)
        c.read = .storage
        c.reduce = .shared
        c.splits = nil
        c.mapMemory = false
        return c
    }

    /// Equal when every key has the same value (`description` lists them all).
    public static func == (a: KernelConfig, b: KernelConfig) -> Bool { a.description == b.description }

    // MARK: The override syntax

    /// The keys `parse` accepts, with their values, for error messages and `--help`.
    public static let keys: [(key: String, values: String)] = [
        ("read", "storage|texel"), ("reduce", "subgroup|shared"), ("lanes", "1..64"), ("texel-rows", "1..256"),
        ("interleave", "0|2..256"), ("matmul-tile", "FxR (1..32 each)"), ("lane-rows", "1..64"), ("lane-heads", "on|off"),
        ("threads", "1..1024"), ("texel-view", "BYTES (>= 256)"), ("splits", "auto|1..1024"), ("compute-units", "1..65536"), ("fusion", "on|off"),
        ("chain", "1..\(maxChain)"), ("prune", "on|off"), ("device-exit", "on|off"), ("kv", "f32|f16"), ("memory", "mapped|unmapped"),
    ]
    /// Presets: a bare word in the override list.
    public static let presets = ["default", "gpu"]

    /// Applies `spec` — comma-separated presets and `key=value` pairs, left to right — to
    /// `self`. An unknown key, value or preset is an error naming the valid ones.
    public func applying(_ spec: String, device: DeviceTraits, source: String = "--kernels") throws -> KernelConfig {
        var c = self
        for raw in spec.split(separator: ",", omittingEmptySubsequences: true) {
            let item = raw.trimmingCharacters(in: .whitespaces)
            if item.isEmpty { continue }
            guard let eq = item.firstIndex(of: "=") else {
                switch item.lowercased() {
                case "default": c = Self.defaults(for: device)
                case "gpu": c = Self.gpuPreset(for: device)
                default: throw LoopError.invalidArgument("\(source): unknown preset \"\(item)\"; presets: \(Self.presets.joined(separator: ", ")); keys: \(Self.keys.map { "\($0.key)=\($0.values)" }.joined(separator: ", "))")
                }
                continue
            }
            let key = item[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            let value = item[item.index(after: eq)...].trimmingCharacters(in: .whitespaces).lowercased()
            func bad() -> LoopError {
                let expected = Self.keys.first { $0.key == key }?.values ?? ""
                return LoopError.invalidArgument("\(source): \(key)=\(value): expected \(expected)")
            }
            func int(_ range: ClosedRange<Int>) throws -> Int {
                guard let n = Int(value), range.contains(n) else { throw bad() }
                return n
            }
            func flag() throws -> Bool {
                switch value { case "on", "1", "true", "yes": return true; case "off", "0", "false", "no": return false; default: throw bad() }
            }
            switch key {
            case "read": guard let v = ReadPath(rawValue: value) else { throw bad() }; c.read = v
            case "reduce": guard let v = Reduction(rawValue: value) else { throw bad() }; c.reduce = v
            case "lanes": c.lanes = try int(1...64)
            case "texel-rows": c.texelRows = try int(1...256)
            case "interleave":
                let n = try int(0...256)
                guard n != 1 else { throw bad() }
                c.interleave = n
            case "matmul-tile":
                let parts = value.split(separator: "x").compactMap { Int($0) }
                guard parts.count == 2, (1...32).contains(parts[0]), (1...32).contains(parts[1]) else { throw bad() }
                c.matmulTile = (parts[0], parts[1])
            case "lane-rows": c.laneRows = try int(1...64)
            case "lane-heads": c.laneHeads = try flag()
            case "threads": c.threads = try int(1...1024)
            case "texel-view": c.texelViewBytes = try int(256...Int(Int32.max))
            case "splits": c.splits = value == "auto" ? nil : try int(1...Self.maxSplits)
            case "compute-units": c.computeUnits = try int(1...65536)
            case "fusion": c.fusion = try flag()
            case "chain": c.chain = try int(1...Self.maxChain)
            case "prune": c.prune = try flag()
            case "device-exit": c.deviceExit = try flag()
            case "kv": guard let v = KVCacheType(rawValue: value) else { throw bad() }; c.kv = v
            case "memory":
                switch value { case "mapped": c.mapMemory = true; case "unmapped": c.mapMemory = false; default: throw bad() }
            default:
                throw LoopError.invalidArgument("\(source): unknown key \"\(key)\"; keys: \(Self.keys.map { "\($0.key)=\($0.values)" }.joined(separator: ", ")); presets: \(Self.presets.joined(separator: ", "))")
            }
        }
        return c
    }

    /// Checks the configuration against the device: a choice the device cannot run is an error
    /// naming it.
    public func validate(for d: DeviceTraits, deviceName: String) throws {
        if read == .texel && !d.uniformTexelBuffers {
            throw LoopError.invalidArgument("read=texel: \(deviceName) has no uniform texel buffers of format R32G32B32A32_UINT; use read=storage")
        }
        if reduce == .subgroup && !(d.subgroupSize >= 4 && d.subgroupShuffle) {
            throw LoopError.invalidArgument("reduce=subgroup: \(deviceName) has subgroups of \(d.subgroupSize)\(d.subgroupShuffle ? "" : " without shuffles"); use reduce=shared")
        }
        if kv == .f16 && !d.storage16Bit {
            throw LoopError.invalidArgument("kv=f16: \(deviceName) has no 16-bit storage-buffer access (storageBuffer16BitAccess); use kv=f32")
        }
    }

    /// The configuration for a device: its defaults, then `LOOPVK_KERNELS`, then `override`
    /// (the CLI's `--kernels`), checked against the device unless `check` is false (the CPU
    /// reference, which reads only the engine-level keys).
    public static func resolve(for d: DeviceTraits, deviceName: String, override: String? = nil, check: Bool = true,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> KernelConfig {
        var c = defaults(for: d)
        if let env = environment[LoopEnvironment.kernelsKey], !env.isEmpty {
            c = try c.applying(env, device: d, source: LoopEnvironment.kernelsKey)
        }
        if let override, !override.isEmpty { c = try c.applying(override, device: d) }
        if check { try c.validate(for: d, deviceName: deviceName) }
        return c
    }

    /// The configuration as `key=value` pairs in the override syntax (it parses back to itself).
    public var description: String {
        func f(_ b: Bool) -> String { b ? "on" : "off" }
        var items = ["read=\(read)", "reduce=\(reduce)", "lanes=\(lanes)", "texel-rows=\(texelRows)", "interleave=\(interleave)",
                     "matmul-tile=\(matmulTile.features)x\(matmulTile.rows)", "lane-rows=\(laneRows)", "lane-heads=\(f(laneHeads))",
                     "threads=\(threads)"]
        if let texelViewBytes { items.append("texel-view=\(texelViewBytes)") }
        items += ["splits=\(splits.map(String.init) ?? "auto")", "compute-units=\(computeUnits)", "fusion=\(f(fusion))", "chain=\(chain)", "prune=\(f(prune))", "device-exit=\(f(deviceExit))",
                  "kv=\(kv)", "memory=\(mapMemory ? "mapped" : "unmapped")"]
        return items.joined(separator: ",")
    }
}

/// The environment variables LoopVK reads (besides `LOOPVK_KERNELS`, read by
/// `KernelConfig.resolve`, and the CLI's `LOOPVK_MODEL`), all read here.
public enum LoopEnvironment {
    /// Kernel overrides in `KernelConfig`'s syntax.
    public static let kernelsKey = "LOOPVK_KERNELS"
    static var env: [String: String] { ProcessInfo.processInfo.environment }

    /// `LOOPVK_DEVICE`: the Vulkan device to open (a name substring or an index).
    public static var device: String? { env["LOOPVK_DEVICE"].flatMap { $0.isEmpty ? nil : $0 } }
    /// `LOOPVK_VALIDATION`: turn the Khronos validation layer on (1) or off (0); nil = unset.
    public static var validation: Bool? { env["LOOPVK_VALIDATION"].map { $0 != "0" } }
    /// `LOOPVK_VALIDATION_QUIET`: collect validation messages without printing them (tests).
    public static var validationQuiet: Bool { env["LOOPVK_VALIDATION_QUIET"] != nil }
    /// `LOOPVK_SHADER_DIR`: load GLSL from this folder instead of the embedded copies.
    public static var shaderDirectory: String? { env["LOOPVK_SHADER_DIR"].flatMap { $0.isEmpty ? nil : $0 } }
    /// `LOOPVK_SHADER_CACHE`: where compiled SPIR-V is cached ("" or "0": no cache; unset: the
    /// XDG cache folder).
    public static var shaderCache: String? { env["LOOPVK_SHADER_CACHE"] }
    /// `LOOPVK_DISPATCH_REPORT`: print dispatch and validation totals at exit.
    public static var dispatchReport: Bool { env["LOOPVK_DISPATCH_REPORT"] != nil }
    /// `LOOPVK_PROBE=OUTxINxN`: bench's read-probe shape.
    public static var probe: String? { env["LOOPVK_PROBE"] }
}
