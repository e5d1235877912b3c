import ArgumentParser
import Foundation
import LoopCore
import LoopEngine

struct BatchBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-batch",
        abstract: "Continuous batching's decode throughput: aggregate tokens/s of B sequences decoding together, per batch size and exit-policy mix, against batch 1.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Batch sizes, comma-separated (the first is the baseline).") var batches = "1,4,16"
    @Option(help: "Exit-policy mixes separated by ';', each a comma-separated list the rows take in turn (e.g. 'none;none,fixed:1,fixed:2,fixed:3').")
    var exits = "none"
    @Option(help: "Prompt length in tokens.") var promptTokens: Int = 16
    @Option(help: "Tokens each sequence decodes per run.") var decodeTokens: Int = 24
    @Option(help: "Measured runs (after one warm-up run per batch size).") var runs: Int = 2
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        let sizes = try batches.split(separator: ",").map { s -> Int in
            guard let v = Int(s.trimmingCharacters(in: .whitespaces)), v >= 1, v <= 256 else { throw ValidationError("--batches: '\(s)' is not a batch size in 1...256") }
            return v
        }
        guard !sizes.isEmpty else { throw ValidationError("--batches is empty") }
        var options = modelOptions
        if options.context == nil { options.context = promptTokens + decodeTokens }
        let maxBatch = sizes.max()!
        let pagesPerSequence = BatchDecoder.pagesNeeded(promptTokens: promptTokens, maxTokens: decodeTokens)
        let model = try options.load(quiet: json, maxRows: 256, batch: (maxBatch, .positions(maxBatch * pagesPerSequence * KVPages.rows)))
        let mixes = try exits.split(separator: ";").map { mix in
            try mix.split(separator: ",").map { try ExitPolicy.parse(String($0).trimmingCharacters(in: .whitespaces), info: model.info) }
        }
        let r = try BatchBench.run(model: model, batches: sizes, exitMixes: mixes, promptTokens: promptTokens, decodeTokens: decodeTokens, runs: runs) {
            if !json { printErr("bench-batch: \($0)") }
        }
        if json { try printJSON(r); return }
        print("model \(r.model), \(r.passes) passes, on \(r.backend); prompt \(r.promptTokens), decode \(r.decodeTokens) per sequence, \(r.runs) runs")
        print("| batch | exits | aggregate tok/s | ms per step | mean passes | vs batch \(sizes[0]) |")
        print("|---:|---|---:|---:|---:|---:|")
        for row in r.rows {
            print(String(format: "| %d | %@ | %.2f | %.1f | %.2f | %.2fx |", row.batch, row.exits, row.tokensPerSecond, row.stepMilliseconds, row.meanPasses, row.speedup))
        }
    }
}
