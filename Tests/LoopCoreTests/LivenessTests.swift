import Foundation
import Testing
@testable import LoopCore
import LoopTestSupport

@Suite struct LivenessTests {
    func linear(_ x: String, _ out: String, accumulate: Bool = false) -> Op {
        .linear(x: ActRef(x), weight: WeightRef("w"), bias: nil, out: ActRef(out), inFeatures: 4, outFeatures: 4, accumulate: accumulate)
    }

    /// Ops that only feed unread activations go; KV writes and what they read stay; an
    /// accumulating op keeps the earlier writer of its output; `liveOut` keeps a chain.
    @Test func pruneKeepsWhatIsReadAndSideEffects() throws {
        let sections: [[Op]] = [
            [linear("x", "a"), .kvWrite(src: ActRef("a"), slot: 0, part: .k), linear("a", "b")],
            [linear("x", "c"), linear("b", "c", accumulate: true), .unary(kind: .silu, x: ActRef("c"), out: ActRef("d"), dim: 4, scale: 1)],
        ]
        let cold = Liveness.prune(sections, liveOut: [])
        #expect(cold.count == 2)
        #expect(cold[0].map(\.kindName) == ["matmul", "kv_write"])
        #expect(cold[1].isEmpty)

        let warm = Liveness.prune(sections, liveOut: ["d"])
        #expect(warm[0].map(\.kindName) == ["matmul", "kv_write", "matmul"])
        #expect(warm[1].map(\.kindName) == ["matmul", "matmul", "unary"])

        // Reading one column window keeps a writer of another window of the same name.
        let windows: [[Op]] = [[.copy(src: ActRef("x"), out: ActRef("e", col: 4), width: 4),
                                .kvWrite(src: ActRef("e"), slot: 1, part: .v)]]
        #expect(Liveness.prune(windows, liveOut: [])[0].map(\.kindName) == ["copy", "kv_write"])
    }

    /// On every family's plan, prefill's pruning keeps every KV write and removes only the exit
    /// signals and ops after the last attention's K/V writes; with the state live, the passes
    /// keep their attention.
    @Test(arguments: ["ouro-tiny-fp32", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"])
    func familyPlans(fixture: String) throws {
        let (plan, _) = try ModelFamily.plan(checkpoint: try Checkpoint(directory: fixtureURL(fixture)), passes: nil)
        var head = plan.head
        while let last = head.last, last.output?.name == plan.logitsAct { head.removeLast() }
        let sections = [plan.prelude] + plan.passes + [head]
        let kvWrites = { (s: [[Op]]) in s.joined().filter { if case .kvWrite = $0 { return true } else { return false } }.count }
        let cold = Liveness.prune(sections, liveOut: [])
        #expect(kvWrites(cold) == kvWrites(sections) && kvWrites(sections) > 0)
        #expect(cold.joined().count < sections.joined().count)
        // Nothing before the last pass loses more than its exit signal (Ouro: the gate's linear;
        // LoopUS: LayerNorm, linear, sigmoid; Huginn has none).
        for t in 0..<(plan.passes.count - 1) {
            let lost = plan.passes[t].count - cold[1 + t].count
            #expect(lost >= 0 && lost <= 3, "\(fixture) pass \(t) lost \(lost) ops")
            #expect(plan.exitAct != nil || lost == 0)
        }
        // The last layer's attention of the last pass is gone (its output feeds nothing) unless
        // a coda follows (Huginn), whose own last attention goes instead.
        let attentions = { (ops: [Op]) in ops.filter { if case .attention = $0 { return true } else { return false } }.count }
        #expect(attentions(Array(cold.joined())) == attentions(Array(sections.joined())) - 1)
        // With the state read afterwards (warm start), every pass keeps all of its attention.
        let warm = Liveness.prune(sections, liveOut: [plan.stateAct])
        #expect(attentions(Array(warm[1...plan.passes.count].joined())) == attentions(Array(plan.passes.joined())))
    }
}
