import Foundation
import LoopCore
import LoopTokenizer

/// One task line: `{"prompt": ..., "answer": ..., "difficulty": k}`.
public struct EvalTask: Sendable {
    public var prompt: String
    public var answer: String
    public var difficulty: Int

    /// Parses JSONL; a malformed line is an error naming the line number.
    public static func load(_ url: URL) throws -> [EvalTask] {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw LoopError.fileNotFound(url.path) }
        guard let text = String(data: data, encoding: .utf8) else { throw LoopError.invalidArgument("\(url.path) is not valid UTF-8") }
        var tasks: [EvalTask] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            func fail(_ why: String) -> LoopError { .invalidArgument("\(url.lastPathComponent) line \(i + 1): \(why)") }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any] else { throw fail("not a JSON object") }
            guard let prompt = obj["prompt"] as? String, !prompt.isEmpty else { throw fail("\"prompt\" is missing or not a non-empty string") }
            let answer: String
            if let a = obj["answer"] as? String { answer = a } else if let n = obj["answer"] as? NSNumber { answer = n.stringValue } else {
                throw fail("\"answer\" is missing")
            }
            var difficulty = 0
            if let d = obj["difficulty"] {
                guard let n = d as? NSNumber, n.doubleValue == n.doubleValue.rounded() else { throw fail("\"difficulty\" is not an integer") }
                difficulty = n.intValue
            }
            tasks.append(EvalTask(prompt: prompt, answer: answer, difficulty: difficulty))
        }
        guard !tasks.isEmpty else { throw LoopError.invalidArgument("\(url.path) holds no tasks") }
        return tasks
    }
}

public struct EvalReport: Sendable, Codable {
    public struct Group: Sendable, Codable {
        public var difficulty: Int
        public var count: Int
        public var correct: Int
        public var meanPasses: Double
        public var accuracy: Double { count == 0 ? 0 : Double(correct) / Double(count) }
    }
    public var tasks: Int
    public var correct: Int
    public var accuracy: Double { tasks == 0 ? 0 : Double(correct) / Double(tasks) }
    public var groups: [Group]
    /// Mean passes per generated token.
    public var meanPasses: Double
    public var generatedTokens: Int
    /// Decode tokens per second (answer tokens / decode time) and all tokens (prompt + answer)
    /// per second of wall time.
    public var decodeTokensPerSecond: Double
    public var tokensPerSecond: Double
    public var seconds: Double
    public var exit: String
    public var passes: Int
    public var backend: String
    /// Per task: the answer produced and whether it matched.
    public var answers: [String]
    public var matches: [Bool]
}

public enum Evaluation {
    /// Greedy-decodes each task (stop at end-of-sequence or a newline) and exact-matches the
    /// stripped completion against `answer`.
    public static func run(model: Model, tokenizer: Tokenizer, tasks: [EvalTask], exit: ExitPolicy, stopTokens: Set<Int>,
                           maxTokens: Int = 16, progress: ((Int, Int) -> Void)? = nil) throws -> EvalReport {
        let generator = Generator(model: model)
        var options = GenerationOptions()
        options.maxTokens = maxTokens
        options.exit = exit
        options.stopTokens = stopTokens
        var answers: [String] = [], matches: [Bool] = []
        var passesByDifficulty: [Int: [Int]] = [:]
        var allPasses: [Int] = []
        var decodeSeconds = 0.0, promptTokens = 0
        let t0 = DispatchTime.now().uptimeNanoseconds
        for (i, task) in tasks.enumerated() {
            let ids = tokenizer.encode(task.prompt, addSpecialTokens: true)
            var detok = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: true)
            var text = ""
            let r = try generator.generate(prompt: ids, options: options) { id, _ in
                text += detok.append(id)
                return !text.contains("\n")
            }
            text += detok.flush()
            let answer = String(text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
                .trimmingCharacters(in: .whitespaces)
            answers.append(answer)
            matches.append(answer == task.answer.trimmingCharacters(in: .whitespaces))
            passesByDifficulty[task.difficulty, default: []] += r.passes
            allPasses += r.passes
            decodeSeconds += r.decodeSeconds
            promptTokens += ids.count
            progress?(i + 1, tasks.count)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let difficulties = Set(tasks.map(\.difficulty)).sorted()
        let groups = difficulties.map { d -> EvalReport.Group in
            let idx = tasks.indices.filter { tasks[$0].difficulty == d }
            let p = passesByDifficulty[d] ?? []
            return .init(difficulty: d, count: idx.count, correct: idx.filter { matches[$0] }.count,
                         meanPasses: p.isEmpty ? 0 : Double(p.reduce(0, +)) / Double(p.count))
        }
        return EvalReport(tasks: tasks.count, correct: matches.filter { $0 }.count, groups: groups,
                          meanPasses: allPasses.isEmpty ? 0 : Double(allPasses.reduce(0, +)) / Double(allPasses.count),
                          generatedTokens: allPasses.count,
                          decodeTokensPerSecond: decodeSeconds > 0 ? Double(allPasses.count) / decodeSeconds : 0,
                          tokensPerSecond: seconds > 0 ? Double(allPasses.count + promptTokens) / seconds : 0,
                          seconds: seconds, exit: exit.description, passes: model.plan.passCount, backend: model.backend.name,
                          answers: answers, matches: matches)
    }
}
