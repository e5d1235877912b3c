/// Finds OpenAI `stop` strings in streamed text. The text before a stop string is returned and
/// the stop string itself is not (OpenAI's behaviour); text that could still be the start of a
/// stop string is held back until the next piece decides it.
public struct StopMatcher: Sendable {
    public let stops: [String]
    /// Text received but not yet released.
    private var held = ""
    public private(set) var stopped = false

    public init(stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

    /// Adds a piece of generated text; returns the text that is now safe to send.
    public mutating func append(_ piece: String) -> String {
        guard !stopped else { return "" }
        held += piece
        guard !stops.isEmpty else { let out = held; held = ""; return out }
        // The earliest complete stop string ends the text.
        var cut: String.Index?
        for s in stops {
            if let r = held.range(of: s), cut == nil || r.lowerBound < cut! { cut = r.lowerBound }
        }
        if let cut {
            stopped = true
            let out = String(held[..<cut])
            held = ""
            return out
        }
        // Keep the longest suffix that is a proper prefix of a stop string.
        var keep = 0
        for s in stops {
            let n = min(s.count - 1, held.count)
            if n <= keep { continue }
            for k in stride(from: n, to: keep, by: -1) where held.hasSuffix(s.prefix(k)) {
                keep = k
                break
            }
        }
        let split = held.index(held.endIndex, offsetBy: -keep)
        let out = String(held[..<split])
        held = String(held[split...])
        return out
    }

    /// The held-back text at the end of generation (no stop string followed it).
    public mutating func flush() -> String {
        let out = stopped ? "" : held
        held = ""
        return out
    }
}
