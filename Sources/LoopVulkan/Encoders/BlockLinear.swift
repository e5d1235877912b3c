import Foundation
import LoopCore

// `.linear` and `.embed` over block-quantized weights (GGUF's Q8_0, Q4_0, Q4_K, Q6_K, MLX's
// affine formats): linear_block.comp for every row count, on storage buffers or (texel read
// path) a texel view of W, or on the texel path its INTERLEAVED kernel over the interleaved
// copy (DeviceBuffers.interleavedWeight: the same bytes reordered in groups of 32 rows);
// embedding.comp's block branch for the gather. A row is whole blocks, so windows of the
// stored layout are byte ranges of rows.

/// linear_block.comp's block: matvec.comp's, with `wBase` a byte address.
struct BlockLinearPush: PushBlock {
    static let shader = "linear_block.comp"
    /// (Any block format: the shader has no float-format variant.)
    static var defines: [String: String] { ["W_DTYPE": "10"] }
    var base = LinearPush()
    init() {}
    init(_ base: LinearPush) { self.base = base }
}

/// The INTERLEAVED kernel with the gated SiLU fused in (`SILU`): BlockLinearPush + SiluTail.
struct BlockLinearSiluPush: PushBlock {
    static let shader = "linear_block.comp"
    static var defines: [String: String] { ["W_DTYPE": "10", "READ_TEXEL": "1", "INTERLEAVED": "1", "SILU": "1"] }
    var base = LinearPush(), silu = SiluTail()
}

extension Kernels {
    /// Rows per workgroup of linear_block.comp (its RB).
    static let blockLinearRows = 8

    /// Bytes of one row of `inF` elements of a block format; throws when rows are not whole blocks.
    func blockRowBytes(_ name: String, dtype: DType, inF: Int) throws -> Int {
        guard let f = dtype.weightFormat, let bytes = f.bytes(elements: inF), inF % 32 == 0 else {
            let epb = dtype.weightFormat?.elementsPerBlock ?? 1
            throw LoopError.invalidArgument("\(name) is \(dtype.rawValue) with rows of \(inF) elements: rows must be whole blocks of \(max(epb, 32))")
        }
        return bytes
    }

    /// A binding over rows firstRow ..< firstRow + rows of a block-format weight (each `rowBytes`),
    /// as a storage buffer or a texel view; returns it and the byte address of firstRow in it.
    func blockWindow(_ buffers: DeviceBuffers, _ name: String, firstRow: Int, rows: Int, rowBytes: Int, texel: Bool) throws -> (Binding, UInt32) {
        let w = try buffers.weight(name)
        let byteStart = firstRow * rowBytes, byteCount = rows * rowBytes
        guard firstRow >= 0, rows >= 0, byteStart + byteCount <= Int(w.slice.size) else {
            throw LoopError.invalidArgument("op reads rows \(firstRow)..<\(firstRow + rows) of \(name), which has \(Int(w.slice.size) / max(rowBytes, 1))")
        }
        if texel {
            guard let (b, shift) = texelWindow(w.slice, byteStart: byteStart, byteCount: byteCount) else {
                throw VulkanError("linear(\(name))", message: "rows \(firstRow)..<\(firstRow + rows) do not fit one texel view of \(maxTexelBytes) bytes")
            }
            return (b, u32(shift))
        }
        let align = Int(max(context.info.minStorageBufferOffsetAlignment, 4))
        let bindStart = byteStart / align * align
        let bindEnd = min(Int(w.slice.size), (byteStart + byteCount + 3) & ~3)
        return (Binding(w.slice, offset: UInt64(bindStart), range: UInt64(bindEnd - bindStart)), u32(byteStart - bindStart))
    }

