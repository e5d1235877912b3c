import ArgumentParser
import Foundation
import LoopCore
import LoopEngine

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prefill and decode tokens/s (median of runs after warm-up), bytes per token, GB/s and the fraction of the copy-shader bandwidth, vs the CPU reference.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Prompt length in tokens.") var promptTokens: Int = 64
    @Option(help: "Tokens decoded per run.") var decodeTokens: Int = 32
    @Option(help: "Measured runs.") var runs: Int = 3
    @Option(help: "Warm-up runs.") var warmup: Int = 1
    @Option(help: "Tokens the CPU reference decodes for the ratio.") var cpuDecodeTokens: Int = 8
    @Flag(help: "Skip the CPU reference.") var noCpu = false
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        if modelOptions.cpu { throw ValidationError("bench measures a Vulkan device and runs the CPU reference alongside; drop --cpu") }
        guard runs >= 1, runs <= 1000, warmup >= 0, warmup <= 100 else { throw ValidationError("--runs must be in 1...1000 and --warmup in 0...100") }
        var gpuOptions = modelOptions
        if gpuOptions.context == nil { gpuOptions.context = promptTokens + decodeTokens }
        let gpu = try gpuOptions.load(quiet: json, maxRows: 256)
        var cpu: Model?
        if !noCpu {
            var c = gpuOptions
            c.cpu = true
            cpu = try c.load(quiet: true, maxRows: 256)
        }
        let r = try LoopEngine.Bench.run(gpu: gpu, cpu: cpu, promptTokens: promptTokens, decodeTokens: decodeTokens, runs: runs,
                                         warmup: warmup, cpuDecodeTokens: cpuDecodeTokens) { if !json { printErr("bench: \($0)") } }
        if json {
            try printJSON(r)
            return
        }
        print("model \(r.model), \(r.passes) passes, on \(r.device); prompt \(r.promptTokens), decode \(r.decodeTokens), \(r.runs) runs")
        print(String(format: "prefill  %.1f tok/s (min %.1f, max %.1f)", r.prefillTokensPerSecond.median, r.prefillTokensPerSecond.min, r.prefillTokensPerSecond.max))
        print(String(format: "decode   %.2f tok/s (min %.2f, max %.2f)", r.decodeTokensPerSecond.median, r.decodeTokensPerSecond.min, r.decodeTokensPerSecond.max))
        print(String(format: "bytes/token %.1f MB -> %.2f GB/s; device: copy shader %.2f GB/s, weight reads %.2f GB/s; roofline fraction %.1f%%",
                     r.bytesPerDecodeToken / 1e6, r.decodeGBPerSecond, r.copyGBPerSecond, r.readGBPerSecond, r.rooflineFraction * 100))
        print("dispatches/token \(r.dispatchesPerToken), barriers/token \(r.barriersPerToken)")
        print(String(format: "host: recording %.0f us once; submit+wait %.0f us per token (replay)", r.recordMicrosTotal, r.replayMicrosPerToken))
        if let c = r.cpuDecodeTokensPerSecond {
            print(String(format: "CPU reference: decode %.2f tok/s, prefill %.1f tok/s; GPU/CPU decode %.2fx", c, r.cpuPrefillTokensPerSecond ?? 0, r.speedupVsCPU ?? 0))
        }
    }
}
