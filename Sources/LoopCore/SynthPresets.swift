import Foundation

// The preset types of `Synth` and the pieces the families' synthetic checkpoints share: the decoder
// shape of the Llama-style families, the JSON writer, and the dispatch from a preset to its family.
// Each family's presets, tensor list and config files are in its file in Families/ (`synthPresets`,
// `synthTensors`, `synthConfigFiles`). Key sets follow the fixtures in `shared/fixtures` (which were
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
    /// Every preset: each family's `synthPresets`, families in the order ouro, huginn, loopus, llama.
    ///
    /// Presets named after a published model copy its shapes; the family files say which and what was assumed.
    /// All "-small" presets are our own shapes (no published model). bos/eos ids, `max_window_layers`,
    /// `padding_multiple` and the like copy the fixtures where the published value was not at hand; they do not
    /// change any tensor.
    public static let allPresets: [SynthPreset] = Ouro.synthPresets + Huginn.synthPresets + LoopUS.synthPresets + Llama.synthPresets
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

    static func quote(_ s: String) -> String { JSONText.quote(s, asciiOnly: true) }
}

extension SynthPreset {
    static func torchDType(_ d: DType) -> String {
        switch d {
        case .bf16: return "bfloat16"
        case .f16: return "float16"
        default: return "float32"
        }
    }

    /// config.json (and generation_config.json where the family ships one) for this preset, written by its family's
    /// `synthConfigFiles`.
    func configFiles(dtype: DType) -> [(name: String, json: SynthJSON)] {
        switch model {
        case .ouro(let d, let passes): return Ouro.synthConfigFiles(d, passes: passes, dtype: dtype)
        case .huginn(let g): return Huginn.synthConfigFiles(g, dtype: dtype)
        case .loopus(let d, let enc, let rea, let dec, let passes, let baseName):
            return LoopUS.synthConfigFiles(d, encoder: enc, reasoning: rea, decoder: dec, passes: passes, baseName: baseName, dtype: dtype)
        case .llama(let d): return Llama.synthConfigFiles(d, dtype: dtype)
        }
    }
}
