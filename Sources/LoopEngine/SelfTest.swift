import Foundation
import LoopCore
import LoopVulkan

/// `loopvk selftest`: how a user checks a Vulkan device. Every op, in the variants the device's
/// kernel configuration uses (each weight dtype, odd and aligned sizes, fused shapes, grids over
/// the workgroup-count limit, a weight over the storage-binding limit where that fits in
/// 256 MiB), runs on the device and on the CPU twin from the same random inputs; outputs must be
/// finite and within the parity thresholds (NMSE <= 1e-7 elementwise, norms and rope; <= 5e-4
/// products and attention). Then the bundled model, pass by pass, against the CPU reference.
/// The validation layer is on where it is installed, and any message it prints is a failure.
public enum SelfTest {
    public struct Failure: Codable, Sendable, CustomStringConvertible {
        /// The op (or "model"), the variant (dtype, path, fusion) and the size that failed.
        public var op: String
        public var variant: String
        public var size: String
        public var detail: String
        public var description: String { "FAIL \(op) [\(variant)] \(size): \(detail)" }
    }

    public struct Report: Codable, Sendable {
        public var device: String
        public var kernels: String
        public var validation: Bool
        public var cases: Int
        public var failures: [Failure]
        public var seconds: Double
        public var passed: Bool { failures.isEmpty }
    }

