import Foundation

/// The BPE model of a tokenizer.json: vocabulary, ranked merges, and the merge algorithm.
///
/// Token ids are stored as `Int32` internally. A merge is looked up by the pair of ids it joins,
/// packed into one `UInt64`, so encoding a word never builds strings.
struct BPEModel: Sendable {
    /// What merging a pair gives: the merge's rank (its index in the merges list; lower merges
    /// first) and the id of the merged token.
    struct Merge: Sendable {
        var rank: Int32
        var newID: Int32
    }

    /// Token string -> id.
    let vocab: [String: Int]
    /// Id -> token string (nil for ids the vocabulary skips).
    let tokensByID: [String?]
    private let merges: [UInt64: Merge]
    /// Ids of single-character tokens, keyed by the character's scalar value: the starting
    /// symbols of a word.
    private let characterIDs: [UInt32: Int32]
    private let unknownID: Int32?
    private let fuseUnknown: Bool
    private let byteFallback: Bool
    private let continuingSubwordPrefix: String
    private let endOfWordSuffix: String
    /// `ignore_merges`: a word that is itself in the vocabulary is one token.
    private let ignoreMerges: Bool
    private let cache = WordCache()

    /// The largest token id accepted (ids index dense tables, so an absurd id must not
    /// allocate gigabytes; real vocabularies stay far below this).
    static let maximumTokenID = (1 << 23) - 1

    @inline(__always)
    private static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Reads the `model` object of tokenizer.json.
    init(json: JSONObject, source: String) throws {
        let type = json["type"]?.stringValue ?? "BPE"
        guard type == "BPE" else { throw TokenizerError.unsupportedModel(type: type) }

        guard let vocabValue = json["vocab"] else { throw TokenizerError.missingField(what: source, path: "model.vocab") }
        guard let vocabObject = vocabValue.objectValue else {
            throw TokenizerError.invalidField(what: source, path: "model.vocab", problem: "is \(vocabValue.kindName), expected an object of token -> id")
        }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(vocabObject.members.count)
        var maxID = -1
        for (token, idValue) in vocabObject.members {
            guard let id = idValue.intValue, id >= 0, id <= Self.maximumTokenID else {
                throw TokenizerError.invalidField(what: source, path: "model.vocab[\(token.debugDescription)]",
                                                  problem: "is not a valid token id (0...\(Self.maximumTokenID))")
            }
            vocab[token] = id
            maxID = max(maxID, id)
        }
        var tokensByID = [String?](repeating: nil, count: maxID + 1)
        var characterIDs: [UInt32: Int32] = [:]
        for (token, id) in vocab {
            tokensByID[id] = token
            let scalars = token.unicodeScalars
            if let first = scalars.first, scalars.index(after: scalars.startIndex) == scalars.endIndex {
                characterIDs[first.value] = Int32(id)
            }
        }

        let prefix = json["continuing_subword_prefix"]?.stringValue ?? ""
        let suffix = json["end_of_word_suffix"]?.stringValue ?? ""

        // Merges: "a b" strings (older files) or [a, b] pairs (tokenizers >= 0.20).
        let mergeList = json["merges"]?.arrayValue ?? []
        var merges: [UInt64: Merge] = [:]
        merges.reserveCapacity(mergeList.count)
        for (index, entry) in mergeList.enumerated() {
            let left: String
            let right: String
            switch entry {
            case .string(let line):
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw TokenizerError.invalidField(what: source, path: "model.merges[\(index)]", problem: "is \(line.debugDescription), expected two tokens separated by one space")
                }
                left = String(parts[0])
                right = String(parts[1])
            case .array(let pair):
                guard pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue else {
                    throw TokenizerError.invalidField(what: source, path: "model.merges[\(index)]", problem: "is not a pair of token strings")
                }
                left = a
                right = b
            default:
                throw TokenizerError.invalidField(what: source, path: "model.merges[\(index)]", problem: "is \(entry.kindName), expected \"a b\" or [a, b]")
            }
            let mergeName = "\(left) \(right)"
            guard let leftID = vocab[left] else {
                throw TokenizerError.unknownMergeToken(merge: mergeName, index: index, token: left)
            }
            guard let rightID = vocab[right] else {
                throw TokenizerError.unknownMergeToken(merge: mergeName, index: index, token: right)
            }
            let merged = left + (right.hasPrefix(prefix) ? String(right.unicodeScalars.dropFirst(prefix.unicodeScalars.count)) : right)
            guard let newID = vocab[merged] else {
                throw TokenizerError.unknownMergeToken(merge: mergeName, index: index, token: merged)
            }
            // A repeated pair takes its last rank, as the `tokenizers` hash map does.
            merges[Self.pairKey(Int32(leftID), Int32(rightID))] = Merge(rank: Int32(index), newID: Int32(newID))
        }

