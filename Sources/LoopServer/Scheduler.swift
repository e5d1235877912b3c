import Foundation
import LoopEngine

/// One admitted request, ready for the decode worker: prompt ids and engine options.
public struct GenerationJob: Sendable {
    public var prompt: [Int]
    public var options: GenerationOptions
    public var kv: KVPolicy
    public var stop: [String]
    /// `DispatchTime` nanoseconds when the request arrived (time to first token counts from it).
    public var arrival: UInt64

    public init(prompt: [Int], options: GenerationOptions, kv: KVPolicy, stop: [String], arrival: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        self.prompt = prompt; self.options = options; self.kv = kv; self.stop = stop; self.arrival = arrival
    }
}

/// What the decode worker reports about a job, in order: text deltas, then `finished` or `failed`.
public enum GenerationEvent: Sendable, Equatable {
    case text(String)
    case finished(CompletionSummary)
    case failed(APIError)
}

/// A job in the scheduler: its events stream to the request handler, and the handler can
/// cancel it (the client went away) whether it is waiting or running.
public final class Ticket: @unchecked Sendable {
    public let job: GenerationJob
    let continuation: AsyncStream<GenerationEvent>.Continuation
    private let lock = NSLock()
    private var _cancelled = false
    private weak var scheduler: Scheduler?

    init(job: GenerationJob, continuation: AsyncStream<GenerationEvent>.Continuation, scheduler: Scheduler) {
        self.job = job; self.continuation = continuation; self.scheduler = scheduler
    }

    public var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return _cancelled }

    /// Stops the job: a waiting one leaves the queue, a running one stops at its next token.
    /// Idempotent; harmless after the job finished.
    public func cancel() {
        lock.lock()
        let first = !_cancelled
        _cancelled = true
        lock.unlock()
        if first { scheduler?.remove(self) }
    }

    func send(_ event: GenerationEvent) { continuation.yield(event) }
    func finish() { continuation.finish() }
}

/// Admission and order: a bounded FIFO of tickets that one decode worker drains.
///
/// `slots` tickets run at once (1: `DecodeWorker`, one sequence to its end; more: the batch
/// worker, whose `BatchDecoder` takes tickets between decode steps while it has room), and up
/// to `maxQueue` more wait; beyond that `submit` answers 429.
public final class Scheduler: @unchecked Sendable {
    /// Requests that may wait while the running ones fill every slot (beyond it: 429).
    public let maxQueue: Int
    /// Requests that run at once.
    public let slots: Int
    let metrics: Metrics
    private let cond = NSCondition()
    private var queue: [Ticket] = []
    private var running = 0
    private var closed = false

    public init(maxQueue: Int, slots: Int = 1, metrics: Metrics) {
        self.maxQueue = maxQueue
        self.slots = max(1, slots)
        self.metrics = metrics
    }

    /// Queues `job`; its events arrive on the returned stream. Throws 429 when the queue is full
    /// and 503 once the server is shutting down.
    public func submit(_ job: GenerationJob) throws(APIError) -> (Ticket, AsyncStream<GenerationEvent>) {
        let (stream, continuation) = AsyncStream<GenerationEvent>.makeStream()
        let ticket = Ticket(job: job, continuation: continuation, scheduler: self)
        cond.lock()
        defer { cond.unlock() }
        guard !closed else { throw APIError(status: 503, message: "the server is shutting down", type: "server_error", code: "shutting_down") }
        // Every slot busy (or about to take a waiting job) and the queue full.
        if running + queue.count >= slots + maxQueue { throw .queueFull(depth: queue.count) }
        queue.append(ticket)
        publish()
        cond.signal()
        return (ticket, stream)
    }

    /// The batch worker's admission: waiting tickets from the front of the queue, as many as
    /// `admit` accepts in order (it stops at the first it refuses, so the queue stays FIFO).
    /// `wait`: block until there is one (nothing runs). nil once closed, drained and idle.
    func take(wait: Bool, admit: (Ticket) -> Bool) -> [Ticket]? {
        cond.lock()
        defer { cond.unlock() }
        if wait {
            while queue.isEmpty && !closed { cond.wait() }
            if queue.isEmpty && running == 0 { return nil }
        }
        var out: [Ticket] = []
        while let t = queue.first, admit(t) {
            queue.removeFirst()
            running += 1
            out.append(t)
        }
        if !out.isEmpty { publish() }
        return out
    }

    /// The next ticket to run, waiting for one; nil once closed and drained.
    func next() -> Ticket? {
        cond.lock()
        defer { cond.unlock() }
        while queue.isEmpty && !closed { cond.wait() }
        guard !queue.isEmpty else { return nil }
        let t = queue.removeFirst()
        running += 1
        publish()
        return t
    }

    /// The worker is free again; then the ticket's last event goes out (so a client that sends
    /// its next request on reading this one's end never finds the worker still busy).
    func done(_ ticket: Ticket, final: GenerationEvent?) {
        cond.lock()
        running -= 1
        publish()
        cond.unlock()
        if let final { ticket.send(final) }
        ticket.finish()
    }

    /// A cancelled ticket that has not started leaves the queue (its stream ends).
    func remove(_ ticket: Ticket) {
        cond.lock()
        let idx = queue.firstIndex { $0 === ticket }
        if let idx { queue.remove(at: idx); publish() }
        cond.unlock()
        if idx != nil { ticket.finish() }
    }

    /// No new jobs; the worker finishes the queued ones and stops.
    public func close() {
        cond.lock()
        closed = true
        cond.broadcast()
        cond.unlock()
    }

    public var depth: Int { cond.lock(); defer { cond.unlock() }; return queue.count }

    private func publish() { metrics.setQueue(depth: queue.count, running: running) }
}

/// Runs one job to its end on the worker's thread, sending its text events to the ticket, and
/// returns the last event (`finished` or `failed`; nil when the ticket was cancelled).
public protocol SequenceRunner: AnyObject, Sendable {
    func run(_ ticket: Ticket) -> GenerationEvent?
}

/// The thread a decode worker runs on. Generation is synchronous and compute-bound, so it runs
/// on a thread of its own (16 MiB of stack) instead of Swift's cooperative pool, which serves
/// the HTTP side.
final class WorkerThread: @unchecked Sendable {
    private let exited = DispatchSemaphore(value: 0)

    /// Runs `body` once on a new thread named `name`.
    func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread { [exited] in
            body()
            exited.signal()
        }
        thread.name = name
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Waits (off the cooperative pool) until `body` has returned.
    func join() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { [exited] in
                exited.wait()
                c.resume()
            }
        }
    }
}

/// The thread that decodes one ticket at a time to its end (`--max-batch 1`).
public final class DecodeWorker: @unchecked Sendable {
    let scheduler: Scheduler
    let runner: any SequenceRunner
    private let thread = WorkerThread()

    public init(scheduler: Scheduler, runner: any SequenceRunner) {
        self.scheduler = scheduler
        self.runner = runner
    }

    public func start() {
        thread.start(name: "loopvk-decode") { [self] in
            while let ticket = scheduler.next() {
                let final = ticket.isCancelled ? nil : runner.run(ticket)
                scheduler.done(ticket, final: final)
            }
        }
    }

    /// Waits until the worker has drained the queue and stopped.
    public func join() async { await thread.join() }
}
