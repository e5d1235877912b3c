import Foundation
import LoopEngine

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?
    /// Seconds for a `Retry-After` header (429).
    public var retryAfter: Int?

    public init(status: Int, message: String, type: String, param: String? = nil, code: String? = nil, retryAfter: Int? = nil) {
        self.status = status; self.message = message; self.type = type; self.param = param; self.code = code; self.retryAfter = retryAfter
    }

    /// 400: the request cannot be served as written.
    public static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// 429: the queue is full.
    public static func queueFull(depth: Int) -> APIError {
        APIError(status: 429, message: "the server's request queue is full (\(depth) waiting); retry later", type: "rate_limit_error",
                 code: "rate_limit_exceeded", retryAfter: 1)
    }

    public static func server(_ message: String) -> APIError {
        APIError(status: 500, message: message, type: "server_error")
    }

    public var json: JSONValue {
        .obj(["error": .obj([
            "message": .string(message), "type": .string(type),
            "param": param.map { .string($0) } ?? .null, "code": code.map { .string($0) } ?? .null,
        ])])
    }

    public var description: String { "\(status) \(type): \(message)" }
}

public enum Endpoint: String, Sendable, CaseIterable {
    case completions = "/v1/completions"
    case chatCompletions = "/v1/chat/completions"
    case models = "/v1/models"
    case health = "/health"
    case metrics = "/metrics"
}

public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) { self.role = role; self.content = content }
}

/// What a request asks the model to continue.
public enum PromptInput: Sendable, Equatable {
    /// Completions: text through the tokenizer.
    case text(String)
    /// Completions: token ids as given.
    case tokens([Int])
    /// Chat: messages through the model's chat template.
    case chat([ChatMessage])
}

/// The looped-model extension: `"loop": {"passes": N, "exit": "q-exit:0.5", "kv": "latest", "min_passes": M}`.
public struct LoopRequestOptions: Sendable, Equatable {
    public var passes: Int?
    public var exit: String?
    public var kv: KVPolicy?
    public var minPasses: Int?
    public init(passes: Int? = nil, exit: String? = nil, kv: KVPolicy? = nil, minPasses: Int? = nil) {
        self.passes = passes; self.exit = exit; self.kv = kv; self.minPasses = minPasses
    }
}

/// A completions or chat completions request, parsed and checked for everything that does not
/// depend on the model (types, ranges, unsupported features).
public struct GenerationRequest: Sendable, Equatable {
    public var endpoint: Endpoint
    public var model: String?
    public var prompt: PromptInput
    public var maxTokens: Int?
    public var temperature: Float = 1
    public var topP: Float = 1
    public var topK: Int = 0
    public var minP: Float = 0
    public var repetitionPenalty: Float = 1
    public var seed: UInt64?
    public var stop: [String] = []
    public var stream = false
    public var includeUsageInStream = false
    /// vLLM's extension: keep generating past end-of-sequence tokens (up to max_tokens).
    public var ignoreEOS = false
    public var loop = LoopRequestOptions()

    /// Largest `max_tokens` accepted before the model's context is known.
    public static let maxTokensLimit = 1 << 20

    /// Fields accepted and ignored (they change nothing here).
    static let ignored: Set<String> = ["user", "metadata", "store", "service_tier", "parallel_tool_calls"]

    /// Parses a request body for `endpoint` (`.completions` or `.chatCompletions`).
    public static func parse(_ body: Data, endpoint: Endpoint) throws(APIError) -> GenerationRequest {
        let root: JSONValue
        do { root = try JSONValue.parse(body) } catch {
            throw .invalid("the request body is not valid JSON (\(Self.describe(error)))", code: "invalid_json")
        }
        return try parse(root, endpoint: endpoint)
    }

