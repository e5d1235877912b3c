import Foundation
import LoopCore
import LoopEngine
import LoopTokenizer

/// The loaded model as the server uses it: requests become jobs (`prepare`, on the request's
/// task, using only immutable state), and jobs run on the decode worker's thread (`run`, the
/// only code that touches the `Model` and its generators).
public final class ServedModel: SequenceRunner, @unchecked Sendable {
    /// The id `/v1/models` lists and responses carry.
    public let name: String
    public let tokenizer: Tokenizer
    public let info: ModelInfo
    /// Positions the KV cache holds: the prompt plus the generated tokens must fit.
    public let context: Int
    /// Passes per token the model was loaded with (the most a request can ask for).
    public let passCount: Int
    public let backendName: String
    /// Token ids run 0..<vocab.
    public let vocab: Int
    let chatTemplate: ChatTemplate?
    let chatTemplateError: String?
    let stopTokens: Set<Int>
    let defaultExit: ExitPolicy
    let created = Int(Date().timeIntervalSince1970)
    let metrics: Metrics

    // Worker thread only.
    let model: Model
    private var generators: [KVPolicy: Generator] = [:]

    /// `directory`: where the model was loaded from (tokenizer, tokenizer_config.json,
    /// generation_config.json). `name`: the served id (default: the folder or file name).
    public init(model: Model, directory: URL, name: String? = nil, metrics: Metrics) throws {
        self.model = model
        self.metrics = metrics
        self.name = name ?? directory.deletingPathExtension().lastPathComponent
        tokenizer = try ModelFiles.tokenizer(at: directory)
        info = model.info
        context = model.layout.maxContext
        passCount = model.plan.passCount
        backendName = model.backend.name
        vocab = model.plan.vocab
        let tokConfig = ModelFiles.tokenizerConfig(at: directory)
        do {
            chatTemplate = try ChatTemplate.detect(chatTemplateString: tokConfig?.chatTemplate, fallback: model.info.chatTemplate)
            chatTemplateError = nil
        } catch {
            chatTemplate = nil
            chatTemplateError = "\(error)"
        }
        // As `loopvk run`: generation_config.json, tokenizer_config.json, the family's stops, config.json's eos ids.
        stopTokens = (try? stopTokenIDs(generationConfigURL: directory.appendingPathComponent("generation_config.json"),
                                        tokenizerConfig: tokConfig, tokenizer: tokenizer, familyStops: model.info.stopTokens))
            .map { $0.union(model.info.eosTokenIds) } ?? Set(model.info.eosTokenIds)
        // As `loopvk run`: the reference's default output is already the Q-exit rule.
        if model.info.exitRules.contains(.qExit), let q = model.info.earlyExitThreshold, q < 1 {
            defaultExit = .qExit(q)
        } else {
            defaultExit = .none
        }
    }

    /// The prompt's token ids (completions: the text as `loopvk run --prompt` encodes it;
    /// chat: the messages through the model's chat template).
    public func promptIDs(_ input: PromptInput) throws(APIError) -> [Int] {
        let ids: [Int]
        switch input {
        case .text(let s):
            ids = tokenizer.encode(s, addSpecialTokens: true)
        case .tokens(let t):
            for id in t where id < 0 || id >= vocab {
                throw .invalid("token id \(id) in 'prompt' is outside the vocabulary 0..<\(vocab)", param: "prompt", code: "invalid_value")
            }
            ids = t
        case .chat(let messages):
            guard let chatTemplate else {
                throw .invalid("this model has no chat template the server knows (\(chatTemplateError ?? "")); use /v1/completions", param: "messages")
            }
            let text = chatTemplate.render(messages: messages.map { (role: $0.role, content: $0.content) }, addGenerationPrompt: true)
            ids = tokenizer.encode(text, addSpecialTokens: true)
        }
        guard !ids.isEmpty else { throw .invalid("the prompt encodes to no tokens", param: "prompt", code: "invalid_value") }
        return ids
    }

