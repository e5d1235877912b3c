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
        let inv = try RopeTables.inverseFrequencies(theta: d.theta, headDim: d.headDim, scaling: d.scaling)
        let table = a.compute(name, shape: [positions, d.headDim / 2, 2], values: RopeTables.table(inverseFrequencies: inv, positions: positions))
        return AttentionSpec(hidden: d.hidden, heads: d.heads, kvHeads: d.kvHeads, headDim: d.headDim, ropeTable: table,
                             ropePositions: positions, ropeLayout: .rotateHalf, normEps: d.eps)
    }

    /// The output head: `name` when present; the embedding when tied and `name` is absent.
    static func lmHead(_ a: PlanAssembler, name: String, tiedTo embed: WeightRef, tied: Bool, _ d: LlamaConfig.Dims) throws -> WeightRef {
        if tied && !a.has(name) { return embed }
        return try a.weight(name, [d.vocab, d.hidden])
    }
}
