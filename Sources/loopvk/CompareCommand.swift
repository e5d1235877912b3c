import ArgumentParser
import Foundation
import LoopCore
import LoopEngine

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the same input on the GPU and on the CPU reference; print errors per pass and op kind.",
        discussion: "Exits non-zero when an op's NMSE crosses its threshold (products/attention 5e-4, others 1e-7) or the GPU produces NaN/Inf.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        var gpuOptions = modelOptions
        gpuOptions.cpu = false
        var cpuOptions = modelOptions
        cpuOptions.cpu = true
        let gpu = try gpuOptions.load(quiet: true, maxRows: 4096)
        let cpu = try cpuOptions.load(quiet: true, maxRows: 4096)
        let ids = try promptOptions.resolve(tokenizer: { try loadTokenizer(modelOptions.modelURL) })
        let report = try Comparison.run(gpu: gpu, cpu: cpu, tokens: ids)
        if json {
            try printJSON(report)
        } else {
            print("model \(report.model) on \(report.device) vs cpu-reference: \(report.tokens) tokens, \(report.passes) passes")
            print("per op (inputs resynchronised after every op):")
            print("  " + pad("section", 10) + pad("op", 12) + pad("count", 6) + pad("max abs", 12) + pad("NMSE", 12) + pad("limit", 8))
            for e in report.ops { print(row(e)) }
            print("per pass, end to end (head logits):")
            for e in report.logits { print(row(e)) }
            if let bad = report.firstNonFinite { print("NaN/Inf first produced at \(bad)") }
            print(report.passed ? "PASS" : "FAIL")
        }
        if !report.passed { throw ExitCode(1) }
    }

    func row(_ e: OpError) -> String {
        "  " + pad(e.section, 10) + pad(e.op, 12) + pad(String(e.count), 6) + pad(String(format: "%.3e", e.maxAbs), 12)
            + pad(String(format: "%.3e", e.nmse), 12) + pad(String(format: "%.0e", e.threshold), 8) + (e.nonFinite ? "NaN/Inf" : (e.passed ? "ok" : "OVER"))
    }

    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
}
