import LoopCore

/// Bytes an op moves (weights read + activations / KV read and written), the "napkin math"
/// behind GB/s figures and the decode roofline.
public struct OpCost {
    let plan: LoopPlan
    /// Stored bytes per element of a weight (a fraction for block formats).
    let elementBytes: (String) -> Double

    public init(model: Model) {
        plan = model.plan
        let weights = model.weights
        elementBytes = { name in
            guard let f = (try? weights.info(name))?.dtype.weightFormat else { return 4 }
            return Double(f.bytesPerBlock) / Double(f.elementsPerBlock)
        }
    }

    /// Bytes for `rows` rows at positions pos0 ..< pos0 + rows.
    public func bytes(_ op: Op, rows: Int, pos0: Int) -> Double {
        let r = Double(rows), f = 4.0
        func w(_ ref: WeightRef?) -> Double { ref.map { elementBytes($0.name) } ?? 0 }
        switch op {
        case let .embed(t, _, dim, _, _): return r * Double(dim) * (w(t) + f)
        case let .rmsNorm(_, add, weight, _, dim, groups, _, mode):
            let n = r * Double(dim * groups)
            return n * f * (2 + (add == nil ? 0 : 1) + (mode == .accumulate ? 1 : 0)) + Double(dim) * w(weight)
        case let .layerNorm(_, weight, bias, _, dim, _): return r * Double(dim) * 2 * f + Double(dim) * (w(weight) + w(bias))
        case let .linear(_, weight, bias, _, inF, outF, acc):
            return Double(inF * outF) * w(weight) + Double(outF) * w(bias) + r * (Double(inF) + Double(outF) * (acc ? 2 : 1)) * f
        case let .rope(_, heads, hd, _, _, _): return r * Double(heads * hd) * 2 * f + r * Double(hd) * f
        case .kvWrite: return r * Double(plan.kvWidth) * 2 * f
        case .kvCopy: return r * Double(plan.kvWidth) * 4 * f
        case let .attention(_, _, _, heads, _, hd, _):
            // Each query row reads K and V of every earlier position for each head.
            let positions = Double(rows) * Double(pos0) + r * (r + 1) / 2
            return positions * Double(heads * hd) * 2 * f + r * Double(heads * hd) * 2 * f
        case let .siluMul(_, _, _, dim): return r * Double(dim) * 3 * f
        case let .unary(_, _, _, dim, _): return r * Double(dim) * 2 * f
        case let .binary(_, _, _, _, dim): return r * Double(dim) * 3 * f
        case let .copy(_, _, width): return r * Double(width) * 2 * f
        case let .argmax(_, _, dim): return r * Double(dim) * f
        case let .softmax(_, _, dim): return r * Double(dim) * 3 * f
        case let .exitDecide(_, _, _, passes, _, _): return Double(1 + 2 * ExitControl.width(passes: passes)) * f
        }
    }

    public func bytes(_ ops: [Op], rows: Int, pos0: Int) -> Double {
        ops.reduce(0) { $0 + bytes($1, rows: rows, pos0: pos0) }
    }
}
