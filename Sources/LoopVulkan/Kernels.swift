import Foundation
import LoopCore

/// A device copy of a weight: as stored, or in the texel path's interleaved layout (see
/// `VulkanBackend.interleavedWeight`).
enum WeightCopy: Hashable {
    case plain(String)
    case interleaved(name: String, inFeatures: Int, block: Int, firstRow: Int)

    var name: String {
        switch self { case .plain(let n): return n; case .interleaved(let n, _, _, _): return n }
    }
    var key: String {
        switch self {
        case .plain(let n): return n
        case let .interleaved(n, inF, block, first): return "\(n)#il\(inF)x\(block)@\(first)"
        }
    }

    /// Device bytes of this copy: the tensor as stored, or (interleaved) its rows from
    /// `firstRow` on, padded to whole blocks (see VulkanBackend.interleavedWeight).
    func bytes(_ weights: WeightStore) throws -> Int {
        let info = try weights.info(name)
        let count = info.shape.reduce(1, *), es = info.dtype.byteSize
        switch self {
        case .plain: return count * es
        case let .interleaved(_, inF, block, first):
            let rows = count / max(inF, 1) - first
            return (rows + block - 1) / block * block * inF * es
        }
    }
}

/// Turns each plan op into dispatches of its shader (one shader file per op kind): chooses the
/// pipeline variant (weight dtype, workgroup size), binds buffers, fills push constants, and
/// records a barrier only where an earlier dispatch's write is read (or overwritten).
final class Kernels {
    let context: VulkanContext
    private var pipelines: [String: ComputePipeline] = [:]
    /// Threads per workgroup for row reductions (norms, matvec, attention, argmax, softmax).
    let reduceThreads = 64
    /// How the decode GEMV reads W and x.
    let readPath: ReadPath
    /// Texel path: bytes one texel view may span (the device's maxTexelBufferElements x 16;
    /// tests lower it to exercise the splitting).
    var maxTexelBytes: Int
    /// Texel path block shape for row-major weights (rows that are not whole texels, read
    /// element by element): invocations per workgroup (the subgroup size, so the reduction is
    /// one subgroupAdd) and output features per workgroup. 32 features was measured best when
    /// this was also the vectorised path (24-32 beat 16 by ~10% and 8 by ~40%; 40-64 slower).
    /// `LOOPVK_TEXEL_ROWS` overrides it (kernel work).
    var texelLanes: Int
    var texelRows = 32
    /// Texel path: rows per block of the interleaved weight layout (0: keep weights row-major).
    /// A decode workgroup computes one block, each invocation `texelInterleave / lanes` rows
    /// over the whole of k, reading the block as one sequential stream. Measured on lavapipe
    /// (bf16 GEMVs of Ouro's shapes, bench's read probe): 21-24 GB/s at 32 against 13-14 GB/s
    /// for row-major 32-feature blocks; 16 and 64 rows per block were slower (15-18, 15-20).
    var texelInterleave = 32
    /// Texel path: add a shared-memory reduction for workgroups that span several subgroups.
    /// Off on CPU devices, where any barrier() in a shader makes lavapipe run it as coroutines.
    var texelWorkgroupReduce: Bool
    /// Row reductions (rmsnorm, layernorm, attention, argmax, softmax) as one subgroup per
    /// workgroup with subgroup operations only (SUBGROUP_ONLY): on CPU devices, where a
    /// barrier() makes lavapipe run a shader as coroutines. GPUs keep the shared-memory version.
    var subgroupReduce: Bool
    /// Texel path, several rows (prefill, matmul.comp READ_TEXEL): output features and rows per
    /// workgroup (one subgroup). Each W fetch serves `texelMatmulRows` rows, each x fetch
    /// `texelMatmulFeatures` features. Measured on lavapipe (Ouro 1024/2816, 64-token prompt):
    /// 8x8 20.2 tok/s, 16x4 19.6, 8x4 18.9, 4x16 18.6, 16x8 18.1, 4x8 17.7, 8x16 17.0, 4x4 16.7
    /// (before `texelMatmulWide`; now only row-major weights and unaligned operands use it).
    var texelMatmulFeatures = 8
    var texelMatmulRows = 8
    /// Prefill over interleaved (32-row block) weights with aligned operands: matmul.comp's
    /// LANE_FEATURES kernel (128 features x 8 rows per workgroup, no subgroup operations)
    /// instead of the features x rows subgroup kernel above. On lavapipe (bench's probe, 64 x
    /// 1024 by 2816 x 1024, bf16): 88 GFLOP/s against 31 for the subgroup kernel at 8 x 8.
    /// `LOOPVK_TEXEL_WIDE=0` turns it off (A/B runs).
    var texelMatmulWide = true
    /// The LANE_FEATURES kernels store vec4s where the output windows allow it (matmul.comp
    /// OUT_VEC4; `LOOPVK_MATMUL_OUT_VEC4=0`: off).
    var matmulOutVec4 = true
    /// Texel attention over several rows with one invocation per row (attention.comp LANE_ROWS)
    /// instead of one subgroup per row. `LOOPVK_TEXEL_LANE_ROWS=0` turns it off (A/B runs).
    var texelAttentionLaneRows = true
    /// The most rows per invocation there (`attentionRowsPerLane`; `LOOPVK_ATTENTION_ROWS_PER_LANE=N`).
    var texelAttentionMaxRowsPerLane = 8
    /// Texel attention of one row with one invocation per query head (attention.comp
    /// LANE_HEADS) when ceil(heads / 8) workgroups are at least `deviceThreads`; otherwise one
    /// subgroup per head splitting its keys. `LOOPVK_TEXEL_LANE_HEADS=0` turns it off.
    var texelAttentionLaneHeads = true
    /// The threads a CPU device runs workgroups on: lavapipe's LP_NUM_THREADS (0: the
    /// submitting thread alone), else one per core.
    var deviceThreads: Int
    /// silu_mul.comp with vec4 accesses where every size and offset is a multiple of 4.
    /// `LOOPVK_SILU_VEC4=0` turns it off (A/B runs and the scalar path's parity test).
    var siluVec4 = true
    /// rmsnorm.comp with vec4 activation accesses under the same condition (`LOOPVK_NORM_VEC4=0`: off).
    var normVec4 = true
    /// rope.comp (and its fused K/V writes) with vec4 accesses where the layout is rotate-half and
    /// every size and offset is a multiple of 4 (`LOOPVK_ROPE_VEC4=0`: off).
    var ropeVec4 = true
    /// Greedy decode's head + argmax as one dispatch where it applies (see Fusion.swift).
    /// `LOOPVK_HEAD_ARGMAX=0` turns it off (A/B runs).
    var fusedHeadArgmax = true
    /// The stacked gate/up product with the gated SiLU where it applies (see Fusion.swift).
    /// `LOOPVK_GATE_UP_SILU=0` turns it off (A/B runs).
    var fusedSilu = true
    /// Flash-decoding on the storage path with workgroup reductions (GPUs): a decode token's
    /// attention splits each head's keys across this many workgroups (attention.comp SPLIT)
    /// and merges them (attention_combine.comp); 1 = off. Off on CPU devices, whose few cores
    /// the heads already fill. `LOOPVK_ATTENTION_SPLITS=N` sets it. Not measured on a GPU yet.
    var attentionSplits: Int

