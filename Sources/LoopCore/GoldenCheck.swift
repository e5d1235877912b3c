import Foundation

// Golden checks of a fixture folder (config.json, model.safetensors and golden.safetensors with
// the official code's outputs per pass, see Tests/Fixtures/*/README.md) over any PlanBackend:
// the CPU and Vulkan test suites run them with their own backend factories, and
// `loopvk compare --golden` runs them on a chosen device.

public typealias BackendFactory = (LoopPlan, WeightStore) throws -> PlanBackend

/// Worst errors of one compared tensor.
public struct ErrorStat: CustomStringConvertible {
    public var name: String
    public var count = 0
    /// max |x − g|
    public var maxAbs: Float = 0
    /// max |x − g| / (1e-4 + 1e-4·|g|): ≤ 1 passes the fixture tolerance
    public var toleranceUse: Float = 0
    /// max |x − g| / max |g| (error relative to the tensor's scale)
    public var relToScale: Float = 0
    /// sqrt(Σ(x − g)² / Σg²)
    public var relRMS: Float = 0
    public var description: String {
        String(format: "%@: n=%d max|x-g|=%.3g rel-to-scale=%.3g rel-rms=%.3g tol-use=%.3f", name, count, maxAbs, relToScale, relRMS, toleranceUse)
    }
}

/// Compares tensors against goldens at |x − g| <= atol + rtol·|g| and keeps a report.
public final class GoldenComparer {
    public let fixture: String
    let atol: Float, rtol: Float
    /// false: `close` records the errors without failing (bf16 numerics against golden_bf16,
    /// where only the exact checks — greedy ids, exit choices — are required).
    public let enforceTolerance: Bool
    public private(set) var stats: [ErrorStat] = []
    public private(set) var exactChecks: [String] = []

    public private(set) var failures: [String] = []

    public init(fixture: String, atol: Float = 1e-4, rtol: Float = 1e-4, enforceTolerance: Bool = true) {
        self.fixture = fixture; self.atol = atol; self.rtol = rtol; self.enforceTolerance = enforceTolerance
    }

    /// Records a failure unless `condition` holds.
    public func require(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { failures.append("\(fixture): \(message())") }
    }
    public var passed: Bool { failures.isEmpty }

    @discardableResult
    public func close(_ name: String, _ got: [Float], _ want: [Float]) -> Bool {
        guard got.count == want.count else {
            failures.append("\(fixture) \(name): \(got.count) values, golden has \(want.count)")
            return false
        }
        var s = ErrorStat(name: name, count: got.count)
        var worstIndex = -1
        var scale: Float = 0
        var sqErr: Double = 0, sqRef: Double = 0
        for (i, (x, g)) in zip(got, want).enumerated() {
            let err = x.isNaN ? Float.infinity : abs(x - g)
            scale = max(scale, abs(g))
            sqErr += Double(err) * Double(err); sqRef += Double(g) * Double(g)
            s.maxAbs = max(s.maxAbs, err)
            let use = err / (atol + rtol * abs(g))
            if use > s.toleranceUse { s.toleranceUse = use; worstIndex = i }
        }
        s.relToScale = scale > 0 ? s.maxAbs / scale : s.maxAbs
        s.relRMS = Float(sqRef > 0 ? (sqErr / sqRef).squareRoot() : sqErr.squareRoot())
        stats.append(s)
        if s.toleranceUse > 1 && enforceTolerance {
            failures.append("\(fixture) \(name): element \(worstIndex) = \(got[worstIndex]), golden \(want[worstIndex]) (\(s))")
            return false
        }
        return true
    }

    public func equal<T: Equatable>(_ name: String, _ got: [T], _ want: [T]) {
        exactChecks.append(name)
        if got != want { failures.append("\(fixture) \(name): got \(got), golden \(want)") }
    }

    public var worst: ErrorStat? { stats.max { $0.toleranceUse < $1.toleranceUse } }
    public var worstRelToScale: ErrorStat? { stats.max { $0.relToScale < $1.relToScale } }

    /// The statistics of the tensor `name` (nil when it was not compared).
    public func stat(_ name: String) -> ErrorStat? { stats.first { $0.name == name } }

    public var report: String {
        let within = enforceTolerance ? "within |x-g| <= \(atol) + \(rtol)|g|" : "compared (errors reported, not enforced)"
        var lines = ["fixture \(fixture): \(stats.count) tensors \(within), exact: \(exactChecks.joined(separator: ", "))"]
        for s in stats { lines.append("  " + s.description) }
        if let w = worst { lines.append("  worst (tolerance use): \(w)") }
        if let w = worstRelToScale { lines.append("  worst (relative to scale): \(w)") }
        return lines.joined(separator: "\n")
    }
}

