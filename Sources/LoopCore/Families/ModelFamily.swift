import Foundation

/// What the engine needs to know about a model besides its plan.
public struct ModelInfo: Sendable {
    /// config.json `model_type` ("ouro", "huginn_raven", "lds", "llama", "qwen3").
    public var modelType: String
    /// For LoopUS: the base model's `model_type` ("qwen3", "llama"); nil otherwise.
    public var baseModelType: String?
    /// Passes the config asks for (Ouro total_ut_steps, Huginn mean_recurrence, LoopUS N, 1).
    public var defaultPasses: Int
    /// Passes the plan was built with.
    public var passes: Int
    /// Longest context the plan supports (RoPE table length).
    public var maxContext: Int
    public var hidden: Int
    public var vocab: Int
    /// Ouro: `early_exit_threshold` (q of the Q-exit rule; the reference's default output uses it).
    public var earlyExitThreshold: Float?
    /// Ouro: optional `early_exit_step` (forces a pass, 0-based as in the reference).
    public var earlyExitStep: Int?
    /// LoopUS: q_threshold, q_eval_interval, halting_strategy, convergence_epsilon.
    public var qThreshold: Float?
    public var qEvalInterval: Int?
    public var haltingStrategy: HaltingStrategy?
    public var convergenceEpsilon: Float?
    /// End-of-sequence ids from config.json and generation_config.json (in that order, no repeats).
    public var eosTokenIds: [Int]
    public var bosTokenId: Int?
    /// The exit rules the family offers besides none and fixed:K (ExitPolicy.parse checks them).
    public var exitRules: Set<ExitRuleFamily> = []
    /// Why a family's usual exit rules are missing from this checkpoint (said when one is asked for).
    public var exitRulesNote: String?
    /// Token strings the family's reference stops generation on (used where the tokenizer has them).
    public var stopTokens: [String] = []
    /// The chat format to use when tokenizer_config.json has no recognisable template
    /// (`ChatTemplate` names: "chatml", "huginn"); nil = none.
    public var chatTemplate: String?
    /// Under the `reference` KV policy the official code computes every pass and only chooses
    /// which pass's state reaches the head (Ouro), instead of skipping the remaining passes.
    public var referenceComputesAllPasses = false

    public init(modelType: String, baseModelType: String? = nil, defaultPasses: Int, passes: Int, maxContext: Int,
                hidden: Int, vocab: Int, eosTokenIds: [Int] = [], bosTokenId: Int? = nil) {
        self.modelType = modelType; self.baseModelType = baseModelType; self.defaultPasses = defaultPasses
        self.passes = passes; self.maxContext = maxContext; self.hidden = hidden; self.vocab = vocab
        self.eosTokenIds = eosTokenIds; self.bosTokenId = bosTokenId
    }
}

/// Families of exit rules a model may offer (see ExitPolicy).
public enum ExitRuleFamily: String, Sendable, CaseIterable {
    /// Ouro's gate: the first pass whose exit CDF reaches q.
    case qExit = "q-exit"
    /// Huginn's zero-shot criteria (kl, minp-kl, entropy-diff, latent-diff, cosine, argmax-stability).
    case huginnCriteria = "huginn"
    /// LoopUS's confidence head or state change (threshold, cdf, convergence).
    case loopusHalting = "loopus"
}

/// LoopUS halting strategies (`halting_strategy` in config.json).
public enum HaltingStrategy: String, Sendable, Codable {
    /// stop after the first evaluated pass with q > threshold
    case threshold
    /// stop once 1 − Π(1 − q_j) > threshold
    case cdf
    /// stop once ‖state change at the last position‖ < convergence_epsilon
    case convergence
}

/// A model family: one file each in Families/ (config decoding, tensor checks, the loop plan,
/// the exit rules, tokenizer and chat defaults it declares in `ModelInfo`), registered in
/// `ModelFamily.all`. The same file holds its synthetic checkpoints for `Synth` (presets, tensors, config files).
public protocol LoopFamily {
    /// The config.json `model_type` values the family reads.
    static var modelTypes: [String] { get }
    /// Builds the loop plan of a checkpoint. `passes`: nil = the config's default.
    static func plan(checkpoint: Checkpoint, passes: Int?, maxContext: Int?) throws -> (LoopPlan, ModelInfo)
}

/// Entry point: config.json `model_type` -> the family's config decoder and plan builder.
public enum ModelFamily {
    /// The families the engine reads, by `model_type`.
    public static let all: [any LoopFamily.Type] = [Ouro.self, Huginn.self, LoopUS.self, Llama.self]

    /// The most passes a plan may be built with.
    public static let maxPasses = 256

