import Foundation
import LoopTokenizer
import Testing

/// Every case of the fixtures' tokenizer_golden.json (outputs of the `tokenizers` library).
@Suite("Golden outputs of the tokenizers library")
struct GoldenTests {
    @Test("encode, tokens, decode match every golden case", arguments: Fixtures.tokenizerNames)
    func encodeAndDecode(fixture: String) throws {
        let tokenizer = try Fixtures.tokenizer(fixture)
        let golden = try Fixtures.golden(fixture)
        #expect(golden.cases.count == 66)
        var checks = 0
        for (index, item) in golden.cases.enumerated() {
            let label = "\(fixture) case \(index) \(item.text.debugDescription)"
            let ids = tokenizer.encode(item.text, addSpecialTokens: false)
            #expect(ids == item.ids, "ids, \(label)")
            #expect(tokenizer.tokens(for: ids) == item.tokens, "tokens, \(label)")
            #expect(tokenizer.tokens(for: item.ids) == item.tokens, "tokens of golden ids, \(label)")
            let withSpecial = tokenizer.encode(item.text, addSpecialTokens: true)
            #expect(withSpecial == item.ids_with_special_tokens, "ids_with_special_tokens, \(label)")
            #expect(tokenizer.encode(item.text) == withSpecial, "addSpecialTokens defaults to true, \(label)")
            #expect(tokenizer.decode(item.ids) == item.decoded, "decoded, \(label)")
            #expect(tokenizer.decode(item.ids_with_special_tokens, skipSpecialTokens: true) == item.decoded_with_special_tokens_skip_special,
                    "decoded_with_special_tokens_skip_special, \(label)")
            #expect(tokenizer.decode(item.ids_with_special_tokens, skipSpecialTokens: false) == item.decoded_with_special_tokens_keep_special,
                    "decoded_with_special_tokens_keep_special, \(label)")
            for token in item.tokens {
                #expect(tokenizer.id(for: token) != nil, "id(for: \(token.debugDescription)), \(label)")
            }
            checks += 8
        }
        print("[golden] \(fixture): \(golden.cases.count) encode cases, \(checks) checks")
    }

    @Test("every golden decode case", arguments: Fixtures.tokenizerNames)
    func decodeCases(fixture: String) throws {
        let tokenizer = try Fixtures.tokenizer(fixture)
        let golden = try Fixtures.golden(fixture)
        #expect(golden.decode_cases.count == 22)
        for (index, item) in golden.decode_cases.enumerated() {
            #expect(tokenizer.decode(item.ids, skipSpecialTokens: item.skip_special_tokens) == item.text,
                    "\(fixture) decode case \(index) \(item.ids)")
        }
        print("[golden] \(fixture): \(golden.decode_cases.count) decode cases")
    }

    @Test("vocabulary size and special tokens", arguments: Fixtures.tokenizerNames)
    func vocabulary(fixture: String) throws {
        let tokenizer = try Fixtures.tokenizer(fixture)
        let golden = try Fixtures.golden(fixture)
        #expect(tokenizer.vocabSize == golden.vocab_size_with_added)
        if fixture == "bytelevel-bpe" {
            #expect(tokenizer.specialTokenIDs == [0, 1, 2])
            #expect(tokenizer.id(for: "<|im_end|>") == 2)
        } else {
            #expect(tokenizer.specialTokenIDs == Set(594...599))
            #expect(tokenizer.id(for: "<|begin_text|>") == 594)
            #expect(tokenizer.token(for: 598) == "<|end_turn|>")
        }
        #expect(tokenizer.id(for: "no such token") == nil)
        #expect(tokenizer.token(for: -1) == nil)
        #expect(tokenizer.token(for: 600) == nil)
    }

    @Test("streaming detokenizer equals one-shot decode on every golden case", arguments: Fixtures.tokenizerNames)
    func streaming(fixture: String) throws {
        let tokenizer = try Fixtures.tokenizer(fixture)
        let golden = try Fixtures.golden(fixture)
        var sequences: [([Int], Bool)] = []
        for item in golden.cases {
            sequences.append((item.ids, false))
            sequences.append((item.ids_with_special_tokens, false))
            sequences.append((item.ids_with_special_tokens, true))
        }
        for item in golden.decode_cases {
            sequences.append((item.ids, item.skip_special_tokens))
        }
        for (ids, skip) in sequences {
            var detokenizer = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: skip)
            var streamed = ""
            for id in ids {
                let piece = detokenizer.append(id)
                // Never half a character: each piece is whole text on its own.
                #expect(String(decoding: Array(piece.utf8), as: UTF8.self) == piece)
                streamed += piece
            }
            streamed += detokenizer.flush()
            #expect(streamed == tokenizer.decode(ids, skipSpecialTokens: skip), "\(fixture) ids \(ids) skip \(skip)")
            #expect(!detokenizer.hasPendingBytes)
        }
        print("[golden] \(fixture): \(sequences.count) streamed sequences")
    }
}
