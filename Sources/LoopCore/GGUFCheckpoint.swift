import Foundation

/// How a GGUF file maps onto the checkpoint the families read (config.json keys and
/// Hugging Face tensor names), in both directions. The one file to touch for a new GGUF
/// architecture.
///
/// - `llama`, `qwen3` and `ouro` follow llama.cpp: tensor names `token_embd`, `blk.N.attn_q`, ...,
///   hyperparameters under `ARCH.*`, and, for `llama` and `ouro`, the Q and K rows permuted as
///   its converter permutes them (undone on read). Ouro's four block norms are `attn_norm`,
///   `attn_post_norm`, `ffn_norm`, `ffn_post_norm` (ggml-org/llama.cpp#29823); llama.cpp drops
///   the early-exit gate, which our writer keeps in `loopvk.ouro.*` metadata (llama.cpp ignores
///   unknown metadata, and an unknown tensor would make it refuse the file).
/// - `huginn` and `loopus` (architectures llama.cpp does not run) keep the Hugging Face tensor
///   names and carry config.json whole in `loopvk.config_json`.
public enum GGUFModelMap {
    /// config.json `model_type` -> GGUF `general.architecture`.
    public static let architectures: [String: String] = [
        "llama": "llama", "qwen3": "qwen3", "ouro": "ouro", "huginn_raven": "huginn", "lds": "loopus",
    ]
    /// Architectures stored with llama.cpp's names and hyperparameter keys.
    public static let llamaCppArchitectures: Set<String> = ["llama", "qwen3", "ouro"]
    static let configKey = "loopvk.config_json"
    public static let gateWeightKey = "loopvk.ouro.early_exit_gate.weight"
    public static let gateBiasKey = "loopvk.ouro.early_exit_gate.bias"
    static let thresholdKey = "loopvk.ouro.early_exit_threshold"

    /// Per-layer tensors: llama.cpp's suffix after `blk.N.` -> the Hugging Face suffix after
    /// `model.layers.N.`.
    static func layerNames(arch: String) -> [(gguf: String, hf: String)] {
        var m: [(String, String)] = [
            ("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"),
            ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
            ("attn_output", "self_attn.o_proj"), ("attn_q_norm", "self_attn.q_norm"), ("attn_k_norm", "self_attn.k_norm"),
            ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj"),
        ]
        if arch == "ouro" { m += [("attn_post_norm", "input_layernorm_2"), ("ffn_post_norm", "post_attention_layernorm_2")] }
        return m
    }

    static let globalNames: [(gguf: String, hf: String)] = [
        ("token_embd.weight", "model.embed_tokens.weight"), ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"), ("rope_freqs.weight", "rope_freqs.weight"),
    ]

    /// The Hugging Face name of a llama.cpp tensor name (nil: not one the architecture has).
    public static func hfName(_ name: String, arch: String) -> String? {
        if let g = globalNames.first(where: { $0.gguf == name }) { return g.hf }
        let parts = name.split(separator: ".", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0] == "blk", let l = Int(parts[1]), l >= 0 else { return nil }
        let rest = parts[2]
        for (g, h) in layerNames(arch: arch) {
            for kind in ["weight", "bias"] where rest == "\(g).\(kind)" { return "model.layers.\(l).\(h).\(kind)" }
        }
        return nil
    }

    /// The llama.cpp name of a Hugging Face tensor name (nil: the tensor has no place there).
    public static func ggufName(_ name: String, arch: String) -> String? {
        if let g = globalNames.first(where: { $0.hf == name }) { return g.gguf }
        let parts = name.split(separator: ".", maxSplits: 3).map(String.init)
        guard parts.count == 4, parts[0] == "model", parts[1] == "layers", let l = Int(parts[2]) else { return nil }
        for (g, h) in layerNames(arch: arch) {
            for kind in ["weight", "bias"] where parts[3] == "\(h).\(kind)" { return "blk.\(l).\(g).\(kind)" }
        }
        return nil
    }

    /// Whether the architecture's Q/K rows are stored permuted (llama.cpp's `LlamaModel.permute`).
    public static func permutesQK(arch: String) -> Bool { arch == "llama" || arch == "ouro" }

    /// For a Q or K weight (or bias) of `rows` rows in `heads` heads: `order[hfRow]` is the row
    /// llama.cpp's converter writes it to. Its converter takes each head's rows as two halves
    /// (rotate-half RoPE) and interleaves them (the adjacent-pairs layout ggml's RoPE reads).
    public static func permutedRow(rows: Int, heads: Int) -> [Int] {
        let hd = rows / heads, half = hd / 2
        return (0..<rows).map { r in
            let h = r / hd, i = r % hd
            return h * hd + (i % half) * 2 + i / half
        }
    }