    /// Builds the loop plan of a checkpoint. `passes`: nil = the config's default; must be in
    /// 1...256. `maxContext` optionally caps the context (and the RoPE table) below the config's.
    /// `numerics`: how activations are rounded (`Numerics`; bf16 rounds the cast tables too).
    public static func plan(checkpoint: Checkpoint, passes: Int?, maxContext: Int? = nil, numerics: Numerics) throws -> (LoopPlan, ModelInfo) {
        let (plan, info) = try self.plan(checkpoint: checkpoint, passes: passes, maxContext: maxContext)
        return (plan.with(numerics: numerics), info)
    }

    /// Builds the loop plan of a checkpoint. `passes`: nil = the config's default; must be in
    /// 1...256. `maxContext` optionally caps the context (and the RoPE table) below the config's.
    public static func plan(checkpoint: Checkpoint, passes: Int?, maxContext: Int? = nil) throws -> (LoopPlan, ModelInfo) {
        guard let type = checkpoint.config["model_type"] as? String else {
            throw LoopError.invalidConfig("model_type is missing or not a string")
        }
        guard let family = all.first(where: { $0.modelTypes.contains(type) }) else {
            throw LoopError.unknownModelType(SafeTensorsFile.printable(type))
        }
        return try family.plan(checkpoint: checkpoint, passes: passes, maxContext: maxContext)
    }

    /// Resolves the pass count: nil -> `defaultPasses`; otherwise 1...maxPasses.
    static func resolvePasses(_ passes: Int?, defaultPasses: Int, field: String) throws -> Int {
        guard defaultPasses >= 1, defaultPasses <= maxPasses else {
            throw LoopError.invalidConfig("\(field) = \(defaultPasses) must be in 1...\(maxPasses)")
        }
        guard let p = passes else { return defaultPasses }
        guard p >= 1, p <= maxPasses else {
            throw LoopError.invalidArgument("passes = \(p) must be in 1...\(maxPasses)")
        }
        return p
    }
}

// MARK: - Config decoding helpers

/// A JSON value that is an integer, a list of integers, or null (`eos_token_id` and friends).
public struct TokenIdList: Codable, Sendable, Equatable {
    public var ids: [Int]
    public init(_ ids: [Int]) { self.ids = ids }
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { ids = [] } else if let i = try? c.decode(Int.self) { ids = [i] } else { ids = try c.decode([Int].self) }
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if ids.count == 1 { try c.encode(ids[0]) } else { try c.encode(ids) }
    }
}

/// RoPE scaling / parameters (`rope_scaling` in transformers 4, `rope_parameters` in 5).
public struct RopeParameters: Codable, Sendable {
    public var ropeTheta: Double?
    public var ropeType: String?
    public var type: String?
    public var factor: Double?
    public var lowFreqFactor: Double?
    public var highFreqFactor: Double?
    public var originalMaxPositionEmbeddings: Int?

    enum CodingKeys: String, CodingKey {
        case ropeTheta = "rope_theta", ropeType = "rope_type", type, factor
        case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
    }

    /// The scaling kind: "default", "linear" or "llama3" (others are rejected by the builder).
    public var kind: String { ropeType ?? type ?? "default" }
}