    /// Runs every case on `device` (nil: the default device) with the kernel configuration's
    /// overrides `kernels`; `model`: the bundled model's folder for the end-to-end check (nil:
    /// skipped). `progress` gets one line per op family.
    public static func run(device: String?, kernels: String?, model: URL?, progress: (String) -> Void = { _ in }) throws -> Report {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let context = try VulkanContext(deviceName: device, validation: true)
        let config = try KernelConfig.resolve(for: context.info.traits, deviceName: context.info.name, override: kernels)
        ValidationLog.reset()
        var runner = Runner(context: context, config: config)
        for (family, cases) in Cases.all(context.info) {
            progress("\(family): \(cases.count) cases")
            for c in cases { runner.check(c) }
        }
        if let model {
            progress("bundled model: per-pass logits against the CPU reference")
            runner.checkModel(model, kernels: kernels, device: device)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return Report(device: context.info.name, kernels: config.description, validation: context.validationEnabled, cases: runner.cases,
                      failures: runner.failures, seconds: seconds)
    }

    /// One op case: ops over random inputs, compared on `outputs`.
    struct Case {
        var op: String
        var variant: String
        var size: String
        var acts: [String: Int]
        var kvSlots = 0
        var kvWidth = 1
        var maxContext = 64
        var rows: Int
        var pos0 = 0
        var tokens: [Int32]?
        var weights: [(name: String, dtype: DType, shape: [Int], scale: Float)] = []
        var computed: [(name: String, shape: [Int], values: [Float])] = []
        var inputs: [String: Float] = [:]          // activation -> random scale
        var fixed: [String: [Float]] = [:]          // activation -> values (written after the random ones)
        var setup: [Op] = []
        var setupRows = 0
        var ops: [Op]
        var outputs: [String]
        var threshold: Double
        /// The KV cache type this case runs with (nil: the configuration's).
        var kv: KVCacheType? = nil
        /// Kernel overrides this case runs with on top of the configuration (e.g. `splits=3`).
        var kernels: String? = nil
    }

    struct Runner {
        let context: VulkanContext
        let config: KernelConfig
        var cases = 0
        var failures: [Failure] = []
        var rng = SplitMix64(seed: 2026)

        init(context: VulkanContext, config: KernelConfig) { self.context = context; self.config = config }

        mutating func floats(_ n: Int, _ scale: Float) -> [Float] {
            (0..<n).map { _ in Float(rng.nextDouble() * 2 - 1) * scale }
        }

        mutating func fail(_ c: Case, _ detail: String) {
            failures.append(Failure(op: c.op, variant: c.op == "model" ? "\(config.read) path" : "\(config.read) \(c.variant)", size: c.size, detail: detail))
        }

        mutating func check(_ c: Case) {
            cases += 1
            do {
                let store = WeightStore(checkpoint: nil)
                for w in c.weights { store.add(w.name, dtype: w.dtype, shape: w.shape, floats: floats(w.shape.reduce(1, *), w.scale)) }
                for t in c.computed { store.add(t.name, shape: t.shape, floats: t.values) }
                let maxRows = max(c.rows, c.setupRows)
                let layout = BackendLayout(activations: c.acts, kvSlots: c.kvSlots, kvWidth: c.kvWidth,
                                           maxContext: max(c.maxContext, c.pos0 + maxRows), maxRows: maxRows)
                var values: [String: [Float]] = [:]
                for (name, scale) in c.inputs.sorted(by: { $0.key < $1.key }) { values[name] = floats(maxRows * c.acts[name]!, scale) }
                for (name, v) in c.fixed { values[name] = v }
                var cfg = config
                if let kv = c.kv { cfg.kv = kv }
                if let k = c.kernels { cfg = try cfg.applying(k, device: context.info.traits, source: "self-test case") }
                let cpu = try CPUBackend(layout: layout, weights: store, kernels: cfg)
                let gpu = try VulkanBackend(context: context, layout: layout, weights: store, kernels: cfg)
                for backend in [cpu as PlanBackend, gpu] {
                    for (k, v) in values { try backend.write(k, values: v) }
                    if !c.setup.isEmpty {
                        try backend.run(c.setup, section: SectionKey("setup", rows: c.setupRows), tokens: [Int32](repeating: 0, count: c.setupRows), pos0: 0)
                    }
                    try backend.run(c.ops, section: SectionKey("case", rows: c.rows), tokens: c.tokens ?? [Int32](repeating: 0, count: c.rows), pos0: c.pos0)
                }
                for out in c.outputs {
                    let want = try cpu.read(out, rows: c.rows), got = try gpu.read(out, rows: c.rows)
                    if let bad = got.firstIndex(where: { !$0.isFinite }) { fail(c, "\(out)[\(bad)] = \(got[bad]) (NaN/Inf)"); continue }
                    let e = Parity.nmse(got, want)
                    if !(e <= c.threshold) { fail(c, "\(out): NMSE \(String(format: "%.3g", e)) > \(c.threshold)") }
                }
            } catch {
                fail(c, "error: \(error)")
            }
            let messages = ValidationLog.all
            if !messages.isEmpty {
                fail(c, "validation: \(messages.prefix(2).joined(separator: " | "))")
                ValidationLog.reset()
            }
        }

        /// The bundled model's state and logits after every pass, prompt rows and one decode
        /// row, on the device against the CPU reference.
        mutating func checkModel(_ dir: URL, kernels: String?, device: String?) {
            let c = Case(op: "model", variant: config.description, size: dir.lastPathComponent, acts: [:], rows: 1, ops: [], outputs: [], threshold: 5e-4)
            cases += 1
            do {
                let gpuModel = try Model(directory: dir, backend: .vulkan(device: device), maxContext: 64, maxRows: 16, kernels: kernels)
                let cpuModel = try Model(directory: dir, backend: .cpu, maxContext: 64, maxRows: 16, kernels: kernels)
                let tokens: [Int32] = (0..<9).map { Int32(($0 * 37 + 11) % gpuModel.plan.vocab) }
                var outs: [[[Float]]] = []
                for m in [cpuModel, gpuModel] {
                    var perPass: [[Float]] = []
                    let n = tokens.count
                    try m.backend.run(m.plan.prelude, section: SectionKey("prelude", rows: n), tokens: tokens, pos0: 0)
                    for (t, ops) in m.plan.passes.enumerated() {
                        try m.backend.run(ops, section: SectionKey("pass\(t)", rows: n), tokens: tokens, pos0: 0)
                        perPass.append(try m.backend.read(m.plan.stateAct, rows: n))
                    }
                    try m.backend.run(m.plan.head, section: SectionKey("head", rows: n), tokens: tokens, pos0: 0)
                    perPass.append(try m.backend.read(m.plan.logitsAct, rows: n))
                    outs.append(perPass)
                }
                for (t, (want, got)) in zip(outs[0], outs[1]).enumerated() {
                    let what = t < outs[0].count - 1 ? "state after pass \(t + 1)" : "logits"
                    if got.contains(where: { !$0.isFinite }) { fail(c, "\(what): NaN/Inf"); continue }
                    let e = Parity.nmse(got, want)
                    if !(e <= 1e-6) { fail(c, "\(what): NMSE \(String(format: "%.3g", e)) > 1e-6") }
                }
            } catch {
                fail(c, "error: \(error)")
            }
        }
    }
}

extension SelfTest {
    /// The cases, by op family.
    enum Cases {
        static let dtypes: [DType] = [.f32, .f16, .bf16]
        /// The block formats (linear_block.comp, embedding.comp's block branch): GGUF's and two MLX variants.
        static let blockDTypes: [DType] = [.q8_0, .q4_0, .q4_k, .q6_k, .mlx4g64bf16, .mlx8g32f16]

