import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import LoopCore

// Bad checkpoints, configs and arguments: each must end in a thrown LoopError whose description
// is one line naming the cause, never a crash, a hang or a huge allocation.

/// A scratch folder, removed when the value goes away.
private final class TempDir {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("loopvk-bad-input-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    func write(_ name: String, _ data: Data) throws { try data.write(to: url.appendingPathComponent(name)) }
    func write(_ name: String, text: String) throws { try write(name, Data(text.utf8)) }
    func writeJSON(_ name: String, _ object: [String: Any]) throws {
        try write(name, JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }
}

/// A tiny Ouro checkpoint written with SafeTensorsWriter: hidden 8, 2 heads of 4, one layer,
/// vocabulary 16, context 32.
private enum TinyOuro {
    static var config: [String: Any] { [
        "model_type": "ouro", "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 4, "vocab_size": 16,
        "max_position_embeddings": 32, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "total_ut_steps": 2,
        "tie_word_embeddings": false, "hidden_act": "silu",
    ] }

    static func shapes() -> [(String, [Int])] {
        let h = 8, inter = 12, vocab = 16
        var s: [(String, [Int])] = [("model.embed_tokens.weight", [vocab, h]), ("model.norm.weight", [h]),
                                    ("model.early_exit_gate.weight", [1, h]), ("model.early_exit_gate.bias", [1]),
                                    ("lm_head.weight", [vocab, h])]
        let p = "model.layers.0"
        for n in ["q", "k", "v", "o"] { s.append(("\(p).self_attn.\(n)_proj.weight", [h, h])) }
        s += [("\(p).mlp.gate_proj.weight", [inter, h]), ("\(p).mlp.up_proj.weight", [inter, h]),
              ("\(p).mlp.down_proj.weight", [h, inter])]
        for n in ["input_layernorm", "input_layernorm_2", "post_attention_layernorm", "post_attention_layernorm_2"] {
            s.append(("\(p).\(n).weight", [h]))
        }
        return s
    }

    static func entries(dropping dropped: String? = nil, reshaping reshaped: (String, [Int])? = nil) -> [SafeTensorsWriter.Entry] {
        shapes().compactMap { name, shape in
            if name == dropped { return nil }
            let s = reshaped?.0 == name ? reshaped!.1 : shape
            let n = s.reduce(1, *)
            return .f32(name, shape: s, (0..<n).map { Float($0 % 7) * 0.01 })
        }
    }

    /// Writes config.json (with `edit` applied) and model.safetensors into a new folder.
    static func folder(config edit: (inout [String: Any]) -> Void = { _ in },
                       entries: [SafeTensorsWriter.Entry] = entries()) throws -> TempDir {
        let dir = try TempDir()
        var cfg = config
        edit(&cfg)
        try dir.writeJSON("config.json", cfg)
        try SafeTensorsWriter.write(entries, to: dir.url.appendingPathComponent("model.safetensors"))
        return dir
    }
}

/// Runs `body`, expects a LoopError whose one-line description contains every phrase, returns it.
@discardableResult
private func expectError(_ phrases: String..., sourceLocation: SourceLocation = #_sourceLocation,
                         _ body: () throws -> Void) -> LoopError? {
    let error = #expect(throws: LoopError.self, sourceLocation: sourceLocation) { try body() }
    guard let error else { return nil }
    let text = error.description
    #expect(!text.isEmpty && !text.contains("\n") && !text.contains("\r"), "not one line: \(text.debugDescription)",
            sourceLocation: sourceLocation)
    for phrase in phrases {
        #expect(text.contains(phrase), "\(text.debugDescription) does not name \(phrase.debugDescription)",
                sourceLocation: sourceLocation)
    }
    return error
}

/// Opens the folder and builds its plan (what `Model` does before touching weights).
private func openAndPlan(_ dir: TempDir, passes: Int? = nil, maxContext: Int? = nil) throws {
    let checkpoint = try Checkpoint(directory: dir.url)
    _ = try ModelFamily.plan(checkpoint: checkpoint, passes: passes, maxContext: maxContext)
}

