// libFuzzer target: Tokenizer(data:) on arbitrary tokenizer.json bytes; a tokenizer that loads
// encodes and decodes a fixed set of strings and ids. Build and run: tools/fuzz/run.sh
// (compiled into the LoopTokenizer module).

import Foundation

private let sampleTexts = [
    "Hello world", "  two  spaces\n\ttab", "x = 12345 + 6789;", "café naïve", "数字 😀!",
    "<|im_start|>user\nhi<|im_end|>", "", "\u{0}\u{7F}\u{FFFD}",
]

private let sampleIDs: [[Int]] = [[], [0], [1, 2, 3], [-1, Int.max, Int.min], [255, 256, 257, 1 << 22]]

@_cdecl("LLVMFuzzerTestOneInput")
public func tokenizerLoadFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Data(bytes: $0, count: size) } ?? Data()
    let tokenizer: Tokenizer
    do {
        tokenizer = try Tokenizer(data: bytes)
    } catch let error as TokenizerError {
        let text = error.description
        if text.isEmpty || text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            fatalError("TokenizerError description is not one clean line: \(text.debugDescription)")
        }
        return 0
    } catch {
        fatalError("Tokenizer(data:) threw \(type(of: error)), not a TokenizerError: \(error)")
    }
    for text in sampleTexts {
        for special in [false, true] {
            let ids = tokenizer.encode(text, addSpecialTokens: special)
            _ = tokenizer.decode(ids)
            _ = tokenizer.decode(ids, skipSpecialTokens: true)
            _ = tokenizer.tokens(for: ids)
            for id in ids where tokenizer.token(for: id) == nil {
                fatalError("encode produced id \(id), which names no token")
            }
        }
    }
    for ids in sampleIDs {
        let whole = tokenizer.decode(ids)
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        var pieces = ""
        for id in ids { pieces += stream.append(id) }
        pieces += stream.flush()
        if pieces != whole { fatalError("streaming decode \(pieces.debugDescription) != decode \(whole.debugDescription)") }
    }
    _ = tokenizer.vocabSize
    return 0
}
