import Foundation

/// A compiled `Regex` that can be shared between threads.
///
/// `Regex` is not declared `Sendable`, but matching only reads it. It is compiled and run once
/// when created, so that its lazily built matching program exists before any sharing starts.
struct SharedRegex: @unchecked Sendable {
    let regex: Regex<AnyRegexOutput>
    let pattern: String

    /// Compiles `pattern` with Unicode-scalar semantics, which is what makes Swift `Regex`
    /// split text the way the Oniguruma regexes of `tokenizers` do (`\p{L}+` may stop inside
    /// a grapheme cluster, `\r\n` is two characters).
    init(pattern: String) throws {
        do {
            regex = try Regex(pattern).matchingSemantics(.unicodeScalar)
        } catch {
            throw TokenizerError.invalidRegex(pattern: pattern, reason: "\(error)")
        }
        self.pattern = pattern
        _ = "warm-up 123 !? \n".firstMatch(of: regex)
    }

    /// A regex matching `literal` exactly.
    init(literal: String) {
        regex = Regex(verbatim: literal).matchingSemantics(.unicodeScalar)
        pattern = literal
        _ = "warm-up".firstMatch(of: regex)
    }

    /// The ranges of all non-overlapping matches, left to right.
    func matchRanges(in text: String) -> [Range<String.Index>] {
        text.matches(of: regex).map(\.range)
    }
}

/// How a `Split` pre-tokenizer treats the pieces its pattern matches (the `tokenizers`
/// `SplitDelimiterBehavior`).
enum SplitBehavior: String, Sendable {
    /// Matched pieces are dropped.
    case removed = "Removed"
    /// Every matched and unmatched piece is its own split.
    case isolated = "Isolated"
    /// A matched piece is appended to the split before it.
    case mergedWithPrevious = "MergedWithPrevious"
    /// A matched piece is prepended to the split after it.
    case mergedWithNext = "MergedWithNext"
    /// Consecutive matched pieces form one split.
    case contiguous = "Contiguous"
}

/// One pre-tokenization step. A `Sequence` pre-tokenizer is kept as the list of its steps.
enum PreTokenizerStep: Sendable {
    /// The `ByteLevel` pre-tokenizer: optional leading space, optional GPT-2 regex split, then
    /// every byte replaced by its ``ByteLevel`` character.
    case byteLevel(addPrefixSpace: Bool, regex: SharedRegex?)
    /// The `Split` pre-tokenizer.
    case split(SharedRegex, behavior: SplitBehavior, invert: Bool)
    /// The `Digits` pre-tokenizer: digits (Unicode `N`) split off one by one, or in runs.
    case digits(individual: Bool)
}

/// The pre-tokenizer: cuts text into the words that BPE encodes one by one.
struct PreTokenizer: Sendable {
    /// GPT-2's split pattern, used by `ByteLevel` when `use_regex` is true.
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    let steps: [PreTokenizerStep]

    /// Reads the `pre_tokenizer` field of tokenizer.json (`null` means: no splitting).
    init(json: JSONValue?) throws {
        var steps: [PreTokenizerStep] = []
        try Self.appendSteps(json, to: &steps)
        self.steps = steps
    }

    private static func appendSteps(_ json: JSONValue?, to steps: inout [PreTokenizerStep]) throws {
        guard let json, !json.isNull else { return }
        guard let object = json.objectValue else {
            throw TokenizerError.invalidField(what: "tokenizer.json", path: "pre_tokenizer", problem: "is \(json.kindName), expected an object or null")
        }
        let type = object["type"]?.stringValue ?? "(no type)"
        switch type {
        case "Sequence":
            guard let list = object["pretokenizers"]?.arrayValue else {
                throw TokenizerError.missingField(what: "tokenizer.json", path: "pre_tokenizer.pretokenizers")
            }
            for element in list {
                try appendSteps(element, to: &steps)
            }
        case "ByteLevel":
            let addPrefixSpace = object["add_prefix_space"]?.boolValue ?? true
            let useRegex = object["use_regex"]?.boolValue ?? true
            let regex = try useRegex ? SharedRegex(pattern: gpt2Pattern) : nil
            steps.append(.byteLevel(addPrefixSpace: addPrefixSpace, regex: regex))
        case "Split":
            guard let patternObject = object["pattern"]?.objectValue else {
                throw TokenizerError.missingField(what: "tokenizer.json", path: "pre_tokenizer.pattern")
            }
            let regex: SharedRegex
            if let pattern = patternObject["Regex"]?.stringValue {
                regex = try SharedRegex(pattern: pattern)
            } else if let literal = patternObject["String"]?.stringValue {
                regex = SharedRegex(literal: literal)
            } else {
                throw TokenizerError.invalidField(what: "tokenizer.json", path: "pre_tokenizer.pattern", problem: "has neither \"Regex\" nor \"String\"")
            }
            let behaviorName = object["behavior"]?.stringValue ?? "(none)"
            guard let behavior = SplitBehavior(rawValue: behaviorName) else {
                throw TokenizerError.unsupportedPreTokenizer(type: "Split with behavior \(behaviorName)")
            }
            steps.append(.split(regex, behavior: behavior, invert: object["invert"]?.boolValue ?? false))
        case "Digits":
            steps.append(.digits(individual: object["individual_digits"]?.boolValue ?? false))
        default:
            throw TokenizerError.unsupportedPreTokenizer(type: type)
        }
    }

    /// Splits `text` into words. Words produced by a `ByteLevel` step are in byte-level form.
    func words(_ text: String) -> [String] {
        var pieces = [text]
        for step in steps {
            var next: [String] = []
            next.reserveCapacity(pieces.count * 2)
            for piece in pieces {
                Self.apply(step, to: piece, into: &next)
            }
            pieces = next
        }
        return pieces.filter { !$0.isEmpty }
    }

