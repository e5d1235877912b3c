import ArgumentParser
import Foundation
import LoopCore
import LoopEngine

struct Lens: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write per-pass logits, hidden states and exit signals of a prompt to a safetensors file.",
        discussion: "Tensors (F32): logits.<t> [tokens, vocab], hidden.<t> [tokens, hidden] for t = 1...N, and exit.<t> [tokens] where the family has an exit signal (Ouro gate logit, LoopUS q).")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions
    @Option(help: "Output .safetensors file.") var out: String

    func validate() throws { try promptOptions.requireOne() }

    func run() throws {
        let model = try modelOptions.load(quiet: true, maxRows: 4096)
        let ids = try promptOptions.resolve(tokenizer: { try loadTokenizer(modelOptions.modelURL) })
        let r = try model.lens(tokens: ids)
        let meta = ["model": model.checkpoint.directory.lastPathComponent, "backend": model.backend.name,
                    "passes": String(model.plan.passCount), "tokens": ids.map(String.init).joined(separator: ","),
                    "exit_signal": model.plan.exitSignal.rawValue]
        try SafeTensorsWriter.write(r.entries(), to: URL(fileURLWithPath: out), metadata: meta)
        printErr("wrote \(r.entries().count) tensors for \(ids.count) tokens x \(model.plan.passCount) passes to \(out)")
    }
}
