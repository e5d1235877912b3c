import ArgumentParser
import Foundation
import LoopCore
import LoopEngine
import LoopTokenizer

/// --model, --passes, --cpu, --device, --context: shared by every command that loads a model.
struct ModelOptions: ParsableArguments {
    @Option(help: "Checkpoint folder (config.json + safetensors) or a .gguf file. Default: the bundled looped-arith model.")
    var model: String?

    @Option(help: "Loop passes per token (default: from config.json).")
    var passes: Int?

    @Flag(help: "Run on the CPU reference instead of Vulkan.")
    var cpu = false

    @Option(help: "Vulkan device: a name substring or index (see `loopvk devices`).")
    var device: String?

    @Option(help: "Context length to allocate (positions; default min(model limit, 4096)).")
    var context: Int?

    @Option(help: ArgumentHelp("Kernel choices: presets and key=value pairs, e.g. gpu,kv=f32 or read=storage,splits=8,fusion=off (after LOOPVK_KERNELS; `loopvk devices` prints the result).",
                               discussion: "Keys: " + KernelConfig.keys.map { "\($0.key)=\($0.values)" }.joined(separator: ", ") + ". Presets: " + KernelConfig.presets.joined(separator: ", ") + "."))
    var kernels: String?

    @Option(help: "Load GLSL from this folder instead of the copies built into the binary (kernel work).")
    var shaderDir: String?

    @Option(help: "Activation rounding: fp32 (default; parity with fp32 reference runs) or bf16 (rounds where the official code's bfloat16 run rounds; CPU reference only, with --cpu).")
    var numerics: String = "fp32"

    func resolvedNumerics() throws -> Numerics { try Numerics.parse(numerics) }

    var modelURL: URL { URL(fileURLWithPath: model ?? DefaultModel.path()) }

    /// `neededContext`: positions the command will use, when it knows (`run`: the prompt plus
    /// --max-tokens); without --context the KV cache is sized to that instead of the default.
    func load(quiet: Bool = false, maxRows: Int = 256, neededContext: Int? = nil, batch: (sequences: Int, kv: KVBudget?) = (1, nil)) throws -> Model {
        if let shaderDir { Engine.useShaderDirectory(shaderDir) }
        let backend: BackendChoice = cpu ? .cpu : .vulkan(device: device)
        let inline = !cpu && Engine.tuneCPUDeviceThreads(forCheckpoint: modelURL)
        let bar = ProgressBar(label: "loading weights", enabled: !quiet)
        defer { bar.finish() }
        let model = try Model(directory: modelURL, passes: passes, backend: backend, maxContext: context ?? neededContext, maxRows: maxRows, kernels: kernels,
                              numerics: try resolvedNumerics(), batch: batch) { bar.update($0) }
        if inline, !quiet, model.vulkan?.context.info.kind == .cpu {
            bar.finish()
            printErr("small model: LP_NUM_THREADS=0, lavapipe runs each dispatch on the submitting thread (set LP_NUM_THREADS to override)")
        }
        return model
    }
}

/// --prompt TEXT | --prompt-file F | --tokens 1,2,3
struct PromptOptions: ParsableArguments {
    @Option(help: "Prompt text.")
    var prompt: String?

    @Option(help: "Read the prompt from a UTF-8 file.")
    var promptFile: String?

    @Option(help: "Prompt as comma-separated token ids.")
    var tokens: String?

    var given: Int { [prompt != nil, promptFile != nil, tokens != nil].filter { $0 }.count }

    func requireOne() throws {
        if given != 1 { throw ValidationError("give exactly one of --prompt, --prompt-file or --tokens") }
    }

    func text() throws -> String? {
        if let prompt { return prompt }
        guard let promptFile else { return nil }
        guard let data = FileManager.default.contents(atPath: promptFile) else { throw LoopError.fileNotFound(promptFile) }
        guard let s = String(data: data, encoding: .utf8) else { throw LoopError.invalidArgument("prompt file \(promptFile) is not valid UTF-8") }
        return s
    }

    func tokenIDs() throws -> [Int]? {
        guard let tokens else { return nil }
        var out: [Int] = []
        for part in tokens.split(separator: ",", omittingEmptySubsequences: false) {
            guard let v = Int(part.trimmingCharacters(in: .whitespaces)), v >= 0 else {
                throw LoopError.invalidArgument("--tokens: \"\(part)\" is not a token id")
            }
            out.append(v)
        }
        return out
    }

    /// At most one source here; commands that need a prompt call `requireOne` in their own
    /// `validate` (compare --golden reads the fixture's own).
    func validate() throws {
        if given > 1 { throw ValidationError("give exactly one of --prompt, --prompt-file or --tokens") }
    }

    /// Token ids of the prompt (text through the tokenizer, with its begin tokens).
    func resolve(tokenizer: () throws -> Tokenizer, chat: ((String) throws -> String)? = nil) throws -> [Int] {
        try requireOne()
        if let ids = try tokenIDs() { return ids }
        var text = try text() ?? ""
        guard !text.isEmpty else { throw LoopError.invalidArgument("the prompt is empty") }
        if let chat { text = try chat(text) }
        let ids = try tokenizer().encode(text, addSpecialTokens: true)
        guard !ids.isEmpty else { throw LoopError.invalidArgument("the prompt encodes to no tokens") }
        return ids
    }
}

enum DefaultModel {
    /// The bundled model: $LOOPVK_MODEL, ./Models/looped-arith, or the copy in this source tree.
    static func path() -> String {
        if let env = ProcessInfo.processInfo.environment["LOOPVK_MODEL"], !env.isEmpty { return env }
        let local = FileManager.default.currentDirectoryPath + "/Models/looped-arith"
        if FileManager.default.fileExists(atPath: local + "/config.json") { return local }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return source.appendingPathComponent("Models/looped-arith").path
    }
}

func loadTokenizer(_ dir: URL) throws -> Tokenizer {
    try ModelFiles.tokenizer(at: dir)
}

/// A one-line progress bar on standard error (only on a terminal).
final class ProgressBar {
    let label: String
    let enabled: Bool
    private var last = -1

    init(label: String, enabled: Bool) {
        self.label = label
        self.enabled = enabled && isatty(2) != 0
    }

    func update(_ fraction: Double) {
        guard enabled else { return }
        let pct = Int((fraction * 100).rounded(.down))
        guard pct != last else { return }
        last = pct
        let width = 30
        let filled = width * pct / 100
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write("\r\(label) [\(bar)] \(pct)%".data(using: .utf8)!)
    }

    /// Ends the bar's line (once).
    func finish() {
        if enabled && last >= 0 { FileHandle.standardError.write("\n".data(using: .utf8)!) }
        last = -1
    }
}

/// End-of-sequence ids: config.json's, plus generation_config.json, tokenizer_config.json and
/// the family's documented stops.
func stopTokens(model: Model, directory dir: URL, tokenizer: Tokenizer, tokenizerConfig: TokenizerConfig?) throws -> Set<Int> {
    try stopTokenIDs(generationConfigURL: dir.appendingPathComponent("generation_config.json"),
                     tokenizerConfig: tokenizerConfig, tokenizer: tokenizer, familyStops: model.info.stopTokens)
        .union(model.info.eosTokenIds)
}

func printErr(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}

func jsonString(_ obj: Any) throws -> String {
    String(data: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), encoding: .utf8)!
}

/// Prints an Encodable report as JSON (sorted keys; pretty unless one line is wanted).
func printJSON<T: Encodable>(_ value: T, pretty: Bool = true) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
    print(String(data: try enc.encode(value), encoding: .utf8)!)
}
