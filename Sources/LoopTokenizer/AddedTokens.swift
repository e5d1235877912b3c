/// One entry of tokenizer.json's `added_tokens`.
struct AddedToken: Sendable {
    var id: Int
    var content: String
    /// Only matched when not touching a word character on either side.
    var singleWord: Bool
    /// Whitespace to the left of a match becomes part of the token.
    var leftStrip: Bool
    /// Whitespace to the right of a match becomes part of the token.
    var rightStrip: Bool
    /// Matched in the normalized text (true) or in the raw text (false).
    var normalized: Bool
    /// A special token: removed by `decode(skipSpecialTokens: true)`.
    var special: Bool

    init(json: JSONValue, index: Int, source: String) throws {
        guard let object = json.objectValue,
              let id = object["id"]?.intValue, id >= 0, id <= BPEModel.maximumTokenID,
              let content = object["content"]?.stringValue
        else {
            throw TokenizerError.invalidField(what: source, path: "added_tokens[\(index)]",
                                              problem: "needs an integer \"id\" in 0...\(BPEModel.maximumTokenID) and a string \"content\"")
        }
        self.id = id
        self.content = content
        singleWord = object["single_word"]?.boolValue ?? false
        leftStrip = object["lstrip"]?.boolValue ?? false
        rightStrip = object["rstrip"]?.boolValue ?? false
        special = object["special"]?.boolValue ?? false
        normalized = object["normalized"]?.boolValue ?? !special
    }
}

/// A piece of input text after the added tokens have been split out.
enum TextSegment {
    /// Ordinary text, to normalize, pre-tokenize and encode with BPE.
    case text(Substring)
    /// An added token, already resolved to its id.
    case token(Int)
}

/// Finds added tokens in text: at the leftmost position where any token matches, the longest
/// matching token wins (the `tokenizers` leftmost-longest rule), then the search continues after it.
struct AddedTokenMatcher: Sendable {
    private let tokens: [AddedToken]
    private let contents: [[UInt8]]
    /// For each first byte, the indices of the tokens starting with it, longest first.
    private let candidates: [[Int]]

    init(tokens: [AddedToken]) {
        let usable = tokens.filter { !$0.content.isEmpty }
        self.tokens = usable
        let contents = usable.map { Array($0.content.utf8) }
        self.contents = contents
        var candidates = [[Int]](repeating: [], count: 256)
        for (index, bytes) in contents.enumerated() {
            candidates[Int(bytes[0])].append(index)
        }
        for byte in 0..<256 {
            candidates[byte].sort { contents[$0].count > contents[$1].count }
        }
        self.candidates = candidates
    }

    var isEmpty: Bool { tokens.isEmpty }

    /// Splits `text` into ordinary text and added tokens, in order. Empty text segments are
    /// left out.
    func split(_ text: Substring) -> [TextSegment] {
        guard !tokens.isEmpty else { return text.isEmpty ? [] : [.text(text)] }
        let utf8 = Array(text.utf8)
        var segments: [TextSegment] = []
        var segmentStart = 0  // start of the pending ordinary text
        var position = 0
        while position < utf8.count {
            guard let index = longestMatch(in: utf8, at: position) else {
                position += 1
                continue
            }
            let token = tokens[index]
            var start = position
            var end = position + contents[index].count
            if token.singleWord && (isWordCharacter(before: start, in: utf8) || isWordCharacter(at: end, in: utf8)) {
                position = end  // not a whole word: leave it to BPE, look further on
                continue
            }
            if token.leftStrip {
                while start > segmentStart, let (scalar, length) = scalar(endingAt: start, in: utf8), scalar.properties.isWhitespace {
                    start -= length
                }
            }
            if token.rightStrip {
                while end < utf8.count, let (scalar, length) = scalar(startingAt: end, in: utf8), scalar.properties.isWhitespace {
                    end += length
                }
            }
            if segmentStart < start {
                segments.append(.text(substring(text, utf8Range: segmentStart..<start)))
            }
            segments.append(.token(token.id))
            segmentStart = end
            position = end
        }
        if segmentStart < utf8.count {
            segments.append(.text(substring(text, utf8Range: segmentStart..<utf8.count)))
        }
        return segments
    }

    private func longestMatch(in utf8: [UInt8], at position: Int) -> Int? {
        for index in candidates[Int(utf8[position])] {
            let content = contents[index]
            guard position + content.count <= utf8.count else { continue }
            var matches = true
            for offset in 1..<content.count where utf8[position + offset] != content[offset] {
                matches = false
                break
            }
            if matches { return index }
        }
        return nil
    }

    private func substring(_ text: Substring, utf8Range: Range<Int>) -> Substring {
        let utf8 = text.utf8
        let lower = utf8.index(utf8.startIndex, offsetBy: utf8Range.lowerBound)
        let upper = utf8.index(lower, offsetBy: utf8Range.count)
        return Substring(text.unicodeScalars[lower..<upper])
    }

    private func scalar(startingAt position: Int, in utf8: [UInt8]) -> (Unicode.Scalar, Int)? {
        var iterator = utf8[position...].makeIterator()
        var decoder = UTF8()
        guard case .scalarValue(let scalar) = decoder.decode(&iterator) else { return nil }
        return (scalar, UTF8.width(scalar))
    }

    private func scalar(endingAt position: Int, in utf8: [UInt8]) -> (Unicode.Scalar, Int)? {
        var start = position - 1
        while start > 0 && utf8[start] & 0xC0 == 0x80 { start -= 1 }
        guard start >= 0 else { return nil }
        return scalar(startingAt: start, in: utf8)
    }

    private func isWordCharacter(before position: Int, in utf8: [UInt8]) -> Bool {
        guard position > 0, let (scalar, _) = scalar(endingAt: position, in: utf8) else { return false }
        return Self.isWordCharacter(scalar)
    }

    private func isWordCharacter(at position: Int, in utf8: [UInt8]) -> Bool {
        guard position < utf8.count, let (scalar, _) = scalar(startingAt: position, in: utf8) else { return false }
        return Self.isWordCharacter(scalar)
    }

    private static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "_" || scalar.properties.isAlphabetic || scalar.properties.numericType != nil
    }
}
