#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Reads a whole tokenizer-side file. A path that is not a regular file (a folder, or a FIFO
/// that would block until someone writes to it) is refused before it is opened.
func readTokenizerFile(_ url: URL) throws -> Data {
    var info = stat()
    if stat(url.path, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG {
        throw TokenizerError.unreadableFile(path: url.path, reason: "not a regular file")
    }
    do {
        return try Data(contentsOf: url)
    } catch {
        throw TokenizerError.unreadableFile(path: url.path, reason: error.localizedDescription)
    }
}

/// Why a tokenizer file, tokenizer config or chat template could not be used.
///
/// Every case's ``description`` is one line that names the file part at fault, so it can be
/// shown to a user as it is.
public enum TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A file could not be read.
    case unreadableFile(path: String, reason: String)
    /// The bytes are not valid JSON; `detail` names the problem and its line and column.
    case malformedJSON(what: String, detail: String)
    /// A required field is absent (`path` is a JSON path such as `model.vocab`).
    case missingField(what: String, path: String)
    /// A field has the wrong JSON type or an invalid value.
    case invalidField(what: String, path: String, problem: String)
    /// The `model.type` is not one this module implements (only `BPE` is).
    case unsupportedModel(type: String)
    /// A normalizer type this module does not implement.
    case unsupportedNormalizer(type: String)
    /// A pre-tokenizer type (or option) this module does not implement.
    case unsupportedPreTokenizer(type: String)
    /// A post-processor type this module does not implement.
    case unsupportedPostProcessor(type: String)
    /// A decoder type this module does not implement.
    case unsupportedDecoder(type: String)
    /// A regular expression in the file that Swift `Regex` cannot compile.
    case invalidRegex(pattern: String, reason: String)
    /// Merge number `index` (0-based rank) names a token, or produces one, that is not in the vocabulary.
    case unknownMergeToken(merge: String, index: Int, token: String)
    /// A token named by the post-processor or a config is in neither the vocabulary nor the added tokens.
    case unknownToken(token: String, context: String)
    /// No known chat template matches.
    case unknownChatTemplate(String)

    public var description: String {
        Self.oneLine(rawDescription)
    }

    /// The message with control characters (newlines from a file's strings, say) escaped, so
    /// that it stays one line whatever the file holds.
    private static func oneLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isLineBreaking) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if isLineBreaking(scalar) {
                out += scalar.escaped(asASCII: true)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func isLineBreaking(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .control || scalar == "\u{2028}" || scalar == "\u{2029}"
    }

    private var rawDescription: String {
        switch self {
        case let .unreadableFile(path, reason):
            return "cannot read \(path): \(reason)"
        case let .malformedJSON(what, detail):
            return "\(what) is not valid JSON: \(detail)"
        case let .missingField(what, path):
            return "\(what) has no \"\(path)\" field"
        case let .invalidField(what, path, problem):
            return "\(what): field \"\(path)\" \(problem)"
        case let .unsupportedModel(type):
            return "unsupported tokenizer model type \"\(type)\" (only byte-level \"BPE\" is supported)"
        case let .unsupportedNormalizer(type):
            return "unsupported normalizer \"\(type)\" (supported: null, NFC, NFD, NFKC, NFKD, Sequence of these)"
        case let .unsupportedPreTokenizer(type):
            return "unsupported pre-tokenizer \"\(type)\" (supported: ByteLevel, Split, Digits, Sequence of these)"
        case let .unsupportedPostProcessor(type):
            return "unsupported post-processor \"\(type)\" (supported: null, TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence of these)"
        case let .unsupportedDecoder(type):
            return "unsupported decoder \"\(type)\" (only ByteLevel, alone or in a Sequence, is supported)"
        case let .invalidRegex(pattern, reason):
            return "cannot compile pre-tokenizer regex \(pattern.debugDescription): \(reason)"
        case let .unknownMergeToken(merge, index, token):
            return "merge #\(index) \(merge.debugDescription) refers to token \(token.debugDescription), which is not in the vocabulary"
        case let .unknownToken(token, context):
            return "\(context) names token \(token.debugDescription), which is not in the vocabulary"
        case let .unknownChatTemplate(message):
            return message
        }
    }
}
