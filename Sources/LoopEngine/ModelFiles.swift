import Foundation
import LoopCore
import LoopTokenizer

/// The tokenizer and tokenizer settings of a model path: a checkpoint folder (tokenizer.json,
/// tokenizer_config.json) or a GGUF file (its `tokenizer.*` metadata).
///
/// A GGUF file's byte-level BPE (`tokenizer.ggml.model` = `gpt2`) is read from its tokens,
/// token types, merges and `tokenizer.ggml.pre` (the pre-tokenizer llama.cpp names), or, when the
/// file has it, from `tokenizer.huggingface.json` (the whole tokenizer.json, which
/// `loopvk quantize` writes beside llama.cpp's keys).
public enum ModelFiles {
    /// Whether the model path has a tokenizer.
    public static func hasTokenizer(at url: URL) -> Bool {
        if Checkpoint.isGGUF(url) {
            guard let g = try? GGUFFile.opened(path: url.path) else { return false }
            return g.metadata["tokenizer.huggingface.json"] != nil || g.metadata["tokenizer.ggml.tokens"] != nil
        }
        return FileManager.default.fileExists(atPath: url.appendingPathComponent("tokenizer.json").path)
    }

    public static func tokenizer(at url: URL) throws -> Tokenizer {
        if Checkpoint.isGGUF(url) { return try Tokenizer(data: try tokenizerJSON(GGUFFile.opened(path: url.path))) }
        let file = url.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw LoopError.invalidArgument("\(url.path) has no tokenizer.json; pass --tokens")
        }
        return try Tokenizer(contentsOf: file)
    }

    /// tokenizer_config.json's settings, or a GGUF file's (bos/eos, add_bos, chat template).
    public static func tokenizerConfig(at url: URL) -> TokenizerConfig? {
        if Checkpoint.isGGUF(url) {
            guard let g = try? GGUFFile.opened(path: url.path) else { return nil }
            return try? tokenizerConfig(g)
        }
        return try? TokenizerConfig(contentsOf: url.appendingPathComponent("tokenizer_config.json"))
    }

    static func tokenizerConfig(_ g: GGUFFile) throws -> TokenizerConfig {
        let tokens = try g.strings("tokenizer.ggml.tokens") ?? []
        func token(_ key: String) throws -> String? {
            guard let id = try g.int(key) else { return nil }
            return id >= 0 && id < tokens.count ? tokens[id] : nil
        }
        return TokenizerConfig(bosToken: try token("tokenizer.ggml.bos_token_id"), eosToken: try token("tokenizer.ggml.eos_token_id"),
                               padToken: try token("tokenizer.ggml.padding_token_id"), unkToken: try token("tokenizer.ggml.unknown_token_id"),
                               addBOSToken: g.metadata["tokenizer.ggml.add_bos_token"]?.bool,
                               addEOSToken: g.metadata["tokenizer.ggml.add_eos_token"]?.bool,
                               chatTemplate: try g.string("tokenizer.chat_template"))
    }

    // MARK: GGUF tokenizer metadata

    /// llama.cpp's token types.
    enum TokenType: Int32 { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    /// The pre-tokenizers of `tokenizer.ggml.pre` values (the regexes of the Hugging Face
    /// tokenizers llama.cpp gives these names).
    static func preTokenizer(_ pre: String) -> Any? {
        func split(_ regex: String) -> Any {
            ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": regex], "behavior": "Isolated", "invert": false],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
            ]]
        }
        let gpt2: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        switch pre {
        case "default", "gpt2", "gpt-2": return gpt2
        case "smollm":
            return ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], gpt2]]
        case "llama-bpe", "llama3", "llama-v3":
            return split(#"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#)
        case "qwen2":
            return split(#"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#)
        default: return nil
        }
    }

    /// tokenizer.json text for a GGUF file's tokenizer.
    static func tokenizerJSON(_ g: GGUFFile) throws -> Data {
        if let hf = try g.string("tokenizer.huggingface.json") { return Data(hf.utf8) }
        guard let model = try g.string("tokenizer.ggml.model") else {
            throw LoopError.invalidArgument("GGUF file \(g.path) has no tokenizer (no tokenizer.ggml.model); pass --tokens")
        }
        guard model == "gpt2" else {
            throw LoopError.unsupported("GGUF tokenizer model \"\(SafeTensorsFile.printable(model))\" in \(g.path) (the engine reads byte-level BPE, \"gpt2\")")
        }
        guard let tokens = try g.strings("tokenizer.ggml.tokens"), let merges = try g.strings("tokenizer.ggml.merges") else {
            throw LoopError.invalidArgument("GGUF file \(g.path) lacks tokenizer.ggml.tokens or tokenizer.ggml.merges")
        }
        let types = try g.ints("tokenizer.ggml.token_type") ?? []
        guard types.isEmpty || types.count == tokens.count else {
            throw LoopError.invalidArgument("GGUF file \(g.path): tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens")
        }
        let pre = try g.string("tokenizer.ggml.pre") ?? "default"
        guard let preTokenizer = preTokenizer(pre) else {
            throw LoopError.unsupported("GGUF pre-tokenizer \"\(SafeTensorsFile.printable(pre))\" in \(g.path) (known: default, gpt2, smollm, llama-bpe, qwen2)")
        }
        var vocab: [String: Int] = [:], added: [[String: Any]] = []
        for (id, t) in tokens.enumerated() {
            let type = types.isEmpty ? 1 : types[id]
            if type == TokenType.control.rawValue || type == TokenType.userDefined.rawValue {
                added.append(["id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                              "normalized": false, "special": type == TokenType.control.rawValue])
            }
            if vocab[t] == nil { vocab[t] = id }
        }
        var root: [String: Any] = [
            "version": "1.0", "normalizer": NSNull(), "pre_tokenizer": preTokenizer, "added_tokens": added,
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges],
        ]
        root["post_processor"] = NSNull()
        if g.metadata["tokenizer.ggml.add_bos_token"]?.bool == true, let bos = try g.int("tokenizer.ggml.bos_token_id"), bos >= 0, bos < tokens.count {
            let name = tokens[bos]
            root["post_processor"] = [
                "type": "TemplateProcessing",
                "single": [["SpecialToken": ["id": name, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                "pair": [["SpecialToken": ["id": name, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]],
                         ["Sequence": ["id": "B", "type_id": 1]]],
                "special_tokens": [name: ["id": name, "ids": [bos], "tokens": [name]]],
            ]
        }
        return try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys])
    }

    /// The `tokenizer.*` metadata for a checkpoint folder's tokenizer.json and
    /// tokenizer_config.json: llama.cpp's keys (tokens, types, merges, pre-tokenizer name,
    /// special ids, chat template) and the whole tokenizer.json.
    static func tokenizerMetadata(folder: URL, config: [String: Any]) throws -> [(String, GGUFValue)] {
        let file = folder.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: file.path) else { return [] }
        let data = try Data(contentsOf: file)
        _ = try Tokenizer(data: data)  // it must be one the engine reads
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let model = root["model"] as? [String: Any], let vocab = model["vocab"] as? [String: Int] else {
            throw LoopError.invalidArgument("\(file.path) has no BPE model vocabulary")
        }
        let added = (root["added_tokens"] as? [[String: Any]]) ?? []
        var byID: [String?] = []
        func put(_ id: Int, _ t: String) {
            if id >= byID.count { byID += [String?](repeating: nil, count: id + 1 - byID.count) }
            byID[id] = t
        }
        for (t, id) in vocab where id >= 0 { put(id, t) }
        var types: [Int32] = []
        for a in added { if let id = a["id"] as? Int, let c = a["content"] as? String, id >= 0 { put(id, c) } }
        let n = max(byID.count, (config["vocab_size"] as? Int) ?? 0)
        var tokens: [GGUFValue] = []
        types = [Int32](repeating: TokenType.normal.rawValue, count: n)
        for id in 0..<n {
            if id < byID.count, let t = byID[id] { tokens.append(.string(t)) } else {
                tokens.append(.string("[PAD\(id)]"))
                types[id] = TokenType.unused.rawValue
            }
        }
        for a in added {
            guard let id = a["id"] as? Int, id >= 0, id < n else { continue }
            types[id] = (a["special"] as? Bool ?? false) ? TokenType.control.rawValue : TokenType.userDefined.rawValue
        }
        let merges: [GGUFValue] = ((model["merges"] as? [Any]) ?? []).compactMap {
            if let s = $0 as? String { return .string(s) }
            if let p = $0 as? [String], p.count == 2 { return .string(p[0] + " " + p[1]) }
            return nil
        }
        var m: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(preName(root["pre_tokenizer"]))),
            ("tokenizer.ggml.tokens", .array(type: 8, tokens)),
            ("tokenizer.ggml.token_type", .array(type: 5, types.map { .i32($0) })),
            ("tokenizer.ggml.merges", .array(type: 8, merges)),
        ]
        let tc = try? TokenizerConfig(contentsOf: folder.appendingPathComponent("tokenizer_config.json"))
        func id(of token: String?) -> Int? {
            guard let token else { return nil }
            return byID.firstIndex(where: { $0 == token })
        }
        func firstID(_ v: Any?) -> Int? { (v as? Int) ?? (v as? [Int])?.first }
        if let b = id(of: tc?.bosToken) ?? firstID(config["bos_token_id"]) { m.append(("tokenizer.ggml.bos_token_id", .u32(UInt32(b)))) }
        if let e = id(of: tc?.eosToken) ?? firstID(config["eos_token_id"]) { m.append(("tokenizer.ggml.eos_token_id", .u32(UInt32(e)))) }
        if let p = id(of: tc?.padToken) ?? firstID(config["pad_token_id"]) { m.append(("tokenizer.ggml.padding_token_id", .u32(UInt32(p)))) }
        let addsBOS = (root["post_processor"] as? [String: Any]).map { String(describing: $0).contains("SpecialToken") } ?? false
        m.append(("tokenizer.ggml.add_bos_token", .bool(tc?.addBOSToken ?? addsBOS)))
        if let t = tc?.chatTemplate { m.append(("tokenizer.chat_template", .string(t))) }
        m.append(("tokenizer.huggingface.json", .string(String(decoding: data, as: UTF8.self))))
        return m
    }

    /// llama.cpp's name for a tokenizer.json pre-tokenizer (by its regex).
    static func preName(_ pre: Any?) -> String {
        let text = pre.flatMap { try? JSONSerialization.data(withJSONObject: $0) }.map { String(decoding: $0, as: UTF8.self) } ?? ""
        if text.contains(#"\\p{N}{1,3}"#) { return "llama-bpe" }
        if text.contains(#"(?i:'s|'t|'re|'ve|'m|'ll|'d)"#) { return "qwen2" }
        if text.contains("Digits") { return "smollm" }
        return "gpt-2"  // llama.cpp's loader knows GPT-2's as "gpt-2" (its converter writes that)
    }
}
