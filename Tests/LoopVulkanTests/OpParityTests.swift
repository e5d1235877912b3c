import Foundation
import LoopCore
@testable import LoopVulkan
import Testing

/// GPU (Vulkan, validation on) vs the CPU reference, one op at a time, random inputs from a
/// fixed seed, odd sizes included. Thresholds: NMSE <= 1e-7 elementwise / norm / RoPE,
/// <= 5e-4 products and attention; no NaN/Inf.
@Suite(.serialized, .enabled(if: GPU.available))
struct OpParityTests {
    /// Runs `ops` on both backends after writing `inputs` (and KV `prefill` ops), then compares
    /// the activations named in `outputs`.
    func check(_ name: String, acts: [String: Int], kvSlots: Int = 0, kvWidth: Int = 1, maxContext: Int = 64,
               rows: Int, pos0: Int = 0, tokens: [Int32]? = nil, weights: WeightStore, inputs: [String: [Float]],
               setup: [Op] = [], setupRows: Int = 0, ops: [Op], outputs: [String], threshold: Double,
               readPath: ReadPath? = nil, kernels spec: String = "", configure: (VulkanBackend) -> Void = { _ in },
               sourceLocation: SourceLocation = #_sourceLocation) throws -> VulkanBackend {
        let maxRows = max(rows, setupRows)
        let layout = BackendLayout(activations: acts, kvSlots: kvSlots, kvWidth: kvWidth, maxContext: max(maxContext, pos0 + maxRows), maxRows: maxRows)
        // `spec` (e.g. kv=f32) reaches the CPU reference too: its KV cache rounds as the device's does.
        let cpu = try spec.isEmpty ? CPUBackend(layout: layout, weights: weights) : CPUBackend(layout: layout, weights: weights, kernels: GPU.kernels(read: readPath, spec))
        let gpu = try VulkanBackend(context: GPU.context!, layout: layout, weights: weights, kernels: GPU.kernels(read: readPath, spec))
        if let readPath { #expect(gpu.readPath == readPath, sourceLocation: sourceLocation) }
        configure(gpu)
        for backend in [cpu as PlanBackend, gpu] {
            for (k, v) in inputs { try backend.write(k, values: v) }
            if !setup.isEmpty {
                try backend.run(setup, section: SectionKey("setup", rows: setupRows), tokens: [Int32](repeating: 0, count: setupRows), pos0: 0)
            }
            try backend.run(ops, section: SectionKey(name, rows: rows), tokens: tokens ?? [Int32](repeating: 0, count: rows), pos0: pos0)
        }
        for out in outputs {
            let c = try cpu.read(out, rows: rows)
            let g = try gpu.read(out, rows: rows)
            #expect(g.allSatisfy { $0.isFinite }, "\(name): GPU produced NaN/Inf in \(out)", sourceLocation: sourceLocation)
            #expect(c.allSatisfy { $0.isFinite }, "\(name): CPU produced NaN/Inf in \(out)", sourceLocation: sourceLocation)
            let e = nmse(g, c)
            #expect(e <= threshold, "\(name): \(out) NMSE \(e) > \(threshold)", sourceLocation: sourceLocation)
        }
        GPU.expectNoValidationMessages(sourceLocation: sourceLocation)
        return gpu
    }

    static let dtypes: [DType] = [.f32, .f16, .bf16]
    /// Both row-reduction variants: workgroup (shared memory + barrier) and one subgroup only.
    static let reductions: [Bool] = [false, true]
    static func reduce(_ subgroup: Bool) -> (VulkanBackend) -> Void { { $0.config.reduce = subgroup ? .subgroup : .shared } }

    @Test(arguments: dtypes)
    func embedding(dtype: DType) throws {
        var rng = SeededRandom(seed: 1)
        let vocab = 37, dim = 45
        let w = WeightStore(checkpoint: nil)
        addWeight(w, "emb", dtype, [vocab, dim], rng.floats(vocab * dim))
        let tokens: [Int32] = [0, 5, 36, 5, 17, 2, 9]
        _ = try check("embedding-\(dtype)", acts: ["out": dim + 3], rows: tokens.count, tokens: tokens, weights: w, inputs: [:],
                  ops: [.embed(table: WeightRef("emb"), vocab: vocab, dim: dim, out: ActRef("out", col: 2), scale: 1.7)],
                  outputs: ["out"], threshold: 1e-7)
    }

    @Test(arguments: dtypes, reductions)
    func rmsNormModes(dtype: DType, subgroup: Bool) throws {
        var rng = SeededRandom(seed: 2)
        // 131: the scalar shader; 132 (a multiple of 4): the VEC4 one.
        for dim in [131, 132] {
        let rows = 5
        let w = WeightStore(checkpoint: nil)
        addWeight(w, "g", dtype, [dim], rng.floats(dim, 2))
        let inputs = ["x": rng.floats(rows * dim, 3), "a": rng.floats(rows * dim), "o": rng.floats(rows * dim)]
        for mode in [NormMode.plain, .accumulate, .normalizeSum] {
            _ = try check("rmsnorm-\(dim)-\(dtype)-\(mode)-\(subgroup)", acts: ["x": dim, "a": dim, "o": dim], rows: rows, weights: w, inputs: inputs,
                      ops: [.rmsNorm(x: ActRef("x"), add: mode == .normalizeSum ? ActRef("a") : nil, weight: WeightRef("g"),
                                     out: ActRef("o"), dim: dim, groups: 1, eps: 1e-6, mode: mode)],
                      outputs: ["o"], threshold: 1e-7, configure: Self.reduce(subgroup))
        }
        }
    }

    @Test(arguments: reductions)
    func rmsNormPerHeadGroupsNoWeight(subgroup: Bool) throws {
        var rng = SeededRandom(seed: 3)
        let heads = 3, hd = 16, rows = 4
        let w = WeightStore(checkpoint: nil)
        addWeight(w, "qn", .bf16, [hd], rng.floats(hd))
        _ = try check("rmsnorm-groups", acts: ["q": heads * hd, "o": heads * hd], rows: rows, weights: w,
                  inputs: ["q": rng.floats(rows * heads * hd, 2)],
                  ops: [.rmsNorm(x: ActRef("q"), add: nil, weight: WeightRef("qn"), out: ActRef("q"), dim: hd, groups: heads, eps: 1e-6, mode: .plain),
                        .rmsNorm(x: ActRef("q"), add: nil, weight: nil, out: ActRef("o"), dim: hd, groups: heads, eps: 1e-5, mode: .plain)],
                  outputs: ["q", "o"], threshold: 1e-7, configure: Self.reduce(subgroup))
    }

    @Test(arguments: dtypes, reductions)
    func layerNorm(dtype: DType, subgroup: Bool) throws {
        var rng = SeededRandom(seed: 4)
        let dim = 77, rows = 3
        let w = WeightStore(checkpoint: nil)
        addWeight(w, "w", dtype, [dim], rng.floats(dim))
        addWeight(w, "b", .f32, [dim], rng.floats(dim))
        _ = try check("layernorm-\(dtype)-\(subgroup)", acts: ["x": dim, "o": dim], rows: rows, weights: w, inputs: ["x": rng.floats(rows * dim, 4)],
                  ops: [.layerNorm(x: ActRef("x"), weight: WeightRef("w"), bias: WeightRef("b"), out: ActRef("o"), dim: dim, eps: 1e-5)],
                  outputs: ["o"], threshold: 1e-7, configure: Self.reduce(subgroup))
    }

    /// Matrix-vector (1 row) and matrix-matrix (several rows) products, odd sizes, bias,
    /// accumulate, a weight window at an element offset (Huginn's fused Wqkv rows), on both
    /// read paths of the decode GEMV. Row lengths and offsets that are not whole 16-byte texels,
    /// and x at unaligned columns, take the texel path's scalar branch; the rest its vector one.
    @Test(arguments: dtypes, GPU.readPaths)
    func linear(dtype: DType, path: ReadPath) throws {
        var rng = SeededRandom(seed: 5)
        let shapes = [(1, 96, 33, 1), (1, 96, 33, 4), (1, 257, 130, 1), (1, 257, 130, 0), (1, 1024, 19, 0), (1, 1, 5, 0),
                      (1, 45, 67, 3), (1, 128, 283, 8), (1, 16, 3, 0), (7, 45, 67, 1), (70, 131, 65, 1), (3, 1, 5, 1),
                      (64, 1024, 96, 0), (9, 256, 40, 0), (2, 96, 17, 4)]
        for (rows, inF, outF, xCol) in shapes {
            let w = WeightStore(checkpoint: nil)
            addWeight(w, "W", dtype, [outF * 2, inF], rng.floats(outF * 2 * inF, 0.2))
            addWeight(w, "b", dtype, [outF + 3], rng.floats(outF + 3))
            let inputs = ["x": rng.floats(rows * (inF + xCol)), "y": rng.floats(rows * (outF + 2))]
            for (acc, bias, off) in [(false, false, 0), (false, true, outF * inF), (true, true, 3 * inF), (true, false, min(3 * inF + 4, outF * inF)), (false, true, 5)] {
                _ = try check("linear-\(dtype)-\(path)-\(rows)x\(inF)x\(outF)-x\(xCol)-\(acc)-\(bias)-\(off)", acts: ["x": inF + xCol, "y": outF + 2],
                              rows: rows, weights: w, inputs: inputs,
                              ops: [.linear(x: ActRef("x", col: xCol), weight: WeightRef("W", offset: off), bias: bias ? WeightRef("b", offset: off % 3) : nil,
                                            out: ActRef("y", col: off % 2), inFeatures: inF, outFeatures: outF, accumulate: acc)],
                              outputs: ["y"], threshold: 5e-4, readPath: path)
            }
        }
    }

    /// A decode GEMV with more output features than one dispatch may launch workgroups
    /// (maxComputeWorkGroupCount[0], 65,535 on lavapipe): the storage path's workgroup per
    /// feature is folded into several dispatches; the texel path's blocks fit anyway. (Qwen3's
    /// head has 151,936 rows.)
    @Test(arguments: GPU.readPaths)
    func linearOverTheWorkgroupCountLimit(path: ReadPath) throws {
        var rng = SeededRandom(seed: 40)
        let inF = 16, outF = GPU.context!.info.maxWorkGroupCount[0] + 4477
        let w = WeightStore(checkpoint: nil)
        addWeight(w, "W", .bf16, [outF, inF], rng.floats(outF * inF, 0.2))
        _ = try check("linear-\(path)-\(outF)-features", acts: ["x": inF, "y": outF], rows: 1, weights: w,
                      inputs: ["x": rng.floats(inF), "y": rng.floats(outF)],
                      ops: [.linear(x: ActRef("x"), weight: WeightRef("W"), bias: nil, out: ActRef("y"), inFeatures: inF, outFeatures: outF, accumulate: false)],
                      outputs: ["y"], threshold: 5e-4, readPath: path)
    }

    /// The texel path with views limited to a few rows: W splits into many views (dispatches),
    /// rows and x that do not fit one view fall back to the storage path. Interleaved blocks of
    /// 2 rows (so a block fits the small views) and row-major rows (interleave 0).
    @Test(.enabled(if: GPU.hasTexelPath), arguments: dtypes, [512, 1024, 4096])
    func linearSplitsOverTexelViews(dtype: DType, viewBytes: Int) throws {
        var rng = SeededRandom(seed: 14)
        for interleave in [0, 2] {
            for (inF, outF, xCol) in [(96, 37, 0), (257, 30, 1), (128, 45, 4), (200, 9, 0)] {
                let w = WeightStore(checkpoint: nil)
                addWeight(w, "W", dtype, [outF + 1, inF], rng.floats((outF + 1) * inF, 0.2))
                addWeight(w, "b", .f32, [outF], rng.floats(outF))
                for off in [0, inF, 3] {
                    let name = "linear-split-\(dtype)-\(viewBytes)-\(interleave)-\(inF)x\(outF)-\(off)"
                    let gpu = try check(name, acts: ["x": inF + xCol, "y": outF], rows: 1, weights: w, inputs: ["x": rng.floats(inF + xCol), "y": rng.floats(outF)],
                                        ops: [.linear(x: ActRef("x", col: xCol), weight: WeightRef("W", offset: off), bias: WeightRef("b"),
                                                      out: ActRef("y"), inFeatures: inF, outFeatures: outF, accumulate: true)],
                                        outputs: ["y"], threshold: 5e-4, readPath: .texel, configure: {
                                            $0.config.texelViewBytes = viewBytes
                                            $0.config.interleave = interleave
                                        })
                    // Rows per view: whole interleaved blocks where the rows are whole texels
                    // and the window starts on a whole row, else whole rows.
                    let rowBytes = inF * dtype.byteSize
                    let unit = interleave > 0 && rowBytes % 16 == 0 && off % inF == 0 && interleave * rowBytes + 32 <= viewBytes ? interleave : 1
                    let rowsPerView = (viewBytes - 32) / (unit * rowBytes) * unit
                    if rowsPerView >= 1 && (inF + xCol) * 4 + 32 <= viewBytes {
                        #expect(gpu.recordedCounts(SectionKey(name, rows: 1))?.dispatches == (outF + rowsPerView - 1) / rowsPerView, "\(name)")
                    }
                }
            }
        }
    }

    /// Every texel-path block shape the kernel may run with: the interleaved layout's block
    /// (rows per workgroup; 0 = row-major weights) with one or two subgroups of invocations,
    /// and for row-major weights the features per workgroup (the specialization constant ROWS)
    /// with and without the shared-memory reduction that GPUs compile in.
    @Test(.enabled(if: GPU.hasTexelPath), arguments: [(32, 1, false, 32), (8, 1, false, 8), (16, 2, true, 16), (5, 1, false, 3),
                      (1, 1, false, 0), (7, 1, false, 0), (32, 1, false, 0), (8, 2, true, 0), (5, 1, true, 0)])
    func linearTexelBlockShapes(rowsPerGroup: Int, subgroups: Int, reduce: Bool, interleave: Int) throws {
        var rng = SeededRandom(seed: 15)
        let lanes = GPU.context!.info.subgroupSize * subgroups
        for dtype in [DType.bf16, .f16, .f32] {
            for (inF, outF, xCol, off) in [(256, 70, 0, 0), (45, 33, 1, 0), (64, 41, 2, 64 * 5), (32, 7, 0, 32)] {
                let w = WeightStore(checkpoint: nil)
                addWeight(w, "W", dtype, [outF + off / inF, inF], rng.floats((outF + off / inF) * inF, 0.2))
                addWeight(w, "b", dtype, [outF], rng.floats(outF))
                _ = try check("linear-shape-\(rowsPerGroup)-\(lanes)-\(reduce)-\(interleave)-\(dtype)-\(inF)x\(outF)-\(off)", acts: ["x": inF + xCol, "y": outF], rows: 1, weights: w,
                              inputs: ["x": rng.floats(inF + xCol), "y": rng.floats(outF)],
                              ops: [.linear(x: ActRef("x", col: xCol), weight: WeightRef("W", offset: off), bias: WeightRef("b"),
                                            out: ActRef("y"), inFeatures: inF, outFeatures: outF, accumulate: true)],
                              outputs: ["y"], threshold: 5e-4, readPath: .texel, configure: {
                                  $0.config.texelRows = rowsPerGroup
                                  $0.config.lanes = lanes
                                  $0.config.reduce = (reduce) ? .shared : .subgroup
                                  $0.config.interleave = interleave
                              })
            }
        }
    }

    /// Texel-path prefill block shapes (matmul.comp READ_TEXEL): features x rows per workgroup,
    /// edges in both directions, the scalar branch, two subgroups with the shared-memory sum,
    /// over row-major (interleave 0) and interleaved weights (blocks of 32, 8 and 3 rows). With
    /// interleave 32 the aligned shapes take the LANE_FEATURES kernel (including partial
    /// 128-feature and 8-row workgroups), the unaligned ones the subgroup kernel.
    @Test(.enabled(if: GPU.hasTexelPath), arguments: [(1, 1, 1, 32), (3, 5, 1, 3), (8, 8, 1, 32), (8, 8, 1, 0), (16, 4, 1, 8), (4, 16, 2, 32), (3, 5, 1, 0)])
    func linearTexelMatmulShapes(features: Int, rowsPerGroup: Int, subgroups: Int, interleave: Int) throws {
        var rng = SeededRandom(seed: 16)
        let lanes = GPU.context!.info.subgroupSize * subgroups
        for dtype in [DType.bf16, .f16, .f32] {
            for (rows, inF, outF, xCol) in [(13, 256, 70, 0), (6, 45, 33, 1), (17, 64, 9, 0), (20, 128, 300, 0), (3, 32, 140, 4)] {
                let w = WeightStore(checkpoint: nil)
                addWeight(w, "W", dtype, [outF, inF], rng.floats(outF * inF, 0.2))
                addWeight(w, "b", dtype, [outF], rng.floats(outF))
                _ = try check("linear-mm-\(features)x\(rowsPerGroup)-\(lanes)-\(interleave)-\(dtype)-\(rows)x\(inF)x\(outF)", acts: ["x": inF + xCol, "y": outF],
                              rows: rows, weights: w, inputs: ["x": rng.floats(rows * (inF + xCol)), "y": rng.floats(rows * outF)],
                              ops: [.linear(x: ActRef("x", col: xCol), weight: WeightRef("W"), bias: WeightRef("b"),
                                            out: ActRef("y"), inFeatures: inF, outFeatures: outF, accumulate: true)],
                              outputs: ["y"], threshold: 5e-4, readPath: .texel, configure: {
                                  $0.config.matmulTile = (features, rowsPerGroup)
                                  $0.config.lanes = lanes
                                  $0.config.reduce = (subgroups > 1) ? .shared : .subgroup
                                  $0.config.interleave = interleave
                              })
            }
        }
    }

    static func ropeTable(positions: Int, headDim: Int, theta: Double) -> [Float] {
        var t = [Float](repeating: 0, count: positions * headDim)
        for p in 0..<positions {
            for i in 0..<(headDim / 2) {
                let inv = pow(theta, -Double(2 * i) / Double(headDim))
                t[(p * headDim / 2 + i) * 2] = Float(cos(Double(p) * inv))
                t[(p * headDim / 2 + i) * 2 + 1] = Float(sin(Double(p) * inv))
            }
        }
        return t
    }

    /// Rotate-half rope over whole vec4s takes rope.comp's VEC4 kernel (checked in the
    /// pipelines recorded); odd head sizes, an unaligned column and the interleaved layout the
    /// scalar one.
    @Test(arguments: [RopeLayout.rotateHalf, .interleaved])
    func rope(layout: RopeLayout) throws {
        var rng = SeededRandom(seed: 6)
        for (heads, hd, col) in [(3, 16, 4), (5, 96, 4), (2, 10, 4), (3, 16, 1)] {
            let rows = 6, positions = 300
            let w = WeightStore(checkpoint: nil)
            w.add("rope", shape: [positions, hd / 2, 2], floats: Self.ropeTable(positions: positions, headDim: hd, theta: 10000))
            let gpu = try check("rope-\(layout)-\(heads)x\(hd)-\(col)", acts: ["q": heads * hd + 4], kvWidth: 4, maxContext: positions, rows: rows, pos0: 250,
                                weights: w, inputs: ["q": rng.floats(rows * (heads * hd + 4))],
                                ops: [.rope(x: ActRef("q", col: col), heads: heads, headDim: hd, table: WeightRef("rope"), tablePositions: positions, layout: layout)],
                                outputs: ["q"], threshold: 1e-7)
            let vec4 = layout == .rotateHalf && hd % 8 == 0 && col % 4 == 0 && (heads * hd + 4) % 4 == 0
            let keys = gpu.kernels.pipelineKeys.filter { $0.hasPrefix("rope.comp") }
            #expect(keys.count == 1 && keys[0].contains("VEC4=\(vec4 ? 1 : 0)"), "\(heads)x\(hd) at column \(col): \(keys)")
        }
    }

    /// Causal attention with KV written by kv_write: MHA and GQA, 55 heads x 96 and 16 x 128,
    /// a long sequence (>= 2048 positions), prefill rows and a single decode row; the
    /// workgroup and subgroup reductions on storage buffers, and the subgroup one reading q, K
    /// and V through texel views (a head_dim of 6 is not whole texels: storage buffers); on the
    /// texel path one row splits its keys across the subgroup, several rows take 1, 2, 4 or 8
    /// rows per invocation (`Kernels.attentionRowsPerLane`: 3, 4 and 5 rows take 1; 12 rows 2;
    /// 19 rows 4, a partial group of 32; 63 rows 8; 17 rows at head_dim 256 are capped at 2).
    @Test(arguments: [(55, 55, 96, 40, 3), (16, 16, 128, 33, 1), (4, 2, 16, 9, 4), (16, 4, 64, 2100, 1), (3, 3, 16, 1, 1), (2, 1, 256, 19, 5), (3, 1, 6, 7, 2), (4, 2, 32, 50, 19),
                      (4, 2, 32, 40, 12), (2, 2, 64, 70, 63), (2, 1, 256, 30, 17)],
          [(false, ReadPath.storage), (true, .storage), (true, .texel)].filter { GPU.readPaths.contains($0.1) })
    func attention(shape: (Int, Int, Int, Int, Int), variant: (subgroup: Bool, path: ReadPath)) throws {
        let subgroup = variant.subgroup
        let (heads, kvHeads, headDim, context, rows) = shape
        var rng = SeededRandom(seed: 7)
        let kvW = kvHeads * headDim
        let w = WeightStore(checkpoint: nil)
        let pos0 = context - rows
        _ = try check("attention-\(heads)-\(kvHeads)-\(headDim)-\(context)-\(rows)-\(subgroup)-\(variant.path)",
                  acts: ["k": kvW, "v": kvW, "q": heads * headDim, "o": heads * headDim], kvSlots: 2, kvWidth: kvW, maxContext: context,
                  rows: rows, pos0: pos0, weights: w,
                  inputs: ["k": rng.floats(context * kvW, 2), "v": rng.floats(context * kvW), "q": rng.floats(rows * heads * headDim, 2)],
                  setup: [.kvWrite(src: ActRef("k"), slot: 1, part: .k), .kvWrite(src: ActRef("v"), slot: 1, part: .v)], setupRows: context,
                  ops: [.attention(q: ActRef("q"), slot: 1, out: ActRef("o"), heads: heads, kvHeads: kvHeads, headDim: headDim, scale: 1 / Float(headDim).squareRoot())],
                  outputs: ["o"], threshold: 5e-4, readPath: variant.path, configure: {
                      Self.reduce(subgroup)($0)
                      $0.config.laneHeads = false
                  })
    }

    /// One decode row of attention at the last of `context` positions, q and the output at a
    /// column offset, against the CPU (the decode-kernel tests below).
    func checkDecodeAttention(_ name: String, shape: (Int, Int, Int, Int), seed: UInt64, readPath: ReadPath, kernels: String = "",
                              configure: @escaping (VulkanBackend) -> Void) throws -> VulkanBackend {
        let (heads, kvHeads, headDim, context) = shape
        var rng = SeededRandom(seed: seed)
        let kvW = kvHeads * headDim
        return try check(name, acts: ["k": kvW, "v": kvW, "q": heads * headDim, "o": heads * headDim + 3], kvSlots: 2, kvWidth: kvW, maxContext: context,
                         rows: 1, pos0: context - 1, weights: WeightStore(checkpoint: nil),
                         inputs: ["k": rng.floats(context * kvW, 2), "v": rng.floats(context * kvW), "q": rng.floats(heads * headDim, 2)],
                         setup: [.kvWrite(src: ActRef("k"), slot: 1, part: .k), .kvWrite(src: ActRef("v"), slot: 1, part: .v)], setupRows: context,
                         ops: [.attention(q: ActRef("q"), slot: 1, out: ActRef("o", col: 3), heads: heads, kvHeads: kvHeads, headDim: headDim,
                                          scale: 1 / Float(headDim).squareRoot())],
                         outputs: ["o"], threshold: 5e-4, readPath: readPath, kernels: kernels, configure: configure)
    }

    /// The storage kernel's key clusters (attention.comp, workgroup reductions: KEY_LANES lanes
    /// read a key row's contiguous slices): f32 and f16 KV; head_dim 64, 128, 256, 100 (25 vec4
    /// slices, lanes past the row idle) and 6 (scalar slices); MHA and GQA; one decode row over
    /// odd contexts whose keys cross split boundaries (129 keys in 64-key splits: the last holds
    /// one key), with splits off, explicit (3; 7, leaving splits empty) and automatic (64
    /// compute units); and prefill rows.
    @Test(arguments: [(8, 2, 64, 129), (4, 4, 128, 200), (2, 1, 256, 77), (6, 3, 100, 301), (3, 1, 6, 65)], KVCacheType.allCases)
    func attentionKeyClusters(shape: (Int, Int, Int, Int), kv: KVCacheType) throws {
        let info = GPU.context!.info
        guard kv == .f32 || info.storageBuffer16Bit else { return }
        let (heads, kvHeads, headDim, context) = shape
        let vec = headDim % 4 == 0 ? 4 : 1
        let lanes = Kernels.attentionKeyLanes(slices: headDim / vec, subgroupSize: info.subgroupSize, clustered: info.subgroupClustered || info.subgroupShuffle, workgroup: 64)
        for splits in ["1", "3", "7", "auto"] {
            let name = "attention-clusters-\(shape)-\(kv)-\(splits)"
            let gpu = try checkDecodeAttention(name, shape: shape, seed: 41, readPath: .storage,
                                               kernels: "reduce=shared,kv=\(kv),splits=\(splits),compute-units=64") { _ in }
            let ns = gpu.config.attentionSplits(heads: heads, context: context)
            if splits == "auto" { #expect(ns == min((256 + heads - 1) / heads, (context + 63) / 64) && ns > 1, "\(name): \(ns) splits") }
            #expect(gpu.recordedCounts(SectionKey(name, rows: 1))?.dispatches == (ns > 1 ? 2 : 1), "\(name)")
            let keys = gpu.kernels.pipelineKeys.filter { $0.hasPrefix("attention.comp") }
            #expect(keys.count == 1 && keys[0].contains("VEC=\(vec)") && keys[0].contains("KEY_LANES=\(lanes),") && keys[0].contains("SPLIT=1") == (ns > 1),
                    "\(name): \(keys)")
        }
        var rng = SeededRandom(seed: 43)
        let rows = 5, kvW = kvHeads * headDim
        _ = try check("attention-clusters-prefill-\(shape)-\(kv)",
                      acts: ["k": kvW, "v": kvW, "q": heads * headDim, "o": heads * headDim], kvSlots: 2, kvWidth: kvW, maxContext: context,
                      rows: rows, pos0: context - rows, weights: WeightStore(checkpoint: nil),
                      inputs: ["k": rng.floats(context * kvW, 2), "v": rng.floats(context * kvW), "q": rng.floats(rows * heads * headDim, 2)],
                      setup: [.kvWrite(src: ActRef("k"), slot: 1, part: .k), .kvWrite(src: ActRef("v"), slot: 1, part: .v)], setupRows: context,
                      ops: [.attention(q: ActRef("q"), slot: 1, out: ActRef("o"), heads: heads, kvHeads: kvHeads, headDim: headDim, scale: 1 / Float(headDim).squareRoot())],
                      outputs: ["o"], threshold: 5e-4, readPath: .storage, kernels: "reduce=shared,kv=\(kv)")
    }

    /// One decode row on the texel path with an invocation per query head (attention.comp
    /// LANE_HEADS): MHA and GQA, head counts that fill 8-head workgroups and ones that leave
    /// invocations idle (3 and 12 heads), a 1-key and a 2100-key cache.
    @Test(.enabled(if: GPU.hasTexelPath), arguments: [(16, 16, 128, 33), (16, 4, 64, 2100), (3, 3, 16, 1), (12, 4, 32, 300), (2, 1, 256, 19)])
    func attentionLaneHeads(shape: (Int, Int, Int, Int)) throws {
        _ = try checkDecodeAttention("attention-lane-heads-\(shape)", shape: shape, seed: 31, readPath: .texel) {
            $0.config.laneHeads = true
            $0.config.threads = 1
        }
    }

    /// Flash-decoding (attention.comp SPLIT + attention_combine.comp, storage path with
    /// workgroup reductions): one decode row over short and long caches, splits that divide
    /// the keys unevenly, splits left empty (a 1-key cache, 16 splits of 33 keys), MHA and GQA.
    @Test(arguments: [(16, 4, 64, 2100), (16, 16, 128, 33), (3, 3, 16, 1), (2, 1, 256, 300), (4, 2, 32, 200)], [2, 5, 16])
    func attentionSplit(shape: (Int, Int, Int, Int), splits: Int) throws {
        let name = "attention-split-\(shape)-\(splits)"
        let gpu = try checkDecodeAttention(name, shape: shape, seed: 29, readPath: .storage) {
            $0.config.reduce = false ? .subgroup : .shared
            $0.config.splits = splits
        }
        #expect(gpu.recordedCounts(SectionKey(name, rows: 1))?.dispatches == 2)
    }

    @Test(arguments: KVCacheType.allCases) func kvWriteAtPosition(kv: KVCacheType) throws {
        var rng = SeededRandom(seed: 8)
        let width = 24, rows = 3
        let layout = BackendLayout(activations: ["s": width + 2], kvSlots: 1, kvWidth: width, maxContext: 10, maxRows: rows)
        let w = WeightStore(checkpoint: nil)
        let cpu = try CPUBackend(layout: layout, weights: w, kernels: GPU.kernels("kv=\(kv)"))
        let gpu = try VulkanBackend(context: GPU.context!, layout: layout, weights: w, kernels: GPU.kernels("kv=\(kv)"))
        let src = rng.floats(rows * (width + 2))
        for b in [cpu as PlanBackend, gpu] {
            try b.write("s", values: src)
            try b.run([.kvWrite(src: ActRef("s", col: 2), slot: 0, part: .v)], section: SectionKey("kv", rows: rows), tokens: [0, 0, 0], pos0: 5)
        }
        let c = try cpu.readKV(slot: 0, part: .v, rows: 10), g = try gpu.readKV(slot: 0, part: .v, rows: 10)
        // f16: both round to nearest even (CPUOps.kvWrite's Float16, the shader's float16_t).
        #expect(c == g)
        #expect(g[5 * width] == (kv == .f16 ? Float(Float16(src[2])) : src[2]))
        GPU.expectNoValidationMessages()
    }

    /// kv_copy: rows at pos0 of one slot's K and V land in another slot, nothing else moves.
    @Test(arguments: KVCacheType.allCases) func kvCopyBetweenSlots(kv: KVCacheType) throws {
        var rng = SeededRandom(seed: 13)
        let width = 20, context = 12
        let layout = BackendLayout(activations: ["k": width, "v": width], kvSlots: 3, kvWidth: width, maxContext: context, maxRows: context)
        let w = WeightStore(checkpoint: nil)
        let cpu = try CPUBackend(layout: layout, weights: w, kernels: GPU.kernels("kv=\(kv)"))
        let gpu = try VulkanBackend(context: GPU.context!, layout: layout, weights: w, kernels: GPU.kernels("kv=\(kv)"))
        let k = rng.floats(context * width), v = rng.floats(context * width)
        for b in [cpu as PlanBackend, gpu] {
            try b.write("k", values: k)
            try b.write("v", values: v)
            try b.run([.kvWrite(src: ActRef("k"), slot: 0, part: .k), .kvWrite(src: ActRef("v"), slot: 0, part: .v)],
                      section: SectionKey("fill", rows: context), tokens: [Int32](repeating: 0, count: context), pos0: 0)
            try b.run([.kvCopy(from: 0, to: 2)], section: SectionKey("copy", rows: 2), tokens: [0, 0], pos0: 7)
        }
        for part in [KVPart.k, .v] {
            let g = try gpu.readKV(slot: 2, part: part, rows: context)
            #expect(g == (try cpu.readKV(slot: 2, part: part, rows: context)))
            let src = (part == .k ? k : v).map { kv == .f16 ? Float(Float16($0)) : $0 }
            #expect(Array(g[(7 * width)..<(9 * width)]) == Array(src[(7 * width)..<(9 * width)]))
            #expect(g[0..<(7 * width)].allSatisfy { $0 == 0 })
        }
        GPU.expectNoValidationMessages()
    }

    /// dim 99: the scalar shader; 100 (sizes and columns multiples of 4): the vec4 one.
    @Test(arguments: [99, 100])
    func siluMulAndCopy(dim: Int) throws {
        var rng = SeededRandom(seed: 9)
        let rows = 4
        let w = WeightStore(checkpoint: nil)
        _ = try check("silu_mul-\(dim)", acts: ["gu": 2 * dim, "o": dim, "c": 2 * dim + 5], rows: rows, weights: w, inputs: ["gu": rng.floats(rows * 2 * dim, 6)],
                  ops: [.siluMul(gate: ActRef("gu"), up: ActRef("gu", col: dim), out: ActRef("o"), dim: dim),
                        .copy(src: ActRef("o"), out: ActRef("c", col: 5), width: dim),
                        .copy(src: ActRef("gu", col: 3), out: ActRef("c", col: 5 + dim), width: dim)],
                  outputs: ["o", "c"], threshold: 1e-7)
    }

    @Test(arguments: [UnaryKind.sigmoid, .softplus, .exp, .silu, .fill, .scale])
    func unary(kind: UnaryKind) throws {
        var rng = SeededRandom(seed: 10)
        let dim = 67, rows = 3
        var x = rng.floats(rows * dim, 8)
        x[0] = 25; x[1] = -30    // softplus threshold branch, saturated sigmoid
        _ = try check("unary-\(kind)", acts: ["x": dim, "o": dim], rows: rows, weights: WeightStore(checkpoint: nil), inputs: ["x": x],
                  ops: [.unary(kind: kind, x: ActRef("x"), out: ActRef("o"), dim: dim, scale: 0.75)], outputs: ["o"], threshold: 1e-7)
    }

    @Test(arguments: [BinaryKind.add, .sub, .mul])
    func binary(kind: BinaryKind) throws {
        var rng = SeededRandom(seed: 11)
        let dim = 53, rows = 3
        let w = WeightStore(checkpoint: nil)
        w.add("row", shape: [dim], floats: rng.floats(dim))
        addWeight(w, "row16", .bf16, [dim], rng.floats(dim))
        _ = try check("binary-\(kind)", acts: ["a": dim, "b": dim, "o": dim, "p": dim, "q": dim], rows: rows, weights: w,
                  inputs: ["a": rng.floats(rows * dim), "b": rng.floats(rows * dim)],
                  ops: [.binary(kind: kind, a: ActRef("a"), b: .act(ActRef("b")), out: ActRef("o"), dim: dim),
                        .binary(kind: kind, a: ActRef("a"), b: .row(WeightRef("row")), out: ActRef("p"), dim: dim),
                        .binary(kind: kind, a: ActRef("a"), b: .row(WeightRef("row16")), out: ActRef("q"), dim: dim)],
                  outputs: ["o", "p", "q"], threshold: 1e-7)
    }

    @Test(arguments: reductions)
    func argmaxAndSoftmax(subgroup: Bool) throws {
        var rng = SeededRandom(seed: 12)
        let dim = 1000, rows = 4
        var x = rng.floats(rows * dim, 5)
        // Ties: the first maximal index must win.
        x[dim + 10] = 9; x[dim + 700] = 9; x[3 * dim + 999] = 7
        _ = try check("argmax-softmax-\(subgroup)", acts: ["x": dim, "i": 1, "s": dim], rows: rows, weights: WeightStore(checkpoint: nil), inputs: ["x": x],
                  ops: [.argmax(x: ActRef("x"), out: ActRef("i"), dim: dim), .softmax(x: ActRef("x"), out: ActRef("s"), dim: dim)],
                  outputs: ["i", "s"], threshold: 1e-7, configure: Self.reduce(subgroup))
    }

    /// A vocabulary-sized row: with workgroup reductions the argmax splits across workgroups
    /// (argmax.comp SPLIT, 4 groups of 2500 here) and merges; ties across group boundaries go to
    /// the first index, NaN never wins, an all-NaN row gives 0.
    @Test(arguments: [false, true])
    func argmaxOverAVocabulary(subgroup: Bool) throws {
        var rng = SeededRandom(seed: 21)
        let dim = 10_000, rows = 4
        #expect(Kernels.argmaxGroups(dim: dim) == 4)
        var x = rng.floats(rows * dim, 5)
        x[100] = 9; x[7000] = 9                                  // row 0: a tie across groups
        x[dim + 2499] = 8; x[dim + 2500] = 8                     // row 1: a tie across a group boundary
        x[2 * dim + 9999] = .nan; x[2 * dim + 5000] = 7          // row 2: NaN beside the maximum
        for i in 0..<dim { x[3 * dim + i] = .nan }               // row 3: all NaN
        _ = try check("argmax-vocabulary-\(subgroup)", acts: ["x": dim, "i": 1], rows: rows, weights: WeightStore(checkpoint: nil), inputs: ["x": x],
                  ops: [.argmax(x: ActRef("x"), out: ActRef("i"), dim: dim)], outputs: ["i"], threshold: 0, configure: Self.reduce(subgroup))
        // The CPU twin's answers, stated: the check above holds the GPU to them.
        let cpu = try CPUBackend(layout: BackendLayout(activations: ["x": dim, "i": 1], kvSlots: 0, kvWidth: 1, maxContext: rows, maxRows: rows),
                                 weights: WeightStore(checkpoint: nil))
        try cpu.write("x", values: x)
        try cpu.run([.argmax(x: ActRef("x"), out: ActRef("i"), dim: dim)], section: SectionKey("a", rows: rows), tokens: [Int32](repeating: 0, count: rows), pos0: 0)
        #expect(try cpu.read("i", rows: rows) == [100, 2499, 5000, 0])
    }
}