    static func describe(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let ctx) = error {
            return (ctx.underlyingError.map { "\($0)" } ?? ctx.debugDescription).replacingOccurrences(of: "\n", with: " ")
        }
        return "\(error)"
    }

    public static func parse(_ root: JSONValue, endpoint: Endpoint) throws(APIError) -> GenerationRequest {
        guard case .object(let members) = root else { throw .invalid("the request body must be a JSON object, got \(root.kindName)") }
        let chat = endpoint == .chatCompletions
        var fields: [String: JSONValue] = [:]
        for m in members { fields[m.key] = m.value }

        // Fields that would change the answer's shape or meaning and are not implemented.
        func unsupported(_ name: String, _ why: String) throws(APIError) {
            throw .invalid("'\(name)' is not supported by this server: \(why)", param: name, code: "unsupported_parameter")
        }
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
            switch name {
            case "model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p", "repetition_penalty",
                 "seed", "stop", "stream", "stream_options", "n", "loop", "ignore_eos", "presence_penalty", "frequency_penalty":
                continue
            case "prompt" where !chat, "messages" where chat:
                continue
            case "logprobs", "top_logprobs":
                if value == .null || value == .bool(false) || (!chat && value == .int(0) && name == "logprobs") { continue }
                try unsupported(name, "log probabilities are not returned")
            case "echo" where !chat:
                if value == .null || value == .bool(false) { continue }
                try unsupported(name, "the prompt is not echoed")
            case "suffix" where !chat:
                if value == .null { continue }
                try unsupported(name, "insertion is not implemented")
            case "best_of" where !chat:
                if value == .null || value == .int(1) { continue }
                try unsupported(name, "only one completion is generated per request")
            case "logit_bias":
                if value == .null || value == .object([]) { continue }
                try unsupported(name, "logit biases are not applied")
            case "tools", "tool_choice", "functions", "function_call":
                if value == .null || value == .array([]) || value == .string("none") { continue }
                try unsupported(name, "tool calls are not implemented")
            case "response_format":
                if value == .null || value["type"] == .string("text") { continue }
                try unsupported(name, "only plain text responses are produced")
            case "modalities", "audio", "prediction", "reasoning_effort", "web_search_options":
                if value == .null { continue }
                try unsupported(name, "not implemented")
            case _ where ignored.contains(name):
                continue
            default:
                throw .invalid("unrecognized request argument supplied: \(name)", param: name, code: "unknown_parameter")
            }
        }

        var req: GenerationRequest
        if chat {
            guard let messages = fields["messages"] else { throw .invalid("'messages' is required", param: "messages", code: "missing_required_parameter") }
            req = GenerationRequest(endpoint: endpoint, prompt: .chat(try parseMessages(messages)))
        } else {
            guard let prompt = fields["prompt"] else { throw .invalid("'prompt' is required", param: "prompt", code: "missing_required_parameter") }
            req = GenerationRequest(endpoint: endpoint, prompt: try parsePrompt(prompt))
        }

        func string(_ name: String) throws(APIError) -> String? {
            switch fields[name] {
            case nil, .null?: return nil
            case .string(let s)?: return s
            case let v?: throw .invalid("'\(name)' must be a string, got \(v.kindName)", param: name, code: "invalid_type")
            }
        }
        func int(_ name: String, _ range: ClosedRange<Int>) throws(APIError) -> Int? {
            switch fields[name] {
            case nil, .null?: return nil
            case .int(let i)?:
                guard range.contains(i) else { throw .invalid("'\(name)' must be in \(range.lowerBound)...\(range.upperBound), got \(i)", param: name, code: "invalid_value") }
                return i
            case .double(let d)? where d == d.rounded() && abs(d) < 9e15:
                guard range.contains(Int(d)) else { throw .invalid("'\(name)' must be in \(range.lowerBound)...\(range.upperBound), got \(Int(d))", param: name, code: "invalid_value") }
                return Int(d)
            case let v?: throw .invalid("'\(name)' must be an integer, got \(v.kindName)", param: name, code: "invalid_type")
            }
        }
        func number(_ name: String, _ range: ClosedRange<Double>, openLower: Bool = false) throws(APIError) -> Float? {
            let d: Double
            switch fields[name] {
            case nil, .null?: return nil
            case .int(let i)?: d = Double(i)
            case .double(let x)?: d = x
            case let v?: throw .invalid("'\(name)' must be a number, got \(v.kindName)", param: name, code: "invalid_type")
            }
            guard range.contains(d), !(openLower && d == range.lowerBound) else {
                throw .invalid("'\(name)' must be in \(openLower ? "(" : "[")\(range.lowerBound), \(range.upperBound)], got \(d)", param: name, code: "invalid_value")
            }
            return Float(d)
        }
        func bool(_ name: String) throws(APIError) -> Bool? {
            switch fields[name] {
            case nil, .null?: return nil
            case .bool(let b)?: return b
            case let v?: throw .invalid("'\(name)' must be a boolean, got \(v.kindName)", param: name, code: "invalid_type")
            }
        }

        req.model = try string("model")
        let maxTokens = try int("max_tokens", 0...Self.maxTokensLimit)
        let maxCompletion = try int("max_completion_tokens", 0...Self.maxTokensLimit)
        if let a = maxTokens, let b = maxCompletion, a != b {
            throw .invalid("'max_tokens' (\(a)) and 'max_completion_tokens' (\(b)) disagree", param: "max_tokens", code: "invalid_value")
        }
        req.maxTokens = maxTokens ?? maxCompletion
        if let t = try number("temperature", 0...2) { req.temperature = t }
        if let p = try number("top_p", 0...1, openLower: true) { req.topP = p }
        if let k = try int("top_k", -1...1_000_000) { req.topK = max(k, 0) }
        if let p = try number("min_p", 0...1) { req.minP = p }
        if let r = try number("repetition_penalty", 0...10, openLower: true) { req.repetitionPenalty = r }
        for name in ["presence_penalty", "frequency_penalty"] {
            if let v = try number(name, -2...2), v != 0 { try unsupported(name, "only 0 is accepted (see repetition_penalty)") }
        }
        if let s = try int("seed", Int.min...Int.max) { req.seed = UInt64(bitPattern: Int64(s)) }
        if let n = try int("n", Int.min...Int.max), n != 1 {
            throw .invalid("'n' must be 1: this server generates one choice per request (got \(n))", param: "n", code: "invalid_value")
        }
        req.stream = try bool("stream") ?? false
        req.ignoreEOS = try bool("ignore_eos") ?? false
        switch fields["stream_options"] {
        case nil, .null?: break
        case .object(let opts)?:
            for o in opts {
                guard o.key == "include_usage" else { throw .invalid("unrecognized stream option: \(o.key)", param: "stream_options", code: "unknown_parameter") }
                guard case .bool(let b) = o.value else { throw .invalid("'stream_options.include_usage' must be a boolean, got \(o.value.kindName)", param: "stream_options", code: "invalid_type") }
                req.includeUsageInStream = b
            }
            if !req.stream && req.includeUsageInStream { throw .invalid("'stream_options' is only allowed with stream: true", param: "stream_options") }
        case let v?: throw .invalid("'stream_options' must be an object, got \(v.kindName)", param: "stream_options", code: "invalid_type")
        }
        req.stop = try parseStop(fields["stop"])
        if let loop = fields["loop"] { req.loop = try parseLoop(loop) }
        return req
    }

    static func parsePrompt(_ v: JSONValue) throws(APIError) -> PromptInput {
        switch v {
        case .string(let s):
            guard !s.isEmpty else { throw .invalid("'prompt' is empty", param: "prompt", code: "invalid_value") }
            return .text(s)
        case .array(let items):
            if items.count == 1, case .string(let s) = items[0] { return try parsePrompt(.string(s)) }
            if !items.isEmpty, items.allSatisfy({ if case .int = $0 { true } else { false } }) {
                let ids = items.compactMap { if case .int(let i) = $0 { i } else { nil } }
                return .tokens(ids)
            }
            if items.count > 1, items.allSatisfy({ if case .string = $0 { true } else { false } }) {
                throw .invalid("'prompt' holds \(items.count) prompts; this server takes one per request", param: "prompt", code: "unsupported_parameter")
            }
            throw .invalid("'prompt' must be a string, a list of one string or a list of token ids", param: "prompt", code: "invalid_type")
        default:
            throw .invalid("'prompt' must be a string, got \(v.kindName)", param: "prompt", code: "invalid_type")
        }
    }

    static func parseMessages(_ v: JSONValue) throws(APIError) -> [ChatMessage] {
        guard case .array(let items) = v else { throw .invalid("'messages' must be an array, got \(v.kindName)", param: "messages", code: "invalid_type") }
        guard !items.isEmpty else { throw .invalid("'messages' is empty", param: "messages", code: "invalid_value") }
        var out: [ChatMessage] = []
        for (i, item) in items.enumerated() {
            let p = "messages[\(i)]"
            guard case .object(let members) = item else { throw .invalid("'\(p)' must be an object, got \(item.kindName)", param: p, code: "invalid_type") }
            for m in members where !["role", "content", "name"].contains(m.key) {
                throw .invalid("'\(p).\(m.key)' is not supported (tool calls, audio and refusals are not implemented)", param: "\(p).\(m.key)", code: "unsupported_parameter")
            }
            guard case .string(var role)? = item["role"] else { throw .invalid("'\(p).role' must be a string", param: "\(p).role", code: "invalid_type") }
            if role == "developer" { role = "system" }
            guard ["system", "user", "assistant"].contains(role) else {
                throw .invalid("'\(p).role' must be system, developer, user or assistant, got \(role)", param: "\(p).role", code: "invalid_value")
            }
            let content: String
            switch item["content"] {
            case .string(let s)?: content = s
            case .array(let parts)?:
                var text = ""
                for (j, part) in parts.enumerated() {
                    guard part["type"] == .string("text"), case .string(let t)? = part["text"] else {
                        throw .invalid("'\(p).content[\(j)]' must be a {\"type\": \"text\", \"text\": ...} part (images and audio are not supported)",
                                       param: "\(p).content", code: "unsupported_parameter")
                    }
                    text += t
                }
                content = text
            case let c?: throw .invalid("'\(p).content' must be a string or a list of text parts, got \(c.kindName)", param: "\(p).content", code: "invalid_type")
            case nil: throw .invalid("'\(p).content' is required", param: "\(p).content", code: "missing_required_parameter")
            }
            out.append(ChatMessage(role: role, content: content))
        }
        return out
    }

    static func parseStop(_ v: JSONValue?) throws(APIError) -> [String] {
        let list: [String]
        switch v {
        case nil, .null?: return []
        case .string(let s)?: list = [s]
        case .array(let items)?:
            list = try items.map { (item: JSONValue) throws(APIError) -> String in
                guard case .string(let s) = item else { throw .invalid("'stop' must be a string or a list of strings, got a list holding \(item.kindName)", param: "stop", code: "invalid_type") }
                return s
            }
        case let x?: throw .invalid("'stop' must be a string or a list of strings, got \(x.kindName)", param: "stop", code: "invalid_type")
        }
        guard list.count <= 16 else { throw .invalid("'stop' holds \(list.count) strings; at most 16", param: "stop", code: "invalid_value") }
        guard !list.contains("") else { throw .invalid("'stop' strings must not be empty", param: "stop", code: "invalid_value") }
        return list
    }

    static func parseLoop(_ v: JSONValue) throws(APIError) -> LoopRequestOptions {
        if v == .null { return LoopRequestOptions() }
        guard case .object(let members) = v else { throw .invalid("'loop' must be an object, got \(v.kindName)", param: "loop", code: "invalid_type") }
        var out = LoopRequestOptions()
        for m in members {
            let p = "loop.\(m.key)"
            switch (m.key, m.value) {
            case (_, .null): continue
            case ("passes", .int(let n)), ("min_passes", .int(let n)):
                guard n >= 1, n <= 256 else { throw .invalid("'\(p)' must be in 1...256, got \(n)", param: p, code: "invalid_value") }
                if m.key == "passes" { out.passes = n } else { out.minPasses = n }
            case ("exit", .string(let s)):
                guard !s.isEmpty else { throw .invalid("'\(p)' is empty", param: p, code: "invalid_value") }
                out.exit = s
            case ("kv", .string(let s)):
                guard let k = KVPolicy(rawValue: s) else { throw .invalid("'\(p)' must be latest, shared or reference, got \(s)", param: p, code: "invalid_value") }
                out.kv = k
            case ("passes", _), ("min_passes", _):
                throw .invalid("'\(p)' must be an integer, got \(m.value.kindName)", param: p, code: "invalid_type")
            case ("exit", _), ("kv", _):
                throw .invalid("'\(p)' must be a string, got \(m.value.kindName)", param: p, code: "invalid_type")
            default:
                throw .invalid("unrecognized loop option: \(m.key) (known: passes, exit, kv, min_passes)", param: p, code: "unknown_parameter")
            }
        }
        return out
    }
}