/// Raw safetensors bytes: an 8-byte little-endian header length, the header, then `data`.
private func rawSafetensors(header: String, data: Data = Data(), length: UInt64? = nil) -> Data {
    var out = Data()
    var n = (length ?? UInt64(header.utf8.count)).littleEndian
    withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
    out.append(Data(header.utf8))
    out.append(data)
    return out
}

private func parse(_ bytes: Data) throws { _ = try SafeTensorsFile(bytes: bytes, name: "bad.safetensors") }

/// All bad-input suites (`swift test --filter BadInputTests`).
@Suite("Bad input") struct BadInputTests {}

extension BadInputTests {
    @Suite("checkpoint folders and config.json")
    struct Checkpoints {
        @Test func tinyCheckpointIsValid() throws {
            let dir = try TinyOuro.folder()
            let checkpoint = try Checkpoint(directory: dir.url)
            let (plan, info) = try ModelFamily.plan(checkpoint: checkpoint, passes: nil)
            #expect(plan.passCount == 2 && info.maxContext == 32)
        }

        @Test func missingFolder() {
            expectError("not found", "no-such-model") {
                _ = try Checkpoint(directory: URL(fileURLWithPath: "/nonexistent/no-such-model"))
            }
        }

        @Test func pathIsAFile() throws {
            let dir = try TempDir()
            try dir.write("file", text: "x")
            expectError("is not a folder") { _ = try Checkpoint(directory: dir.url.appendingPathComponent("file")) }
        }

        @Test func folderWithoutConfig() throws {
            let dir = try TempDir()
            try SafeTensorsWriter.write(TinyOuro.entries(), to: dir.url.appendingPathComponent("model.safetensors"))
            expectError("not found", "config.json") { _ = try Checkpoint(directory: dir.url) }
        }

        @Test func configIsAFolder() throws {
            let dir = try TempDir()
            try FileManager.default.createDirectory(at: dir.url.appendingPathComponent("config.json"), withIntermediateDirectories: false)
            expectError("config.json", "not a regular file") { _ = try Checkpoint(directory: dir.url) }
        }

        @Test func configIsAFIFO() throws {
            let dir = try TempDir()
            let path = dir.url.appendingPathComponent("config.json").path
            try #require(mkfifo(path, 0o600) == 0)
            // Must not block waiting for a writer.
            expectError("config.json", "not a regular file") { _ = try Checkpoint(directory: dir.url) }
        }

        @Test func configNotJSON() throws {
            let dir = try TinyOuro.folder()
            for text in ["not json at all", "{\"model_type\": \"ouro\",", "[1, 2, 3]", "", "\u{FEFF}\u{0}"] {
                try dir.write("config.json", text: text)
                expectError("invalid config.json", "not a JSON object") { try openAndPlan(dir) }
            }
        }

        @Test func noWeightsFile() throws {
            let dir = try TempDir()
            try dir.writeJSON("config.json", TinyOuro.config)
            expectError("not found", "model.safetensors") { _ = try Checkpoint(directory: dir.url) }
        }

        @Test func requiredFieldMissing() throws {
            for field in ["hidden_size", "vocab_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"] {
                let dir = try TinyOuro.folder(config: { $0[field] = nil })
                expectError("required field \(field) is missing") { try openAndPlan(dir) }
            }
            let dir = try TinyOuro.folder(config: { $0["model_type"] = nil })
            expectError("model_type is missing") { try openAndPlan(dir) }
        }

