import Foundation
import LoopTokenizer
import Testing

/// The tokenizer files of the looped-arith checkpoint (a trained Ouro-format model, GPT-2
/// ByteLevel pre-tokenizer, `<|endoftext|>` id 0).
@Suite("looped-arith checkpoint tokenizer")
struct LoopedArithTests {
    let tokenizer: Tokenizer

    init() throws {
        tokenizer = try Tokenizer(contentsOf: Fixtures.loopedArith.appendingPathComponent("tokenizer.json"))
    }

    @Test func promptEncodesAndDecodesBack() {
        let prompt = "Q: 6 plus 3 A:"
        let ids = tokenizer.encode(prompt)
        #expect(tokenizer.tokens(for: ids) == ["Q", ":", "Ġ6", "Ġplus", "Ġ3", "ĠA", ":"])
        #expect(ids == tokenizer.encode(prompt, addSpecialTokens: false))  // no post-processor
        #expect(tokenizer.decode(ids) == prompt)
    }

    @Test(arguments: [
        "Q: 8 plus 6 minus 0 A:", "Q: 9 plus 3 plus 6 plus 4 A:", "Q: 1 minus 7 plus 2 minus 5 plus 0 A:", " 9", " 4\n",
        "Q: 2 times 3 A: 6<|endoftext|>",
    ])
    func roundTrip(text: String) {
        let ids = tokenizer.encode(text)
        #expect(tokenizer.decode(ids) == text)
        #expect(!ids.isEmpty)
    }

    @Test func answerTokensAndStops() throws {
        #expect(tokenizer.encode(" 9") == [tokenizer.id(for: "Ġ9")!])
        #expect(tokenizer.encode("<|endoftext|>") == [0])
        #expect(tokenizer.decode(tokenizer.encode("Q: 6 plus 3 A: 9<|endoftext|>"), skipSpecialTokens: true) == "Q: 6 plus 3 A: 9")
        #expect(tokenizer.vocabSize == 283)

        let config = try TokenizerConfig(contentsOf: Fixtures.loopedArith.appendingPathComponent("tokenizer_config.json"))
        #expect(config.eosToken == "<|endoftext|>")
        #expect(config.bosToken == "<|endoftext|>")
        #expect(config.padToken == "<|endoftext|>")
        #expect(config.unkToken == nil)
        #expect(config.addBOSToken == false)
        #expect(config.chatTemplate == nil)

        let stops = try stopTokenIDs(
            generationConfigURL: Fixtures.loopedArith.appendingPathComponent("generation_config.json"),
            tokenizerConfig: config, tokenizer: tokenizer, familyStops: ["<|endoftext|>", "<|im_end|>"])
        #expect(stops == [0, 2])  // <|endoftext|> (generation config, tokenizer config, family), <|im_end|> (family)

        #expect(try ChatTemplate.detect(chatTemplateString: config.chatTemplate, fallback: "chatml") == .chatml)
        let chat = ChatTemplate.chatml.render(messages: [(role: "user", content: "Q: 6 plus 3 A:")], addGenerationPrompt: true)
        let ids = tokenizer.encode(chat)
        #expect(ids.first == 1)  // <|im_start|>
        #expect(ids.filter { $0 == 2 }.count == 1)  // one <|im_end|>
        #expect(tokenizer.decode(ids) == chat)
    }
}
