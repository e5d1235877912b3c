import Foundation

/// Where the rows of one backend call sit: each row's input token, its position, and the KV
/// pages of the sequence it belongs to.
///
/// The KV cache of every slot is a pool of `KVPages.rows`-row pages. A sequence owns a page
/// table (its logical page i is physical page `table[i]`, the same page in every slot), so its
/// row at position j lives at physical cache row `table[j / rows] * rows + j % rows`, and its
/// memory follows its length. One sequence's prefill chunk is rows at consecutive positions
/// over one table; a batched decode step is one row per sequence, each with its own position
/// and table. The single-sequence engine uses the identity table (`consecutive`).
public struct StepRows: Sendable, Equatable {
    public var tokens: [Int32]
    public var positions: [Int]
    /// Per row: the index in `tables` of its sequence's page table.
    public var tableOf: [Int]
    /// Page tables (physical page numbers).
    public var tables: [[Int32]]
    /// The rows are separate sequences (a batched step), not one sequence's consecutive
    /// positions: kernels that share one key range between rows (prefill attention) do not apply.
    public var independent: Bool

    public init(tokens: [Int32], positions: [Int], tableOf: [Int], tables: [[Int32]], independent: Bool) {
        self.tokens = tokens; self.positions = positions; self.tableOf = tableOf; self.tables = tables; self.independent = independent
    }

    /// One sequence's rows at positions pos0, pos0 + 1, ... over its page table `table`; nil:
    /// the identity pages, covering at least `through` positions (a greedy chain runs past its
    /// first row).
    public static func consecutive(tokens: [Int32], pos0: Int, table: [Int32]? = nil, through: Int? = nil) -> StepRows {
        let end = max(through ?? 0, pos0 + tokens.count)
        return StepRows(tokens: tokens, positions: (0..<tokens.count).map { pos0 + $0 }, tableOf: Array(repeating: 0, count: tokens.count),
                        tables: [table ?? KVPages.identity(positions: end)], independent: false)
    }

    public var count: Int { tokens.count }

    /// The physical cache row of row `r`'s sequence at position `j`.
    @inline(__always) public func kvRow(_ r: Int, _ j: Int) -> Int {
        Int(tables[tableOf[r]][j >> KVPages.shift]) << KVPages.shift | (j & (KVPages.rows - 1))
    }

    /// Checks the rows against a layout: counts, positions within the context, every page a
    /// row reaches present and inside the pool.
    public func validate(_ layout: BackendLayout, what: String) throws {
        let n = tokens.count
        guard n > 0, n <= layout.maxRows else { throw LoopError.invalidArgument("\(what): a call must have 1...\(layout.maxRows) rows, got \(n)") }
        guard positions.count == n, tableOf.count == n else {
            throw LoopError.invalidArgument("\(what): \(n) tokens but \(positions.count) positions and \(tableOf.count) table indices")
        }
        guard tables.count <= layout.maxSequences else {
            throw LoopError.invalidArgument("\(what): \(tables.count) page tables, the backend holds \(layout.maxSequences)")
        }
        let poolPages = layout.kvRows / KVPages.rows
        for r in 0..<n {
            let p = positions[r]
            guard p >= 0, p < layout.maxContext else {
                throw LoopError.invalidArgument("\(what): row \(r) at position \(p) is outside the context of \(layout.maxContext) positions")
            }
            guard tableOf[r] >= 0, tableOf[r] < tables.count else { throw LoopError.invalidArgument("\(what): row \(r) names page table \(tableOf[r]) of \(tables.count)") }
            let t = tables[tableOf[r]]
            guard p >> KVPages.shift < t.count else {
                throw LoopError.invalidArgument("\(what): row \(r) at position \(p) is past its page table's \(t.count * KVPages.rows) positions")
            }
        }
        for t in tables {
            guard t.count <= KVPages.pages(positions: layout.maxContext) else {
                throw LoopError.invalidArgument("\(what): a page table of \(t.count) pages exceeds the context's \(KVPages.pages(positions: layout.maxContext))")
            }
            for page in t where page < 0 || Int(page) >= poolPages {
                throw LoopError.invalidArgument("\(what): KV page \(page) is outside the pool of \(poolPages) pages")
            }
        }
    }
}

/// The KV cache's page geometry and a pool allocator for a batch of sequences.
public enum KVPages {
    /// Rows per page (a power of 2; the shaders' KV_PAGE_SHIFT).
    public static let shift = 4
    public static let rows = 1 << shift
    public static func pages(positions: Int) -> Int { (positions + rows - 1) / rows }
    public static func identity(positions: Int) -> [Int32] { (0..<pages(positions: positions)).map { Int32($0) } }
}

/// Hands out the pages of a KV pool to sequences as they grow, and takes them back when they
/// end (the batch decoder's memory: each sequence holds only the pages its length needs).
public struct KVPagePool: Sendable {
    public let pageCount: Int
    private var free: [Int32]
    public init(pages: Int) {
        pageCount = pages
        free = (0..<pages).reversed().map { Int32($0) }
    }
    public var freePages: Int { free.count }
    /// `n` pages, or nil (nothing taken) when fewer are free.
    public mutating func take(_ n: Int) -> [Int32]? {
        guard n <= free.count else { return nil }
        let got = Array(free.suffix(n).reversed())
        free.removeLast(n)
        return got
    }
    public mutating func give(_ pages: [Int32]) { free.append(contentsOf: pages.reversed()) }
}
