import Foundation

/// Huginn-0125 ("Raven") config.json, with the checkpoint's own keys.
public struct HuginnConfig: Codable, Sendable {
    public var modelType: String?
    public var nEmbd: Int
    public var nHeads: Int
    public var numKeyValueHeads: Int?
    public var headDim: Int?
    public var intermediateSize: Int
    public var nLayersInPrelude: Int
    public var nLayersInRecurrentBlock: Int
    public var nLayersInCoda: Int
    public var meanRecurrence: Int?
    public var blockSize: Int
    public var vocabSize: Int
    public var paddedVocabSize: Int?
    public var tieEmbeddings: Bool?
    public var qkBias: Bool?
    public var bias: Bool?
    public var ropeBase: Double?
    public var normEps: Double?
    public var injectionType: String?
    public var initValues: InitValues?
    public var eosTokenId: TokenIdList?
    public var bosTokenId: TokenIdList?

    public struct InitValues: Codable, Sendable {
        public var embedScale: Double?
        enum CodingKeys: String, CodingKey { case embedScale = "embed_scale" }
    }

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", nEmbd = "n_embd", nHeads = "n_heads", numKeyValueHeads = "num_key_value_heads"
        case headDim = "head_dim", intermediateSize = "intermediate_size", nLayersInPrelude = "n_layers_in_prelude"
        case nLayersInRecurrentBlock = "n_layers_in_recurrent_block", nLayersInCoda = "n_layers_in_coda"
        case meanRecurrence = "mean_recurrence", blockSize = "block_size", vocabSize = "vocab_size"
        case paddedVocabSize = "padded_vocab_size", tieEmbeddings = "tie_embeddings", qkBias = "qk_bias", bias
        case ropeBase = "rope_base", normEps = "norm_eps", injectionType = "injection_type", initValues = "init_values"
        case eosTokenId = "eos_token_id", bosTokenId = "bos_token_id"
    }
}

/// Huginn-0125: prelude blocks, a 4-block core applied r times with a linear adapter that
/// re-injects the prelude output, coda blocks; sandwich blocks whose residual sums are
/// normalized; interleaved RoPE; q/k bias; tied head.
///
/// Plan: prelude = e = wte[ids] * embed_scale; prelude blocks (slots 0 ..< P); x = 0.
/// Pass r: cat = [x, e]; x = adapter(cat); core blocks j (slot P + C*r + j).
/// Head: y = ln_f(x); coda blocks (slots P + C*T + j); y = ln_f(y); logits = y · wteᵀ.
/// Block(x): x = norm_2(attn(norm_1(x)) + x); x = norm_4(mlp(norm_3(x)) + x).
public enum Huginn: LoopFamily {
    public static let modelTypes = ["huginn_raven"]

    /// Default Huginn plan (one KV slot per block application, the reference's "full" cache).
    public static func plan(checkpoint: Checkpoint, passes: Int?, maxContext: Int? = nil) throws -> (LoopPlan, ModelInfo) {
        try plan(checkpoint: checkpoint, passes: passes, maxContext: maxContext, compressSlots: nil)
    }