    private static func apply(_ step: PreTokenizerStep, to piece: String, into output: inout [String]) {
        switch step {
        case let .byteLevel(addPrefixSpace, regex):
            var text = piece
            if addPrefixSpace && text.unicodeScalars.first != " " {
                text = " " + text
            }
            if let regex {
                var parts: [String] = []
                split(text, matches: regex.matchRanges(in: text), behavior: .isolated, invert: false, into: &parts)
                for part in parts {
                    output.append(ByteLevel.encode(part))
                }
            } else if !text.isEmpty {
                output.append(ByteLevel.encode(text))
            }
        case let .split(regex, behavior, invert):
            split(piece, matches: regex.matchRanges(in: piece), behavior: behavior, invert: invert, into: &output)
        case let .digits(individual):
            let scalars = piece.unicodeScalars
            var matches: [Range<String.Index>] = []
            var index = scalars.startIndex
            while index < scalars.endIndex {
                let next = scalars.index(after: index)
                if isNumeric(scalars[index]) {
                    matches.append(index..<next)
                }
                index = next
            }
            split(piece, matches: matches, behavior: individual ? .isolated : .contiguous, invert: false, into: &output)
        }
    }

    /// Unicode general category N (Nd, Nl, No), as Rust's `char::is_numeric` and regex `\p{N}`.
    private static func isNumeric(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// Cuts `text` at the given non-overlapping match ranges and combines the matched and
    /// unmatched pieces as `behavior` says (the `tokenizers` `NormalizedString::split`).
    /// Empty pieces are dropped.
    static func split(
        _ text: String, matches: [Range<String.Index>], behavior: SplitBehavior, invert: Bool,
        into output: inout [String]
    ) {
        // 1. The whole text as consecutive (range, isMatch) pieces.
        var pieces: [(range: Range<String.Index>, isMatch: Bool)] = []
        var previous = text.startIndex
        for match in matches {
            if previous != match.lowerBound {
                pieces.append((previous..<match.lowerBound, false))
            }
            pieces.append((match, true))
            previous = match.upperBound
        }
        if previous != text.endIndex {
            pieces.append((previous..<text.endIndex, false))
        }
        if invert {
            pieces = pieces.map { ($0.range, !$0.isMatch) }
        }

        // 2. Combine them; `remove` marks the pieces to drop.
        var splits: [(range: Range<String.Index>, remove: Bool)] = []
        switch behavior {
        case .removed:
            splits = pieces.map { ($0.range, $0.isMatch) }
        case .isolated:
            splits = pieces.map { ($0.range, false) }
        case .contiguous:
            var previousMatch = false
            for piece in pieces {
                if piece.isMatch == previousMatch, let last = splits.last {
                    splits[splits.count - 1].range = last.range.lowerBound..<piece.range.upperBound
                } else {
                    splits.append((piece.range, false))
                }
                previousMatch = piece.isMatch
            }
        case .mergedWithPrevious:
            var previousMatch = false
            for piece in pieces {
                if piece.isMatch && !previousMatch, let last = splits.last {
                    splits[splits.count - 1].range = last.range.lowerBound..<piece.range.upperBound
                } else {
                    splits.append((piece.range, false))
                }
                previousMatch = piece.isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for piece in pieces.reversed() {
                if piece.isMatch && !previousMatch, let last = splits.last {
                    splits[splits.count - 1].range = piece.range.lowerBound..<last.range.upperBound
                } else {
                    splits.append((piece.range, false))
                }
                previousMatch = piece.isMatch
            }
            splits.reverse()
        }

        // 3. Slice through the scalar view: the ranges need not fall on Character boundaries.
        let scalars = text.unicodeScalars
        for split in splits where !split.remove && !split.range.isEmpty {
            output.append(String(scalars[split.range]))
        }
    }
}

/// Unicode normalization forms a `normalizer` may ask for.
enum NormalizationForm: String, Sendable {
    case nfc = "NFC", nfd = "NFD", nfkc = "NFKC", nfkd = "NFKD"
}

/// The normalizer: `null`, one Unicode normalization form, or a `Sequence` of them.
struct Normalizer: Sendable {
    let forms: [NormalizationForm]

    init(json: JSONValue?) throws {
        var forms: [NormalizationForm] = []
        try Self.appendForms(json, to: &forms)
        self.forms = forms
    }

    private static func appendForms(_ json: JSONValue?, to forms: inout [NormalizationForm]) throws {
        guard let json, !json.isNull else { return }
        guard let object = json.objectValue else {
            throw TokenizerError.invalidField(what: "tokenizer.json", path: "normalizer", problem: "is \(json.kindName), expected an object or null")
        }
        let type = object["type"]?.stringValue ?? "(no type)"
        if type == "Sequence" {
            for element in object["normalizers"]?.arrayValue ?? [] {
                try appendForms(element, to: &forms)
            }
        } else if let form = NormalizationForm(rawValue: type) {
            forms.append(form)
        } else {
            throw TokenizerError.unsupportedNormalizer(type: type)
        }
    }

    func apply(_ text: String) -> String {
        var result = text
        for form in forms {
            switch form {
            case .nfc: result = result.precomposedStringWithCanonicalMapping
            case .nfd: result = result.decomposedStringWithCanonicalMapping
            case .nfkc: result = result.precomposedStringWithCompatibilityMapping
            case .nfkd: result = result.decomposedStringWithCompatibilityMapping
            }
        }
        return result
    }
}
