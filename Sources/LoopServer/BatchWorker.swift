import Foundation
import LoopEngine
import LoopTokenizer

/// The decode thread with continuous batching (`loopvk serve --max-batch N`, N > 1): between
/// decode steps it admits waiting tickets while the `BatchDecoder` has a free row and the KV
/// pages the request reserves, drops cancelled ones (their pages go back at once), runs one
/// step (a prefill chunk of a new prompt, then one token of every running sequence) and turns
/// each sequence's tokens into text deltas for its ticket.
public final class BatchWorker: @unchecked Sendable {
    let scheduler: Scheduler
    let served: ServedModel
    let decoder: BatchDecoder
    private let thread = WorkerThread()

    /// One running request.
    final class Running {
        let ticket: Ticket
        var detok: StreamingDetokenizer
        var matcher: StopMatcher
        var last: UInt64?
        var passes: [Int] = []
        init(ticket: Ticket, tokenizer: Tokenizer) {
            self.ticket = ticket
            detok = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: true)
            matcher = StopMatcher(stops: ticket.job.stop)
        }
    }

    public init(scheduler: Scheduler, served: ServedModel, maxBatch: Int) throws {
        self.scheduler = scheduler
        self.served = served
        decoder = try BatchDecoder(model: served.model, maxBatch: maxBatch)
    }

    public func start() { thread.start(name: "loopvk-batch") { [self] in loop() } }

    /// Waits until the worker has drained the queue and stopped.
    public func join() async { await thread.join() }

    private func loop() {
        let metrics = served.metrics
        var running: [Int: Running] = [:]
        while true {
            guard let admitted = scheduler.take(wait: decoder.running == 0, admit: { t in
                self.decoder.canAdmit(promptTokens: t.job.prompt.count, maxTokens: t.job.options.maxTokens)
            }) else { return }
            for t in admitted {
                if t.isCancelled { scheduler.done(t, final: nil); continue }
                do {
                    let seq = try decoder.add(prompt: t.job.prompt, options: t.job.options)
                    running[seq] = Running(ticket: t, tokenizer: served.tokenizer)
                    metrics.prompt(tokens: t.job.prompt.count)
                } catch {
                    scheduler.done(t, final: .failed(.invalid(ServedModel.message(error))))
                }
            }
            for (seq, r) in running where r.ticket.isCancelled {
                decoder.cancel(seq)
                running[seq] = nil
                metrics.cancelledRequest()
                scheduler.done(r.ticket, final: nil)
            }
            guard decoder.running > 0 else { continue }
            let events: [BatchDecoder.Event]
            do {
                events = try decoder.step()
            } catch {
                for (seq, r) in running {
                    decoder.cancel(seq)
                    scheduler.done(r.ticket, final: .failed(.server("generation failed: \(ServedModel.message(error))")))
                }
                running.removeAll()
                continue
            }
            let tokens = events.filter { if case .token = $0 { return true } else { return false } }.count
            if tokens > 0 { metrics.step(batchSize: tokens) }
            let now = DispatchTime.now().uptimeNanoseconds
            for e in events {
                switch e {
                case let .token(seq, id, passes):
                    guard let r = running[seq] else { continue }
                    if let last = r.last { metrics.interToken(seconds: Double(now - last) / 1e9) } else { metrics.firstToken(seconds: Double(now - r.ticket.job.arrival) / 1e9) }
                    r.last = now
                    metrics.token(passes: passes)
                    r.passes.append(passes)
                    let out = r.matcher.append(r.detok.append(id))
                    if !out.isEmpty { r.ticket.send(.text(out)) }
                    if r.matcher.stopped {
                        decoder.cancel(seq)
                        running[seq] = nil
                        scheduler.done(r.ticket, final: finish(r, reason: "stop"))
                    }
                case let .finished(seq, reason):
                    guard let r = running.removeValue(forKey: seq) else { continue }
                    let rest = r.matcher.append(r.detok.flush()) + r.matcher.flush()
                    if !rest.isEmpty { r.ticket.send(.text(rest)) }
                    scheduler.done(r.ticket, final: finish(r, reason: r.matcher.stopped || reason == "eos" ? "stop" : "length"))
                }
            }
        }
    }

    private func finish(_ r: Running, reason: String) -> GenerationEvent {
        let job = r.ticket.job
        return .finished(CompletionSummary(finishReason: reason, usage: Usage(promptTokens: job.prompt.count, completionTokens: r.passes.count),
                                           passes: r.passes, exit: job.options.exit.description, kv: job.kv.rawValue))
    }
}