    /// `compressSlots` = C reproduces the reference's "compress-sC" cache: core block application
    /// b (0-based over all passes) uses core slot b % C instead of its own slot, so later passes
    /// overwrite earlier ones and a decode token reads earlier tokens' K/V from the last pass that
    /// wrote them. nil = one slot per application ("full").
    public static func plan(checkpoint: Checkpoint, passes: Int?, maxContext: Int?, compressSlots: Int?) throws -> (LoopPlan, ModelInfo) {
        let cfg = try ConfigDecoding.decode(HuginnConfig.self, from: checkpoint.configData)
        let hd = try ConfigDecoding.dim(cfg.nEmbd, "n_embd")
        let heads = try ConfigDecoding.dim(cfg.nHeads, "n_heads", max: 4096)
        guard hd % heads == 0 else { throw LoopError.invalidConfig("n_embd \(hd) is not divisible by n_heads \(heads)") }
        let kvHeads = try ConfigDecoding.dim(cfg.numKeyValueHeads ?? heads, "num_key_value_heads", max: 4096)
        guard kvHeads == heads else { throw LoopError.unsupported("Huginn with num_key_value_heads \(kvHeads) != n_heads \(heads)") }
        let headDim = hd / heads
        if let d = cfg.headDim, d != headDim { throw LoopError.invalidConfig("head_dim \(d) != n_embd / n_heads = \(headDim)") }
        guard headDim % 2 == 0 else { throw LoopError.invalidConfig("head_dim \(headDim) must be even for RoPE") }
        let inter = try ConfigDecoding.dim(cfg.intermediateSize, "intermediate_size")
        let nPrelude = try ConfigDecoding.dim(cfg.nLayersInPrelude, "n_layers_in_prelude", max: 1024)
        let nCore = try ConfigDecoding.dim(cfg.nLayersInRecurrentBlock, "n_layers_in_recurrent_block", max: 1024)
        let nCoda = try ConfigDecoding.dim(cfg.nLayersInCoda, "n_layers_in_coda", max: 1024)
        let blockSize = try ConfigDecoding.dim(cfg.blockSize, "block_size", max: 1 << 24)
        let vocab = try ConfigDecoding.dim(cfg.paddedVocabSize ?? cfg.vocabSize, cfg.paddedVocabSize != nil ? "padded_vocab_size" : "vocab_size", max: 1 << 23)
        let eps = try ConfigDecoding.positive(cfg.normEps ?? 1e-6, "norm_eps")
        let theta = try ConfigDecoding.positive(cfg.ropeBase ?? 50000, "rope_base")
        if let inj = cfg.injectionType, inj != "linear" { throw LoopError.unsupported("injection_type \"\(SafeTensorsFile.printable(inj))\" (only linear)") }
        if cfg.bias == true { throw LoopError.unsupported("Huginn with bias true") }
        let defaultPasses = cfg.meanRecurrence ?? 32
        let passCount = try ModelFamily.resolvePasses(passes, defaultPasses: defaultPasses, field: "mean_recurrence")
        if let c = compressSlots, c < 1 { throw LoopError.invalidArgument("compressSlots = \(c) must be positive") }
        let context = try Llama.contextLimit(blockSize, cap: maxContext)
        let embedScale = Float(cfg.initValues?.embedScale ?? Double(hd).squareRoot())
        guard embedScale.isFinite, embedScale > 0 else { throw LoopError.invalidConfig("init_values.embed_scale must be positive") }

        let a = PlanAssembler(checkpoint: checkpoint)
        // RoPE: the stored freqs_cis table [1, block_size, 1, head_dim/2, 2] (cos, sin) when present.
        let half = headDim / 2
        try ConfigDecoding.checkRopeTable(positions: context, headDim: headDim, field: "block_size")
        let tableValues: [Float]
        if a.has("freqs_cis") {
            try checkpoint.require("freqs_cis", shape: [1, blockSize, 1, half, 2])
            tableValues = Array(try checkpoint.floats("freqs_cis").prefix(context * half * 2))
        } else {
            let inv = try RopeTables.inverseFrequencies(theta: theta, headDim: headDim, scaling: nil)
            tableValues = RopeTables.table(inverseFrequencies: inv, positions: context)
        }
        let table = a.compute("rope.table", shape: [context, half, 2], values: tableValues)
        let spec = AttentionSpec(hidden: hd, heads: heads, kvHeads: kvHeads, headDim: headDim, ropeTable: table,
                                 ropePositions: context, ropeLayout: .interleaved, normEps: eps)

        let e = a.act("e", hd), x = a.act("x", hd), cat = a.act("cat", 2 * hd), y = a.act("y", hd)
        let logits = a.act("logits", vocab)
        let wte = try a.weight("transformer.wte.weight", [vocab, hd])
        let lnf = try a.weight("transformer.ln_f.weight", [hd])
        let adapter = try a.weight("transformer.adapter.weight", [hd, 2 * hd])
        let qkBias = cfg.qkBias ?? false

        func block(_ prefix: String) throws -> BlockWeights {
            let p = "transformer.\(prefix)"
            let wqkv = try a.weight("\(p).attn.Wqkv.weight", [3 * hd, hd])
            var attn = AttentionWeights(q: wqkv, k: WeightRef(wqkv.name, offset: hd * hd),
                                        v: WeightRef(wqkv.name, offset: 2 * hd * hd),
                                        o: try a.weight("\(p).attn.proj.weight", [hd, hd]))
            if qkBias {
                let b = try a.weight("\(p).attn.qk_bias", [2, 1, heads, headDim])
                attn.qBias = b
                attn.kBias = WeightRef(b.name, offset: hd)
            }
            let fc = try a.weight("\(p).mlp.fc.weight", [2 * inter, hd])
            let mlp = MLPWeights(gate: fc, up: WeightRef(fc.name, offset: inter * hd),
                                 down: try a.weight("\(p).mlp.proj.weight", [hd, inter]))
            return BlockWeights(attn: attn, mlp: mlp, norms: try (1...4).map { try a.weight("\(p).norm_\($0).weight", [hd]) })
        }
        // x = norm_2(attn(norm_1(x)) + x); x = norm_4(mlp(norm_3(x)) + x)
        func blockOps(_ w: BlockWeights, state: ActRef, slot: Int) -> [Op] {
            let xn = a.act("xn", hd), o = a.act("o", hd)
            var ops: [Op] = [.rmsNorm(x: state, add: nil, weight: w.norms[0], out: xn, dim: hd, groups: 1, eps: eps, mode: .plain)]
            ops += a.attentionOps(input: xn, out: o, accumulate: false, slot: slot, spec: spec, weights: w.attn)
            ops.append(.rmsNorm(x: o, add: state, weight: w.norms[1], out: state, dim: hd, groups: 1, eps: eps, mode: .normalizeSum))
            ops.append(.rmsNorm(x: state, add: nil, weight: w.norms[2], out: xn, dim: hd, groups: 1, eps: eps, mode: .plain))
            ops += a.mlpOps(input: xn, out: o, accumulate: false, hidden: hd, intermediate: inter, weights: w.mlp)
            ops.append(.rmsNorm(x: o, add: state, weight: w.norms[3], out: state, dim: hd, groups: 1, eps: eps, mode: .normalizeSum))
            return ops
        }

        let preludeW = try (0..<nPrelude).map { try block("prelude.\($0)") }
        let coreW = try (0..<nCore).map { try block("core_block.\($0)") }
        let codaW = try (0..<nCoda).map { try block("coda.\($0)") }
        let coreSlotCount = compressSlots ?? (nCore * passCount)
        let codaSlot0 = nPrelude + coreSlotCount

        var prelude: [Op] = [.embed(table: wte, vocab: vocab, dim: hd, out: e, scale: embedScale)]
        for (j, w) in preludeW.enumerated() { prelude += blockOps(w, state: e, slot: j) }
        prelude.append(.unary(kind: .fill, x: x, out: x, dim: hd, scale: 0))

        var passOps: [[Op]] = []
        for r in 0..<passCount {
            var ops: [Op] = [
                .copy(src: x, out: cat, width: hd),
                .copy(src: e, out: ActRef("cat", col: hd), width: hd),
                .linear(x: cat, weight: adapter, bias: nil, out: x, inFeatures: 2 * hd, outFeatures: hd, accumulate: false),
            ]
            for (j, w) in coreW.enumerated() {
                let b = r * nCore + j
                ops += blockOps(w, state: x, slot: nPrelude + (compressSlots.map { b % $0 } ?? b))
            }
            passOps.append(ops)
        }

        var head: [Op] = [.rmsNorm(x: x, add: nil, weight: lnf, out: y, dim: hd, groups: 1, eps: eps, mode: .plain)]
        for (j, w) in codaW.enumerated() { head += blockOps(w, state: y, slot: codaSlot0 + j) }
        head.append(.rmsNorm(x: y, add: nil, weight: lnf, out: y, dim: hd, groups: 1, eps: eps, mode: .plain))
        let headW: WeightRef = (cfg.tieEmbeddings ?? true) && !a.has("lm_head.weight") ? wte : try a.weight("lm_head.weight", [vocab, hd])
        head.append(.linear(x: y, weight: headW, bias: nil, out: logits, inFeatures: hd, outFeatures: vocab, accumulate: false))

        var plan = LoopPlan(family: "huginn", hidden: hd, vocab: vocab, activations: a.activations,
                            kvSlots: codaSlot0 + nCoda, kvWidth: spec.kvWidth, maxContext: context, computed: a.computed,
                            prelude: prelude, passes: passOps, head: head, stateAct: "x", logitsAct: "logits",
                            exitAct: nil, exitSignal: .none)
        plan.concatenated = a.concatenated
        plan.castTables = a.castTables
        var info = ModelInfo(modelType: "huginn_raven", defaultPasses: defaultPasses, passes: passCount, maxContext: context,
                             hidden: hd, vocab: vocab,
                             eosTokenIds: ConfigDecoding.eosIds([cfg.eosTokenId, ConfigDecoding.generationEos(checkpoint)]),
                             bosTokenId: cfg.bosTokenId?.ids.first)
        info.exitRules = [.huginnCriteria]
        info.stopTokens = ["<|begin_text|>", "<|end_text|>", "<|end_turn|>"]
        info.chatTemplate = "huginn"
        return (plan, info)
    }

