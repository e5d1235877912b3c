import ArgumentParser
import Foundation
import LoopCore
import LoopEngine

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the same input on the GPU and on the CPU reference; print errors per pass and op kind.",
        discussion: """
            Exits non-zero when an op's NMSE crosses its threshold (products/attention 5e-4, others 1e-7) or the GPU produces NaN/Inf.
            With --golden, checks the model folder's golden.safetensors instead (a fixture: the official code's outputs per pass, \
            KV cache, exit decisions and greedy ids) at |x - g| <= atol + rtol*|g| on the chosen backend; the fp32 goldens hold \
            at 1e-4 with --kernels kv=f32. With --golden --numerics bf16 --cpu, checks golden_bf16.safetensors (the official code \
            run end to end in bfloat16) with bf16 rounding: the errors (max abs, relative RMS) are reported, and greedy ids and exit \
            choices must be equal (tolerances are enforced only when --atol/--rtol are given).
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions
    @Flag(help: "Print the report as JSON.") var json = false
    @Flag(help: "Check the folder's golden.safetensors (fixtures) instead of comparing with the CPU reference.") var golden = false
    @Option(help: "With --golden: absolute tolerance (default 1e-4; not enforced with --numerics bf16 unless given).") var atol: Float?
    @Option(help: "With --golden: relative tolerance (default 1e-4; not enforced with --numerics bf16 unless given).") var rtol: Float?
    @Option(help: "With --golden: the golden file in the folder (default golden.safetensors, golden_bf16.safetensors with --numerics bf16); tolerances are enforced only for the fp32 default or when given.") var goldenFile: String?

    @Option(help: "Compare the model's logits with this reference model's (folder or .gguf) on the chosen backend, pass by pass: KL, top-1 agreement, relative RMS (e.g. a quantized file against its bf16 folder).") var against: String?

    func validate() throws {
        if !golden { try promptOptions.requireOne() }
        if golden && against != nil { throw ValidationError("give --golden or --against, not both") }
    }

    func run() throws {
        if golden { return try runGoldens() }
        if let against { return try runAgainst(against) }
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

    struct GoldenReport: Encodable {
        var fixture: String, backend: String, kernels: String?, numerics: String, golden: String, atol: Float, rtol: Float, toleranceEnforced: Bool
        var tensors: [Tensor], exact: [String], failures: [String], passed: Bool
        struct Tensor: Encodable { var name: String, count: Int, maxAbs: Float, relToScale: Float, relRMS: Float, toleranceUse: Float }
    }

    /// `--against REF`: the model against a reference model, end to end per pass.
    func runAgainst(_ ref: String) throws {
        let ids = try promptOptions.resolve(tokenizer: { try loadTokenizer(modelOptions.modelURL) })
        let model = try modelOptions.load(quiet: true, maxRows: ids.count)
        var refOptions = modelOptions
        refOptions.model = ref
        let reference = try refOptions.load(quiet: true, maxRows: ids.count)
        let passes = try Comparison.agreement(model: model, reference: reference, tokens: ids)
        if json { try printJSON(passes); return }
        print("model \(modelOptions.modelURL.lastPathComponent) against \(URL(fileURLWithPath: ref).lastPathComponent) on \(model.backend.name): \(ids.count) tokens")
        print("  " + pad("pass", 6) + pad("mean KL", 12) + pad("max KL", 12) + pad("top-1", 8) + pad("rel RMS", 10))
        for p in passes {
            print("  " + pad("\(p.pass)", 6) + pad(String(format: "%.3e", p.meanKL), 12) + pad(String(format: "%.3e", p.maxKL), 12)
                  + pad(String(format: "%.3f", p.top1), 8) + pad(String(format: "%.4f", p.relRMS), 10))
        }
    }

    func runGoldens() throws {
        let backend: BackendChoice = modelOptions.cpu ? .cpu : .vulkan(device: modelOptions.device)
        if let dir = modelOptions.shaderDir { Engine.useShaderDirectory(dir) }
        let numerics = try modelOptions.resolvedNumerics()
        if numerics != .fp32 && !modelOptions.cpu {
            throw LoopError.unsupported("--numerics \(numerics.rawValue) runs on the CPU reference only (add --cpu); the Vulkan kernels compute in fp32")
        }
        let cmp = try Comparison.goldens(directory: modelOptions.modelURL, backend: backend, kernels: modelOptions.kernels, atol: atol, rtol: rtol,
                                         numerics: numerics, goldenFile: goldenFile)
        if json {
            try printJSON(GoldenReport(fixture: cmp.fixture, backend: modelOptions.cpu ? "cpu-reference" : (modelOptions.device ?? "default"),
                                       kernels: modelOptions.kernels, numerics: numerics.rawValue, golden: goldenFile ?? goldenFileName(numerics: numerics),
                                       atol: atol ?? 1e-4, rtol: rtol ?? 1e-4, toleranceEnforced: cmp.enforceTolerance,
                                       tensors: cmp.stats.map { .init(name: $0.name, count: $0.count, maxAbs: $0.maxAbs, relToScale: $0.relToScale, relRMS: $0.relRMS, toleranceUse: $0.toleranceUse) },
                                       exact: cmp.exactChecks, failures: cmp.failures, passed: cmp.passed))
        } else {
            print("numerics \(numerics.rawValue), checked against \(goldenFile ?? goldenFileName(numerics: numerics))")
            print(cmp.report)
            for f in cmp.failures { print("FAILED: \(f)") }
            print(cmp.passed ? "PASS" : "FAIL")
        }
        if !cmp.passed { throw ExitCode(1) }
    }

    func row(_ e: OpError) -> String {
        "  " + pad(e.section, 10) + pad(e.op, 12) + pad(String(e.count), 6) + pad(String(format: "%.3e", e.maxAbs), 12)
            + pad(String(format: "%.3e", e.nmse), 12) + pad(String(format: "%.0e", e.threshold), 8) + (e.nonFinite ? "NaN/Inf" : (e.passed ? "ok" : "OVER"))
    }

    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
}