        static func all(_ info: DeviceInfo) -> [(String, [Case])] {
            [("embedding", embedding()), ("norms", norms()), ("linear", linear(info)), ("block formats", blockFormats()), ("rope and KV", eachKVType(ropeKV(), info)),
             ("attention", eachKVType(attention(), info)), ("elementwise", elementwise()), ("exit decision", exitDecide())]
        }

        /// Cases that use a KV cache, once per cache type the device can hold (f16 needs 16-bit storage).
        static func eachKVType(_ cases: [Case], _ info: DeviceInfo) -> [Case] {
            let types: [KVCacheType] = info.storageBuffer16Bit ? [.f32, .f16] : [.f32]
            return cases.flatMap { c -> [Case] in
                guard c.kvSlots > 0 else { return [c] }
                return types.map { t in
                    var d = c
                    d.kv = t
                    d.variant += " kv=\(t)"
                    return d
                }
            }
        }

        static func embedding() -> [Case] {
            dtypes.map { dt in
                Case(op: "embed", variant: "\(dt)", size: "37x45", acts: ["out": 48], rows: 7, tokens: [0, 5, 36, 5, 17, 2, 9],
                     weights: [("emb", dt, [37, 45], 1)],
                     ops: [.embed(table: WeightRef("emb"), vocab: 37, dim: 45, out: ActRef("out", col: 2), scale: 1.7)], outputs: ["out"], threshold: 1e-7)
            }
        }

        /// Products and gathers over each block format: decode, a partial row group and prefill
        /// rows, rows read from an offset, bias and accumulation.
        static func blockFormats() -> [Case] {
            var out: [Case] = []
            for dt in blockDTypes {
                let inF = 512
                for (rows, outF) in [(1, 67), (3, 19), (70, 24)] {
                    out.append(Case(op: "linear", variant: "\(dt.weightFormat!.name) accumulate bias", size: "\(rows)x\(inF)->\(outF)",
                                    acts: ["x": inF + 1, "y": outF + 2], rows: rows,
                                    weights: [("W", dt, [outF + 2, inF], 0.2), ("b", .bf16, [outF], 1)], inputs: ["x": 1, "y": 1],
                                    ops: [.linear(x: ActRef("x", col: 1), weight: WeightRef("W", offset: 2 * inF), bias: WeightRef("b"),
                                                  out: ActRef("y", col: 1), inFeatures: inF, outFeatures: outF, accumulate: true)],
                                    outputs: ["y"], threshold: accumulationNMSE))
                }
                out.append(Case(op: "embed", variant: "\(dt.weightFormat!.name)", size: "37x256", acts: ["out": 259], rows: 7, tokens: [0, 5, 36, 5, 17, 2, 9],
                                weights: [("emb", dt, [37, 256], 1)],
                                ops: [.embed(table: WeightRef("emb"), vocab: 37, dim: 256, out: ActRef("out", col: 2), scale: 1.7)], outputs: ["out"], threshold: 1e-7))
            }
            return out
        }

