import Foundation
import LoopTokenizer

/// Locations of the test fixtures in the repository (Tests/Fixtures), found from this file's path.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // LoopTokenizerTests
        .deletingLastPathComponent()  // Tests
        .appendingPathComponent("Fixtures")

    /// The two golden tokenizer fixtures.
    static let tokenizerNames = ["bytelevel-bpe", "split-bytelevel-bpe"]

    static func tokenizerDirectory(_ name: String) -> URL {
        root.appendingPathComponent("tokenizers").appendingPathComponent(name)
    }

    /// The looped-arith checkpoint's tokenizer files (a real Ouro-format model).
    static let loopedArith = root.appendingPathComponent("looped-arith-tokenizer")

    static func tokenizer(_ name: String) throws -> Tokenizer {
        try Tokenizer(contentsOf: tokenizerDirectory(name).appendingPathComponent("tokenizer.json"))
    }

    static func golden(_ name: String) throws -> Golden {
        let data = try Data(contentsOf: tokenizerDirectory(name).appendingPathComponent("tokenizer_golden.json"))
        return try JSONDecoder().decode(Golden.self, from: data)
    }
}

/// tokenizer_golden.json: outputs of the `tokenizers` library for the fixture tokenizer.
struct Golden: Decodable {
    struct Case: Decodable {
        var text: String
        var ids: [Int]
        var tokens: [String]
        var ids_with_special_tokens: [Int]
        var decoded: String
        var decoded_with_special_tokens_skip_special: String
        var decoded_with_special_tokens_keep_special: String
    }

    struct DecodeCase: Decodable {
        var ids: [Int]
        var skip_special_tokens: Bool
        var text: String
    }

    var vocab_size_with_added: Int
    var cases: [Case]
    var decode_cases: [DecodeCase]
}

/// Builds a tokenizer.json in memory from parts, for tests of specific features and errors.
struct TokenizerJSON {
    var vocab: [String: Int]
    var merges: [String] = []
    var addedTokens: [[String: Any]] = []
    var normalizer: Any = NSNull()
    var preTokenizer: Any = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
    var postProcessor: Any = NSNull()
    var decoder: Any = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true]
    var modelExtras: [String: Any] = [:]

    /// A vocabulary of the 256 byte-level characters (ids 0-255) plus `extra` tokens after them.
    static func byteVocabulary(extra: [String] = []) -> [String: Int] {
        var vocab: [String: Int] = [:]
        for (byte, scalar) in byteLevelScalars().enumerated() {
            vocab[String(scalar)] = byte
        }
        for token in extra where vocab[token] == nil {
            vocab[token] = vocab.count
        }
        return vocab
    }

    /// GPT-2's byte -> character table, written out independently of the module.
    static func byteLevelScalars() -> [Unicode.Scalar] {
        var table: [Unicode.Scalar] = []
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table.append(Unicode.Scalar(UInt8(byte)))
            } else {
                table.append(Unicode.Scalar(next)!)
                next += 1
            }
        }
        return table
    }

    func data() throws -> Data {
        var model: [String: Any] = ["type": "BPE", "vocab": vocab, "merges": merges]
        for (key, value) in modelExtras { model[key] = value }
        let root: [String: Any] = [
            "version": "1.0",
            "added_tokens": addedTokens,
            "normalizer": normalizer,
            "pre_tokenizer": preTokenizer,
            "post_processor": postProcessor,
            "decoder": decoder,
            "model": model,
        ]
        return try JSONSerialization.data(withJSONObject: root)
    }

    func tokenizer() throws -> Tokenizer {
        try Tokenizer(data: data())
    }
}
