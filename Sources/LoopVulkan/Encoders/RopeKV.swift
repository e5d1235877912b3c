import Foundation
import LoopCore

// `.rope` (optionally with the layer's K/V cache writes fused in), `.kvWrite` (one part or
// both parts of a slot), `.kvCopy` (the KV fill of passes a token skipped, up to 8 buffers per
// dispatch). rope.comp moves vec4s (VEC4) for rotate-half rope where every size and offset is
// a multiple of 4. The caches hold the configuration's KV type (KV_F16, `buffers.kvDefines`).

/// rope.comp: rotates `heads` heads of `x` in place; with `kv`, also stores the last
/// `heads - kvHead0` (rotated K) heads and copies V into the cache.
struct RopePush: PushBlock {
    static let shader = "rope.comp"
    var heads: UInt32 = 0, headDim: UInt32 = 0, xStride: UInt32 = 0, xCol: UInt32 = 0
    var tBase: UInt32 = 0, tPositions: UInt32 = 0, layoutKind: UInt32 = 0, kv: UInt32 = 0
    var kvHead0: UInt32 = 0, kvWidth: UInt32 = 0, maxRows: UInt32 = 0, vStride: UInt32 = 0
    var vCol: UInt32 = 0
}

/// kv_write.comp: rows of `s` (and of `s2` for the second part) into the cache at their positions.
struct KVWritePush: PushBlock {
    static let shader = "kv_write.comp"
    var width: UInt32 = 0, sStride: UInt32 = 0, sCol: UInt32 = 0, maxRows: UInt32 = 0, s2Stride: UInt32 = 0, s2Col: UInt32 = 0
}

/// kv_copy.comp: the current rows of one cache buffer into another (or 8 pairs with PAIRS 8).
struct KVCopyPush: PushBlock {
    static let shader = "kv_copy.comp"
    var width: UInt32 = 0, maxRows: UInt32 = 0
}

extension Kernels {
    func encodeRope(_ op: Op, kv: (slot: Int, v: ActRef)?, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .rope(x, heads, headDim, table, positions, layout) = op else { return }
        let t = try buffers.weightF32(table.name)
        let width = buffers.layout.kvWidth
        let xb = Binding(try buffers.act(x.name))
        let xStride = try buffers.width(x.name)
        var ck = xb, vb = xb, cv = xb, vStride = 0, vCol = 0, kvHeads = 0
        if let kv {
            ck = Binding(try buffers.kvSlice(kv.slot, .k)); cv = Binding(try buffers.kvSlice(kv.slot, .v))
            vb = Binding(try buffers.act(kv.v.name)); vStride = try buffers.width(kv.v.name); vCol = kv.v.col
            kvHeads = width / headDim
        }
        let vec4 = layout == .rotateHalf && headDim % 8 == 0 && [xStride, x.col, table.offset, width, vStride, vCol].allSatisfy { $0 % 4 == 0 }
        let p = try pipeline("rope.comp", storage: 6, push: RopePush.self, local: (32, 1), defines: buffers.kvDefines.merging(["VEC4": vec4 ? "1" : "0"]) { $1 })
        let push = RopePush(heads: u32(heads), headDim: u32(headDim), xStride: u32(xStride), xCol: u32(x.col), tBase: u32(table.offset),
                            tPositions: u32(positions), layoutKind: u32(Int(layout.rawValue)), kv: kv == nil ? 0 : 1, kvHead0: u32(heads - kvHeads),
                            kvWidth: u32(width), maxRows: u32(buffers.layout.kvRows), vStride: u32(vStride), vCol: u32(vCol))
        // The extra `kvHeads` invocations (z or x) copy V.
        try cb.dispatch(p, [xb, Binding(t), Binding(buffers.step), ck, vb, cv], push: push,
                        groups: vec4 ? (Self.groups(headDim / 8 * (heads + kvHeads), 32), rows, 1)
                                     : (Self.groups(headDim / 2, 32), heads + kvHeads, rows))
    }

    func encodeKVWrite(_ src: ActRef, slot: Int, part: KVPart, second: (ActRef, KVPart)?, rows: Int,
                       into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        let p = try pipeline("kv_write.comp", storage: 5, push: KVWritePush.self, defines: buffers.kvDefines)
        let width = buffers.layout.kvWidth
        let a = Binding(try buffers.act(src.name)), ca = Binding(try buffers.kvSlice(slot, part))
        var b = a, cbind = ca, bStride = 0, bCol = 0
        if let (srcB, partB) = second {
            b = Binding(try buffers.act(srcB.name)); cbind = Binding(try buffers.kvSlice(slot, partB))
            bStride = try buffers.width(srcB.name); bCol = srcB.col
        }
        try cb.dispatch(p, [a, ca, Binding(buffers.step), b, cbind],
                        push: KVWritePush(width: u32(width), sStride: u32(try buffers.width(src.name)), sCol: u32(src.col),
                                          maxRows: u32(buffers.layout.kvRows), s2Stride: u32(bStride), s2Col: u32(bCol)),
                        groups: (Self.groups(width, 64), rows, second == nil ? 1 : 2))
    }

    /// kvCopy ops: (source, destination) buffer pairs, 8 per dispatch where the device binds 17
    /// storage buffers, else one dispatch per buffer.
    func encodeKVCopies(_ ops: [Op], rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        var pairs: [(Binding, Binding)] = []
        for case let .kvCopy(from, to) in ops {
            for part in [KVPart.k, .v] { pairs.append((Binding(try buffers.kvSlice(from, part)), Binding(try buffers.kvSlice(to, part)))) }
        }
        let width = buffers.layout.kvWidth
        let push = KVCopyPush(width: u32(width), maxRows: u32(buffers.layout.kvRows))
        guard pairs.count > 2, context.info.maxStorageBuffersPerStage >= 17 else {
            let p = try pipeline("kv_copy.comp", storage: 3, push: KVCopyPush.self, defines: buffers.kvDefines)
            for (src, dst) in pairs { try cb.dispatch(p, [src, dst, Binding(buffers.step)], push: push, groups: (Self.groups(width, 64), rows, 1)) }
            return
        }
        let p = try pipeline("kv_copy.comp", storage: 17, push: KVCopyPush.self, defines: buffers.kvDefines.merging(["PAIRS": "8"]) { $1 })
        for c0 in stride(from: 0, to: pairs.count, by: 8) {
            let chunk = Array(pairs[c0..<min(c0 + 8, pairs.count)])
            let padded = chunk + Array(repeating: chunk[0], count: 8 - chunk.count)
            try cb.dispatch(p, padded.flatMap { [$0.0, $0.1] } + [Binding(buffers.step)], push: push,
                            groups: (Self.groups(width, 64), rows, chunk.count))
        }
    }
}