    /// `.linear` over a block-format weight: chunks of output features that each fit one
    /// binding (and the workgroup-count limit), 4 features (subgroups) x 8 rows per workgroup.
    func encodeBlockLinear(_ op: Op, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .linear(x, weight, bias, out, inF, outF, accumulate) = op else { return }
        let dtype = try buffers.weights.info(weight.name).dtype
        let rowBytes = try blockRowBytes(weight.name, dtype: dtype, inF: inF)
        guard weight.offset % inF == 0 else {
            throw LoopError.invalidArgument("\(weight.name) (\(dtype.rawValue)) is read from element \(weight.offset), not a row start")
        }
        if try encodeInterleavedBlockLinear(op, rows: rows, into: cb, buffers: buffers) { return }
        let texel = readPath == .texel
        let (bb, bbase, bdt) = try biasWindow(bias, count: outF, buffers: buffers) ?? (buffers.dummyBinding, 0, .f32)
        let f = Self.gemvFeatures, sg = context.info.subgroupSize
        let limit = texel ? maxTexelBytes - 2 * max(Int(context.info.minTexelBufferOffsetAlignment), 16)
                          : Int(context.info.maxStorageBufferRange) - 256
        let chunkRows = min(max(1, limit / rowBytes), context.info.maxWorkGroupCount[0] * f)
        let kinds: [BindingKind] = [.storageBuffer, texel ? .uniformTexels : .storageBuffer, .storageBuffer, .storageBuffer]
        let p = try pipeline("linear_block.comp", kinds: kinds, push: BlockLinearPush.self, local: (f * sg, 1), w: dtype, b: bdt,
                             defines: ["READ_TEXEL": texel ? "1" : "0"], fixedSubgroup: true)
        var o0 = 0
        while o0 < outF {
            let n = min(chunkRows, outF - o0)
            let (wb, wBase) = try blockWindow(buffers, weight.name, firstRow: weight.offset / inF + o0, rows: n, rowBytes: rowBytes, texel: texel)
            let push = LinearPush(inF: u32(inF), xStride: u32(try buffers.width(x.name)), xCol: u32(x.col), oStride: u32(try buffers.width(out.name)),
                                  oCol: u32(out.col), wBase: wBase, bBase: bbase, hasBias: bias == nil ? 0 : 1,
                                  accumulate: accumulate ? 1 : 0, o0: u32(o0), ocount: u32(n), rows: u32(rows))
            try cb.dispatch(p, [Binding(try buffers.act(x.name)), wb, bb, Binding(try buffers.act(out.name))], push: BlockLinearPush(push),
                            groups: (Self.groups(n, f), Self.groups(rows, Self.blockLinearRows), 1))
            o0 += n
        }
    }

