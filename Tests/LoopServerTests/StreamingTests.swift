import Foundation
import LoopEngine
import Testing
@testable import LoopServer

/// Splits an SSE body into its events' data fields (as a client does: events end at a blank line).
func sseData(_ body: String) -> [String] {
    body.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { event in
        event.split(separator: "\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }.joined(separator: "\n")
    }
}

func object(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

@Suite struct SSEFramingTests {
    let summary = CompletionSummary(finishReason: "stop", usage: Usage(promptTokens: 5, completionTokens: 2), passes: [4, 2], exit: "q-exit:0.5", kv: "latest")

    @Test func eventsAreDataLinesEndingInDone() throws {
        let b = ResponseBuilder(id: "chatcmpl-1", created: 10, model: "m", chat: true)
        let body = SSE.event(b.roleChunk()) + SSE.event(b.textChunk("line one\nline two")) + SSE.event(b.finishChunk(summary))
            + SSE.event(b.usageChunk(summary.usage)) + SSE.done
        #expect(body.hasSuffix("data: [DONE]\n\n"))
        let events = sseData(body)
        #expect(events.count == 5)
        // Every event is one data line (a newline in the text is escaped inside the JSON).
        for e in body.components(separatedBy: "\n\n").dropLast() { #expect(e.hasPrefix("data: ") && !e.contains("\n")) }
        let first = try object(events[0])
        #expect(first["object"] as? String == "chat.completion.chunk")
        #expect(first["id"] as? String == "chatcmpl-1" && first["model"] as? String == "m" && first["created"] as? Int == 10)
        let c0 = try #require((first["choices"] as? [[String: Any]])?.first)
        #expect((c0["delta"] as? [String: Any])?["role"] as? String == "assistant")
        #expect(c0["finish_reason"] is NSNull)
        let text = try #require((try object(events[1])["choices"] as? [[String: Any]])?.first)
        #expect((text["delta"] as? [String: Any])?["content"] as? String == "line one\nline two")
        let fin = try #require((try object(events[2])["choices"] as? [[String: Any]])?.first)
        #expect(fin["finish_reason"] as? String == "stop")
        #expect(((fin["delta"] as? [String: Any]) ?? ["x": 1]).isEmpty)
        let usage = try object(events[3])
        #expect((usage["choices"] as? [Any])?.isEmpty == true)
        let u = try #require(usage["usage"] as? [String: Int])
        #expect(u == ["prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7])
        #expect(events[4] == "[DONE]")
    }

    @Test func completionChunksCarryText() throws {
        let b = ResponseBuilder(id: "cmpl-1", created: 1, model: "m", chat: false)
        let chunk = try object(sseData(SSE.event(b.textChunk(" 4")))[0])
        #expect(chunk["object"] as? String == "text_completion")
        let c = try #require((chunk["choices"] as? [[String: Any]])?.first)
        #expect(c["text"] as? String == " 4" && c["index"] as? Int == 0)
    }

    @Test func wholeResponses() throws {
        let chat = try object(ResponseBuilder(id: "chatcmpl-2", created: 1, model: "m", chat: true).complete(text: "hi", summary: summary).serialized)
        #expect(chat["object"] as? String == "chat.completion")
        let m = try #require(((chat["choices"] as? [[String: Any]])?.first)?["message"] as? [String: Any])
        #expect(m["role"] as? String == "assistant" && m["content"] as? String == "hi")
        #expect((chat["usage"] as? [String: Int])?["total_tokens"] == 7)
        let loop = try #require(chat["loop"] as? [String: Any])
        #expect(loop["passes"] as? [Int] == [4, 2] && loop["mean_passes"] as? Double == 3 && loop["exit"] as? String == "q-exit:0.5")
        let cmpl = try object(ResponseBuilder(id: "cmpl-2", created: 1, model: "m", chat: false).complete(text: " 9", summary: summary).serialized)
        #expect(cmpl["object"] as? String == "text_completion")
        #expect(((cmpl["choices"] as? [[String: Any]])?.first)?["text"] as? String == " 9")
        #expect(ResponseBuilder.newID(chat: true).hasPrefix("chatcmpl-") && ResponseBuilder.newID(chat: false).hasPrefix("cmpl-"))
    }
}

@Suite struct StopMatcherTests {
    func run(_ stops: [String], _ pieces: [String]) -> (String, Bool) {
        var m = StopMatcher(stops: stops)
        var out = ""
        for p in pieces { out += m.append(p) }
        out += m.flush()
        return (out, m.stopped)
    }

    @Test func cutsBeforeTheStopString() {
        #expect(run(["\n"], [" 4", "\n", "Q"]) == (" 4", true))
        #expect(run(["END"], ["ab", "cE", "N", "Dxyz"]) == ("abc", true))
        #expect(run(["END", "c"], ["abcEND"]) == ("ab", true))
    }

    @Test func releasesHeldTextWhenNoStopFollows() {
        #expect(run(["END"], ["abE", "N", "x"]) == ("abENx", false))
        #expect(run(["END"], ["abEN"]) == ("abEN", false))
        #expect(run([], ["a", "b"]) == ("ab", false))
    }

    @Test func holdsOnlyAPossiblePrefix() {
        var m = StopMatcher(stops: ["</s>"])
        #expect(m.append("hello <") == "hello ")
        #expect(m.append("b>") == "<b>")
        #expect(m.append("</") == "")
        #expect(m.append("s> tail") == "")
        #expect(m.stopped)
    }
}

@Suite struct MetricsTests {
    @Test func prometheusText() {
        let m = Metrics(maxPasses: 4)
        m.request(endpoint: "/v1/completions", status: 200)
        m.request(endpoint: "/v1/completions", status: 200)
        m.request(endpoint: "/v1/completions", status: 400)
        m.token(passes: 2)
        m.token(passes: 4)
        m.firstToken(seconds: 0.02)
        m.interToken(seconds: 0.003)
        m.setQueue(depth: 3, running: 1)
        let text = m.render()
        #expect(text.contains(#"loopvk_requests_total{endpoint="/v1/completions",status="200"} 2"#))
        #expect(text.contains(#"loopvk_requests_total{endpoint="/v1/completions",status="400"} 1"#))
        #expect(text.contains("loopvk_generated_tokens_total 2\n"))
        #expect(text.contains("loopvk_queue_depth 3\n"))
        #expect(text.contains(#"loopvk_passes_per_token_bucket{le="1"} 0"#))
        #expect(text.contains(#"loopvk_passes_per_token_bucket{le="2"} 1"#))
        #expect(text.contains(#"loopvk_passes_per_token_bucket{le="+Inf"} 2"#))
        #expect(text.contains("loopvk_passes_per_token_sum 6\n"))
        #expect(text.contains(#"loopvk_time_to_first_token_seconds_bucket{le="0.025"} 1"#))
        #expect(text.contains(#"loopvk_inter_token_latency_seconds_bucket{le="0.0025"} 0"#))
        #expect(text.contains("# TYPE loopvk_inter_token_latency_seconds histogram"))
        // Every sample line is "name{labels} value" or "name value".
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.split(separator: " ").count == 2, "\(line)")
        }
    }
}

/// A runner that emits one text event per token after the test releases it.
final class FakeRunner: SequenceRunner, @unchecked Sendable {
    let gate = DispatchSemaphore(value: 0)
    let lock = NSLock()
    var ran: [Int] = []
    func run(_ ticket: Ticket) -> GenerationEvent? {
        gate.wait()
        lock.lock(); ran.append(ticket.job.prompt[0]); lock.unlock()
        for i in 0..<3 where !ticket.isCancelled { ticket.send(.text("t\(i)")) }
        return .finished(CompletionSummary(finishReason: "length", usage: Usage(promptTokens: 1, completionTokens: 3), passes: [1, 1, 1], exit: "none", kv: "latest"))
    }
}

@Suite struct SchedulerTests {
    func job(_ id: Int) -> GenerationJob { GenerationJob(prompt: [id], options: GenerationOptions(), kv: .latest, stop: []) }

    @Test func queueBoundAndOrder() async throws {
        let metrics = Metrics(maxPasses: 1)
        let s = Scheduler(maxQueue: 1, metrics: metrics)
        let runner = FakeRunner()
        let worker = DecodeWorker(scheduler: s, runner: runner)
        worker.start()
        let (_, e1) = try s.submit(job(1))
        // Wait until the worker holds job 1 (blocked on the gate), then one more fits in the queue.
        while s.depth > 0 { try await Task.sleep(nanoseconds: 1_000_000) }
        let (_, e2) = try s.submit(job(2))
        var refused: APIError?
        do { _ = try s.submit(job(3)) } catch { refused = error }
        #expect(refused?.status == 429 && refused?.retryAfter == 1)
        #expect(metrics.render().contains("loopvk_queue_depth 1\n"))
        runner.gate.signal(); runner.gate.signal()
        var events: [GenerationEvent] = []
        for await e in e1 { events.append(e) }
        #expect(events.prefix(3) == [.text("t0"), .text("t1"), .text("t2")])
        if case .finished = events.last {} else { Issue.record("no finished event") }
        var n2 = 0
        for await _ in e2 { n2 += 1 }
        #expect(n2 == 4)
        #expect(runner.ran == [1, 2])
        s.close()
        await worker.join()
        var closed: APIError?
        do { _ = try s.submit(job(4)) } catch { closed = error }
        #expect(closed?.status == 503)
    }

    @Test func cancelledWhileQueuedNeverRuns() async throws {
        let s = Scheduler(maxQueue: 4, metrics: Metrics(maxPasses: 1))
        let runner = FakeRunner()
        let worker = DecodeWorker(scheduler: s, runner: runner)
        worker.start()
        let (_, e1) = try s.submit(job(1))
        while s.depth > 0 { try await Task.sleep(nanoseconds: 1_000_000) }
        let (t2, e2) = try s.submit(job(2))
        t2.cancel()
        #expect(s.depth == 0)
        var n = 0
        for await _ in e2 { n += 1 }
        #expect(n == 0)   // its stream ended with nothing
        runner.gate.signal()
        for await _ in e1 {}
        s.close()
        await worker.join()
        #expect(runner.ran == [1])
    }
}
