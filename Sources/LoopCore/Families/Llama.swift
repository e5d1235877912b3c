import Foundation

/// config.json of a Llama / Qwen3 model (also the `base_config_dict` of LoopUS and the base of
/// Ouro's config), with the checkpoint's own snake_case keys.
public struct LlamaConfig: Codable, Sendable {
    public var modelType: String?
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int?
    public var headDim: Int?
    public var vocabSize: Int
    public var ropeTheta: Double?
    public var ropeParameters: RopeParameters?
    public var ropeScaling: RopeParameters?
    public var rmsNormEps: Double?
    public var maxPositionEmbeddings: Int?
    public var tieWordEmbeddings: Bool?
    public var attentionBias: Bool?
    public var mlpBias: Bool?
    public var hiddenAct: String?
    public var useSlidingWindow: Bool?
    public var eosTokenId: TokenIdList?
    public var bosTokenId: TokenIdList?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads", headDim = "head_dim", vocabSize = "vocab_size"
        case ropeTheta = "rope_theta", ropeParameters = "rope_parameters", ropeScaling = "rope_scaling"
        case rmsNormEps = "rms_norm_eps", maxPositionEmbeddings = "max_position_embeddings"
        case tieWordEmbeddings = "tie_word_embeddings", attentionBias = "attention_bias", mlpBias = "mlp_bias"
        case hiddenAct = "hidden_act", useSlidingWindow = "use_sliding_window"
        case eosTokenId = "eos_token_id", bosTokenId = "bos_token_id"
    }

    /// The checked numbers a plan needs. `field` prefixes error messages (e.g. "base_config_dict.").
    struct Dims {
        var hidden, intermediate, layers, heads, kvHeads, headDim, vocab, maxPositions: Int
        var eps: Float
        var theta: Float
        var scaling: RopeParameters?
    }

    func dims(field p: String = "") throws -> Dims {
        let hidden = try ConfigDecoding.dim(hiddenSize, p + "hidden_size")
        let inter = try ConfigDecoding.dim(intermediateSize, p + "intermediate_size")
        let layers = try ConfigDecoding.dim(numHiddenLayers, p + "num_hidden_layers", max: 4096)
        let heads = try ConfigDecoding.dim(numAttentionHeads, p + "num_attention_heads", max: 4096)
        let kvHeads = try ConfigDecoding.dim(numKeyValueHeads ?? heads, p + "num_key_value_heads", max: 4096)
        guard heads % kvHeads == 0 else {
            throw LoopError.invalidConfig("\(p)num_attention_heads \(heads) is not a multiple of num_key_value_heads \(kvHeads)")
        }
        let hd: Int
        if let d = headDim {
            hd = try ConfigDecoding.dim(d, p + "head_dim", max: 4096)
        } else {
            guard hidden % heads == 0 else {
                throw LoopError.invalidConfig("\(p)hidden_size \(hidden) is not divisible by num_attention_heads \(heads) (and head_dim is absent)")
            }
            hd = hidden / heads
        }
        guard hd % 2 == 0 else { throw LoopError.invalidConfig("\(p)head_dim \(hd) must be even for RoPE") }
        let vocab = try ConfigDecoding.dim(vocabSize, p + "vocab_size", max: 1 << 23)
        let maxPos = try ConfigDecoding.dim(maxPositionEmbeddings ?? 2048, p + "max_position_embeddings", max: 1 << 24)
        let eps = try ConfigDecoding.positive(rmsNormEps ?? 1e-6, p + "rms_norm_eps")
        let theta = try ConfigDecoding.positive(ropeTheta ?? ropeParameters?.ropeTheta ?? 10000, p + "rope_theta")
        if let act = hiddenAct, act != "silu" {
            throw LoopError.unsupported("\(p)hidden_act \"\(SafeTensorsFile.printable(act))\" (only silu)")
        }
        if useSlidingWindow == true { throw LoopError.unsupported("\(p)use_sliding_window true") }
        var scaling = ropeScaling
        if let rp = ropeParameters, rp.kind != "default" { scaling = rp }
        return Dims(hidden: hidden, intermediate: inter, layers: layers, heads: heads, kvHeads: kvHeads, headDim: hd,
                    vocab: vocab, maxPositions: maxPos, eps: eps, theta: theta, scaling: scaling)
    }
}

