/// The loop plan: a model as data. Each family's config becomes a `LoopPlan` — prelude ops, the
/// ops of each pass (looped block + the family's transition + exit signal), and head ops — and
/// both backends (CPU reference, Vulkan) execute the same ops in the same order, so a parity
/// failure points at one op of one pass.
///
/// Activations are fp32 matrices with one row per token of the current call (`n` rows) and a
/// declared width. Positions of the rows are `pos0 + row`, where `pos0` is a per-call value
/// (the Vulkan backend keeps it in a device "step state" buffer, so recorded command buffers
/// are replayed unchanged for every decode token).

/// A column window of an activation: `name`'s columns starting at `col`.
public struct ActRef: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var col: Int
    public init(_ name: String, col: Int = 0) { self.name = name; self.col = col }
    public var description: String { col == 0 ? name : "\(name)[\(col)...]" }
}

/// A weight: a checkpoint tensor (or a plan-computed fp32 tensor) starting at an element offset.
public struct WeightRef: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var offset: Int
    public init(_ name: String, offset: Int = 0) { self.name = name; self.offset = offset }
    public var description: String { offset == 0 ? name : "\(name)+\(offset)" }
}

/// The second operand of a binary op: another activation, or a weight row broadcast over rows.
public enum Operand: Hashable, Sendable {
    case act(ActRef)
    case row(WeightRef)
}

public enum NormMode: Int32, Sendable {
    /// out = norm(x) * w
    case plain = 0
    /// out += norm(x) * w   (residual add of a normalized branch, Ouro's sandwich norms)
    case accumulate = 1
    /// out = norm(x + add) * w   (the sum itself is normalized, Huginn)
    case normalizeSum = 2
}

public enum RopeLayout: Int32, Sendable {
    /// The two halves of each head rotate against each other (Llama, Qwen3, Ouro).
    case rotateHalf = 0
    /// Dims (2i, 2i+1) rotate as pairs (Huginn).
    case interleaved = 1
}

public enum UnaryKind: Int32, Sendable {
    case sigmoid = 0
    case softplus = 1
    case exp = 2
    case silu = 3
    /// out = scale (x is ignored)
    case fill = 4
    /// out = scale * x
    case scale = 5
}

public enum BinaryKind: Int32, Sendable {
    case add = 0
    case sub = 1
    case mul = 2
}

public enum KVPart: Int32, Sendable { case k = 0, v = 1 }

/// One operation of the plan. Every case maps to one shader in `Shaders/` and one CPU twin.
public enum Op: Sendable {
    /// out[r, :] = table[ids[r], :] * scale    (table [vocab, dim])
    case embed(table: WeightRef, vocab: Int, dim: Int, out: ActRef, scale: Float)
    /// Root-mean-square norm over groups of `dim` values (`groups` per row: per-head norms use
    /// groups = heads). weight nil = no weight. See `NormMode`.
    case rmsNorm(x: ActRef, add: ActRef?, weight: WeightRef?, out: ActRef, dim: Int, groups: Int, eps: Float, mode: NormMode)
    /// out = (x - mean) / sqrt(var + eps) * w + b
    case layerNorm(x: ActRef, weight: WeightRef, bias: WeightRef?, out: ActRef, dim: Int, eps: Float)
    /// out[r, o] (+)= sum_i x[r, i] * W[o, i] + bias[o]   (W stored [outFeatures, inFeatures])
    case linear(x: ActRef, weight: WeightRef, bias: WeightRef?, out: ActRef, inFeatures: Int, outFeatures: Int, accumulate: Bool)
    /// In-place rotary embedding of `heads` heads of `headDim` at positions pos0 + row, from a
    /// table [positions, headDim/2, 2] holding (cos, sin).
    case rope(x: ActRef, heads: Int, headDim: Int, table: WeightRef, tablePositions: Int, layout: RopeLayout)
    /// Writes rows of `src` (width = kvWidth) into KV slot `slot` at rows pos0 ..< pos0 + n.
    case kvWrite(src: ActRef, slot: Int, part: KVPart)
    /// Causal attention of query rows (positions pos0 + r) over slot `slot`'s cache rows
    /// 0 ... pos0 + r. Grouped-query: query head h reads KV head h / (heads / kvHeads).
    case attention(q: ActRef, slot: Int, out: ActRef, heads: Int, kvHeads: Int, headDim: Int, scale: Float)
    /// out = silu(gate) * up
    case siluMul(gate: ActRef, up: ActRef, out: ActRef, dim: Int)
    /// out = f(x) elementwise, see `UnaryKind`.
    case unary(kind: UnaryKind, x: ActRef, out: ActRef, dim: Int, scale: Float)
    /// out = a (op) b elementwise; b may be a weight row broadcast over rows (fp32 plan tensor).
    case binary(kind: BinaryKind, a: ActRef, b: Operand, out: ActRef, dim: Int)
    /// out[r, 0 ..< width] = src[r, 0 ..< width]  (column windows: concatenation, splitting)
    case copy(src: ActRef, out: ActRef, width: Int)
    /// Copies KV rows pos0 ..< pos0 + n of K and V from slot `from` to slot `to` (what a token
    /// that stopped early leaves in the slots of the passes it skipped).
    case kvCopy(from: Int, to: Int)
    /// out[r, 0] = the first index of the maximum of x[r, 0 ..< dim] (as a float; NaN never wins)
    case argmax(x: ActRef, out: ActRef, dim: Int)
    /// out[r, :] = softmax(x[r, 0 ..< dim])
    case softmax(x: ActRef, out: ActRef, dim: Int)
    /// Ouro's Q-exit decision taken on the device after pass `pass` of `passes` (row 0 only):
    /// reads the gate logit `signal` and updates the control row `control` (see `ExitControl`),
    /// which decides whether the next pass and which KV fill run (conditional sections).
    case exitDecide(signal: ActRef, control: ActRef, pass: Int, passes: Int, threshold: Float, minPasses: Int)

