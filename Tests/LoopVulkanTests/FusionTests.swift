import Foundation
import Testing
import LoopCore
@testable import LoopVulkan

/// The texel path keeps one device copy of a weight matrix: the interleaved one (decode and
/// prefill read it), not also the row-major one.
@Suite(.serialized, .enabled(if: GPU.available))
struct WeightCopyTests {
    @Test(.enabled(if: GPU.hasTexelPath)) func texelLinearUploadsOnlyTheInterleavedCopy() throws {
        var rng = SeededRandom(seed: 25)
        let w = WeightStore(checkpoint: nil)
        addWeight(w, "W", .bf16, [64, 32], rng.floats(64 * 32))
        let layout = BackendLayout(activations: ["x": 32, "y": 64], kvSlots: 0, kvWidth: 1, maxContext: 4, maxRows: 4)
        let gpu = try VulkanBackend(context: GPU.context!, layout: layout, weights: w, kernels: GPU.kernels(read: .texel))
        let op = Op.linear(x: ActRef("x"), weight: WeightRef("W"), bias: nil, out: ActRef("y"), inFeatures: 32, outFeatures: 64, accumulate: false)
        try gpu.preload([op])
        for rows in [1, 4] { try gpu.run([op], section: SectionKey("linear", rows: rows), tokens: [Int32](repeating: 0, count: rows), pos0: 0) }
        #expect(gpu.uploadedWeights == [WeightCopy.interleaved(name: "W", inFeatures: 32, block: 32, firstRow: 0).key])
        GPU.expectNoValidationMessages()
    }

    /// The device-memory check's prediction (`VulkanBackend.weightBytes`) is what preloading
    /// then uploads, on both read paths: a tied embedding (the lookup reads the plain copy, the
    /// head on the texel path its interleaved copy, 70 rows padded to 96) and a separate matrix.
    @Test func weightBytesPredictsTheUpload() throws {
        var rng = SeededRandom(seed: 26)
        let vocab = 70, dim = 32
        let ops: [Op] = [.embed(table: WeightRef("emb"), vocab: vocab, dim: dim, out: ActRef("x"), scale: 1),
                         .linear(x: ActRef("x"), weight: WeightRef("W"), bias: nil, out: ActRef("y"), inFeatures: dim, outFeatures: 40, accumulate: false),
                         .linear(x: ActRef("y"), weight: WeightRef("emb"), bias: nil, out: ActRef("logits"), inFeatures: dim, outFeatures: vocab, accumulate: false)]
        for path in GPU.readPaths {
            let w = WeightStore(checkpoint: nil)
            addWeight(w, "emb", .bf16, [vocab, dim], rng.floats(vocab * dim))
            addWeight(w, "W", .bf16, [40, dim], rng.floats(40 * dim))
            let predicted = try VulkanBackend.weightBytes(ops, weights: w, context: GPU.context!, kernels: GPU.kernels(read: path))
            let layout = BackendLayout(activations: ["x": dim, "y": 40, "logits": vocab], kvSlots: 0, kvWidth: 1, maxContext: 4, maxRows: 1)
            let gpu = try VulkanBackend(context: GPU.context!, layout: layout, weights: w, kernels: GPU.kernels(read: path))
            try gpu.preload(ops)
            #expect(gpu.uploadedWeightBytes == predicted, "\(path)")
            let expected = path == .texel ? (vocab + 96 + 64) * dim * 2 : (vocab + 40) * dim * 2
            #expect(predicted == UInt64(expected), "\(path)")
        }
        GPU.expectNoValidationMessages()
    }
}

/// Recording fuses consecutive ops into one dispatch (Fusion.swift). Each fused shape runs on
/// the GPU against the CPU running the separate ops, and the dispatch count proves the fusion
/// happened (and that the configuration's fusion=off turns it off).
@Suite(.serialized, .enabled(if: GPU.available))
struct FusionTests {
    let parity = OpParityTests()

    func dispatches(_ gpu: VulkanBackend, _ name: String, rows: Int) -> Int? {
        gpu.recordedCounts(SectionKey(name, rows: rows))?.dispatches
    }