/// Golden tensors of a fixture.
public struct Goldens {
    public let file: SafeTensorsFile
    public init(_ url: URL) throws { file = try SafeTensorsFile(path: url.path) }
    public func f(_ name: String) throws -> [Float] { try file.floats(name) }
    public func i(_ name: String) throws -> [Int] { try file.ints(name) }
    public func shape(_ name: String) throws -> [Int] {
        guard let t = file.tensors[name] else { throw LoopError.missingTensor(name) }
        return t.shape
    }
    /// Slice `index` along the first dimension.
    public func f(_ name: String, _ index: Int) throws -> [Float] {
        let all = try f(name)
        let n = try shape(name)[0]
        let per = all.count / n
        return Array(all[(index * per)..<((index + 1) * per)])
    }
}

/// The golden file a numerics mode is checked against: golden.safetensors (fp32 reference run)
/// or golden_bf16.safetensors (the reference run end to end in bfloat16).
public func goldenFileName(numerics: Numerics) -> String {
    numerics == .bf16 ? "golden_bf16.safetensors" : "golden.safetensors"
}

/// Runs every check of the fixture folder `dir` on backends made by `makeBackend`; returns the
/// comparer with its statistics and failures. A folder without golden.safetensors, or of a
/// family with no checks, is an error. `numerics` `.bf16`: plans round as the bfloat16 reference
/// does and are checked against golden_bf16.safetensors; `atol`/`rtol` nil there = errors are
/// reported, and only the exact checks (greedy ids, exit choices) must hold. `goldenFile`
/// overrides the file (e.g. fp32 numerics against golden_bf16.safetensors, to measure how far
/// the fp32 mode is from the bfloat16 run).
public func checkGoldens(directory dir: URL, makeBackend: BackendFactory, atol: Float? = nil, rtol: Float? = nil,
                         numerics: Numerics = .fp32, goldenFile: String? = nil) throws -> GoldenComparer {
    let name = dir.lastPathComponent
    let file = goldenFile ?? goldenFileName(numerics: numerics)
    guard FileManager.default.fileExists(atPath: dir.appendingPathComponent(file).path) else {
        throw LoopError.invalidArgument("\(dir.path) has no \(file) (a fixture folder holds the official code's outputs there\(numerics == .bf16 ? "; only bf16 fixtures have a bfloat16 run" : ""))")
    }
    let ck = try Checkpoint(directory: dir)
    let golden = try Goldens(dir.appendingPathComponent(file))
    let enforce = (numerics == .fp32 && file == "golden.safetensors") || atol != nil || rtol != nil
    let cmp = GoldenComparer(fixture: name, atol: atol ?? 1e-4, rtol: rtol ?? 1e-4, enforceTolerance: enforce)
    func backend(_ plan: LoopPlan) throws -> PlanBackend {
        try makeBackend(plan, WeightStore(checkpoint: ck, plan: plan))
    }
    let planOf: (Int?) throws -> (LoopPlan, ModelInfo) = { passes in
        try ModelFamily.plan(checkpoint: ck, passes: passes, numerics: numerics)
    }
    switch ck.config["model_type"] as? String {
    case "ouro": try checkOuro(ck, golden, cmp, backend, planOf)
    case "huginn_raven": try checkHuginn(ck, golden, cmp, backend, planOf, numerics)
    case "lds": try checkLoopUS(ck, golden, cmp, backend, planOf)
    default: throw LoopError.unsupported("\(name): no golden checks for model_type \(String(describing: ck.config["model_type"]))")
    }
    return cmp
}

private typealias PlanOf = (Int?) throws -> (LoopPlan, ModelInfo)

