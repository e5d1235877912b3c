import Foundation

/// Collects what a family's plan builder produces: activation widths, computed tensors, and
/// checked references to checkpoint tensors.
final class PlanAssembler {
    let checkpoint: Checkpoint
    private(set) var activations: [String: Int] = [:]
    var computed: [String: HostTensor] = [:]
    /// Row-stacked tensors (see `LoopPlan.concatenated`).
    var concatenated: [String: [String]] = [:]
    /// Computed tables the official code casts to the activation dtype (see `LoopPlan.castTables`).
    var castTables: [String] = []

    init(checkpoint: Checkpoint) { self.checkpoint = checkpoint }

    /// Declares an activation of `width` columns and refers to it. Declaring a name again with
    /// another width is a builder bug (two different activations sharing a name).
    @discardableResult
    func act(_ name: String, _ width: Int) -> ActRef {
        if let w = activations[name] {
            precondition(w == width, "plan builder: activation \(name) declared with widths \(w) and \(width)")
        }
        activations[name] = width
        return ActRef(name)
    }

    /// A checkpoint tensor that must exist with `shape` (the error names the tensor).
    func weight(_ name: String, _ shape: [Int]) throws -> WeightRef {
        try checkpoint.require(name, shape: shape)
        return WeightRef(name)
    }

    func has(_ name: String) -> Bool { checkpoint.info(name) != nil }

    /// One weight covering `refs` stacked by rows (each `rows[i] x cols`), so several products
    /// of the same input run as one: the same tensor at contiguous offsets (Huginn's Wqkv), or
    /// whole checkpoint tensors of one dtype stacked into a new one. Nil when neither applies.
    func stacked(_ refs: [WeightRef], rows: [Int], cols: Int) -> WeightRef? {
        guard refs.count > 1, refs.count == rows.count else { return nil }
        if Set(refs.map(\.name)).count == 1 {
            for i in 1..<refs.count where refs[i].offset != refs[i - 1].offset + rows[i - 1] * cols { return nil }
            return refs[0]
        }
        guard refs.allSatisfy({ $0.offset == 0 }), Set(refs.map(\.name)).count == refs.count else { return nil }
        let infos = refs.compactMap { checkpoint.info($0.name) }
        guard infos.count == refs.count, Set(infos.map(\.dtype)).count == 1,
              zip(infos, rows).allSatisfy({ $0.0.shape == [$0.1, cols] }) else { return nil }
        let name = "stacked(" + refs.map(\.name).joined(separator: "+") + ")"
        concatenated[name] = refs.map(\.name)
        return WeightRef(name)
    }

    /// Adds a computed fp32 tensor and refers to it.
    func compute(_ name: String, shape: [Int], values: [Float]) -> WeightRef {
        precondition(shape.reduce(1, *) == values.count)
        computed[name] = HostTensor(shape: shape, values: values)
        return WeightRef(name)
    }
}

// MARK: - RoPE tables

enum RopeTables {
    /// Inverse frequencies as the references compute them in fp32:
    /// inv_freq[i] = 1 / theta^((2i) / d), then the optional "linear" / "llama3" scaling.
    static func inverseFrequencies(theta: Float, headDim: Int, scaling: RopeParameters?) throws -> [Float] {
        let half = headDim / 2
        var inv = (0..<half).map { i -> Float in
            let e = Float(2 * i) / Float(headDim)
            return 1 / Foundation.pow(theta, e)
        }
        guard let s = scaling else { return inv }
        switch s.kind {
        case "default":
            return inv
        case "linear":
            guard let f = s.factor, f > 0 else { throw LoopError.invalidConfig("rope scaling \"linear\" needs a positive factor") }
            inv = inv.map { $0 / Float(f) }
            return inv
        case "llama3":
            guard let f = s.factor, let lo = s.lowFreqFactor, let hi = s.highFreqFactor, let old = s.originalMaxPositionEmbeddings,
                  f > 0, lo > 0, hi > lo, old > 0
            else { throw LoopError.invalidConfig("rope scaling \"llama3\" needs factor, low_freq_factor < high_freq_factor, original_max_position_embeddings") }
            let factor = Float(f), low = Float(lo), high = Float(hi), oldLen = Float(old)
            let lowWavelen = oldLen / low
            let highWavelen = oldLen / high
            return inv.map { freq in
                let wavelen = 2 * Float.pi / freq
                if wavelen < highWavelen { return freq }
                if wavelen > lowWavelen { return freq / factor }
                let smooth = (oldLen / wavelen - low) / (high - low)
                return (1 - smooth) * freq / factor + smooth * freq
            }
        default:
            throw LoopError.unsupported("RoPE scaling type \"\(SafeTensorsFile.printable(s.kind))\"")
        }
    }

    /// [positions, headDim/2, 2] table of (cos, sin) of the fp32 angle position * inv_freq[i].
    static func table(inverseFrequencies inv: [Float], positions: Int) -> [Float] {
        let half = inv.count
        var t = [Float](repeating: 0, count: positions * half * 2)
        for p in 0..<positions {
            for i in 0..<half {
                let angle = Float(p) * inv[i]
                t[(p * half + i) * 2] = Float(Foundation.cos(Double(angle)))
                t[(p * half + i) * 2 + 1] = Float(Foundation.sin(Double(angle)))
            }
        }
        return t
    }
}

