import Foundation
import LoopCore

// `.linear`: the decode GEMV (one row, matvec.comp) and the prefill product (several rows,
// matmul.comp), on the storage and the texel read path, with the epilogues recording fuses
// into them (the gated SiLU of a stacked gate/up product, greedy decode's argmax).

/// matvec.comp / matmul.comp: `rows` token rows of `x` times the output features
/// `o0 ..< o0 + ocount` of W.
struct LinearPush: PushBlock {
    static let shader = "matvec.comp"
    var inF: UInt32 = 0, xStride: UInt32 = 0, xCol: UInt32 = 0, oStride: UInt32 = 0
    var oCol: UInt32 = 0, wBase: UInt32 = 0, bBase: UInt32 = 0, hasBias: UInt32 = 0
    var accumulate: UInt32 = 0, o0: UInt32 = 0, ocount: UInt32 = 0, rows: UInt32 = 0
}
/// The same block as matmul.comp declares it.
struct MatmulPush: PushBlock {
    static let shader = "matmul.comp"
    var base = LinearPush()
    init() {}
    init(_ base: LinearPush) { self.base = base }
}
/// The SILU epilogue's extra members: silu(gate) * up of a stacked gate/up product into h.
struct SiluTail: PushBlock {
    static let shader = "matvec.comp"
    static var defines: [String: String] { ["SILU": "1", "READ_TEXEL": "1"] }
    var siluDim: UInt32 = 0, hStride: UInt32 = 0, hCol: UInt32 = 0
}
struct LinearSiluPush: PushBlock {
    static let shader = "matvec.comp"
    static var defines: [String: String] { ["SILU": "1", "READ_TEXEL": "1"] }
    var base = LinearPush(), silu = SiluTail()
}
struct MatmulSiluPush: PushBlock {
    static let shader = "matmul.comp"
    static var defines: [String: String] { ["SILU": "1", "READ_TEXEL": "1"] }
    var base = LinearPush(), silu = SiluTail()
}
/// The ARGMAX epilogue: each workgroup's best logit, reduced by the last one to finish.
struct LinearArgmaxPush: PushBlock {
    static let shader = "matvec.comp"
    static var defines: [String: String] { ["ARGMAX": "1", "READ_TEXEL": "1"] }
    var base = LinearPush()
    var amCol: UInt32 = 0, amGroups: UInt32 = 0
}

/// What a product also computes from its output (see Fusion.swift).
enum LinearEpilogue {
    /// The index of the first largest output, into `argmax` (one row only).
    case argmax(ActRef)
    /// silu(gate) * up of the product's two halves (gate then up, `dim` each) into `h`.
    case silu(h: ActRef, dim: Int)
}

extension Kernels {
    /// A linear's bias as (binding, element base, dtype), nil without one.
    func biasWindow(_ bias: WeightRef?, count: Int, buffers: DeviceBuffers) throws -> (Binding, UInt32, DType)? {
        guard let bias else { return nil }
        return try weightWindow(buffers, bias.name, start: bias.offset, count: count)
    }

    /// Output features per workgroup of the storage path's 16-byte GEMV (matvec.comp VEC16),
    /// one subgroup each.
    static let gemvFeatures = 4