        var unknownID: Int32?
        if let unknownToken = json["unk_token"]?.stringValue {
            guard let id = vocab[unknownToken] else {
                throw TokenizerError.unknownToken(token: unknownToken, context: "model.unk_token")
            }
            unknownID = Int32(id)
        }

        self.vocab = vocab
        self.tokensByID = tokensByID
        self.merges = merges
        self.characterIDs = characterIDs
        self.unknownID = unknownID
        self.fuseUnknown = json["fuse_unk"]?.boolValue ?? false
        self.byteFallback = json["byte_fallback"]?.boolValue ?? false
        self.continuingSubwordPrefix = prefix
        self.endOfWordSuffix = suffix
        self.ignoreMerges = json["ignore_merges"]?.boolValue ?? false
    }

    /// The token ids of one pre-tokenized word (cached per word).
    func encode(word: String, into ids: inout [Int]) {
        if let cached = cache.lookup(word) {
            ids.append(contentsOf: cached)
            return
        }
        let result = computeIDs(of: word)
        cache.store(word, result)
        ids.append(contentsOf: result)
    }

    private func computeIDs(of word: String) -> [Int] {
        if ignoreMerges, let id = vocab[word] {
            return [id]
        }
        // Starting symbols: one per character.
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.utf8.count)
        let simple = continuingSubwordPrefix.isEmpty && endOfWordSuffix.isEmpty
        let scalars = word.unicodeScalars
        var lastWasUnknown = false
        var index = scalars.startIndex
        while index < scalars.endIndex {
            let scalar = scalars[index]
            let next = scalars.index(after: index)
            var id: Int32?
            if simple {
                id = characterIDs[scalar.value]
            } else {
                var piece = index == scalars.startIndex ? "" : continuingSubwordPrefix
                piece.unicodeScalars.append(scalar)
                if next == scalars.endIndex { piece += endOfWordSuffix }
                id = vocab[piece].map { Int32($0) }
            }
            index = next
            if let id {
                symbols.append(id)
                lastWasUnknown = false
                continue
            }
            if byteFallback {
                let byteIDs = String(scalar).utf8.map { vocab[String(format: "<0x%02X>", $0)] }
                if byteIDs.allSatisfy({ $0 != nil }) {
                    symbols.append(contentsOf: byteIDs.map { Int32($0!) })
                    lastWasUnknown = false
                    continue
                }
            }
            if let unknownID {
                if !(fuseUnknown && lastWasUnknown) {
                    symbols.append(unknownID)
                }
                lastWasUnknown = true
            }
            // Without an unknown token, a character outside the vocabulary is dropped.
        }
        mergeSymbols(&symbols)
        return symbols.map { Int($0) }
    }

    /// Applies merges in order of rank, leftmost first among equal ranks (the `tokenizers`
    /// `Word::merge_all` algorithm: a priority queue of candidate pairs over a linked list of
    /// symbols; stale queue entries are skipped when popped).
    private func mergeSymbols(_ symbols: inout [Int32]) {
        let count = symbols.count
        guard count > 1 else { return }
        var previous = [Int32](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count { buffer[i] = Int32(i) - 1 }
            initialized = count
        }
        var next = [Int32](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count { buffer[i] = i + 1 < count ? Int32(i + 1) : -1 }
            initialized = count
        }
        var alive = [Bool](repeating: true, count: count)
        var queue = MergeQueue()
        for i in 0..<(count - 1) {
            if let merge = merges[Self.pairKey(symbols[i], symbols[i + 1])] {
                queue.push(rank: merge.rank, position: Int32(i), newID: merge.newID)
            }
        }
        while let top = queue.pop() {
            let position = Int(top.position)
            guard alive[position], next[position] >= 0 else { continue }
            let right = Int(next[position])
            guard let merge = merges[Self.pairKey(symbols[position], symbols[right])], merge.newID == top.newID else {
                continue  // stale entry: the pair changed since it was queued
            }
            symbols[position] = top.newID
            alive[right] = false
            next[position] = next[right]
            if next[right] >= 0 {
                previous[Int(next[right])] = Int32(position)
            }
            if previous[position] >= 0 {
                let left = Int(previous[position])
                if let merge = merges[Self.pairKey(symbols[left], symbols[position])] {
                    queue.push(rank: merge.rank, position: Int32(left), newID: merge.newID)
                }
            }
            if next[position] >= 0 {
                if let merge = merges[Self.pairKey(symbols[position], symbols[Int(next[position])])] {
                    queue.push(rank: merge.rank, position: Int32(position), newID: merge.newID)
                }
            }
        }
        var write = 0
        for i in 0..<count where alive[i] {
            symbols[write] = symbols[i]
            write += 1
        }
        symbols.removeLast(count - write)
    }
}

