import Foundation

/// Server-sent events as OpenAI streams them: one `data: {json}\n\n` event per chunk, then
/// `data: [DONE]\n\n`.
public enum SSE {
    /// One event carrying `json` (serialized on one line: JSON escapes newlines in strings).
    public static func event(_ json: JSONValue) -> String { "data: " + json.serialized + "\n\n" }
    public static let done = "data: [DONE]\n\n"
    public static let contentType = "text/event-stream"
}

/// Token counts of one request.
public struct Usage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public init(promptTokens: Int, completionTokens: Int) { self.promptTokens = promptTokens; self.completionTokens = completionTokens }
    public var json: JSONValue {
        .obj(["prompt_tokens": .int(promptTokens), "completion_tokens": .int(completionTokens), "total_tokens": .int(promptTokens + completionTokens)])
    }
}

/// How a finished generation went, as the response reports it.
public struct CompletionSummary: Sendable, Equatable {
    /// OpenAI's finish_reason: "stop" (end of sequence or a stop string) or "length".
    public var finishReason: String
    public var usage: Usage
    /// Passes each generated token ran.
    public var passes: [Int]
    public var exit: String
    public var kv: String
    public init(finishReason: String, usage: Usage, passes: [Int], exit: String, kv: String) {
        self.finishReason = finishReason; self.usage = usage; self.passes = passes; self.exit = exit; self.kv = kv
    }
    /// The `loop` member of a response: what the loop did.
    public var loopJSON: JSONValue {
        let mean = passes.isEmpty ? 0 : Double(passes.reduce(0, +)) / Double(passes.count)
        return .obj(["passes": .array(passes.map { .int($0) }), "mean_passes": .double((mean * 1000).rounded() / 1000),
                     "exit": .string(exit), "kv": .string(kv)])
    }
}

/// The JSON bodies of completions and chat completions, whole and as stream chunks, in OpenAI's shapes.
public struct ResponseBuilder: Sendable {
    public var id: String
    public var created: Int
    public var model: String
    public var chat: Bool

    public init(id: String, created: Int, model: String, chat: Bool) {
        self.id = id; self.created = created; self.model = model; self.chat = chat
    }

    /// A fresh id: `cmpl-…` or `chatcmpl-…`.
    public static func newID(chat: Bool) -> String {
        (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
    }

    var object: String { chat ? "chat.completion" : "text_completion" }
    var chunkObject: String { chat ? "chat.completion.chunk" : "text_completion" }

    /// The non-streamed response.
    public func complete(text: String, summary: CompletionSummary) -> JSONValue {
        let choice: JSONValue = chat
            ? .obj(["index": .int(0), "message": .obj(["role": .string("assistant"), "content": .string(text)]),
                    "logprobs": .null, "finish_reason": .string(summary.finishReason)])
            : .obj(["text": .string(text), "index": .int(0), "logprobs": .null, "finish_reason": .string(summary.finishReason)])
        return .obj(["id": .string(id), "object": .string(object), "created": .int(created), "model": .string(model),
                     "choices": .array([choice]), "usage": summary.usage.json, "loop": summary.loopJSON])
    }

    /// Chat's first chunk: the assistant role, no text yet.
    public func roleChunk() -> JSONValue {
        chunk(delta: .obj(["role": .string("assistant"), "content": .string("")]), text: "", finishReason: nil)
    }

    /// A chunk of generated text.
    public func textChunk(_ text: String) -> JSONValue {
        chunk(delta: .obj(["content": .string(text)]), text: text, finishReason: nil)
    }

    /// The last chunk with choices: the finish reason (and the loop's report).
    public func finishChunk(_ summary: CompletionSummary) -> JSONValue {
        guard case .object(var members) = chunk(delta: .obj([:]), text: "", finishReason: summary.finishReason) else { return .null }
        members.append(.init("loop", summary.loopJSON))
        return .object(members)
    }

    /// `stream_options.include_usage`: a last chunk with no choices and the usage.
    public func usageChunk(_ usage: Usage) -> JSONValue {
        .obj(["id": .string(id), "object": .string(chunkObject), "created": .int(created), "model": .string(model),
              "choices": .array([]), "usage": usage.json])
    }

    func chunk(delta: JSONValue, text: String, finishReason: String?) -> JSONValue {
        let fr: JSONValue = finishReason.map { .string($0) } ?? .null
        let choice: JSONValue = chat
            ? .obj(["index": .int(0), "delta": delta, "logprobs": .null, "finish_reason": fr])
            : .obj(["text": .string(text), "index": .int(0), "logprobs": .null, "finish_reason": fr])
        return .obj(["id": .string(id), "object": .string(chunkObject), "created": .int(created), "model": .string(model),
                     "choices": .array([choice])])
    }
}