        static func norms() -> [Case] {
            var out: [Case] = []
            for dt in dtypes {
                for dim in [131, 132] {
                    for mode in [NormMode.plain, .accumulate, .normalizeSum] {
                        out.append(Case(op: "rmsnorm", variant: "\(dt) \(mode)", size: "5x\(dim)", acts: ["x": dim, "a": dim, "o": dim], rows: 5,
                                        weights: [("g", dt, [dim], 2)], inputs: ["x": 3, "a": 1, "o": 1],
                                        ops: [.rmsNorm(x: ActRef("x"), add: mode == .normalizeSum ? ActRef("a") : nil, weight: WeightRef("g"),
                                                       out: ActRef("o"), dim: dim, groups: 1, eps: 1e-6, mode: mode)],
                                        outputs: ["o"], threshold: 1e-7))
                    }
                    // Norm + residual + the next norm (fused into one dispatch).
                    out.append(Case(op: "rmsnorm+rmsnorm", variant: "\(dt)", size: "5x\(dim)", acts: ["x": dim, "a": dim, "o": dim, "o2": dim], rows: 5,
                                    weights: [("g", dt, [dim], 2), ("g2", dt, [dim], 2)], inputs: ["x": 3, "a": 1, "o": 1],
                                    ops: [.rmsNorm(x: ActRef("x"), add: ActRef("a"), weight: WeightRef("g"), out: ActRef("o"), dim: dim, groups: 1, eps: 1e-6, mode: .normalizeSum),
                                          .rmsNorm(x: ActRef("o"), add: nil, weight: WeightRef("g2"), out: ActRef("o2"), dim: dim, groups: 1, eps: 1e-5, mode: .plain)],
                                    outputs: ["o", "o2"], threshold: 1e-7))
                }
                out.append(Case(op: "layernorm", variant: "\(dt)", size: "3x77", acts: ["x": 77, "o": 77], rows: 3,
                                weights: [("w", dt, [77], 1), ("b", .f32, [77], 1)], inputs: ["x": 4],
                                ops: [.layerNorm(x: ActRef("x"), weight: WeightRef("w"), bias: WeightRef("b"), out: ActRef("o"), dim: 77, eps: 1e-5)],
                                outputs: ["o"], threshold: 1e-7))
            }
            out.append(Case(op: "rmsnorm", variant: "per-head groups", size: "4x3x16", acts: ["q": 48, "o": 48], rows: 4,
                            weights: [("qn", .bf16, [16], 1)], inputs: ["q": 2],
                            ops: [.rmsNorm(x: ActRef("q"), add: nil, weight: WeightRef("qn"), out: ActRef("o"), dim: 16, groups: 3, eps: 1e-6, mode: .plain)],
                            outputs: ["o"], threshold: 1e-7))
            return out
        }

        /// Products and attention accumulate in fp32 on both sides, in different orders, so
        /// they agree with their twins far below 1e-5 NMSE (the f16 KV cache rounds the same way
        /// on both); 1e-5 flags an output off by 1% (NMSE 1e-4), which `compare`'s 5e-4 lets
        /// through.
        static let accumulationNMSE = 1e-5