// MARK: - Shared decoder-layer emitters

/// Geometry of one attention block.
struct AttentionSpec {
    var hidden: Int
    var heads: Int
    var kvHeads: Int
    var headDim: Int
    var ropeTable: WeightRef
    var ropePositions: Int
    var ropeLayout: RopeLayout
    /// eps of the per-head q/k norms (Qwen3)
    var normEps: Float
    var qWidth: Int { heads * headDim }
    var kvWidth: Int { kvHeads * headDim }
}

/// Weights of one attention block. Q/K/V may be row ranges of one fused tensor (offsets).
struct AttentionWeights {
    var q: WeightRef, k: WeightRef, v: WeightRef, o: WeightRef
    var qBias: WeightRef? = nil, kBias: WeightRef? = nil, vBias: WeightRef? = nil, oBias: WeightRef? = nil
    var qNorm: WeightRef? = nil, kNorm: WeightRef? = nil
}

/// Weights of a SwiGLU MLP: down(silu(gate(x)) * up(x)).
struct MLPWeights {
    var gate: WeightRef, up: WeightRef, down: WeightRef
    var gateBias: WeightRef? = nil, upBias: WeightRef? = nil, downBias: WeightRef? = nil
}

extension PlanAssembler {
    /// Attention of `input` (already normalized): q/k/v projections (+bias), optional per-head
    /// q/k RMSNorm, RoPE, KV write into `slot`, causal attention, output projection into `out`
    /// (added when `accumulate`). Scratch activations: q, k, v, attn.
    func attentionOps(input: ActRef, out: ActRef, accumulate: Bool, slot: Int, spec s: AttentionSpec, weights w: AttentionWeights) -> [Op] {
        let attn = act("attn", s.qWidth)
        var ops: [Op] = []
        let q: ActRef, k: ActRef, v: ActRef
        let noBias = w.qBias == nil && w.kBias == nil && w.vBias == nil
        if noBias, let qkvW = stacked([w.q, w.k, w.v], rows: [s.qWidth, s.kvWidth, s.kvWidth], cols: s.hidden) {
            // One product for q, k and v; they are column windows of "qkv" (q, then k, then v).
            let width = s.qWidth + 2 * s.kvWidth
            act("qkv", width)
            q = ActRef("qkv", col: 0); k = ActRef("qkv", col: s.qWidth); v = ActRef("qkv", col: s.qWidth + s.kvWidth)
            ops.append(.linear(x: input, weight: qkvW, bias: nil, out: ActRef("qkv"), inFeatures: s.hidden, outFeatures: width, accumulate: false))
        } else {
            q = act("q", s.qWidth); k = act("k", s.kvWidth); v = act("v", s.kvWidth)
            ops += [
                .linear(x: input, weight: w.q, bias: w.qBias, out: q, inFeatures: s.hidden, outFeatures: s.qWidth, accumulate: false),
                .linear(x: input, weight: w.k, bias: w.kBias, out: k, inFeatures: s.hidden, outFeatures: s.kvWidth, accumulate: false),
                .linear(x: input, weight: w.v, bias: w.vBias, out: v, inFeatures: s.hidden, outFeatures: s.kvWidth, accumulate: false),
            ]
        }
        if let qn = w.qNorm {
            ops.append(.rmsNorm(x: q, add: nil, weight: qn, out: q, dim: s.headDim, groups: s.heads, eps: s.normEps, mode: .plain))
        }
        if let kn = w.kNorm {
            ops.append(.rmsNorm(x: k, add: nil, weight: kn, out: k, dim: s.headDim, groups: s.kvHeads, eps: s.normEps, mode: .plain))
        }
        if q.name == k.name && k.col == q.col + s.qWidth {
            // q and k side by side: one rotation over all their heads.
            ops.append(.rope(x: q, heads: s.heads + s.kvHeads, headDim: s.headDim, table: s.ropeTable, tablePositions: s.ropePositions, layout: s.ropeLayout))
        } else {
            ops += [
                .rope(x: q, heads: s.heads, headDim: s.headDim, table: s.ropeTable, tablePositions: s.ropePositions, layout: s.ropeLayout),
                .rope(x: k, heads: s.kvHeads, headDim: s.headDim, table: s.ropeTable, tablePositions: s.ropePositions, layout: s.ropeLayout),
            ]
        }
        ops += [
            .kvWrite(src: k, slot: slot, part: .k),
            .kvWrite(src: v, slot: slot, part: .v),
            .attention(q: q, slot: slot, out: attn, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim,
                       scale: 1 / Float(s.headDim).squareRoot()),
            .linear(x: attn, weight: w.o, bias: w.oBias, out: out, inFeatures: s.qWidth, outFeatures: s.hidden, accumulate: accumulate),
        ]
        return ops
    }