private func checkOuro(_ ck: Checkpoint, _ g: Goldens, _ cmp: GoldenComparer, _ makeBackend: (LoopPlan) throws -> PlanBackend,
                       _ planOf: PlanOf) throws {
    let (plan, info) = try planOf(nil)
    let runner = PlanRunner(plan: plan, backend: try makeBackend(plan))
    let ids = try g.i("input_ids").map { Int32($0) }
    let n = ids.count, T = plan.passCount, V = plan.vocab
    let goldenPasses = try g.shape("ut_hidden")[0]
    cmp.require(T == goldenPasses, "the plan runs \(T) passes, ut_hidden holds \(goldenPasses)")

    // Prefill pass by pass: state, gate logit and logits after every pass.
    try runner.prelude(tokens: ids, pos0: 0)
    var gates: [[Float]] = []
    for t in 0..<T {
        try runner.pass(t, tokens: ids, pos0: 0)
        cmp.close("ut_hidden[\(t)]", try runner.state(rows: n), try g.f("ut_hidden", t))
        let gate = try runner.exitValues(rows: n)
        gates.append(gate)
        cmp.close("gate_logits[\(t)]", gate, try g.f("gate_logits", t))
        cmp.close("ut_logits[\(t)]", try runner.head(tokens: ids, pos0: 0), try g.f("ut_logits", t))
    }
    // KV cache after prefill: golden [slots, kvHeads, T, headDim]; ours [T, kvHeads * headDim] per slot.
    let kvShape = try g.shape("kv_prefill_k")
    let (slots, kvHeads, headDim) = (kvShape[0], kvShape[1], kvShape[3])
    cmp.require(slots == plan.kvSlots && kvHeads * headDim == plan.kvWidth,
                "kv_prefill_k is \(kvShape), the plan has \(plan.kvSlots) slots of \(plan.kvWidth)")
    for (part, key) in [(KVPart.k, "kv_prefill_k"), (KVPart.v, "kv_prefill_v")] {
        var ours: [Float] = []
        for s in 0..<slots {
            let c = try runner.backend.readKV(slot: s, part: part, rows: n)
            for h in 0..<kvHeads { for r in 0..<n { for d in 0..<headDim { ours.append(c[r * plan.kvWidth + h * headDim + d]) } } }
        }
        cmp.close(key, ours, try g.f(key))
    }
    // Host-side exit distribution and Q-exit choices from our gate logits.
    var pdf: [Float] = [], cdf: [Float] = []
    for r in 0..<n {
        let d = PlanRunner.ouroExitDistribution(gateLogits: gates.map { $0[r] }, numerics: plan.numerics)
        pdf += d.pdf; cdf += d.cdf
    }
    cmp.close("exit_pdf", pdf, try g.f("exit_pdf"))
    cmp.close("exit_cdf", cdf, try g.f("exit_cdf"))
    for (q, key) in [(Float(0.5), "exit_step_q050"), (0.9, "exit_step_q090"), (1.0, "exit_step_q100")] {
        let steps = (0..<n).map { r in PlanRunner.ouroExitPass(gateLogits: gates.map { $0[r] }, threshold: q, numerics: plan.numerics) }
        cmp.equal(key, steps, try g.i(key))
        // The forward with that threshold feeds each row's chosen state to the head.
        let res = try runner.forward(tokens: ids, pos0: 0, exit: .ouroQExit(threshold: q))
        cmp.equal("\(key) (forward)", res.exitPasses, try g.i(key))
        var want: [Float] = []
        for r in 0..<n { want += try g.f("ut_logits", steps[r])[(r * V)..<((r + 1) * V)] }
        cmp.close("logits at \(key)", res.logits, want)
    }
    // The default forward (config early_exit_threshold).
    let threshold = info.earlyExitThreshold ?? 1
    let res = try runner.forward(tokens: ids, pos0: 0, exit: .ouroQExit(threshold: threshold))
    cmp.close("logits", res.logits, try g.f("logits"))
    // Greedy decoding through the KV cache.
    let gen = try runner.greedy(prompt: ids, count: try g.shape("gen_ids")[0], exit: .ouroQExit(threshold: threshold))
    cmp.equal("gen_ids", gen.ids.map { Int($0) }, try g.i("gen_ids"))
    cmp.close("gen_logits", gen.logits.flatMap { $0 }, try g.f("gen_logits"))
}

private func checkHuginn(_ ck: Checkpoint, _ g: Goldens, _ cmp: GoldenComparer, _ makeBackend: (LoopPlan) throws -> PlanBackend,
                         _ planOf: PlanOf, _ numerics: Numerics) throws {
    let ids = try g.i("input_ids").map { Int32($0) }
    let n = ids.count
    let steps = try g.i("num_steps")
    let maxSteps = max(steps.max() ?? 1, try g.shape("core_states")[0])
    let (plan, _) = try planOf(maxSteps)
    let runner = PlanRunner(plan: plan, backend: try makeBackend(plan))
    try runner.prelude(tokens: ids, pos0: 0)
    cmp.close("prelude_out", try runner.backend.read("e", rows: n), try g.f("prelude_out"))
    let lnf = [plan.head[0]]  // y = ln_f(x): the reference's latent_states
    for t in 0..<maxSteps {
        try runner.pass(t, tokens: ids, pos0: 0)
        if t < (try g.shape("core_states"))[0] {
            cmp.close("core_states[\(t)]", try runner.state(rows: n), try g.f("core_states", t))
        }
        if let i = steps.firstIndex(of: t + 1) {
            try runner.backend.run(lnf, section: SectionKey("head-lnf", rows: n), tokens: ids, pos0: 0)
            cmp.close("latents[num_steps=\(t + 1)]", try runner.backend.read("y", rows: n), try g.f("latents", i))
            cmp.close("logits[num_steps=\(t + 1)]", try runner.head(tokens: ids, pos0: 0), try g.f("logits", i))
        }
    }
    // Greedy decoding with num_steps = mean_recurrence: "full" cache, then compress-s4.
    let (full, info) = try planOf(nil)
    let count = try g.shape("gen_full_ids")[0]
    let genFull = try PlanRunner(plan: full, backend: try makeBackend(full)).greedy(prompt: ids, count: count)
    cmp.equal("gen_full_ids", genFull.ids.map { Int($0) }, try g.i("gen_full_ids"))
    cmp.close("gen_full_logits", genFull.logits.flatMap { $0 }, try g.f("gen_full_logits"))
    let s4 = try Huginn.plan(checkpoint: ck, passes: info.defaultPasses, maxContext: nil, compressSlots: 4).0.with(numerics: numerics)
    let genS4 = try PlanRunner(plan: s4, backend: try makeBackend(s4)).greedy(prompt: ids, count: count)
    cmp.equal("gen_s4_ids", genS4.ids.map { Int($0) }, try g.i("gen_s4_ids"))
    cmp.close("gen_s4_logits", genS4.logits.flatMap { $0 }, try g.f("gen_s4_logits"))
}