/// Plain Llama / Qwen3 checkpoints: the degenerate loop (one pass of all layers by default, no
/// transition). Qwen3 layers carry per-head q_norm / k_norm before RoPE.
public enum Llama: LoopFamily {
    public static let modelTypes = ["llama", "qwen3"]

    public static func plan(checkpoint: Checkpoint, passes: Int?, maxContext: Int? = nil) throws -> (LoopPlan, ModelInfo) {
        let cfg = try ConfigDecoding.decode(LlamaConfig.self, from: checkpoint.configData)
        let type = cfg.modelType ?? "llama"
        let d = try cfg.dims()
        let passCount = try ModelFamily.resolvePasses(passes, defaultPasses: 1, field: "passes")
        let context = try contextLimit(d.maxPositions, cap: maxContext)
        let a = PlanAssembler(checkpoint: checkpoint)
        let spec = try ropeSpec(a, d, positions: context, name: "rope.table")

        let h = a.act("h", d.hidden)
        let embed = try a.weight("model.embed_tokens.weight", [d.vocab, d.hidden])
        let prelude: [Op] = [.embed(table: embed, vocab: d.vocab, dim: d.hidden, out: h, scale: 1)]
        var passOps: [[Op]] = []
        for t in 0..<passCount {
            var ops: [Op] = []
            for l in 0..<d.layers {
                ops += try a.standardLayerOps(prefix: "model.layers.\(l)", state: h, slot: t * d.layers + l, spec: spec,
                                              intermediate: d.intermediate, eps: d.eps, attentionBias: cfg.attentionBias ?? false,
                                              mlpBias: cfg.mlpBias ?? false, qkNorm: type == "qwen3")
            }
            passOps.append(ops)
        }
        let y = a.act("y", d.hidden)
        let logits = a.act("logits", d.vocab)
        let head: [Op] = [
            .rmsNorm(x: h, add: nil, weight: try a.weight("model.norm.weight", [d.hidden]), out: y, dim: d.hidden, groups: 1, eps: d.eps, mode: .plain),
            .linear(x: y, weight: try lmHead(a, name: "lm_head.weight", tiedTo: embed, tied: cfg.tieWordEmbeddings ?? false, d),
                    bias: nil, out: logits, inFeatures: d.hidden, outFeatures: d.vocab, accumulate: false),
        ]
        var plan = LoopPlan(family: type, hidden: d.hidden, vocab: d.vocab, activations: a.activations,
                            kvSlots: passCount * d.layers, kvWidth: spec.kvWidth, maxContext: context, computed: a.computed,
                            prelude: prelude, passes: passOps, head: head, stateAct: "h", logitsAct: "logits",
                            exitAct: nil, exitSignal: .none)
        plan.concatenated = a.concatenated
        plan.castTables = a.castTables
        var info = ModelInfo(modelType: type, defaultPasses: 1, passes: passCount, maxContext: context, hidden: d.hidden,
                             vocab: d.vocab, eosTokenIds: ConfigDecoding.eosIds([cfg.eosTokenId, ConfigDecoding.generationEos(checkpoint)]),
                             bosTokenId: cfg.bosTokenId?.ids.first)
        info.baseModelType = nil
        if type == "qwen3" {
            info.stopTokens = ["<|im_end|>", "<|endoftext|>"]
            info.chatTemplate = "chatml"
        }
        return (plan, info)
    }

    /// The context limit: the config's, optionally capped.
    static func contextLimit(_ configLimit: Int, cap: Int?) throws -> Int {
        guard let cap else { return configLimit }
        guard cap >= 1 else { throw LoopError.invalidArgument("maxContext = \(cap) must be positive") }
        return min(cap, configLimit)
    }

