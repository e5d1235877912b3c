import Foundation
import LoopCore

// The row-wise ops: `.embed`, `.siluMul`, `.unary`, `.binary`, `.copy`, `.argmax`,
// `.softmax`, and greedy chains' `advance.comp` (the argmax becomes the next token).

/// embedding.comp: rows `row0 ..< row0 + nrows` of the table (one chunk within
/// maxStorageBufferRange) gathered for the step state's token ids.
struct EmbeddingPush: PushBlock {
    static let shader = "embedding.comp"
    var dim: UInt32 = 0, outStride: UInt32 = 0, outCol: UInt32 = 0, wBase: UInt32 = 0
    var row0: UInt32 = 0, nrows: UInt32 = 0, scale: Float = 0
}
/// silu_mul.comp; sizes and columns in floats, or in vec4s under VEC4.
struct SiluMulPush: PushBlock {
    static let shader = "silu_mul.comp"
    var dim: UInt32 = 0, gStride: UInt32 = 0, gCol: UInt32 = 0, uStride: UInt32 = 0
    var uCol: UInt32 = 0, oStride: UInt32 = 0, oCol: UInt32 = 0, rows: UInt32 = 0
}
struct UnaryPush: PushBlock {
    static let shader = "unary.comp"
    var dim: UInt32 = 0, xStride: UInt32 = 0, xCol: UInt32 = 0, oStride: UInt32 = 0
    var oCol: UInt32 = 0, kind: UInt32 = 0, scale: Float = 0, rows: UInt32 = 0
}
/// binary.comp; `b_stride` 0 broadcasts one weight row.
struct BinaryPush: PushBlock {
    static let shader = "binary.comp"
    var dim: UInt32 = 0, aStride: UInt32 = 0, aCol: UInt32 = 0, bStride: UInt32 = 0
    var bCol: UInt32 = 0, oStride: UInt32 = 0, oCol: UInt32 = 0, kind: UInt32 = 0, rows: UInt32 = 0
}
struct CopyPush: PushBlock {
    static let shader = "copy.comp"
    var width: UInt32 = 0, sStride: UInt32 = 0, sCol: UInt32 = 0, oStride: UInt32 = 0, oCol: UInt32 = 0, rows: UInt32 = 0
}
/// argmax.comp: one workgroup per row, or (SPLIT) `groups` workgroups of `chunk` values per row
/// and a second stage.
struct ArgmaxPush: PushBlock {
    static let shader = "argmax.comp"
    var dim: UInt32 = 0, xStride: UInt32 = 0, xCol: UInt32 = 0, oStride: UInt32 = 0, oCol: UInt32 = 0
    var chunk: UInt32 = 0, groups: UInt32 = 0
}
/// softmax.comp: one workgroup per row.
struct SoftmaxPush: PushBlock {
    static let shader = "softmax.comp"
    var dim: UInt32 = 0, xStride: UInt32 = 0, xCol: UInt32 = 0, oStride: UInt32 = 0, oCol: UInt32 = 0
}
/// advance.comp: the argmax at `a_col` becomes the next token of a greedy chain.
struct AdvancePush: PushBlock {
    static let shader = "advance.comp"
    var aCol: UInt32 = 0
}

extension Kernels {
    /// In chunks of whole rows, each within maxStorageBufferRange.
    func encodeEmbedding(_ op: Op, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .embed(table, vocab, dim, out, scale) = op else { return }
        let w = try buffers.weight(table.name)
        if w.dtype.isBlock { return try encodeBlockEmbedding(op, rows: rows, into: cb, buffers: buffers) }
        let rowBytes = dim * w.dtype.byteSize
        let maxRows = max(1, Int(context.info.maxStorageBufferRange) / rowBytes - 1)
        var r0 = 0
        while r0 < vocab {
            let n = min(maxRows, vocab - r0)
            let (wb, base, dt) = try weightWindow(buffers, table.name, start: table.offset + r0 * dim, count: n * dim)
            let p = try pipeline("embedding.comp", storage: 3, push: EmbeddingPush.self, w: dt)
            try cb.dispatch(p, [wb, Binding(try buffers.act(out.name)), Binding(buffers.step)],
                            push: EmbeddingPush(dim: u32(dim), outStride: u32(try buffers.width(out.name)), outCol: u32(out.col), wBase: base,
                                                row0: u32(r0), nrows: u32(n), scale: scale),
                            groups: (Self.groups(dim, 64), rows, 1))
            r0 += n
        }
    }

    func encodeSiluMul(_ op: Op, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .siluMul(gate, up, out, dim) = op else { return }
        var s = [dim, try buffers.width(gate.name), gate.col, try buffers.width(up.name), up.col, try buffers.width(out.name), out.col]
        let vec4 = s.allSatisfy { $0 % 4 == 0 }
        if vec4 { s = s.map { $0 / 4 } }
        let p = try pipeline("silu_mul.comp", storage: 3, push: SiluMulPush.self, defines: ["VEC4": vec4 ? "1" : "0"])
        try cb.dispatch(p, [Binding(try buffers.act(gate.name)), Binding(try buffers.act(up.name)), Binding(try buffers.act(out.name))],
                        push: SiluMulPush(dim: u32(s[0]), gStride: u32(s[1]), gCol: u32(s[2]), uStride: u32(s[3]), uCol: u32(s[4]),
                                          oStride: u32(s[5]), oCol: u32(s[6]), rows: u32(rows)),
                        groups: (Self.groups(s[0], 64), rows, 1))
    }