    /// SwiGLU MLP of `input` into `out` (added when `accumulate`). Scratch: mlp_gate, mlp_up, mlp_act.
    func mlpOps(input: ActRef, out: ActRef, accumulate: Bool, hidden: Int, intermediate: Int, weights w: MLPWeights) -> [Op] {
        let a = act("mlp_act", intermediate)
        var ops: [Op] = []
        if w.gateBias == nil && w.upBias == nil, let gu = stacked([w.gate, w.up], rows: [intermediate, intermediate], cols: hidden) {
            // gate and up in one product; they are the two halves of "mlp_gu".
            act("mlp_gu", 2 * intermediate)
            ops += [
                .linear(x: input, weight: gu, bias: nil, out: ActRef("mlp_gu"), inFeatures: hidden, outFeatures: 2 * intermediate, accumulate: false),
                .siluMul(gate: ActRef("mlp_gu"), up: ActRef("mlp_gu", col: intermediate), out: a, dim: intermediate),
            ]
        } else {
            let g = act("mlp_gate", intermediate), u = act("mlp_up", intermediate)
            ops += [
                .linear(x: input, weight: w.gate, bias: w.gateBias, out: g, inFeatures: hidden, outFeatures: intermediate, accumulate: false),
                .linear(x: input, weight: w.up, bias: w.upBias, out: u, inFeatures: hidden, outFeatures: intermediate, accumulate: false),
                .siluMul(gate: g, up: u, out: a, dim: intermediate),
            ]
        }
        ops.append(.linear(x: a, weight: w.down, bias: w.downBias, out: out, inFeatures: intermediate, outFeatures: hidden, accumulate: accumulate))
        return ops
    }

    /// Checked weights of a Llama-style attention block under `prefix` (`<prefix>.self_attn.*`).
    func standardAttentionWeights(prefix: String, spec s: AttentionSpec, bias: Bool, qkNorm: Bool) throws -> AttentionWeights {
        let p = "\(prefix).self_attn"
        var w = AttentionWeights(q: try weight("\(p).q_proj.weight", [s.qWidth, s.hidden]),
                                 k: try weight("\(p).k_proj.weight", [s.kvWidth, s.hidden]),
                                 v: try weight("\(p).v_proj.weight", [s.kvWidth, s.hidden]),
                                 o: try weight("\(p).o_proj.weight", [s.hidden, s.qWidth]))
        if bias {
            w.qBias = try weight("\(p).q_proj.bias", [s.qWidth])
            w.kBias = try weight("\(p).k_proj.bias", [s.kvWidth])
            w.vBias = try weight("\(p).v_proj.bias", [s.kvWidth])
            w.oBias = try weight("\(p).o_proj.bias", [s.hidden])
        }
        if qkNorm {
            w.qNorm = try weight("\(p).q_norm.weight", [s.headDim])
            w.kNorm = try weight("\(p).k_norm.weight", [s.headDim])
        }
        return w
    }

    /// Checked weights of a Llama-style MLP under `prefix` (`<prefix>.mlp.*`).
    func standardMLPWeights(prefix: String, hidden: Int, intermediate: Int, bias: Bool) throws -> MLPWeights {
        let p = "\(prefix).mlp"
        var w = MLPWeights(gate: try weight("\(p).gate_proj.weight", [intermediate, hidden]),
                           up: try weight("\(p).up_proj.weight", [intermediate, hidden]),
                           down: try weight("\(p).down_proj.weight", [hidden, intermediate]))
        if bias {
            w.gateBias = try weight("\(p).gate_proj.bias", [intermediate])
            w.upBias = try weight("\(p).up_proj.bias", [intermediate])
            w.downBias = try weight("\(p).down_proj.bias", [hidden])
        }
        return w
    }

    /// A pre-norm Llama / Qwen3 decoder layer on `state`:
    /// state += attn(input_layernorm(state)); state += mlp(post_attention_layernorm(state)).
    func standardLayerOps(prefix: String, state: ActRef, slot: Int, spec: AttentionSpec, intermediate: Int, eps: Float,
                          attentionBias: Bool, mlpBias: Bool, qkNorm: Bool) throws -> [Op] {
        let h = spec.hidden
        let xn = act("xn", h)
        let attnW = try standardAttentionWeights(prefix: prefix, spec: spec, bias: attentionBias, qkNorm: qkNorm)
        let mlpW = try standardMLPWeights(prefix: prefix, hidden: h, intermediate: intermediate, bias: mlpBias)
        let n1 = try weight("\(prefix).input_layernorm.weight", [h])
        let n2 = try weight("\(prefix).post_attention_layernorm.weight", [h])
        var ops: [Op] = [.rmsNorm(x: state, add: nil, weight: n1, out: xn, dim: h, groups: 1, eps: eps, mode: .plain)]
        ops += attentionOps(input: xn, out: state, accumulate: true, slot: slot, spec: spec, weights: attnW)
        ops.append(.rmsNorm(x: state, add: nil, weight: n2, out: xn, dim: h, groups: 1, eps: eps, mode: .plain))
        ops += mlpOps(input: xn, out: state, accumulate: true, hidden: h, intermediate: intermediate, weights: mlpW)
        return ops
    }
}