    /// Norm (+ residual) then the next plain norm of its output: every first-norm mode, the
    /// second in place or into another activation, with and without weights, weight dtypes
    /// equal (fused) and different (two dispatches), reductions of both kinds.
    @Test(arguments: [NormMode.plain, .accumulate, .normalizeSum], OpParityTests.reductions)
    func normThenNorm(mode: NormMode, subgroup: Bool) throws {
        var rng = SeededRandom(seed: 21)
        let dim = 200, rows = 3
        // Columns 1 and 2: the scalar shader; 4 and 8 (every size a multiple of 4): the VEC4 one.
        for (dt1, dt2, inPlace, weighted, hCol, xCol) in [(DType.bf16, DType.bf16, false, true, 1, 2), (.f32, .f32, true, true, 1, 2), (.f16, .bf16, false, true, 1, 2),
                                                          (.bf16, .bf16, false, false, 1, 2), (.bf16, .bf16, false, true, 4, 8), (.f32, .f32, true, true, 4, 8)] {
            let w = WeightStore(checkpoint: nil)
            addWeight(w, "w1", dt1, [dim], rng.floats(dim, 1))
            addWeight(w, "w2", dt2, [dim + 4], rng.floats(dim + 4, 1))
            let out2 = inPlace ? ActRef("h", col: hCol) : ActRef("xn", col: xCol)
            let ops: [Op] = [
                .rmsNorm(x: ActRef("o"), add: mode == .normalizeSum ? ActRef("a") : nil, weight: weighted ? WeightRef("w1") : nil,
                         out: ActRef("h", col: hCol), dim: dim, groups: 1, eps: 1e-5, mode: mode),
                .rmsNorm(x: ActRef("h", col: hCol), add: nil, weight: weighted ? WeightRef("w2", offset: 4) : nil, out: out2, dim: dim, groups: 1, eps: 1e-6, mode: .plain),
            ]
            for fused in [true, false] {
                let name = "norm-norm-\(mode)-\(subgroup)-\(dt1)-\(dt2)-\(inPlace)-\(weighted)-\(hCol)-\(fused)"
                let gpu = try parity.check(name, acts: ["o": dim, "a": dim, "h": dim + hCol, "xn": dim + xCol], rows: rows, weights: w,
                                           inputs: ["o": rng.floats(rows * dim, 2), "a": rng.floats(rows * dim), "h": rng.floats(rows * (dim + hCol)), "xn": rng.floats(rows * (dim + xCol))],
                                           ops: ops, outputs: ["h", "xn"], threshold: 1e-7, configure: { gpu in
                                               gpu.config.reduce = subgroup ? .subgroup : .shared
                                               gpu.config.fusion = fused
                                           })
                #expect(dispatches(gpu, name, rows: rows) == (fused && dt1 == dt2 ? 1 : 2), "\(name)")
            }
        }
    }

