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
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(data: try enc.encode(report), encoding: .utf8)!)
        } else {
            print("model \(report.model) on \(report.device) vs cpu-reference: \(report.tokens) tokens, \(report.passes) passes")
            print("per op (inputs resynchronised after every op):")
            print(String(format: "  %-9@ %-11@ %5@ %12@ %12@ %10@  %@", "section" as NSString, "op" as NSString, "count" as NSString, "max abs" as NSString, "NMSE" as NSString, "limit" as NSString, "" as NSString))
            for e in report.ops { print(row(e)) }
            print("per pass, end to end (head logits):")
            for e in report.logits { print(row(e)) }
            if let bad = report.firstNonFinite { print("NaN/Inf first produced at \(bad)") }
            print(report.passed ? "PASS" : "FAIL")
        }
        if !report.passed { throw ExitCode(1) }
    }

    func row(_ e: OpError) -> String {
        String(format: "  %-9@ %-11@ %5d %12.3e %12.3e %10.0e  %@", e.section as NSString, e.op as NSString, e.count, e.maxAbs, e.nmse, e.threshold,
               (e.nonFinite ? "NaN/Inf" : (e.passed ? "ok" : "OVER")) as NSString)
    }
}
