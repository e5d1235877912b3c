import Foundation
import LoopCore

/// Per-pass readouts of one prompt: what the model would predict if it stopped after pass t.
public struct LensResult: Sendable {
    public var tokens: Int
    public var vocab: Int
    public var hidden: Int
    /// logits[t] = [tokens x vocab] from the head on pass t+1's state.
    public var logits: [[Float]] = []
    /// states[t] = [tokens x hidden] recurrent state after pass t+1.
    public var states: [[Float]] = []
    /// exits[t] = [tokens] exit signal after pass t+1 (Ouro gate logit, LoopUS q), if any.
    public var exits: [[Float]] = []
    /// [tokens x hidden] recurrent state before pass 1 (what the prelude leaves; policies that
    /// compare states, such as Huginn's latent-diff, start from it). Not part of `entries()`.
    public var initialState: [Float] = []
    public var exitSignal: ExitSignal

    /// The tensors `loopvk lens` writes: logits.<t>, hidden.<t>, exit.<t> (t = 1...N).
    public func entries() -> [SafeTensorsWriter.Entry] {
        var out: [SafeTensorsWriter.Entry] = []
        for t in logits.indices {
            out.append(.f32("logits.\(t + 1)", shape: [tokens, vocab], logits[t]))
            out.append(.f32("hidden.\(t + 1)", shape: [tokens, hidden], states[t]))
            if t < exits.count { out.append(.f32("exit.\(t + 1)", shape: [tokens], exits[t])) }
        }
        return out
    }
}

extension Model {
    /// Runs the prompt through every pass, reading the state, exit signal and head logits
    /// after each pass. The prompt must fit in one call (`layout.maxRows` rows).
    public func lens(tokens: [Int]) throws -> LensResult {
        guard !tokens.isEmpty else { throw LoopError.invalidArgument("no tokens given") }
        guard tokens.count <= layout.maxRows else {
            throw LoopError.invalidArgument("lens takes at most \(layout.maxRows) tokens in one call, got \(tokens.count) (raise --context)")
        }
        for t in tokens where t < 0 || t >= plan.vocab {
            throw LoopError.invalidArgument("token id \(t) is outside the vocabulary 0..<\(plan.vocab)")
        }
        let ids = tokens.map { Int32($0) }
        let runner = PlanRunner(plan: plan, backend: backend)
        var r = LensResult(tokens: ids.count, vocab: plan.vocab, hidden: plan.hidden, exitSignal: plan.exitSignal)
        try runner.prelude(tokens: ids, pos0: 0)
        r.initialState = try runner.state(rows: ids.count)
        for t in 0..<plan.passCount {
            try runner.pass(t, tokens: ids, pos0: 0)
            r.states.append(try runner.state(rows: ids.count))
            if plan.exitAct != nil { r.exits.append(try runner.exitValues(rows: ids.count)) }
            r.logits.append(try runner.head(tokens: ids, pos0: 0))
        }
        return r
    }
}
