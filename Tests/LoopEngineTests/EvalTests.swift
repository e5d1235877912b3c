import Foundation
import LoopCore
import LoopEngine
import LoopTokenizer
import Testing

/// The bundled looped-arith model on its dev set, against the accuracies its README publishes
/// (official Ouro code, 60 held-out problems per difficulty; the dev set here has ~33 per
/// difficulty, so each figure is allowed a sampling margin of 0.2).
@Suite struct EvalTests {
    /// Model README: accuracy by difficulty (1...5) for p1...p4 and Q-exit 0.5 / 0.7 / 0.9.
    static let published: [String: [Double]] = [
        "p1": [0.967, 0.683, 0.117, 0.117, 0.083],
        "p2": [1.000, 1.000, 0.800, 0.633, 0.283],
        "p3": [1.000, 1.000, 1.000, 0.867, 0.733],
        "p4": [1.000, 1.000, 0.983, 0.983, 0.933],
        "q0.5": [1.000, 1.000, 0.983, 0.983, 0.933],
        "q0.7": [1.000, 1.000, 0.983, 0.983, 0.933],
        "q0.9": [1.000, 1.000, 0.983, 0.983, 0.933],
    ]
    static let margin = 0.2

    static let tasks = try! EvalTask.load(Paths.defaultModel.appendingPathComponent("eval-dev.jsonl"))
    static let tokenizer = try! Tokenizer(contentsOf: Paths.defaultModel.appendingPathComponent("tokenizer.json"))

    /// Every pass, CPU reference (computed once).
    static let fourPasses = try! EvalTests().eval(.cpu)

    func eval(_ choice: BackendChoice, passes: Int? = nil, exit: ExitPolicy = .none, tasks: [EvalTask] = EvalTests.tasks) throws -> EvalReport {
        let model = try Model(directory: Paths.defaultModel, passes: passes, backend: choice, maxContext: 64, maxRows: 32)
        return try Evaluation.run(model: model, tokenizer: Self.tokenizer, tasks: tasks, exit: exit, stopTokens: [0])
    }

    func checkAgainstTable(_ r: EvalReport, _ key: String) {
        for g in r.groups where (1...5).contains(g.difficulty) {
            let want = Self.published[key]![g.difficulty - 1]
            #expect(abs(g.accuracy - want) <= Self.margin, "\(key) difficulty \(g.difficulty): accuracy \(g.accuracy), README \(want)")
        }
    }

    @Test(arguments: [1, 2, 3, 4])
    func accuracyPerPassCount(passes: Int) throws {
        let r = try eval(.cpu, passes: passes)
        checkAgainstTable(r, "p\(passes)")
        #expect(r.meanPasses == Double(passes))
    }

    /// Q-exit keeps the 4-pass accuracy while really running fewer passes.
    @Test(arguments: [Float(0.5), 0.7, 0.9])
    func accuracyPerQExitThreshold(q: Float) throws {
        let r = try eval(.cpu, exit: .qExit(q))
        checkAgainstTable(r, "q\(q)")
        #expect(r.meanPasses < 4, "q-exit \(q) used \(r.meanPasses) passes per token")
        #expect(r.correct >= Self.fourPasses.correct - 2, "q-exit \(q): \(r.correct) correct, 4 passes: \(Self.fourPasses.correct)")
    }

    /// On Vulkan (lavapipe in CI) the same problems get the same answers with the same passes.
    @Test(.enabled(if: backendChoices.count > 1), arguments: [ExitPolicy.none, .qExit(0.5)])
    func vulkanGivesTheCPUAnswers(exit: ExitPolicy) throws {
        let slice = Array(Self.tasks.prefix(50))
        let cpu = try eval(.cpu, exit: exit, tasks: slice)
        let gpu = try eval(.vulkan(device: nil), exit: exit, tasks: slice)
        #expect(gpu.answers == cpu.answers)
        #expect(gpu.meanPasses == cpu.meanPasses)
    }

    @Test func malformedTaskLinesNameTheLine() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        try "{\"prompt\": \"Q: 1 plus 1 A:\", \"answer\": \"2\", \"difficulty\": 1}\n{\"prompt\": 5}\n".write(to: url, atomically: true, encoding: .utf8)
        #expect { try EvalTask.load(url) } throws: { "\($0)".contains("line 2") }
    }
}