    /// The heads a Q or K tensor (by Hugging Face name) is permuted over, nil for other tensors.
    public static func permutationHeads(_ hfName: String, config: [String: Any]) -> Int? {
        guard let heads = config["num_attention_heads"] as? Int else { return nil }
        let kv = config["num_key_value_heads"] as? Int ?? heads
        if hfName.hasSuffix("self_attn.q_proj.weight") || hfName.hasSuffix("self_attn.q_proj.bias") { return heads }
        if hfName.hasSuffix("self_attn.k_proj.weight") || hfName.hasSuffix("self_attn.k_proj.bias") { return kv }
        return nil
    }

    // MARK: reading

    /// What a GGUF file holds, as the families read checkpoints.
    struct Mapped {
        var configData: Data
        var config: [String: Any]
        /// Hugging Face name -> (GGUF tensor, the permutation's heads when its rows are permuted).
        var tensors: [String: (tensor: GGUFTensor, permuteHeads: Int?)]
        /// Tensors kept in metadata (the Ouro exit gate): name -> (shape, values).
        var extra: [String: (shape: [Int], values: [Float])]
        /// Shapes of more than GGUF's 4 dimensions (stored folded, see `shapeKeyPrefix`).
        var shapes: [String: [Int]] = [:]
    }

    /// `loopvk.shape.NAME`: the true shape of a tensor of more than 4 dimensions, stored with its
    /// leading dimensions folded into one (GGUF and ggml hold at most 4).
    public static let shapeKeyPrefix = "loopvk.shape."

    /// The shape a tensor is stored with in GGUF (at most 4 dimensions).
    public static func storedShape(_ shape: [Int]) -> [Int] {
        shape.count <= 4 ? shape : [shape.dropLast(3).reduce(1, *)] + shape.suffix(3)
    }

    static func map(_ g: GGUFFile) throws -> Mapped {
        guard let arch = try g.string("general.architecture") else {
            throw LoopError.invalidArgument("GGUF file \(g.path) has no general.architecture")
        }
        let known = architectures.values.sorted().joined(separator: ", ")
        if llamaCppArchitectures.contains(arch) { return try mapLlamaCpp(g, arch: arch) }
        guard architectures.values.contains(arch) else {
            throw LoopError.unsupported("GGUF architecture \"\(SafeTensorsFile.printable(arch))\" in \(g.path) (the engine reads \(known))")
        }
        guard let json = try g.string(configKey), let data = json.data(using: .utf8) else {
            throw LoopError.invalidArgument("GGUF file \(g.path) (architecture \(arch)) has no \(configKey): it was not written by `loopvk quantize`")
        }
        let config = try Checkpoint.parseConfig(data, path: "\(g.path) \(configKey)")
        var tensors: [String: (GGUFTensor, Int?)] = [:], shapes: [String: [Int]] = [:]
        for t in g.tensors {
            tensors[t.name] = (t, nil)
            if let s = try g.ints(shapeKeyPrefix + t.name) {
                guard s.allSatisfy({ $0 >= 1 }), storedShape(s) == t.shape else {
                    throw LoopError.invalidArgument("GGUF metadata \(shapeKeyPrefix + t.name) in \(g.path) is \(s), which does not fold to the stored \(t.shape)")
                }
                shapes[t.name] = s
            }
        }
        return Mapped(configData: data, config: config, tensors: tensors, extra: [:], shapes: shapes)
    }

