import Foundation

/// A shader's push-constant block, declared once as a Swift struct whose stored properties are
/// the GLSL block's members in order (`xStride` for `x_stride`), each `UInt32` or `Float`, or a
/// nested block for a variant's extra members (`#if SILU ... #endif`). `PushBlockTests` checks
/// every block against its shader's `layout(push_constant)` declaration under `defines`.
protocol PushBlock {
    init()
    /// The shader whose block this is, and the defines that select its members.
    static var shader: String { get }
    static var defines: [String: String] { get }
}

extension PushBlock {
    static var defines: [String: String] { [:] }

    /// The 32-bit words, in declaration order.
    var words: [UInt32] { Self.flatten(self).map(\.word) }
    /// The members' names in GLSL spelling (snake_case), in order.
    static var memberNames: [String] { flatten(Self()).map(\.name) }
    static var wordCount: Int { flatten(Self()).count }

    private static func flatten(_ value: Any) -> [(name: String, word: UInt32)] {
        Mirror(reflecting: value).children.flatMap { child -> [(name: String, word: UInt32)] in
            let name = snakeCase(child.label ?? "")
            switch child.value {
            case let v as UInt32: return [(name, v)]
            case let v as Float: return [(name, v.bitPattern)]
            case let v as PushBlock: return flatten(v)
            default: preconditionFailure("\(Self.self).\(name): push-constant members are UInt32, Float or nested blocks")
            }
        }
    }

    static func snakeCase(_ s: String) -> String {
        var out = ""
        for c in s {
            if c.isUppercase { out += "_" }
            out += c.lowercased()
        }
        return out
    }
}

/// `UInt32(n)` for the sizes, strides and columns push constants carry.
@inline(__always) func u32(_ n: Int) -> UInt32 { UInt32(n) }

extension RecordedCommands {
    /// Records one dispatch with a typed push-constant block.
    func dispatch<P: PushBlock>(_ p: ComputePipeline, _ bindings: [Binding], push: P, groups: (Int, Int, Int)) throws {
        try dispatch(p, bindings, push: push.words, groups: groups)
    }
}
