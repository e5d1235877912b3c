import Foundation
import LoopTokenizer
import Testing

/// Files the tokenizer cannot use must fail with one clear line naming the problem.
@Suite("Tokenizer errors")
struct ErrorTests {
    private func loadError(_ json: String) -> TokenizerError? {
        #expect(throws: TokenizerError.self) { try Tokenizer(data: Data(json.utf8)) }
    }

    private func loadError(_ parts: TokenizerJSON) -> TokenizerError? {
        #expect(throws: TokenizerError.self) { try parts.tokenizer() }
    }

    @Test func malformedJSON() throws {
        let error = loadError("{\"model\": {\"type\": \"BPE\",\n \"vocab\": {\"a\": 0,}}}")
        guard case .malformedJSON = error else {
            Issue.record("expected malformedJSON, got \(String(describing: error))")
            return
        }
        let message = error?.description ?? ""
        #expect(message.contains("not valid JSON"))
        #expect(message.contains("line 2"))
        #expect(!message.contains("\n"))
        print("[error] \(message)")

        for broken in ["", "{", "[1, 2]", "{\"model\": tru}", "{\"a\": \"unterminated}", "{\"a\": 1} x", "{\"a\": \"\\q\"}"] {
            let error = loadError(broken)
            guard case .malformedJSON = error else {
                Issue.record("\(broken.debugDescription): expected malformedJSON, got \(String(describing: error))")
                continue
            }
        }
    }

    @Test func missingModel() {
        let error = loadError(#"{"version": "1.0", "added_tokens": []}"#)
        #expect(error == .missingField(what: "tokenizer.json", path: "model"))
        #expect(error?.description == "tokenizer.json has no \"model\" field")
    }

    @Test func unsupportedModel() {
        let error = loadError(#"{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}"#)
        #expect(error == .unsupportedModel(type: "Unigram"))
        #expect(error?.description.contains("Unigram") == true)
    }

    @Test func mergeNamingUnknownToken() throws {
        var parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary(extra: ["ab"]))
        parts.merges = ["a b", "x zz"]
        let error = loadError(parts)
        #expect(error == .unknownMergeToken(merge: "x zz", index: 1, token: "zz"))
        let message = error?.description ?? ""
        #expect(message.contains("#1") && message.contains("\"x zz\"") && message.contains("\"zz\""))
        print("[error] \(message)")

        // The merged token must exist too.
        parts.merges = ["a b", "b c"]
        #expect(loadError(parts) == .unknownMergeToken(merge: "b c", index: 1, token: "bc"))
    }

    @Test func unsupportedPipelineParts() {
        var parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary())
        parts.preTokenizer = ["type": "Metaspace", "replacement": "▁"]
        #expect(loadError(parts) == .unsupportedPreTokenizer(type: "Metaspace"))

        parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary())
        parts.preTokenizer = ["type": "Sequence", "pretokenizers": [["type": "WhitespaceSplit"]]]
        #expect(loadError(parts) == .unsupportedPreTokenizer(type: "WhitespaceSplit"))

        parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary())
        parts.normalizer = ["type": "Lowercase"]
        let normalizerError = loadError(parts)
        #expect(normalizerError == .unsupportedNormalizer(type: "Lowercase"))
        #expect(normalizerError?.description.contains("normalizer \"Lowercase\"") == true)

        parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary())
        parts.decoder = ["type": "WordPiece"]
        #expect(loadError(parts) == .unsupportedDecoder(type: "WordPiece"))

        parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary())
        parts.postProcessor = ["type": "Whatever"]
        #expect(loadError(parts) == .unsupportedPostProcessor(type: "Whatever"))

        parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary())
        parts.preTokenizer = ["type": "Split", "pattern": ["Regex": "(unclosed"], "behavior": "Isolated", "invert": false]
        guard case .invalidRegex? = loadError(parts) else {
            Issue.record("expected invalidRegex")
            return
        }
    }

    @Test func unreadableFile() {
        let url = URL(fileURLWithPath: "/nonexistent/tokenizer.json")
        let error = #expect(throws: TokenizerError.self) { try Tokenizer(contentsOf: url) }
        #expect(error?.description.contains("/nonexistent/tokenizer.json") == true)
    }
}
