import Foundation
import LoopCore
import LoopVulkan

/// Prefill and decode throughput against the memory-bandwidth roofline.
public struct BenchReport: Sendable, Codable {
    public struct Stat: Sendable, Codable {
        public var median: Double
        public var min: Double
        public var max: Double
        init(_ xs: [Double]) {
            let s = xs.sorted()
            median = s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
            min = s.first ?? 0
            max = s.last ?? 0
        }
    }
    public var model: String
    public var device: String
    public var passes: Int
    public var promptTokens: Int
    public var decodeTokens: Int
    public var runs: Int
    public var prefillTokensPerSecond: Stat
    public var decodeTokensPerSecond: Stat
    /// Weights (looped ones once per pass) + KV + head, per decode token at the mean position.
    public var bytesPerDecodeToken: Double
    public var decodeGBPerSecond: Double
    /// The device's bandwidth measured in this run by the copy shader (read + write bytes / s).
    public var copyGBPerSecond: Double
    /// Weight-read bandwidth through the device's read path (64 MiB bf16 one-row product).
    public var readGBPerSecond: Double
    /// Decode GB/s over the larger of the two measured bandwidths.
    public var rooflineFraction: Double
    public var dispatchesPerToken: Int
    public var barriersPerToken: Int
    /// Host time per decode token spent recording (once, amortised) and submitting + waiting.
    public var recordMicrosTotal: Double
    public var replayMicrosPerToken: Double
    public var cpuDecodeTokensPerSecond: Double?
    public var cpuPrefillTokensPerSecond: Double?
    public var speedupVsCPU: Double?
}

public enum Bench {
    /// A deterministic prompt of `n` ids below `vocab`.
    static func prompt(_ n: Int, vocab: Int) -> [Int] {
        var rng = SplitMix64(seed: 7)
        return (0..<n).map { _ in Int(rng.next() % UInt64(max(vocab - 1, 1))) + 1 }
    }

    /// Copy-shader bandwidth: one 64 MiB (or smaller, within the binding limit) copy replayed.
    public static func copyBandwidth(context: VulkanContext, megabytes: Int = 64, repeats: Int = 5) throws -> Double {
        let limit = Int(context.info.maxStorageBufferRange)
        let rows = 8
        let width = min(megabytes << 20, limit) / (rows * 4) / 64 * 64
        let layout = BackendLayout(activations: ["a": width, "b": width], kvSlots: 0, kvWidth: 1, maxContext: rows, maxRows: rows)
        let vb = try VulkanBackend(context: context, layout: layout, weights: WeightStore(checkpoint: nil))
        let op = Op.copy(src: ActRef("a"), out: ActRef("b"), width: width)
        let tokens = [Int32](repeating: 0, count: rows)
        try vb.run([op], section: SectionKey("copy", rows: rows), tokens: tokens, pos0: 0)    // warm-up + record
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try vb.run([op], section: SectionKey("copy", rows: rows), tokens: tokens, pos0: 0)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return Double(2 * rows * width * 4) / best / 1e9
    }

    /// Read bandwidth through the device's own weight read path: a one-row product over a
    /// 64 MiB bf16 matrix (what decode does), timed over replays. On lavapipe the texel read
    /// path is several times faster than the storage-buffer copy shader. Kernel work:
    /// `LOOPVK_PROBE=OUTxINxN` times N products over N distinct OUTxIN matrices instead (distinct,
    /// so a small matrix is not served from cache; one barrier between them, as in decode);
    /// `OUTxINxNxROWS` multiplies ROWS rows at once (the prefill product) and also prints GFLOP/s.
    public static func readBandwidth(context: VulkanContext, repeats: Int = 5) throws -> Double {
        var inF = 1024, outF = 32768, count = 1, rows = 1
        if let v = LoopEnvironment.probe {
            let a = v.split(separator: "x").compactMap { Int($0) }
            if a.count >= 3, a.allSatisfy({ $0 >= 1 }) { outF = a[0]; inF = a[1]; count = a[2] }
            if a.count == 4, a[3] >= 1 { rows = a[3] }
        }
        let store = WeightStore(checkpoint: nil)
        for i in 0..<count { store.add(i == 0 ? "probe" : "probe\(i)", dtype: .bf16, shape: [outF, inF], data: Data(count: outF * inF * 2)) }
        let layout = BackendLayout(activations: ["x": inF, "y": outF], kvSlots: 0, kvWidth: 1, maxContext: rows, maxRows: rows)
        let vb = try VulkanBackend(context: context, layout: layout, weights: store)
        let op = Op.linear(x: ActRef("x"), weight: WeightRef("probe"), bias: nil, out: ActRef("y"), inFeatures: inF, outFeatures: outF, accumulate: false)
        let ops = (0..<count).map { i in i == 0 ? op : Op.linear(x: ActRef("x"), weight: WeightRef("probe\(i)"), bias: nil, out: ActRef("y"), inFeatures: inF, outFeatures: outF, accumulate: false) }
        let tokens = [Int32](repeating: 0, count: rows)
        try vb.run(ops, section: SectionKey("probe", rows: rows), tokens: tokens, pos0: 0)
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try vb.run(ops, section: SectionKey("probe", rows: rows), tokens: tokens, pos0: 0)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        if rows > 1 {
            let gflops = Double(2 * rows * count * outF * inF) / best / 1e9
            FileHandle.standardError.write("probe: \(count) x [\(rows) x \(inF)] * [\(inF) x \(outF)]^T bf16 in \(String(format: "%.2f", best * 1e3)) ms: \(String(format: "%.1f", gflops)) GFLOP/s\n".data(using: .utf8)!)
        }
        return Double(count * outF * inF * 2) / best / 1e9
    }

