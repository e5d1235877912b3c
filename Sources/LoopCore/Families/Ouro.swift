import Foundation

/// Ouro's config.json: the Llama-style fields plus the loop settings.
public struct OuroConfig: Codable, Sendable {
    public var base: LlamaConfig
    /// Passes (default 4).
    public var totalUtSteps: Int?
    /// q of the Q-exit rule used by the reference's default output.
    public var earlyExitThreshold: Double?
    public var earlyExitStep: Int?

    enum CodingKeys: String, CodingKey {
        case totalUtSteps = "total_ut_steps", earlyExitThreshold = "early_exit_threshold", earlyExitStep = "early_exit_step"
    }

    public init(from decoder: Decoder) throws {
        base = try LlamaConfig(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        totalUtSteps = try c.decodeIfPresent(Int.self, forKey: .totalUtSteps)
        earlyExitThreshold = try c.decodeIfPresent(Double.self, forKey: .earlyExitThreshold)
        earlyExitStep = try c.decodeIfPresent(Int.self, forKey: .earlyExitStep)
    }

    public func encode(to encoder: Encoder) throws {
        try base.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(totalUtSteps, forKey: .totalUtSteps)
        try c.encodeIfPresent(earlyExitThreshold, forKey: .earlyExitThreshold)
        try c.encodeIfPresent(earlyExitStep, forKey: .earlyExitStep)
    }
}

/// Ouro (ByteDance LoopLM): the whole layer stack loops; sandwich norms; the shared final norm
/// after every pass feeds the next pass; a sigmoid exit gate per pass.
///
/// Plan: prelude = embed -> h. Pass t = layers 0..<L (KV slot t*L + l), each
///   h += input_layernorm_2(attn(input_layernorm(h)))
///   h += post_attention_layernorm_2(mlp(post_attention_layernorm(h)))
/// then h = model.norm(h) and exit = early_exit_gate(h) (one logit per row). Head = lm_head(h).
public enum Ouro: LoopFamily {
    public static let modelTypes = ["ouro"]

