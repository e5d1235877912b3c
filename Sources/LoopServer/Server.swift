import Foundation
import Hummingbird
import Logging
import NIOCore

/// Where and how `loopvk serve` listens.
public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    /// Requests that may wait while every batch row is busy (beyond: 429 with Retry-After).
    public var maxQueue: Int = 16
    /// Sequences decoded together (continuous batching, `BatchWorker`); 1: one at a time to its
    /// end (`DecodeWorker`, with the single-sequence engine's greedy chains and device exits).
    public var maxBatch: Int = 1
    /// Largest request body read.
    public var maxBodyBytes: Int = 8 << 20
    public init() {}
}

/// The decode thread: `DecodeWorker` (one sequence at a time) or `BatchWorker`.
protocol Worker: Sendable {
    func start()
    func join() async
}
extension DecodeWorker: Worker {}
extension BatchWorker: Worker {}

/// The OpenAI-compatible HTTP server over one `ServedModel`.
public final class LoopHTTPServer: Sendable {
    public let served: ServedModel
    public let configuration: ServerConfiguration
    public let metrics: Metrics
    let scheduler: Scheduler

    public init(served: ServedModel, configuration: ServerConfiguration) {
        self.served = served
        self.configuration = configuration
        metrics = served.metrics
        scheduler = Scheduler(maxQueue: configuration.maxQueue, slots: configuration.maxBatch, metrics: served.metrics)
    }

    /// Serves until SIGTERM or SIGINT: then stops accepting connections, lets the requests in
    /// flight finish (ServiceLifecycle's graceful shutdown), drains the decode worker and returns.
    /// `onListening(port)` is called once the socket is bound.
    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let worker: any Worker = configuration.maxBatch > 1
            ? try BatchWorker(scheduler: scheduler, served: served, maxBatch: configuration.maxBatch)
            : DecodeWorker(scheduler: scheduler, runner: served)
        worker.start()
        let router = Router()
        router.add(middleware: OpenAIErrorMiddleware(metrics: metrics))
        router.get("/health") { _, _ in
            Self.json(.obj(["status": .string("ok"), "model": .string(self.served.name), "queue_depth": .int(self.scheduler.depth)]))
        }
        router.get("/v1/models") { _, _ in
            Self.json(.obj(["object": .string("list"), "data": .array([.obj([
                "id": .string(self.served.name), "object": .string("model"), "created": .int(self.served.created), "owned_by": .string("loopvk"),
                "loop": .obj(["passes": .int(self.served.passCount), "context": .int(self.served.context), "backend": .string(self.served.backendName),
                              "default_exit": .string(self.served.defaultExit.description)]),
            ])])]))
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: self.metrics.render())))
        }
        router.post("/v1/completions") { request, _ in try await self.generate(request, endpoint: .completions) }
        router.post("/v1/chat/completions") { request, _ in try await self.generate(request, endpoint: .chatCompletions) }

        var logger = Logger(label: "loopvk.serve")
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "loopvk"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? -1) },
            logger: logger
        )
        do {
            try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        } catch {
            scheduler.close()
            await worker.join()
            throw error
        }
        scheduler.close()
        await worker.join()
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: value.serialized)))
    }

    static func error(_ e: APIError) -> Response {
        var r = json(e.json, status: HTTPResponse.Status(code: e.status))
        if let s = e.retryAfter { r.headers[.retryAfter] = String(s) }
        return r
    }

    func generate(_ request: Request, endpoint: Endpoint) async throws -> Response {
        var request = request
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: configuration.maxBodyBytes) } catch {
            throw APIError(status: 413, message: "the request body is larger than \(configuration.maxBodyBytes) bytes", type: "invalid_request_error")
        }
        let req = try GenerationRequest.parse(Data(body.readableBytesView), endpoint: endpoint)
        let job = try served.prepare(req)
        let (ticket, events) = try scheduler.submit(job)
        let builder = ResponseBuilder(id: ResponseBuilder.newID(chat: endpoint == .chatCompletions), created: Int(Date().timeIntervalSince1970),
                                      model: served.name, chat: endpoint == .chatCompletions)
        if !req.stream {
            // Whole response: wait for the end (a cancelled task cancels the job).
            var text = ""
            return try await withTaskCancellationHandler {
                defer { ticket.cancel() }
                for await event in events {
                    switch event {
                    case .text(let t): text += t
                    case .finished(let summary): return Self.json(builder.complete(text: text, summary: summary))
                    case .failed(let e): throw e
                    }
                }
                throw APIError.server("the generation ended without a result")
            } onCancel: { ticket.cancel() }
        }
        let includeUsage = req.includeUsageInStream
        let chat = endpoint == .chatCompletions
        let body2 = ResponseBody { writer in
            // Any way out of here — the end, a failed write because the client went away, task
            // cancellation — stops the generation.
            defer { ticket.cancel() }
            try await withTaskCancellationHandler {
                if chat { try await writer.write(ByteBuffer(string: SSE.event(builder.roleChunk()))) }
                for await event in events {
                    switch event {
                    case .text(let t):
                        try await writer.write(ByteBuffer(string: SSE.event(builder.textChunk(t))))
                    case .finished(let summary):
                        var out = SSE.event(builder.finishChunk(summary))
                        if includeUsage { out += SSE.event(builder.usageChunk(summary.usage)) }
                        try await writer.write(ByteBuffer(string: out))
                    case .failed(let e):
                        try await writer.write(ByteBuffer(string: SSE.event(e.json)))
                    }
                }
                try await writer.write(ByteBuffer(string: SSE.done))
            } onCancel: { ticket.cancel() }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: SSE.contentType, .cacheControl: "no-cache"], body: body2)
    }
}

/// Counts every answer by endpoint and status, and writes errors (Hummingbird's own too: 404,
/// 405, 413) in OpenAI's error shape.
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: Metrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        let endpoint = Endpoint(rawValue: path)?.rawValue ?? "other"
        let response: Response
        do {
            response = try await next(request, context)
        } catch let e as APIError {
            response = LoopHTTPServer.error(e)
        } catch let e as HTTPError {
            let type = e.status.code >= 500 ? "server_error" : "invalid_request_error"
            let message = e.body ?? (e.status.code == 404 ? "no route \(request.method) \(path)" : e.status.reasonPhrase)
            response = LoopHTTPServer.error(APIError(status: e.status.code, message: message, type: type))
        } catch {
            response = LoopHTTPServer.error(.server("\(error)"))
        }
        metrics.request(endpoint: endpoint, status: response.status.code)
        return response
    }
}

extension LoopHTTPServer {
    /// Runs `server` from synchronous code (a command's `run()`), blocking until it stops.
    public static func runBlocking(_ server: LoopHTTPServer, onListening: @escaping @Sendable (Int) -> Void) throws {
        final class Outcome: @unchecked Sendable { var error: (any Error)? }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await server.run(onListening: onListening) } catch { outcome.error = error }
            done.signal()
        }
        done.wait()
        if let e = outcome.error { throw e }
    }
}
