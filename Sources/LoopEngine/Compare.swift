import Foundation
import LoopCore
import LoopVulkan

/// Error of one op kind in one section, GPU against the CPU reference.
public struct OpError: Sendable, Codable {
    public var section: String      // "prelude", "pass 1", ..., "head"
    public var op: String           // op kind (= shader name)
    public var count: Int
    public var maxAbs: Double
    public var nmse: Double
    public var threshold: Double
    public var nonFinite: Bool
    public var passed: Bool { !nonFinite && nmse <= threshold }
}

public struct CompareReport: Sendable, Codable {
    public var model: String
    public var device: String
    public var tokens: Int
    public var passes: Int
    /// Per (section, op kind), each op fed identical inputs (the GPU's activations are reset to
    /// the CPU's after every op), so an error points at one op.
    public var ops: [OpError]
    /// Per pass: the head's logits on each backend run independently end to end.
    public var logits: [OpError]
    /// The first op whose GPU output held NaN/Inf, if any ("pass 2 attention").
    public var firstNonFinite: String?
    public var passed: Bool { firstNonFinite == nil && ops.allSatisfy(\.passed) && logits.allSatisfy(\.passed) }
}

/// GPU vs CPU on the same input, op by op and pass by pass.
public enum Comparison {
    /// NMSE thresholds of the parity tests: products and attention 5e-4, the rest 1e-7.
    public static func threshold(for kind: String) -> Double {
        ["matmul", "attention"].contains(kind) ? 5e-4 : 1e-7
    }

    public static func run(gpu: Model, cpu: Model, tokens: [Int], logitsThreshold: Double = 5e-4) throws -> CompareReport {
        guard !tokens.isEmpty, tokens.count <= min(gpu.layout.maxRows, cpu.layout.maxRows) else {
            throw LoopError.invalidArgument("compare takes 1...\(gpu.layout.maxRows) tokens, got \(tokens.count)")
        }
        let plan = cpu.plan
        let ids = tokens.map { Int32($0) }
        let n = ids.count
        var stats: [String: OpError] = [:]
        var order: [String] = []
        var firstBad: String?

        func measure(_ a: [Float], _ b: [Float]) -> (Double, Double, Bool) {
            var maxAbs = 0.0, num = 0.0, den = 0.0
            var bad = false
            for i in a.indices {
                if !a[i].isFinite { bad = true; continue }
                let d = Double(a[i]) - Double(b[i])
                maxAbs = max(maxAbs, abs(d)); num += d * d; den += Double(b[i]) * Double(b[i])
            }
            return (maxAbs, den == 0 ? (num == 0 ? 0 : .infinity) : num / den, bad)
        }

        func runSection(_ name: String, _ ops: [Op]) throws {
            for (i, op) in ops.enumerated() {
                let key = SectionKey("cmp-\(name)-\(i)", rows: n)
                try cpu.backend.run([op], section: key, tokens: ids, pos0: 0)
                try gpu.backend.run([op], section: key, tokens: ids, pos0: 0)
                var g: [Float] = [], c: [Float] = []
                if let out = op.output {
                    c = try cpu.backend.read(out.name, rows: n)
                    g = try gpu.backend.read(out.name, rows: n)
                    try gpu.backend.write(out.name, values: c)    // resync: the next op sees identical inputs
                } else if case let .kvWrite(_, slot, part) = op {
                    c = try cpu.backend.readKV(slot: slot, part: part, rows: n)
                    g = try gpu.backend.readKV(slot: slot, part: part, rows: n)
                }
                guard !c.isEmpty else { continue }
                let (m, e, bad) = measure(g, c)
                let k = "\(name)|\(op.kindName)"
                if stats[k] == nil {
                    order.append(k)
                    stats[k] = OpError(section: name, op: op.kindName, count: 0, maxAbs: 0, nmse: 0, threshold: threshold(for: op.kindName), nonFinite: false)
                }
                stats[k]!.count += 1
                stats[k]!.maxAbs = max(stats[k]!.maxAbs, m)
                stats[k]!.nmse = max(stats[k]!.nmse, e)
                if bad {
                    stats[k]!.nonFinite = true
                    if firstBad == nil { firstBad = "\(name) op \(i) (\(op.kindName))" }
                }
            }
        }

        try runSection("prelude", plan.prelude)
        for t in 0..<plan.passCount { try runSection("pass \(t + 1)", plan.passes[t]) }
        try runSection("head", plan.head)

        // End to end per pass, no resync.
        let cpuLens = try cpu.lens(tokens: tokens)
        let gpuLens = try gpu.lens(tokens: tokens)
        var logits: [OpError] = []
        for t in 0..<plan.passCount {
            let (m, e, bad) = measure(gpuLens.logits[t], cpuLens.logits[t])
            logits.append(OpError(section: "pass \(t + 1)", op: "logits", count: 1, maxAbs: m, nmse: e, threshold: logitsThreshold, nonFinite: bad))
            if bad && firstBad == nil { firstBad = "pass \(t + 1) logits" }
        }
        return CompareReport(model: cpu.checkpoint.directory.lastPathComponent, device: gpu.backend.name, tokens: n,
                             passes: plan.passCount, ops: order.map { stats[$0]! }, logits: logits, firstNonFinite: firstBad)
    }
}