    /// Greedy decode's head + argmax in one dispatch (texel path, one row): the index and the
    /// logits against the CPU's separate ops. Rows a = +u/2 and b = -u/2 stand out, and the
    /// replays feed x = u, -u, u, so the winner moves between workgroups from one replay to the
    /// next (the finished-workgroup counter must start from zero each time): winners in the
    /// first, a middle and the last (partial) 32-row block, and a tie between two workgroups
    /// that the final reduction compares in one invocation (the first index wins). A NaN logit
    /// never wins. Fusion off and the storage path run the two ops apart.
    @Test(arguments: [DType.bf16, .f32])
    func headArgmax(dtype: DType) throws {
        var rng = SeededRandom(seed: 27)
        let inF = 64, vocab = 1000
        let layout = BackendLayout(activations: ["x": inF, "logits": vocab, "am": 2], kvSlots: 0, kvWidth: 1, maxContext: 4, maxRows: 1)
        let u = rng.floats(inF, 1)
        let ops: [Op] = [.linear(x: ActRef("x"), weight: WeightRef("W"), bias: WeightRef("b"), out: ActRef("logits"), inFeatures: inF, outFeatures: vocab, accumulate: false),
                         .argmax(x: ActRef("logits"), out: ActRef("am", col: 1), dim: vocab)]
        for (path, fused) in [(ReadPath.texel, true), (.texel, false), (.storage, true)] where GPU.readPaths.contains(path) {
            // (rows equal to +u/2, the row equal to -u/2); 100 and 356 sit at the same place of
            // blocks 3 and 11, which the last workgroup's invocation 3 compares.
            for (plus, minus) in [([5], 999), ([641], 37), ([999], 5), ([100, 356], 350)] {
                var wv = rng.floats(vocab * inF, 0.1)
                for i in 0..<inF {
                    for r in plus { wv[r * inF + i] = u[i] / 2 }
                    wv[minus * inF + i] = -u[i] / 2
                }
                var bias = rng.floats(vocab, 0.1)
                bias[640] = .nan                           // the first value its invocation sees, 641 the next
                for r in plus { bias[r] = 0 }
                let w = WeightStore(checkpoint: nil)
                addWeight(w, "W", dtype, [vocab, inF], wv)
                addWeight(w, "b", .f32, [vocab], bias)
                let cpu = try CPUBackend(layout: layout, weights: w)
                let gpu = try VulkanBackend(context: GPU.context!, layout: layout, weights: w, kernels: GPU.kernels(read: path))
                gpu.config.fusion = fused
                for (replay, sign) in [Float(1), -1, 1].enumerated() {
                    for b in [cpu as PlanBackend, gpu] {
                        try b.write("x", values: u.map { $0 * sign })
                        try b.write("am", values: [-1, -1])
                        try b.run(ops, section: SectionKey("head", rows: 1), tokens: [0], pos0: 0)
                    }
                    let name = "\(dtype)-\(path)-\(fused)-\(plus)-replay \(replay)"
                    let expected = Float(sign > 0 ? plus[0] : minus)
                    #expect(try cpu.read("am", rows: 1)[1] == expected, "\(name): CPU")
                    #expect(try gpu.read("am", rows: 1)[1] == expected, "\(name)")
                    let cl = try cpu.read("logits", rows: 1), gl = try gpu.read("logits", rows: 1)
                    #expect(gl[640].isNaN && cl[640].isNaN, "\(name)")
                    var err = 0.0, sum = 0.0
                    for i in 0..<vocab where i != 640 { let d = Double(cl[i]) - Double(gl[i]); err += d * d; sum += Double(cl[i]) * Double(cl[i]) }
                    #expect(err / sum < 1e-9, "\(name): logits")
                }
                #expect(dispatches(gpu, "head", rows: 1) == (path == .texel && fused ? 1 : 2), "\(dtype)-\(path)-\(fused)")
                GPU.expectNoValidationMessages()
            }
        }
    }

    /// The stacked gate/up product with the gated SiLU (texel path, matvec.comp / matmul.comp
    /// SILU): decode and prefill rows (partial 8-row groups, a partial 64-feature group when
    /// the intermediate size is 96), both halves and silu(gate) * up against the CPU's separate
    /// ops, with and without a bias; an unaligned x column keeps decode fused (the matvec's
    /// scalar x loads) and runs prefill apart, as does fusion off; an H column that is not a
    /// whole vec4 takes the prefill kernel's scalar stores.
    @Test(.enabled(if: GPU.hasTexelPath), arguments: [DType.bf16, .f32])
    func gateUpSilu(dtype: DType) throws {
        var rng = SeededRandom(seed: 30)
        for (dim, inF, xCol, rows, biased, hCol) in [(96, 64, 0, 1, false, 4), (96, 64, 0, 13, false, 4), (64, 40, 0, 9, true, 4), (64, 40, 2, 1, false, 4),
                                                     (64, 40, 2, 5, false, 4), (96, 64, 0, 13, true, 2)] {
            for fused in [true, false] {
                let w = WeightStore(checkpoint: nil)
                addWeight(w, "gu", dtype, [2 * dim, inF], rng.floats(2 * dim * inF, 0.3))
                addWeight(w, "b", .f32, [2 * dim], rng.floats(2 * dim))
                let ops: [Op] = [.linear(x: ActRef("x", col: xCol), weight: WeightRef("gu"), bias: biased ? WeightRef("b") : nil, out: ActRef("gu"),
                                         inFeatures: inF, outFeatures: 2 * dim, accumulate: false),
                                 .siluMul(gate: ActRef("gu"), up: ActRef("gu", col: dim), out: ActRef("h", col: hCol), dim: dim)]
                let name = "gate-up-silu-\(dtype)-\(dim)-\(inF)-\(xCol)-\(rows)-\(biased)-\(hCol)-\(fused)"
                let gpu = try parity.check(name, acts: ["x": inF + xCol, "gu": 2 * dim, "h": dim + hCol], rows: rows, weights: w,
                                           inputs: ["x": rng.floats(rows * (inF + xCol), 2), "gu": rng.floats(rows * 2 * dim), "h": rng.floats(rows * (dim + hCol))],
                                           ops: ops, outputs: ["gu", "h"], threshold: 5e-4, readPath: .texel, configure: { $0.config.fusion = fused })
                let together = fused && (xCol == 0 || rows == 1)
                #expect(dispatches(gpu, name, rows: rows) == (together ? 1 : 2), "\(name)")
            }
        }
    }

