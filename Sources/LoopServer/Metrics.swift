import Foundation

/// A Prometheus histogram (cumulative buckets, sum, count).
public struct Histogram: Sendable {
    public let bounds: [Double]
    public private(set) var counts: [Int]
    public private(set) var sum = 0.0
    public private(set) var count = 0

    public init(bounds: [Double]) {
        self.bounds = bounds
        counts = Array(repeating: 0, count: bounds.count)
    }

    public mutating func observe(_ v: Double) {
        for (i, b) in bounds.enumerated() where v <= b { counts[i] += 1 }
        sum += v
        count += 1
    }

    func render(_ name: String, help: String, into out: inout String) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (b, c) in zip(bounds, counts) { out += "\(name)_bucket{le=\"\(Metrics.format(b))\"} \(c)\n" }
        out += "\(name)_bucket{le=\"+Inf\"} \(count)\n\(name)_sum \(Metrics.format(sum))\n\(name)_count \(count)\n"
    }
}

/// The server's counters, rendered as Prometheus text (`GET /metrics`). Thread-safe.
public final class Metrics: @unchecked Sendable {
    private let lock = NSLock()
    private var requests: [String: Int] = [:]          // "endpoint\u{0}status" -> count
    private var promptTokens = 0
    private var generatedTokens = 0
    private var cancelled = 0
    private var queueDepth = 0
    private var running = 0
    private var ttft = Histogram(bounds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60])
    private var itl = Histogram(bounds: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1])
    private var passes: Histogram
    private var batch = Histogram(bounds: [1, 2, 4, 8, 16, 32])

    /// `maxPasses`: the loaded model's passes per token (the passes histogram's buckets 1...max).
    public init(maxPasses: Int) {
        passes = Histogram(bounds: (1...max(1, maxPasses)).map(Double.init))
    }

    func locked<T>(_ f: () -> T) -> T { lock.lock(); defer { lock.unlock() }; return f() }

    public func request(endpoint: String, status: Int) { locked { requests["\(endpoint)\u{0}\(status)", default: 0] += 1 } }
    public func setQueue(depth: Int, running: Int) { locked { queueDepth = depth; self.running = running } }
    public func prompt(tokens: Int) { locked { promptTokens += tokens } }
    public func token(passes p: Int) { locked { generatedTokens += 1; passes.observe(Double(p)) } }
    public func firstToken(seconds: Double) { locked { ttft.observe(seconds) } }
    public func interToken(seconds: Double) { locked { itl.observe(seconds) } }
    public func cancelledRequest() { locked { cancelled += 1 } }
    /// Sequences one decode step ran (1 per request with --max-batch 1).
    public func step(batchSize: Int) { locked { batch.observe(Double(batchSize)) } }

    public var generatedTokenCount: Int { locked { generatedTokens } }

    static func format(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int(v)) }
        return String(v)
    }

    /// The Prometheus text exposition.
    public func render() -> String {
        locked {
            var out = "# HELP loopvk_requests_total HTTP requests answered, by endpoint and status.\n# TYPE loopvk_requests_total counter\n"
            for key in requests.keys.sorted() {
                let parts = key.split(separator: "\u{0}", maxSplits: 1).map(String.init)
                out += "loopvk_requests_total{endpoint=\"\(parts[0])\",status=\"\(parts[1])\"} \(requests[key]!)\n"
            }
            out += "# HELP loopvk_prompt_tokens_total Prompt tokens of the requests run.\n# TYPE loopvk_prompt_tokens_total counter\nloopvk_prompt_tokens_total \(promptTokens)\n"
            out += "# HELP loopvk_generated_tokens_total Tokens generated.\n# TYPE loopvk_generated_tokens_total counter\nloopvk_generated_tokens_total \(generatedTokens)\n"
            out += "# HELP loopvk_cancelled_requests_total Generations stopped because the client went away.\n# TYPE loopvk_cancelled_requests_total counter\nloopvk_cancelled_requests_total \(cancelled)\n"
            out += "# HELP loopvk_queue_depth Requests waiting for the decode worker.\n# TYPE loopvk_queue_depth gauge\nloopvk_queue_depth \(queueDepth)\n"
            out += "# HELP loopvk_running_sequences Sequences being decoded.\n# TYPE loopvk_running_sequences gauge\nloopvk_running_sequences \(running)\n"
            passes.render("loopvk_passes_per_token", help: "Loop passes each generated token ran.", into: &out)
            ttft.render("loopvk_time_to_first_token_seconds", help: "From the request's arrival to its first generated token.", into: &out)
            itl.render("loopvk_inter_token_latency_seconds", help: "Between consecutive generated tokens of a request.", into: &out)
            batch.render("loopvk_batch_size", help: "Sequences per decode step (continuous batching; with --max-batch 1, one per request).", into: &out)
            return out
        }
    }
}
