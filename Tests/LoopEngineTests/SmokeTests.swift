import Foundation
import LoopCore
import LoopEngine
import Testing

enum Paths {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let defaultModel = repo.appendingPathComponent("Models/looped-arith")
    /// The debug `loopvk` binary `swift test` builds beside the tests.
    static let cli = repo.appendingPathComponent(".build/debug/loopvk")
}

/// Runs the `loopvk` binary; returns (exit status, stdout, stderr).
func runCLI(_ args: [String], env: [String: String] = [:]) throws -> (Int32, String, String) {
    let p = Process()
    p.executableURL = Paths.cli
    p.arguments = args
    var e = ProcessInfo.processInfo.environment
    for (k, v) in env { e[k] = v }
    p.environment = e
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), r = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: r, as: UTF8.self))
}

@Suite(.serialized) struct SmokeTests {
    @Test(.enabled(if: backendChoices.count > 1)) func defaultModelSamePassesOnCPUAndGPU() throws {
        let tokens: [Int32] = [49, 26, 4, 22, 7, 20, 4, 34, 26]
        var outs: [[Float]] = []
        for choice in [BackendChoice.cpu, .vulkan(device: nil)] {
            let m = try Model(directory: Paths.defaultModel, backend: choice)
            let n = tokens.count
            try m.backend.run(m.plan.prelude, section: SectionKey("prelude", rows: n), tokens: tokens, pos0: 0)
            for (t, ops) in m.plan.passes.enumerated() {
                try m.backend.run(ops, section: SectionKey("pass\(t)", rows: n), tokens: tokens, pos0: 0)
            }
            try m.backend.run(m.plan.head, section: SectionKey("head", rows: n), tokens: tokens, pos0: 0)
            outs.append(try m.backend.read(m.plan.logitsAct, rows: n))
        }
        var worst: Float = 0
        for i in outs[0].indices { worst = max(worst, abs(outs[0][i] - outs[1][i]) / (1e-4 + abs(outs[0][i]))) }
        print("worst", worst)
        #expect(worst < 1)
    }
}
