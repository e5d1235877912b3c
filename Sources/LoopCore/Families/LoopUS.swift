import Foundation

/// LoopUS config.json (`model_type "lds"`), with the checkpoint's own keys. Fields a real
/// checkpoint may omit take the LoopUS defaults (N 6, q_threshold 0.9, q_eval_interval 1,
/// halting_strategy "threshold", convergence_epsilon 0.01).
public struct LoopUSConfig: Codable, Sendable {
    public var baseConfigDict: LlamaConfig
    public var encoderLayerIndices: [Int]
    public var reasoningLayerIndices: [Int]
    public var decoderLayerIndices: [Int]
    public var n: Int?
    public var qThreshold: Double?
    public var qEvalInterval: Int?
    public var haltingStrategy: String?
    public var convergenceEpsilon: Double?

    enum CodingKeys: String, CodingKey {
        case baseConfigDict = "base_config_dict", encoderLayerIndices = "encoder_layer_indices"
        case reasoningLayerIndices = "reasoning_layer_indices", decoderLayerIndices = "decoder_layer_indices"
        case n = "N", qThreshold = "q_threshold", qEvalInterval = "q_eval_interval"
        case haltingStrategy = "halting_strategy", convergenceEpsilon = "convergence_epsilon"
    }
}

/// LoopUS: encoder / looped reasoning / decoder layers carved out of a pretrained Qwen3 or Llama,
/// with a selective gate mixing each pass's new state into the old one, and a confidence head.
///
/// Plan: prelude = embed + encoder layers (slots 0 ..< E) into h.
/// Pass t: hn = reasoning layers(copy of h) (slots E + R*t + j); d = hn − h;
///   u = delta_proj(dt_input_proj(d)) + bias; a = exp(softplus(u) · (−exp(A_log)));
///   h = h + a · d; q = sigmoid(q_head.1(LayerNorm_q_head.0(h))) for every row (exit act).
/// Head: y = decoder layers(copy of h) (slots E + R*T + j); y = norm(y); logits = lm_head(y).
public enum LoopUS: LoopFamily {
    public static let modelTypes = ["lds"]

