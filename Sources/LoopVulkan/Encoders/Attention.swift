import Foundation
import LoopCore

// `.attention`: causal attention of `rows` query rows over one KV slot. Variants:
// - texel (CPU devices): q, K and V through texel views; decode (and a batch's rows, each its
//   own sequence) with one subgroup per head
//   splitting its keys or (LANE_HEADS) an invocation per head walking all of its keys; prefill
//   with each invocation owning up to `laneRows` rows (LANE_ROWS);
// - storage, subgroup reductions: a workgroup (one subgroup) per (head, row);
// - storage, workgroup reductions (GPUs): a workgroup per (head, row) whose clusters of lanes
//   read each key row's contiguous slices (coalesced; `attentionKeyLayout`);
// - flash-decoding (the same kernel, one row): each head's keys split across
//   `KernelConfig.attentionSplits` workgroups (SPLIT), merged by attention_combine.comp.

/// attention.comp: `heads` query heads of `headDim` over `kvHeads` KV heads.
struct AttentionPush: PushBlock {
    static let shader = "attention.comp"
    var heads: UInt32 = 0, kvHeads: UInt32 = 0, headDim: UInt32 = 0, qStride: UInt32 = 0
    var qCol: UInt32 = 0, oStride: UInt32 = 0, oCol: UInt32 = 0, kvWidth: UInt32 = 0
    var scale: Float = 0, qBase: UInt32 = 0, kBase: UInt32 = 0, vBase: UInt32 = 0
}
/// attention_combine.comp: merges the `splits` partial states of each head.
struct AttentionCombinePush: PushBlock {
    static let shader = "attention_combine.comp"
    var heads: UInt32 = 0, headDim: UInt32 = 0, splits: UInt32 = 0, oStride: UInt32 = 0, oCol: UInt32 = 0
}

extension Kernels {
    func encodeAttention(_ op: Op, rows: Int, batch: Bool, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .attention(q, slot, out, heads, kvHeads, headDim, scale) = op else { return }
        // A subgroup-only workgroup holds up to 32 values of a head per invocation; a head too
        // wide for the device's subgroup (head_dim 256 at 4 lanes) takes the shared-memory
        // version (4 values per invocation of 64).
        let subgroupOnly = subgroupReduce && headDim <= 32 * context.info.subgroupSize
        let base: (local: (Int, Int), defines: [String: String]) = subgroupOnly ? reduceShape : ((reduceThreads, 1), [:])
        let shape = (local: base.local, defines: base.defines.merging(buffers.kvDefines) { $1 })
        guard headDim <= 4 * shape.local.0 || (subgroupOnly && headDim <= 32 * shape.local.0), headDim <= 256, kvHeads > 0, heads % kvHeads == 0 else {
            throw LoopError.unsupported("attention with \(heads) heads / \(kvHeads) KV heads x \(headDim)")
        }
        let push = AttentionPush(heads: u32(heads), kvHeads: u32(kvHeads), headDim: u32(headDim), qStride: u32(try buffers.width(q.name)),
                                 qCol: u32(q.col), oStride: u32(try buffers.width(out.name)), oCol: u32(out.col),
                                 kvWidth: u32(buffers.layout.kvWidth), scale: scale)
        if subgroupOnly,
           try encodeTexelAttention(q: q, slot: slot, out: out, heads: heads, headDim: headDim, push: push, rows: rows, batch: batch, into: cb, buffers: buffers) { return }
        let kvBindings = [Binding(try buffers.act(q.name)), Binding(try buffers.kvSlice(slot, .k)), Binding(try buffers.kvSlice(slot, .v))]
        if subgroupOnly {
            let p = try pipeline("attention.comp", storage: 5, push: AttentionPush.self, local: shape.local, defines: shape.defines)
            try cb.dispatch(p, kvBindings + [Binding(try buffers.act(out.name)), Binding(buffers.step)], push: push, groups: (heads, rows, 1))
            return
        }
        // The workgroup-reduction kernel: key clusters (see attention.comp's storage kernel).
        let keys = try attentionKeyLayout(headDim: headDim, buffers: buffers, slot: slot)
        let defines = shape.defines.merging(keys.defines) { $1 }
        let splits = rows == 1 ? config.attentionSplits(heads: heads, context: buffers.layout.maxContext) : 1
        if splits > 1 {
            // Partial states per (head, split) into a scratch buffer, then the combine. The
            // scratch is reused by every layer: the barrier before the combine orders its
            // reads; the ops between two attentions order the rest.
            let ns = splits
            let part = try buffers.scratch(.attentionSplit, bytes: heads * ns * (headDim + 2) * 4)
            let p = try pipeline("attention.comp", storage: 5, push: AttentionPush.self, local: shape.local,
                                 defines: defines.merging(["SPLIT": "1"]) { $1 }, fixedSubgroup: true)
            try cb.dispatch(p, kvBindings + [Binding(part), Binding(buffers.step)], push: push, groups: (heads, 1, ns))
            cb.barrier()
            let c = try pipeline("attention_combine.comp", storage: 2, push: AttentionCombinePush.self, local: shape.local)
            try cb.dispatch(c, [Binding(part), Binding(try buffers.act(out.name))],
                            push: AttentionCombinePush(heads: u32(heads), headDim: u32(headDim), splits: u32(ns), oStride: push.oStride, oCol: push.oCol),
                            groups: (heads, 1, 1))
            return
        }
        let p = try pipeline("attention.comp", storage: 5, push: AttentionPush.self, local: shape.local, defines: defines, fixedSubgroup: true)
        try cb.dispatch(p, kvBindings + [Binding(try buffers.act(out.name)), Binding(buffers.step)], push: push, groups: (heads, rows, 1))
    }