    struct BlockWeights {
        var attn: AttentionWeights
        var mlp: MLPWeights
        var norms: [WeightRef]
    }
}

// MARK: - Synthetic checkpoints

/// Huginn-0125 ("Raven") dimensions.
public struct SynthHuginn: Sendable, Equatable {
    public var hidden: Int
    public var heads: Int
    public var intermediate: Int
    public var prelude: Int
    public var core: Int
    public var coda: Int
    public var vocab: Int
    public var blockSize: Int
    public var meanRecurrence: Int
    public var ropeBase: Double
    public var eps: Double
    public var paddingMultiple: Int
    public var headDim: Int { hidden / heads }
}


extension Huginn {
    /// The `Synth` presets. huginn-3.5b: the published Huginn-0125 config.json shapes; huginn-small is our own.
    static var synthPresets: [SynthPreset] {
        [
            SynthPreset(family: "huginn", name: "huginn-3.5b", model: .huginn(SynthHuginn(
                hidden: 5280, heads: 55, intermediate: 17920, prelude: 2, core: 4, coda: 2, vocab: 65536, blockSize: 4096,
                meanRecurrence: 32, ropeBase: 50000, eps: 1e-6, paddingMultiple: 4096))),
            SynthPreset(family: "huginn", name: "huginn-small", model: .huginn(SynthHuginn(
                hidden: 192, heads: 3, intermediate: 512, prelude: 2, core: 2, coda: 2, vocab: 1024, blockSize: 512,
                meanRecurrence: 8, ropeBase: 50000, eps: 1e-6, paddingMultiple: 4))),
        ]
    }

