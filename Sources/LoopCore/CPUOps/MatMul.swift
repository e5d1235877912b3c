import Foundation

extension CPUOps {
    /// Linear layer: out[r, o] (+)= sum_i x[r, i] * W[o, i] + bias[o].
    /// `weight` is [outFeatures, inFeatures] row-major (PyTorch's layout). With `accumulate`
    /// the result is added to out (residual add). `out` must not alias `x`.
    /// Output features are split into chunks run with `DispatchQueue.concurrentPerform` when
    /// the product is large enough to be worth it.
    /// `roundBF16` (bf16 numerics): the product (bias included) is rounded to bf16 before it is
    /// added to out (`accumulate`); the caller rounds what the op stores.
    public static func linear(x: CPURows, weight: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?,
                              out: CPURows, rows: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool, roundBF16: Bool = false) {
        let w = SharedPointer(pointer: weight.baseAddress)
        let b = SharedPointer(pointer: bias?.baseAddress)
        let work = rows * inFeatures * outFeatures
        let threads = ProcessInfo.processInfo.activeProcessorCount
        if work < (1 << 18) || threads < 2 || outFeatures < 2 {
            linearFeatures(x: x, weight: w, bias: b, out: out, rows: rows, inFeatures: inFeatures,
                           features: 0..<outFeatures, accumulate: accumulate, roundBF16: roundBF16)
            return
        }
        let chunks = min(outFeatures, threads * 4)
        let per = (outFeatures + chunks - 1) / chunks
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * per
            let hi = min(outFeatures, lo + per)
            if lo < hi {
                linearFeatures(x: x, weight: w, bias: b, out: out, rows: rows, inFeatures: inFeatures,
                               features: lo..<hi, accumulate: accumulate, roundBF16: roundBF16)
            }
        }
    }

    /// The output features `features` of every row (one chunk of `linear`).
    private static func linearFeatures(x: CPURows, weight: SharedPointer, bias: SharedPointer, out: CPURows, rows: Int,
                                       inFeatures: Int, features: Range<Int>, accumulate: Bool, roundBF16: Bool) {
        let w = weight.pointer!
        for r in 0..<rows {
            let xr = x.row(r)
            let orow = out.row(r)
            for o in features {
                let wr = w + o * inFeatures
                var sum: Float = 0
                for i in 0..<inFeatures {
                    sum += xr[i] * wr[i]
                }
                if let b = bias.pointer { sum += b[o] }
                if roundBF16 { sum = bf16(sum) }
                if accumulate {
                    orow[o] += sum
                } else {
                    orow[o] = sum
                }
            }
        }
    }
}
