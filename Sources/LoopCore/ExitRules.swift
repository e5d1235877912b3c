import Foundation

/// Ouro's Q-exit rule, written once for every host path (the decode driver's `ExitTracker`,
/// the CPU twin of the device decision `CPUOps.exitDecide`, the reference runner's per-row
/// choice). Shader twin: `Shaders/exit_decide.comp`.
///
/// After pass t the gate gives λ_t = sigmoid(logit_t); the exit CDF after pass t is
/// 1 − Π_{j≤t}(1 − λ_j) (the last pass takes the remaining mass, so the CDF reaches 1 there).
/// A token stops after the first pass whose CDF reaches q, with at least `minPasses` passes run.
public enum OuroQExit {
    @inline(__always) public static func lambda(gateLogit: Float) -> Float { 1 / (1 + Foundation.exp(-gateLogit)) }

    /// Π(1 − λ) after folding in one more pass's gate logit.
    @inline(__always) public static func remaining(_ remaining: Float, gateLogit: Float) -> Float {
        remaining * (1 - lambda(gateLogit: gateLogit))
    }

    /// Whether a token stops after `done` passes of `passes`, with Π(1 − λ) = `remaining`.
    @inline(__always) public static func stops(remaining: Float, done: Int, passes: Int, threshold: Float, minPasses: Int) -> Bool {
        done >= passes || (1 - remaining >= threshold && done >= minPasses)
    }

    /// The exit distribution over passes for one position, in fp32 as the reference computes it:
    /// p_t = λ_t · Π_{j<t}(1 − λ_j) for t < T−1, p_{T−1} = the remaining mass; cdf = running sum.
    public static func distribution(gateLogits g: [Float]) -> (pdf: [Float], cdf: [Float]) {
        var pdf: [Float] = []
        var rest: Float = 1
        for (t, logit) in g.enumerated() {
            if t < g.count - 1 {
                pdf.append(lambda(gateLogit: logit) * rest)
                rest = remaining(rest, gateLogit: logit)
            } else {
                pdf.append(rest)
            }
        }
        var cdf: [Float] = []
        var sum: Float = 0
        for p in pdf { sum += p; cdf.append(sum) }
        return (pdf, cdf)
    }

    /// The distribution as the reference computes it in the activations' dtype: fp32, or under
    /// `.bf16` numerics every tensor op rounded to bf16 (λ, 1 − λ, each product; the running sum in
    /// fp32 rounded at every step, as torch's cumsum of a bfloat16 tensor accumulates).
    public static func distribution(gateLogits g: [Float], numerics: Numerics) -> (pdf: [Float], cdf: [Float]) {
        guard numerics == .bf16 else { return distribution(gateLogits: g) }
        var pdf: [Float] = []
        var rest: Float = 1
        for (t, logit) in g.enumerated() {
            if t < g.count - 1 {
                let l = bf16(lambda(gateLogit: bf16(logit)))
                pdf.append(bf16(l * rest))
                rest = bf16(rest * bf16(1 - l))
            } else {
                pdf.append(rest)
            }
        }
        var cdf: [Float] = []
        var sum: Float = 0
        for p in pdf { sum += p; cdf.append(bf16(sum)) }
        return (pdf, cdf)
    }

    /// The reference's choice for one position when every pass ran: the first pass (0-based)
    /// whose CDF (summed as the reference sums it) reaches `threshold`, else the last.
    public static func exitPass(gateLogits: [Float], threshold: Float, numerics: Numerics = .fp32) -> Int {
        distribution(gateLogits: gateLogits, numerics: numerics).cdf.firstIndex { $0 >= threshold } ?? max(0, gateLogits.count - 1)
    }
}