    /// The tensors of a Huginn checkpoint: the embedding (tied head), prelude / core / coda sandwich blocks with fused
    /// Wqkv and fc weights and the q/k bias, the adapter, ln_f, and the stored `freqs_cis` RoPE table (a buffer, not a
    /// parameter).
    static func synthTensors(_ g: SynthHuginn) -> [Synth.TensorSpec] {
        var t = SynthTensors()
        let h = g.hidden, hd = g.headDim
        t.embedding("transformer.wte.weight", g.vocab, h)
        for (part, n) in [("prelude", g.prelude), ("core_block", g.core), ("coda", g.coda)] {
            for j in 0..<n {
                let p = "transformer.\(part).\(j)"
                for k in 1...4 { t.norm("\(p).norm_\(k).weight", h) }
                t.linear("\(p).attn.Wqkv.weight", 3 * h, h)
                t.append("\(p).attn.qk_bias", [2, 1, g.heads, hd], .uniform(center: 0, halfWidth: 0.05))
                t.linear("\(p).attn.proj.weight", h, h)
                t.linear("\(p).mlp.fc.weight", 2 * g.intermediate, h)
                t.linear("\(p).mlp.proj.weight", h, g.intermediate)
            }
        }
        t.linear("transformer.adapter.weight", h, 2 * h)
        t.norm("transformer.ln_f.weight", h)
        t.append("freqs_cis", [1, g.blockSize, 1, hd / 2, 2], .ropeTable(theta: Float(g.ropeBase), headDim: hd), isParameter: false)
        return t.specs
    }

