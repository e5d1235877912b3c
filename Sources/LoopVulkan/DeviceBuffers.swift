import Foundation
import LoopCore

/// Every device buffer a backend records against: activations (by the plan's names), the KV
/// cache (by slot and part), the step state, a greedy chain's results, kernels' scratch, and the
/// weights' device copies, each uploaded once in the layout the ops read it in. Encoders look
/// buffers up here; nothing here records or submits.
final class DeviceBuffers {
    let context: VulkanContext
    let layout: BackendLayout
    let weights: WeightStore
    /// Weights (device-local).
    let arena: MemoryArena
    /// Activations, KV and scratch (device-local; mapped where the configuration allows).
    let actArena: MemoryArena
    /// The step state, chain results and the dummy binding (host-visible).
    let hostArena: MemoryArena
    /// Staging for transfers where memory is not mapped (see `StagingCache`).
    let staging = StagingCache()
    private var acts: [String: BufferSlice] = [:]
    private var kv: [BufferSlice] = []          // slot * 2 + part
    private var weightSlices: [String: (slice: BufferSlice, dtype: DType, count: Int)] = [:]
    /// The per-call step state the shaders read (`Recorder.setStep`, STEP_STATE in common.glsl).
    let step: BufferSlice
    /// The ids a greedy chain chose.
    let chainResults: BufferSlice
    private let dummy: BufferSlice

    /// The KV cache's element type (KernelConfig.kv).
    let kvType: KVCacheType

    /// The KV_F16 define of the shaders that read or write the cache (see common.glsl).
    var kvDefines: [String: String] { ["KV_F16": kvType == .f16 ? "1" : "0"] }

    init(context: VulkanContext, layout: BackendLayout, weights: WeightStore, mapMemory: Bool, kv kvType: KVCacheType) throws {
        self.context = context
        self.kvType = kvType
        self.layout = layout
        self.weights = weights
        arena = MemoryArena(context: context, hostVisible: false, map: mapMemory)
        actArena = MemoryArena(context: context, hostVisible: false, map: mapMemory)
        hostArena = MemoryArena(context: context, hostVisible: true, blockSize: 1 << 20)
        let limit = context.info.maxStorageBufferRange
        // The host's per-token activations (`layout.hostIO`) go in host-visible memory where
        // device memory is not mapped, so reading or writing them takes no staging submission.
        var deviceMapped = mapMemory
        // (The others first: they tell whether device memory is mapped.)
        let names = layout.activations.keys.sorted()
        for name in names.filter({ !layout.hostIO.contains($0) }) + names.filter({ layout.hostIO.contains($0) }) {
            let width = layout.activations[name]!
            let bytes = layout.maxRows * width * 4
            if UInt64(bytes) > limit {
                throw VulkanError("activation \(name)", message: "\(layout.maxRows) rows x \(width) floats = \(bytes) bytes exceed maxStorageBufferRange \(limit); use fewer rows per call")
            }
            let io = layout.hostIO.contains(name)
            let s = try (io && !deviceMapped ? hostArena : actArena).allocate(bytes)
            if !io { deviceMapped = deviceMapped && s.isHostVisible }
            try context.fill(s, byteCount: bytes)
            acts[name] = s
        }
        let kvBytes = layout.kvRows * layout.kvWidth * kvType.byteSize
        if UInt64(kvBytes) > limit {
            throw VulkanError("KV cache", message: "\(layout.kvRows) rows x \(layout.kvWidth) \(kvType) values per slot exceed maxStorageBufferRange \(limit); use a shorter context or a smaller KV budget")
        }
        for _ in 0..<(layout.kvSlots * 2) {
            let s = try actArena.allocate(max(kvBytes, 4))
            try context.fill(s, byteCount: max(kvBytes, 4))
            kv.append(s)
        }
        step = try hostArena.allocate(Self.stepBytes(layout))
        chainResults = try hostArena.allocate(4 * KernelConfig.maxChain)
        dummy = try hostArena.allocate(16)
        try context.fill(dummy, byteCount: 16)
    }

