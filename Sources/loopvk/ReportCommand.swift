import ArgumentParser
import Foundation
import LoopCore
import LoopEngine
import LoopTokenizer

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write one self-contained HTML page showing how the prediction forms pass by pass.",
        discussion: """
        Greedy-generates from the prompt with the exit policy (profiled on a Vulkan device), runs the lens over the prompt and \
        the generated tokens, and shows per row and pass: the exit signal against its threshold and why each token stopped, \
        the top tokens and the final token's rank, KL and cosine to the final pass, GPU time per pass and op kind, and with \
        --eval, accuracy against passes and exit thresholds from `loopvk eval --json` output.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions
    @Option(help: "Exit policy POLICY[:THRESHOLD], as for run (default none: every pass).") var exit: String?
    @Option(help: "Passes a token runs at least before an exit policy may stop it.") var minPasses: Int = 1
    @Option(help: "KV of skipped passes: latest, shared, reference.") var kv: String = "latest"
    @Option(help: "Most tokens to generate (greedy; stops at end-of-sequence).") var maxTokens: Int = 16
    @Option(help: "Top tokens shown per pass.") var top: Int = 5
    @Option(help: "`loopvk eval --json` output to plot (one report per line or a JSON array; repeatable).") var eval: [String] = []
    @Flag(help: "Skip the GPU profile.") var noProfile = false
    @Option(help: "Also write the report's data as JSON here.") var data: String?
    @Option(help: "Output .html file.") var out: String

    func run() throws {
        guard maxTokens >= 0, maxTokens <= 4096 else { throw ValidationError("--max-tokens must be in 0...4096") }
        guard minPasses >= 1 else { throw ValidationError("--min-passes must be >= 1") }
        guard (1...50).contains(top) else { throw ValidationError("--top must be in 1...50") }
        guard let kvPolicy = KVPolicy(rawValue: kv) else { throw ValidationError("--kv must be latest, shared or reference") }
        if let p = modelOptions.passes, p < 1 || p > 256 { throw ValidationError("--passes must be in 1...256") }
        // Eval files first: a malformed one fails before the model loads.
        let evals = try eval.flatMap { try LoopReport.loadEvals(URL(fileURLWithPath: $0)) }

        // --model may name a file of the checkpoint folder (config.json, model.safetensors).
        var options = modelOptions
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: options.modelURL.path, isDirectory: &isDir), !isDir.boolValue, !Checkpoint.isGGUF(options.modelURL) {
            options.model = options.modelURL.deletingLastPathComponent().path
        }
        let dir = options.modelURL
        let tokenizer = ModelFiles.hasTokenizer(at: dir) ? try loadTokenizer(dir) : nil
        let ids = try promptOptions.resolve(tokenizer: {
            guard let tokenizer else { throw LoopError.invalidArgument("\(dir.path) has no tokenizer.json; pass --tokens") }
            return tokenizer
        })
        guard !ids.isEmpty else { throw LoopError.invalidArgument("the report needs at least one prompt token") }
        let rows = ids.count + maxTokens
        let model = try options.load(quiet: true, maxRows: max(256, rows), neededContext: rows)

        var request = ReportRequest(prompt: ids)
        request.generation.maxTokens = maxTokens
        request.generation.minPasses = minPasses
        request.generation.exit = try exit.map { try ExitPolicy.parse($0, info: model.info) } ?? .none
        if let tokenizer {
            let tokConfig = ModelFiles.tokenizerConfig(at: dir)
            request.generation.stopTokens = try stopTokens(model: model, directory: dir, tokenizer: tokenizer, tokenizerConfig: tokConfig)
        } else {
            request.generation.stopTokens = Set(model.info.eosTokenIds)
        }
        request.kv = kvPolicy
        request.topK = top
        request.profile = !noProfile
        request.evals = evals
        let report = try LoopReport.build(model: model, request: request, tokenizer: tokenizer)
        let html = report.html()
        try write(Data(html.utf8), to: out)
        if let data {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try write(try enc.encode(report), to: data)
        }
        let kb = String(format: "%.0f KB", Double(html.utf8.count) / 1024)
        printErr("wrote \(out) (\(kb)): \(ids.count) prompt + \(report.generated.count) generated tokens x \(report.passCount) passes"
                 + (report.profile == nil ? ", \(report.profileNote ?? "no profile")" : ", GPU profile on \(report.profile!.device)")
                 + (evals.isEmpty ? "" : ", \(evals.count) eval runs"))
    }

    func write(_ bytes: Data, to path: String) throws {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw LoopError.invalidArgument("cannot write \(path): the folder \(folder) does not exist")
        }
        guard FileManager.default.createFile(atPath: path, contents: bytes) else {
            throw LoopError.invalidArgument("cannot write \(path) (is it writable?)")
        }
    }
}
