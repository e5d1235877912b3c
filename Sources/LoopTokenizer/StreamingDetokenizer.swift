/// Turns generated ids into text as they arrive, one id at a time.
///
/// Byte-level tokens often carry part of a UTF-8 character (an emoji is typically split over
/// two or three tokens). The detokenizer keeps such incomplete bytes back until the character
/// is complete, so it never emits half a character; bytes that can no longer become a valid
/// character are emitted as U+FFFD straight away. Concatenating everything ``append(_:)``
/// returns, followed by ``flush()``, gives exactly `tokenizer.decode(ids, skipSpecialTokens:)`.
///
/// ```swift
/// var detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
/// for id in generatedIDs { print(detokenizer.append(id), terminator: "") }
/// print(detokenizer.flush())
/// ```
public struct StreamingDetokenizer: Sendable {
    /// The tokenizer whose tokens are decoded.
    public let tokenizer: Tokenizer
    /// Whether special tokens are left out of the text.
    public let skipSpecialTokens: Bool
    /// Bytes of an incomplete UTF-8 character (at most 3).
    private var pending: [UInt8] = []

    /// Starts an empty stream.
    /// - Parameters:
    ///   - tokenizer: the tokenizer that produced the ids.
    ///   - skipSpecialTokens: leave special tokens out of the text, as `decode(_:skipSpecialTokens:)` does.
    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id and returns the text it completes (possibly empty).
    public mutating func append(_ id: Int) -> String {
        tokenizer.appendDecodedBytes(of: id, skipSpecialTokens: skipSpecialTokens, to: &pending)
        return drain(isFinal: false)
    }

    /// Adds several ids and returns the text they complete.
    public mutating func append(contentsOf ids: some Sequence<Int>) -> String {
        for id in ids {
            tokenizer.appendDecodedBytes(of: id, skipSpecialTokens: skipSpecialTokens, to: &pending)
        }
        return drain(isFinal: false)
    }

    /// Ends the stream: returns what is still held back (U+FFFD for an incomplete character,
    /// as `decode` would give) and resets the detokenizer for a new stream.
    public mutating func flush() -> String {
        drain(isFinal: true)
    }

    /// Whether bytes of an incomplete character are being held back.
    public var hasPendingBytes: Bool { !pending.isEmpty }

    private mutating func drain(isFinal: Bool) -> String {
        guard !pending.isEmpty else { return "" }
        let (text, consumed) = LossyUTF8.decode(pending, isFinal: isFinal)
        pending.removeFirst(consumed)
        return text
    }
}