    public static func plan(checkpoint: Checkpoint, passes: Int?, maxContext: Int? = nil) throws -> (LoopPlan, ModelInfo) {
        let cfg = try ConfigDecoding.decode(LoopUSConfig.self, from: checkpoint.configData)
        let base = cfg.baseConfigDict
        let baseType = base.modelType ?? "llama"
        guard baseType == "qwen3" || baseType == "llama" else {
            throw LoopError.unsupported("LoopUS base model_type \"\(SafeTensorsFile.printable(baseType))\" (supported: qwen3, llama)")
        }
        let d = try base.dims(field: "base_config_dict.")
        for (field, list) in [("encoder_layer_indices", cfg.encoderLayerIndices), ("reasoning_layer_indices", cfg.reasoningLayerIndices),
                              ("decoder_layer_indices", cfg.decoderLayerIndices)] {
            for i in list where i < 0 || i >= d.layers {
                throw LoopError.invalidConfig("\(field) holds \(i), outside 0..<\(d.layers) base layers")
            }
        }
        guard !cfg.reasoningLayerIndices.isEmpty else { throw LoopError.invalidConfig("reasoning_layer_indices is empty") }
        let defaultPasses = cfg.n ?? 6
        let passCount = try ModelFamily.resolvePasses(passes, defaultPasses: defaultPasses, field: "N")
        let qThreshold = cfg.qThreshold ?? 0.9
        guard qThreshold.isFinite else { throw LoopError.invalidConfig("q_threshold = \(qThreshold) is not finite") }
        let interval = cfg.qEvalInterval ?? 1
        guard interval >= 1 else { throw LoopError.invalidConfig("q_eval_interval = \(interval) must be positive") }
        guard let strategy = HaltingStrategy(rawValue: cfg.haltingStrategy ?? "threshold") else {
            throw LoopError.invalidConfig("halting_strategy \"\(SafeTensorsFile.printable(cfg.haltingStrategy ?? ""))\" (expected threshold, cdf or convergence)")
        }
        let epsilon = cfg.convergenceEpsilon ?? 0.01
        guard epsilon.isFinite, epsilon >= 0 else { throw LoopError.invalidConfig("convergence_epsilon = \(epsilon) must not be negative") }

        let context = try Llama.contextLimit(d.maxPositions, cap: maxContext)
        let a = PlanAssembler(checkpoint: checkpoint)
        let spec = try Llama.ropeSpec(a, d, positions: context, name: "rope.table")
        let H = d.hidden
        let nEnc = cfg.encoderLayerIndices.count, nRea = cfg.reasoningLayerIndices.count, nDec = cfg.decoderLayerIndices.count
        let qkNorm = baseType == "qwen3"

        func layerOps(_ prefix: String, state: ActRef, slot: Int) throws -> [Op] {
            try a.standardLayerOps(prefix: prefix, state: state, slot: slot, spec: spec, intermediate: d.intermediate, eps: d.eps,
                                   attentionBias: base.attentionBias ?? false, mlpBias: base.mlpBias ?? false, qkNorm: qkNorm)
        }

        let h = a.act("h", H), hn = a.act("h_new", H), diff = a.act("delta_h", H)
        let embed = try a.weight("encoder.embed_tokens.weight", [d.vocab, H])
        var prelude: [Op] = [.embed(table: embed, vocab: d.vocab, dim: H, out: h, scale: 1)]
        for j in 0..<nEnc { prelude += try layerOps("encoder.layers.\(j)", state: h, slot: j) }

        // Selective gate and confidence head weights.
        let dtRank = (H + 15) / 16
        let dtIn = try a.weight("reasoning.gate.dt_input_proj.weight", [dtRank, H])
        let deltaW = try a.weight("reasoning.gate.delta_proj.weight", [H, dtRank])
        let deltaB = try a.weight("reasoning.gate.delta_proj.bias", [H])
        try checkpoint.require("reasoning.gate.A_log", shape: [H])
        let negA = a.compute("gate.neg_exp_A_log", shape: [H],
                             values: try checkpoint.floats("reasoning.gate.A_log").map { -Foundation.exp($0) })
        let lnW = try a.weight("q_head.0.weight", [H]), lnB = try a.weight("q_head.0.bias", [H])
        let qW = try a.weight("q_head.1.weight", [1, H]), qB = try a.weight("q_head.1.bias", [1])
        let low = a.act("gate_low", dtRank), u = a.act("gate_u", H), abar = a.act("gate_a", H)
        let qn = a.act("q_norm_h", H), qLogit = a.act("q_logit", 1), q = a.act("q_conf", 1)

        var passOps: [[Op]] = []
        for t in 0..<passCount {
            var ops: [Op] = [.copy(src: h, out: hn, width: H)]
            for j in 0..<nRea { ops += try layerOps("reasoning.layers.\(j)", state: hn, slot: nEnc + t * nRea + j) }
            ops += [
                .binary(kind: .sub, a: hn, b: .act(h), out: diff, dim: H),
                .linear(x: diff, weight: dtIn, bias: nil, out: low, inFeatures: H, outFeatures: dtRank, accumulate: false),
                .linear(x: low, weight: deltaW, bias: deltaB, out: u, inFeatures: dtRank, outFeatures: H, accumulate: false),
                .unary(kind: .softplus, x: u, out: u, dim: H, scale: 1),
                .binary(kind: .mul, a: u, b: .row(negA), out: u, dim: H),
                .unary(kind: .exp, x: u, out: abar, dim: H, scale: 1),
                .binary(kind: .mul, a: abar, b: .act(diff), out: diff, dim: H),
                .binary(kind: .add, a: h, b: .act(diff), out: h, dim: H),
                .layerNorm(x: h, weight: lnW, bias: lnB, out: qn, dim: H, eps: 1e-5),
                .linear(x: qn, weight: qW, bias: qB, out: qLogit, inFeatures: H, outFeatures: 1, accumulate: false),
                .unary(kind: .sigmoid, x: qLogit, out: q, dim: 1, scale: 1),
            ]
            passOps.append(ops)
        }

        let y = a.act("y", H), logits = a.act("logits", d.vocab)
        let decSlot0 = nEnc + passCount * nRea
        var head: [Op] = [.copy(src: h, out: y, width: H)]
        for j in 0..<nDec { head += try layerOps("decoder.layers.\(j)", state: y, slot: decSlot0 + j) }
        head.append(.rmsNorm(x: y, add: nil, weight: try a.weight("decoder.norm.weight", [H]), out: y, dim: H, groups: 1, eps: d.eps, mode: .plain))
        let lmHead = try Llama.lmHead(a, name: "decoder.lm_head.weight", tiedTo: embed, tied: base.tieWordEmbeddings ?? false, d)
        head.append(.linear(x: y, weight: lmHead, bias: nil, out: logits, inFeatures: H, outFeatures: d.vocab, accumulate: false))

        var plan = LoopPlan(family: "loopus", hidden: H, vocab: d.vocab, activations: a.activations,
                            kvSlots: decSlot0 + nDec, kvWidth: spec.kvWidth, maxContext: context, computed: a.computed,
                            prelude: prelude, passes: passOps, head: head, stateAct: "h", logitsAct: "logits",
                            exitAct: "q_conf", exitSignal: .loopusConfidence)
        plan.concatenated = a.concatenated
        var info = ModelInfo(modelType: "lds", baseModelType: baseType, defaultPasses: defaultPasses, passes: passCount,
                             maxContext: context, hidden: H, vocab: d.vocab,
                             eosTokenIds: ConfigDecoding.eosIds([base.eosTokenId, ConfigDecoding.generationEos(checkpoint)]),
                             bosTokenId: base.bosTokenId?.ids.first)
        info.exitRules = [.loopusHalting]
        info.stopTokens = ["<|im_end|>", "<|endoftext|>"]
        info.chatTemplate = "chatml"
        info.qThreshold = Float(qThreshold)
        info.qEvalInterval = interval
        info.haltingStrategy = strategy
        info.convergenceEpsilon = Float(epsilon)
        return (plan, info)
    }
}
