import Foundation
import LoopTokenizer
import Testing

/// Pipeline features checked on small tokenizers built in memory.
@Suite("Tokenizer pipeline features")
struct FeatureTests {
    /// A tokenizer whose words come out whole: every expected piece is in the vocabulary and
    /// `ignore_merges` makes a word that is in the vocabulary one token. Tokens then show the words.
    private func wholeWordTokenizer(preTokenizer: Any, words: [String]) throws -> Tokenizer {
        var parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary(extra: words))
        parts.preTokenizer = preTokenizer
        parts.modelExtras = ["ignore_merges": true]
        return try parts.tokenizer()
    }

    private func split(_ behavior: String, invert: Bool = false) -> [String: Any] {
        ["type": "Split", "pattern": ["String": "-"], "behavior": behavior, "invert": invert]
    }

    @Test func splitBehaviors() throws {
        // The examples of the `tokenizers` documentation for SplitDelimiterBehavior.
        let text = "the-final--countdown"
        let words = ["the", "final", "countdown", "--", "the-", "final-", "-final", "-countdown"]
        let expected: [String: [String]] = [
            "Removed": ["the", "final", "countdown"],
            "Isolated": ["the", "-", "final", "-", "-", "countdown"],
            "MergedWithPrevious": ["the-", "final-", "-", "countdown"],
            "MergedWithNext": ["the", "-final", "-", "-countdown"],
            "Contiguous": ["the", "-", "final", "--", "countdown"],
        ]
        for (behavior, pieces) in expected {
            let tokenizer = try wholeWordTokenizer(preTokenizer: split(behavior), words: words)
            #expect(tokenizer.tokens(for: tokenizer.encode(text)) == pieces, "\(behavior)")
        }
        let inverted = try wholeWordTokenizer(preTokenizer: split("Removed", invert: true), words: words)
        #expect(inverted.tokens(for: inverted.encode(text)) == ["-", "-", "-"])
    }

    @Test func splitRegexWithInvertDropsUnmatchedText() throws {
        let preTokenizer: [String: Any] = ["type": "Split", "pattern": ["Regex": "\\p{L}+"], "behavior": "Removed", "invert": true]
        let tokenizer = try wholeWordTokenizer(preTokenizer: preTokenizer, words: ["ab", "cd", "ünï"])
        #expect(tokenizer.tokens(for: tokenizer.encode("ab, cd!")) == ["ab", "cd"])
        #expect(tokenizer.decode(tokenizer.encode("ab, cd!")) == "abcd")
    }

    @Test func digits() throws {
        let individual = try wholeWordTokenizer(preTokenizer: ["type": "Digits", "individual_digits": true], words: ["abc", "123"])
        #expect(individual.tokens(for: individual.encode("abc123")) == ["abc", "1", "2", "3"])
        let runs = try wholeWordTokenizer(preTokenizer: ["type": "Digits", "individual_digits": false], words: ["abc", "123"])
        #expect(runs.tokens(for: runs.encode("abc123")) == ["abc", "123"])
        // SmolLM2-style sequence: Digits then ByteLevel.
        let sequence: [String: Any] = ["type": "Sequence", "pretokenizers": [
            ["type": "Digits", "individual_digits": true],
            ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
        ]]
        let smol = try wholeWordTokenizer(preTokenizer: sequence, words: ["Ġx", "x"])
        #expect(smol.tokens(for: smol.encode("x 42")) == ["x", "Ġ", "4", "2"])
        #expect(smol.decode(smol.encode("x 42")) == "x 42")
    }

    @Test func byteLevelPrefixSpace() throws {
        let preTokenizer: [String: Any] = ["type": "ByteLevel", "add_prefix_space": true, "use_regex": true]
        let tokenizer = try wholeWordTokenizer(preTokenizer: preTokenizer, words: ["ĠHello", "Ġworld"])
        #expect(tokenizer.tokens(for: tokenizer.encode("Hello world")) == ["ĠHello", "Ġworld"])
        #expect(tokenizer.tokens(for: tokenizer.encode(" Hello")) == ["ĠHello"])  // no second space
    }

    @Test func byteLevelWithoutRegex() throws {
        let preTokenizer: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "use_regex": false]
        let tokenizer = try wholeWordTokenizer(preTokenizer: preTokenizer, words: ["aĠb"])
        #expect(tokenizer.tokens(for: tokenizer.encode("a b")) == ["aĠb"])
    }

    @Test func mergeRanksAndFormats() throws {
        // Lower rank merges first: with "b c" before "a b", "abc" -> a + bc.
        var parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary(extra: ["ab", "bc", "abc"]))
        parts.merges = ["b c", "a b"]
        var tokenizer = try parts.tokenizer()
        #expect(tokenizer.tokens(for: tokenizer.encode("abc")) == ["a", "bc"])
        parts.merges = ["a b", "b c"]
        tokenizer = try parts.tokenizer()
        #expect(tokenizer.tokens(for: tokenizer.encode("abc")) == ["ab", "c"])
        // Equal ranks: leftmost first ("aaa" -> aa + a).
        parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary(extra: ["aa"]))
        parts.merges = ["a a"]
        tokenizer = try parts.tokenizer()
        #expect(tokenizer.tokens(for: tokenizer.encode("aaaaa")) == ["aa", "aa", "a"])

        // Merges written as [a, b] pairs give the same result as "a b" strings.
        let strings = try TokenizerJSON(vocab: TokenizerJSON.byteVocabulary(extra: ["ab", "abc"]), merges: ["a b", "ab c"]).tokenizer()
        var object = try JSONSerialization.jsonObject(with: TokenizerJSON(vocab: TokenizerJSON.byteVocabulary(extra: ["ab", "abc"])).data()) as! [String: Any]
        var model = object["model"] as! [String: Any]
        model["merges"] = [["a", "b"], ["ab", "c"]]
        object["model"] = model
        let pairs = try Tokenizer(data: JSONSerialization.data(withJSONObject: object))
        #expect(strings.tokens(for: strings.encode("abcab")) == ["abc", "ab"])
        #expect(pairs.encode("abcab") == strings.encode("abcab"))
    }

    @Test func ignoreMerges() throws {
        var parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary(extra: ["ab", "abc"]))
        parts.merges = ["a b"]
        #expect(try parts.tokenizer().tokens(for: parts.tokenizer().encode("abc")) == ["ab", "c"])
        parts.modelExtras = ["ignore_merges": true]
        let tokenizer = try parts.tokenizer()
        #expect(tokenizer.tokens(for: tokenizer.encode("abc")) == ["abc"])
    }

    @Test func addedTokenMatching() throws {
        var parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary())
        let base = parts.vocab.count
        parts.addedTokens = [
            ["id": base, "content": "<a>", "special": true, "normalized": false],
            ["id": base + 1, "content": "<a><b>", "special": true, "normalized": false],
            ["id": base + 2, "content": "<m>", "special": false, "normalized": false, "lstrip": true, "rstrip": true],
            ["id": base + 3, "content": "ab", "special": false, "normalized": true, "single_word": true],
        ]
        let tokenizer = try parts.tokenizer()
        // Leftmost-longest.
        #expect(tokenizer.encode("x<a><b>y") == [tokenizer.id(for: "x")!, base + 1, tokenizer.id(for: "y")!])
        #expect(tokenizer.encode("<a><a>") == [base, base])
        // lstrip / rstrip take the surrounding whitespace.
        #expect(tokenizer.tokens(for: tokenizer.encode("q  <m>  r")) == ["q", "<m>", "r"])
        // single_word: only a whole word.
        #expect(tokenizer.tokens(for: tokenizer.encode("ab cab")) == ["ab", "Ġ", "c", "a", "b"])
        #expect(tokenizer.specialTokenIDs == [base, base + 1])
        #expect(tokenizer.vocabSize == base + 4)
        // Non-special added tokens survive skipSpecialTokens.
        #expect(tokenizer.decode(tokenizer.encode("<a>q <m> ab"), skipSpecialTokens: true) == "q<m>ab")
    }

    @Test func nfcNormalizer() throws {
        var parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary())
        let plain = try parts.tokenizer()
        parts.normalizer = ["type": "Sequence", "normalizers": [["type": "NFC"]]]
        let nfc = try parts.tokenizer()
        #expect(nfc.encode("e\u{301}") == plain.encode("\u{E9}"))
        #expect(plain.encode("e\u{301}") != plain.encode("\u{E9}"))
    }

    @Test func postProcessors() throws {
        var parts = TokenizerJSON(vocab: TokenizerJSON.byteVocabulary(extra: ["<s>", "</s>"]))
        let bos = parts.vocab["<s>"]!
        let eos = parts.vocab["</s>"]!
        parts.postProcessor = ["type": "Sequence", "processors": [
            ["type": "ByteLevel", "trim_offsets": false],
            ["type": "RobertaProcessing", "cls": ["<s>", bos], "sep": ["</s>", eos], "trim_offsets": true, "add_prefix_space": false],
        ]]
        let tokenizer = try parts.tokenizer()
        let a = tokenizer.id(for: "a")!
        #expect(tokenizer.encode("a") == [bos, a, eos])
        #expect(tokenizer.encode("a", addSpecialTokens: false) == [a])
    }

    @Test func lossyUTF8MatchesRust() throws {
        let tokenizer = try TokenizerJSON(vocab: TokenizerJSON.byteVocabulary()).tokenizer()  // id == byte
        // Maximal invalid subparts become one U+FFFD each, as in String::from_utf8_lossy.
        let cases: [([Int], String)] = [
            ([0xE2, 0x82], "\u{FFFD}"),
            ([0xE2, 0x82, 0xAC], "€"),
            ([0xF0, 0x80, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}"),
            ([0xED, 0xA0, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}"),
            ([0xC0, 0xAF], "\u{FFFD}\u{FFFD}"),
            ([0xF4, 0x90, 0x80, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"),
            ([0xF0, 0x9F, 0x98, 0x41], "\u{FFFD}A"),
            ([0x61, 0xFF, 0x62], "a\u{FFFD}b"),
        ]
        for (ids, text) in cases {
            #expect(tokenizer.decode(ids) == text, "\(ids)")
        }
        // Random bytes, compared with Swift's own repairing decoder, one-shot and streamed.
        var generator = SplitMix64(seed: 7)
        for _ in 0..<2000 {
            let length = Int(generator.next() % 12)
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next() % 5 == 0 ? generator.next() % 128 : 0x80 + generator.next() % 128) }
            let ids = bytes.map(Int.init)
            let expected = String(decoding: bytes, as: UTF8.self)
            #expect(tokenizer.decode(ids) == expected, "\(bytes)")
            var detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
            var streamed = ""
            for id in ids { streamed += detokenizer.append(id) }
            streamed += detokenizer.flush()
            #expect(streamed == expected, "streamed \(bytes)")
        }
    }

    @Test func streamingHoldsBackPartialCharacters() throws {
        let tokenizer = try TokenizerJSON(vocab: TokenizerJSON.byteVocabulary()).tokenizer()
        var detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
        let emoji = Array("😀".utf8).map(Int.init)  // F0 9F 98 80
        #expect(detokenizer.append(Int(UInt8(ascii: "a"))) == "a")
        #expect(detokenizer.append(emoji[0]) == "")
        #expect(detokenizer.append(emoji[1]) == "")
        #expect(detokenizer.hasPendingBytes)
        #expect(detokenizer.append(emoji[2]) == "")
        #expect(detokenizer.append(emoji[3]) == "😀")
        // A broken sequence is reported as soon as it cannot be completed.
        #expect(detokenizer.append(0xE2) == "")
        #expect(detokenizer.append(Int(UInt8(ascii: "b"))) == "\u{FFFD}b")
        // flush() gives the replacement for an unfinished character and empties the buffer.
        #expect(detokenizer.append(0xE2) == "")
        #expect(detokenizer.flush() == "\u{FFFD}")
        #expect(detokenizer.flush() == "")
        #expect(detokenizer.append(contentsOf: emoji) == "😀")
        // Unknown ids contribute nothing.
        #expect(detokenizer.append(1_000_000) == "")
    }

    @Test func concurrentEncoding() async throws {
        let tokenizer = try Fixtures.tokenizer("split-bytelevel-bpe")
        let texts = try Fixtures.golden("split-bytelevel-bpe").cases.map(\.text)
        let serial = texts.map { tokenizer.encode($0) }
        let results = await withTaskGroup(of: [[Int]].self) { group in
            for _ in 0..<8 {
                group.addTask { texts.map { tokenizer.encode($0) } }
            }
            var all: [[[Int]]] = []
            for await result in group { all.append(result) }
            return all
        }
        for result in results {
            #expect(result == serial)
        }
    }
}

/// A small deterministic random generator for tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
