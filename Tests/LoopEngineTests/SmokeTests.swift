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
            // kv=f32: a 1e-4 parity check (with the f16 KV cache both backends round the cache,
            // and a value on a rounding boundary can round apart).
            let m = try Model(directory: Paths.defaultModel, backend: choice, kernels: "kv=f32")
            let n = tokens.count
            try m.backend.run(m.plan.prelude, section: SectionKey("prelude", rows: n), tokens: tokens, pos0: 0)
            for (t, ops) in m.plan.passes.enumerated() {
                try m.backend.run(ops, section: SectionKey("pass\(t)", rows: n), tokens: tokens, pos0: 0)
            }
            try m.backend.run(m.plan.head, section: SectionKey("head", rows: n), tokens: tokens, pos0: 0)
            outs.append(try m.backend.read(m.plan.logitsAct, rows: n))
        }
        // The logits are real (not all zero, finite) and the two backends agree to fp32 summation
        // order: |gpu - cpu| <= 1e-4 * (1 + |cpu|) element by element, same argmax per row.
        let (cpu, gpu) = (outs[0], outs[1])
        #expect(cpu.count == gpu.count && !cpu.isEmpty)
        #expect(cpu.allSatisfy(\.isFinite) && gpu.allSatisfy(\.isFinite))
        #expect(cpu.map { abs($0) }.max()! > 0.1, "the CPU logits are all (near) zero")
        var worst: Float = 0
        for i in cpu.indices { worst = max(worst, abs(cpu[i] - gpu[i]) / (1 + abs(cpu[i]))) }
        #expect(worst <= 1e-4, "worst |gpu - cpu| / (1 + |cpu|) = \(worst)")
        let vocab = cpu.count / tokens.count
        for r in 0..<tokens.count {
            let row = { (v: [Float]) in v[(r * vocab)..<((r + 1) * vocab)].enumerated().max { $0.element < $1.element }!.offset }
            #expect(row(cpu) == row(gpu), "row \(r): argmax differs")
        }
    }
}