        static func linear(_ info: DeviceInfo) -> [Case] {
            var out: [Case] = []
            let shapes = [(1, 96, 33, 1), (1, 257, 130, 0), (1, 1024, 19, 0), (1, 128, 283, 8), (7, 45, 67, 1), (70, 131, 65, 1), (64, 1024, 96, 0), (9, 256, 40, 0)]
            for dt in dtypes {
                for (rows, inF, outF, xCol) in shapes {
                    for (acc, bias) in [(false, false), (true, true)] {
                        out.append(Case(op: "linear", variant: "\(dt)\(acc ? " accumulate" : "")\(bias ? " bias" : "")", size: "\(rows)x\(inF)->\(outF)",
                                        acts: ["x": inF + xCol, "y": outF + 2], rows: rows,
                                        weights: [("W", dt, [outF, inF], 0.2), ("b", dt, [outF], 1)], inputs: ["x": 1, "y": 1],
                                        ops: [.linear(x: ActRef("x", col: xCol), weight: WeightRef("W"), bias: bias ? WeightRef("b") : nil,
                                                      out: ActRef("y", col: 1), inFeatures: inF, outFeatures: outF, accumulate: acc)],
                                        outputs: ["y"], threshold: accumulationNMSE))
                    }
                }
                // The stacked gate/up product with the gated SiLU, decode and prefill rows.
                for rows in [1, 13] {
                    out.append(Case(op: "linear+silu_mul", variant: "\(dt)", size: "\(rows)x64->2x96", acts: ["x": 64, "gu": 192, "h": 100], rows: rows,
                                    weights: [("W", dt, [192, 64], 0.2)], inputs: ["x": 1],
                                    ops: [.linear(x: ActRef("x"), weight: WeightRef("W"), bias: nil, out: ActRef("gu"), inFeatures: 64, outFeatures: 192, accumulate: false),
                                          .siluMul(gate: ActRef("gu"), up: ActRef("gu", col: 96), out: ActRef("h", col: 4), dim: 96)],
                                    outputs: ["h"], threshold: accumulationNMSE))
                }
                // Greedy decode's head and argmax.
                out.append(Case(op: "linear+argmax", variant: "\(dt)", size: "1x128->3001", acts: ["x": 128, "logits": 3001, "am": 1], rows: 1,
                                weights: [("W", dt, [3001, 128], 0.5)], inputs: ["x": 1],
                                ops: [.linear(x: ActRef("x"), weight: WeightRef("W"), bias: nil, out: ActRef("logits"), inFeatures: 128, outFeatures: 3001, accumulate: false),
                                      .argmax(x: ActRef("logits"), out: ActRef("am"), dim: 3001)],
                                outputs: ["am"], threshold: 0))
            }
            // More output features than one dispatch may launch workgroups in x.
            let wide = info.maxWorkGroupCount[0] + 4477
            out.append(Case(op: "linear", variant: "bf16, grid over maxComputeWorkGroupCount[0] \(info.maxWorkGroupCount[0])", size: "1x16->\(wide)",
                            acts: ["x": 16, "y": wide], rows: 1, weights: [("W", .bf16, [wide, 16], 0.2)], inputs: ["x": 1],
                            ops: [.linear(x: ActRef("x"), weight: WeightRef("W"), bias: nil, out: ActRef("y"), inFeatures: 16, outFeatures: wide, accumulate: false)],
                            outputs: ["y"], threshold: accumulationNMSE))
            // A weight larger than one storage binding (bound in row chunks), where that is small enough to test.
            let range = Int(info.maxStorageBufferRange)
            if range <= 256 << 20 {
                let inF = 2048, rows = range / (inF * 2) + 37
                out.append(Case(op: "linear", variant: "bf16, W over maxStorageBufferRange \(range)", size: "1x\(inF)->\(rows)",
                                acts: ["x": inF, "y": rows], rows: 1, weights: [("W", .bf16, [rows, inF], 0.05)], inputs: ["x": 1],
                                ops: [.linear(x: ActRef("x"), weight: WeightRef("W"), bias: nil, out: ActRef("y"), inFeatures: inF, outFeatures: rows, accumulate: false)],
                                outputs: ["y"], threshold: accumulationNMSE))
            }
            return out
        }

        static func ropeTable(positions: Int, headDim: Int) -> [Float] {
            var t = [Float](repeating: 0, count: positions * headDim)
            for p in 0..<positions {
                for i in 0..<(headDim / 2) {
                    let inv = pow(10000, -Double(2 * i) / Double(headDim))
                    t[(p * headDim / 2 + i) * 2] = Float(cos(Double(p) * inv))
                    t[(p * headDim / 2 + i) * 2 + 1] = Float(sin(Double(p) * inv))
                }
            }
            return t
        }


