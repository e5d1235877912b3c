import ArgumentParser
import Foundation
import LoopEngine

struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode many tokens (sequences back to back) and reload the model many times; report host RSS, device memory and live Vulkan objects.")

    @Option(help: "Checkpoint folder (default: the bundled model).") var model: String?
    @Option(help: "Vulkan device: a name substring or index.") var device: String?
    @Option(help: "Tokens to decode.") var tokens: Int = 10_000
    @Option(help: "Times to load, use and release the model.") var reloads: Int = 50
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        guard tokens >= 1, tokens <= 10_000_000, reloads >= 0, reloads <= 10_000 else { throw ValidationError("--tokens must be in 1...10000000, --reloads in 0...10000") }
        let dir = URL(fileURLWithPath: model ?? DefaultModel.path())
        let r = try LoopEngine.Soak.run(directory: dir, device: device, tokens: tokens, reloads: reloads) { if !json { printErr("soak: \($0)") } }
        if json { try printJSON(r); return }
        print("soak on \(r.device): \(r.tokens) tokens in \(r.sequences) sequences, \(String(format: "%.1f", Double(r.tokens) / max(r.decodeSeconds, 1e-9))) tok/s")
        print(String(format: "  host RSS %.1f MB after the first sequence -> %.1f MB at the end", r.rssStartMB, r.rssEndMB))
        print("  device memory \(r.deviceBytesStart) -> \(r.deviceBytesEnd) bytes")
        print("  \(r.reloads) reloads: live Vulkan object owners \(r.liveObjectsBefore) -> \(r.liveObjectsAfter), device memory \(r.deviceBytesBeforeReloads) -> \(r.deviceBytesAfterReloads) bytes")
        print(String(format: "  host RSS after the first reload %.1f MB, after the last %.1f MB", r.rssFirstReloadMB, r.rssLastReloadMB))
    }
}