        @Test func fieldOfTheWrongType() throws {
            let dir = try TinyOuro.folder(config: { $0["hidden_size"] = "eight" })
            expectError("hidden_size", "wrong type") { try openAndPlan(dir) }
            // (JSONDecoder reports these as "not valid JSON" without a field; the field is found.)
            let dir2 = try TinyOuro.folder(config: { $0["num_hidden_layers"] = 1.5 })
            expectError("field num_hidden_layers = 1.5 is not an integer") { try openAndPlan(dir2) }
            let dir3 = try TinyOuro.folder(config: { $0["eos_token_id"] = [1, 2.5] ; $0["rms_norm_eps"] = 1e-5 })
            expectError("field eos_token_id[1] = 2.5 is not an integer") { try openAndPlan(dir3) }
        }

        @Test func nonPositiveAndAbsurdDimensions() throws {
            for value in [0, -5, 1_000_000_000_000] {
                let dir = try TinyOuro.folder(config: { $0["hidden_size"] = value })
                expectError("hidden_size = \(value) must be in 1...") { try openAndPlan(dir) }
            }
            for (field, value) in [("vocab_size", 0), ("vocab_size", 1 << 40), ("num_hidden_layers", -1),
                                   ("num_attention_heads", 0), ("num_key_value_heads", 100_000), ("head_dim", 0),
                                   ("intermediate_size", Int.max), ("max_position_embeddings", 0),
                                   ("max_position_embeddings", 1_000_000_000_000)] {
                let dir = try TinyOuro.folder(config: { $0[field] = value })
                expectError("\(field) = \(value) must be in 1...") { try openAndPlan(dir) }
            }
            // A number too large for Int at all.
            let dir = try TempDir()
            try dir.write("config.json", text: #"{"model_type": "ouro", "hidden_size": 1e30}"#)
            try SafeTensorsWriter.write(TinyOuro.entries(), to: dir.url.appendingPathComponent("model.safetensors"))
            expectError("field hidden_size = 1e+30 is not an integer") { try openAndPlan(dir) }
        }

        @Test func headsMustDivideHidden() throws {
            let dir = try TinyOuro.folder(config: { $0["head_dim"] = nil; $0["num_attention_heads"] = 3; $0["num_key_value_heads"] = 3 })
            expectError("hidden_size 8 is not divisible by num_attention_heads 3") { try openAndPlan(dir) }
            let dir2 = try TinyOuro.folder(config: { $0["num_key_value_heads"] = 3 })
            expectError("num_attention_heads 2 is not a multiple of num_key_value_heads 3") { try openAndPlan(dir2) }
            let dir3 = try TinyOuro.folder(config: { $0["head_dim"] = 5 })
            expectError("head_dim 5 must be even") { try openAndPlan(dir3) }
        }

        @Test func badFloats() throws {
            for (field, value) in [("rms_norm_eps", -1.0), ("rms_norm_eps", 0.0), ("rope_theta", 0.0)] {
                let dir = try TinyOuro.folder(config: { $0[field] = value })
                expectError(field, "must be positive") { try openAndPlan(dir) }
            }
            let dir = try TinyOuro.folder(config: { $0["early_exit_threshold"] = 2.0 })
            expectError("early_exit_threshold = 2.0 must be in 0...1") { try openAndPlan(dir) }
        }

        /// A context whose RoPE table would take gigabytes is refused before anything is allocated
        /// (the tensors say nothing about the context length).
        @Test func hugeRopeTableIsRefused() throws {
            // 16M positions x head_dim 4096: 256 GiB.
            let dir2 = try TinyOuro.folder(config: { $0["max_position_embeddings"] = 1 << 24; $0["head_dim"] = 4096 })
            expectError("RoPE table", "maxContext") { try openAndPlan(dir2) }
            // 16M positions x head_dim 4 (the tensors agree): 256 MiB, but seconds of sin/cos.
            let dir = try TinyOuro.folder(config: { $0["max_position_embeddings"] = 1 << 24 })
            expectError("max_position_embeddings 16777216 x head_dim 4 needs a RoPE table") { try openAndPlan(dir) }
            // ... and a maxContext cap makes it fine again.
            let checkpoint = try Checkpoint(directory: dir.url)
            let (plan, _) = try ModelFamily.plan(checkpoint: checkpoint, passes: nil, maxContext: 64)
            #expect(plan.maxContext == 64)
        }

        @Test func unknownModelType() throws {
            let dir = try TinyOuro.folder(config: { $0["model_type"] = "gpt5" })
            expectError("unknown model_type \"gpt5\"", "supported") { try openAndPlan(dir) }
            let dir2 = try TinyOuro.folder(config: { $0["model_type"] = "two\nlines" })
            expectError("unknown model_type \"two\\nlines\"") { try openAndPlan(dir2) }
            let dir3 = try TinyOuro.folder(config: { $0["model_type"] = 7 })
            expectError("model_type is missing or not a string") { try openAndPlan(dir3) }
        }

        @Test func unsupportedOptions() throws {
            let dir = try TinyOuro.folder(config: { $0["hidden_act"] = "gelu" })
            expectError("hidden_act \"gelu\"") { try openAndPlan(dir) }
            let dir2 = try TinyOuro.folder(config: { $0["rope_scaling"] = ["rope_type": "yarn", "factor": 2.0] })
            expectError("RoPE scaling type \"yarn\"") { try openAndPlan(dir2) }
            let dir3 = try TinyOuro.folder(config: { $0["rope_scaling"] = ["rope_type": "linear", "factor": -1.0] })
            expectError("linear", "positive factor") { try openAndPlan(dir3) }
        }

        @Test func tensorMissingForTheConfig() throws {
            let dir = try TinyOuro.folder(entries: TinyOuro.entries(dropping: "model.norm.weight"))
            expectError("checkpoint lacks tensor model.norm.weight") { try openAndPlan(dir) }
            // More layers in the config than in the file.
            let dir2 = try TinyOuro.folder(config: { $0["num_hidden_layers"] = 2 })
            expectError("checkpoint lacks tensor model.layers.1.") { try openAndPlan(dir2) }
        }

        @Test func tensorWithTheWrongShape() throws {
            let dir = try TinyOuro.folder(entries: TinyOuro.entries(reshaping: ("model.norm.weight", [4])))
            let error = expectError("model.norm.weight", "[4]", "[8]") { try openAndPlan(dir) }
            #expect(error == .wrongShape(tensor: "model.norm.weight", expected: [8], found: [4]))
            // The config disagrees with every tensor: the first one checked is named.
            let dir2 = try TinyOuro.folder(config: { $0["vocab_size"] = 17 })
            expectError("model.embed_tokens.weight", "[16, 8]", "[17, 8]") { try openAndPlan(dir2) }
        }

        @Test func integerTensorWhereWeightsBelong() throws {
            var entries = TinyOuro.entries(dropping: "model.norm.weight")
            entries.append(SafeTensorsWriter.Entry(name: "model.norm.weight", dtype: .i32, shape: [8], data: Data(count: 32)))
            let dir = try TinyOuro.folder(entries: entries)
            expectError("model.norm.weight", "unsupported dtype I32") { try openAndPlan(dir) }
        }

        @Test func passesOutOfRange() throws {
            let dir = try TinyOuro.folder()
            let checkpoint = try Checkpoint(directory: dir.url)
            for passes in [0, -1, 100_000, Int.max] {
                expectError("passes = \(passes) must be in 1...256") {
                    _ = try ModelFamily.plan(checkpoint: checkpoint, passes: passes)
                }
            }
            expectError("maxContext = 0 must be positive") { _ = try ModelFamily.plan(checkpoint: checkpoint, passes: 1, maxContext: 0) }
            let dir2 = try TinyOuro.folder(config: { $0["total_ut_steps"] = 0 })
            expectError("total_ut_steps = 0 must be in 1...256") { try openAndPlan(dir2) }
            let dir3 = try TinyOuro.folder(config: { $0["total_ut_steps"] = 100_000 })
            expectError("total_ut_steps = 100000 must be in 1...256") { try openAndPlan(dir3) }
            // The bounds themselves are fine.
            _ = try ModelFamily.plan(checkpoint: checkpoint, passes: 1)
            _ = try ModelFamily.plan(checkpoint: checkpoint, passes: 256)
        }

        @Test func otherFamiliesNameTheirFields() throws {
            // Huginn: n_embd missing; LoopUS: the base config's hidden_size missing, indices out of range.
            let dir = try TinyOuro.folder(config: { $0 = ["model_type": "huginn_raven", "n_heads": 2] })
            expectError("required field n_embd is missing") { try openAndPlan(dir) }
            var base = TinyOuro.config
            base["model_type"] = "qwen3"
            base["hidden_size"] = nil
            let dir2 = try TinyOuro.folder(config: {
                $0 = ["model_type": "lds", "base_config_dict": base, "encoder_layer_indices": [0],
                      "reasoning_layer_indices": [0], "decoder_layer_indices": [0]]
            })
            expectError("required field base_config_dict.hidden_size is missing") { try openAndPlan(dir2) }
            base["hidden_size"] = 8
            let dir3 = try TinyOuro.folder(config: {
                $0 = ["model_type": "lds", "base_config_dict": base, "encoder_layer_indices": [0],
                      "reasoning_layer_indices": [5], "decoder_layer_indices": [0]]
            })
            expectError("reasoning_layer_indices holds 5, outside 0..<1") { try openAndPlan(dir3) }
            let dir4 = try TinyOuro.folder(config: { $0 = ["model_type": "huginn_raven", "n_embd": 8, "n_heads": 3] })
            expectError("intermediate_size") { try openAndPlan(dir4) }
        }

        /// A long eos list must not make config decoding quadratic.
        @Test func longEosListIsFast() throws {
            let dir = try TinyOuro.folder(config: { $0["eos_token_id"] = Array(0..<200_000) })
            let start = Date()
            let (_, info) = try ModelFamily.plan(checkpoint: Checkpoint(directory: dir.url), passes: 1)
            #expect(info.eosTokenIds.count == 200_000)
            #expect(Date().timeIntervalSince(start) < 30)
        }
    }