    private static func mapLlamaCpp(_ g: GGUFFile, arch: String) throws -> Mapped {
        func key(_ k: String) -> String { "\(arch).\(k)" }
        func need(_ k: String) throws -> Int {
            guard let v = try g.int(key(k)) else { throw LoopError.invalidArgument("GGUF file \(g.path) has no metadata \(key(k))") }
            guard v > 0 else { throw LoopError.invalidArgument("GGUF metadata \(key(k)) in \(g.path) is \(v)") }
            return v
        }
        var cfg: [String: Any] = ["model_type": arch, "hidden_act": "silu"]
        cfg["hidden_size"] = try need("embedding_length")
        cfg["intermediate_size"] = try need("feed_forward_length")
        cfg["num_hidden_layers"] = try need("block_count")
        let heads = try need("attention.head_count")
        cfg["num_attention_heads"] = heads
        cfg["num_key_value_heads"] = try g.int(key("attention.head_count_kv")) ?? heads
        if let hd = try g.int(key("attention.key_length")) { cfg["head_dim"] = hd }
        cfg["rms_norm_eps"] = try g.double(key("attention.layer_norm_rms_epsilon")) ?? 1e-6
        cfg["rope_theta"] = try g.double(key("rope.freq_base")) ?? 10000
        cfg["max_position_embeddings"] = try g.int(key("context_length")) ?? 2048
        if let s = try g.string(key("rope.scaling.type")), s != "none" {
            guard s == "linear", let f = try g.double(key("rope.scaling.factor")) else {
                throw LoopError.unsupported("GGUF RoPE scaling \"\(SafeTensorsFile.printable(s))\" in \(g.path) (linear only)")
            }
            cfg["rope_scaling"] = ["rope_type": "linear", "factor": f]
        }
        let embd = g.tensorsByName["token_embd.weight"]
        guard let embd, embd.dims.count == 2 else {
            throw LoopError.missingTensor("token_embd.weight (in the GGUF file \(g.path))")
        }
        cfg["vocab_size"] = try g.int(key("vocab_size")) ?? embd.dims[1]
        cfg["tie_word_embeddings"] = g.tensorsByName["output.weight"] == nil
        if let b = try g.int("tokenizer.ggml.bos_token_id") { cfg["bos_token_id"] = b }
        if let e = try g.int("tokenizer.ggml.eos_token_id") { cfg["eos_token_id"] = e }
        var extra: [String: (shape: [Int], values: [Float])] = [:]
        if arch == "ouro" {
            cfg["total_ut_steps"] = try g.int("ouro.num_loops") ?? 4
            cfg["early_exit_threshold"] = try g.double(thresholdKey) ?? 1.0
            if let w = try g.floats(gateWeightKey), let b = try g.floats(gateBiasKey) {
                guard w.count == cfg["hidden_size"] as! Int, b.count == 1 else {
                    throw LoopError.invalidArgument("GGUF metadata \(gateWeightKey) / \(gateBiasKey) in \(g.path) hold \(w.count) and \(b.count) values (expected hidden_size and 1)")
                }
                extra["model.early_exit_gate.weight"] = ([1, w.count], w)
                extra["model.early_exit_gate.bias"] = ([1], b)
            }
        }
        var tensors: [String: (GGUFTensor, Int?)] = [:]
        for t in g.tensors {
            guard let hf = hfName(t.name, arch: arch) else {
                throw LoopError.unsupported("tensor \(SafeTensorsFile.printable(t.name)) in the \(arch) GGUF file \(g.path) is not one the engine knows for \(arch)")
            }
            tensors[hf] = (t, permutesQK(arch: arch) ? permutationHeads(hf, config: cfg) : nil)
        }
        let data = try JSONSerialization.data(withJSONObject: cfg, options: [.sortedKeys])
        return Mapped(configData: data, config: cfg, tensors: tensors, extra: extra)
    }

    // MARK: writing

    /// GGUF metadata for a checkpoint's config (llama.cpp's keys for its architectures).
    public static func metadata(config c: [String: Any], arch: String, configData: Data) -> [(String, GGUFValue)] {
        var m: [(String, GGUFValue)] = [("general.architecture", .string(arch))]
        func int(_ k: String) -> Int? { (c[k] as? NSNumber)?.intValue }
        func dbl(_ k: String) -> Double? { (c[k] as? NSNumber)?.doubleValue }
        if llamaCppArchitectures.contains(arch) {
            func put(_ k: String, _ v: Int?) { if let v { m.append(("\(arch).\(k)", .u32(UInt32(v)))) } }
            put("context_length", int("max_position_embeddings"))
            put("embedding_length", int("hidden_size"))
            put("block_count", int("num_hidden_layers"))
            put("feed_forward_length", int("intermediate_size"))
            put("attention.head_count", int("num_attention_heads"))
            put("attention.head_count_kv", int("num_key_value_heads") ?? int("num_attention_heads"))
            let hd = int("head_dim") ?? (int("hidden_size") ?? 0) / max(int("num_attention_heads") ?? 1, 1)
            put("rope.dimension_count", hd)
            put("attention.key_length", hd)
            put("attention.value_length", hd)
            put("vocab_size", int("vocab_size"))
            m.append(("\(arch).rope.freq_base", .f32(Float(dbl("rope_theta") ?? 10000))))
            m.append(("\(arch).attention.layer_norm_rms_epsilon", .f32(Float(dbl("rms_norm_eps") ?? 1e-6))))
            if arch == "ouro" {
                m.append(("ouro.num_loops", .u32(UInt32(int("total_ut_steps") ?? 4))))
                m.append(("ouro.skip_loop_final_norm", .bool(false)))
                m.append((thresholdKey, .f32(Float(dbl("early_exit_threshold") ?? 1.0))))
            }
        } else {
            m.append((configKey, .string(String(decoding: configData, as: UTF8.self))))
        }
        return m
    }
}

extension Checkpoint {
    /// Opens a checkpoint folder, or a single `.gguf` file.
    public static func open(_ url: URL) throws -> Checkpoint {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue {
            guard GGUFFile.isGGUF(path: url.path) else {
                throw LoopError.invalidArgument("model path \(url.path) is a file but not a GGUF file (pass a checkpoint folder or a .gguf file)")
            }
            return try Checkpoint(gguf: GGUFFile.opened(path: url.path))
        }
        return try Checkpoint(directory: url)
    }

    /// Whether `url` names a GGUF file (rather than a checkpoint folder).
    public static func isGGUF(_ url: URL) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) && !isDir.boolValue && GGUFFile.isGGUF(path: url.path)
    }
}
