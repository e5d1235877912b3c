import Foundation
import LoopTokenizer
import Testing

@Suite("Chat templates and tokenizer configs")
struct ChatTemplateTests {
    let conversation: [(role: String, content: String)] = [
        (role: "system", content: "Be brief."),
        (role: "user", content: "Hi"),
        (role: "assistant", content: "Hello!"),
        (role: "user", content: "2+2?"),
    ]

    @Test func chatml() {
        let expected = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            + "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
        #expect(ChatTemplate.chatml.render(messages: conversation, addGenerationPrompt: false) == expected)
        #expect(ChatTemplate.chatml.render(messages: conversation, addGenerationPrompt: true) == expected + "<|im_start|>assistant\n")
        #expect(ChatTemplate.chatmlThink.render(messages: conversation, addGenerationPrompt: true)
            == expected + "<|im_start|>assistant\n<think>\n")
        #expect(ChatTemplate.chatmlThink.render(messages: conversation, addGenerationPrompt: false) == expected)
    }

    @Test func huginn() {
        let expected = "<|begin_text|><|begin_header|>system<|end_header|>\n\nBe brief.<|end_turn|>"
            + "<|begin_header|>user<|end_header|>\n\nHi<|end_turn|>"
            + "<|begin_header|>Huginn<|end_header|>\n\nHello!<|end_turn|>"
            + "<|begin_header|>user<|end_header|>\n\n2+2?<|end_turn|>"
        #expect(ChatTemplate.huginn.render(messages: conversation, addGenerationPrompt: false) == expected)
        #expect(ChatTemplate.huginn.render(messages: conversation, addGenerationPrompt: true)
            == expected + "<|begin_header|>Huginn<|end_header|>\n\n")
        #expect(ChatTemplate.huginn.render(messages: [], addGenerationPrompt: true)
            == "<|begin_text|><|begin_header|>Huginn<|end_header|>\n\n")
    }

    @Test func huginnPromptTokenizesToSpecialTokens() throws {
        let tokenizer = try Fixtures.tokenizer("split-bytelevel-bpe")
        let text = ChatTemplate.huginn.render(messages: [(role: "user", content: "Hello")], addGenerationPrompt: true)
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        #expect(Array(ids.prefix(2)) == [594, 596])  // <|begin_text|> <|begin_header|>
        #expect(ids.filter { tokenizer.specialTokenIDs.contains($0) }.count == 6)
        #expect(tokenizer.decode(ids) == text)
    }

    @Test func namedTemplates() throws {
        #expect(try ChatTemplate(named: "chatml") == .chatml)
        #expect(try ChatTemplate(named: "chatml-think") == .chatmlThink)
        #expect(try ChatTemplate(named: "Huginn") == .huginn)
        #expect(ChatTemplate.chatmlThink.name == "chatml-think")
        let error = #expect(throws: TokenizerError.self) { try ChatTemplate(named: "llama3") }
        #expect(error?.description.contains("llama3") == true)
        #expect(error?.description.contains("chatml-think") == true)
    }

    @Test func detection() throws {
        let qwen = "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}"
        let thinking = qwen + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}"
        let huginn = "{{ bos_token }}{% for message in messages %}{{ '<|begin_header|>' + message['role'] + '<|end_header|>\\n\\n' + message['content'] + '<|end_turn|>' }}{% endfor %}"
        #expect(try ChatTemplate.detect(chatTemplateString: qwen, fallback: "huginn") == .chatml)  // markers win
        #expect(try ChatTemplate.detect(chatTemplateString: thinking, fallback: "chatml") == .chatmlThink)
        #expect(try ChatTemplate.detect(chatTemplateString: huginn, fallback: "chatml") == .huginn)
        #expect(try ChatTemplate.detect(chatTemplateString: nil, fallback: "chatml") == .chatml)
        #expect(try ChatTemplate.detect(chatTemplateString: nil, fallback: "chatml") == .chatml)
        #expect(try ChatTemplate.detect(chatTemplateString: nil, fallback: "chatml") == .chatml)
        #expect(try ChatTemplate.detect(chatTemplateString: nil, fallback: "huginn") == .huginn)
        #expect(try ChatTemplate.detect(chatTemplateString: "{{ messages }}", fallback: "chatml") == .chatml)
        let error = #expect(throws: TokenizerError.self) {
            try ChatTemplate.detect(chatTemplateString: "[INST] {{ messages }} [/INST]", fallback: nil)
        }
        #expect(error?.description.contains("has no default") == true && error?.description.contains("chatml") == true)
        #expect(throws: TokenizerError.self) { try ChatTemplate.detect(chatTemplateString: nil, fallback: nil) }
    }

    @Test func tokenizerConfigVariants() throws {
        let json = """
            {"bos_token": {"content": "<|begin_text|>", "lstrip": false, "__type": "AddedToken"},
             "eos_token": "<|end_turn|>", "add_bos_token": true,
             "chat_template": [{"name": "tool_use", "template": "tools"},
                               {"name": "default", "template": "<|begin_header|>{{ x }}"}]}
            """
        let config = try TokenizerConfig(data: Data(json.utf8))
        #expect(config.bosToken == "<|begin_text|>")
        #expect(config.eosToken == "<|end_turn|>")
        #expect(config.addBOSToken == true)
        #expect(config.addEOSToken == nil)
        #expect(config.chatTemplate == "<|begin_header|>{{ x }}")
        #expect(config.namedChatTemplates == ["tool_use": "tools", "default": "<|begin_header|>{{ x }}"])
        #expect(try ChatTemplate.detect(chatTemplateString: config.chatTemplate, fallback: "huginn") == .huginn)

        let firstOnly = try TokenizerConfig(data: Data(#"{"chat_template": [{"name": "a", "template": "A"}, {"name": "b", "template": "B"}]}"#.utf8))
        #expect(firstOnly.chatTemplate == "A")

        let error = #expect(throws: TokenizerError.self) { try TokenizerConfig(data: Data(#"{"eos_token": 5}"#.utf8)) }
        #expect(error?.description.contains("eos_token") == true)
        #expect(throws: TokenizerError.self) { try TokenizerConfig(data: Data("{\"eos_token\": ".utf8)) }
    }

    @Test func stopTokensPerFamily() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("looptokenizer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        // Huginn-style tokenizer: specials at 594...599.
        let huginnTokenizer = try Fixtures.tokenizer("split-bytelevel-bpe")
        let generation = directory.appendingPathComponent("generation_config.json")
        try Data(#"{"eos_token_id": [595, 7], "bos_token_id": 594}"#.utf8).write(to: generation)
        let huginnStops = try stopTokenIDs(
            generationConfigURL: generation, tokenizerConfig: TokenizerConfig(eosToken: "<|end_text|>"),
            tokenizer: huginnTokenizer, familyStops: ["<|begin_text|>", "<|end_text|>", "<|end_turn|>"])
        #expect(huginnStops == [594, 595, 598, 7])

        // Ouro / LoopUS on a ChatML tokenizer; no generation config.
        let chatml = try Fixtures.tokenizer("bytelevel-bpe")
        let missing = directory.appendingPathComponent("absent.json")
        #expect(try stopTokenIDs(generationConfigURL: missing, tokenizerConfig: nil, tokenizer: chatml, familyStops: ["<|endoftext|>", "<|im_end|>"]) == [0, 2])
        #expect(try stopTokenIDs(generationConfigURL: nil, tokenizerConfig: nil, tokenizer: chatml, familyStops: ["<|im_end|>", "<|endoftext|>"]) == [0, 2])
        // A family token the tokenizer lacks is skipped.
        #expect(try stopTokenIDs(generationConfigURL: nil, tokenizerConfig: nil, tokenizer: huginnTokenizer, familyStops: ["<|im_end|>", "<|endoftext|>"]) == [])

        try Data(#"{"eos_token_id": 2}"#.utf8).write(to: generation)
        #expect(try stopTokenIDs(generationConfigURL: generation, tokenizerConfig: nil, tokenizer: chatml, familyStops: []) == [2])
        try Data(#"{"eos_token_id": "x"}"#.utf8).write(to: generation)
        #expect(throws: TokenizerError.self) {
            try stopTokenIDs(generationConfigURL: generation, tokenizerConfig: nil, tokenizer: chatml, familyStops: ["<|endoftext|>", "<|im_end|>"])
        }
    }
}
