import Foundation
import LoopEngine
import Testing
@testable import LoopServer

/// Requests checked against the bundled model (CPU reference, a 64-position context).
@Suite(.serialized) struct ServedModelTests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Models/looped-arith")
    static let served: ServedModel = {
        let model = try! Model(directory: dir, backend: .cpu, maxContext: 64, maxRows: 16)
        return try! ServedModel(model: model, directory: dir, metrics: Metrics(maxPasses: model.plan.passCount))
    }()

    func prepare(_ body: String, _ endpoint: Endpoint = .completions) throws(APIError) -> GenerationJob {
        try Self.served.prepare(try GenerationRequest.parse(Data(body.utf8), endpoint: endpoint))
    }

    func rejection(_ body: String, _ endpoint: Endpoint = .completions) -> APIError? {
        do { _ = try prepare(body, endpoint); return nil } catch { return error }
    }

    @Test func jobsFromRequests() throws {
        let s = Self.served
        #expect(s.name == "looped-arith" && s.context == 64 && s.passCount == 4)
        let j = try prepare(#"{"prompt": "Q: 6 plus 3 A:", "temperature": 0}"#)
        #expect(j.prompt == s.tokenizer.encode("Q: 6 plus 3 A:", addSpecialTokens: true))
        #expect(j.options.maxTokens == 16 && j.options.sampling.isGreedy && j.kv == .latest && j.options.exit == .none)
        #expect(!j.options.stopTokens.isEmpty)
        #expect(try prepare(#"{"prompt": "x", "loop": {"passes": 2}}"#).options.exit == .fixed(2))
        #expect(try prepare(#"{"prompt": "x", "loop": {"passes": 4}}"#).options.exit == .none)
        #expect(try prepare(#"{"prompt": "x", "loop": {"exit": "q-exit:0.5", "kv": "shared", "min_passes": 2}}"#).options.exit == .qExit(0.5))
        #expect(try prepare(#"{"prompt": "x", "loop": {"kv": "shared"}}"#).kv == .shared)
        #expect(try prepare(#"{"prompt": [3, 4, 5]}"#).prompt == [3, 4, 5])
        #expect(try prepare(#"{"prompt": "x", "seed": 5, "temperature": 0.5}"#).options.sampling.seed == 5)
        // Chat: the rest of the context by default; the template's markers are in the prompt.
        let c = try prepare(#"{"messages": [{"role": "user", "content": "hi"}]}"#, .chatCompletions)
        #expect(c.options.maxTokens == 64 - c.prompt.count)
        #expect(c.prompt == s.tokenizer.encode("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", addSpecialTokens: true))
    }

    @Test func requestsTheModelCannotServe() {
        let cases: [(String, Int, String?)] = [
            (#"{"prompt": "x", "model": "gpt-4"}"#, 404, "model"),
            (#"{"prompt": "x", "loop": {"passes": 5}}"#, 400, "loop.passes"),
            (#"{"prompt": "x", "loop": {"passes": 2, "exit": "q-exit:0.5"}}"#, 400, "loop.passes"),
            (#"{"prompt": "x", "loop": {"exit": "kl"}}"#, 400, "loop.exit"),
            (#"{"prompt": "x", "loop": {"exit": "nonsense"}}"#, 400, "loop.exit"),
            (#"{"prompt": "x", "loop": {"min_passes": 9}}"#, 400, "loop.min_passes"),
            (#"{"prompt": "x", "max_tokens": 65}"#, 400, "max_tokens"),
            (#"{"prompt": "Q: 1 plus 2 A:", "max_tokens": 60}"#, 400, "max_tokens"),
            (#"{"prompt": [1, 2, 999999]}"#, 400, "prompt"),
            (#"{"prompt": "\#(String(repeating: " 1", count: 80))"}"#, 400, "prompt"),
        ]
        for (body, status, param) in cases {
            let e = rejection(body)
            #expect(e?.status == status && e?.param == param, "\(body): \(String(describing: e))")
        }
        #expect(rejection(#"{"prompt": "Q: 1 plus 2 A:", "max_tokens": 50}"#) == nil)
    }

    /// A job runs to text deltas and a summary; a stop string cuts the text before it.
    @Test func runsAJob() async throws {
        let s = Self.served
        let sched = Scheduler(maxQueue: 2, metrics: s.metrics)
        let worker = DecodeWorker(scheduler: sched, runner: s)
        worker.start()
        func collect(_ body: String) async throws -> (String, CompletionSummary?) {
            let (_, events) = try sched.submit(try prepare(body))
            var text = ""
            var summary: CompletionSummary?
            for await e in events {
                switch e {
                case .text(let t): text += t
                case .finished(let sum): summary = sum
                case .failed(let err): Issue.record("failed: \(err)")
                }
            }
            return (text, summary)
        }
        let (text, sum) = try await collect(#"{"prompt": "Q: 7 plus 5 minus 9 A:", "temperature": 0, "max_tokens": 8}"#)
        #expect(text == " 3\n" && sum?.finishReason == "stop" && sum?.usage.completionTokens == 3 && sum?.passes == [4, 4, 4])
        let (cut, sum2) = try await collect(#"{"prompt": "Q: 7 plus 5 minus 9 A:", "temperature": 0, "max_tokens": 8, "stop": "\n"}"#)
        #expect(cut == " 3" && sum2?.finishReason == "stop")
        let (long, sum3) = try await collect(#"{"prompt": "Q: 7 plus 5 minus 9 A:", "temperature": 0, "max_tokens": 5, "ignore_eos": true}"#)
        #expect(sum3?.finishReason == "length" && sum3?.usage.completionTokens == 5 && long.hasPrefix(" 3\n"))
        sched.close()
        await worker.join()
    }
}
