import Foundation

// Preset shapes for `Synth` and the config.json / generation_config.json each family's
// published checkpoints carry. Key sets follow the fixtures in `shared/fixtures` (which were
// written by the official code's `save_pretrained`); values follow the published models.

/// A Llama-style decoder stack: Llama, Qwen3 (per-head q_norm/k_norm), Ouro's layers (plus sandwich
/// norms) and the base model of LoopUS.
public struct SynthDecoder: Sendable {
    /// "llama", "qwen3" or "ouro".
    public var modelType: String
    public var hidden: Int
    public var intermediate: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var vocab: Int
    public var maxPositions: Int
    public var ropeTheta: Double
    public var eps: Double
    /// The head reuses the embedding (no `lm_head.weight` in the file for plain Llama/Qwen3).
    public var tiedEmbeddings: Bool
    /// Llama-3 RoPE scaling (factor, low, high, original max positions); nil = none.
    public var llama3Scaling: (factor: Double, low: Double, high: Double, original: Int)?
    public var bos: Int
    public var eos: Int

    /// Qwen3 layers carry `self_attn.q_norm` / `k_norm` ([head_dim]).
    public var qkNorm: Bool { modelType == "qwen3" }
}

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

/// One named preset of one family.
public struct SynthPreset: Sendable {
    public enum Model: Sendable {
        /// Ouro: the whole stack loops `passes` times (`total_ut_steps`).
        case ouro(SynthDecoder, passes: Int)
        case huginn(SynthHuginn)
        /// LoopUS over a base model; the index lists are original layer ids.
        case loopus(SynthDecoder, encoder: [Int], reasoning: [Int], decoder: [Int], passes: Int, baseName: String)
        /// A plain (one-pass) Llama / Qwen3 checkpoint.
        case llama(SynthDecoder)
    }

    public var family: String
    public var name: String
    public var model: Model
    /// Stored dtype unless the caller overrides it.
    public var defaultDType: DType = .bf16
}

extension Synth {
    /// Every preset, by family.
    ///
    /// Published shapes: ouro-1.4b / ouro-2.6b (Ouro config.json), huginn-3.5b (Huginn-0125
    /// config.json), llama-1b (Llama-3.2-1B, tied head, llama3 RoPE scaling), qwen3-1.7b (Qwen3-1.7B,
    /// tied head). Assumptions (not taken from a published LoopUS checkpoint):
    /// - loopus-qwen3-1.7b: the split encoder = layers 0-3, reasoning = 4-23, decoder = 24-27 is a
    ///   guess (FAMILIES.md does not document the published split); N = 6 and q_threshold = 0.9 are
    ///   the LoopUS defaults; the gate rank r = ceil(hidden/16) = 128 is the Mamba `dt_rank`
    ///   convention, which the fixture (hidden 64 -> r 4) and the plan builder also use;
    ///   `decoder.lm_head.weight` is written even though the Qwen3-1.7B base config ties the head.
    /// - ouro-bench and all "-small" presets are our own shapes (no published model); ouro-bench is
    ///   142.6M parameters, about the size used for the lavapipe llama.cpp comparison in DESIGN.md.
    /// - bos/eos ids, `max_window_layers`, `padding_multiple` and the like copy the fixtures where
    ///   the published value was not at hand; they do not change any tensor.
    public static let allPresets: [SynthPreset] = {
        func ouro(_ name: String, hidden: Int, inter: Int, layers: Int, heads: Int, headDim: Int, vocab: Int,
                  passes: Int, maxPos: Int, theta: Double = 1e6) -> SynthPreset {
            let d = SynthDecoder(modelType: "ouro", hidden: hidden, intermediate: inter, layers: layers, heads: heads,
                                 kvHeads: heads, headDim: headDim, vocab: vocab, maxPositions: maxPos, ropeTheta: theta,
                                 eps: 1e-6, tiedEmbeddings: false, llama3Scaling: nil, bos: 0, eos: 0)
            return SynthPreset(family: "ouro", name: name, model: .ouro(d, passes: passes))
        }
        let qwen3_17b = SynthDecoder(modelType: "qwen3", hidden: 2048, intermediate: 6144, layers: 28, heads: 16, kvHeads: 8,
                                     headDim: 128, vocab: 151936, maxPositions: 40960, ropeTheta: 1e6, eps: 1e-6,
                                     tiedEmbeddings: true, llama3Scaling: nil, bos: 151643, eos: 151645)
        let qwen3Small = SynthDecoder(modelType: "qwen3", hidden: 128, intermediate: 384, layers: 6, heads: 4, kvHeads: 2,
                                      headDim: 32, vocab: 1024, maxPositions: 2048, ropeTheta: 1e6, eps: 1e-6,
                                      tiedEmbeddings: false, llama3Scaling: nil, bos: 1, eos: 2)
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
            ouro("ouro-1.4b", hidden: 2048, inter: 5632, layers: 24, heads: 16, headDim: 128, vocab: 49152, passes: 4, maxPos: 65536),
            ouro("ouro-2.6b", hidden: 2048, inter: 5632, layers: 48, heads: 16, headDim: 128, vocab: 49152, passes: 4, maxPos: 65536),
            ouro("ouro-bench", hidden: 1024, inter: 2816, layers: 6, heads: 16, headDim: 64, vocab: 32000, passes: 4, maxPos: 4096),
            ouro("ouro-small", hidden: 256, inter: 704, layers: 4, heads: 4, headDim: 64, vocab: 1024, passes: 4, maxPos: 2048),
            SynthPreset(family: "huginn", name: "huginn-3.5b", model: .huginn(SynthHuginn(
                hidden: 5280, heads: 55, intermediate: 17920, prelude: 2, core: 4, coda: 2, vocab: 65536, blockSize: 4096,
                meanRecurrence: 32, ropeBase: 50000, eps: 1e-6, paddingMultiple: 4096))),
            SynthPreset(family: "huginn", name: "huginn-small", model: .huginn(SynthHuginn(
                hidden: 192, heads: 3, intermediate: 512, prelude: 2, core: 2, coda: 2, vocab: 1024, blockSize: 512,
                meanRecurrence: 8, ropeBase: 50000, eps: 1e-6, paddingMultiple: 4))),
            SynthPreset(family: "loopus", name: "loopus-qwen3-1.7b", model: .loopus(
                qwen3_17b, encoder: Array(0...3), reasoning: Array(4...23), decoder: Array(24...27), passes: 6,
                baseName: "Qwen/Qwen3-1.7B")),
            SynthPreset(family: "loopus", name: "loopus-small", model: .loopus(
                qwen3Small, encoder: [0], reasoning: [1, 2, 3, 4], decoder: [5], passes: 4, baseName: "synthetic/qwen3-128")),
            SynthPreset(family: "llama", name: "llama-1b", model: .llama(llama1b)),
            SynthPreset(family: "llama", name: "llama-small", model: .llama(llamaSmall)),
            SynthPreset(family: "llama", name: "qwen3-1.7b", model: .llama(qwen3_17b)),
            SynthPreset(family: "llama", name: "qwen3-small", model: .llama(qwen3PlainSmall)),
        ]
    }()
}

