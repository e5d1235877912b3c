import ArgumentParser
import Foundation
import LoopCore
import LoopEngine
import LoopTokenizer

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text, streaming tokens as they come.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions

    @Flag(help: "Wrap the prompt in the model's chat template.") var chat = false
    @Option(help: "System message (with --chat).") var system: String?
    @Option(help: "Chat template override: chatml, chatml-think, huginn.") var template: String?
    @Option(help: "Exit policy POLICY[:THRESHOLD]: none, fixed:K, q-exit:Q (Ouro), kl, minp-kl, entropy-diff, latent-diff, cosine, argmax-stability (Huginn), threshold:Q, cdf:Q, convergence:EPS (LoopUS).")
    var exit: String?
    @Option(help: "Passes a token runs at least before an exit policy may stop it.") var minPasses: Int = 1
    @Option(help: "KV of skipped passes: latest, shared, reference.") var kv: String = "latest"
    @Option(help: "Most tokens to generate.") var maxTokens: Int = 64
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 0
    @Option(help: "Keep the K most likely tokens (0 = off).") var topK: Int = 0
    @Option(help: "Nucleus sampling mass (1 = off).") var topP: Float = 1
    @Option(help: "Drop tokens below P x the top probability (0 = off).") var minP: Float = 0
    @Option(help: "Repetition penalty (1 = off).") var repetitionPenalty: Float = 1
    @Option(help: "Random seed (same seed, same output).") var seed: UInt64 = 0
    @Option(help: "Stop when the generated text contains this string (repeatable).") var stop: [String] = []
    @Flag(help: "Keep going past end-of-sequence tokens.") var ignoreEos = false
    @Flag(help: "Huginn: start each token's recurrence from the previous token's final state.") var warmStart = false
    @Flag(help: "Print one JSON object (ids, text, per-token passes, timings) instead of streaming.") var json = false

    func validate() throws { try promptOptions.requireOne() }

    func run() throws {
        guard let kvPolicy = KVPolicy(rawValue: kv) else { throw ValidationError("--kv must be latest, shared or reference") }
        guard maxTokens >= 0, maxTokens <= 1_000_000 else { throw ValidationError("--max-tokens must be in 0...1000000") }
        guard minPasses >= 1 else { throw ValidationError("--min-passes must be >= 1") }
        if let p = modelOptions.passes, p < 1 || p > 256 { throw ValidationError("--passes must be in 1...256") }
        let sampling = SamplingOptions(temperature: temperature, topK: topK, topP: topP, minP: minP, repetitionPenalty: repetitionPenalty, seed: seed)
        try sampling.validate()

        let dir = modelOptions.modelURL
        var tokenizer: Tokenizer?
        func tok() throws -> Tokenizer {
            if let tokenizer { return tokenizer }
            tokenizer = try loadTokenizer(dir)
            return tokenizer!
        }
        let tokConfig = ModelFiles.tokenizerConfig(at: dir)
        var chatRender: ((String) throws -> String)?
        if chat {
            chatRender = { text in
                // The family's default template, read before the weights load (the prompt's
                // length sizes the KV cache).
                let t = try template.map { try ChatTemplate(named: $0) }
                    ?? ChatTemplate.detect(chatTemplateString: tokConfig?.chatTemplate,
                                           fallback: try ModelFamily.plan(checkpoint: try Checkpoint.open(dir), passes: modelOptions.passes, maxContext: 1).1.chatTemplate)
                var messages: [(role: String, content: String)] = []
                if let system { messages.append((role: "system", content: system)) }
                messages.append((role: "user", content: text))
                return t.render(messages: messages, addGenerationPrompt: true)
            }
        }
        let prompt = try promptOptions.resolve(tokenizer: tok, chat: chatRender)
        // KV cache and RoPE tables for the positions this run uses, in steps of 256.
        let needed = (prompt.count + maxTokens + 255) / 256 * 256
        let model = try modelOptions.load(quiet: json, neededContext: needed)

        var options = GenerationOptions()
        options.maxTokens = maxTokens
        options.sampling = sampling
        options.kv = kvPolicy
        options.minPasses = minPasses
        options.ignoreEOS = ignoreEos
        options.warmStart = warmStart
        options.stopStrings = stop
        if let exit {
            options.exit = try ExitPolicy.parse(exit, info: model.info)
        } else if model.info.exitRules.contains(.qExit), let q = model.info.earlyExitThreshold, q < 1 {
            options.exit = .qExit(q)     // the reference's default output is already the Q-exit rule
        }
        // Without a tokenizer (or with an unreadable generation_config.json) config.json's ids remain.
        options.stopTokens = (try? stopTokens(model: model, directory: dir, tokenizer: try tok(), tokenizerConfig: tokConfig))
            ?? Set(model.info.eosTokenIds)

        var detok = (try? tok()).map { StreamingDetokenizer(tokenizer: $0, skipSpecialTokens: true) }
        var text = ""
        let generator = Generator(model: model, kv: kvPolicy)
        let result = try generator.generate(prompt: prompt, options: options) { id, _ in
            guard var d = detok else {
                if !json { print(id, terminator: " "); fflush(nil) }
                return true
            }
            let piece = d.append(id)
            detok = d
            text += piece
            if !json { print(piece, terminator: ""); fflush(nil) }
            return !stop.contains { text.contains($0) }
        }
        if var d = detok {
            let rest = d.flush()
            text += rest
            if !json { print(rest, terminator: "") }
        }
        if json {
            let obj: [String: Any] = [
                "prompt_ids": prompt, "ids": result.ids, "text": text, "passes": result.passes,
                "prompt_tokens": result.promptTokens, "generated_tokens": result.ids.count,
                "load_seconds": model.loadSeconds, "prefill_seconds": result.prefillSeconds, "decode_seconds": result.decodeSeconds,
                "prefill_tokens_per_second": result.prefillTokensPerSecond, "decode_tokens_per_second": result.decodeTokensPerSecond,
                "mean_passes": result.meanPasses, "stop_reason": result.stopReason, "backend": model.backend.name,
                "exit": options.exit.description, "kv": kvPolicy.rawValue,
            ]
            print(try jsonString(obj))
        } else {
            print("")
            printErr(String(format: "[%@] loaded in %.1f s; prompt %d tokens, generated %d tokens (%@); prefill %.1f tok/s, decode %.1f tok/s; mean passes per token %.2f of %d (exit %@, kv %@)",
                            model.backend.name, model.loadSeconds, result.promptTokens, result.ids.count, result.stopReason, result.prefillTokensPerSecond,
                            result.decodeTokensPerSecond, result.meanPasses, model.plan.passCount, options.exit.description, kvPolicy.rawValue))
        }
    }
}
