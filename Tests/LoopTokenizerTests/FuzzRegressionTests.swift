import Foundation
#if canImport(Glibc)
import Glibc
#endif
import LoopTokenizer
import Testing

/// Replays the inputs the tokenizer fuzz targets (`tools/fuzz/tokenizer_load.swift`,
/// `tools/fuzz/tokenizer_encode.swift`) once crashed on, kept in Tests/Fixtures/fuzz-regressions.
@Suite("Tokenizer fuzz regressions")
struct FuzzRegressionTests {
    static let directory = Fixtures.root.appendingPathComponent("fuzz-regressions")

    static func inputs(_ target: String) -> [URL] {
        let folder = directory.appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.sorted().map { folder.appendingPathComponent($0) }
    }

    /// The strings the load target encodes with every tokenizer that loads.
    static let sampleTexts = [
        "Hello world", "  two  spaces\n\ttab", "x = 12345 + 6789;", "café naïve", "数字 😀!",
        "<|im_start|>user\nhi<|im_end|>", "", "\u{0}\u{7F}\u{FFFD}",
    ]

    static func isOneLine(_ text: String) -> Bool {
        !text.isEmpty && !text.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    @Test func regressionFilesExist() {
        #expect(!Self.inputs("tokenizer_load").isEmpty)
    }

    /// Each file either loads (and then encodes to ids that name tokens, and decodes) or fails
    /// with a one-line TokenizerError.
    @Test(arguments: inputs("tokenizer_load"))
    func loaderInput(_ url: URL) throws {
        let data = try Data(contentsOf: url)
        let tokenizer: Tokenizer
        do {
            tokenizer = try Tokenizer(data: data)
        } catch let error as TokenizerError {
            #expect(Self.isOneLine(error.description), "\(url.lastPathComponent): \(error.description.debugDescription)")
            return
        }
        for text in Self.sampleTexts {
            for special in [false, true] {
                let ids = tokenizer.encode(text, addSpecialTokens: special)
                #expect(ids.allSatisfy { tokenizer.token(for: $0) != nil }, "\(url.lastPathComponent): \(text.debugDescription) -> \(ids)")
                _ = tokenizer.decode(ids, skipSpecialTokens: special)
            }
        }
    }

    /// The post-processor may only add ids that name a token.
    @Test func postProcessorIDMustNameAToken() throws {
        var parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary())
        parts.postProcessor = [
            "type": "TemplateProcessing",
            "single": [["SpecialToken": ["id": "<s>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
            "special_tokens": ["<s>": ["id": "<s>", "ids": [999], "tokens": ["<s>"]]],
        ]
        let error = #expect(throws: TokenizerError.self) { try parts.tokenizer() }
        #expect(error?.description.contains("post_processor") == true)
        #expect(error?.description.contains("adds token id 999, which names no token") == true)

        parts.postProcessor = ["type": "BertProcessing", "cls": ["[CLS]", 5000], "sep": ["[SEP]", 1]]
        #expect(throws: TokenizerError.self) { try parts.tokenizer() }
    }

    /// Ids index dense tables: an absurd id is refused instead of allocating gigabytes.
    @Test func absurdTokenIDsAreRefused() throws {
        var parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary())
        parts.vocab["huge"] = Int(Int32.max)
        let error = #expect(throws: TokenizerError.self) { try parts.tokenizer() }
        #expect(error?.description.contains("is not a valid token id") == true)

        parts.vocab["huge"] = nil
        parts.addedTokens = [["id": 2_000_000_000, "content": "<big>", "special": true]]
        let error2 = #expect(throws: TokenizerError.self) { try parts.tokenizer() }
        #expect(error2?.description.contains("added_tokens[0]") == true)
    }

    /// Strings from the file end up in messages escaped, on one line.
    @Test func messagesStayOnOneLine() throws {
        var parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary())
        parts.normalizer = ["type": "Weird\nNormalizer"]
        let error = #expect(throws: TokenizerError.self) { try parts.tokenizer() }
        #expect(error.map { Self.isOneLine($0.description) } == true)
        #expect(error?.description.contains("Weird\\nNormalizer") == true)

        parts.normalizer = NSNull()
        parts.preTokenizer = ["type": "Split", "pattern": ["Regex": "(\n"], "behavior": "Isolated"]
        let error2 = #expect(throws: TokenizerError.self) { try parts.tokenizer() }
        #expect(error2.map { Self.isOneLine($0.description) } == true)
    }

    /// A tokenizer.json that is a folder or a FIFO is refused, without blocking on the FIFO.
    @Test func notARegularFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loopvk-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let folder = dir.appendingPathComponent("tokenizer.json")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        let error = #expect(throws: TokenizerError.self) { try Tokenizer(contentsOf: folder) }
        #expect(error?.description.contains("not a regular file") == true)
        let fifo = dir.appendingPathComponent("tokenizer_config.json")
        try #require(mkfifo(fifo.path, 0o600) == 0)
        let error2 = #expect(throws: TokenizerError.self) { try TokenizerConfig(contentsOf: fifo) }
        #expect(error2?.description.contains("not a regular file") == true)
    }

    /// Text the encode target found: encoding with the fixture tokenizers gives the text back.
    @Test(arguments: inputs("tokenizer_encode"))
    func encoderInput(_ url: URL) throws {
        let data = try Data(contentsOf: url)
        let text = String(decoding: data, as: UTF8.self)
        for name in Fixtures.tokenizerNames {
            let tokenizer = try Fixtures.tokenizer(name)
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            #expect(tokenizer.decode(ids) == text, "\(name): \(url.lastPathComponent)")
        }
    }
}
