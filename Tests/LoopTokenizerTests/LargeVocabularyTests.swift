import Foundation
import LoopTokenizer
import Testing

/// A real-size vocabulary (150k tokens, 150k merges, like Qwen's) must load quickly. The test
/// checks that it loads and works and prints the time; it asserts no timing.
@Suite("Large vocabulary")
struct LargeVocabularyTests {
    static let mergeCount = 150_000

    /// Synthesizes tokenizer.json text: the 256 byte-level characters, then one token per merge.
    /// Merge i joins an earlier token with a byte-level character; the merged token is new.
    static func synthesize() -> (json: Data, vocabularySize: Int) {
        let characters = TokenizerJSON.byteLevelScalars().map { String($0) }
        var tokens = characters
        var known = Set(tokens)
        var merges: [(String, String)] = []
        merges.reserveCapacity(mergeCount)
        var generator = SplitMix64(seed: 2024)
        // Printable ASCII letters and the space character keep merged tokens readable.
        let alphabet = Array("etaoinshrdlcumwfgypbvkjxqzETAOINSHRDLCUMWFGYPBVKJXQZĠ0123456789.,").map { String($0) }
        while merges.count < mergeCount {
            // Prefer recent, shorter tokens on the left so lengths stay moderate.
            let left = tokens[Int(generator.next() % UInt64(min(tokens.count, 256 + merges.count / 4 + 64)))]
            let right = alphabet[Int(generator.next() % UInt64(alphabet.count))]
            let merged = left + right
            guard !known.contains(merged), merged.count <= 16 else { continue }
            known.insert(merged)
            tokens.append(merged)
            merges.append((left, right))
        }

        func quoted(_ s: String) -> String {
            var out = "\""
            for scalar in s.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                default:
                    if scalar.value < 0x20 {
                        out += String(format: "\\u%04x", scalar.value)
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
            return out + "\""
        }

        var text = #"{"version":"1.0","added_tokens":[{"id":"#
        text += "\(tokens.count)"
        text += #","content":"<|endoftext|>","special":true,"normalized":false}],"normalizer":null,"#
        text += #""pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},"#
        text += #""post_processor":null,"decoder":{"type":"ByteLevel"},"#
        text += #""model":{"type":"BPE","dropout":null,"unk_token":null,"ignore_merges":false,"vocab":{"#
        text += tokens.enumerated().map { "\(quoted($0.element)):\($0.offset)" }.joined(separator: ",")
        text += #"},"merges":["#
        text += merges.map { "[\(quoted($0.0)),\(quoted($0.1))]" }.joined(separator: ",")
        text += "]}}"
        return (Data(text.utf8), tokens.count + 1)
    }

    @Test func loads150kVocabulary() throws {
        let (json, vocabularySize) = Self.synthesize()
        let clock = ContinuousClock()
        var tokenizer: Tokenizer?
        let elapsed = try clock.measure {
            tokenizer = try Tokenizer(data: json)
        }
        let loaded = try #require(tokenizer)
        #expect(loaded.vocabSize == vocabularySize)
        #expect(vocabularySize > 150_000)
        print("[large-vocab] \(vocabularySize) tokens, \(Self.mergeCount) merges, \(json.count / 1024) KiB of JSON: loaded in \(elapsed)")

        // It works: text round-trips, and merges make tokens longer than one byte.
        let text = "the rain in Spain stays mainly 42.5, <|endoftext|> naïve 😀"
        let ids = loaded.encode(text)
        #expect(loaded.decode(ids) == text)
        #expect(ids.count < text.utf8.count)
        #expect(ids.contains(vocabularySize - 1))  // <|endoftext|>

        let longText = String(repeating: "Once upon a time, 123 tokens were merged at speed. ", count: 400)
        var encoded: [Int] = []
        let encodeTime = clock.measure { encoded = loaded.encode(longText) }
        #expect(loaded.decode(encoded) == longText)
        print("[large-vocab] encoded \(longText.utf8.count) bytes into \(encoded.count) tokens in \(encodeTime)")
    }
}
