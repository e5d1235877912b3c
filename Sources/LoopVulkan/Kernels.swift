import Foundation
import LoopCore

/// A device copy of a weight: as stored, or in the texel path's interleaved layout (see
/// `DeviceBuffers.interleavedWeight`).
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
    /// `firstRow` on, padded to whole blocks (see DeviceBuffers.interleavedWeight).
    func bytes(_ weights: WeightStore) throws -> Int {
        let info = try weights.info(name)
        let count = info.shape.reduce(1, *), es = info.dtype.byteSize
        switch self {
        case .plain:
            guard let bytes = info.dtype.weightFormat?.bytes(elements: count) else { throw LoopError.wrongDType(tensor: name, found: info.dtype.rawValue) }
            return bytes
        case let .interleaved(_, inF, block, first):
            let rows = count / max(inF, 1) - first
            if let f = info.dtype.weightFormat, f.isBlock {
                return (rows + block - 1) / block * (f.interleavedGroupBytes(rows: block, inF: inF) ?? 0)
            }
            return (rows + block - 1) / block * block * inF * es
        }
    }
}

/// Turns each plan op into dispatches of its shader (one shader file per op kind): chooses the
/// pipeline variant (weight dtype, workgroup size) from the configuration, binds buffers, fills
/// the shader's typed push-constant block, and records a barrier only where an earlier
/// dispatch's write is read (or overwritten). The encoders live in `Encoders/`, one file per
/// op family: Linear, Attention, Norms, RopeKV (rope and the KV cache writes and copies),
/// Elementwise, ExitDecide.
final class Kernels {
    let context: VulkanContext
    private var pipelines: [String: ComputePipeline] = [:]
    /// Threads per workgroup for row reductions with shared memory (norms, matvec, attention, argmax, softmax).
    let reduceThreads = 64
    /// Every kernel choice (read path, reductions, tile shapes, splits, fusion): see KernelConfig.
    var config: KernelConfig

    var readPath: ReadPath { config.read }
    /// Texel path: bytes one texel view may span (the device's maxTexelBufferElements x 16
    /// unless the configuration lowers it).
    var maxTexelBytes: Int { config.texelViewBytes ?? Int(min(context.info.maxTexelBufferElements, UInt64(Int.max / 32))) * 16 }
    var texelLanes: Int { config.lanes }
    var texelRows: Int { config.texelRows }
    var texelInterleave: Int { config.interleave }
    /// Texel GEMV: a shared-memory step for workgroups that span several subgroups.
    var texelWorkgroupReduce: Bool { config.reduce == .shared }
    var subgroupReduce: Bool { config.reduce == .subgroup }

    init(context: VulkanContext, config: KernelConfig) {
        self.context = context
        self.config = config
    }

    /// The pipeline for a shader variant: binding kinds, extra defines and specialization
    /// constants (ids 2, 3, ...) are part of the key; the push-constant size is `push`'s.
    func pipeline<P: PushBlock>(_ shader: String, kinds: [BindingKind], push: P.Type, local: (Int, Int) = (64, 1), w: DType = .f32, b: DType = .f32,
                                defines extra: [String: String] = [:], constants: [UInt32] = [], fixedSubgroup: Bool = false) throws -> ComputePipeline {
        precondition(P.shader == shader, "\(P.self) is \(P.shader)'s push block, not \(shader)'s")
        let kindKey = kinds.map { $0 == .storageBuffer ? "s" : "t" }.joined()
        let extraKey = extra.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        let key = "\(shader)|\(w.rawValue)|\(b.rawValue)|\(local.0)x\(local.1)|\(kindKey)|\(extraKey)|\(constants)|\(P.self)\(fixedSubgroup ? "|sg" : "")"
        if let p = pipelines[key] { return p }
        let defines = ["W_DTYPE": Self.code(w), "B_DTYPE": Self.code(b)]
            .merging(w.weightFormat?.shaderDefines ?? [:]) { $1 }.merging(extra) { $1 }
        // fixedSubgroup (implied by SUBGROUP_ONLY: one subgroup per workgroup): the kernel assumes subgroups of context.info.subgroupSize (its workgroup
        // size or lane layout is derived from it): required at pipeline creation where the
        // device supports VK_EXT_subgroup_size_control.
        let p = try context.makePipeline(shader, defines: defines, kinds: kinds, pushBytes: P.wordCount * 4, localSize: local, constants: constants,
                                         subgroupSize: fixedSubgroup || extra["SUBGROUP_ONLY"] == "1" ? context.info.subgroupSize : nil)
        pipelines[key] = p
        return p
    }

