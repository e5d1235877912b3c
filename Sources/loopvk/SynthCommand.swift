import ArgumentParser
import Foundation
import LoopCore

/// `loopvk synth`: writes a random-weight checkpoint folder in a family's official format.
struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a random-weight checkpoint in a family's official format and real dimensions.",
        discussion: """
            Writes config.json (+ generation_config.json where the family ships one) and one \
            model.safetensors with the official tensor names and shapes. The weights are random: \
            for benchmarks and loader tests, not for text. Use --list to see the presets.
            """
    )

    @Option(help: "Model family: ouro, huginn, loopus or llama (plain Llama/Qwen3).")
    var family: String?

    @Option(help: "Preset name (see --list), e.g. ouro-1.4b, ouro-small.")
    var preset: String?

    @Option(help: "Output folder (created if needed; existing checkpoint files in it are replaced).")
    var out: String?

    @Option(help: "Random seed; the same seed gives the same bytes.")
    var seed: UInt64 = 0

    @Option(help: "Stored dtype: bf16, f16 or f32 (default: the preset's, bf16).")
    var dtype: String?

    @Flag(help: "List the families, presets and their parameter counts, then exit.")
    var list = false

    func run() throws {
        do {
            try runChecked()
        } catch let e as LoopError {
            // One clear line, no stack of wrappers.
            throw ValidationErrorLine(message: e.description)
        }
    }

    private func runChecked() throws {
        if list {
            for fam in LoopCore.Synth.families {
                for name in LoopCore.Synth.presets[fam, default: []] {
                    let n = try LoopCore.Synth.parameterCount(family: fam, preset: name)
                    let bytes = try LoopCore.Synth.fileSize(family: fam, preset: name)
                    let cols = fam.padding(toLength: 8, withPad: " ", startingAt: 0) + name.padding(toLength: 19, withPad: " ", startingAt: 0)
                    print(cols + String(format: "%9.1fM parameters  %6.2f GB in bf16", Double(n) / 1e6, Double(bytes) / 1e9))
                }
            }
            return
        }
        guard let family else { throw LoopError.invalidArgument("missing --family (ouro, huginn, loopus or llama)") }
        guard let preset else { throw LoopError.invalidArgument("missing --preset (see loopvk synth --list)") }
        guard let out else { throw LoopError.invalidArgument("missing --out DIR") }
        var dt: DType? = nil
        if let dtype {
            switch dtype.lowercased() {
            case "bf16", "bfloat16": dt = .bf16
            case "f16", "fp16", "float16": dt = .f16
            case "f32", "fp32", "float32": dt = .f32
            default: throw LoopError.invalidArgument("unknown --dtype \(dtype) (use bf16, f16 or f32)")
            }
        }
        let p = try LoopCore.Synth.preset(family: family, name: preset)
        let params = try LoopCore.Synth.parameterCount(family: family, preset: preset)
        let dir = URL(fileURLWithPath: out)

        let start = Date()
        var lastReport = Date.distantPast
        var shown = false
        let err = FileHandle.standardError
        try LoopCore.Synth.write(p, to: dir, seed: seed, dtype: dt) { done, total in
            // A progress line for files over 64 MB, at most 4 times a second.
            guard total > 64 << 20 else { return }
            let now = Date()
            guard done == total || now.timeIntervalSince(lastReport) >= 0.25 else { return }
            lastReport = now
            shown = true
            let line = String(format: "\rwriting model.safetensors: %.2f / %.2f GB (%3d%%)",
                              Double(done) / 1e9, Double(total) / 1e9, Int(100 * done / max(total, 1)))
            err.write(Data(line.utf8))
        }
        if shown { err.write(Data("\n".utf8)) }
        let seconds = Date().timeIntervalSince(start)
        let size = (try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("model.safetensors").path)[.size]
            as? NSNumber)?.int64Value ?? 0
        print(String(format: "wrote %@: %@ %@, %.1fM parameters, %@, %.2f GB in %.1f s", dir.path, family, preset,
                     Double(params) / 1e6, (dt ?? p.defaultDType).rawValue.lowercased(), Double(size) / 1e9, seconds))
    }
}

/// An error printed as its message alone (`Error: <message>`), exit code 1.
private struct ValidationErrorLine: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
