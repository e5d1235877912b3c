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
        plan.castTables = a.castTables
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

// MARK: - Synthetic checkpoints

extension LoopUS {
    /// The `Synth` presets. loopus-small is our own shape over a small Qwen3 base. loopus-qwen3-1.7b is not taken from
    /// a published LoopUS checkpoint:
    /// - the split encoder = layers 0-3, reasoning = 4-23, decoder = 24-27 is a guess (FAMILIES.md does not document
    ///   the published split); N = 6 and q_threshold = 0.9 are the LoopUS defaults;
    /// - the gate rank r = ceil(hidden/16) = 128 is the Mamba `dt_rank` convention, which the fixture (hidden 64 ->
    ///   r 4) and the plan builder also use;
    /// - `decoder.lm_head.weight` is written even though the Qwen3-1.7B base config ties the head.
    static var synthPresets: [SynthPreset] {
        let qwen3Small = SynthDecoder(modelType: "qwen3", hidden: 128, intermediate: 384, layers: 6, heads: 4, kvHeads: 2,
                                      headDim: 32, vocab: 1024, maxPositions: 2048, ropeTheta: 1e6, eps: 1e-6,
                                      tiedEmbeddings: false, llama3Scaling: nil, bos: 1, eos: 2)
        return [
            SynthPreset(family: "loopus", name: "loopus-qwen3-1.7b", model: .loopus(
                .qwen3_1_7b, encoder: Array(0...3), reasoning: Array(4...23), decoder: Array(24...27), passes: 6,
                baseName: "Qwen/Qwen3-1.7B")),
            SynthPreset(family: "loopus", name: "loopus-small", model: .loopus(
                qwen3Small, encoder: [0], reasoning: [1, 2, 3, 4], decoder: [5], passes: 4, baseName: "synthetic/qwen3-128")),
        ]
    }

    /// The tensors of a LoopUS checkpoint: the base model's layers renumbered within the encoder, reasoning and decoder
    /// stacks (one per listed original layer), the selective gate (rank `Synth.gateRank`), the decoder's norm and head,
    /// and the confidence head.
    static func synthTensors(_ d: SynthDecoder, encoder: [Int], reasoning: [Int], decoder: [Int]) -> [Synth.TensorSpec] {
        var t = SynthTensors()
        let h = d.hidden, r = Synth.gateRank(hidden: h)
        t.embedding("encoder.embed_tokens.weight", d.vocab, h)
        for j in encoder.indices { t.decoderLayer("encoder.layers.\(j)", d, sandwich: false) }
        for j in reasoning.indices { t.decoderLayer("reasoning.layers.\(j)", d, sandwich: false) }
        for j in decoder.indices { t.decoderLayer("decoder.layers.\(j)", d, sandwich: false) }
        t.linear("reasoning.gate.dt_input_proj.weight", r, h)
        t.linear("reasoning.gate.delta_proj.weight", h, r)
        t.zeros("reasoning.gate.delta_proj.bias", [h])
        t.append("reasoning.gate.A_log", [h], .logUniform(low: 1, high: 16))
        t.norm("decoder.norm.weight", h)
        t.linear("decoder.lm_head.weight", d.vocab, h)
        t.norm("q_head.0.weight", h)
        t.zeros("q_head.0.bias", [h])
        t.linear("q_head.1.weight", 1, h)
        t.zeros("q_head.1.bias", [1])
        return t.specs
    }

    /// config.json (LoopUS ships no generation_config.json): the loop settings around the base model's config
    /// (`base_config_dict`). The index lists are original layer ids; `passes` is `N`.
    static func synthConfigFiles(_ d: SynthDecoder, encoder enc: [Int], reasoning rea: [Int], decoder dec: [Int], passes: Int,
                                 baseName: String, dtype: DType) -> [(name: String, json: SynthJSON)] {
        let td = SynthJSON.string(SynthPreset.torchDType(dtype))
        let base: [String: SynthJSON] = [
            "_name_or_path": .string(""),
            "architectures": .array([.string(d.architecture)]),
            "attention_bias": .bool(false),
            "attention_dropout": .double(0),
            "bos_token_id": .int(d.bos),
            "chunk_size_feed_forward": .int(0),
            "dtype": td,
            "eos_token_id": .int(d.eos),
            "head_dim": .int(d.headDim),
            "hidden_act": .string("silu"),
            "hidden_size": .int(d.hidden),
            "id2label": .object(["0": .string("LABEL_0"), "1": .string("LABEL_1")]),
            "initializer_range": .double(0.02),
            "intermediate_size": .int(d.intermediate),
            "is_encoder_decoder": .bool(false),
            "label2id": .object(["LABEL_0": .int(0), "LABEL_1": .int(1)]),
            "layer_types": .array(Array(repeating: .string("full_attention"), count: d.layers)),
            "max_position_embeddings": .int(d.maxPositions),
            "max_window_layers": .int(28),
            "model_type": .string(d.modelType),
            "num_attention_heads": .int(d.heads),
            "num_hidden_layers": .int(d.layers),
            "num_key_value_heads": .int(d.kvHeads),
            "output_attentions": .bool(false),
            "output_hidden_states": .bool(false),
            "pad_token_id": .null,
            "problem_type": .null,
            "return_dict": .bool(true),
            "rms_norm_eps": .double(d.eps),
            "rope_parameters": .object(["rope_theta": .double(d.ropeTheta), "rope_type": .string("default")]),
            "sliding_window": .null,
            "tie_word_embeddings": .bool(d.tiedEmbeddings),
            "transformers_version": .string("5.3.0"),
            "use_cache": .bool(true),
            "use_sliding_window": .bool(false),
            "vocab_size": .int(d.vocab),
        ]
        let cfg: [String: SynthJSON] = [
            "N": .int(passes),
            "base_config_dict": .object(base),
            "base_model_name_or_path": .string(baseName),
            "convergence_epsilon": .double(0.01),
            "decoder_layer_indices": .array(dec.map { .int($0) }),
            "encoder_layer_indices": .array(enc.map { .int($0) }),
            "halting_strategy": .string("threshold"),
            "hidden_size": .int(d.hidden),
            "model_type": .string("lds"),
            "q_eval_interval": .int(1),
            "q_threshold": .double(0.9),
            "reasoning_layer_indices": .array(rea.map { .int($0) }),
            "transformers_version": .string("5.3.0"),
            "vocab_size": .int(d.vocab),
        ]
        return [("config.json", .object(cfg))]
    }
}
