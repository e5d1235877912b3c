/// The chat formats of the looped-model families, rendered natively (no Jinja interpreter).
///
/// A checkpoint's `tokenizer_config.json` carries its chat template as Jinja source;
/// ``detect(chatTemplateString:fallback:)`` recognises which of these formats it is, and
/// ``init(named:)`` picks one by name (for a `--template` option).
public enum ChatTemplate: String, Sendable, CaseIterable {
    /// ChatML (Ouro, Qwen3/LoopUS): `<|im_start|>{role}\n{content}<|im_end|>\n` per message;
    /// generation prompt `<|im_start|>assistant\n`.
    case chatml = "chatml"
    /// ChatML whose generation prompt also opens a reasoning block: `<|im_start|>assistant\n<think>\n`
    /// (Ouro-Thinking).
    case chatmlThink = "chatml-think"
    /// Huginn-0125: `<|begin_text|>`, then `<|begin_header|>{role}<|end_header|>\n\n{content}<|end_turn|>`
    /// per message; the assistant's role is written `Huginn`; generation prompt
    /// `<|begin_header|>Huginn<|end_header|>\n\n`.
    case huginn = "huginn"

    /// The template's name, as accepted by ``init(named:)``.
    public var name: String { rawValue }

    /// Picks a template by name: `chatml`, `chatml-think` or `huginn` (case-insensitive).
    /// - Throws: ``TokenizerError/unknownChatTemplate(_:)`` naming the known templates.
    public init(named name: String) throws {
        guard let template = ChatTemplate(rawValue: name.lowercased()) else {
            let known = ChatTemplate.allCases.map(\.name).joined(separator: ", ")
            throw TokenizerError.unknownChatTemplate("unknown chat template \"\(name)\" (known templates: \(known))")
        }
        self = template
    }

    /// Works out a model's chat format.
    ///
    /// The Jinja source from `tokenizer_config.json` is recognised by its markers: `<|im_start|>`
    /// means ChatML (``chatmlThink`` when it also mentions `<think>`), `<|begin_header|>` means
    /// Huginn. Without a template, or with one that has neither marker, the family's documented
    /// format is used: `fallback`, a template name the model's family declares
    /// (`ModelInfo.chatTemplate`: Ouro, LoopUS and Qwen3 ``chatml``, Huginn ``huginn``).
    /// - Throws: ``TokenizerError/unknownChatTemplate(_:)`` when neither source decides.
    public static func detect(chatTemplateString: String?, fallback: String?) throws -> ChatTemplate {
        if let source = chatTemplateString {
            if source.contains("<|im_start|>") {
                return source.contains("<think>") ? .chatmlThink : .chatml
            }
            if source.contains("<|begin_header|>") {
                return .huginn
            }
        }
        if let fallback, let t = ChatTemplate.allCases.first(where: { $0.name == fallback }) { return t }
        let what = chatTemplateString == nil
            ? "no chat_template in tokenizer_config.json"
            : "the chat_template in tokenizer_config.json is not a known format"
        throw TokenizerError.unknownChatTemplate(
            "cannot tell the chat template: \(what) and the model's family has no default (pass a template name: \(ChatTemplate.allCases.map(\.name).joined(separator: ", ")))")
    }

    /// Writes a conversation as the model expects to read it.
    ///
    /// - Parameters:
    ///   - messages: the turns in order; roles are written as given (`system`, `user`,
    ///     `assistant`), except that Huginn writes `assistant` as `Huginn`.
    ///   - addGenerationPrompt: end with the header of a new assistant turn, so that the model
    ///     continues with its answer.
    public func render(messages: [(role: String, content: String)], addGenerationPrompt: Bool) -> String {
        var text = ""
        switch self {
        case .chatml, .chatmlThink:
            for message in messages {
                text += "<|im_start|>\(message.role)\n\(message.content)<|im_end|>\n"
            }
            if addGenerationPrompt {
                text += "<|im_start|>assistant\n"
                if self == .chatmlThink {
                    text += "<think>\n"
                }
            }
        case .huginn:
            text += "<|begin_text|>"
            for message in messages {
                let role = message.role == "assistant" ? "Huginn" : message.role
                text += "<|begin_header|>\(role)<|end_header|>\n\n\(message.content)<|end_turn|>"
            }
            if addGenerationPrompt {
                text += "<|begin_header|>Huginn<|end_header|>\n\n"
            }
        }
        return text
    }
}