    /// A run of KV copies (the fill after an early exit) as kv_copy.comp PAIRS 8: 9 slot copies
    /// are 18 buffer copies, three dispatches (the last one partial); every slot's K and V
    /// against the CPU, rows at a position; fusion off: one dispatch per buffer.
    @Test(arguments: [true, false])
    func kvCopies(fused: Bool) throws {
        var rng = SeededRandom(seed: 28)
        let width = 20, context = 12, rows = 2, pos0 = 5, slots = 12
        let layout = BackendLayout(activations: ["k": width, "v": width], kvSlots: slots, kvWidth: width, maxContext: context, maxRows: context)
        let w = WeightStore(checkpoint: nil)
        let cpu = try CPUBackend(layout: layout, weights: w)
        let gpu = try VulkanBackend(context: GPU.context!, layout: layout, weights: w)
        gpu.config.fusion = fused
        // Slots 0 and 1 hold data; 0 goes to 2...7, 1 to 8...10; slot 11 stays as it was.
        let copies: [Op] = (2...7).map { .kvCopy(from: 0, to: $0) } + (8...10).map { .kvCopy(from: 1, to: $0) }
        for b in [cpu as PlanBackend, gpu] {
            for slot in 0..<slots {
                try b.write("k", values: rng.floats(context * width))
                try b.write("v", values: rng.floats(context * width))
                try b.run([.kvWrite(src: ActRef("k"), slot: slot, part: .k), .kvWrite(src: ActRef("v"), slot: slot, part: .v)],
                          section: SectionKey("fill\(slot)", rows: context), tokens: [Int32](repeating: 0, count: context), pos0: 0)
            }
        }
        // Both backends drew different random fills above: make the GPU's equal to the CPU's.
        for slot in 0..<slots {
            for (part, act) in [(KVPart.k, "k"), (.v, "v")] {
                try gpu.write(act, values: try cpu.readKV(slot: slot, part: part, rows: context))
                try gpu.run([.kvWrite(src: ActRef(act), slot: slot, part: part)], section: SectionKey("set\(slot)\(act)", rows: context),
                            tokens: [Int32](repeating: 0, count: context), pos0: 0)
            }
        }
        for b in [cpu as PlanBackend, gpu] { try b.run(copies, section: SectionKey("copies", rows: rows), tokens: [0, 0], pos0: pos0) }
        for slot in 0..<slots {
            for part in [KVPart.k, .v] {
                #expect(try gpu.readKV(slot: slot, part: part, rows: context) == (try cpu.readKV(slot: slot, part: part, rows: context)), "slot \(slot) \(part)")
            }
        }
        let before = try cpu.readKV(slot: 11, part: .k, rows: context), src = try cpu.readKV(slot: 0, part: .k, rows: context)
        #expect(before != src)
        #expect(dispatches(gpu, "copies", rows: rows) == (fused ? 3 : 18))
        GPU.expectNoValidationMessages()
    }