    /// linear_block.comp's INTERLEAVED kernel (texel path, a block-format weight with an
    /// interleaved copy, see `interleavedCopy`): W's interleaved copy in chunks of
    /// whole groups of `block` features that each fit one texel view, x in one view; a
    /// workgroup (one subgroup) per group and tile of rows (1 for decode, `blockLinearRows` for
    /// prefill), `block / subgroupSize` features per invocation. With `silu` (a stacked gate/up
    /// product, `dim` each) the gated SiLU is fused in: H = silu(gate) * up, both halves stored.
    /// Returns false before recording anything when the weight has no interleaved copy, x or
    /// one group does not fit a view, or the SiLU's shape does not (the caller takes the
    /// row-major kernel, or the two ops apart).
    func encodeInterleavedBlockLinear(_ op: Op, rows: Int, silu: (h: ActRef, dim: Int)? = nil,
                                      into cb: RecordedCommands, buffers: DeviceBuffers) throws -> Bool {
        guard case let .linear(x, weight, biasRef, out, inF, outF, accumulate) = op else { return false }
        let dtype = try buffers.weights.info(weight.name).dtype
        guard dtype.isBlock, let copy = try interleavedCopy(weight, inF: inF, weights: buffers.weights),
              case let .interleaved(_, _, block, first) = copy else { return false }
        let bias = try biasWindow(biasRef, count: outF, buffers: buffers) ?? (buffers.dummyBinding, 0, .f32)
        let slack = 2 * max(Int(context.info.minTexelBufferOffsetAlignment), 16)
        guard let groupBytes = dtype.weightFormat?.interleavedGroupBytes(rows: block, inF: inF) else { return false }
        let xStride = try buffers.width(x.name), oStride = try buffers.width(out.name)
        guard groupBytes + slack <= maxTexelBytes,
              let (xb, xShift) = texelWindow(try buffers.act(x.name), byteStart: x.col * 4, byteCount: ((rows - 1) * xStride + inF) * 4) else { return false }
        let xCol = xShift / 4
        let aligned = xCol % 4 == 0 && (rows == 1 || xStride % 4 == 0)
        let slice = try buffers.interleavedWeight(weight.name, inFeatures: inF, block: block, firstRow: first).slice
        let row0 = weight.offset / inF - first            // a multiple of `block`
        let lanes = context.info.subgroupSize        // (interleavedCopy: divides block)
        let tileRows = rows == 1 ? 1 : Self.blockLinearRows
        let kinds: [BindingKind] = [.uniformTexels, .uniformTexels, .storageBuffer, .storageBuffer]
        let constants = [u32(block), aligned ? 1 : 0, u32(tileRows), u32(block / lanes), u32(lanes)]
        let chunkFeatures = min((maxTexelBytes - slack) / groupBytes, context.info.maxWorkGroupCount[0]) * block
        if let (h, dim) = silu {
            guard !accumulate, outF == 2 * dim, dim % block == 0, chunkFeatures >= outF,
                  let (wb, wShift) = texelWindow(slice, byteStart: row0 / block * groupBytes, byteCount: outF / block * groupBytes) else { return false }
            let p = try pipeline("linear_block.comp", kinds: kinds + [.storageBuffer], push: BlockLinearSiluPush.self, local: (lanes, 1), w: dtype, b: bias.2,
                                 defines: ["READ_TEXEL": "1", "INTERLEAVED": "1", "SILU": "1"], constants: constants, fixedSubgroup: true)
            let push = LinearPush(inF: u32(inF), xStride: u32(xStride), xCol: u32(xCol), oStride: u32(oStride), oCol: u32(out.col), wBase: u32(wShift / 16),
                                  bBase: bias.1, hasBias: biasRef == nil ? 0 : 1, accumulate: 0, o0: 0, ocount: u32(outF), rows: u32(rows))
            let tail = SiluTail(siluDim: u32(dim), hStride: u32(try buffers.width(h.name)), hCol: u32(h.col))
            try cb.dispatch(p, [xb, wb, bias.0, Binding(try buffers.act(out.name)), Binding(try buffers.act(h.name))],
                            push: BlockLinearSiluPush(base: push, silu: tail), groups: (dim / block, Self.groups(rows, tileRows), 1))
            return true
        }
        let p = try pipeline("linear_block.comp", kinds: kinds, push: BlockLinearPush.self, local: (lanes, 1), w: dtype, b: bias.2,
                             defines: ["READ_TEXEL": "1", "INTERLEAVED": "1"], constants: constants, fixedSubgroup: true)
        var o0 = 0
        while o0 < outF {
            let n = min(chunkFeatures, outF - o0)
            guard let (wb, wShift) = texelWindow(slice, byteStart: (row0 + o0) / block * groupBytes, byteCount: Self.groups(n, block) * groupBytes) else {
                throw VulkanError("linear(\(weight.name))", message: "rows \(o0)..<\(o0 + n) do not fit one texel view of \(maxTexelBytes) bytes")
            }
            let push = LinearPush(inF: u32(inF), xStride: u32(xStride), xCol: u32(xCol), oStride: u32(oStride), oCol: u32(out.col), wBase: u32(wShift / 16),
                                  bBase: bias.1, hasBias: biasRef == nil ? 0 : 1, accumulate: accumulate ? 1 : 0, o0: u32(o0), ocount: u32(n), rows: u32(rows))
            try cb.dispatch(p, [xb, wb, bias.0, Binding(try buffers.act(out.name))], push: BlockLinearPush(push),
                            groups: (Self.groups(n, block), Self.groups(rows, tileRows), 1))
            o0 += n
        }
        return true
    }

    /// `.embed` over a block-format table: embedding.comp's block branch, rows in chunks that
    /// each fit one storage binding.
    func encodeBlockEmbedding(_ op: Op, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .embed(table, vocab, dim, out, scale) = op else { return }
        let dtype = try buffers.weights.info(table.name).dtype
        let rowBytes = try blockRowBytes(table.name, dtype: dtype, inF: dim)
        guard table.offset % dim == 0 else {
            throw LoopError.invalidArgument("\(table.name) (\(dtype.rawValue)) is read from element \(table.offset), not a row start")
        }
        let maxRows = max(1, (Int(context.info.maxStorageBufferRange) - 256) / rowBytes)
        let p = try pipeline("embedding.comp", storage: 3, push: EmbeddingPush.self, w: dtype)
        var r0 = 0
        while r0 < vocab {
            let n = min(maxRows, vocab - r0)
            let (wb, base) = try blockWindow(buffers, table.name, firstRow: table.offset / dim + r0, rows: n, rowBytes: rowBytes, texel: false)
            try cb.dispatch(p, [wb, Binding(try buffers.act(out.name)), Binding(buffers.step)],
                            push: EmbeddingPush(dim: u32(dim), outStride: u32(try buffers.width(out.name)), outCol: u32(out.col), wBase: base,
                                                row0: u32(r0), nrows: u32(n), scale: scale),
                            groups: (Self.groups(dim, 64), rows, 1))
            r0 += n
        }
    }
}