    /// The attention geometry with a rotate-half RoPE table computed into the plan.
    static func ropeSpec(_ a: PlanAssembler, _ d: LlamaConfig.Dims, positions: Int, name: String) throws -> AttentionSpec {
        try ConfigDecoding.checkRopeTable(positions: positions, headDim: d.headDim, field: "max_position_embeddings")
        var inv = try RopeTables.inverseFrequencies(theta: d.theta, headDim: d.headDim, scaling: d.scaling)
        // GGUF files of Llama 3 carry their RoPE scaling as one divisor per frequency.
        if a.has("rope_freqs.weight") {
            let f = try a.checkpoint.floats("rope_freqs.weight")
            guard f.count == inv.count, f.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw LoopError.invalidArgument("rope_freqs.weight holds \(f.count) factors; RoPE of head_dim \(d.headDim) needs \(inv.count) positive ones")
            }
            inv = zip(inv, f).map { $0 / $1 }
        }
        let table = a.compute(name, shape: [positions, d.headDim / 2, 2], values: RopeTables.table(inverseFrequencies: inv, positions: positions))
        // HF's rotary embedding returns cos/sin cast to the activations' dtype.
        a.castTables.append(name)
        return AttentionSpec(hidden: d.hidden, heads: d.heads, kvHeads: d.kvHeads, headDim: d.headDim, ropeTable: table,
                             ropePositions: positions, ropeLayout: .rotateHalf, normEps: d.eps)
    }

    /// The output head: `name` when present; the embedding when tied and `name` is absent.
    static func lmHead(_ a: PlanAssembler, name: String, tiedTo embed: WeightRef, tied: Bool, _ d: LlamaConfig.Dims) throws -> WeightRef {
        if tied && !a.has(name) { return embed }
        return try a.weight(name, [d.vocab, d.hidden])
    }
}

// MARK: - Synthetic checkpoints

extension SynthDecoder {
    /// Qwen3-1.7B (tied head): the llama preset qwen3-1.7b and the base of the loopus preset loopus-qwen3-1.7b.
    static let qwen3_1_7b = SynthDecoder(modelType: "qwen3", hidden: 2048, intermediate: 6144, layers: 28, heads: 16, kvHeads: 8,
                                         headDim: 128, vocab: 151936, maxPositions: 40960, ropeTheta: 1e6, eps: 1e-6,
                                         tiedEmbeddings: true, llama3Scaling: nil, bos: 151643, eos: 151645)

    /// The transformers class of a Llama / Qwen3 decoder (`architectures` in config.json, LoopUS's base config too).
    var architecture: String { modelType == "qwen3" ? "Qwen3ForCausalLM" : "LlamaForCausalLM" }
}

extension Llama {
    /// The `Synth` presets. Published shapes: llama-1b (Llama-3.2-1B, tied head, llama3 RoPE scaling) and qwen3-1.7b
    /// (Qwen3-1.7B, tied head); llama-small and qwen3-small are our own.
    static var synthPresets: [SynthPreset] {
        let llama1b = SynthDecoder(modelType: "llama", hidden: 2048, intermediate: 8192, layers: 16, heads: 32, kvHeads: 8,
                                   headDim: 64, vocab: 128256, maxPositions: 131072, ropeTheta: 500000, eps: 1e-5,
                                   tiedEmbeddings: true, llama3Scaling: (32, 1, 4, 8192), bos: 128000, eos: 128001)
        let llamaSmall = SynthDecoder(modelType: "llama", hidden: 256, intermediate: 768, layers: 4, heads: 4, kvHeads: 2,
                                      headDim: 64, vocab: 1024, maxPositions: 2048, ropeTheta: 500000, eps: 1e-5,
                                      tiedEmbeddings: false, llama3Scaling: nil, bos: 1, eos: 2)
        let qwen3PlainSmall = SynthDecoder(modelType: "qwen3", hidden: 256, intermediate: 768, layers: 4, heads: 4, kvHeads: 2,
                                           headDim: 64, vocab: 1024, maxPositions: 2048, ropeTheta: 1e6, eps: 1e-6,
                                           tiedEmbeddings: true, llama3Scaling: nil, bos: 1, eos: 2)
        return [
            SynthPreset(family: "llama", name: "llama-1b", model: .llama(llama1b)),
            SynthPreset(family: "llama", name: "llama-small", model: .llama(llamaSmall)),
            SynthPreset(family: "llama", name: "qwen3-1.7b", model: .llama(.qwen3_1_7b)),
            SynthPreset(family: "llama", name: "qwen3-small", model: .llama(qwen3PlainSmall)),
        ]
    }