    /// Device bytes allocated for weights, activations, KV and the host-visible buffers.
    var allocatedBytes: UInt64 { arena.allocatedBytes + actArena.allocatedBytes + hostArena.allocatedBytes }

    /// Kernels' own working memory: the fused head + argmax's per-workgroup bests and counter,
    /// the split attention's partial states. Hazard tracking sees them as buffers of their own.
    enum Scratch: String, Hashable { case argmax, argmaxSplit = "argmax-split", attentionSplit = "attention-split" }

    /// A zero-filled device buffer of at least `bytes` for `kind`, made on first use and kept
    /// (a larger request makes a new buffer; sections recorded with the old one keep it).
    func scratch(_ kind: Scratch, bytes: Int) throws -> BufferSlice {
        if let s = scratchBuffers[kind], s.size >= UInt64(bytes) { return s }
        let s = try actArena.allocate(bytes)
        try context.fill(s, byteCount: bytes)
        scratchBuffers[kind] = s
        return s
    }
    private var scratchBuffers: [Scratch: BufferSlice] = [:]

    func weight(_ name: String) throws -> (slice: BufferSlice, dtype: DType, count: Int) {
        if let w = weightSlices[name] { return w }
        let w: (BufferSlice, DType, Int) = try weights.withParts(name) { dtype, shape, parts in
            guard dtype.isFloat else { throw LoopError.wrongDType(tensor: name, found: dtype.rawValue) }
            let slice = try arena.allocate(parts.reduce(0) { $0 + $1.count })
            var at = 0
            for raw in parts {
                try context.upload(raw, to: slice, at: at, cache: staging)
                at += raw.count
            }
            return (slice, dtype, shape.reduce(1, *))
        }
        weightSlices[name] = w
        weights.releaseResident(name)
        return w
    }

    /// The texel read path's copy of a weight seen as [rows, inF] (rows = elements / inF): rows
    /// firstRow ..< rows in blocks of `block` rows, each block stored texel-major (texel t of
    /// block row i at t * block + i, 16-byte texels), the last block zero-padded. matvec.comp
    /// reads a block as one sequential stream (see its header). Needs inF to fill whole texels.
    func interleavedWeight(_ name: String, inFeatures inF: Int, block: Int, firstRow: Int) throws -> (slice: BufferSlice, dtype: DType, count: Int) {
        let key = WeightCopy.interleaved(name: name, inFeatures: inF, block: block, firstRow: firstRow).key
        if let w = weightSlices[key] { return w }
        let w: (BufferSlice, DType, Int) = try weights.withParts(name) { dtype, shape, parts in
            guard let format = dtype.weightFormat else { throw LoopError.wrongDType(tensor: name, found: dtype.rawValue) }
            if format.isBlock { return try interleavedBlocks(name, format: format, dtype: dtype, shape: shape, parts: parts, inF: inF, block: block, firstRow: firstRow) }
            let count = shape.reduce(1, *), es = dtype.byteSize
            guard inF > 0, block > 0, (inF * es) % 16 == 0, count % inF == 0, firstRow >= 0, firstRow < max(count / inF, 1) else {
                throw LoopError.invalidArgument("\(name) (\(count) elements) cannot be read as rows of \(inF) from row \(firstRow) in blocks of \(block)")
            }
            let rows = try StoredRows(name, parts, rowBytes: inF * es)
            let n = count / inF - firstRow, nt = inF * es / 16
            let blocks = (n + block - 1) / block, blockBytes = block * nt * 16
            // Every byte of a whole block is written: only a last, partial block needs zeroing.
            let slice = try uploadGroups(blocks, bytes: blockBytes, zeroed: false) { out, b in
                if (b + 1) * block > n { memset(out, 0, blockBytes) }
                for i in 0..<block {
                    let row = b * block + i
                    guard row < n else { break }
                    let inp = rows.row(firstRow + row)
                    for t in 0..<nt {
                        (out + (t * block + i) * 16).storeBytes(of: (inp + t * 16).loadUnaligned(as: SIMD2<UInt64>.self), as: SIMD2<UInt64>.self)
                    }
                }
            }
            return (slice, dtype, blocks * block * inF)
        }
        weightSlices[key] = w
        weights.releaseStacked(name)
        weights.releaseResident(name)
        return w
    }