    /// Short name of the op kind (= the shader file's base name), for reports and profiles.
    public var kindName: String {
        switch self {
        case .embed: return "embedding"
        case .rmsNorm: return "rmsnorm"
        case .layerNorm: return "layernorm"
        case .linear: return "matmul"
        case .rope: return "rope"
        case .kvWrite: return "kv_write"
        case .attention: return "attention"
        case .siluMul: return "silu_mul"
        case .unary: return "unary"
        case .binary: return "binary"
        case .copy: return "copy"
        case .kvCopy: return "kv_copy"
        case .argmax: return "argmax"
        case .softmax: return "softmax"
        case .exitDecide: return "exit_decide"
        }
    }

    /// The activation this op writes (for barriers, reports and NaN checks).
    public var output: ActRef? {
        switch self {
        case .embed(_, _, _, let out, _), .rmsNorm(_, _, _, let out, _, _, _, _), .layerNorm(_, _, _, let out, _, _),
             .linear(_, _, _, let out, _, _, _), .attention(_, _, let out, _, _, _, _), .siluMul(_, _, let out, _),
             .unary(_, _, let out, _, _), .binary(_, _, _, let out, _), .copy(_, let out, _),
             .argmax(_, let out, _), .softmax(_, let out, _), .exitDecide(_, let out, _, _, _, _):
            return out
        case .rope(let x, _, _, _, _, _): return x
        case .kvWrite, .kvCopy: return nil
        }
    }

    /// Weights this op reads (checkpoint or plan-computed tensors).
    public var weights: [WeightRef] {
        switch self {
        case let .embed(t, _, _, _, _): return [t]
        case let .rmsNorm(_, _, w, _, _, _, _, _): return w.map { [$0] } ?? []
        case let .layerNorm(_, w, b, _, _, _): return [w] + (b.map { [$0] } ?? [])
        case let .linear(_, w, b, _, _, _, _): return [w] + (b.map { [$0] } ?? [])
        case let .rope(_, _, _, t, _, _): return [t]
        case let .binary(_, _, .row(w), _, _): return [w]
        default: return []
        }
    }

    /// Activations this op reads.
    public var inputs: [ActRef] {
        switch self {
        case .embed, .kvCopy: return []
        case .rmsNorm(let x, let add, _, let out, _, _, _, let mode):
            return [x] + (add.map { [$0] } ?? []) + (mode == .accumulate ? [out] : [])
        case .layerNorm(let x, _, _, _, _, _): return [x]
        case .linear(let x, _, _, let out, _, _, let acc): return acc ? [x, out] : [x]
        case .rope(let x, _, _, _, _, _): return [x]
        case .kvWrite(let src, _, _): return [src]
        case .attention(let q, _, _, _, _, _, _): return [q]
        case .siluMul(let g, let u, _, _): return [g, u]
        case .unary(let kind, let x, _, _, _): return kind == .fill ? [] : [x]
        case .binary(_, let a, let b, _, _):
            if case .act(let r) = b { return [a, r] }
            return [a]
        case .copy(let src, _, _): return [src]
        case .argmax(let x, _, _), .softmax(let x, _, _): return [x]
        case .exitDecide(let s, let c, _, _, _, _): return [s, c]
        }
    }
}