private func checkLoopUS(_ ck: Checkpoint, _ g: Goldens, _ cmp: GoldenComparer, _ makeBackend: (LoopPlan) throws -> PlanBackend,
                         _ planOf: PlanOf) throws {
    let (plan, info) = try planOf(nil)
    let runner = PlanRunner(plan: plan, backend: try makeBackend(plan))
    let ids = try g.i("input_ids").map { Int32($0) }
    let n = ids.count, T = plan.passCount
    let goldenPasses = try g.shape("pass_hidden")[0]
    cmp.require(T == goldenPasses, "the plan runs \(T) passes, pass_hidden holds \(goldenPasses)")
    try runner.prelude(tokens: ids, pos0: 0)
    cmp.close("encoder_out", try runner.state(rows: n), try g.f("encoder_out"))
    var qs: [Float] = [], qLogits: [Float] = []
    for t in 0..<T {
        try runner.pass(t, tokens: ids, pos0: 0)
        cmp.close("pass_block_out[\(t)]", try runner.backend.read("h_new", rows: n), try g.f("pass_block_out", t))
        cmp.close("pass_A_bar[\(t)]", try runner.backend.read("gate_a", rows: n), try g.f("pass_A_bar", t))
        cmp.close("pass_hidden[\(t)]", try runner.state(rows: n), try g.f("pass_hidden", t))
        qLogits.append(try runner.backend.read("q_logit", rows: n)[n - 1])
        qs.append(try runner.exitValues(rows: n)[n - 1])
        cmp.close("pass_logits[\(t)]", try runner.head(tokens: ids, pos0: 0), try g.f("pass_logits", t))
    }
    cmp.close("pass_q_logit", qLogits, try g.f("pass_q_logit"))
    cmp.close("pass_q", qs, try g.f("pass_q"))
    // Halting decisions at the golden thresholds, from our q values and through the forward.
    let thresholds = try g.f("halt_thresholds")
    for (strategy, key) in [(HaltingStrategy.threshold, "halt_passes_threshold"), (.cdf, "halt_passes_cdf")] {
        let settings = thresholds.map { LoopUSHalting.Settings(strategy: strategy, threshold: $0) }
        cmp.equal(key, settings.map { LoopUSHalting.passesRun(q: qs, settings: $0) }, try g.i(key))
        var viaForward: [Int] = []
        for (i, s) in settings.enumerated() {
            let res = try runner.forward(tokens: ids, pos0: 0, exit: .loopus(s))
            viaForward.append(res.passesRun)
            cmp.close("logits after \(key)[\(i)]", res.logits, try g.f("pass_logits", res.passesRun - 1))
        }
        cmp.equal("\(key) (forward)", viaForward, try g.i(key))
    }
    // The config's own settings (threshold 1.0: all passes).
    guard let settings = LoopUSHalting.Settings(info: info) else { cmp.require(false, "LoopUS info lacks halting settings"); return }
    let res = try runner.forward(tokens: ids, pos0: 0, exit: .loopus(settings))
    cmp.close("logits", res.logits, try g.f("logits"))
    let gen = try runner.greedy(prompt: ids, count: try g.shape("gen_ids")[0], exit: .loopus(settings))
    cmp.equal("gen_ids", gen.ids.map { Int($0) }, try g.i("gen_ids"))
    cmp.close("gen_logits", gen.logits.flatMap { $0 }, try g.f("gen_logits"))
}