    func encodeUnary(_ op: Op, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .unary(kind, x, out, dim, scale) = op else { return }
        let p = try pipeline("unary.comp", storage: 2, push: UnaryPush.self)
        try cb.dispatch(p, [Binding(try buffers.act(x.name)), Binding(try buffers.act(out.name))],
                        push: UnaryPush(dim: u32(dim), xStride: u32(try buffers.width(x.name)), xCol: u32(x.col), oStride: u32(try buffers.width(out.name)),
                                        oCol: u32(out.col), kind: u32(Int(kind.rawValue)), scale: scale, rows: u32(rows)),
                        groups: (Self.groups(dim, 64), rows, 1))
    }

    func encodeBinary(_ op: Op, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .binary(kind, x, b, out, dim) = op else { return }
        let bBind: Binding, bStride: Int, bCol: Int
        switch b {
        case .act(let r): bBind = Binding(try buffers.act(r.name)); bStride = try buffers.width(r.name); bCol = r.col
        case .row(let w): bBind = Binding(try buffers.weightF32(w.name)); bStride = 0; bCol = w.offset
        }
        let p = try pipeline("binary.comp", storage: 3, push: BinaryPush.self)
        try cb.dispatch(p, [Binding(try buffers.act(x.name)), bBind, Binding(try buffers.act(out.name))],
                        push: BinaryPush(dim: u32(dim), aStride: u32(try buffers.width(x.name)), aCol: u32(x.col), bStride: u32(bStride), bCol: u32(bCol),
                                         oStride: u32(try buffers.width(out.name)), oCol: u32(out.col), kind: u32(Int(kind.rawValue)), rows: u32(rows)),
                        groups: (Self.groups(dim, 64), rows, 1))
    }

    func encodeCopy(_ op: Op, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .copy(src, out, width) = op else { return }
        let p = try pipeline("copy.comp", storage: 2, push: CopyPush.self)
        try cb.dispatch(p, [Binding(try buffers.act(src.name)), Binding(try buffers.act(out.name))],
                        push: CopyPush(width: u32(width), sStride: u32(try buffers.width(src.name)), sCol: u32(src.col),
                                       oStride: u32(try buffers.width(out.name)), oCol: u32(out.col), rows: u32(rows)),
                        groups: (Self.groups(width, 64), rows, 1))
    }

    /// Workgroups per row of the split argmax (workgroup reductions only): one per 2048 values,
    /// at most 64; 1 (no split) under 4096 values.
    static func argmaxGroups(dim: Int) -> Int { dim < 4096 ? 1 : min(64, dim / 2048) }

    func encodeArgmax(_ op: Op, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .argmax(x, out, dim) = op else { return }
        var push = ArgmaxPush(dim: u32(dim), xStride: u32(try buffers.width(x.name)), xCol: u32(x.col),
                              oStride: u32(try buffers.width(out.name)), oCol: u32(out.col))
        let groups = Self.argmaxGroups(dim: dim)
        if !subgroupReduce, groups > 1 {
            // Split: `groups` partial bests per row into a scratch buffer, then their reduction.
            push.chunk = u32(Self.groups(dim, groups)); push.groups = u32(groups)
            let part = try buffers.scratch(.argmaxSplit, bytes: rows * groups * 8)
            let s1 = try pipeline("argmax.comp", storage: 2, push: ArgmaxPush.self, local: reduceShape.local,
                                  defines: reduceShape.defines.merging(["SPLIT": "1", "STAGE": "1"]) { $1 })
            try cb.dispatch(s1, [Binding(try buffers.act(x.name)), Binding(part)], push: push, groups: (groups, rows, 1))
            cb.barrier()
            let s2 = try pipeline("argmax.comp", storage: 2, push: ArgmaxPush.self, local: reduceShape.local,
                                  defines: reduceShape.defines.merging(["SPLIT": "1", "STAGE": "2"]) { $1 })
            try cb.dispatch(s2, [Binding(part), Binding(try buffers.act(out.name))], push: push, groups: (rows, 1, 1))
            return
        }
        let p = try pipeline("argmax.comp", storage: 2, push: ArgmaxPush.self, local: reduceShape.local, defines: reduceShape.defines)
        try cb.dispatch(p, [Binding(try buffers.act(x.name)), Binding(try buffers.act(out.name))], push: push, groups: (rows, 1, 1))
    }

    func encodeSoftmax(_ op: Op, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .softmax(x, out, dim) = op else { return }
        let p = try pipeline("softmax.comp", storage: 2, push: SoftmaxPush.self, local: reduceShape.local, defines: reduceShape.defines)
        try cb.dispatch(p, [Binding(try buffers.act(x.name)), Binding(try buffers.act(out.name))],
                        push: SoftmaxPush(dim: u32(dim), xStride: u32(try buffers.width(x.name)), xCol: u32(x.col),
                                          oStride: u32(try buffers.width(out.name)), oCol: u32(out.col)),
                        groups: (rows, 1, 1))
    }

    /// A greedy chain's step between tokens: appends the argmax to `results`, makes it the
    /// next token and moves pos0 on (see `VulkanBackend.runGreedyChain`).
    func encodeAdvance(argmax: ActRef, results: BufferSlice, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        let p = try pipeline("advance.comp", storage: 3, push: AdvancePush.self, local: (1, 1))
        try cb.dispatch(p, [Binding(try buffers.act(argmax.name)), Binding(buffers.step), Binding(results)], push: AdvancePush(aCol: u32(argmax.col)),
                        groups: (1, 1, 1))
    }
}