    /// The lane layout of the storage attention kernel (attention.comp, workgroup reductions):
    /// a key row is read as slices of VEC values — 4 (a vec4 / f16vec4 load) when head_dim and
    /// the KV row are multiples of 4 and the K/V bindings start on 16 bytes, else 1 — by a
    /// cluster of KEY_LANES consecutive lanes of one subgroup: the least power of 2 covering
    /// the row's slices, at most 16 and at most the subgroup size (required at pipeline
    /// creation, `fixedSubgroup`); the cluster's sum is subgroupClusteredAdd (CLUSTERED) or a
    /// subgroupShuffleXor butterfly (lavapipe has no clustered operations), 1 lane without either.
    /// KEY_SLICES: slices per lane. SPLIT_MIN_KEYS: KernelConfig.minKeysPerSplit.
    func attentionKeyLayout(headDim: Int, buffers: DeviceBuffers, slot: Int) throws -> (lanes: Int, vec: Int, defines: [String: String]) {
        let kvWidth = buffers.layout.kvWidth
        let k = try buffers.kvSlice(slot, .k), v = try buffers.kvSlice(slot, .v)
        let vec = headDim % 4 == 0 && kvWidth % 4 == 0 && k.offset % 16 == 0 && v.offset % 16 == 0 ? 4 : 1
        let slices = headDim / vec
        let info = context.info
        let lanes = Self.attentionKeyLanes(slices: slices, subgroupSize: info.subgroupSize, clustered: info.subgroupClustered || info.subgroupShuffle,
                                           workgroup: reduceThreads)
        let perLane = (slices + lanes - 1) / lanes
        // The merge's shared memory: at most 8 KiB of partial outputs per round.
        let merge = max(1, min(reduceThreads / lanes, 8192 / (lanes * perLane * vec * 4)))
        return (lanes, vec, ["VEC": "\(vec)", "KEY_LANES": "\(lanes)", "KEY_SLICES": "\(perLane)", "WG_N": "\(reduceThreads)u",
                             "CLUSTERED": info.subgroupClustered ? "1" : "0", "MERGE_CLUSTERS": "\(merge)u",
                             "SPLIT_MIN_KEYS": "\(KernelConfig.minKeysPerSplit)u"])
    }

