import Foundation

/// A byte-level BPE tokenizer read from a Hugging Face `tokenizer.json`, producing the same ids
/// and text as the `tokenizers` library for the tokenizers of the looped-model families
/// (GPT-2/SmolLM2 style for Ouro, tiktoken style for Huginn-0125, Qwen3 for LoopUS).
///
/// Encoding runs the `tokenizers` pipeline:
/// 1. added tokens (special or not) are split out of the text first, leftmost-longest; special
///    tokens written literally in the text are therefore always matched, whatever
///    `addSpecialTokens` says;
/// 2. the normalizer (`null`, or Unicode NFC/NFD/NFKC/NFKD);
/// 3. the pre-tokenizer: `ByteLevel` (GPT-2 regex, `add_prefix_space`), `Split` (regex or
///    string pattern, any `behavior`, `invert`), `Digits`, or a `Sequence` of these;
/// 4. BPE on every word: merges applied by rank, `ignore_merges`; results cached per word;
/// 5. with `addSpecialTokens`, the post-processor (`TemplateProcessing`, `ByteLevel`,
///    `BertProcessing`, `RobertaProcessing`, or a `Sequence` of these).
///
/// Decoding follows the `ByteLevel` decoder: token characters become bytes again and the bytes
/// are read as UTF-8, invalid sequences becoming U+FFFD as in Rust's `String::from_utf8_lossy`.
///
/// The tokenizer is immutable (apart from an internal, locked word cache) and can be shared
/// between threads.
public final class Tokenizer: Sendable {
    private let model: BPEModel
    private let normalizer: Normalizer
    private let preTokenizer: PreTokenizer
    private let postProcessor: PostProcessor
    /// Added tokens matched in the raw text (`normalized: false`).
    private let rawAddedTokens: AddedTokenMatcher
    /// Added tokens matched in the normalized text (`normalized: true`).
    private let normalizedAddedTokens: AddedTokenMatcher
    /// Added-token content -> id.
    private let addedTokenIDs: [String: Int]
    /// Id -> token string, added tokens taking precedence over the model vocabulary.
    private let tokensByID: [String?]
    /// Whether the id's token string is the content of a special added token.
    private let isSpecialByID: [Bool]
    /// The decoded bytes of every id, back to back: id `i` owns
    /// `decodedBytes[decodedOffsets[i]..<decodedOffsets[i + 1]]`.
    private let decodedBytes: [UInt8]
    private let decodedOffsets: [Int32]

    /// The number of ids that name a token: the model vocabulary together with the added tokens
    /// (the `tokenizers` `get_vocab_size(with_added_tokens: true)` when ids are contiguous).
    public let vocabSize: Int

    /// The ids of the special added tokens (`"special": true` in `added_tokens`).
    public let specialTokenIDs: Set<Int>

    /// Reads a tokenizer.json file.
    /// - Throws: ``TokenizerError`` when the file cannot be read or uses something unsupported.
    public convenience init(contentsOf url: URL) throws {
        let data = try readTokenizerFile(url)
        try self.init(data: data, source: url.lastPathComponent)
    }

    /// Reads tokenizer.json contents.
    /// - Throws: ``TokenizerError`` when the JSON is malformed or uses something unsupported.
    public convenience init(data: Data) throws {
        try self.init(data: data, source: "tokenizer.json")
    }

    private init(data: Data, source: String) throws {
        let root = try parseJSONObject(data, source: source)

        guard let modelValue = root["model"], !modelValue.isNull else {
            throw TokenizerError.missingField(what: source, path: "model")
        }
        guard let modelObject = modelValue.objectValue else {
            throw TokenizerError.invalidField(what: source, path: "model", problem: "is \(modelValue.kindName), expected an object")
        }
        let model = try BPEModel(json: modelObject, source: source)
        normalizer = try Normalizer(json: root["normalizer"])
        preTokenizer = try PreTokenizer(json: root["pre_tokenizer"])
        postProcessor = try PostProcessor(json: root["post_processor"], source: source)
        try Self.checkDecoder(root["decoder"], source: source)

        var addedTokens: [AddedToken] = []
        for (index, element) in (root["added_tokens"]?.arrayValue ?? []).enumerated() {
            addedTokens.append(try AddedToken(json: element, index: index, source: source))
        }
        rawAddedTokens = AddedTokenMatcher(tokens: addedTokens.filter { !$0.normalized })
        normalizedAddedTokens = AddedTokenMatcher(tokens: addedTokens.filter { $0.normalized })

        var addedTokenIDs: [String: Int] = [:]
        for token in addedTokens {
            addedTokenIDs[token.content] = token.id
        }
        let specialContents = Set(addedTokens.filter(\.special).map(\.content))

        var tokensByID = model.tokensByID
        let maxAddedID = addedTokens.map(\.id).max() ?? -1
        if maxAddedID >= tokensByID.count {
            tokensByID.append(contentsOf: [String?](repeating: nil, count: maxAddedID + 1 - tokensByID.count))
        }
        for token in addedTokens {
            tokensByID[token.id] = token.content
        }
        // The post-processor must only add ids that name a token (its ids are written as plain
        // numbers in the file, nothing else ties them to the vocabulary).
        for id in postProcessor.fixedIDs where id < 0 || id >= tokensByID.count || tokensByID[id] == nil {
            throw TokenizerError.invalidField(what: source, path: "post_processor", problem: "adds token id \(id), which names no token")
        }

        var decodedBytes: [UInt8] = []
        decodedBytes.reserveCapacity(tokensByID.count * 4)
        var decodedOffsets: [Int32] = [0]
        decodedOffsets.reserveCapacity(tokensByID.count + 1)
        var isSpecialByID = [Bool](repeating: false, count: tokensByID.count)
        for (id, token) in tokensByID.enumerated() {
            if let token {
                decodedBytes.append(contentsOf: ByteLevel.decodedBytes(of: token))
                isSpecialByID[id] = specialContents.contains(token)
            }
            decodedOffsets.append(Int32(decodedBytes.count))
        }

        self.model = model
        self.addedTokenIDs = addedTokenIDs
        self.tokensByID = tokensByID
        self.isSpecialByID = isSpecialByID
        self.decodedBytes = decodedBytes
        self.decodedOffsets = decodedOffsets
        self.vocabSize = tokensByID.lazy.filter { $0 != nil }.count
        self.specialTokenIDs = Set(addedTokens.filter(\.special).map(\.id))
    }