    public static func run(gpu: Model, cpu: Model?, promptTokens: Int, decodeTokens: Int, runs: Int, warmup: Int,
                           cpuDecodeTokens: Int = 8, progress: ((String) -> Void)? = nil) throws -> BenchReport {
        guard let vb = gpu.vulkan else { throw LoopError.invalidArgument("bench measures a Vulkan device; the CPU reference is measured alongside") }
        guard promptTokens >= 2, decodeTokens >= 1, runs >= 1, warmup >= 0 else {
            throw LoopError.invalidArgument("bench needs --prompt-tokens >= 2, --decode-tokens >= 1, --runs >= 1")
        }
        guard promptTokens + decodeTokens <= gpu.layout.maxContext else {
            throw LoopError.invalidArgument("prompt + decode tokens (\(promptTokens + decodeTokens)) exceed the context \(gpu.layout.maxContext)")
        }
        let prompt = Self.prompt(promptTokens, vocab: gpu.plan.vocab)
        var options = GenerationOptions()
        options.maxTokens = decodeTokens
        options.ignoreEOS = true
        let gen = Generator(model: gpu)
        for i in 0..<warmup { progress?("warm-up \(i + 1)/\(warmup)"); _ = try gen.generate(prompt: prompt, options: options) }
        var prefill: [Double] = [], decode: [Double] = [], replay: [Double] = []
        for i in 0..<runs {
            progress?("run \(i + 1)/\(runs)")
            let submit0 = vb.submitSeconds
            let r = try gen.generate(prompt: prompt, options: options)
            prefill.append(r.prefillTokensPerSecond)
            decode.append(r.decodeTokensPerSecond)
            replay.append((vb.submitSeconds - submit0) / Double(promptTokens - 1 + decodeTokens))
        }
        let cost = OpCost(model: gpu)
        let pos = promptTokens + decodeTokens / 2
        let tokenOps = gen.prelude + gen.passes.flatMap { $0 } + gen.headArgmax
        let bytes = cost.bytes(tokenOps, rows: 1, pos0: pos)
        progress?("copy bandwidth")
        let copy = try copyBandwidth(context: vb.context)
        progress?("read bandwidth")
        let read = try readBandwidth(context: vb.context)
        let roof = max(copy, read)
        var dispatches = 0, barriers = 0
        for name in ["prelude", "head-argmax"] + (0..<gpu.plan.passCount).map({ "pass\($0)" }) {
            if let c = vb.recordedCounts(SectionKey(name, rows: 1)) { dispatches += c.dispatches; barriers += c.barriers }
        }
        let decodeStat = BenchReport.Stat(decode)
        var report = BenchReport(model: gpu.checkpoint.directory.lastPathComponent, device: vb.context.info.name, passes: gpu.plan.passCount,
                                 promptTokens: promptTokens, decodeTokens: decodeTokens, runs: runs,
                                 prefillTokensPerSecond: .init(prefill), decodeTokensPerSecond: decodeStat,
                                 bytesPerDecodeToken: bytes, decodeGBPerSecond: bytes * decodeStat.median / 1e9, copyGBPerSecond: copy,
                                 readGBPerSecond: read, rooflineFraction: roof > 0 ? bytes * decodeStat.median / 1e9 / roof : 0,
                                 dispatchesPerToken: dispatches, barriersPerToken: barriers,
                                 recordMicrosTotal: vb.recordSeconds * 1e6,
                                 replayMicrosPerToken: BenchReport.Stat(replay).median * 1e6)
        if let cpu {
            progress?("CPU reference")
            var o = options
            o.maxTokens = min(cpuDecodeTokens, decodeTokens)
            let r = try Generator(model: cpu).generate(prompt: prompt, options: o)
            report.cpuDecodeTokensPerSecond = r.decodeTokensPerSecond
            report.cpuPrefillTokensPerSecond = r.prefillTokensPerSecond
            report.speedupVsCPU = r.decodeTokensPerSecond > 0 ? decodeStat.median / r.decodeTokensPerSecond : nil
        }
        return report
    }
}