extension Comparison {
    /// The checks of a fixture folder's golden.safetensors (the official code's outputs pass by
    /// pass, KV cache, exit decisions, greedy ids; see LoopCore's `checkGoldens`) on `backend`
    /// with the kernel configuration `kernels` (after the device's defaults and
    /// `LOOPVK_KERNELS`). Tolerance |x − g| <= atol + rtol·|g|: 1e-4 each is what the fp32
    /// goldens hold with `kv=f32`. `numerics` `.bf16` checks golden_bf16.safetensors (the
    /// bfloat16 reference run) on the CPU reference; nil tolerances there report the errors and
    /// require the exact checks only.
    public static func goldens(directory: URL, backend: BackendChoice, kernels: String?, atol: Float? = nil, rtol: Float? = nil,
                               numerics: Numerics = .fp32, goldenFile: String? = nil) throws -> GoldenComparer {
        let make: BackendFactory
        switch backend {
        case .cpu:
            let config = try KernelConfig.resolve(for: .cpuReference, deviceName: "cpu-reference", override: kernels, check: false)
            make = { plan, weights in try CPUBackend(layout: BackendLayout(plan: plan, maxRows: 64, maxContext: 256), weights: weights, kernels: config) }
        case .vulkan(let name):
            let ctx = try VulkanContext(deviceName: name)
            let config = try KernelConfig.resolve(for: ctx.info.traits, deviceName: ctx.info.name, override: kernels)
            make = { plan, weights in
                try VulkanBackend(context: ctx, layout: BackendLayout(plan: plan, maxRows: 64, maxContext: 256), weights: weights, kernels: config)
            }
        }
        return try checkGoldens(directory: directory, makeBackend: make, atol: atol, rtol: rtol, numerics: numerics, goldenFile: goldenFile)
    }
}

/// One pass of a model against a reference model on the same tokens (`loopvk compare
/// --against`): how far a weight format (a quantized file, an MLX folder) moves the logits.
public struct PassAgreement: Sendable, Codable {
    public var pass: Int
    /// Mean and largest KL(reference ‖ model) of the next-token distributions over the positions.
    public var meanKL: Double
    public var maxKL: Double
    /// Fraction of positions whose top-1 token is the reference's.
    public var top1: Double
    /// sqrt(sum (a - b)^2 / sum b^2) over all logits.
    public var relRMS: Double
}

extension Comparison {
    /// `model` against `reference` end to end, pass by pass: both run `tokens` through the
    /// lens (every pass's head logits at every position). The two must have the same vocabulary
    /// and number of passes.
    public static func agreement(model: Model, reference: Model, tokens: [Int]) throws -> [PassAgreement] {
        guard model.plan.vocab == reference.plan.vocab else {
            throw LoopError.invalidArgument("the models' vocabularies differ (\(model.plan.vocab) and \(reference.plan.vocab))")
        }
        guard model.plan.passCount == reference.plan.passCount else {
            throw LoopError.invalidArgument("the models run \(model.plan.passCount) and \(reference.plan.passCount) passes; give --passes")
        }
        let a = try model.lens(tokens: tokens), b = try reference.lens(tokens: tokens)
        let v = model.plan.vocab
        return (0..<model.plan.passCount).map { t in
            let x = a.logits[t], y = b.logits[t]
            var klSum = 0.0, klMax = 0.0, agree = 0, num = 0.0, den = 0.0
            for p in 0..<tokens.count {
                let r = (p * v)..<((p + 1) * v)
                let lq = logSoftmax(x[r]), lp = logSoftmax(y[r])
                var kl = 0.0
                for i in 0..<v { kl += exp(lp[i]) * (lp[i] - lq[i]) }
                klSum += kl; klMax = max(klMax, kl)
                if argmax(x[r]) == argmax(y[r]) { agree += 1 }
                for i in r { let d = Double(x[i]) - Double(y[i]); num += d * d; den += Double(y[i]) * Double(y[i]) }
            }
            let n = Double(tokens.count)
            return PassAgreement(pass: t + 1, meanKL: klSum / n, maxKL: klMax, top1: Double(agree) / n, relRMS: den > 0 ? (num / den).squareRoot() : 0)
        }
    }

    static func logSoftmax(_ s: ArraySlice<Float>) -> [Double] {
        let m = Double(s.max() ?? 0)
        let lse = m + log(s.reduce(0.0) { $0 + exp(Double($1) - m) })
        return s.map { Double($0) - lse }
    }

    /// The first index of the largest value.
    static func argmax(_ s: ArraySlice<Float>) -> Int {
        var best = s.startIndex
        for i in s.indices where s[i] > s[best] { best = i }
        return best - s.startIndex
    }
}
