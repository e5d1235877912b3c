import ArgumentParser
import Foundation
import LoopCore
import LoopEngine
import LoopServer

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the model over an OpenAI-compatible HTTP API, with continuous batching.",
        discussion: "POST /v1/completions, POST /v1/chat/completions (stream: true for server-sent events), GET /v1/models, /health, /metrics. SIGTERM or SIGINT: stop accepting, finish the requests in flight, exit.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Address to bind (loopback unless told otherwise).") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port; the one bound is printed).") var port = 8080
    @Option(help: "Requests that may wait while every batch row is busy; beyond that 429 with Retry-After.") var maxQueue = 16
    @Option(help: "Sequences decoded together (continuous batching; 1: one at a time, with greedy chains).") var maxBatch = 16
    @Option(help: "KV cache memory shared by the batch, in bytes (suffixes K, M, G; default: one whole context). A request reserves the pages its prompt plus max_tokens need.") var kvBudget: String?
    @Option(help: "The model id /v1/models lists (default: the model's folder or file name).") var modelName: String?

    func run() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard maxQueue >= 0 else { throw ValidationError("--max-queue must be >= 0") }
        if let p = modelOptions.passes, p < 1 || p > 256 { throw ValidationError("--passes must be in 1...256") }
        guard maxBatch >= 1, maxBatch <= 256 else { throw ValidationError("--max-batch must be in 1...256") }
        let budget = try kvBudget.map { KVBudget.bytes(try Self.bytes($0)) }
        let model = try modelOptions.load(batch: (maxBatch, budget))
        let metrics = Metrics(maxPasses: model.plan.passCount)
        let served = try ServedModel(model: model, directory: modelOptions.modelURL, name: modelName, metrics: metrics)
        var config = ServerConfiguration()
        config.host = host
        config.port = port
        config.maxQueue = maxQueue
        config.maxBatch = maxBatch
        let server = LoopHTTPServer(served: served, configuration: config)
        let host = self.host
        let batchNote = "batch \(config.maxBatch), KV \(model.layout.kvRows) positions in \(model.layout.kvRows / KVPages.rows) pages"
        try LoopHTTPServer.runBlocking(server) { port in
            printErr("loopvk serve: listening on http://\(host):\(port) (model \(served.name), \(served.backendName), \(served.passCount) passes, context \(served.context), \(batchNote))")
        }
        printErr("loopvk serve: stopped")
    }

    /// "123", "64K", "512M", "2G" (powers of 1024) as bytes.
    static func bytes(_ text: String) throws -> Int {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        var digits = Substring(t)
        var scale = 1
        if let last = t.last, let u = units[last] { scale = u; digits = t.dropLast() }
        guard let v = Int(digits), v > 0, v <= Int.max / scale else { throw ValidationError("--kv-budget \(text): give a positive byte count such as 800M or 2G") }
        return v * scale
    }
}