    /// A pipeline whose bindings are all storage buffers.
    func pipeline<P: PushBlock>(_ shader: String, storage bindings: Int, push: P.Type, local: (Int, Int) = (64, 1), w: DType = .f32, b: DType = .f32,
                                defines: [String: String] = [:], fixedSubgroup: Bool = false) throws -> ComputePipeline {
        try pipeline(shader, kinds: Array(repeating: .storageBuffer, count: bindings), push: push, local: local, w: w, b: b, defines: defines,
                     fixedSubgroup: fixedSubgroup)
    }

    /// The keys of the pipelines made so far (shader, dtypes, workgroup, binding kinds, defines,
    /// constants): tests check which variant a shape took.
    var pipelineKeys: [String] { Array(pipelines.keys) }

    /// Workgroup size and defines of a row-reduction shader (see `KernelConfig.reduce`).
    var reduceShape: (local: (Int, Int), defines: [String: String]) {
        subgroupReduce ? ((context.info.subgroupSize, 1), ["SUBGROUP_ONLY": "1"]) : ((reduceThreads, 1), [:])
    }

    /// The shaders' W_DTYPE / B_DTYPE codes (see WeightFormat; Shaders/weight_formats.glsl).
    static func code(_ d: DType) -> String { String(d.weightFormat?.shaderCode ?? 0) }

    static func groups(_ n: Int, _ size: Int) -> Int { (n + size - 1) / size }