    /// The k and v writes of one slot in one dispatch, at a position, from columns of one
    /// activation (Ouro's fused qkv) or two; a k write alone and writes to two slots stay apart.
    @Test func kvPair() throws {
        var rng = SeededRandom(seed: 22)
        let width = 24, rows = 3, pos0 = 4
        let layout = BackendLayout(activations: ["qkv": 3 * width, "v": width], kvSlots: 2, kvWidth: width, maxContext: 10, maxRows: rows)
        let cases: [(String, [Op], Int)] = [
            ("one-act", [.kvWrite(src: ActRef("qkv", col: width), slot: 1, part: .k), .kvWrite(src: ActRef("qkv", col: 2 * width), slot: 1, part: .v)], 1),
            ("two-acts", [.kvWrite(src: ActRef("qkv", col: 3), slot: 0, part: .v), .kvWrite(src: ActRef("v"), slot: 0, part: .k)], 1),
            ("two-slots", [.kvWrite(src: ActRef("qkv"), slot: 0, part: .k), .kvWrite(src: ActRef("v"), slot: 1, part: .v)], 2),
        ]
        for (name, ops, expected) in cases {
            let w = WeightStore(checkpoint: nil)
            let cpu = try CPUBackend(layout: layout, weights: w)
            let gpu = try VulkanBackend(context: GPU.context!, layout: layout, weights: w)
            let qkv = rng.floats(rows * 3 * width), v = rng.floats(rows * width)
            for b in [cpu as PlanBackend, gpu] {
                try b.write("qkv", values: qkv)
                try b.write("v", values: v)
                try b.run(ops, section: SectionKey(name, rows: rows), tokens: [0, 0, 0], pos0: pos0)
            }
            for slot in 0..<2 {
                for part in [KVPart.k, .v] {
                    #expect(try gpu.readKV(slot: slot, part: part, rows: 10) == (try cpu.readKV(slot: slot, part: part, rows: 10)), "\(name) slot \(slot) \(part)")
                }
            }
            #expect(dispatches(gpu, name, rows: rows) == expected, "\(name)")
            GPU.expectNoValidationMessages()
        }
    }

    /// RoPE over q and k side by side, then the k and v cache writes: one rope.comp dispatch
    /// that also stores the rotated k and copies v (GQA, both rotation layouts, prefill rows at
    /// a position). A k that is not the rope's last heads keeps rope and the kv pair apart.
    /// Column 0 (rotate-half) takes the vec4 kernel, column 1 the scalar one.
    @Test(arguments: [RopeLayout.rotateHalf, .interleaved], [0, 1])
    func ropeThenKV(layout ropeLayout: RopeLayout, col c0: Int) throws {
        var rng = SeededRandom(seed: 23)
        let heads = 4, kvHeads = 2, headDim = 16, rows = 3, pos0 = 5, context = 12
        let qW = heads * headDim, kvW = kvHeads * headDim
        let table = OpParityTests.ropeTable(positions: context, headDim: headDim, theta: 10000)
        let cases: [(String, ActRef, Int)] = [("fused", ActRef("qkv", col: qW + c0), 1), ("apart", ActRef("qkv", col: c0), 2)]
        for (name, kSrc, expected) in cases {
            let w = WeightStore(checkpoint: nil)
            w.add("rope", shape: [context, headDim / 2, 2], floats: table)
            let ops: [Op] = [
                .rope(x: ActRef("qkv", col: c0), heads: heads + kvHeads, headDim: headDim, table: WeightRef("rope"), tablePositions: context, layout: ropeLayout),
                .kvWrite(src: kSrc, slot: 1, part: .k),
                .kvWrite(src: ActRef("qkv", col: c0 + qW + kvW), slot: 1, part: .v),
            ]
            let layout = BackendLayout(activations: ["qkv": c0 + qW + 2 * kvW], kvSlots: 2, kvWidth: kvW, maxContext: context, maxRows: rows)
            let cpu = try CPUBackend(layout: layout, weights: w)
            let gpu = try VulkanBackend(context: GPU.context!, layout: layout, weights: w)
            let qkv = rng.floats(rows * (c0 + qW + 2 * kvW))
            let key = "rope-kv-\(ropeLayout)-\(c0)-\(name)"
            for b in [cpu as PlanBackend, gpu] {
                try b.write("qkv", values: qkv)
                try b.run(ops, section: SectionKey(key, rows: rows), tokens: [0, 0, 0], pos0: pos0)
            }
            #expect(nmse(try gpu.read("qkv", rows: rows), try cpu.read("qkv", rows: rows)) <= 1e-7, "\(key)")
            for part in [KVPart.k, .v] {
                #expect(nmse(try gpu.readKV(slot: 1, part: part, rows: context), try cpu.readKV(slot: 1, part: part, rows: context)) <= 1e-7, "\(key) \(part)")
                #expect(try gpu.readKV(slot: 0, part: part, rows: context).allSatisfy { $0 == 0 }, "\(key) slot 0 \(part)")
            }
            #expect(dispatches(gpu, key, rows: rows) == expected, "\(key)")
            GPU.expectNoValidationMessages()
        }
    }

