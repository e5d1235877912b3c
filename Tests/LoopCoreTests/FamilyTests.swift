import Foundation
import Testing
@testable import LoopCore
import LoopTestSupport

/// Makes a temporary checkpoint folder: `config` as config.json and the given tensors (raw
/// entries) as model.safetensors.
private func tempCheckpoint(config: [String: Any], tensors: [SafeTensorsWriter.Entry]) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loopcore-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
    try SafeTensorsWriter.write(tensors, to: dir.appendingPathComponent("model.safetensors"))
    return dir
}

/// A fixture's config and tensors, for variations.
private func fixtureParts(_ name: String) throws -> (config: [String: Any], tensors: [SafeTensorsWriter.Entry]) {
    let dir = fixtureURL(name)
    let config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as! [String: Any]
    let f = try SafeTensorsFile(path: dir.appendingPathComponent("model.safetensors").path)
    let entries = f.tensors.values.sorted { $0.name < $1.name }.map {
        SafeTensorsWriter.Entry(name: $0.name, dtype: $0.dtype, shape: $0.shape, data: Data(f.bytes(of: $0)))
    }
    return (config, entries)
}

private func planError(_ dir: URL, passes: Int? = nil) -> LoopError? {
    do {
        _ = try ModelFamily.plan(checkpoint: try Checkpoint(directory: dir), passes: passes)
        return nil
    } catch let e as LoopError { return e } catch { return .io("\(error)") }
}

@Suite struct FamilyTests {
    @Test func fixtureInfos() throws {
        let (ouro, oi) = try ModelFamily.plan(checkpoint: try Checkpoint(directory: fixtureURL("ouro-tiny-fp32")), passes: nil)
        #expect(oi.modelType == "ouro" && oi.defaultPasses == 4 && oi.passes == 4 && oi.maxContext == 2048)
        #expect(oi.earlyExitThreshold == 1.0 && oi.eosTokenIds == [0] && oi.bosTokenId == 0)
        #expect(ouro.kvSlots == 8 && ouro.kvWidth == 128 && ouro.exitSignal == .ouroGateLogit && ouro.passCount == 4)
        #expect(ouro.computed["rope.table"]?.shape == [2048, 16, 2])

        let (hug, hi) = try ModelFamily.plan(checkpoint: try Checkpoint(directory: fixtureURL("huginn-tiny-fp32")), passes: 3)
        #expect(hi.modelType == "huginn_raven" && hi.defaultPasses == 4 && hi.passes == 3 && hi.maxContext == 256)
        #expect(hug.kvSlots == 2 + 4 * 3 + 2 && hug.kvWidth == 48 && hug.passCount == 3)

        let (lus, li) = try ModelFamily.plan(checkpoint: try Checkpoint(directory: fixtureURL("loopus-tiny-qwen3-fp32")), passes: nil,
                                             maxContext: 100)
        #expect(li.modelType == "lds" && li.baseModelType == "qwen3" && li.passes == 4 && li.maxContext == 100)
        #expect(li.qThreshold == 1.0 && li.qEvalInterval == 1 && li.haltingStrategy == .threshold && li.convergenceEpsilon == 0.01)
        #expect(li.eosTokenIds == [2])
        #expect(lus.kvSlots == 1 + 2 * 4 + 1 && lus.kvWidth == 32 && lus.exitSignal == .loopusConfidence)
        #expect(lus.computed["rope.table"]?.shape == [100, 8, 2])
    }

    @Test func passesOutOfRange() throws {
        let ck = try Checkpoint(directory: fixtureURL("ouro-tiny-fp32"))
        for p in [0, -1, 257] {
            #expect(throws: LoopError.self) { _ = try ModelFamily.plan(checkpoint: ck, passes: p) }
            do { _ = try ModelFamily.plan(checkpoint: ck, passes: p) } catch let e as LoopError {
                if case .invalidArgument = e {} else { Issue.record("passes \(p): \(e)") }
            }
        }
        #expect(try ModelFamily.plan(checkpoint: ck, passes: 256).0.passCount == 256)
    }