    /// A binding that covers elements [start, start + count) of a weight, aligned down to the
    /// device's offset alignment; returns the element index of `start` inside the binding.
    func weightWindow(_ buffers: DeviceBuffers, _ name: String, start: Int, count: Int) throws -> (Binding, UInt32, DType) {
        let w = try buffers.weight(name)
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
    /// row-major copy: rows must be whole texels (a block format: whole blocks whose bytes
    /// less their side bytes are whole texels, see WeightFormat.interleavedMainBytes) and the
    /// window must start on a whole row. A window that starts mid-block gets its own copy
    /// whose blocks start at that row.
    func interleavedCopy(_ weight: WeightRef, inF: Int, weights: WeightStore) throws -> WeightCopy? {
        guard readPath == .texel, texelInterleave > 0 else { return nil }
        let info = try weights.info(weight.name)
        let count = info.shape.reduce(1, *)
        guard inF > 0, count % inF == 0, weight.offset % inF == 0 else { return nil }
        if let f = info.dtype.weightFormat, f.isBlock {
            // (linear_block.comp's kernel over it: one subgroup per group, sharing x by shuffles.)
            let sg = context.info.subgroupSize
            guard f.interleavedGroupBytes(rows: texelInterleave, inF: inF) != nil, context.info.traits.subgroupShuffle,
                  sg <= texelInterleave, texelInterleave % sg == 0 else { return nil }
        } else if (inF * info.dtype.byteSize) % 16 != 0 {
            return nil
        }
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

    /// What an op reads and writes, for hazard tracking: activations, KV slots by part.
    static func hazards(_ op: Op) -> (reads: [BufferHandle], writes: [BufferHandle]) {
        var reads = op.inputs.map { BufferHandle.act($0.name) }
        var writes = op.output.map { [BufferHandle.act($0.name)] } ?? []
        let both = { (slot: Int) in [BufferHandle.kv(slot: slot, part: .k), .kv(slot: slot, part: .v)] }
        switch op {
        case .kvWrite(_, let slot, let part): writes.append(.kv(slot: slot, part: part))
        case .attention(_, let slot, _, _, _, _, _): reads += both(slot)
        case .kvCopy(let from, let to): reads += both(from); writes += both(to)
        default: break
        }
        return (reads, writes)
    }

    /// What a step reads and writes: its ops' buffers, and the scratch its kernels may use (the
    /// fused head + argmax's, a decode row's split attention's), which they both write and read.
    static func hazards(_ step: FusedOps, rows: Int) -> (reads: [BufferHandle], writes: [BufferHandle]) {
        var reads: [BufferHandle] = [], writes: [BufferHandle] = []
        for op in step.ops { let h = hazards(op); reads += h.reads; writes += h.writes }
        var scratch: [BufferHandle] = []
        switch step {
        case .headArgmax: scratch = [.scratch(.argmax)]
        case .op(.attention) where rows == 1: scratch = [.scratch(.attentionSplit)]
        case .op(.argmax): scratch = [.scratch(.argmaxSplit)]
        default: break
        }
        return (reads + scratch, writes + scratch)
    }

    /// Records a step (see Fusion.swift): a barrier first when it reads or overwrites what an
    /// earlier dispatch since the last barrier wrote (or overwrites what one read).
    func encode(_ step: FusedOps, rows: Int, batch: Bool = false, into cb: RecordedCommands, buffers: DeviceBuffers, tracker: inout HazardTracker) throws {
        let (reads, writes) = Self.hazards(step, rows: rows)
        if tracker.needsBarrier(reads: reads, writes: writes) { cb.barrier() }
        cb.label = step.label
        switch step {
        case .op(let op):
            try encode(op, rows: rows, batch: batch, into: cb, buffers: buffers)
        case let .normThenNorm(first, second):
            if try !encodeNormThenNorm(first, second, rows: rows, into: cb, buffers: buffers) {
                // Weights of different dtypes: two dispatches with a barrier between them.
                try encode(first, rows: rows, into: cb, buffers: buffers)
                cb.barrier()
                try encode(second, rows: rows, into: cb, buffers: buffers)
            }
        case let .gateDecide(gate, decide):
            try encodeExitDecide(decide, gate: gate, rows: rows, into: cb, buffers: buffers)
        case let .ropeKV(rope, k, v):
            guard case let .kvWrite(_, slot, _) = k, case let .kvWrite(srcV, _, _) = v else { return }
            try encodeRope(rope, kv: (slot, srcV), rows: rows, into: cb, buffers: buffers)
        case let .headArgmax(linear, argmax):
            guard case let .argmax(_, amOut, _) = argmax else { return }
            try encodeLinear(linear, then: argmax, epilogue: rows == 1 ? .argmax(amOut) : nil, rows: rows, into: cb, buffers: buffers)
        case let .gateUpSilu(linear, silu):
            guard case let .siluMul(_, _, h, dim) = silu else { return }
            try encodeLinear(linear, then: silu, epilogue: .silu(h: h, dim: dim), rows: rows, into: cb, buffers: buffers)
        case let .kvCopies(ops):
            try encodeKVCopies(ops, rows: rows, into: cb, buffers: buffers)
        case let .kvPair(a, b):
            guard case let .kvWrite(srcA, slot, partA) = a, case let .kvWrite(srcB, _, partB) = b else { return }
            try encodeKVWrite(srcA, slot: slot, part: partA, second: (srcB, partB), rows: rows, into: cb, buffers: buffers)
        }
    }

    /// Records one plan op's dispatches (no barrier: see `encode(_ step:)`).
    /// `batch`: the rows are separate sequences (`SectionKey.batch`).
    func encode(_ op: Op, rows: Int, batch: Bool = false, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        switch op {
        case .embed: try encodeEmbedding(op, rows: rows, into: cb, buffers: buffers)
        case .rmsNorm: try encodeRMSNorm(op, rows: rows, into: cb, buffers: buffers)
        case .layerNorm: try encodeLayerNorm(op, rows: rows, into: cb, buffers: buffers)
        case .linear: try encodeLinear(op, rows: rows, into: cb, buffers: buffers)
        case .rope: try encodeRope(op, kv: nil, rows: rows, into: cb, buffers: buffers)
        case let .kvWrite(src, slot, part): try encodeKVWrite(src, slot: slot, part: part, second: nil, rows: rows, into: cb, buffers: buffers)
        case .attention: try encodeAttention(op, rows: rows, batch: batch, into: cb, buffers: buffers)
        case .siluMul: try encodeSiluMul(op, rows: rows, into: cb, buffers: buffers)
        case .unary: try encodeUnary(op, rows: rows, into: cb, buffers: buffers)
        case .binary: try encodeBinary(op, rows: rows, into: cb, buffers: buffers)
        case .copy: try encodeCopy(op, rows: rows, into: cb, buffers: buffers)
        case .kvCopy: try encodeKVCopies([op], rows: rows, into: cb, buffers: buffers)
        case .argmax: try encodeArgmax(op, rows: rows, into: cb, buffers: buffers)
        case .softmax: try encodeSoftmax(op, rows: rows, into: cb, buffers: buffers)
        case .exitDecide: try encodeExitDecide(op, gate: nil, rows: rows, into: cb, buffers: buffers)
        }
    }
}