    public static func plan(checkpoint: Checkpoint, passes: Int?, maxContext: Int? = nil) throws -> (LoopPlan, ModelInfo) {
        let cfg = try ConfigDecoding.decode(OuroConfig.self, from: checkpoint.configData)
        let d = try cfg.base.dims()
        let defaultPasses = cfg.totalUtSteps ?? 4
        let passCount = try ModelFamily.resolvePasses(passes, defaultPasses: defaultPasses, field: "total_ut_steps")
        if let s = cfg.earlyExitStep, s < 0 { throw LoopError.invalidConfig("early_exit_step = \(s) must not be negative") }
        var threshold: Float? = nil
        if let t = cfg.earlyExitThreshold {
            guard t.isFinite, t >= 0, t <= 1 else { throw LoopError.invalidConfig("early_exit_threshold = \(t) must be in 0...1") }
            threshold = Float(t)
        }
        let context = try Llama.contextLimit(d.maxPositions, cap: maxContext)
        let a = PlanAssembler(checkpoint: checkpoint)
        let spec = try Llama.ropeSpec(a, d, positions: context, name: "rope.table")
        let hd = d.hidden

        let h = a.act("h", hd), xn = a.act("xn", hd), o = a.act("o", hd)
        let exit = a.act("exit", 1), logits = a.act("logits", d.vocab)
        let embed = try a.weight("model.embed_tokens.weight", [d.vocab, hd])
        let prelude: [Op] = [.embed(table: embed, vocab: d.vocab, dim: hd, out: h, scale: 1)]

        // Per-layer weights are the same for every pass: check them once.
        struct Layer { var attn: AttentionWeights; var mlp: MLPWeights; var n1, n2, n3, n4: WeightRef }
        var layers: [Layer] = []
        for l in 0..<d.layers {
            let p = "model.layers.\(l)"
            layers.append(Layer(
                attn: try a.standardAttentionWeights(prefix: p, spec: spec, bias: cfg.base.attentionBias ?? false, qkNorm: false),
                mlp: try a.standardMLPWeights(prefix: p, hidden: hd, intermediate: d.intermediate, bias: cfg.base.mlpBias ?? false),
                n1: try a.weight("\(p).input_layernorm.weight", [hd]),
                n2: try a.weight("\(p).input_layernorm_2.weight", [hd]),
                n3: try a.weight("\(p).post_attention_layernorm.weight", [hd]),
                n4: try a.weight("\(p).post_attention_layernorm_2.weight", [hd])))
        }
        let finalNorm = try a.weight("model.norm.weight", [hd])
        // llama.cpp's Ouro GGUFs drop the exit gate: such a model runs every pass or a fixed count.
        let hasGate = a.has("model.early_exit_gate.weight") || checkpoint.gguf == nil
        let gateW = hasGate ? try a.weight("model.early_exit_gate.weight", [1, hd]) : nil
        let gateB = hasGate ? try a.weight("model.early_exit_gate.bias", [1]) : nil

        var passOps: [[Op]] = []
        for t in 0..<passCount {
            var ops: [Op] = []
            for (l, w) in layers.enumerated() {
                ops.append(.rmsNorm(x: h, add: nil, weight: w.n1, out: xn, dim: hd, groups: 1, eps: d.eps, mode: .plain))
                ops += a.attentionOps(input: xn, out: o, accumulate: false, slot: t * d.layers + l, spec: spec, weights: w.attn)
                ops.append(.rmsNorm(x: o, add: nil, weight: w.n2, out: h, dim: hd, groups: 1, eps: d.eps, mode: .accumulate))
                ops.append(.rmsNorm(x: h, add: nil, weight: w.n3, out: xn, dim: hd, groups: 1, eps: d.eps, mode: .plain))
                ops += a.mlpOps(input: xn, out: o, accumulate: false, hidden: hd, intermediate: d.intermediate, weights: w.mlp)
                ops.append(.rmsNorm(x: o, add: nil, weight: w.n4, out: h, dim: hd, groups: 1, eps: d.eps, mode: .accumulate))
            }
            ops.append(.rmsNorm(x: h, add: nil, weight: finalNorm, out: h, dim: hd, groups: 1, eps: d.eps, mode: .plain))
            if let gateW {
                ops.append(.linear(x: h, weight: gateW, bias: gateB, out: exit, inFeatures: hd, outFeatures: 1, accumulate: false))
            }
            passOps.append(ops)
        }
        let head: [Op] = [
            .linear(x: h, weight: try Llama.lmHead(a, name: "lm_head.weight", tiedTo: embed, tied: cfg.base.tieWordEmbeddings ?? false, d),
                    bias: nil, out: logits, inFeatures: hd, outFeatures: d.vocab, accumulate: false),
        ]
        var plan = LoopPlan(family: "ouro", hidden: hd, vocab: d.vocab, activations: a.activations,
                            kvSlots: passCount * d.layers, kvWidth: spec.kvWidth, maxContext: context, computed: a.computed,
                            prelude: prelude, passes: passOps, head: head, stateAct: "h", logitsAct: "logits",
                            exitAct: hasGate ? "exit" : nil, exitSignal: hasGate ? .ouroGateLogit : .none)
        plan.concatenated = a.concatenated
        plan.castTables = a.castTables
        var info = ModelInfo(modelType: "ouro", defaultPasses: defaultPasses, passes: passCount, maxContext: context,
                             hidden: hd, vocab: d.vocab,
                             eosTokenIds: ConfigDecoding.eosIds([cfg.base.eosTokenId, ConfigDecoding.generationEos(checkpoint)]),
                             bosTokenId: cfg.base.bosTokenId?.ids.first)
        info.exitRules = hasGate ? [.qExit] : []
        if !hasGate {
            info.exitRulesNote = "this Ouro GGUF has no early-exit gate (llama.cpp's converter drops it), and Q-exit needs the gate; `loopvk quantize` keeps it"
        }
        info.stopTokens = ["<|endoftext|>", "<|im_end|>"]
        info.chatTemplate = "chatml"
        info.referenceComputesAllPasses = true
        info.earlyExitThreshold = threshold ?? 1.0  // OuroConfig default
        info.earlyExitStep = cfg.earlyExitStep
        return (plan, info)
    }
}

// MARK: - Synthetic checkpoints

extension Ouro {
    /// The `Synth` presets. ouro-1.4b / ouro-2.6b: the published Ouro config.json shapes. ouro-bench (142.6M
    /// parameters, about the size used for the lavapipe llama.cpp comparison in DESIGN.md) and ouro-small are our own.
    static var synthPresets: [SynthPreset] {
        func ouro(_ name: String, hidden: Int, inter: Int, layers: Int, heads: Int, headDim: Int, vocab: Int,
                  passes: Int, maxPos: Int, theta: Double = 1e6) -> SynthPreset {
            let d = SynthDecoder(modelType: "ouro", hidden: hidden, intermediate: inter, layers: layers, heads: heads,
                                 kvHeads: heads, headDim: headDim, vocab: vocab, maxPositions: maxPos, ropeTheta: theta,
                                 eps: 1e-6, tiedEmbeddings: false, llama3Scaling: nil, bos: 0, eos: 0)
            return SynthPreset(family: "ouro", name: name, model: .ouro(d, passes: passes))
        }
        return [
            ouro("ouro-1.4b", hidden: 2048, inter: 5632, layers: 24, heads: 16, headDim: 128, vocab: 49152, passes: 4, maxPos: 65536),
            ouro("ouro-2.6b", hidden: 2048, inter: 5632, layers: 48, heads: 16, headDim: 128, vocab: 49152, passes: 4, maxPos: 65536),
            ouro("ouro-bench", hidden: 1024, inter: 2816, layers: 6, heads: 16, headDim: 64, vocab: 32000, passes: 4, maxPos: 4096),
            ouro("ouro-small", hidden: 256, inter: 704, layers: 4, heads: 4, headDim: 64, vocab: 1024, passes: 4, maxPos: 2048),
        ]
    }

