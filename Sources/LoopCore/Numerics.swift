/// How a plan's activations are rounded (DESIGN.md "Numerics and parity").
///
/// `.fp32`: fp32 activations and accumulation over the stored weights; parity with the fp32
/// reference runs (the default). `.bf16`: rounds to bf16 where the official code, run end to end
/// in torch bfloat16, rounds — every op's output tensor (products accumulate in fp32 and round
/// their result; residual adds round), plus the roundings inside ops: RMSNorm casts the normalized
/// value to bf16 before the weight multiply (and rounds the product), RoPE reads bf16 cos/sin
/// tables and rounds each product and the sum, SwiGLU rounds silu(gate) before the multiply by up,
/// attention rounds the softmax numerators before the weighted sum of V (torch's CPU
/// flash-attention kernel: scores, max and denominator in fp32). Logits are bf16, greedy takes
/// the first maximal index. So greedy ids match a reference run in bf16 (the `golden_bf16`
/// tensors of the bf16 fixtures). Implemented by the CPU reference; the Vulkan backend refuses it.
public enum Numerics: String, Sendable, CaseIterable, Codable {
    case fp32
    case bf16

    /// Parses a command-line value; the error names the valid ones.
    public static func parse(_ s: String) throws -> Numerics {
        guard let n = Numerics(rawValue: s.lowercased()) else {
            throw LoopError.invalidArgument("--numerics \(s): valid values are \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return n
    }
}

@inline(__always) func bf16(_ x: Float) -> Float { Float16Bits.roundToBF16(x) }

extension LoopPlan {
    /// The plan with `numerics`: in `.bf16` the computed tables the official code casts to the
    /// activation dtype (`castTables`: the HF rotary cos/sin tables) hold bf16 values.
    public func with(numerics: Numerics) -> LoopPlan {
        var p = self
        p.numerics = numerics
        if numerics == .bf16 {
            for name in castTables {
                guard var t = p.computed[name] else { continue }
                t.values = t.values.map(bf16)
                p.computed[name] = t
            }
        }
        return p
    }
}