    /// `.linear`: through texel views where the read path is texel and the shapes fit, else
    /// storage buffers in chunks of output features that each fit `maxStorageBufferRange`.
    func encodeLinear(_ op: Op, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .linear(x, weight, bias, out, inF, outF, accumulate) = op else { return }
        if try buffers.weights.info(weight.name).dtype.isBlock { return try encodeBlockLinear(op, rows: rows, into: cb, buffers: buffers) }
        let biasW = try biasWindow(bias, count: outF, buffers: buffers)
        if readPath == .texel,
           try encodeTexelLinear(x: x, weight: weight, bias: biasW, out: out, inF: inF, outF: outF, accumulate: accumulate,
                                 rows: rows, epilogue: nil, into: cb, buffers: buffers) {
            return
        }
        // (The texel path uploads its own copy of W: ask for the row-major one only here.)
        let rowBytes = inF * (try buffers.weights.info(weight.name).dtype.byteSize)
        // The GEMV launches a workgroup per output feature: chunks also stay under the
        // workgroup-count limit (a 151,936-row head exceeds lavapipe's and Intel's 65,535).
        let chunkRows = min(max(1, (Int(context.info.maxStorageBufferRange) - 256) / rowBytes), context.info.maxWorkGroupCount[0])
        let (bb, bbase, bdt) = biasW ?? (buffers.dummyBinding, 0, .f32)
        var o0 = 0
        while o0 < outF {
            let n = min(chunkRows, outF - o0)
            let (wb, base, dt) = try weightWindow(buffers, weight.name, start: weight.offset + o0 * inF, count: n * inF)
            let push = LinearPush(inF: u32(inF), xStride: u32(try buffers.width(x.name)), xCol: u32(x.col), oStride: u32(try buffers.width(out.name)),
                                  oCol: u32(out.col), wBase: base, bBase: bbase, hasBias: bias == nil ? 0 : 1,
                                  accumulate: accumulate ? 1 : 0, o0: u32(o0), ocount: u32(n), rows: u32(rows))
            let bindings = [Binding(try buffers.act(x.name)), wb, bb, Binding(try buffers.act(out.name))]
            // Elements per 16-byte load: a one-element-per-block format's (W_EPT in the shader).
            let ept = 16 / (dt.weightFormat?.elementBytes ?? 16)
            if rows == 1, ept > 1, inF % ept == 0, Int(base) % ept == 0, x.col % 4 == 0, Int(push.xStride) % 4 == 0 {
                // 16-byte loads, a subgroup per feature, `Self.gemvFeatures` features per workgroup.
                let f = Self.gemvFeatures, sg = context.info.subgroupSize
                let p = try pipeline("matvec.comp", storage: 4, push: LinearPush.self, local: (f * sg, 1), w: dt, b: bdt, defines: ["VEC16": "1"],
                                     fixedSubgroup: true)    // one subgroup per feature
                try cb.dispatch(p, bindings, push: push, groups: (Self.groups(n, f), rows, 1))
            } else if rows == 1 {
                let p = try pipeline("matvec.comp", storage: 4, push: LinearPush.self, local: (reduceThreads, 1), w: dt, b: bdt)
                try cb.dispatch(p, bindings, push: push, groups: (n, rows, 1))
            } else {
                let p = try pipeline("matmul.comp", storage: 4, push: MatmulPush.self, local: (16, 16), w: dt, b: bdt)
                try cb.dispatch(p, bindings, push: MatmulPush(push), groups: (Self.groups(n, 64), Self.groups(rows, 64), 1))
            }
            o0 += n
        }
    }

    /// A linear and the op that reads its output, fused into the texel product's `epilogue`
    /// where the product's shape allows; else the two apart.
    func encodeLinear(_ linear: Op, then next: Op, epilogue: LinearEpilogue?, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .linear(x, weight, bias, out, inF, outF, accumulate) = linear else { return }
        if case let .silu(h, dim)? = epilogue, try encodeInterleavedBlockLinear(linear, rows: rows, silu: (h, dim), into: cb, buffers: buffers) { return }
        if readPath == .texel, let epilogue,
           try encodeTexelLinear(x: x, weight: weight, bias: try biasWindow(bias, count: outF, buffers: buffers), out: out, inF: inF, outF: outF,
                                 accumulate: accumulate, rows: rows, epilogue: epilogue, into: cb, buffers: buffers) {
            return
        }
        try encode(linear, rows: rows, into: cb, buffers: buffers)
        cb.barrier()
        try encode(next, rows: rows, into: cb, buffers: buffers)
    }