enum ConfigDecoding {
    /// Decodes `T` from JSON, turning decoding errors into `LoopError.invalidConfig` naming the field.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data, what: String = "config.json") throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw LoopError.invalidConfig("\(what): required field \(path(ctx.codingPath + [key])) is missing")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw LoopError.invalidConfig("\(what): field \(path(ctx.codingPath)) has the wrong type (\(ctx.debugDescription))")
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw LoopError.invalidConfig("\(what): field \(path(ctx.codingPath)) is null")
        } catch let DecodingError.dataCorrupted(ctx) {
            if ctx.codingPath.isEmpty {
                if let field = badIntegerField(T.self, in: data) {
                    throw LoopError.invalidConfig("\(what): field \(field) is not an integer (or does not fit in 64 bits)")
                }
                throw LoopError.invalidConfig("\(what): \(ctx.debugDescription)")
            }
            throw LoopError.invalidConfig("\(what): field \(path(ctx.codingPath)): \(ctx.debugDescription)")
        }
    }

    /// JSONDecoder (swift-foundation) reports a number that an `Int` field cannot hold (1.5,
    /// 1e30) as "not valid JSON" with no coding path. This finds the field: every number that is
    /// not an exact Int is set to 0, then put back one at a time until the error returns.
    /// nil when the data is not JSON or the error is something else.
    static func badIntegerField<T: Decodable>(_ type: T.Type, in data: Data) -> String? {
        guard let root = try? JSONSerialization.jsonObject(with: data) else { return nil }
        var candidates: [[JSONPathStep]] = []
        func collect(_ value: Any, _ at: [JSONPathStep]) {
            guard candidates.count < 256 else { return }
            if let object = value as? [String: Any] {
                for key in object.keys.sorted() { collect(object[key]!, at + [.key(key)]) }
            } else if let array = value as? [Any] {
                for (i, element) in array.enumerated() { collect(element, at + [.index(i)]) }
            } else if let number = value as? NSNumber, String(cString: number.objCType) != "c", value as? Int == nil {
                candidates.append(at)
            }
        }
        collect(root, [])
        guard !candidates.isEmpty, candidates.count < 256 else { return nil }
        func failsWithoutPath(_ object: Any) -> Bool {
            guard let patched = try? JSONSerialization.data(withJSONObject: object) else { return false }
            do {
                _ = try JSONDecoder().decode(T.self, from: patched)
                return false
            } catch let DecodingError.dataCorrupted(ctx) {
                return ctx.codingPath.isEmpty
            } catch {
                return false
            }
        }
        var zeroed = root
        for c in candidates { zeroed = replacing(zeroed, at: c[...], with: 0) }
        guard !failsWithoutPath(zeroed) else { return nil }
        for c in candidates {
            let original = value(in: root, at: c[...])
            if failsWithoutPath(replacing(zeroed, at: c[...], with: original)) {
                let name = c.map { step -> String in
                    switch step {
                    case .key(let k): return "." + SafeTensorsFile.printable(k)
                    case .index(let i): return "[\(i)]"
                    }
                }.joined().dropFirst()
                return "\(name) = \(SafeTensorsFile.printable("\(original)"))"
            }
        }
        return nil
    }

    enum JSONPathStep { case key(String), index(Int) }

    private static func value(in root: Any, at path: ArraySlice<JSONPathStep>) -> Any {
        guard let step = path.first else { return root }
        switch step {
        case .key(let k): return value(in: (root as! [String: Any])[k]!, at: path.dropFirst())
        case .index(let i): return value(in: (root as! [Any])[i], at: path.dropFirst())
        }
    }

    private static func replacing(_ root: Any, at path: ArraySlice<JSONPathStep>, with new: Any) -> Any {
        guard let step = path.first else { return new }
        switch step {
        case .key(let k):
            var object = root as! [String: Any]
            object[k] = replacing(object[k]!, at: path.dropFirst(), with: new)
            return object
        case .index(let i):
            var array = root as! [Any]
            array[i] = replacing(array[i], at: path.dropFirst(), with: new)
            return array
        }
    }

    static func path(_ keys: [CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    /// Checks that a dimension is positive and not absurd.
    @discardableResult
    static func dim(_ value: Int, _ field: String, max: Int = 1 << 20) throws -> Int {
        guard value > 0, value <= max else {
            throw LoopError.invalidConfig("\(field) = \(value) must be in 1...\(max)")
        }
        return value
    }

    /// Checks a positive finite float (eps, theta).
    static func positive(_ value: Double, _ field: String) throws -> Float {
        guard value.isFinite, value > 0 else { throw LoopError.invalidConfig("\(field) = \(value) must be positive") }
        return Float(value)
    }

    /// eos ids of config.json followed by those of generation_config.json, without repeats.
    static func eosIds(_ lists: [TokenIdList?]) -> [Int] {
        var out: [Int] = []
        var seen = Set<Int>()
        for l in lists { for i in l?.ids ?? [] where seen.insert(i).inserted { out.append(i) } }
        return out
    }

    /// The most fp32 values a computed RoPE table may hold (128 MiB): positions x head_dim.
    /// 131072 positions x head_dim 128 fit; a longer config context needs a `maxContext` cap
    /// (the table is computed with sin/cos per value: 2^27 values took 14 s and 1.6 GB).
    static let maxRopeTableValues = 1 << 25

    /// Checks, before anything is allocated, that a RoPE table of `positions` x `headDim` fits.
    static func checkRopeTable(positions: Int, headDim: Int, field: String) throws {
        let (n, overflow) = positions.multipliedReportingOverflow(by: headDim)
        guard !overflow, n <= maxRopeTableValues else {
            throw LoopError.invalidConfig(
                "\(field) \(positions) x head_dim \(headDim) needs a RoPE table of more than \(maxRopeTableValues) values; pass a smaller maxContext")
        }
    }

    static func generationEos(_ checkpoint: Checkpoint) -> TokenIdList? {
        guard let g = checkpoint.jsonFile("generation_config.json"), let v = g["eos_token_id"] else { return nil }
        if let i = v as? Int { return TokenIdList([i]) }
        if let a = v as? [Int] { return TokenIdList(a) }
        return nil
    }
}