    /// Lanes per key of the storage attention (see `attentionKeyLayout`).
    static func attentionKeyLanes(slices: Int, subgroupSize: Int, clustered: Bool, workgroup: Int) -> Int {
        guard clustered else { return 1 }
        var n = 1
        while n < slices, n < 16, 2 * n <= subgroupSize, 2 * n <= workgroup { n *= 2 }
        return n
    }

    /// Attention reading q, K and V through texel views (attention.comp READ_TEXEL): on the
    /// texel path with subgroup-only reductions, when head_dim, the KV row, q's column and row
    /// stride are whole texels and each view fits. Returns false otherwise.
    func encodeTexelAttention(q: ActRef, slot: Int, out: ActRef, heads: Int, headDim: Int, push: AttentionPush, rows: Int, batch: Bool,
                              into cb: RecordedCommands, buffers: DeviceBuffers) throws -> Bool {
        let kvWidth = buffers.layout.kvWidth, qStride = try buffers.width(q.name)
        guard readPath == .texel, subgroupReduce, headDim % 4 == 0, kvWidth % 4 == 0, q.col % 4 == 0, qStride % 4 == 0 else { return false }
        let kBytes = buffers.layout.kvRows * kvWidth * buffers.kvType.byteSize
        guard let (qb, qShift) = texelWindow(try buffers.act(q.name), byteStart: 0, byteCount: ((rows - 1) * qStride + q.col + heads * headDim) * 4),
              let (kb, kShift) = texelWindow(try buffers.kvSlice(slot, .k), byteStart: 0, byteCount: kBytes),
              let (vb, vShift) = texelWindow(try buffers.kvSlice(slot, .v), byteStart: 0, byteCount: kBytes),
              qShift % 16 == 0, kShift % 16 == 0, vShift % 16 == 0 else { return false }
        let kinds: [BindingKind] = [.uniformTexels, .uniformTexels, .uniformTexels, .storageBuffer, .storageBuffer]
        // Several rows of one sequence (prefill): 8 invocations per workgroup, each owning
        // `perLane` rows over the same keys. A batch's rows are separate sequences: per-row kernels.
        let laneRows = rows > 1 && !batch
        let perLane = laneRows ? Self.attentionRowsPerLane(rows: rows, headDim: headDim, cap: config.laneRows) : 0
        // One row: an invocation per head where 8-head workgroups keep every device thread busy.
        let laneHeads = rows == 1 && config.laneHeads && Self.groups(heads, 8) >= config.threads
        let p = try pipeline("attention.comp", kinds: kinds, push: AttentionPush.self, local: laneRows || laneHeads ? (8, 1) : reduceShape.local,
                             defines: reduceShape.defines.merging(buffers.kvDefines) { $1 }.merging(["READ_TEXEL": "1", "NT": "\(headDim / 4)u", "LANE_ROWS": "\(perLane)",
                                                                   "LANE_HEADS": laneHeads ? "1" : "0"]) { $1 })
        var texelPush = push
        // Bases in elements of each view: floats for q, the cache's type for K and V.
        let kvSize = buffers.kvType.byteSize
        texelPush.qBase = u32(qShift / 4); texelPush.kBase = u32(kShift / kvSize); texelPush.vBase = u32(vShift / kvSize)
        try cb.dispatch(p, [qb, kb, vb, Binding(try buffers.act(out.name)), Binding(buffers.step)], push: texelPush,
                        groups: laneHeads ? (Self.groups(heads, 8), rows, 1) : (heads, laneRows ? Self.groups(rows, 8 * perLane) : rows, 1))
        return true
    }

    /// Rows per invocation of the texel prefill attention (attention.comp LANE_ROWS), each K and
    /// V fetch serving that many rows: the least power of 2 whose group of 8 invocations covers
    /// `rows`, with at most 512 floats of q per invocation and at most `cap`.
    static func attentionRowsPerLane(rows: Int, headDim: Int, cap: Int) -> Int {
        var n = 1
        while n < min(cap, 512 / max(headDim, 1)), 8 * n < rows { n *= 2 }
        return n
    }
}