    /// `interleavedWeight` for a block format: per group of `block` rows, main texel u of block
    /// b of row i at (b * MT + u) * block + i (MT: the block's bytes less its side bytes, in
    /// 16-byte texels, in stored order), then the side texels: block b's S side bytes of row i
    /// in texel (b / SB) * block + i at byte (b % SB) * S, SB = 16 / S (linear_block.comp's
    /// INTERLEAVED kernel); the last group zero-padded. The stored bytes reordered, plus the
    /// padding of the last group and of a row's last side texel.
    private func interleavedBlocks(_ name: String, format: WeightFormat, dtype: DType, shape: [Int], parts: [UnsafeRawBufferPointer],
                                   inF: Int, block: Int, firstRow: Int) throws -> (BufferSlice, DType, Int) {
        let count = shape.reduce(1, *), epb = format.elementsPerBlock, bpb = format.bytesPerBlock
        let side = format.sideBytes, s = side.count
        guard inF > 0, block > 0, inF % epb == 0, count % inF == 0, let main = format.interleavedMainBytes,
              let groupBytes = format.interleavedGroupBytes(rows: block, inF: inF), firstRow >= 0, firstRow < max(count / inF, 1) else {
            throw LoopError.invalidArgument("\(name) (\(dtype.rawValue), \(count) elements) cannot be read as rows of \(inF) from row \(firstRow) in interleaved groups of \(block)")
        }
        let mainStart = side.lowerBound == 0 ? s : 0     // (side bytes at the start or the end: interleavedMainBytes)
        let rows = count / inF - firstRow, nb = inF / epb, mt = main / 16, rowBytes = nb * bpb
        let stored = try StoredRows(name, parts, rowBytes: rowBytes)
        let groups = (rows + block - 1) / block, sb = format.interleavedSideBlocks
        let slice = try uploadGroups(groups, bytes: groupBytes) { out, g in
            let sideOut = out + block * nb * main
            for i in 0..<block {
                let row = g * block + i
                guard row < rows else { break }
                let inp = stored.row(firstRow + row)
                for b in 0..<nb {
                    let blk = inp + b * bpb, m = blk + mainStart
                    for t in 0..<mt {
                        (out + ((b * mt + t) * block + i) * 16).storeBytes(of: (m + 16 * t).loadUnaligned(as: SIMD2<UInt64>.self), as: SIMD2<UInt64>.self)
                    }
                    if s > 0 { memcpy(sideOut + ((b / sb) * block + i) * 16 + (b % sb) * s, blk + side.lowerBound, s) }
                }
            }
        }
        return (slice, dtype, groups * block * inF)
    }

    /// A new slice of `count` groups of `bytes` each, filled on the host (`fill(out, g)` writes
    /// group g at `out`, which starts zeroed unless `zeroed` is false) on every core: in place where the slice is mapped
    /// (host-visible device memory: CPU devices, unified memory), else a few MiB of groups at a
    /// time into a host buffer that is uploaded through staging.
    private func uploadGroups(_ count: Int, bytes: Int, zeroed: Bool = true, fill: (UnsafeMutableRawPointer, Int) -> Void) throws -> BufferSlice {
        let slice = try arena.allocate(count * bytes)
        if let p = slice.mapped {
            Self.fillGroups(p, range: 0..<count, bytes: bytes, zeroed: zeroed, fill: fill)
            return slice
        }
        let perChunk = max(1, (8 << 20) / max(bytes, 1))
        var buffer = [UInt8](repeating: 0, count: min(perChunk, count) * bytes)
        var g0 = 0
        while g0 < count {
            let n = min(perChunk, count - g0)
            try buffer.withUnsafeMutableBytes { dst in
                let d = dst.baseAddress!
                Self.fillGroups(d - g0 * bytes, range: g0..<(g0 + n), bytes: bytes, zeroed: zeroed, fill: fill)
                try context.upload(UnsafeRawBufferPointer(rebasing: dst[0..<(n * bytes)]), to: slice, at: g0 * bytes, cache: staging)
            }
            g0 += n
        }
        return slice
    }

