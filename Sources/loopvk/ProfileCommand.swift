import ArgumentParser
import Foundation
import LoopCore
import LoopEngine
import LoopVulkan

struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "GPU time per (op, pass) and per pass from timestamp queries, host phases, and an optional Perfetto trace.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions
    @Option(help: "Tokens to decode after the prompt.") var decodeTokens: Int = 8
    @Option(help: "exact: one timestamp per dispatch (serialised); light: one per pass (true per-pass time).") var mode: String = "exact"
    @Option(help: "Write Chrome/Perfetto trace-event JSON here (open in ui.perfetto.dev).") var trace: String?
    @Option(help: "Exit policy POLICY[:THRESHOLD], as for run (default none: every pass).") var exit: String?
    @Flag(help: "Print the report as JSON.") var json = false

    func validate() throws { try promptOptions.requireOne() }

    func run() throws {
        guard let m = ProfileMode(rawValue: mode) else { throw ValidationError("--mode must be exact or light") }
        guard decodeTokens >= 0, decodeTokens <= 100_000 else { throw ValidationError("--decode-tokens must be in 0...100000") }
        if modelOptions.cpu { throw ValidationError("profile measures the GPU; drop --cpu") }
        let model = try modelOptions.load(quiet: json)
        let ids = try promptOptions.resolve(tokenizer: { try loadTokenizer(modelOptions.modelURL) })
        let policy = try exit.map { try ExitPolicy.parse($0, info: model.info) } ?? .none
        let (r, traceData) = try Profiler.run(model: model, prompt: ids, decodeTokens: decodeTokens, mode: m, exit: policy)
        if let trace { try traceData.write(to: URL(fileURLWithPath: trace)) }
        if json {
            try printJSON(r)
            return
        }
        print("profile (\(r.mode)) on \(r.device): prompt \(r.promptTokens) tokens + \(r.decodeTokens) decode tokens")
        func line(_ a: String, _ b: String, _ c: String, _ d: String, _ e: String, _ f: String, _ g: String) -> String {
            [a.padding(toLength: 14, withPad: " ", startingAt: 0), b.padding(toLength: 12, withPad: " ", startingAt: 0),
             c.leftPad(7), d.leftPad(13), e.leftPad(11), f.leftPad(12), g.leftPad(8)].joined(separator: " ")
        }
        func row(_ x: ProfileReport.Row) -> String {
            line(x.section, x.op, String(x.count), String(format: "%.1f", x.totalMicros), String(format: "%.2f", x.meanMicros),
                 String(format: "%.0f", x.bytes), String(format: "%.2f", x.gbPerSecond))
        }
        let header = line("section", "op", "count", "total us", "mean us", "bytes", "GB/s")
        if !r.byOpAndPass.isEmpty {
            print("\nby op and pass:\n" + header)
            for x in r.byOpAndPass { print(row(x)) }
        }
        print("\nby pass:\n" + header)
        for x in r.byPass { print(row(x)) }
        print("\nhost:")
        for h in r.host { print("  \(h.name.padding(toLength: 8, withPad: " ", startingAt: 0)) \(h.count) x, \(String(format: "%.1f", h.totalMicros)) us") }
        if let trace { printErr("wrote trace to \(trace)") }
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