        static func ropeKV() -> [Case] {
            var out: [Case] = []
            for layout in [RopeLayout.rotateHalf, .interleaved] {
                for (heads, hd, col) in [(3, 16, 4), (5, 96, 4), (2, 10, 4), (3, 16, 1)] {
                    out.append(Case(op: "rope", variant: "\(layout)", size: "6x\(heads)x\(hd) at column \(col)", acts: ["q": heads * hd + 4], kvWidth: 4,
                                    maxContext: 300, rows: 6, pos0: 250, computed: [("rope", [300, hd / 2, 2], ropeTable(positions: 300, headDim: hd))],
                                    inputs: ["q": 1], ops: [.rope(x: ActRef("q", col: col), heads: heads, headDim: hd, table: WeightRef("rope"), tablePositions: 300, layout: layout)],
                                    outputs: ["q"], threshold: 1e-7))
                }
                // Rope over q and k side by side, then the K and V cache writes (fused).
                let hd = 32, heads = 4, kvHeads = 2, kvW = kvHeads * hd
                out.append(Case(op: "rope+kv_write+kv_write", variant: "\(layout)", size: "5x(\(heads)+\(kvHeads))x\(hd)",
                                acts: ["qk": (heads + kvHeads) * hd, "v": kvW, "o": kvW], kvSlots: 1, kvWidth: kvW, maxContext: 40, rows: 5, pos0: 30,
                                computed: [("rope", [64, hd / 2, 2], ropeTable(positions: 64, headDim: hd))], inputs: ["qk": 1, "v": 1],
                                ops: [.rope(x: ActRef("qk"), heads: heads + kvHeads, headDim: hd, table: WeightRef("rope"), tablePositions: 64, layout: layout),
                                      .kvWrite(src: ActRef("qk", col: heads * hd), slot: 0, part: .k), .kvWrite(src: ActRef("v"), slot: 0, part: .v),
                                      .attention(q: ActRef("qk"), slot: 0, out: ActRef("o"), heads: kvHeads, kvHeads: kvHeads, headDim: hd, scale: 0.2)],
                                outputs: ["qk", "o"], threshold: accumulationNMSE))
            }
            out.append(Case(op: "kv_copy", variant: "8 buffers per dispatch", size: "3 slots x 48", acts: ["k": 48, "o": 48], kvSlots: 4, kvWidth: 48, maxContext: 16,
                            rows: 3, pos0: 5, inputs: ["k": 1],
                            setup: [.kvWrite(src: ActRef("k"), slot: 0, part: .k), .kvWrite(src: ActRef("k"), slot: 0, part: .v)], setupRows: 8,
                            ops: [.kvCopy(from: 0, to: 1), .kvCopy(from: 0, to: 2), .kvCopy(from: 0, to: 3),
                                  .attention(q: ActRef("k"), slot: 3, out: ActRef("o"), heads: 3, kvHeads: 3, headDim: 16, scale: 0.25)],
                            outputs: ["o"], threshold: accumulationNMSE))
            return out
        }

        static func attention() -> [Case] {
            [(55, 55, 96, 40, 3), (16, 16, 128, 33, 1), (4, 2, 16, 9, 4), (16, 4, 64, 2100, 1), (3, 3, 16, 1, 1), (2, 1, 256, 19, 5),
             (3, 1, 6, 7, 2), (4, 2, 32, 50, 19), (2, 2, 64, 70, 63)].map { heads, kvHeads, hd, context, rows in
                let kvW = kvHeads * hd
                return Case(op: "attention", variant: kvHeads == heads ? "MHA" : "GQA", size: "\(rows) rows of \(heads)x\(hd) over \(context) positions",
                            acts: ["k": kvW, "v": kvW, "q": heads * hd, "o": heads * hd], kvSlots: 2, kvWidth: kvW, maxContext: context,
                            rows: rows, pos0: context - rows, inputs: ["k": 2, "v": 1, "q": 2],
                            setup: [.kvWrite(src: ActRef("k"), slot: 1, part: .k), .kvWrite(src: ActRef("v"), slot: 1, part: .v)], setupRows: context,
                            ops: [.attention(q: ActRef("q"), slot: 1, out: ActRef("o"), heads: heads, kvHeads: kvHeads, headDim: hd, scale: 1 / Float(hd).squareRoot())],
                            outputs: ["o"], threshold: accumulationNMSE)
            } + attentionDecode()
        }

        /// Decode attention on the storage path's key clusters (attention.comp, workgroup
        /// reductions): head_dim 64 / 128 / 256, 100 (25 vec4 slices) and 6 (scalar slices), MHA
        /// and GQA, odd contexts whose keys cross the 64-key split boundaries, flash-decoding
        /// splits off, explicit (3; 7 leaves splits empty) and automatic (64 compute units).
        /// (Other configurations run them on their own attention kernels.)
        static func attentionDecode() -> [Case] {
            [(8, 2, 64, 129), (4, 4, 128, 200), (2, 1, 256, 77), (6, 3, 100, 301), (3, 1, 6, 65)].flatMap { heads, kvHeads, hd, context in
                ["1", "3", "7", "auto"].map { splits in
                    let kvW = kvHeads * hd
                    return Case(op: "attention", variant: "\(kvHeads == heads ? "MHA" : "GQA") key clusters splits=\(splits)",
                                size: "1 row of \(heads)x\(hd) over \(context) positions",
                                acts: ["k": kvW, "v": kvW, "q": heads * hd, "o": heads * hd], kvSlots: 2, kvWidth: kvW, maxContext: context,
                                rows: 1, pos0: context - 1, inputs: ["k": 2, "v": 1, "q": 2],
                                setup: [.kvWrite(src: ActRef("k"), slot: 1, part: .k), .kvWrite(src: ActRef("v"), slot: 1, part: .v)], setupRows: context,
                                ops: [.attention(q: ActRef("q"), slot: 1, out: ActRef("o"), heads: heads, kvHeads: kvHeads, headDim: hd, scale: 1 / Float(hd).squareRoot())],
                                outputs: ["o"], threshold: accumulationNMSE, kernels: "splits=\(splits),compute-units=64")
                }
            }
        }

