import ArgumentParser
import Foundation
import LoopEngine
import LoopServer

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the model over an OpenAI-compatible HTTP API (one sequence at a time).",
        discussion: "POST /v1/completions, POST /v1/chat/completions (stream: true for server-sent events), GET /v1/models, /health, /metrics. SIGTERM or SIGINT: stop accepting, finish the requests in flight, exit.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Address to bind (loopback unless told otherwise).") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port; the one bound is printed).") var port = 8080
    @Option(help: "Requests that may wait while one is decoded; beyond that 429 with Retry-After.") var maxQueue = 16
    @Option(help: "The model id /v1/models lists (default: the model's folder or file name).") var modelName: String?

    func run() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard maxQueue >= 0 else { throw ValidationError("--max-queue must be >= 0") }
        if let p = modelOptions.passes, p < 1 || p > 256 { throw ValidationError("--passes must be in 1...256") }
        let model = try modelOptions.load()
        let metrics = Metrics(maxPasses: model.plan.passCount)
        let served = try ServedModel(model: model, directory: modelOptions.modelURL, name: modelName, metrics: metrics)
        var config = ServerConfiguration()
        config.host = host
        config.port = port
        config.maxQueue = maxQueue
        let server = LoopHTTPServer(served: served, configuration: config)
        let host = self.host
        try LoopHTTPServer.runBlocking(server) { port in
            printErr("loopvk serve: listening on http://\(host):\(port) (model \(served.name), \(served.backendName), \(served.passCount) passes, context \(served.context))")
        }
        printErr("loopvk serve: stopped")
    }
}