    /// Zeroes (if `zeroed`) and fills groups `range` (group g at `base + g * bytes`), split
    /// over the cores in runs of whole groups of at least 1 MiB.
    private static func fillGroups(_ base: UnsafeMutableRawPointer, range: Range<Int>, bytes: Int, zeroed: Bool, fill: (UnsafeMutableRawPointer, Int) -> Void) {
        let perRun = max(1, (1 << 20) / max(bytes, 1))
        let runs = (range.count + perRun - 1) / perRun
        withoutActuallyEscaping(fill) { fill in
            let job = GroupFill(base: base, range: range, perRun: perRun, bytes: bytes, zeroed: zeroed, fill: fill)
            if runs > 1 { DispatchQueue.concurrentPerform(iterations: runs) { job.run($0) } } else if runs == 1 { job.run(0) }
        }
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

    /// The step state's size: header, per-row tokens, positions and table offsets, and the page
    /// tables of up to `maxSequences` sequences (see STEP_STATE in common.glsl).
    static func stepBytes(_ layout: BackendLayout) -> Int {
        4 * (4 + 3 * max(layout.maxRows, 1) + max(layout.maxSequences, 1) * KVPages.pages(positions: layout.maxContext + KernelConfig.maxChain))
    }

    func kvSlice(_ slot: Int, _ part: KVPart) throws -> BufferSlice {
        guard slot >= 0, slot < layout.kvSlots else { throw LoopError.invalidArgument("KV slot \(slot) out of range 0..<\(layout.kvSlots)") }
        return kv[slot * 2 + Int(part.rawValue)]
    }

    var dummyBinding: Binding { Binding(dummy) }
}

/// One run of `DeviceBuffers.fillGroups`: the runs write disjoint groups, so they may run on
/// several threads at once.
private struct GroupFill: @unchecked Sendable {
    let base: UnsafeMutableRawPointer, range: Range<Int>, perRun: Int, bytes: Int, zeroed: Bool
    let fill: (UnsafeMutableRawPointer, Int) -> Void
    func run(_ r: Int) {
        let lo = range.lowerBound + r * perRun, hi = min(lo + perRun, range.upperBound)
        if zeroed { memset(base + lo * bytes, 0, (hi - lo) * bytes) }
        for g in lo..<hi { fill(base + g * bytes, g) }
    }
}

/// Rows of `rowBytes` of a tensor stored in parts (a row-stacked tensor's checkpoint tensors,
/// each holding whole rows): row r's bytes wherever its part lies.
struct StoredRows: @unchecked Sendable {
    private let parts: [(firstRow: Int, base: UnsafeRawPointer)]
    let rowBytes: Int, count: Int
    /// Throws when a part does not hold whole rows.
    init(_ name: String, _ parts: [UnsafeRawBufferPointer], rowBytes: Int) throws {
        var list: [(Int, UnsafeRawPointer)] = [], rows = 0
        for p in parts where p.count > 0 {
            guard rowBytes > 0, p.count % rowBytes == 0, let base = p.baseAddress else {
                throw LoopError.invalidArgument("\(name): a stacked part of \(p.count) bytes does not hold whole rows of \(rowBytes) bytes")
            }
            list.append((rows, base))
            rows += p.count / rowBytes
        }
        self.parts = list; self.rowBytes = rowBytes; count = rows
    }
    func row(_ r: Int) -> UnsafeRawPointer {
        precondition(r >= 0 && r < count, "row \(r) of \(count)")
        var k = parts.count - 1
        while parts[k].firstRow > r { k -= 1 }
        return parts[k].base + (r - parts[k].firstRow) * rowBytes
    }
}
