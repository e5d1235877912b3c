import ArgumentParser
import Foundation
import LoopCore
import LoopEngine

/// `loopvk quantize`: a checkpoint folder to one GGUF file in a block format.
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Write a checkpoint folder as one GGUF file (or an MLX folder) with quantized weights, tokenizer and chat template included.",
        discussion: """
            Types: q8_0, q4_0, q4_k_m, q6_k (llama.cpp's block formats and its per-tensor choices), \
            f16, f32. Llama, Qwen3 and Ouro files use llama.cpp's layout (llama.cpp loads them; the \
            Ouro exit gate is kept in loopvk.* metadata); Huginn and LoopUS keep their tensor names \
            under their own architecture names. The result runs with --model FILE.gguf. \
            mlx4, mlx8: an MLX-quantized folder as mlx-lm writes one (--out is a new folder; \
            --group-size 32, 64 or 128), which runs with --model DIR.
            """
    )

    @Option(help: "Checkpoint folder (config.json + safetensors).") var model: String
    @Option(help: "q8_0, q4_0, q4_k_m, q6_k, f16, f32 (GGUF) or mlx4, mlx8 (MLX folder).") var type: String
    @Option(help: "Output .gguf file, or for mlx4/mlx8 a new folder (written under a temporary name, then renamed).") var out: String
    @Option(help: "MLX group size (mlx4/mlx8 only): 32, 64 or 128.") var groupSize: Int = 64
    @Flag(help: "Print the summary as JSON.") var json = false

    func run() throws {
        if let bits = ["mlx4": 4, "mlx8": 8][type.lowercased()] {
            let bar = ProgressBar(label: "quantizing", enabled: true)
            let r = try Quantize.runMLX(model: URL(fileURLWithPath: model), bits: bits, groupSize: groupSize, out: URL(fileURLWithPath: out)) { done, total, _ in
                bar.update(total == 0 ? 1 : Double(done) / Double(total))
            }
            bar.finish()
            if json { try printJSON(r); return }
            print("wrote \(out): MLX \(r.bits)-bit, group size \(r.groupSize), \(r.quantized) weights quantized, \(r.kept) tensors as stored, "
                  + String(format: "%.2f MB from %.2f MB", Double(r.outputBytes) / 1e6, Double(r.inputBytes) / 1e6))
            return
        }
        guard let t = Quantize.FileType(rawValue: type.lowercased()) else {
                throw LoopError.invalidArgument("unknown --type \(type) (use " + (Quantize.FileType.allCases.map(\.rawValue) + ["mlx4", "mlx8"]).joined(separator: ", ") + ")")
            }
            let bar = ProgressBar(label: "quantizing", enabled: true)
            let report = try Quantize.run(model: URL(fileURLWithPath: model), type: t, out: URL(fileURLWithPath: out)) { done, total, _ in
                bar.update(total == 0 ? 1 : Double(done) / Double(total))
            }
            bar.finish()
            if json { try printJSON(report); return }
            let types = report.types.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            print("wrote \(out): \(report.architecture) \(report.fileType), \(report.tensors) tensors (\(types)), "
                  + String(format: "%.2f MB from %.2f MB", Double(report.outputBytes) / 1e6, Double(report.inputBytes) / 1e6))
            if !report.dropped.isEmpty { print("not written (nothing reads them): " + report.dropped.joined(separator: ", ")) }
    }
}
