import ArgumentParser
import Foundation
import LoopCore
import LoopTokenizer

/// --model DIR | --tokenizer FILE
struct TokenizerSource: ParsableArguments {
    @Option(help: "Checkpoint folder holding tokenizer.json (default: the bundled model).") var model: String?
    @Option(help: "A tokenizer.json file.") var tokenizer: String?

    func load() throws -> Tokenizer {
        if let tokenizer { return try Tokenizer(contentsOf: URL(fileURLWithPath: tokenizer)) }
        return try loadTokenizer(URL(fileURLWithPath: model ?? DefaultModel.path()))
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Text to token ids.")

    @OptionGroup var source: TokenizerSource
    @Option(help: "Text to encode.") var text: String?
    @Option(help: "A UTF-8 file to encode.") var file: String?
    @Option(help: "A JSON array of strings; prints a JSON array of id arrays.") var batch: String?
    @Flag(help: "Do not add the post-processor's special tokens.") var noSpecial = false
    @Flag(help: "Print JSON (ids and tokens).") var json = false

    func run() throws {
        let tok = try source.load()
        if let batch {
            guard let data = FileManager.default.contents(atPath: batch) else { throw LoopError.fileNotFound(batch) }
            guard let arr = try? JSONSerialization.jsonObject(with: data) as? [Any] else {
                throw LoopError.invalidArgument("\(batch) is not a JSON array")
            }
            var out: [[Int]] = []
            for (i, v) in arr.enumerated() {
                guard let s = v as? String else { throw LoopError.invalidArgument("\(batch): element \(i) is not a string") }
                out.append(tok.encode(s, addSpecialTokens: !noSpecial))
            }
            print(try jsonString(out))
            return
        }
        let s: String
        if let text { s = text } else if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw LoopError.fileNotFound(file) }
            guard let t = String(data: data, encoding: .utf8) else { throw LoopError.invalidArgument("\(file) is not valid UTF-8") }
            s = t
        } else { throw ValidationError("give --text, --file or --batch") }
        let ids = tok.encode(s, addSpecialTokens: !noSpecial)
        if json {
            print(try jsonString(["ids": ids, "tokens": tok.tokens(for: ids)]))
        } else {
            print(ids.map(String.init).joined(separator: ","))
        }
    }
}

struct Detokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Token ids to text.")

    @OptionGroup var source: TokenizerSource
    @Option(help: "Comma-separated token ids.") var ids: String
    @Flag(help: "Leave special tokens out.") var skipSpecial = false

    func run() throws {
        let tok = try source.load()
        var list: [Int] = []
        for p in ids.split(separator: ",") {
            guard let v = Int(p.trimmingCharacters(in: .whitespaces)) else { throw LoopError.invalidArgument("--ids: \"\(p)\" is not a token id") }
            list.append(v)
        }
        print(tok.decode(list, skipSpecialTokens: skipSpecial))
    }
}