    /// config.json and generation_config.json with the keys of the published Huginn-0125; `init_values` and
    /// `effective_expected_depth` are computed from the width and the block counts.
    static func synthConfigFiles(_ g: SynthHuginn, dtype: DType) -> [(name: String, json: SynthJSON)] {
        let td = SynthJSON.string(SynthPreset.torchDType(dtype))
        let layers = g.prelude + g.core + g.coda
        let depth = g.prelude + g.coda + g.core * g.meanRecurrence
        let std = (2.0 / (5.0 * Double(g.hidden))).squareRoot()
        let cfg: [String: SynthJSON] = [
            "activation_checkpoint_impl": .string("per-iteration"),
            "architecture_class_name": .string("RecurrentGPT"),
            "architectures": .array([.string("RavenForCausalLM")]),
            "auto_map": .object([
                "AutoConfig": .string("raven_config_minimal.RavenConfig"),
                "AutoModelForCausalLM": .string("raven_modeling_minimal.RavenForCausalLM"),
            ]),
            "bias": .bool(false),
            "block_class_name": .string("SandwichBlock"),
            "block_size": .int(g.blockSize),
            "dtype": td,
            "effective_expected_depth": .int(depth),
            "head_dim": .int(g.headDim),
            "init_orthogonal": .bool(false),
            "init_strategy": .string("takase"),
            "init_values": .object([
                "embed_scale": .double(Double(g.hidden).squareRoot()),
                "embedding": .double(std),
                "out_proj": .double(std / (2.0 * Double(depth)).squareRoot()),
                "std": .double(std),
            ]),
            "injection_type": .string("linear"),
            "intermediate_size": .int(g.intermediate),
            "mean_backprop_depth": .int(8),
            "mean_recurrence": .int(g.meanRecurrence),
            "mlp_class_name": .string("GatedMLP"),
            "model_type": .string("huginn_raven"),
            "n_embd": .int(g.hidden),
            "n_heads": .int(g.heads),
            "n_layers": .int(layers),
            "n_layers_in_coda": .int(g.coda),
            "n_layers_in_prelude": .int(g.prelude),
            "n_layers_in_recurrent_block": .int(g.core),
            "nonlin_name": .string("SiLU"),
            "norm_class_name": .string("RMSNorm_llama"),
            "norm_eps": .double(g.eps),
            "num_attention_heads": .int(g.heads),
            "num_key_value_heads": .int(g.heads),
            "padded_vocab_size": .int(g.vocab),
            "padding_multiple": .int(g.paddingMultiple),
            "qk_bias": .bool(true),
            "rope_base": .double(g.ropeBase),
            "sampling_scheme": .string("poisson-lognormal-filling"),
            "state_init": .string("like-init"),
            "test_time_noise": .int(0),
            "test_time_noise_type": .string("fixed"),
            "tie_embeddings": .bool(true),
            "torch_dtype": td,
            "transformers_version": .string("4.57.6"),
            "vocab_size": .int(g.vocab),
        ]
        let gen: [String: SynthJSON] = ["_from_model_config": .bool(true), "transformers_version": .string("4.57.6")]
        return [("config.json", .object(cfg)), ("generation_config.json", .object(gen))]
    }
}