/// The control row of a token decoded with the exit decision on the device (`Op.exitDecide`):
/// element 0 holds Π(1 − λ) so far, 1 the passes used, 2 + t whether pass t runs (1) or not (0),
/// 2 + passes + k whether the token stopped after exactly k passes. A conditional section
/// (`SectionKey.condition`) runs only when its element is non-zero.
public enum ExitControl {
    /// The activation that holds the control row.
    public static let act = "exit_ctl"
    public static func width(passes: Int) -> Int { 3 + 2 * passes }
    public static func run(_ t: Int) -> Int { 2 + t }
    public static func stoppedAfter(_ k: Int, passes: Int) -> Int { 2 + passes + k }
    /// The row at the start of a token: nothing multiplied yet, pass 0 runs.
    public static func initial(passes: Int) -> [Float] {
        var v = [Float](repeating: 0, count: width(passes: passes))
        v[0] = 1
        v[run(0)] = 1
        return v
    }
}

/// What the per-pass exit signal in `LoopPlan.exitAct` means.
public enum ExitSignal: String, Sendable {
    case none
    /// Ouro: one gate logit per row; λ = sigmoid(logit).
    case ouroGateLogit
    /// LoopUS: confidence q in (0, 1) per row (the reference reads the last row).
    case loopusConfidence
}

/// An fp32 tensor computed by the plan builder (RoPE tables, transformed parameters).
public struct HostTensor: Sendable {
    public var shape: [Int]
    public var values: [Float]
    public init(shape: [Int], values: [Float]) { self.shape = shape; self.values = values }
}

public struct LoopPlan: Sendable {
    public var family: String
    public var hidden: Int
    public var vocab: Int
    /// Activation widths (fp32 values per row).
    public var activations: [String: Int]
    /// Number of KV slots and the width (kvHeads * headDim) of each row of K and of V.
    public var kvSlots: Int
    public var kvWidth: Int
    /// The longest context the plan supports (RoPE table length / config limit).
    public var maxContext: Int
    /// fp32 tensors made by the builder; ops refer to them by name like checkpoint tensors.
    public var computed: [String: HostTensor]
    /// Tensors made by stacking checkpoint tensors' rows (same dtype and row length), e.g. the
    /// q, k and v projections as one [q+k+v, hidden] matrix so they run as one product.
    public var concatenated: [String: [String]] = [:]
    /// How activations are rounded (`Numerics`; set with `with(numerics:)`). Backends read it.
    public var numerics: Numerics = .fp32
    /// Computed tables the official code casts to the activation dtype before use (the HF
    /// rotary cos/sin tables): bf16 values under `.bf16` numerics.
    public var castTables: [String] = []
    /// Ops run once per call before the passes (embedding, prelude/encoder layers, state init).
    public var prelude: [Op]
    /// passes[t] = ops of pass t (0-based): looped block, the family's transition, exit signal.
    public var passes: [[Op]]
    /// Ops that turn the current state into logits (Huginn/LoopUS: coda/decoder layers too).
    public var head: [Op]
    /// The activation that holds the recurrent state after each pass (lens `hidden.<t>`).
    public var stateAct: String
    public var logitsAct: String
    public var exitAct: String?
    public var exitSignal: ExitSignal

    public init(family: String, hidden: Int, vocab: Int, activations: [String: Int], kvSlots: Int, kvWidth: Int,
                maxContext: Int, computed: [String: HostTensor], prelude: [Op], passes: [[Op]], head: [Op],
                stateAct: String, logitsAct: String, exitAct: String?, exitSignal: ExitSignal) {
        self.family = family; self.hidden = hidden; self.vocab = vocab; self.activations = activations
        self.kvSlots = kvSlots; self.kvWidth = kvWidth; self.maxContext = maxContext; self.computed = computed
        self.prelude = prelude; self.passes = passes; self.head = head; self.stateAct = stateAct
        self.logitsAct = logitsAct; self.exitAct = exitAct; self.exitSignal = exitSignal
    }

    public var passCount: Int { passes.count }

    /// Every op of the plan, in execution order for a full forward with all passes.
    public var allOps: [Op] { prelude + passes.flatMap { $0 } + head }
}