/// A binary min-heap of candidate merges ordered by (rank, position).
private struct MergeQueue {
    private var keys: [UInt64] = []  // rank << 32 | position: comparing keys compares (rank, position)
    private var newIDs: [Int32] = []

    mutating func push(rank: Int32, position: Int32, newID: Int32) {
        keys.append(UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: position)))
        newIDs.append(newID)
        var child = keys.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard keys[child] < keys[parent] else { break }
            keys.swapAt(child, parent)
            newIDs.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (position: Int32, newID: Int32)? {
        guard let first = keys.first else { return nil }
        let result = (position: Int32(truncatingIfNeeded: first & 0xFFFF_FFFF), newID: newIDs[0])
        let lastKey = keys.removeLast()
        let lastID = newIDs.removeLast()
        if !keys.isEmpty {
            keys[0] = lastKey
            newIDs[0] = lastID
            var parent = 0
            while true {
                let left = 2 * parent + 1
                guard left < keys.count else { break }
                let right = left + 1
                let smallest = right < keys.count && keys[right] < keys[left] ? right : left
                guard keys[smallest] < keys[parent] else { break }
                keys.swapAt(smallest, parent)
                newIDs.swapAt(smallest, parent)
                parent = smallest
            }
        }
        return result
    }
}

/// A thread-safe cache of word -> token ids. Words longer than ``maximumWordLength`` UTF-8
/// bytes are not cached, and once ``capacity`` words are stored no more are added.
final class WordCache: @unchecked Sendable {
    static let capacity = 100_000
    static let maximumWordLength = 256

    private let lock = NSLock()
    private var entries: [String: [Int]] = [:]

    func lookup(_ word: String) -> [Int]? {
        guard word.utf8.count <= Self.maximumWordLength else { return nil }
        lock.lock()
        defer { lock.unlock() }
        return entries[word]
    }

    func store(_ word: String, _ ids: [Int]) {
        guard word.utf8.count <= Self.maximumWordLength else { return }
        lock.lock()
        defer { lock.unlock() }
        if entries.count < Self.capacity {
            entries[word] = ids
        }
    }
}
