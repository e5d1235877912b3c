import Foundation
import LoopCore
import LoopEngine
import LoopTestSupport
import LoopVulkan
import Testing

@Suite(.serialized, .enabled(if: backendChoices.count > 1))
struct ProfileTests {
    /// Exact mode: every pass and every op kind of the plan appear, and the trace holds one GPU
    /// event per dispatch.
    @Test(arguments: ["ouro-tiny-fp32", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"])
    func exactProfileCoversEveryPassAndOp(fixture: String) throws {
        let model = try Model(directory: fixtureURL(fixture), backend: .vulkan(device: nil), maxContext: 64, maxRows: 16)
        let (report, trace) = try Profiler.run(model: model, prompt: [3, 5, 7, 9], decodeTokens: 2, mode: .exact)
        let passes = Set(report.byOpAndPass.map(\.section))
        for t in 1...model.plan.passCount { #expect(passes.contains("pass \(t)"), "pass \(t) missing") }
        // A fused dispatch is labelled with its ops' kinds joined by "+" (Fusion.swift).
        let kinds = Set(report.byOpAndPass.flatMap { $0.op.split(separator: "+").map(String.init) })
        for op in model.plan.allOps where op.kindName != "kv_copy" { #expect(kinds.contains(op.kindName), "\(op.kindName) missing") }
        #expect(report.byOpAndPass.allSatisfy { $0.totalMicros > 0 && $0.count > 0 })

        let json = try JSONSerialization.jsonObject(with: trace) as? [String: Any]
        let events = try #require(json?["traceEvents"] as? [[String: Any]])
        let gpu = events.filter { ($0["cat"] as? String) == "gpu" }
        for e in events where (e["ph"] as? String) == "X" {
            #expect(e["name"] is String && e["ts"] is Double && e["dur"] is Double && e["pid"] is Int && e["tid"] is Int)
        }
        // One GPU event per recorded dispatch of every submitted section run.
        let vb = try #require(model.vulkan)
        #expect(gpu.count == vb.dispatchesSubmitted)
        #expect(gpu.count >= report.byOpAndPass.reduce(0) { $0 + $1.count })
    }

    @Test func lightProfileHasOneIntervalPerSectionRun() throws {
        let model = try Model(directory: fixtureURL("ouro-tiny-fp32"), backend: .vulkan(device: nil), maxContext: 64, maxRows: 16)
        let (report, _) = try Profiler.run(model: model, prompt: [3, 5, 7, 9], decodeTokens: 3, mode: .light)
        #expect(report.byOpAndPass.isEmpty)
        let pass1 = try #require(report.byPass.first { $0.section == "pass 1" })
        #expect(pass1.count == 1 + 3)     // prefill of 3 rows + one single-row step per generated token
    }
}