    /// The tensors of an Ouro checkpoint: the embedding, layers with sandwich norms, the shared final norm, the exit
    /// gate and an untied head.
    static func synthTensors(_ d: SynthDecoder) -> [Synth.TensorSpec] {
        var t = SynthTensors()
        t.embedding("model.embed_tokens.weight", d.vocab, d.hidden)
        for i in 0..<d.layers { t.decoderLayer("model.layers.\(i)", d, sandwich: true) }
        t.norm("model.norm.weight", d.hidden)
        t.linear("model.early_exit_gate.weight", 1, d.hidden)
        t.zeros("model.early_exit_gate.bias", [1])
        t.linear("lm_head.weight", d.vocab, d.hidden)
        return t.specs
    }

    /// config.json and generation_config.json with the keys Ouro's `save_pretrained` writes; `passes` is
    /// `total_ut_steps`.
    static func synthConfigFiles(_ d: SynthDecoder, passes: Int, dtype: DType) -> [(name: String, json: SynthJSON)] {
        let td = SynthJSON.string(SynthPreset.torchDType(dtype))
        let cfg: [String: SynthJSON] = [
            "architectures": .array([.string("OuroForCausalLM")]),
            "attention_dropout": .double(0),
            "auto_map": .object([
                "AutoConfig": .string("configuration_ouro.OuroConfig"),
                "AutoModel": .string("modeling_ouro.OuroModel"),
                "AutoModelForCausalLM": .string("modeling_ouro.OuroForCausalLM"),
            ]),
            "bos_token_id": .int(d.bos),
            "dtype": td,
            "early_exit_threshold": .double(1.0),
            "eos_token_id": .int(d.eos),
            "head_dim": .int(d.headDim),
            "hidden_act": .string("silu"),
            "hidden_size": .int(d.hidden),
            "initializer_range": .double(0.02),
            "intermediate_size": .int(d.intermediate),
            "layer_types": .array(Array(repeating: .string("full_attention"), count: d.layers)),
            "max_position_embeddings": .int(d.maxPositions),
            "max_window_layers": .int(28),
            "model_type": .string("ouro"),
            "num_attention_heads": .int(d.heads),
            "num_hidden_layers": .int(d.layers),
            "num_key_value_heads": .int(d.kvHeads),
            "pad_token_id": .int(0),
            "rms_norm_eps": .double(d.eps),
            "rope_scaling": .null,
            "rope_theta": .double(d.ropeTheta),
            "sliding_window": .null,
            "tie_word_embeddings": .bool(false),
            "torch_dtype": td,
            "total_ut_steps": .int(passes),
            "transformers_version": .string("4.57.6"),
            "use_cache": .bool(true),
            "use_sliding_window": .bool(false),
            "vocab_size": .int(d.vocab),
        ]
        let gen: [String: SynthJSON] = [
            "_from_model_config": .bool(true), "bos_token_id": .int(d.bos), "eos_token_id": .int(d.eos),
            "pad_token_id": .int(0), "transformers_version": .string("4.57.6"),
        ]
        return [("config.json", .object(cfg)), ("generation_config.json", .object(gen))]
    }
}
