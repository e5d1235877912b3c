/// How parity checks compare a device's output with its CPU twin's (DESIGN.md, "Numerics and
/// parity"): the self-test and the parity tests use the same measure.
public enum Parity {
    /// NMSE = sum((a - b)^2) / sum(b^2), with `b` the reference; infinity when the lengths
    /// differ or only the reference is all zeros.
    public static func nmse(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count else { return .infinity }
        var num = 0.0, den = 0.0
        for i in a.indices {
            let d = Double(a[i]) - Double(b[i])
            num += d * d
            den += Double(b[i]) * Double(b[i])
        }
        return den == 0 ? (num == 0 ? 0 : .infinity) : num / den
    }
}