    /// The tensors of a Llama / Qwen3 checkpoint: the embedding, the layers, the final norm, and `lm_head` unless the
    /// head is tied.
    static func synthTensors(_ d: SynthDecoder) -> [Synth.TensorSpec] {
        var t = SynthTensors()
        t.embedding("model.embed_tokens.weight", d.vocab, d.hidden)
        for i in 0..<d.layers { t.decoderLayer("model.layers.\(i)", d, sandwich: false) }
        t.norm("model.norm.weight", d.hidden)
        if !d.tiedEmbeddings { t.linear("lm_head.weight", d.vocab, d.hidden) }
        return t.specs
    }

    /// config.json and generation_config.json with the keys of the published Llama-3.2 / Qwen3 checkpoints (the
    /// keys and transformers version differ between the two).
    static func synthConfigFiles(_ d: SynthDecoder, dtype: DType) -> [(name: String, json: SynthJSON)] {
        let td = SynthJSON.string(SynthPreset.torchDType(dtype))
        var cfg: [String: SynthJSON] = [
            "architectures": .array([.string(d.architecture)]),
            "attention_bias": .bool(false),
            "attention_dropout": .double(0),
            "bos_token_id": .int(d.bos),
            "eos_token_id": .int(d.eos),
            "head_dim": .int(d.headDim),
            "hidden_act": .string("silu"),
            "hidden_size": .int(d.hidden),
            "initializer_range": .double(0.02),
            "intermediate_size": .int(d.intermediate),
            "max_position_embeddings": .int(d.maxPositions),
            "model_type": .string(d.modelType),
            "num_attention_heads": .int(d.heads),
            "num_hidden_layers": .int(d.layers),
            "num_key_value_heads": .int(d.kvHeads),
            "rms_norm_eps": .double(d.eps),
            "rope_theta": .double(d.ropeTheta),
            "tie_word_embeddings": .bool(d.tiedEmbeddings),
            "torch_dtype": td,
            "use_cache": .bool(true),
            "vocab_size": .int(d.vocab),
        ]
        if d.modelType == "qwen3" {
            cfg["max_window_layers"] = .int(d.layers)
            cfg["rope_scaling"] = .null
            cfg["sliding_window"] = .null
            cfg["use_sliding_window"] = .bool(false)
            cfg["transformers_version"] = .string("4.51.0")
        } else {
            cfg["mlp_bias"] = .bool(false)
            cfg["pretraining_tp"] = .int(1)
            cfg["transformers_version"] = .string("4.45.0")
            if let s = d.llama3Scaling {
                cfg["rope_scaling"] = .object([
                    "factor": .double(s.factor), "low_freq_factor": .double(s.low), "high_freq_factor": .double(s.high),
                    "original_max_position_embeddings": .int(s.original), "rope_type": .string("llama3"),
                ])
            } else {
                cfg["rope_scaling"] = .null
            }
        }
        let gen: [String: SynthJSON] = [
            "_from_model_config": .bool(true), "bos_token_id": .int(d.bos), "eos_token_id": .int(d.eos),
            "transformers_version": cfg["transformers_version"]!,
        ]
        return [("config.json", .object(cfg)), ("generation_config.json", .object(gen))]
    }
}
