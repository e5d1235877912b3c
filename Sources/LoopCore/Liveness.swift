/// Dead-op removal over a run of plan sections.
///
/// Prefill runs every pass for every prompt row to fill the KV caches, but it never reads the
/// prompt rows' final states: the last prompt token is decoded, not prefilled. So in the last
/// pass's last layer only the K/V path matters — its attention, output projection and MLP feed
/// nothing — and no pass's exit signal is read. `Liveness.prune` finds such ops.
extension Op {
    /// Whether the op changes state other than its output activation: the KV caches, or the
    /// exit control row that decides which later sections run.
    public var hasSideEffects: Bool {
        switch self {
        case .kvWrite, .kvCopy, .exitDecide: return true
        default: return false
        }
    }
}

public enum Liveness {
    /// `sections` with every op removed whose result nothing reads: walking back from the end,
    /// an op stays when it has side effects, or when it writes an activation that a later
    /// kept op reads or that `liveOut` names (activations read after the last section).
    /// Activations are tracked by name (any column window), and a name once read stays live for
    /// all earlier writers, so the pruning only errs towards keeping ops. Same section count.
    public static func prune(_ sections: [[Op]], liveOut: Set<String>) -> [[Op]] {
        var live = liveOut
        var kept = sections.map { _ in [Op]() }
        for s in sections.indices.reversed() {
            for op in sections[s].reversed() {
                let needed = op.hasSideEffects || op.output.map { live.contains($0.name) } ?? false
                guard needed else { continue }
                kept[s].append(op)
                for input in op.inputs { live.insert(input.name) }
            }
            kept[s].reverse()
        }
        return kept
    }
}
