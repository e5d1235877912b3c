import Foundation

/// The parts of a checkpoint's `tokenizer_config.json` that generation needs.
public struct TokenizerConfig: Sendable, Equatable {
    /// `bos_token` (written in the file as a string or as `{"content": ...}`).
    public var bosToken: String?
    /// `eos_token`.
    public var eosToken: String?
    /// `pad_token`.
    public var padToken: String?
    /// `unk_token`.
    public var unkToken: String?
    /// `add_bos_token`, when the file says.
    public var addBOSToken: Bool?
    /// `add_eos_token`, when the file says.
    public var addEOSToken: Bool?
    /// The default chat template's Jinja source: `chat_template` when it is a string; when it is
    /// a list of `{name, template}`, the one named `default` (else the first).
    public var chatTemplate: String?
    /// Every named template when `chat_template` is a list (name -> Jinja source).
    public var namedChatTemplates: [String: String]

    /// Builds a config directly (for tests, or a checkpoint without tokenizer_config.json).
    public init(
        bosToken: String? = nil, eosToken: String? = nil, padToken: String? = nil, unkToken: String? = nil,
        addBOSToken: Bool? = nil, addEOSToken: Bool? = nil, chatTemplate: String? = nil,
        namedChatTemplates: [String: String] = [:]
    ) {
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.padToken = padToken
        self.unkToken = unkToken
        self.addBOSToken = addBOSToken
        self.addEOSToken = addEOSToken
        self.chatTemplate = chatTemplate
        self.namedChatTemplates = namedChatTemplates
    }

    /// Reads a tokenizer_config.json file.
    public init(contentsOf url: URL) throws {
        let data = try readTokenizerFile(url)
        try self.init(data: data, source: url.lastPathComponent)
    }

    /// Reads tokenizer_config.json contents.
    public init(data: Data) throws {
        try self.init(data: data, source: "tokenizer_config.json")
    }

    private init(data: Data, source: String) throws {
        let root = try parseJSONObject(data, source: source)

        func tokenString(_ key: String) throws -> String? {
            guard let value = root[key] else { return nil }
            switch value {
            case .null: return nil
            case .string(let s): return s
            case .object(let object):
                guard let content = object["content"]?.stringValue else {
                    throw TokenizerError.invalidField(what: source, path: key, problem: "is an object without a string \"content\"")
                }
                return content
            default:
                throw TokenizerError.invalidField(what: source, path: key, problem: "is \(value.kindName), expected a string or {\"content\": ...}")
            }
        }

        bosToken = try tokenString("bos_token")
        eosToken = try tokenString("eos_token")
        padToken = try tokenString("pad_token")
        unkToken = try tokenString("unk_token")
        addBOSToken = root["add_bos_token"]?.boolValue
        addEOSToken = root["add_eos_token"]?.boolValue

        namedChatTemplates = [:]
        chatTemplate = nil
        switch root["chat_template"] {
        case nil, .null?:
            break
        case .string(let source)?:
            chatTemplate = source
        case .array(let list)?:
            var first: String?
            for (index, element) in list.enumerated() {
                guard let entry = element.objectValue,
                      let name = entry["name"]?.stringValue,
                      let template = entry["template"]?.stringValue
                else {
                    throw TokenizerError.invalidField(what: source, path: "chat_template[\(index)]", problem: "is not a {\"name\", \"template\"} object")
                }
                namedChatTemplates[name] = template
                if first == nil { first = template }
            }
            chatTemplate = namedChatTemplates["default"] ?? first
        case let other?:
            throw TokenizerError.invalidField(what: source, path: "chat_template", problem: "is \(other.kindName), expected a string or a list of {name, template}")
        }
    }
}

/// Parses `data` as a JSON object, turning syntax errors into ``TokenizerError/malformedJSON(what:detail:)``.
func parseJSONObject(_ data: Data, source: String) throws -> JSONObject {
    let value: JSONValue
    do throws(JSONSyntaxError) {
        value = try JSONParser.parse(data)
    } catch {
        throw TokenizerError.malformedJSON(what: source, detail: error.description)
    }
    guard let object = value.objectValue else {
        throw TokenizerError.malformedJSON(what: source, detail: "the top-level value is \(value.kindName), expected an object")
    }
    return object
}

/// The ids that end generation for a checkpoint: the union of
/// * `eos_token_id` of `generation_config.json` (an integer or a list), when the file exists,
/// * the `eos_token` of `tokenizer_config.json`,
/// * the family's documented stop tokens (`ModelInfo.stopTokens`, declared by each family),
///   each when the tokenizer has it.
///
/// - Parameters:
///   - generationConfigURL: generation_config.json; nil, or a file that does not exist, adds nothing.
///   - tokenizerConfig: the checkpoint's tokenizer_config.json, if any.
///   - familyStops: the family's stop token strings.
/// - Throws: ``TokenizerError`` when generation_config.json exists but cannot be read or parsed.
public func stopTokenIDs(
    generationConfigURL: URL?, tokenizerConfig: TokenizerConfig?, tokenizer: Tokenizer, familyStops: [String]
) throws -> Set<Int> {
    var ids = Set<Int>()
    if let url = generationConfigURL, FileManager.default.fileExists(atPath: url.path) {
        let data = try readTokenizerFile(url)
        let root = try parseJSONObject(data, source: url.lastPathComponent)
        switch root["eos_token_id"] {
        case nil, .null?:
            break
        case .array(let list)?:
            for element in list {
                guard let id = element.intValue else {
                    throw TokenizerError.invalidField(what: url.lastPathComponent, path: "eos_token_id", problem: "contains \(element.kindName), expected integers")
                }
                ids.insert(id)
            }
        case let value?:
            guard let id = value.intValue else {
                throw TokenizerError.invalidField(what: url.lastPathComponent, path: "eos_token_id", problem: "is \(value.kindName), expected an integer or a list of integers")
            }
            ids.insert(id)
        }
    }
    if let eos = tokenizerConfig?.eosToken, let id = tokenizer.id(for: eos) {
        ids.insert(id)
    }
    for token in familyStops {
        if let id = tokenizer.id(for: token) {
            ids.insert(id)
        }
    }
    return ids
}
