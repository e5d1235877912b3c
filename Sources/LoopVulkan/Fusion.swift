import Foundation
import LoopCore

/// What one group of dispatches computes: one plan op, or consecutive plan ops that one shader
/// computes together. On lavapipe every dispatch costs ~35-40 µs of thread-pool wake-up
/// whatever its size (see DESIGN.md), so a looped model's ~80 small dispatches per pass are a
/// large share of a decode token. The plan (and the CPU reference) keeps the separate ops; only
/// the Vulkan recording fuses them, and the configuration's `fusion=off` turns it off. Each fused shape has a
/// parity test against the CPU running the separate ops (FusionTests).
///
/// Not fused, on purpose: siluMul inside the down GEMV's input loads. Every workgroup would
/// recompute silu for the whole input, and the GEMV is ALU-bound on CPU devices.
enum FusedOps {
    case op(Op)
    /// An rmsNorm (any mode, one group per row) whose output the next op normalizes again with
    /// a plain rmsNorm: norm + residual + next norm in one workgroup per row (rmsnorm.comp chain).
    case normThenNorm(Op, Op)
    /// kvWrite of two parts (k then v) of one slot: one kv_write.comp dispatch, z = part.
    case kvPair(Op, Op)
    /// The exit gate's one-output linear (one row) and the device exit decision that reads it:
    /// exit_decide.comp computes the product and decides in one workgroup.
    case gateDecide(Op, Op)
    /// A rope over q and k side by side, then the k and v writes of one slot, k being the
    /// rope's last heads: rope.comp also stores the rotated k and copies v (rope, k, v).
    case ropeKV(Op, Op, Op)
    /// The head's linear (not accumulating) and the argmax over all of its output (greedy
    /// decode): on the texel path, one row, matvec.comp ARGMAX also finds each workgroup's best
    /// logit and the last workgroup to finish reduces those, so the argmax does not reread the
    /// logits as a second dispatch. Otherwise the two ops run apart.
    case headArgmax(Op, Op)
    /// The stacked gate/up product (not accumulating) and the gated SiLU of its two halves: on
    /// the texel path matvec.comp / matmul.comp SILU compute each gate block with its up block
    /// and store silu(gate) * up as well. Otherwise the two ops run apart.
    case gateUpSilu(Op, Op)
    /// Consecutive kvCopy ops (the KV fill after an early exit): kv_copy.comp PAIRS 8 copies
    /// up to 8 buffers (K or V of one slot) per dispatch.
    case kvCopies([Op])

    var ops: [Op] {
        switch self {
        case .op(let o): return [o]
        case .normThenNorm(let a, let b), .kvPair(let a, let b), .gateDecide(let a, let b), .headArgmax(let a, let b),
             .gateUpSilu(let a, let b): return [a, b]
        case .ropeKV(let a, let b, let c): return [a, b, c]
        case .kvCopies(let ops): return ops
        }
    }

    /// The profile label: the op kinds joined with "+".
    var label: String { ops.map(\.kindName).joined(separator: "+") }

    /// Groups consecutive ops into steps, fusing the shapes above. `kvWidth`: the KV cache row.
    static func fuse(_ ops: [Op], kvWidth: Int, enabled: Bool) -> [FusedOps] {
        guard enabled else { return ops.map { .op($0) } }
        var steps: [FusedOps] = []
        var i = 0
        while i < ops.count {
            if case .kvCopy = ops[i], i + 1 < ops.count, case .kvCopy = ops[i + 1] {
                var run = [ops[i]]
                while i + run.count < ops.count, case .kvCopy = ops[i + run.count] { run.append(ops[i + run.count]) }
                steps.append(.kvCopies(run))
                i += run.count
            } else if i + 2 < ops.count, let s = triple(ops[i], ops[i + 1], ops[i + 2], kvWidth: kvWidth) {
                steps.append(s)
                i += 3
            } else if i + 1 < ops.count, let s = pair(ops[i], ops[i + 1]) {
                steps.append(s)
                i += 2
            } else {
                steps.append(.op(ops[i]))
                i += 1
            }
        }
        return steps
    }

    private static func triple(_ a: Op, _ b: Op, _ c: Op, kvWidth: Int) -> FusedOps? {
        guard case let .rope(x, heads, headDim, _, _, _) = a, case let .kvWrite(_, slot1, part1) = b,
              case let .kvWrite(_, slot2, part2) = c, slot1 == slot2, part1 != part2 else { return nil }
        let (k, v) = part1 == .k ? (b, c) : (c, b)
        guard case let .kvWrite(srcK, _, _) = k, headDim > 0, kvWidth % headDim == 0, kvWidth <= heads * headDim,
              srcK == ActRef(x.name, col: x.col + heads * headDim - kvWidth) else { return nil }
        return .ropeKV(a, k, v)
    }

    private static func pair(_ a: Op, _ b: Op) -> FusedOps? {
        switch (a, b) {
        case let (.rmsNorm(_, _, _, out1, dim1, groups1, _, _), .rmsNorm(x2, nil, _, _, dim2, groups2, _, .plain)):
            // The second reads exactly the first's output (Kernels encodes the two apart when
            // their weights differ in dtype).
            guard groups1 == 1, groups2 == 1, dim1 == dim2, x2 == out1 else { return nil }
            return .normThenNorm(a, b)
        case let (.linear(_, _, _, out, _, 1, false), .exitDecide(signal, _, _, _, _, _)):
            guard signal == out else { return nil }
            return .gateDecide(a, b)
        case let (.linear(_, _, _, out, _, outF, false), .siluMul(gate, up, _, dim)):
            guard gate == out, up == ActRef(out.name, col: out.col + dim), outF == 2 * dim else { return nil }
            return .gateUpSilu(a, b)
        case let (.linear(_, _, _, out, _, outF, false), .argmax(x, _, dim)):
            guard x == out, dim == outF else { return nil }
            return .headArgmax(a, b)
        case let (.kvWrite(_, slot1, part1), .kvWrite(_, slot2, part2)):
            guard slot1 == slot2, part1 != part2 else { return nil }
            return .kvPair(a, b)
        default:
            return nil
        }
    }
}