        static func elementwise() -> [Case] {
            var out: [Case] = []
            for dim in [96, 99] {
                out.append(Case(op: "silu_mul", variant: dim % 4 == 0 ? "vec4" : "scalar", size: "4x\(dim)", acts: ["g": dim, "u": dim, "o": dim], rows: 4,
                                inputs: ["g": 3, "u": 1], ops: [.siluMul(gate: ActRef("g"), up: ActRef("u"), out: ActRef("o"), dim: dim)], outputs: ["o"], threshold: 1e-7))
            }
            for kind in [UnaryKind.sigmoid, .softplus, .exp, .silu, .fill, .scale] {
                out.append(Case(op: "unary", variant: "\(kind)", size: "3x70", acts: ["x": 72, "o": 70], rows: 3, inputs: ["x": 2],
                                ops: [.unary(kind: kind, x: ActRef("x", col: 2), out: ActRef("o"), dim: 70, scale: 0.7)], outputs: ["o"], threshold: 1e-7))
            }
            for kind in [BinaryKind.add, .sub, .mul] {
                out.append(Case(op: "binary", variant: "\(kind)", size: "3x70", acts: ["a": 70, "b": 71, "o": 70], rows: 3, weights: [("r", .f32, [80], 1)],
                                inputs: ["a": 1, "b": 1],
                                ops: [.binary(kind: kind, a: ActRef("a"), b: .act(ActRef("b", col: 1)), out: ActRef("o"), dim: 70),
                                      .binary(kind: kind, a: ActRef("o"), b: .row(WeightRef("r", offset: 3)), out: ActRef("o"), dim: 70)],
                                outputs: ["o"], threshold: 1e-7))
            }
            out.append(Case(op: "copy", variant: "columns", size: "3x50", acts: ["a": 53, "o": 60], rows: 3, inputs: ["a": 1, "o": 1],
                            ops: [.copy(src: ActRef("a", col: 3), out: ActRef("o", col: 7), width: 50)], outputs: ["o"], threshold: 0))
            for dim in [7, 32000] {
                out.append(Case(op: "argmax", variant: "", size: "2x\(dim)", acts: ["x": dim, "o": 2], rows: 2, inputs: ["x": 5],
                                ops: [.argmax(x: ActRef("x"), out: ActRef("o", col: 1), dim: dim)], outputs: ["o"], threshold: 0))
                out.append(Case(op: "softmax", variant: "", size: "2x\(dim)", acts: ["x": dim, "o": dim], rows: 2, inputs: ["x": 5],
                                ops: [.softmax(x: ActRef("x"), out: ActRef("o"), dim: dim)], outputs: ["o"], threshold: 1e-7))
            }
            return out
        }

        static func exitDecide() -> [Case] {
            let passes = 4, width = ExitControl.width(passes: passes)
            return [true, false].map { fused in
                let decide = Op.exitDecide(signal: ActRef("exit"), control: ActRef(ExitControl.act), pass: 1, passes: passes, threshold: 0.5, minPasses: 1)
                let gate = Op.linear(x: ActRef("x"), weight: WeightRef("gate"), bias: WeightRef("gate_b"), out: ActRef("exit"), inFeatures: 40, outFeatures: 1, accumulate: false)
                return Case(op: fused ? "linear+exit_decide" : "exit_decide", variant: "bf16 gate", size: "40", acts: ["x": 40, "exit": 1, ExitControl.act: width],
                            rows: 1, weights: [("gate", .bf16, [1, 40], 0.3), ("gate_b", .bf16, [1], 1)], inputs: ["x": 2, "exit": 3], fixed: [ExitControl.act: ExitControl.initial(passes: passes)],
                            ops: fused ? [gate, decide] : [decide], outputs: ["exit", ExitControl.act], threshold: 1e-7)
            }
        }
    }
}