    /// A request checked against this model and turned into a job.
    public func prepare(_ req: GenerationRequest) throws(APIError) -> GenerationJob {
        let arrival = DispatchTime.now().uptimeNanoseconds
        if let m = req.model, m != name {
            throw APIError(status: 404, message: "the model '\(m)' does not exist; this server serves '\(name)'", type: "invalid_request_error", param: "model", code: "model_not_found")
        }
        let prompt = try promptIDs(req.prompt)
        let promptParam = req.endpoint == .chatCompletions ? "messages" : "prompt"
        guard prompt.count < context else {
            throw .invalid("the prompt has \(prompt.count) tokens but the context holds \(context) positions (loopvk serve --context raises it, up to the model's limit)",
                           param: promptParam, code: "context_length_exceeded")
        }
        let maxTokens: Int
        if let m = req.maxTokens {
            guard m <= context else {
                throw .invalid("'max_tokens' is \(m) but the context holds \(context) positions", param: "max_tokens", code: "invalid_value")
            }
            guard prompt.count + m <= context else {
                throw .invalid("the context holds \(context) positions, but the prompt has \(prompt.count) tokens and 'max_tokens' asks for \(m) more",
                               param: "max_tokens", code: "context_length_exceeded")
            }
            maxTokens = m
        } else {
            // OpenAI's defaults: 16 for completions, the rest of the context for chat.
            maxTokens = req.endpoint == .completions ? min(16, context - prompt.count) : context - prompt.count
        }

        var options = GenerationOptions()
        options.maxTokens = maxTokens
        options.sampling = SamplingOptions(temperature: req.temperature, topK: req.topK, topP: req.topP, minP: req.minP,
                                           repetitionPenalty: req.repetitionPenalty, seed: req.seed ?? UInt64.random(in: 0...UInt64.max))
        do { try options.sampling.validate() } catch { throw .invalid("\(error)") }
        options.stopTokens = stopTokens
        options.ignoreEOS = req.ignoreEOS

        let kv = req.loop.kv ?? .latest
        options.kv = kv
        if let m = req.loop.minPasses {
            guard m <= passCount else { throw .invalid("'loop.min_passes' is \(m) but the model runs \(passCount) passes", param: "loop.min_passes", code: "invalid_value") }
            options.minPasses = m
        }
        var exit = defaultExit
        if let e = req.loop.exit {
            do { exit = try ExitPolicy.parse(e, info: info) } catch { throw .invalid("'loop.exit': \(Self.message(error))", param: "loop.exit", code: "invalid_value") }
        }
        if let p = req.loop.passes {
            guard p <= passCount else {
                throw .invalid("'loop.passes' is \(p) but the model was loaded with \(passCount) passes per token (loopvk serve --passes \(p) allows more)",
                               param: "loop.passes", code: "invalid_value")
            }
            if req.loop.exit != nil, exit != .none, p < passCount {
                throw .invalid("'loop.passes' \(p) with 'loop.exit' \(exit): an exit policy runs up to the loaded \(passCount) passes; give one of the two",
                               param: "loop.passes", code: "invalid_value")
            }
            if req.loop.exit == nil { exit = p == passCount ? .none : .fixed(p) }
        }
        options.exit = exit
        return GenerationJob(prompt: prompt, options: options, kv: kv, stop: req.stop, arrival: arrival)
    }

    static func message(_ error: any Error) -> String {
        if let e = error as? LoopError, case .invalidArgument(let m) = e { return m }
        return "\(error)"
    }

    func generator(_ kv: KVPolicy) -> Generator {
        if let g = generators[kv] { return g }
        let g = Generator(model: model, kv: kv)
        generators[kv] = g
        return g
    }

    /// Runs a job on the worker's thread: tokens become text deltas (stop strings removed),
    /// and returns the summary. A cancelled ticket stops at its next token.
    public func run(_ ticket: Ticket) -> GenerationEvent? {
        let job = ticket.job
        metrics.prompt(tokens: job.prompt.count)
        metrics.step(batchSize: 1)
        var detok = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: true)
        var matcher = StopMatcher(stops: job.stop)
        var last: UInt64?
        do {
            let result = try generator(job.kv).generate(prompt: job.prompt, options: job.options) { id, passes in
                let now = DispatchTime.now().uptimeNanoseconds
                if let last { metrics.interToken(seconds: Double(now - last) / 1e9) } else { metrics.firstToken(seconds: Double(now - job.arrival) / 1e9) }
                last = now
                metrics.token(passes: passes)
                let out = matcher.append(detok.append(id))
                if !out.isEmpty { ticket.send(.text(out)) }
                if ticket.isCancelled { return false }
                return !matcher.stopped
            }
            if ticket.isCancelled { metrics.cancelledRequest(); return nil }
            if !matcher.stopped {
                let rest = matcher.append(detok.flush()) + matcher.flush()
                if !rest.isEmpty { ticket.send(.text(rest)) }
            }
            let reason = matcher.stopped || result.stopReason == "eos" ? "stop" : "length"
            return .finished(CompletionSummary(finishReason: reason, usage: Usage(promptTokens: job.prompt.count, completionTokens: result.ids.count),
                                               passes: result.passes, exit: job.options.exit.description, kv: job.kv.rawValue))
        } catch {
            return .failed(.server("generation failed: \(Self.message(error))"))
        }
    }
}
