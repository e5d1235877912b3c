/// Errors from reading checkpoints and configs. Each description is one line naming the cause.
public enum LoopError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(String)
    case io(String)
    case invalidSafetensors(file: String, reason: String)
    case invalidConfig(String)
    case unknownModelType(String)
    case missingTensor(String)
    case wrongShape(tensor: String, expected: [Int], found: [Int])
    case wrongDType(tensor: String, found: String)
    case invalidArgument(String)
    case unsupported(String)

    public var description: String {
        switch self {
        case .fileNotFound(let p): return "file not found: \(p)"
        case .io(let m): return "I/O error: \(m)"
        case .invalidSafetensors(let f, let r): return "invalid safetensors file \(f): \(r)"
        case .invalidConfig(let m): return "invalid config.json: \(m)"
        case .unknownModelType(let t):
            return "unknown model_type \"\(t)\" (supported: ouro, huginn_raven, lds, llama, qwen3)"
        case .missingTensor(let n): return "checkpoint lacks tensor \(n)"
        case .wrongShape(let n, let e, let f): return "tensor \(n) has shape \(f), config.json implies \(e)"
        case .wrongDType(let n, let d): return "tensor \(n) has unsupported dtype \(d)"
        case .invalidArgument(let m): return m
        case .unsupported(let m): return "unsupported: \(m)"
        }
    }
}
