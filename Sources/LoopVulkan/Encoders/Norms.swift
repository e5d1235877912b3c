import Foundation
import LoopCore

// `.rmsNorm` (with its residual modes and the fused second norm) and `.layerNorm`: one
// workgroup per row (and head group), a row reduction in the configured style. rmsnorm.comp
// moves vec4s (VEC4) where every size, column and weight base is a multiple of 4.

/// rmsnorm.comp; sizes and columns in floats, or in vec4s under VEC4 (weight bases stay in
/// elements). `chain`: also normalise the output again with the second weight into `o2`.
struct RMSNormPush: PushBlock {
    static let shader = "rmsnorm.comp"
    var dim: UInt32 = 0, groups: UInt32 = 0, xStride: UInt32 = 0, xCol: UInt32 = 0
    var aStride: UInt32 = 0, aCol: UInt32 = 0, oStride: UInt32 = 0, oCol: UInt32 = 0
    var wBase: UInt32 = 0, eps: Float = 0, mode: UInt32 = 0, hasWeight: UInt32 = 0
    var chain: UInt32 = 0, o2Stride: UInt32 = 0, o2Col: UInt32 = 0, w2Base: UInt32 = 0
    var eps2: Float = 0, hasWeight2: UInt32 = 0
}

/// layernorm.comp.
struct LayerNormPush: PushBlock {
    static let shader = "layernorm.comp"
    var dim: UInt32 = 0, xStride: UInt32 = 0, xCol: UInt32 = 0, oStride: UInt32 = 0
    var oCol: UInt32 = 0, wBase: UInt32 = 0, bBase: UInt32 = 0, eps: Float = 0, hasBias: UInt32 = 0
}

extension Kernels {
    func encodeRMSNorm(_ op: Op, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .rmsNorm(x, add, weight, out, dim, groups, eps, mode) = op else { return }
        var wb = buffers.dummyBinding, base: UInt32 = 0, dt = DType.f32
        if let weight { (wb, base, dt) = try weightWindow(buffers, weight.name, start: weight.offset, count: dim) }
        try encodeRMSNorm(x: x, add: add, wb: wb, base: base, dtype: dt, hasWeight: weight != nil, out: out, dim: dim, groups: groups,
                          eps: eps, mode: mode, chain: nil, rows: rows, into: cb, buffers: buffers)
    }

    /// rmsnorm.comp over `first` then (chain) the plain norm `second` of its output, one
    /// workgroup per row. Returns false (recording nothing) when the two weights differ in dtype.
    func encodeNormThenNorm(_ first: Op, _ second: Op, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws -> Bool {
        guard case let .rmsNorm(x, add, weight, out, dim, _, eps, mode) = first,
              case let .rmsNorm(_, _, weight2, out2, _, _, eps2, _) = second else { return false }
        var wb = buffers.dummyBinding, base: UInt32 = 0, dt: DType?
        var wb2 = buffers.dummyBinding, base2: UInt32 = 0, dt2: DType?
        if let weight { (wb, base, _) = try weightWindow(buffers, weight.name, start: weight.offset, count: dim); dt = try buffers.weights.info(weight.name).dtype }
        if let weight2 { (wb2, base2, _) = try weightWindow(buffers, weight2.name, start: weight2.offset, count: dim); dt2 = try buffers.weights.info(weight2.name).dtype }
        if let dt, let dt2, dt != dt2 { return false }
        try encodeRMSNorm(x: x, add: add, wb: wb, base: base, dtype: dt ?? dt2 ?? .f32, hasWeight: weight != nil, out: out, dim: dim, groups: 1, eps: eps, mode: mode,
                          chain: (wb2, base2, weight2 != nil, out2, eps2), rows: rows, into: cb, buffers: buffers)
        return true
    }

    private func encodeRMSNorm(x: ActRef, add: ActRef?, wb: Binding, base: UInt32, dtype: DType, hasWeight: Bool, out: ActRef, dim: Int, groups: Int,
                               eps: Float, mode: NormMode, chain: (Binding, UInt32, Bool, ActRef, Float)?, rows: Int,
                               into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        func a(_ r: ActRef) throws -> Binding { Binding(try buffers.act(r.name)) }
        let addB = try add.map { try a($0) } ?? buffers.dummyBinding
        let (wb2, base2, has2, out2, eps2) = chain ?? (buffers.dummyBinding, 0, false, out, eps)
        var sizes = [dim, try buffers.width(x.name), x.col, try add.map { try buffers.width($0.name) } ?? 0, add?.col ?? 0,
                     try buffers.width(out.name), out.col, try buffers.width(out2.name), out2.col]
        let vec4 = sizes.allSatisfy { $0 % 4 == 0 } && base % 4 == 0 && base2 % 4 == 0
        if vec4 { sizes = sizes.map { $0 / 4 } }
        let s = sizes.map(u32)
        let push = RMSNormPush(dim: s[0], groups: u32(groups), xStride: s[1], xCol: s[2], aStride: s[3], aCol: s[4], oStride: s[5], oCol: s[6],
                               wBase: base, eps: eps, mode: u32(Int(mode.rawValue)), hasWeight: hasWeight ? 1 : 0,
                               chain: chain == nil ? 0 : 1, o2Stride: s[7], o2Col: s[8], w2Base: base2, eps2: eps2, hasWeight2: has2 ? 1 : 0)
        let p = try pipeline("rmsnorm.comp", storage: 6, push: RMSNormPush.self, local: reduceShape.local, w: dtype,
                             defines: reduceShape.defines.merging(["VEC4": vec4 ? "1" : "0"]) { $1 })
        try cb.dispatch(p, [try a(x), addB, wb, try a(out), wb2, try a(out2)], push: push, groups: (groups, rows, 1))
    }

    func encodeLayerNorm(_ op: Op, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .layerNorm(x, weight, bias, out, dim, eps) = op else { return }
        let (wb, wbase, wdt) = try weightWindow(buffers, weight.name, start: weight.offset, count: dim)
        var bb = buffers.dummyBinding, bbase: UInt32 = 0, bdt = DType.f32
        if let bias { (bb, bbase, bdt) = try weightWindow(buffers, bias.name, start: bias.offset, count: dim) }
        let p = try pipeline("layernorm.comp", storage: 4, push: LayerNormPush.self, local: reduceShape.local, w: wdt, b: bdt, defines: reduceShape.defines)
        try cb.dispatch(p, [Binding(try buffers.act(x.name)), wb, bb, Binding(try buffers.act(out.name))],
                        push: LayerNormPush(dim: u32(dim), xStride: u32(try buffers.width(x.name)), xCol: u32(x.col), oStride: u32(try buffers.width(out.name)),
                                            oCol: u32(out.col), wBase: wbase, bBase: bbase, eps: eps, hasBias: bias == nil ? 0 : 1),
                        groups: (rows, 1, 1))
    }
}