    /// Ouro's Q-exit decision on the device after each pass (exit_decide.comp against
    /// CPUOps.exitDecide): alone on a given gate logit, and fused with the gate's one-output
    /// linear (bf16 weight, bias). The control rows (flags, passes used, Π(1 − λ)) match, and
    /// a section conditional on a flag runs exactly when the flag is set.
    @Test(.enabled(if: GPU.hasConditionalSections), arguments: [true, false])
    func exitDecision(fusedGate: Bool) throws {
        var rng = SeededRandom(seed: 26)
        let dim = 40, passes = 4
        let width = ExitControl.width(passes: passes)
        for (threshold, minPasses) in [(Float(0.5), 1), (0.9, 2), (0.0, 3), (1.0, 1)] {
            let w = WeightStore(checkpoint: nil)
            addWeight(w, "gate", .bf16, [1, dim], rng.floats(dim, 0.3))
            addWeight(w, "gate_b", .bf16, [1], rng.floats(1))
            let layout = BackendLayout(activations: ["x": dim, "exit": 1, ExitControl.act: width, "y": 1], kvSlots: 0, kvWidth: 1, maxContext: 4, maxRows: 1)
            let cpu = try CPUBackend(layout: layout, weights: w)
            let gpu = try VulkanBackend(context: GPU.context!, layout: layout, weights: w)
            let xs = (0..<passes).map { _ in rng.floats(dim, 2) }
            var rows: [[Float]] = []
            for b in [cpu as PlanBackend, gpu] {
                try b.write(ExitControl.act, values: ExitControl.initial(passes: passes))
                try b.write("y", values: [0])
                for t in 0..<passes {
                    try b.write("x", values: xs[t])
                    if !fusedGate { try b.write("exit", values: [Float(t) - 1.5]) }
                    var ops: [Op] = fusedGate ? [.linear(x: ActRef("x"), weight: WeightRef("gate"), bias: WeightRef("gate_b"), out: ActRef("exit"), inFeatures: dim, outFeatures: 1, accumulate: false)] : []
                    ops.append(.exitDecide(signal: ActRef("exit"), control: ActRef(ExitControl.act), pass: t, passes: passes, threshold: threshold, minPasses: minPasses))
                    // As in a token: the decision after pass t runs only if pass t ran.
                    try b.run(ops, section: SectionKey("decide\(t)-\(fusedGate)", rows: 1, condition: t == 0 ? nil : ExitControl.run(t)), tokens: [0], pos0: 0)
                    // A section conditional on the next pass's flag: y = t + 1 when it runs.
                    if t + 1 < passes {
                        try b.run([.unary(kind: .fill, x: ActRef("y"), out: ActRef("y"), dim: 1, scale: Float(t + 1))],
                                  section: SectionKey("count\(t)", rows: 1, condition: ExitControl.run(t + 1)), tokens: [0], pos0: 0)
                    }
                }
                rows.append(try b.read(ExitControl.act, rows: 1) + (try b.read("y", rows: 1)))
            }
            let (c, g) = (rows[0], rows[1])
            #expect(abs(c[0] - g[0]) <= 1e-5 * max(1, abs(c[0])), "remaining \(c[0]) vs \(g[0])")
            #expect(Array(c.dropFirst()) == Array(g.dropFirst()), "threshold \(threshold): \(c) vs \(g)")
            let used = Int(g[1])
            #expect(used >= minPasses && used <= passes)
            #expect(g[ExitControl.stoppedAfter(used, passes: passes)] == 1)
            #expect(g.last == Float(used - 1), "the conditional section ran for the wrong passes: \(g)")
            GPU.expectNoValidationMessages()
        }
    }
}
