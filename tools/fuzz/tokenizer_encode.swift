// libFuzzer target: the text given to encode, with the two fixture tokenizers (GPT-2 style
// ByteLevel, and a tiktoken-style Split + ByteLevel). Both have every byte in their vocabulary
// and no normalizer, so decode(encode(text)) must give the text back exactly; the streaming
// detokenizer must agree with decode. Build and run: tools/fuzz/run.sh (LoopTokenizer module).
//
// LOOPVK_FUZZ_TOKENIZERS: the folder holding bytelevel-bpe/ and split-bytelevel-bpe/
// (default Tests/Fixtures/tokenizers).

import Foundation

private let fixtureTokenizers: [Tokenizer] = {
    let root = URL(fileURLWithPath: ProcessInfo.processInfo.environment["LOOPVK_FUZZ_TOKENIZERS"] ?? "Tests/Fixtures/tokenizers")
    return ["bytelevel-bpe", "split-bytelevel-bpe"].map { name in
        let url = root.appendingPathComponent(name).appendingPathComponent("tokenizer.json")
        guard let t = try? Tokenizer(contentsOf: url) else { fatalError("cannot load \(url.path) (set LOOPVK_FUZZ_TOKENIZERS)") }
        return t
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func tokenizerEncodeFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = data.map { String(decoding: UnsafeBufferPointer(start: $0, count: size), as: UTF8.self) } ?? ""
    for tokenizer in fixtureTokenizers {
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        for id in ids where tokenizer.token(for: id) == nil {
            fatalError("encode produced id \(id), which names no token")
        }
        let decoded = tokenizer.decode(ids)
        if decoded != text {
            fatalError("round trip failed: \(text.debugDescription) -> \(ids) -> \(decoded.debugDescription)")
        }
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        var pieces = ""
        for id in ids { pieces += stream.append(id) }
        pieces += stream.flush()
        if pieces != decoded { fatalError("streaming decode \(pieces.debugDescription) != decode \(decoded.debugDescription)") }
        let withSpecial = tokenizer.encode(text, addSpecialTokens: true)
        _ = tokenizer.decode(withSpecial, skipSpecialTokens: true)
    }
    return 0
}