    init(context: VulkanContext, readPath: ReadPath) {
        self.context = context
        self.readPath = readPath
        maxTexelBytes = Int(min(context.info.maxTexelBufferElements, UInt64(Int.max / 32))) * 16
        texelLanes = min(max(context.info.subgroupSize, 1), 64)
        texelWorkgroupReduce = context.info.kind != .cpu
        if let v = ProcessInfo.processInfo.environment["LOOPVK_TEXEL_ROWS"], let n = Int(v), n >= 1 { texelRows = n }
        if ProcessInfo.processInfo.environment["LOOPVK_TEXEL_WIDE"] == "0" { texelMatmulWide = false }
        if ProcessInfo.processInfo.environment["LOOPVK_TEXEL_LANE_ROWS"] == "0" { texelAttentionLaneRows = false }
        if ProcessInfo.processInfo.environment["LOOPVK_SILU_VEC4"] == "0" { siluVec4 = false }
        if ProcessInfo.processInfo.environment["LOOPVK_NORM_VEC4"] == "0" { normVec4 = false }
        if ProcessInfo.processInfo.environment["LOOPVK_ROPE_VEC4"] == "0" { ropeVec4 = false }
        if ProcessInfo.processInfo.environment["LOOPVK_TEXEL_LANE_HEADS"] == "0" { texelAttentionLaneHeads = false }
        deviceThreads = max(1, Int(ProcessInfo.processInfo.environment["LP_NUM_THREADS"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount)
        if let v = ProcessInfo.processInfo.environment["LOOPVK_ATTENTION_ROWS_PER_LANE"], let n = Int(v), n >= 1, n <= 64 { texelAttentionMaxRowsPerLane = n }
        if ProcessInfo.processInfo.environment["LOOPVK_MATMUL_OUT_VEC4"] == "0" { matmulOutVec4 = false }
        if ProcessInfo.processInfo.environment["LOOPVK_HEAD_ARGMAX"] == "0" { fusedHeadArgmax = false }
        if ProcessInfo.processInfo.environment["LOOPVK_GATE_UP_SILU"] == "0" { fusedSilu = false }
        attentionSplits = context.info.kind == .cpu ? 1 : 16
        if let v = ProcessInfo.processInfo.environment["LOOPVK_ATTENTION_SPLITS"], let n = Int(v), n >= 1, n <= 1024 { attentionSplits = n }
        subgroupReduce = context.info.kind == .cpu && context.info.subgroupSize >= 4 && context.info.subgroupShuffle
    }

    func pipeline(_ shader: String, bindings: Int, push: Int, local: (Int, Int) = (64, 1), w: DType = .f32, b: DType = .f32) throws -> ComputePipeline {
        try pipeline(shader, kinds: Array(repeating: .storageBuffer, count: bindings), push: push, local: local, w: w, b: b)
    }

    /// The pipeline for a shader variant: binding kinds, extra defines and specialization
    /// constants (ids 2, 3, ...) are part of the key.
    func pipeline(_ shader: String, kinds: [BindingKind], push: Int, local: (Int, Int), w: DType, b: DType,
                  defines extra: [String: String] = [:], constants: [UInt32] = []) throws -> ComputePipeline {
        let kindKey = kinds.map { $0 == .storageBuffer ? "s" : "t" }.joined()
        let extraKey = extra.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        let key = "\(shader)|\(w.rawValue)|\(b.rawValue)|\(local.0)x\(local.1)|\(kindKey)|\(extraKey)|\(constants)"
        if let p = pipelines[key] { return p }
        let defines = ["W_DTYPE": Self.code(w), "B_DTYPE": Self.code(b)].merging(extra) { $1 }
        let p = try context.makePipeline(shader, defines: defines, kinds: kinds, pushBytes: push * 4, localSize: local, constants: constants)
        pipelines[key] = p
        return p
    }

    /// Workgroup size and defines of a row-reduction shader (see `subgroupReduce`).
    var reduceShape: (local: (Int, Int), defines: [String: String]) {
        subgroupReduce ? ((context.info.subgroupSize, 1), ["SUBGROUP_ONLY": "1"]) : ((reduceThreads, 1), [:])
    }

    static func code(_ d: DType) -> String {
        switch d { case .f16: return "1"; case .bf16: return "2"; default: return "0" }
    }

    static func f(_ v: Float) -> UInt32 { v.bitPattern }
    static func u(_ v: Int) -> UInt32 { UInt32(v) }
    static func groups(_ n: Int, _ size: Int) -> Int { (n + size - 1) / size }

    /// A binding that covers elements [start, start + count) of a weight, aligned down to the
    /// device's offset alignment; returns the element index of `start` inside the binding.
    func weightWindow(_ backend: VulkanBackend, _ name: String, start: Int, count: Int) throws -> (Binding, UInt32, DType) {
        let w = try backend.weight(name)
        guard start >= 0, count >= 0, start + count <= w.count else {
            throw LoopError.invalidArgument("op reads elements \(start)..<\(start + count) of \(name), which has \(w.count)")
        }
        let es = w.dtype.byteSize
        let align = Int(max(context.info.minStorageBufferOffsetAlignment, 4))
        let byteStart = start * es
        let bindStart = byteStart / align * align
        let bindEnd = min(Int(w.slice.size), ((start + count) * es + 3) & ~3)
        return (Binding(w.slice, offset: UInt64(bindStart), range: UInt64(bindEnd - bindStart)), UInt32((byteStart - bindStart) / es), w.dtype)
    }

    /// A texel-view binding that covers bytes [byteStart, byteStart + byteCount) of a slice:
    /// the start aligned down to the texel offset alignment, the end rounded up to a whole
    /// texel (slices are whole texels). Returns the binding and `byteStart`'s offset in it, or
    /// nil when the window exceeds one view.
    func texelWindow(_ slice: BufferSlice, byteStart: Int, byteCount: Int) -> (Binding, Int)? {
        let align = Int(max(context.info.minTexelBufferOffsetAlignment, 16))
        let start = byteStart / align * align
        let end = min(Int(slice.size), (byteStart + max(byteCount, 1) + 15) & ~15)
        guard end - start <= maxTexelBytes else { return nil }
        return (Binding(slice, offset: UInt64(start), range: UInt64(end - start)), byteStart - start)
    }

    /// The interleaved copy a texel-path product over `weight` reads, or nil when it reads the
    /// row-major copy: rows must be whole texels and the window must start on a whole row.
    /// A window that starts mid-block gets its own copy whose blocks start at that row.
    func interleavedCopy(_ weight: WeightRef, inF: Int, weights: WeightStore) throws -> WeightCopy? {
        guard readPath == .texel, texelInterleave > 0 else { return nil }
        let info = try weights.info(weight.name)
        let count = info.shape.reduce(1, *)
        guard inF > 0, (inF * info.dtype.byteSize) % 16 == 0, count % inF == 0, weight.offset % inF == 0 else { return nil }
        let row = weight.offset / inF
        return .interleaved(name: weight.name, inFeatures: inF, block: texelInterleave, firstRow: row % texelInterleave)
    }

    /// The device copies of weights that encoding `op` uploads (for preloading).
    /// A linear's matrix in the layout its product reads; every other weight as stored.
    func weightCopies(_ op: Op, weights: WeightStore) -> [WeightCopy] {
        if case let .linear(_, w, b, _, inF, _, _) = op {
            let main = (try? interleavedCopy(w, inF: inF, weights: weights)).flatMap { $0 } ?? .plain(w.name)
            return [main] + (b.map { [.plain($0.name)] } ?? [])
        }
        return op.weights.map { .plain($0.name) }
    }

    /// The product through texel views: one row (decode) with matvec.comp, several rows
    /// (prefill) with matmul.comp's READ_TEXEL kernel; x (all rows) in one view, W in chunks
    /// that each fit one view: whole blocks of the interleaved copy where rows are whole texels
    /// (`interleavedCopy`), else whole rows of the row-major copy. Returns false before
    /// recording anything when x or one block (row) does not fit a view, so the caller takes
    /// the storage path.
    /// `argmax`: also write the index of the first largest output there (matvec.comp ARGMAX);
    /// only for one row over an interleaved W that fits one view, else returns false.
    private func encodeTexelMatvec(x: ActRef, weight: WeightRef, bias: (Binding, UInt32, DType)?, out: ActRef, inF: Int, outF: Int,
                                   accumulate: Bool, rows: Int, argmax: ActRef? = nil, silu: (h: ActRef, dim: Int)? = nil,
                                   into cb: RecordedCommands, backend: VulkanBackend) throws -> Bool {
        let info = try backend.weights.info(weight.name)
        let total = info.shape.reduce(1, *)
        guard weight.offset >= 0, weight.offset + outF * inF <= total else {
            throw LoopError.invalidArgument("op reads elements \(weight.offset)..<\(weight.offset + outF * inF) of \(weight.name), which has \(total)")
        }
        let es = info.dtype.byteSize
        let ept = 16 / es
        let slack = 2 * max(Int(context.info.minTexelBufferOffsetAlignment), 16)
        let xStride = try backend.width(x.name), oStride = try backend.width(out.name)
        guard let (xb, xShift) = texelWindow(try backend.act(x.name), byteStart: x.col * 4, byteCount: ((rows - 1) * xStride + inF) * 4) else { return false }
        let xCol = xShift / 4
        let xAligned = xCol % 4 == 0 && (rows == 1 || xStride % 4 == 0)
        let (bb, bbase, bdt) = bias ?? (backend.dummyBinding, 0, .f32)
        let kinds: [BindingKind] = [.uniformTexels, .uniformTexels, .storageBuffer, .storageBuffer]
        let defines = ["READ_TEXEL": "1", "WG_REDUCE": texelWorkgroupReduce ? "1" : "0"]
        let u = Self.u

        // The layout: interleaved blocks of `block` rows, or row-major rows (block 0).
        let block: Int, slice: BufferSlice, firstRow: Int, unit: Int
        if let copy = try interleavedCopy(weight, inF: inF, weights: backend.weights), case let .interleaved(_, _, b, first) = copy,
           b * inF * es + slack <= maxTexelBytes {
            block = b
            firstRow = weight.offset / inF - first
            slice = try backend.interleavedWeight(weight.name, inFeatures: inF, block: b, firstRow: first).slice
            unit = b
        } else {
            guard inF * es + slack <= maxTexelBytes else { return false }
            block = 0
            firstRow = 0
            slice = try backend.weight(weight.name).slice
            unit = 1
        }
        // Rows per chunk: whole blocks (rows) that fit one view with the alignment slack.
        let chunkRows = (maxTexelBytes - slack) / (unit * inF * es) * unit
        if argmax != nil, rows != 1 || block == 0 || chunkRows < outF || accumulate { return false }
        if let silu, block != 32 || silu.dim % 32 != 0 || chunkRows < outF || accumulate || (rows > 1 && !texelMatmulWide) { return false }
        var o0 = 0
        while o0 < outF {
            let n = min(chunkRows, outF - o0)
            let start = block > 0 ? (firstRow + o0) * inF * es : (weight.offset + o0 * inF) * es
            let bytes = block > 0 ? (n + block - 1) / block * block * inF * es : n * inF * es
            guard let (wb, wShift) = texelWindow(slice, byteStart: start, byteCount: bytes) else {
                throw VulkanError("linear(\(weight.name))", message: "rows \(o0)..<\(o0 + n) do not fit one texel view of \(maxTexelBytes) bytes")
            }
            let wBase = wShift / es
            let aligned = xAligned && inF % ept == 0 && (block > 0 || wBase % ept == 0)
            let push = [u(inF), u(xStride), u(xCol), u(oStride), u(out.col), u(wBase), bbase, bias == nil ? 0 : 1,
                        accumulate ? 1 : 0, u(o0), u(n), u(rows)]
            let bindings = [xb, wb, bb, Binding(try backend.act(out.name))]
            if rows == 1 {
                if block > 0 {
                    // One block per workgroup, `block / lanes` rows per invocation; no reduction.
                    var lanes = min(texelLanes, block)
                    while block % lanes != 0 { lanes -= 1 }
                    let groups = Self.groups(n, block)
                    if let silu {
                        let p = try pipeline("matvec.comp", kinds: kinds + [.storageBuffer], push: 15, local: (lanes, 1), w: info.dtype, b: bdt,
                                             defines: defines.merging(["SILU": "1"]) { $1 }, constants: [u(block), aligned ? 1 : 0, 1, u(block / lanes)])
                        try cb.dispatch(p, bindings + [Binding(try backend.act(silu.h.name))],
                                        push: push + [u(silu.dim), u(try backend.width(silu.h.name)), u(silu.h.col)], groups: (silu.dim / block, 1, 1))
                    } else if let argmax {
                        // Scratch: a counter of finished workgroups, then (value, index) per workgroup.
                        let scratch = try backend.scratch("argmax", bytes: 4 * (1 + 2 * groups))
                        let p = try pipeline("matvec.comp", kinds: kinds + [.storageBuffer, .storageBuffer], push: 14, local: (lanes, 1), w: info.dtype, b: bdt,
                                             defines: defines.merging(["ARGMAX": "1"]) { $1 }, constants: [u(block), aligned ? 1 : 0, 1, u(block / lanes)])
                        try cb.dispatch(p, bindings + [Binding(scratch), Binding(try backend.act(argmax.name))],
                                        push: push + [u(argmax.col), u(groups)], groups: (groups, 1, 1))
                    } else {
                        let p = try pipeline("matvec.comp", kinds: kinds, push: 12, local: (lanes, 1), w: info.dtype, b: bdt,
                                             defines: defines, constants: [u(block), aligned ? 1 : 0, 1, u(block / lanes)])
                        try cb.dispatch(p, bindings, push: push, groups: (groups, 1, 1))
                    }
                } else {
                    let p = try pipeline("matvec.comp", kinds: kinds, push: 12, local: (texelLanes, 1), w: info.dtype, b: bdt,
                                         defines: defines, constants: [u(texelRows), 0, 0, 1])
                    try cb.dispatch(p, bindings, push: push, groups: (Self.groups(n, texelRows), 1, 1))
                }
            } else {
                // LANE_FEATURES kernels store an invocation's 4 features of a block as one vec4
                // where the output (and H) windows are whole vec4s.
                let outVec4 = matmulOutVec4 && [oStride, out.col, o0, n].allSatisfy { $0 % 4 == 0 }
                if let silu {
                    guard aligned else { return false }   // (nothing recorded yet: one chunk)
                    let hStride = try backend.width(silu.h.name)
                    let h4 = outVec4 && hStride % 4 == 0 && silu.h.col % 4 == 0
                    let p = try pipeline("matmul.comp", kinds: kinds + [.storageBuffer], push: 15, local: (8, 1), w: info.dtype, b: bdt,
                                         defines: defines.merging(["LANE_FEATURES": "1", "SILU": "1", "OUT_VEC4": h4 ? "1" : "0"]) { $1 }, constants: [8, 8, 1, 32])
                    try cb.dispatch(p, bindings + [Binding(try backend.act(silu.h.name))],
                                    push: push + [u(silu.dim), u(hStride), u(silu.h.col)],
                                    groups: (Self.groups(rows, 8), Self.groups(silu.dim, 64), 1))
                } else if block == 32, aligned, texelMatmulWide {
                    // matmul.comp LANE_FEATURES: 128 features x 8 rows per 8-invocation workgroup,
                    // rows along x so that the workgroups reading one W slab run together.
                    let p = try pipeline("matmul.comp", kinds: kinds, push: 12, local: (8, 1), w: info.dtype, b: bdt,
                                         defines: defines.merging(["LANE_FEATURES": "1", "OUT_VEC4": outVec4 ? "1" : "0"]) { $1 }, constants: [8, 8, 1, 32])
                    try cb.dispatch(p, bindings, push: push, groups: (Self.groups(rows, 8), Self.groups(n, 128), 1))
                } else {
                    let p = try pipeline("matmul.comp", kinds: kinds, push: 12, local: (texelLanes, 1), w: info.dtype, b: bdt,
                                         defines: defines, constants: [u(texelMatmulFeatures), u(texelMatmulRows), aligned ? 1 : 0, u(block)])
                    try cb.dispatch(p, bindings, push: push,
                                    groups: (Self.groups(n, texelMatmulFeatures), Self.groups(rows, texelMatmulRows), 1))
                }
            }
            o0 += n
        }
        return true
    }

    /// What an op reads and writes, for hazard tracking: activations by name, KV slots by part.
    static func hazards(_ op: Op) -> (reads: [String], writes: [String]) {
        var reads = op.inputs.map(\.name)
        var writes = op.output.map { [$0.name] } ?? []
        switch op {
        case .kvWrite(_, let slot, let part): writes.append("kv\(slot).\(part.rawValue)")
        case .attention(_, let slot, _, _, _, _, _): reads += ["kv\(slot).0", "kv\(slot).1"]
        case .kvCopy(let from, let to): reads += ["kv\(from).0", "kv\(from).1"]; writes += ["kv\(to).0", "kv\(to).1"]
        default: break
        }
        return (reads, writes)
    }

    /// Records a step (see Fusion.swift): a barrier first when it reads or overwrites what an
    /// earlier dispatch since the last barrier wrote (or overwrites what one read).
    func encode(_ step: Step, rows: Int, into cb: RecordedCommands, backend: VulkanBackend, tracker: inout HazardTracker) throws {
        var reads: [String] = [], writes: [String] = []
        for op in step.ops { let h = Self.hazards(op); reads += h.reads; writes += h.writes }
        if tracker.needsBarrier(reads: reads, writes: writes) { cb.barrier() }
        cb.label = step.label
        switch step {
        case .op(let op):
            try encode(op, rows: rows, into: cb, backend: backend)
        case let .normThenNorm(first, second):
            if try !encodeNormThenNorm(first, second, rows: rows, into: cb, backend: backend) {
                // Weights of different dtypes: two dispatches with a barrier between them.
                try encode(first, rows: rows, into: cb, backend: backend)
                cb.barrier()
                try encode(second, rows: rows, into: cb, backend: backend)
            }
        case let .gateDecide(gate, decide):
            try encodeExitDecide(decide, gate: gate, rows: rows, into: cb, backend: backend)
        case let .ropeKV(rope, k, v):
            guard case let .kvWrite(_, slot, _) = k, case let .kvWrite(srcV, _, _) = v else { return }
            try encodeRope(rope, kv: (slot, srcV), rows: rows, into: cb, backend: backend)
        case let .headArgmax(linear, argmax):
            guard case let .argmax(_, amOut, _) = argmax else { return }
            try encodeLinear(linear, then: argmax, argmax: amOut, fuse: fusedHeadArgmax && rows == 1, rows: rows, into: cb, backend: backend)
        case let .gateUpSilu(linear, silu):
            guard case let .siluMul(_, _, h, dim) = silu else { return }
            try encodeLinear(linear, then: silu, silu: (h, dim), fuse: fusedSilu, rows: rows, into: cb, backend: backend)
        case let .kvCopies(ops):
            // (source, destination) buffers, 8 per dispatch where the device binds 17 storage buffers.
            var pairs: [(Binding, Binding)] = []
            for case let .kvCopy(from, to) in ops {
                for part in [KVPart.k, .v] { pairs.append((Binding(try backend.kvSlice(from, part)), Binding(try backend.kvSlice(to, part)))) }
            }
            guard context.info.maxStorageBuffersPerStage >= 17 else {
                for op in ops { try encode(op, rows: rows, into: cb, backend: backend) }
                return
            }
            let p = try pipeline("kv_copy.comp", kinds: Array(repeating: .storageBuffer, count: 17), push: 2, local: (64, 1), w: .f32, b: .f32,
                                 defines: ["PAIRS": "8"])
            let width = backend.layout.kvWidth
            for c0 in stride(from: 0, to: pairs.count, by: 8) {
                let chunk = Array(pairs[c0..<min(c0 + 8, pairs.count)])
                let padded = chunk + Array(repeating: chunk[0], count: 8 - chunk.count)
                try cb.dispatch(p, padded.flatMap { [$0.0, $0.1] } + [Binding(backend.step)],
                                push: [Self.u(width), Self.u(backend.layout.maxContext)], groups: (Self.groups(width, 64), rows, chunk.count))
            }
        case let .kvPair(a, b):
            guard case let .kvWrite(srcA, slot, partA) = a, case let .kvWrite(srcB, _, partB) = b else { return }
            try encodeKVWrite(srcA, slot: slot, part: partA, second: (srcB, partB), rows: rows, into: cb, backend: backend)
        }
    }

    /// A linear and the op that reads its output, fused into the texel product (its `argmax` or
    /// `silu` epilogue) when `fuse` and the product's shape allow; else the two apart.
    private func encodeLinear(_ linear: Op, then next: Op, argmax: ActRef? = nil, silu: (h: ActRef, dim: Int)? = nil, fuse: Bool,
                              rows: Int, into cb: RecordedCommands, backend: VulkanBackend) throws {
        guard case let .linear(x, weight, bias, out, inF, outF, accumulate) = linear else { return }
        if readPath == .texel, fuse,
           try encodeTexelMatvec(x: x, weight: weight, bias: try biasWindow(bias, count: outF, backend: backend), out: out, inF: inF, outF: outF,
                                 accumulate: accumulate, rows: rows, argmax: argmax, silu: silu, into: cb, backend: backend) {
            return
        }
        try encode(linear, rows: rows, into: cb, backend: backend)
        cb.barrier()
        try encode(next, rows: rows, into: cb, backend: backend)
    }

    /// A linear's bias as (binding, element base, dtype), nil without one.
    private func biasWindow(_ bias: WeightRef?, count: Int, backend: VulkanBackend) throws -> (Binding, UInt32, DType)? {
        guard let bias else { return nil }
        return try weightWindow(backend, bias.name, start: bias.offset, count: count)
    }

    /// exit_decide.comp; with `gate` (the one-output linear that computes the signal), that
    /// product first, in the same workgroup.
    private func encodeExitDecide(_ op: Op, gate: Op?, rows: Int, into cb: RecordedCommands, backend: VulkanBackend) throws {
        guard case let .exitDecide(signal, control, pass, passes, threshold, minPasses) = op else { return }
        let u = Self.u, f = Self.f
        var x = backend.dummyBinding, xCol = 0, inF = 0, wb = backend.dummyBinding, wBase: UInt32 = 0, wdt = DType.f32
        var bb = backend.dummyBinding, bBase: UInt32 = 0, bdt = DType.f32, hasBias = false
        if case let .linear(gx, weight, bias, _, gin, _, _) = gate {
            x = Binding(try backend.act(gx.name)); xCol = gx.col; inF = gin
            (wb, wBase, wdt) = try weightWindow(backend, weight.name, start: weight.offset, count: gin)
            if let bias { (bb, bBase, bdt) = try weightWindow(backend, bias.name, start: bias.offset, count: 1); hasBias = true }
        }
        let p = try pipeline("exit_decide.comp", kinds: Array(repeating: .storageBuffer, count: 5), push: 12, local: reduceShape.local, w: wdt, b: bdt,
                             defines: reduceShape.defines)
        try cb.dispatch(p, [Binding(try backend.act(signal.name)), Binding(try backend.act(control.name)), x, wb, bb],
                        push: [u(signal.col), u(control.col), u(pass), u(passes), f(threshold), u(minPasses), gate == nil ? 0 : 1, u(inF),
                               u(xCol), wBase, bBase, hasBias ? 1 : 0],
                        groups: (1, 1, 1))
    }

    /// Attention reading q, K and V through texel views (attention.comp READ_TEXEL): on the
    /// texel path of CPU devices (subgroup-only reductions), when head_dim, the KV row, q's
    /// column and row stride are whole texels and each view fits. Returns false otherwise.
    private func encodeTexelAttention(q: ActRef, slot: Int, out: ActRef, heads: Int, headDim: Int, push: [UInt32], rows: Int,
                                      into cb: RecordedCommands, backend: VulkanBackend) throws -> Bool {
        let kvWidth = backend.layout.kvWidth, qStride = try backend.width(q.name)
        guard readPath == .texel, subgroupReduce, headDim % 4 == 0, kvWidth % 4 == 0, q.col % 4 == 0, qStride % 4 == 0 else { return false }
        let kBytes = backend.layout.maxContext * kvWidth * 4
        guard let (qb, qShift) = texelWindow(try backend.act(q.name), byteStart: 0, byteCount: ((rows - 1) * qStride + q.col + heads * headDim) * 4),
              let (kb, kShift) = texelWindow(try backend.kvSlice(slot, .k), byteStart: 0, byteCount: kBytes),
              let (vb, vShift) = texelWindow(try backend.kvSlice(slot, .v), byteStart: 0, byteCount: kBytes),
              qShift % 16 == 0, kShift % 16 == 0, vShift % 16 == 0 else { return false }
        let kinds: [BindingKind] = [.uniformTexels, .uniformTexels, .uniformTexels, .storageBuffer, .storageBuffer]
        // One row: the keys split across the subgroup, or (laneHeads) an invocation per head
        // walking all of its keys. Several rows: 8 invocations per workgroup, each owning
        // `perLane` rows (see attentionRowsPerLane). Measured on ouro-bench (profile, 64-token
        // prompt, 4 passes): the prefill's attention 38-42 ms with a subgroup per row, 22 ms with
        // an invocation per row.
        let laneRows = rows > 1 && texelAttentionLaneRows
        let perLane = laneRows ? Self.attentionRowsPerLane(rows: rows, headDim: headDim, cap: texelAttentionMaxRowsPerLane) : 0
        // One row: one invocation per head where 8-head workgroups keep every device thread busy.
        let laneHeads = rows == 1 && texelAttentionLaneHeads && Self.groups(heads, 8) >= deviceThreads
        let p = try pipeline("attention.comp", kinds: kinds, push: 12, local: laneRows || laneHeads ? (8, 1) : reduceShape.local, w: .f32, b: .f32,
                             defines: reduceShape.defines.merging(["READ_TEXEL": "1", "NT": "\(headDim / 4)u", "LANE_ROWS": "\(perLane)", "LANE_HEADS": laneHeads ? "1" : "0"]) { $1 })
        try cb.dispatch(p, [qb, kb, vb, Binding(try backend.act(out.name)), Binding(backend.step)],
                        push: push + [Self.u(qShift / 4), Self.u(kShift / 4), Self.u(vShift / 4)],
                        groups: laneHeads ? (Self.groups(heads, 8), rows, 1) : (heads, laneRows ? Self.groups(rows, 8 * perLane) : rows, 1))
        return true
    }

    /// Rows per invocation of the texel prefill attention (attention.comp LANE_ROWS), each K and
    /// V fetch serving that many rows: the least power of 2 whose group of 8 invocations covers
    /// `rows`, with at most 512 floats of q per invocation and at most `cap`. Measured on
    /// ouro-bench (profile, 64-token prompt, the attention of one pass): 1 row 4.7-4.9 ms, 2 rows
    /// 3.6, 4 rows 3.3, 8 rows 3.0-3.1; a 1500-token prefill 92.6 -> 123.1 tok/s from 1 to 8.
    static func attentionRowsPerLane(rows: Int, headDim: Int, cap: Int) -> Int {
        var n = 1
        while n < min(cap, 512 / max(headDim, 1)), 8 * n < rows { n *= 2 }
        return n
    }

    /// rope.comp; with `kv`, also the K cache writes of its last K heads and the V copy.
    private func encodeRope(_ op: Op, kv: (slot: Int, v: ActRef)?, rows: Int, into cb: RecordedCommands, backend: VulkanBackend) throws {
        guard case let .rope(x, heads, headDim, table, positions, layout) = op else { return }
        let u = Self.u
        let t = try backend.weightF32(table.name)
        let width = backend.layout.kvWidth
        let xb = Binding(try backend.act(x.name))
        let xStride = try backend.width(x.name)
        var ck = xb, vb = xb, cv = xb, vStride: UInt32 = 0, vCol: UInt32 = 0, extra = 0
        if let kv {
            ck = Binding(try backend.kvSlice(kv.slot, .k)); cv = Binding(try backend.kvSlice(kv.slot, .v))
            vb = Binding(try backend.act(kv.v.name)); vStride = u(try backend.width(kv.v.name)); vCol = u(kv.v.col)
            extra = width / headDim
        }
        let vec4 = ropeVec4 && layout == .rotateHalf && headDim % 8 == 0 && [xStride, x.col, table.offset, width, Int(vStride), Int(vCol)].allSatisfy { $0 % 4 == 0 }
        let p = try pipeline("rope.comp", kinds: Array(repeating: .storageBuffer, count: 6), push: 13, local: (32, 1), w: .f32, b: .f32,
                             defines: ["VEC4": vec4 ? "1" : "0"])
        try cb.dispatch(p, [xb, Binding(t), Binding(backend.step), ck, vb, cv],
                        push: [u(heads), u(headDim), u(xStride), u(x.col), u(table.offset), u(positions), u(Int(layout.rawValue)),
                               kv == nil ? 0 : 1, u(heads - extra), u(width), u(backend.layout.maxContext), vStride, vCol],
                        groups: vec4 ? (Self.groups(headDim / 8 * (heads + extra), 32), rows, 1)
                                     : (Self.groups(headDim / 2, 32), heads + extra, rows))
    }

    private func encodeKVWrite(_ src: ActRef, slot: Int, part: KVPart, second: (ActRef, KVPart)?, rows: Int,
                               into cb: RecordedCommands, backend: VulkanBackend) throws {
        let u = Self.u
        let p = try pipeline("kv_write.comp", bindings: 5, push: 6)
        let width = backend.layout.kvWidth
        let a = Binding(try backend.act(src.name)), ca = Binding(try backend.kvSlice(slot, part))
        var b = a, cbind = ca, bStride: UInt32 = 0, bCol: UInt32 = 0
        if let (srcB, partB) = second {
            b = Binding(try backend.act(srcB.name)); cbind = Binding(try backend.kvSlice(slot, partB))
            bStride = u(try backend.width(srcB.name)); bCol = u(srcB.col)
        }
        try cb.dispatch(p, [a, ca, Binding(backend.step), b, cbind],
                        push: [u(width), u(try backend.width(src.name)), u(src.col), u(backend.layout.maxContext), bStride, bCol],
                        groups: (Self.groups(width, 64), rows, second == nil ? 1 : 2))
    }

    /// rmsnorm.comp over `first` then (chain) the plain norm `second` of its output, one
    /// workgroup per row. Returns false (recording nothing) when the two weights differ in dtype.
    private func encodeNormThenNorm(_ first: Op, _ second: Op, rows: Int, into cb: RecordedCommands, backend: VulkanBackend) throws -> Bool {
        guard case let .rmsNorm(x, add, weight, out, dim, _, eps, mode) = first,
              case let .rmsNorm(_, _, weight2, out2, _, _, eps2, _) = second else { return false }
        var wb = backend.dummyBinding, base: UInt32 = 0, dt: DType?
        var wb2 = backend.dummyBinding, base2: UInt32 = 0, dt2: DType?
        if let weight { (wb, base, _) = try weightWindow(backend, weight.name, start: weight.offset, count: dim); dt = try backend.weights.info(weight.name).dtype }
        if let weight2 { (wb2, base2, _) = try weightWindow(backend, weight2.name, start: weight2.offset, count: dim); dt2 = try backend.weights.info(weight2.name).dtype }
        if let dt, let dt2, dt != dt2 { return false }
        try encodeRMSNorm(x: x, add: add, wb: wb, base: base, dtype: dt ?? dt2 ?? .f32, hasWeight: weight != nil, out: out, dim: dim, groups: 1, eps: eps, mode: mode,
                          chain: (wb2, base2, weight2 != nil, out2, eps2), rows: rows, into: cb, backend: backend)
        return true
    }

    private func encodeRMSNorm(x: ActRef, add: ActRef?, wb: Binding, base: UInt32, dtype: DType, hasWeight: Bool, out: ActRef, dim: Int, groups: Int,
                               eps: Float, mode: NormMode, chain: (Binding, UInt32, Bool, ActRef, Float)?, rows: Int,
                               into cb: RecordedCommands, backend: VulkanBackend) throws {
        let u = Self.u, f = Self.f
        func a(_ r: ActRef) throws -> Binding { Binding(try backend.act(r.name)) }
        let addB = try add.map { try a($0) } ?? backend.dummyBinding
        let outB = try a(out)
        let (wb2, base2, has2, out2, eps2) = chain ?? (backend.dummyBinding, 0, false, out, eps)
        // Sizes and columns of the activations, in floats or (VEC4) in vec4s; weight bases stay in elements.
        var words = [dim, try backend.width(x.name), x.col, try add.map { try backend.width($0.name) } ?? 0, add?.col ?? 0,
                     try backend.width(out.name), out.col, try backend.width(out2.name), out2.col]
        let vec4 = normVec4 && words.allSatisfy { $0 % 4 == 0 } && base % 4 == 0 && base2 % 4 == 0
        if vec4 { words = words.map { $0 / 4 } }
        let w = words.map(u)
        let p = try pipeline("rmsnorm.comp", kinds: Array(repeating: .storageBuffer, count: 6), push: 18, local: reduceShape.local, w: dtype, b: .f32,
                             defines: reduceShape.defines.merging(["VEC4": vec4 ? "1" : "0"]) { $1 })
        try cb.dispatch(p, [try a(x), addB, wb, outB, wb2, try a(out2)],
                        push: [w[0], u(groups), w[1], w[2], w[3], w[4], w[5], w[6], base, f(eps), u(Int(mode.rawValue)), hasWeight ? 1 : 0,
                               chain == nil ? 0 : 1, w[7], w[8], base2, f(eps2), has2 ? 1 : 0],
                        groups: (groups, rows, 1))
    }

    /// Records one plan op's dispatches (no barrier: see `encode(_ step:)`).
    func encode(_ op: Op, rows: Int, into cb: RecordedCommands, backend: VulkanBackend) throws {
        let u = Self.u, f = Self.f
        func a(_ r: ActRef) throws -> Binding { Binding(try backend.act(r.name)) }
        func stride(_ r: ActRef) throws -> UInt32 { u(try backend.width(r.name)) }

        switch op {
        case let .embed(table, vocab, dim, out, scale):
            // Chunks of whole rows, each within maxStorageBufferRange.
            let w = try backend.weight(table.name)
            let rowBytes = dim * w.dtype.byteSize
            let maxRows = max(1, Int(context.info.maxStorageBufferRange) / rowBytes - 1)
            var r0 = 0
            while r0 < vocab {
                let n = min(maxRows, vocab - r0)
                let (wb, base, dt) = try weightWindow(backend, table.name, start: table.offset + r0 * dim, count: n * dim)
                let p = try pipeline("embedding.comp", bindings: 3, push: 7, w: dt)
                try cb.dispatch(p, [wb, try a(out), Binding(backend.step)],
                                push: [u(dim), try stride(out), u(out.col), base, u(r0), u(n), f(scale)],
                                groups: (Self.groups(dim, 64), rows, 1))
                r0 += n
            }

        case let .rmsNorm(x, add, weight, out, dim, groups, eps, mode):
            var wb = backend.dummyBinding, base: UInt32 = 0, dt = DType.f32
            if let weight { (wb, base, dt) = try weightWindow(backend, weight.name, start: weight.offset, count: dim) }
            try encodeRMSNorm(x: x, add: add, wb: wb, base: base, dtype: dt, hasWeight: weight != nil, out: out, dim: dim, groups: groups,
                              eps: eps, mode: mode, chain: nil, rows: rows, into: cb, backend: backend)

        case let .layerNorm(x, weight, bias, out, dim, eps):
            let (wb, wbase, wdt) = try weightWindow(backend, weight.name, start: weight.offset, count: dim)
            var bb = backend.dummyBinding, bbase: UInt32 = 0, bdt = DType.f32
            if let bias { (bb, bbase, bdt) = try weightWindow(backend, bias.name, start: bias.offset, count: dim) }
            let p = try pipeline("layernorm.comp", kinds: Array(repeating: .storageBuffer, count: 4), push: 9, local: reduceShape.local, w: wdt, b: bdt, defines: reduceShape.defines)
            try cb.dispatch(p, [try a(x), wb, bb, try a(out)],
                            push: [u(dim), try stride(x), u(x.col), try stride(out), u(out.col), wbase, bbase, f(eps), bias == nil ? 0 : 1],
                            groups: (rows, 1, 1))

        case let .linear(x, weight, bias, out, inF, outF, accumulate):
            // (The texel path uploads its own copy of W: ask for the row-major one only below.)
            let rowBytes = inF * (try backend.weights.info(weight.name).dtype.byteSize)
            let chunkRows = max(1, (Int(context.info.maxStorageBufferRange) - 256) / rowBytes)
            let biasW = try biasWindow(bias, count: outF, backend: backend)
            let (bb, bbase, bdt) = biasW ?? (backend.dummyBinding, 0, .f32)
            if readPath == .texel,
               try encodeTexelMatvec(x: x, weight: weight, bias: biasW, out: out, inF: inF, outF: outF,
                                     accumulate: accumulate, rows: rows, into: cb, backend: backend) {
                break
            }
            var o0 = 0
            while o0 < outF {
                let n = min(chunkRows, outF - o0)
                let (wb, base, dt) = try weightWindow(backend, weight.name, start: weight.offset + o0 * inF, count: n * inF)
                let push = [u(inF), try stride(x), u(x.col), try stride(out), u(out.col), base, bbase, bias == nil ? 0 : 1,
                            accumulate ? 1 : 0, u(o0), u(n), u(rows)]
                if rows == 1 {
                    let p = try pipeline("matvec.comp", bindings: 4, push: 12, local: (reduceThreads, 1), w: dt, b: bdt)
                    try cb.dispatch(p, [try a(x), wb, bb, try a(out)], push: push, groups: (n, rows, 1))
                } else {
                    let p = try pipeline("matmul.comp", bindings: 4, push: 12, local: (16, 16), w: dt, b: bdt)
                    try cb.dispatch(p, [try a(x), wb, bb, try a(out)], push: push, groups: (Self.groups(n, 64), Self.groups(rows, 64), 1))
                }
                o0 += n
            }

        case .rope:
            try encodeRope(op, kv: nil, rows: rows, into: cb, backend: backend)

        case let .kvWrite(src, slot, part):
            try encodeKVWrite(src, slot: slot, part: part, second: nil, rows: rows, into: cb, backend: backend)

        case let .attention(q, slot, out, heads, kvHeads, headDim, scale):
            guard headDim <= 4 * reduceShape.local.0 || (subgroupReduce && headDim <= 32 * reduceShape.local.0), headDim <= 256, kvHeads > 0, heads % kvHeads == 0 else {
                throw LoopError.unsupported("attention with \(heads) heads / \(kvHeads) KV heads x \(headDim)")
            }
            let push = [u(heads), u(kvHeads), u(headDim), try stride(q), u(q.col), try stride(out), u(out.col), u(backend.layout.kvWidth), f(scale)]
            if try encodeTexelAttention(q: q, slot: slot, out: out, heads: heads, headDim: headDim, push: push, rows: rows, into: cb, backend: backend) { break }
            let kvBindings = [try a(q), Binding(try backend.kvSlice(slot, .k)), Binding(try backend.kvSlice(slot, .v))]
            if rows == 1, attentionSplits > 1, !subgroupReduce {
                // Flash-decoding: partial states per (head, split) into a scratch buffer, then
                // attention_combine.comp. The scratch is reused by every layer: the barrier
                // before the combine orders its reads; the ops between two attentions order the rest.
                let ns = attentionSplits
                let part = try backend.scratch("attention-split", bytes: heads * ns * (headDim + 2) * 4)
                let p = try pipeline("attention.comp", kinds: Array(repeating: .storageBuffer, count: 5), push: 12, local: reduceShape.local, w: .f32, b: .f32,
                                     defines: reduceShape.defines.merging(["SPLIT": "1"]) { $1 })
                try cb.dispatch(p, kvBindings + [Binding(part), Binding(backend.step)], push: push + [0, 0, 0], groups: (heads, 1, ns))
                cb.barrier()
                let c = try pipeline("attention_combine.comp", bindings: 2, push: 5, local: reduceShape.local)
                try cb.dispatch(c, [Binding(part), try a(out)], push: [u(heads), u(headDim), u(ns), try stride(out), u(out.col)], groups: (heads, 1, 1))
                break
            }
            let p = try pipeline("attention.comp", kinds: Array(repeating: .storageBuffer, count: 5), push: 12, local: reduceShape.local, w: .f32, b: .f32, defines: reduceShape.defines)
            try cb.dispatch(p, kvBindings + [try a(out), Binding(backend.step)], push: push + [0, 0, 0], groups: (heads, rows, 1))

        case let .siluMul(gate, up, out, dim):
            var words = [dim, try backend.width(gate.name), gate.col, try backend.width(up.name), up.col, try backend.width(out.name), out.col]
            let vec4 = siluVec4 && words.allSatisfy { $0 % 4 == 0 }
            if vec4 { words = words.map { $0 / 4 } }
            let p = try pipeline("silu_mul.comp", kinds: Array(repeating: .storageBuffer, count: 3), push: 8, local: (64, 1), w: .f32, b: .f32,
                                 defines: ["VEC4": vec4 ? "1" : "0"])
            try cb.dispatch(p, [try a(gate), try a(up), try a(out)], push: words.map(u) + [u(rows)],
                            groups: (Self.groups(words[0], 64), rows, 1))

        case let .unary(kind, x, out, dim, scale):
            let p = try pipeline("unary.comp", bindings: 2, push: 8)
            try cb.dispatch(p, [try a(x), try a(out)],
                            push: [u(dim), try stride(x), u(x.col), try stride(out), u(out.col), u(Int(kind.rawValue)), f(scale), u(rows)],
                            groups: (Self.groups(dim, 64), rows, 1))

        case let .binary(kind, x, b, out, dim):
            let bBind: Binding, bStride: UInt32, bCol: UInt32
            switch b {
            case .act(let r): bBind = try a(r); bStride = try stride(r); bCol = u(r.col)
            case .row(let w): bBind = Binding(try backend.weightF32(w.name)); bStride = 0; bCol = u(w.offset)
            }
            let p = try pipeline("binary.comp", bindings: 3, push: 9)
            try cb.dispatch(p, [try a(x), bBind, try a(out)],
                            push: [u(dim), try stride(x), u(x.col), bStride, bCol, try stride(out), u(out.col), u(Int(kind.rawValue)), u(rows)],
                            groups: (Self.groups(dim, 64), rows, 1))

        case let .copy(src, out, width):
            let p = try pipeline("copy.comp", bindings: 2, push: 6)
            try cb.dispatch(p, [try a(src), try a(out)],
                            push: [u(width), try stride(src), u(src.col), try stride(out), u(out.col), u(rows)],
                            groups: (Self.groups(width, 64), rows, 1))

        case let .kvCopy(from, to):
            let p = try pipeline("kv_copy.comp", bindings: 3, push: 2)
            let width = backend.layout.kvWidth
            for part in [KVPart.k, .v] {
                try cb.dispatch(p, [Binding(try backend.kvSlice(from, part)), Binding(try backend.kvSlice(to, part)), Binding(backend.step)],
                                push: [u(width), u(backend.layout.maxContext)], groups: (Self.groups(width, 64), rows, 1))
            }

        case let .argmax(x, out, dim):
            let p = try pipeline("argmax.comp", kinds: Array(repeating: .storageBuffer, count: 2), push: 5, local: reduceShape.local, w: .f32, b: .f32, defines: reduceShape.defines)
            try cb.dispatch(p, [try a(x), try a(out)], push: [u(dim), try stride(x), u(x.col), try stride(out), u(out.col)], groups: (rows, 1, 1))

        case .exitDecide:
            try encodeExitDecide(op, gate: nil, rows: rows, into: cb, backend: backend)

        case let .softmax(x, out, dim):
            let p = try pipeline("softmax.comp", kinds: Array(repeating: .storageBuffer, count: 2), push: 5, local: reduceShape.local, w: .f32, b: .f32, defines: reduceShape.defines)
            try cb.dispatch(p, [try a(x), try a(out)], push: [u(dim), try stride(x), u(x.col), try stride(out), u(out.col)], groups: (rows, 1, 1))
        }
    }
}