    @Test func unknownModelType() throws {
        var (config, tensors) = try fixtureParts("ouro-tiny-fp32")
        config["model_type"] = "mamba"
        #expect(planError(try tempCheckpoint(config: config, tensors: tensors)) == .unknownModelType("mamba"))
    }

    @Test func invalidConfigNamesTheField() throws {
        let (config, tensors) = try fixtureParts("ouro-tiny-fp32")
        for (key, value) in [("hidden_size", 0 as Any), ("num_attention_heads", -4), ("vocab_size", 1 << 30), ("rms_norm_eps", -1.0)] {
            var c = config
            c[key] = value
            let e = planError(try tempCheckpoint(config: c, tensors: tensors))
            guard case .invalidConfig(let msg)? = e, msg.contains(key) else { Issue.record("\(key) = \(value): \(String(describing: e))"); continue }
        }
        var c = config
        c.removeValue(forKey: "hidden_size")
        guard case .invalidConfig(let msg)? = planError(try tempCheckpoint(config: c, tensors: tensors)), msg.contains("hidden_size") else {
            Issue.record("missing hidden_size not reported"); return
        }
        var h = try fixtureParts("huginn-tiny-fp32").config
        h["n_heads"] = 5  // 48 is not divisible by 5
        let ht = try fixtureParts("huginn-tiny-fp32").tensors
        guard case .invalidConfig(let m2)? = planError(try tempCheckpoint(config: h, tensors: ht)), m2.contains("n_heads") else {
            Issue.record("huginn n_heads not reported"); return
        }
    }

