/// The post-processor: what `encode(_:addSpecialTokens: true)` adds around the encoded text.
///
/// Only single sequences are encoded here, so a template's `pair` part is not used.
struct PostProcessor: Sendable {
    /// One element of a single-sequence template.
    enum Piece: Sendable, Equatable {
        /// Fixed token ids (a `SpecialToken` of a template, a `cls`/`sep` token).
        case tokens([Int])
        /// The encoded text.
        case sequence
    }

    /// Templates applied one after the other (a `Sequence` post-processor); empty when the
    /// post-processor adds nothing (`null`, `ByteLevel`).
    let templates: [[Piece]]

    init(json: JSONValue?, source: String) throws {
        var templates: [[Piece]] = []
        try Self.appendTemplates(json, source: source, to: &templates)
        self.templates = templates
    }

    private static func appendTemplates(_ json: JSONValue?, source: String, to templates: inout [[Piece]]) throws {
        guard let json, !json.isNull else { return }
        guard let object = json.objectValue else {
            throw TokenizerError.invalidField(what: source, path: "post_processor", problem: "is \(json.kindName), expected an object or null")
        }
        let type = object["type"]?.stringValue ?? "(no type)"
        switch type {
        case "Sequence":
            for element in object["processors"]?.arrayValue ?? [] {
                try appendTemplates(element, source: source, to: &templates)
            }
        case "ByteLevel":
            break  // only adjusts offsets
        case "TemplateProcessing":
            templates.append(try templatePieces(object, source: source))
        case "BertProcessing", "RobertaProcessing":
            // "cls": ["[CLS]", 101], "sep": ["[SEP]", 102] -> [CLS] A [SEP]
            func tokenID(_ key: String) throws -> Int {
                guard let pair = object[key]?.arrayValue, pair.count == 2, let id = pair[1].intValue else {
                    throw TokenizerError.invalidField(what: source, path: "post_processor.\(key)", problem: "is not a [token, id] pair")
                }
                return id
            }
            templates.append([.tokens([try tokenID("cls")]), .sequence, .tokens([try tokenID("sep")])])
        default:
            throw TokenizerError.unsupportedPostProcessor(type: type)
        }
    }

    private static func templatePieces(_ object: JSONObject, source: String) throws -> [Piece] {
        guard let single = object["single"]?.arrayValue else {
            throw TokenizerError.missingField(what: source, path: "post_processor.single")
        }
        let specialTokens = object["special_tokens"]?.objectValue
        var pieces: [Piece] = []
        for (index, element) in single.enumerated() {
            if let special = element.objectValue?["SpecialToken"]?.objectValue {
                guard let name = special["id"]?.stringValue else {
                    throw TokenizerError.invalidField(what: source, path: "post_processor.single[\(index)].SpecialToken", problem: "has no string \"id\"")
                }
                guard let entry = specialTokens?[name]?.objectValue,
                      let ids = entry["ids"]?.arrayValue?.compactMap(\.intValue)
                else {
                    throw TokenizerError.unknownToken(token: name, context: "post_processor.single (missing from post_processor.special_tokens)")
                }
                pieces.append(.tokens(ids))
            } else if let sequence = element.objectValue?["Sequence"]?.objectValue {
                // Only sequence "A" exists when encoding a single text.
                if sequence["id"]?.stringValue ?? "A" == "A" {
                    pieces.append(.sequence)
                }
            } else {
                throw TokenizerError.invalidField(what: source, path: "post_processor.single[\(index)]", problem: "is neither a SpecialToken nor a Sequence")
            }
        }
        return pieces
    }

    /// Every fixed id the templates add.
    var fixedIDs: [Int] {
        templates.flatMap { template in
            template.flatMap { piece -> [Int] in
                if case .tokens(let ids) = piece { return ids }
                return []
            }
        }
    }

    /// The ids that the model sees for an encoded text.
    func process(_ ids: [Int]) -> [Int] {
        var result = ids
        for template in templates {
            var next: [Int] = []
            next.reserveCapacity(result.count + 4)
            for piece in template {
                switch piece {
                case .tokens(let fixed): next.append(contentsOf: fixed)
                case .sequence: next.append(contentsOf: result)
                }
            }
            result = next
        }
        return result
    }
}