    @Suite("safetensors files")
    struct SafetensorsFiles {
        @Test func shorterThanTheLengthField() {
            for n in 0..<8 {
                expectError("invalid safetensors file bad.safetensors", "shorter than the 8-byte header length") {
                    try parse(Data(repeating: 1, count: n))
                }
            }
        }

        @Test func headerLengthLargerThanTheFile() {
            expectError("header length 1000 is larger than the file") { try parse(rawSafetensors(header: "{}", length: 1000)) }
            expectError("exceeds the 100 MB limit") { try parse(rawSafetensors(header: "{}", length: UInt64.max)) }
        }

        @Test func headerNotJSON() {
            expectError("header is not valid JSON") { try parse(rawSafetensors(header: "{\"a\": ")) }
            expectError("header is not valid JSON") { try parse(rawSafetensors(header: "\u{FF}\u{FE}")) }
            expectError("header is not a JSON object") { try parse(rawSafetensors(header: "[1,2]")) }
            expectError("entry w is not an object") { try parse(rawSafetensors(header: #"{"w": 3}"#)) }
            expectError("__metadata__ is not an object") { try parse(rawSafetensors(header: #"{"__metadata__": 3}"#)) }
        }

        @Test func offsetsOutsideTheData() throws {
            // A valid file cut short: the last tensor's data lies past the end.
            let whole = try SafeTensorsWriter.serialize([.f32("a", shape: [4], [1, 2, 3, 4]), .f32("b", shape: [2], [5, 6])])
            expectError("tensor b data_offsets [16, 24] lie outside the 20-byte data section", "truncated") {
                try parse(whole.prefix(whole.count - 4))
            }
            expectError("out of order") {
                try parse(rawSafetensors(header: #"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}"#, data: Data(count: 8)))
            }
            expectError("no valid data_offsets") {
                try parse(rawSafetensors(header: #"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}"#, data: Data(count: 4)))
            }
            expectError("negative data_offsets [-4, 0]") {
                try parse(rawSafetensors(header: #"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}"#, data: Data(count: 4)))
            }
            expectError("no valid data_offsets") {
                try parse(rawSafetensors(header: #"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1e30]}}"#, data: Data(count: 4)))
            }
        }

        @Test func overlappingTensors() {
            let header = #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#
            expectError("tensors a and b overlap") { try parse(rawSafetensors(header: header, data: Data(count: 12))) }
        }

        @Test func dtypeTimesShapeIsNotTheByteLength() {
            let header = #"{"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 8]}}"#
            expectError("tensor w is BF16 [2, 3] = 12 bytes but data_offsets span 8") {
                try parse(rawSafetensors(header: header, data: Data(count: 8)))
            }
        }

        @Test func unsupportedDtype() {
            for dtype in ["F64", "U8", "BOOL", "f32", ""] {
                let header = #"{"w": {"dtype": "\#(dtype)", "shape": [1], "data_offsets": [0, 8]}}"#
                expectError("tensor w has unsupported dtype \(dtype)") { try parse(rawSafetensors(header: header, data: Data(count: 8))) }
            }
            expectError("tensor w has no dtype") {
                try parse(rawSafetensors(header: #"{"w": {"dtype": 3, "shape": [1], "data_offsets": [0, 4]}}"#, data: Data(count: 4)))
            }
        }

        @Test func badDimensions() {
            for dims in ["[-1]", "[1.5]", "[true]", "[\"4\"]", "[1e30]", "[18446744073709551615]", "[1099511627776]"] {
                let header = #"{"w": {"dtype": "F32", "shape": \#(dims), "data_offsets": [0, 4]}}"#
                expectError("tensor w has an invalid dimension") { try parse(rawSafetensors(header: header, data: Data(count: 4))) }
            }
            expectError("tensor w has no shape") {
                try parse(rawSafetensors(header: #"{"w": {"dtype": "F32", "data_offsets": [0, 4]}}"#, data: Data(count: 4)))
            }
            // A product that overflows, even next to a zero dimension, is refused rather than trapping.
            for dims in ["[1099511627775, 1099511627775]", "[1099511627775, 0, 1099511627775]"] {
                let header = #"{"w": {"dtype": "F32", "shape": \#(dims), "data_offsets": [0, 0]}}"#
                expectError("tensor w shape is too large") { try parse(rawSafetensors(header: header)) }
            }
        }

        @Test func namesWithControlCharactersStayOnOneLine() {
            let header = #"{"bad\nname\u0000": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}"#
            expectError("tensor bad\\nname\\0 has unsupported dtype F99") { try parse(rawSafetensors(header: header, data: Data(count: 4))) }
            let long = String(repeating: "x", count: 5000)
            let error = expectError("has unsupported dtype") {
                try parse(rawSafetensors(header: #"{"\#(long)": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}"#, data: Data(count: 4)))
            }
            #expect((error?.description.count ?? 0) < 400)
        }

        @Test func validEdgeCasesStillParse() throws {
            let header = #"{"__metadata__": {"format": "pt"}, "s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}, "e": {"dtype": "F16", "shape": [0, 3], "data_offsets": [4, 4]}, "b": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 8]}}"#
            let file = try SafeTensorsFile(bytes: rawSafetensors(header: header, data: Data(count: 8)))
            #expect(file.tensors["s"]?.shape == [] && file.tensors["e"]?.elementCount == 0 && file.tensors["b"]?.byteCount == 4)
            #expect(file.metadata == ["format": "pt"])
            // In memory and on disk agree.
            let dir = try TempDir()
            let bytes = try SafeTensorsWriter.serialize(TinyOuro.entries())
            try dir.write("m.safetensors", bytes)
            let a = try SafeTensorsFile(path: dir.url.appendingPathComponent("m.safetensors").path)
            let b = try SafeTensorsFile(bytes: bytes)
            #expect(a.tensors == b.tensors)
            #expect(try a.floats("model.norm.weight") == b.floats("model.norm.weight"))
        }

        @Test func badFileInACheckpointIsNamed() throws {
            let dir = try TinyOuro.folder()
            try dir.write("model.safetensors", Data([1, 2, 3]))
            expectError("invalid safetensors file model.safetensors", "shorter than the 8-byte header length") { try openAndPlan(dir) }
            try FileManager.default.removeItem(at: dir.url.appendingPathComponent("model.safetensors"))
            try FileManager.default.createDirectory(at: dir.url.appendingPathComponent("model.safetensors"), withIntermediateDirectories: false)
            expectError("model.safetensors is not a regular file") { try openAndPlan(dir) }
        }
    }

    @Suite("sharded checkpoints")
    struct ShardedCheckpoints {
        private func shardedFolder(index: [String: Any]) throws -> TempDir {
            let dir = try TempDir()
            try dir.writeJSON("config.json", TinyOuro.config)
            let entries = TinyOuro.entries()
            let half = entries.count / 2
            try SafeTensorsWriter.write(Array(entries[..<half]), to: dir.url.appendingPathComponent("model-00001-of-00002.safetensors"))
            try SafeTensorsWriter.write(Array(entries[half...]), to: dir.url.appendingPathComponent("model-00002-of-00002.safetensors"))
            try dir.writeJSON("model.safetensors.index.json", index)
            return dir
        }

        private func weightMap() -> [String: String] {
            let entries = TinyOuro.entries()
            var map: [String: String] = [:]
            for (i, e) in entries.enumerated() {
                map[e.name] = i < entries.count / 2 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors"
            }
            return map
        }

        @Test func validShardsOpen() throws {
            let dir = try shardedFolder(index: ["weight_map": weightMap()])
            try openAndPlan(dir)
        }

        @Test func indexNamesAMissingShard() throws {
            var map = weightMap()
            map["model.norm.weight"] = "model-00003-of-00003.safetensors"
            let dir = try shardedFolder(index: ["weight_map": map])
            expectError("not found", "model-00003-of-00003.safetensors", "named by model.safetensors.index.json") {
                _ = try Checkpoint(directory: dir.url)
            }
        }

        @Test func indexDisagreesWithTheShards() throws {
            var map = weightMap()
            map["no.such.tensor"] = "model-00001-of-00002.safetensors"
            let dir = try shardedFolder(index: ["weight_map": map])
            expectError("checkpoint lacks tensor no.such.tensor", "listed in the index") { _ = try Checkpoint(directory: dir.url) }

            var moved = weightMap()
            let name = TinyOuro.entries()[0].name
            moved[name] = "model-00002-of-00002.safetensors"
            let dir2 = try shardedFolder(index: ["weight_map": moved])
            expectError("tensor \(name) is in model-00001-of-00002.safetensors, the index says model-00002-of-00002.safetensors") {
                _ = try Checkpoint(directory: dir2.url)
            }
        }

        @Test func badIndexFiles() throws {
            let dir = try shardedFolder(index: ["weight_map": 3])
            expectError("has no weight_map object") { _ = try Checkpoint(directory: dir.url) }
            try dir.write("model.safetensors.index.json", text: "{not json")
            expectError("model.safetensors.index.json is not a JSON object") { _ = try Checkpoint(directory: dir.url) }
            for name in ["../config.json", "", "..", "sub/x.safetensors"] {
                try dir.writeJSON("model.safetensors.index.json", ["weight_map": ["a": name]])
                expectError("must be a plain file name") { _ = try Checkpoint(directory: dir.url) }
            }
        }

        @Test func tensorInTwoShards() throws {
            let dir = try TempDir()
            try dir.writeJSON("config.json", TinyOuro.config)
            let entries = TinyOuro.entries()
            try SafeTensorsWriter.write(entries, to: dir.url.appendingPathComponent("a.safetensors"))
            try SafeTensorsWriter.write(entries, to: dir.url.appendingPathComponent("b.safetensors"))
            try dir.writeJSON("model.safetensors.index.json", ["weight_map": [entries[0].name: "a.safetensors", entries[1].name: "b.safetensors"]])
            expectError("appears in two shards") { _ = try Checkpoint(directory: dir.url) }
        }
    }
}

/// Replays what the LoopCore fuzz targets (`tools/fuzz/safetensors_header.swift`,
/// `tools/fuzz/config_plan.swift`) once crashed or hung on, kept in
/// Tests/Fixtures/fuzz-regressions: each must give a clean LoopError or a valid result.
extension BadInputTests {
    @Suite("fuzz regressions")
    struct FuzzRegressions {
        static let testsRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

        static func inputs(_ target: String) -> [URL] {
            let folder = testsRoot.appendingPathComponent("Fixtures/fuzz-regressions").appendingPathComponent(target)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            return names.sorted().map { folder.appendingPathComponent($0) }
        }

        /// The tensors config inputs are checked against: the three tiny fixture checkpoints, as the
        /// fuzz target uses them (from Tests/Fixtures or ../shared/fixtures), else the synthetic one.
        static func shards() throws -> [(name: String, file: SafeTensorsFile)] {
            let models = ["ouro-tiny-fp32", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"]
            let places = [testsRoot.appendingPathComponent("Fixtures"),
                          testsRoot.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/fixtures")]
            for place in places {
                let paths = models.map { place.appendingPathComponent($0).appendingPathComponent("model.safetensors").path }
                if paths.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) {
                    return try zip(models, paths).map { ($0, try SafeTensorsFile(path: $1)) }
                }
            }
            return [("tiny-ouro", try SafeTensorsFile(bytes: SafeTensorsWriter.serialize(TinyOuro.entries())))]
        }

        static func expectClean(_ error: any Error, _ url: URL) {
            guard let loop = error as? LoopError else {
                Issue.record("\(url.lastPathComponent): threw \(type(of: error)), not a LoopError")
                return
            }
            let text = loop.description
            #expect(!text.isEmpty && !text.unicodeScalars.contains { $0.properties.generalCategory == .control },
                    "\(url.lastPathComponent): \(text.debugDescription)")
        }

        @Test(arguments: inputs("safetensors_header"))
        func safetensorsInput(_ url: URL) throws {
            let bytes = try Data(contentsOf: url)
            do {
                let file = try SafeTensorsFile(bytes: bytes)
                for (name, info) in file.tensors {
                    #expect(info.fileOffset + info.byteCount <= bytes.count)
                    #expect(try file.floats(name).count == info.elementCount)
                }
            } catch {
                Self.expectClean(error, url)
            }
        }

        @Test(arguments: inputs("config_plan"))
        func configInput(_ url: URL) throws {
            let text = try Data(contentsOf: url)
            let shards = try Self.shards()
            let start = Date()
            // The fuzz target's hang limit (-timeout=10) holds here too.
            defer { #expect(Date().timeIntervalSince(start) < 10, "\(url.lastPathComponent) took too long") }
            do {
                let checkpoint = try Checkpoint(directory: URL(fileURLWithPath: "/nonexistent/fuzz-regression"), configData: text, shards: shards)
                let (plan, _) = try ModelFamily.plan(checkpoint: checkpoint, passes: nil)
                let backend = try CPUBackend(plan: plan, checkpoint: checkpoint, maxRows: 2, maxContext: 8)
                _ = try PlanRunner(plan: plan, backend: backend).forward(tokens: [0, Int32(plan.vocab - 1)])
            } catch {
                Self.expectClean(error, url)
            }
        }
    }
}
