import ArgumentParser
import Foundation
import LoopCore
import LoopEngine
import LoopTokenizer

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Greedy-decode a JSONL task file and report exact-match accuracy per difficulty, passes used and tokens/s.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "JSONL file: {\"prompt\": ..., \"answer\": ..., \"difficulty\": k} per line.") var tasks: String
    @Option(help: "Exit policy POLICY[:THRESHOLD] (e.g. q-exit:0.5); default: every pass.") var exit: String?
    @Option(help: "Evaluate only the first N tasks.") var limit: Int?
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be >= 1") }
        var list = try EvalTask.load(URL(fileURLWithPath: tasks))
        if let limit { list = Array(list.prefix(limit)) }
        let model = try modelOptions.load(quiet: json)
        let dir = modelOptions.modelURL
        let tokenizer = try loadTokenizer(dir)
        let policy = try exit.map { try ExitPolicy.parse($0, info: model.info) } ?? .none
        let tokConfig = ModelFiles.tokenizerConfig(at: dir)
        let stops = try stopTokens(model: model, directory: dir, tokenizer: tokenizer, tokenizerConfig: tokConfig)
        let bar = ProgressBar(label: "evaluating", enabled: !json)
        let r = try Evaluation.run(model: model, tokenizer: tokenizer, tasks: list, exit: policy, stopTokens: stops) { done, total in
            bar.update(Double(done) / Double(total))
        }
        bar.finish()
        if json {
            try printJSON(r, pretty: false)
            return
        }
        print("\(r.tasks) tasks on \(r.backend), \(r.passes) passes, exit \(r.exit)")
        print("difficulty  count  accuracy  mean passes")
        for g in r.groups {
            print(String(format: "%10d  %5d  %8.3f  %11.2f", g.difficulty, g.count, g.accuracy, g.meanPasses))
        }
        print(String(format: "       all  %5d  %8.3f  %11.2f", r.tasks, r.accuracy, r.meanPasses))
        print(String(format: "%d answer tokens, decode %.1f tok/s, %.1f tok/s overall (prompt + answer) in %.2f s", r.generatedTokens,
                     r.decodeTokensPerSecond, r.tokensPerSecond, r.seconds))
    }
}