    @Test func missingAndMisshapenTensors() throws {
        let (config, tensors) = try fixtureParts("ouro-tiny-fp32")
        let dropped = tensors.filter { $0.name != "model.layers.1.mlp.up_proj.weight" }
        #expect(planError(try tempCheckpoint(config: config, tensors: dropped)) == .missingTensor("model.layers.1.mlp.up_proj.weight"))
        var c = config
        c["intermediate_size"] = 64
        guard case .wrongShape(let name, let expected, _)? = planError(try tempCheckpoint(config: c, tensors: tensors)) else {
            Issue.record("wrong intermediate_size not reported"); return
        }
        #expect(name.contains("mlp") && expected.contains(64))
        let (lc, lt) = try fixtureParts("loopus-tiny-qwen3-fp32")
        #expect(planError(try tempCheckpoint(config: lc, tensors: lt.filter { $0.name != "reasoning.gate.A_log" }))
                == .missingTensor("reasoning.gate.A_log"))
        let (hc, ht) = try fixtureParts("huginn-tiny-fp32")
        #expect(planError(try tempCheckpoint(config: hc, tensors: ht.filter { $0.name != "transformer.core_block.3.attn.qk_bias" }))
                == .missingTensor("transformer.core_block.3.attn.qk_bias"))
    }

    @Test func loopUSDefaults() throws {
        var (config, tensors) = try fixtureParts("loopus-tiny-qwen3-fp32")
        for k in ["N", "q_threshold", "q_eval_interval", "halting_strategy", "convergence_epsilon"] { config.removeValue(forKey: k) }
        let (plan, info) = try ModelFamily.plan(checkpoint: try Checkpoint(directory: try tempCheckpoint(config: config, tensors: tensors)), passes: nil)
        #expect(info.defaultPasses == 6 && info.passes == 6 && plan.passCount == 6)
        #expect(info.qThreshold == 0.9 && info.qEvalInterval == 1 && info.haltingStrategy == .threshold && info.convergenceEpsilon == 0.01)
        config["halting_strategy"] = "sometimes"
        guard case .invalidConfig(let m)? = planError(try tempCheckpoint(config: config, tensors: tensors)), m.contains("halting_strategy") else {
            Issue.record("bad halting_strategy not reported"); return
        }
        // theta under rope_theta instead of rope_parameters gives the same table
        var base = try fixtureParts("loopus-tiny-qwen3-fp32").config
        var bcd = base["base_config_dict"] as! [String: Any]
        bcd.removeValue(forKey: "rope_parameters")
        bcd["rope_theta"] = 1000000.0
        base["base_config_dict"] = bcd
        let (p2, _) = try ModelFamily.plan(checkpoint: try Checkpoint(directory: try tempCheckpoint(config: base, tensors: tensors)), passes: nil)
        let (p1, _) = try ModelFamily.plan(checkpoint: try Checkpoint(directory: fixtureURL("loopus-tiny-qwen3-fp32")), passes: nil)
        #expect(p1.computed["rope.table"]?.values == p2.computed["rope.table"]?.values)
    }

    /// A plain Qwen3 / Llama checkpoint made from the LoopUS fixture's layers (0 encoder, 1-2
    /// reasoning, 3 decoder). Its one pass equals: LoopUS encoder, reasoning layers once (h_new),
    /// decoder — which the LoopUS plan can compute by writing h_new into the state before the head.
    @Test func llamaAndQwen3Plans() throws {
        let (lc, lt) = try fixtureParts("loopus-tiny-qwen3-fp32")
        var renamed: [SafeTensorsWriter.Entry] = []
        for var e in lt {
            let n = e.name
            if n == "encoder.embed_tokens.weight" { e.name = "model.embed_tokens.weight" }
            else if n == "decoder.norm.weight" { e.name = "model.norm.weight" }
            else if n == "decoder.lm_head.weight" { e.name = "lm_head.weight" }
            else if n.hasPrefix("encoder.layers.0.") { e.name = "model.layers.0." + n.dropFirst("encoder.layers.0.".count) }
            else if n.hasPrefix("reasoning.layers.0.") { e.name = "model.layers.1." + n.dropFirst("reasoning.layers.0.".count) }
            else if n.hasPrefix("reasoning.layers.1.") { e.name = "model.layers.2." + n.dropFirst("reasoning.layers.1.".count) }
            else if n.hasPrefix("decoder.layers.0.") { e.name = "model.layers.3." + n.dropFirst("decoder.layers.0.".count) }
            else { continue }
            renamed.append(e)
        }
        let qwenDir = try tempCheckpoint(config: lc["base_config_dict"] as! [String: Any], tensors: renamed)
        let (qplan, qinfo) = try ModelFamily.plan(checkpoint: try Checkpoint(directory: qwenDir), passes: nil)
        #expect(qinfo.modelType == "qwen3" && qplan.passCount == 1 && qplan.kvSlots == 4 && qinfo.eosTokenIds == [2])
        let ids: [Int32] = [5, 17, 300, 42, 8, 99, 1]
        let n = ids.count
        let qBackend = try CPUBackend(plan: qplan, checkpoint: try Checkpoint(directory: qwenDir), maxRows: 16, maxContext: 32)
        let qRunner = PlanRunner(plan: qplan, backend: qBackend)
        let plain = try qRunner.forward(tokens: ids)

        let lck = try Checkpoint(directory: fixtureURL("loopus-tiny-qwen3-fp32"))
        let (lplan, _) = try ModelFamily.plan(checkpoint: lck, passes: nil)
        let lBackend = try CPUBackend(plan: lplan, checkpoint: lck, maxRows: 16, maxContext: 32)
        let lRunner = PlanRunner(plan: lplan, backend: lBackend)
        try lRunner.prelude(tokens: ids, pos0: 0)
        try lRunner.pass(0, tokens: ids, pos0: 0)
        try lBackend.write(lplan.stateAct, values: try lBackend.read("h_new", rows: n))
        let viaLoopUS = try lRunner.head(tokens: ids, pos0: 0)
        let worst = zip(plain.logits, viaLoopUS).map { abs($0 - $1) }.max() ?? 1
        #expect(worst < 1e-5)

        // KV-cache decoding equals recomputing the whole sequence without a cache.
        let gen = try qRunner.greedy(prompt: ids, count: 5)
        let all = ids + gen.ids.dropLast()
        let full = try qRunner.forward(tokens: all)
        for i in 0..<gen.ids.count {
            let row = Array(full.logits(row: n - 1 + i))
            let d = zip(row, gen.logits[i]).map { abs($0 - $1) }.max() ?? 1
            #expect(d < 1e-5, "decode step \(i)")
        }

        // "llama": same tensors without q_norm/k_norm; plan builds, runs, and has 2 passes on request.
        var llamaConfig = lc["base_config_dict"] as! [String: Any]
        llamaConfig["model_type"] = "llama"
        llamaConfig["tie_word_embeddings"] = true
        let llamaDir = try tempCheckpoint(config: llamaConfig,
                                          tensors: renamed.filter { !$0.name.contains("_norm.") || $0.name.contains("layernorm") }
                                              .filter { $0.name != "lm_head.weight" })
        let (lp, li) = try ModelFamily.plan(checkpoint: try Checkpoint(directory: llamaDir), passes: 2)
        #expect(li.modelType == "llama" && lp.passCount == 2 && lp.kvSlots == 8)
        let lr = PlanRunner(plan: lp, backend: try CPUBackend(plan: lp, checkpoint: try Checkpoint(directory: llamaDir), maxRows: 8, maxContext: 16))
        let out = try lr.forward(tokens: [1, 2, 3])
        #expect(out.logits.count == 3 * 352 && out.logits.allSatisfy { $0.isFinite })
    }

    @Test func ouroExitRule() {
        // g = 0 everywhere: λ = 1/2 -> pdf 1/2, 1/4, 1/8, 1/8; cdf 1/2, 3/4, 7/8, 1.
        let d = PlanRunner.ouroExitDistribution(gateLogits: [0, 0, 0, 0])
        #expect(d.pdf == [0.5, 0.25, 0.125, 0.125] && d.cdf == [0.5, 0.75, 0.875, 1])
        #expect(PlanRunner.ouroExitPass(gateLogits: [0, 0, 0, 0], threshold: 0.5) == 0)
        #expect(PlanRunner.ouroExitPass(gateLogits: [0, 0, 0, 0], threshold: 0.8) == 2)
        #expect(PlanRunner.ouroExitPass(gateLogits: [0, 0, 0, 0], threshold: 1.0) == 3)
        #expect(PlanRunner.ouroExitPass(gateLogits: [-10, -10], threshold: 1.5) == 1)
    }

    @Test func argmaxTakesTheFirstMaximum() {
        #expect(PlanRunner.argmax([1, 3, 3, 2] as [Float]) == 1)
        #expect(PlanRunner.argmax([Float.nan, -1, -1]) == 1)
        #expect(PlanRunner.argmax([-Float.infinity, -Float.infinity]) == 0)
    }

    @Test func loopUSHaltingRules() {
        let q: [Float] = [0.5, 0.7, 0.95, 0.99]
        func run(_ s: HaltingStrategy, _ thr: Float, interval: Int = 1) -> Int {
            LoopUSHalting.passesRun(q: q, settings: .init(strategy: s, threshold: thr, evalInterval: interval))
        }
        #expect(run(.threshold, 0.9) == 3)
        #expect(run(.threshold, 0.5) == 2)   // strict: 0.5 is not > 0.5
        #expect(run(.threshold, 1.0) == 4)
        #expect(run(.threshold, 0.6, interval: 3) == 3)  // only passes 3 and 4 (last) are evaluated
        #expect(run(.cdf, 0.8) == 2)          // 1 - 0.5·0.3 = 0.85
        #expect(run(.cdf, 0.99) == 3)         // 1 - 0.5·0.3·0.05 = 0.9925
        var h = LoopUSHalting(.init(strategy: .convergence, threshold: 1, epsilon: 0.1), passes: 4)
        let first = h.shouldStop(afterPass: 0, q: 0, stateChangeNorm: 0.5)
        let second = h.shouldStop(afterPass: 1, q: 0, stateChangeNorm: 0.05)
        #expect(!first && second)
    }
}