    /// Accepts only decoders whose output this type reproduces: `ByteLevel`, alone or in a `Sequence`.
    private static func checkDecoder(_ json: JSONValue?, source: String) throws {
        guard let json, !json.isNull else {
            throw TokenizerError.unsupportedDecoder(type: "null")
        }
        guard let object = json.objectValue else {
            throw TokenizerError.invalidField(what: source, path: "decoder", problem: "is \(json.kindName), expected an object")
        }
        let type = object["type"]?.stringValue ?? "(no type)"
        switch type {
        case "ByteLevel":
            return
        case "Sequence":
            let decoders = object["decoders"]?.arrayValue ?? []
            guard !decoders.isEmpty else { throw TokenizerError.unsupportedDecoder(type: "empty Sequence") }
            for decoder in decoders {
                try checkDecoder(decoder, source: source)
            }
        default:
            throw TokenizerError.unsupportedDecoder(type: type)
        }
    }

    // MARK: Encoding

    /// Encodes `text` into token ids.
    ///
    /// - Parameters:
    ///   - text: the text; special tokens written in it (`<|im_start|>`) become their ids.
    ///   - addSpecialTokens: whether to apply the post-processor (e.g. prepend `<|begin_text|>`).
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = []
        for segment in rawAddedTokens.split(Substring(text)) {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let raw):
                let normalized = normalizer.forms.isEmpty ? raw : Substring(normalizer.apply(String(raw)))
                for inner in normalizedAddedTokens.split(normalized) {
                    switch inner {
                    case .token(let id):
                        ids.append(id)
                    case .text(let piece):
                        for word in preTokenizer.words(String(piece)) {
                            model.encode(word: word, into: &ids)
                        }
                    }
                }
            }
        }
        return addSpecialTokens ? postProcessor.process(ids) : ids
    }

    // MARK: Vocabulary

    /// The id of a token string (in byte-level form, e.g. `"Ġthe"`), added tokens first; nil if
    /// the token does not exist.
    public func id(for token: String) -> Int? {
        addedTokenIDs[token] ?? model.vocab[token]
    }

    /// The token string of an id (byte-level form for vocabulary tokens), or nil for an unknown id.
    public func token(for id: Int) -> String? {
        guard id >= 0 && id < tokensByID.count else { return nil }
        return tokensByID[id]
    }

    /// The token strings of `ids`; ids that name no token are left out.
    public func tokens(for ids: [Int]) -> [String] {
        ids.compactMap { token(for: $0) }
    }

    /// Whether `id` is a special token (removed when decoding with `skipSpecialTokens`).
    public func isSpecialToken(_ id: Int) -> Bool {
        id >= 0 && id < isSpecialByID.count && isSpecialByID[id]
    }

    // MARK: Decoding

    /// Decodes ids to text. Ids that name no token are ignored; invalid UTF-8 becomes U+FFFD.
    /// - Parameter skipSpecialTokens: leave out special tokens (`<|im_end|>` ...).
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        for id in ids {
            appendDecodedBytes(of: id, skipSpecialTokens: skipSpecialTokens, to: &bytes)
        }
        return LossyUTF8.decode(bytes, isFinal: true).text
    }

    /// Appends the bytes that `id` decodes to (nothing for an unknown id, or for a special token
    /// when `skipSpecialTokens` is set).
    func appendDecodedBytes(of id: Int, skipSpecialTokens: Bool, to bytes: inout [UInt8]) {
        guard id >= 0 && id < tokensByID.count else { return }
        if skipSpecialTokens && isSpecialByID[id] { return }
        bytes.append(contentsOf: decodedBytes[Int(decodedOffsets[id])..<Int(decodedOffsets[id + 1])])
    }
}