    /// The product through texel views: one row (decode) with matvec.comp, several rows
    /// (prefill) with matmul.comp's READ_TEXEL kernels; x (all rows) in one view, W in chunks
    /// that each fit one view: whole blocks of the interleaved copy where rows are whole texels
    /// (`interleavedCopy`), else whole rows of the row-major copy. Returns false before
    /// recording anything when x or one block (row) does not fit a view, or when the epilogue
    /// does not apply to this shape, so the caller takes the storage path (or the two ops apart).
    ///
    /// Kernels: one row over interleaved blocks: a workgroup per block, `block / lanes` rows per
    /// invocation, no reduction; one row over row-major rows: `texelRows` features per
    /// workgroup with a subgroup reduction; several rows over aligned interleaved blocks of 32:
    /// LANE_FEATURES, 128 features x 8 rows per 8-invocation workgroup; otherwise the subgroup
    /// kernel with `matmulTile` features x rows per workgroup.
    func encodeTexelLinear(x: ActRef, weight: WeightRef, bias: (Binding, UInt32, DType)?, out: ActRef, inF: Int, outF: Int,
                           accumulate: Bool, rows: Int, epilogue: LinearEpilogue?, into cb: RecordedCommands, buffers: DeviceBuffers) throws -> Bool {
        let info = try buffers.weights.info(weight.name)
        guard !info.dtype.isBlock else { return false }    // (block formats: encodeBlockLinear)
        let total = info.shape.reduce(1, *)
        guard weight.offset >= 0, weight.offset + outF * inF <= total else {
            throw LoopError.invalidArgument("op reads elements \(weight.offset)..<\(weight.offset + outF * inF) of \(weight.name), which has \(total)")
        }
        let es = info.dtype.byteSize
        let elementsPerTexel = 16 / es
        let slack = 2 * max(Int(context.info.minTexelBufferOffsetAlignment), 16)
        let xStride = try buffers.width(x.name), oStride = try buffers.width(out.name)
        guard let (xb, xShift) = texelWindow(try buffers.act(x.name), byteStart: x.col * 4, byteCount: ((rows - 1) * xStride + inF) * 4) else { return false }
        let xCol = xShift / 4
        let xAligned = xCol % 4 == 0 && (rows == 1 || xStride % 4 == 0)
        let (bb, bbase, bdt) = bias ?? (buffers.dummyBinding, 0, .f32)
        let kinds: [BindingKind] = [.uniformTexels, .uniformTexels, .storageBuffer, .storageBuffer]
        let defines = ["READ_TEXEL": "1", "WG_REDUCE": texelWorkgroupReduce ? "1" : "0"]

        // The layout: interleaved blocks of `block` rows, or row-major rows (block 0).
        let block: Int, slice: BufferSlice, firstRow: Int, unit: Int
        if let copy = try interleavedCopy(weight, inF: inF, weights: buffers.weights), case let .interleaved(_, _, b, first) = copy,
           b * inF * es + slack <= maxTexelBytes {
            block = b
            firstRow = weight.offset / inF - first
            slice = try buffers.interleavedWeight(weight.name, inFeatures: inF, block: b, firstRow: first).slice
            unit = b
        } else {
            guard inF * es + slack <= maxTexelBytes else { return false }
            block = 0
            firstRow = 0
            slice = try buffers.weight(weight.name).slice
            unit = 1
        }
        // Output features per chunk: whole blocks (rows) that fit one view with the alignment slack.
        let chunkFeatures = (maxTexelBytes - slack) / (unit * inF * es) * unit
        switch epilogue {
        case .argmax: if rows != 1 || block == 0 || chunkFeatures < outF || accumulate { return false }
        case .silu(_, let dim): if block != 32 || dim % 32 != 0 || chunkFeatures < outF || accumulate { return false }
        case nil: break
        }
        var o0 = 0
        while o0 < outF {
            let n = min(chunkFeatures, outF - o0)
            let start = block > 0 ? (firstRow + o0) * inF * es : (weight.offset + o0 * inF) * es
            let bytes = block > 0 ? (n + block - 1) / block * block * inF * es : n * inF * es
            guard let (wb, wShift) = texelWindow(slice, byteStart: start, byteCount: bytes) else {
                throw VulkanError("linear(\(weight.name))", message: "rows \(o0)..<\(o0 + n) do not fit one texel view of \(maxTexelBytes) bytes")
            }
            let wBase = wShift / es
            let aligned = xAligned && inF % elementsPerTexel == 0 && (block > 0 || wBase % elementsPerTexel == 0)
            let push = LinearPush(inF: u32(inF), xStride: u32(xStride), xCol: u32(xCol), oStride: u32(oStride), oCol: u32(out.col), wBase: u32(wBase),
                                  bBase: bbase, hasBias: bias == nil ? 0 : 1, accumulate: accumulate ? 1 : 0, o0: u32(o0), ocount: u32(n), rows: u32(rows))
            let bindings = [xb, wb, bb, Binding(try buffers.act(out.name))]
            if rows == 1 && block > 0 {
                var lanes = min(texelLanes, block)
                while block % lanes != 0 { lanes -= 1 }
                let groups = Self.groups(n, block)
                let constants = [u32(block), aligned ? 1 : 0, 1, u32(block / lanes)]
                switch epilogue {
                case let .silu(h, dim):
                    let p = try pipeline("matvec.comp", kinds: kinds + [.storageBuffer], push: LinearSiluPush.self, local: (lanes, 1), w: info.dtype, b: bdt,
                                         defines: defines.merging(["SILU": "1"]) { $1 }, constants: constants)
                    let tail = SiluTail(siluDim: u32(dim), hStride: u32(try buffers.width(h.name)), hCol: u32(h.col))
                    try cb.dispatch(p, bindings + [Binding(try buffers.act(h.name))], push: LinearSiluPush(base: push, silu: tail), groups: (dim / block, 1, 1))
                case let .argmax(am):
                    // Scratch: a counter of finished workgroups, then (value, index) per workgroup.
                    let scratch = try buffers.scratch(.argmax, bytes: 4 * (1 + 2 * groups))
                    let p = try pipeline("matvec.comp", kinds: kinds + [.storageBuffer, .storageBuffer], push: LinearArgmaxPush.self, local: (lanes, 1),
                                         w: info.dtype, b: bdt, defines: defines.merging(["ARGMAX": "1"]) { $1 }, constants: constants)
                    try cb.dispatch(p, bindings + [Binding(scratch), Binding(try buffers.act(am.name))],
                                    push: LinearArgmaxPush(base: push, amCol: u32(am.col), amGroups: u32(groups)), groups: (groups, 1, 1))
                case nil:
                    let p = try pipeline("matvec.comp", kinds: kinds, push: LinearPush.self, local: (lanes, 1), w: info.dtype, b: bdt,
                                         defines: defines, constants: constants)
                    try cb.dispatch(p, bindings, push: push, groups: (groups, 1, 1))
                }
            } else if rows == 1 {
                let p = try pipeline("matvec.comp", kinds: kinds, push: LinearPush.self, local: (texelLanes, 1), w: info.dtype, b: bdt,
                                     defines: defines, constants: [u32(texelRows), 0, 0, 1])
                try cb.dispatch(p, bindings, push: push, groups: (Self.groups(n, texelRows), 1, 1))
            } else {
                // LANE_FEATURES kernels store an invocation's 4 features of a block as one vec4
                // where the output (and h) windows are whole vec4s.
                let outVec4 = [oStride, out.col, o0, n].allSatisfy { $0 % 4 == 0 }
                let wide = ["LANE_FEATURES": "1"].merging(defines) { $1 }
                if case let .silu(h, dim) = epilogue {
                    guard aligned else { return false }   // (nothing recorded yet: one chunk)
                    let hStride = try buffers.width(h.name)
                    let h4 = outVec4 && hStride % 4 == 0 && h.col % 4 == 0
                    let p = try pipeline("matmul.comp", kinds: kinds + [.storageBuffer], push: MatmulSiluPush.self, local: (8, 1), w: info.dtype, b: bdt,
                                         defines: wide.merging(["SILU": "1", "OUT_VEC4": h4 ? "1" : "0"]) { $1 }, constants: [8, 8, 1, 32])
                    try cb.dispatch(p, bindings + [Binding(try buffers.act(h.name))],
                                    push: MatmulSiluPush(base: push, silu: SiluTail(siluDim: u32(dim), hStride: u32(hStride), hCol: u32(h.col))),
                                    groups: (Self.groups(rows, 8), Self.groups(dim, 64), 1))
                } else if block == 32, aligned {
                    // Rows along x, so that the workgroups reading one W slab run together.
                    let p = try pipeline("matmul.comp", kinds: kinds, push: MatmulPush.self, local: (8, 1), w: info.dtype, b: bdt,
                                         defines: wide.merging(["OUT_VEC4": outVec4 ? "1" : "0"]) { $1 }, constants: [8, 8, 1, 32])
                    try cb.dispatch(p, bindings, push: MatmulPush(push), groups: (Self.groups(rows, 8), Self.groups(n, 128), 1))
                } else {
                    let (features, tileRows) = config.matmulTile
                    let p = try pipeline("matmul.comp", kinds: kinds, push: MatmulPush.self, local: (texelLanes, 1), w: info.dtype, b: bdt,
                                         defines: defines, constants: [u32(features), u32(tileRows), aligned ? 1 : 0, u32(block)])
                    try cb.dispatch(p, bindings, push: MatmulPush(push), groups: (Self.groups(n, features), Self.groups(rows, tileRows), 1))
                }
            }
            o0 += n
        }
        return true
    }
}