// MARK: - config.json

/// A JSON value rendered the way Python's `json.dumps(indent=2, sort_keys=True)` renders it
/// (the form `save_pretrained` writes), so synthetic configs read like published ones.
enum SynthJSON {
    case int(Int), double(Double), string(String), bool(Bool), null
    case array([SynthJSON])
    case object([String: SynthJSON])

    func render(indent: Int = 0) -> String {
        let pad = String(repeating: " ", count: indent + 2), end = String(repeating: " ", count: indent)
        switch self {
        case .int(let i): return String(i)
        case .double(let d):
            // Python's repr: always a decimal point or exponent (1.0, 1e-06, 1000000.0).
            var s = d.description
            if !s.contains(".") && !s.contains("e") && !s.contains("n") && !s.contains("i") { s += ".0" }
            return s
        case .string(let s): return Self.quote(s)
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array(let a):
            if a.isEmpty { return "[]" }
            return "[\n" + a.map { pad + $0.render(indent: indent + 2) }.joined(separator: ",\n") + "\n" + end + "]"
        case .object(let o):
            if o.isEmpty { return "{}" }
            return "{\n" + o.keys.sorted().map { pad + Self.quote($0) + ": " + o[$0]!.render(indent: indent + 2) }
                .joined(separator: ",\n") + "\n" + end + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 || u.value > 0x7E {
                    // Python's ensure_ascii: \uXXXX (surrogate pairs above the BMP).
                    for unit in String(u).utf16 { out += String(format: "\\u%04x", unit) }
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

extension SynthPreset {
    static func torchDType(_ d: DType) -> String {
        switch d {
        case .bf16: return "bfloat16"
        case .f16: return "float16"
        default: return "float32"
        }
    }

    /// config.json (and generation_config.json where the family ships one) for this preset.
    func configFiles(dtype: DType) -> [(name: String, json: SynthJSON)] {
        let td = SynthJSON.string(Self.torchDType(dtype))
        switch model {
        case .ouro(let d, let passes):
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

        case .huginn(let g):
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

        case .loopus(let d, let enc, let rea, let dec, let passes, let baseName):
            let base: [String: SynthJSON] = [
                "_name_or_path": .string(""),
                "architectures": .array([.string(d.modelType == "qwen3" ? "Qwen3ForCausalLM" : "LlamaForCausalLM")]),
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

        case .llama(let d):
            var cfg: [String: SynthJSON] = [
                "architectures": .array([.string(d.modelType == "qwen3" ? "Qwen3ForCausalLM" : "LlamaForCausalLM")]),
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
}
