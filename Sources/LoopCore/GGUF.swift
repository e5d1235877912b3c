import Foundation

/// The GGUF file format (llama.cpp's single-file checkpoints), version 2 and 3: a header
/// (`GGUF`, version, tensor count, metadata count), typed metadata key/values, tensor infos
/// (name, dims innermost first, ggml type, offset from the aligned data section) and the data.
/// Every count, length and offset is checked against the file before it is used, as the
/// safetensors reader does; an unsupported tensor type is one line naming it.
///
/// How GGUF names map to the engine's checkpoint names is in GGUFCheckpoint.swift; the writer
/// is `GGUFWriter` below.
public enum GGUFValue: Sendable, Equatable {
    case u8(UInt8), i8(Int8), u16(UInt16), i16(Int16), u32(UInt32), i32(Int32), u64(UInt64), i64(Int64)
    case f32(Float), f64(Double), bool(Bool), string(String)
    /// An array of one element type (`type` is the GGUF value type code of its elements).
    case array(type: UInt32, [GGUFValue])

    /// The value as an integer, whatever its integer type.
    public var int: Int? {
        switch self {
        case .u8(let v): return Int(v)
        case .i8(let v): return Int(v)
        case .u16(let v): return Int(v)
        case .i16(let v): return Int(v)
        case .u32(let v): return Int(v)
        case .i32(let v): return Int(v)
        case .u64(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .i64(let v): return Int(v)
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case .f32(let v): return Double(v)
        case .f64(let v): return v
        default: return int.map(Double.init)
        }
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [GGUFValue]? { if case .array(_, let a) = self { return a }; return nil }

    /// The GGUF type code of this value.
    var typeCode: UInt32 {
        switch self {
        case .u8: return 0
        case .i8: return 1
        case .u16: return 2
        case .i16: return 3
        case .u32: return 4
        case .i32: return 5
        case .f32: return 6
        case .bool: return 7
        case .string: return 8
        case .array: return 9
        case .u64: return 10
        case .i64: return 11
        case .f64: return 12
        }
    }
}

/// ggml's tensor types: the ones the engine reads map to a DType, the rest are named in errors.
public enum GGMLType {
    /// ggml type code -> the engine's dtype.
    public static let dtypes: [UInt32: DType] = [0: .f32, 1: .f16, 30: .bf16, 8: .q8_0, 2: .q4_0, 12: .q4_k, 14: .q6_k]

    /// The ggml type code of a dtype GGUF can hold.
    public static func code(of dtype: DType) -> UInt32? { dtypes.first { $0.value == dtype }?.key }

    /// ggml's names of its types (ggml.h's `ggml_type`), for messages.
    static let names: [UInt32: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K",
        12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
        20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
        29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
    ]

    public static func name(_ code: UInt32) -> String { names[code] ?? "type \(code)" }
}

/// One tensor of a GGUF file: `dims` as GGUF stores them (innermost first), `shape` as the
/// engine and PyTorch write it (outermost first), and its absolute byte range.
public struct GGUFTensor: Sendable, Equatable {
    public let name: String
    public let dims: [Int]
    public let dtype: DType
    public let fileOffset: Int
    public let byteCount: Int
    public var shape: [Int] { dims.reversed() }
}

public final class GGUFFile: @unchecked Sendable {
    public let file: MappedFile
    public let version: Int
    public let alignment: Int
    /// Metadata in file order and by key.
    public let keys: [String]
    public let metadata: [String: GGUFValue]
    /// Tensors in file order and by name.
    public let tensors: [GGUFTensor]
    public let tensorsByName: [String: GGUFTensor]
    public var path: String { file.path }

    /// Most metadata entries, tensors, array elements and bytes in one string that we accept
    /// (real files: a few dozen keys, a few thousand tensors, vocabularies of ~250k strings).
    static let maxEntries = 1 << 20, maxArray = 1 << 24, maxString = 64 << 20

    /// True when the file at `path` starts with the GGUF magic.
    public static func isGGUF(path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        return (try? h.read(upToCount: 4)) == Data("GGUF".utf8)
    }

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    /// The file at `path`, parsed once: the last file opened through here is kept while its
    /// size and modification time stay the same (a command reads the checkpoint, the tokenizer
    /// and the tokenizer settings of one file; each would otherwise parse the whole header).
    public static func opened(path: String) throws -> GGUFFile {
        let attrs = try? FileManager.default.attributesOfItem(atPath: path)
        let key = "\(path)|\(attrs?[.size] as? Int ?? -1)|\((attrs?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1)"
        lastOpenedLock.lock()
        defer { lastOpenedLock.unlock() }
        if let (k, g) = lastOpened, k == key { return g }
        let g = try GGUFFile(path: path)
        lastOpened = (key, g)
        return g
    }
    private static let lastOpenedLock = NSLock()
    nonisolated(unsafe) private static var lastOpened: (String, GGUFFile)?

    public init(file: MappedFile) throws {
        self.file = file
        let name = (file.path as NSString).lastPathComponent
        var r = Reader(bytes: file.bytes, name: name)
        guard file.size >= 24, try r.bytes(4) == Array("GGUF".utf8) else {
            throw r.fail(at: 0, "not a GGUF file (no GGUF magic)")
        }
        let v = try r.u32()
        guard v == 2 || v == 3 else {
            throw r.fail(at: 4, "GGUF version \(v) is not supported (versions 2 and 3)")
        }
        version = Int(v)
        let tensorCount = try r.u64(), kvCount = try r.u64()
        guard tensorCount <= UInt64(Self.maxEntries), kvCount <= UInt64(Self.maxEntries) else {
            throw r.fail(at: 8, "claims \(tensorCount) tensors and \(kvCount) metadata entries (limit \(Self.maxEntries))")
        }
        var keys: [String] = [], metadata: [String: GGUFValue] = [:]
        for _ in 0..<Int(kvCount) {
            let at = r.offset
            let key = try r.string()
            guard metadata[key] == nil else { throw r.fail(at: at, "metadata key \(SafeTensorsFile.printable(key)) appears twice") }
            let type = try r.u32()
            metadata[key] = try r.value(type: type, depth: 0, key: key)
            keys.append(key)
        }
        var align = 32
        if let a = metadata["general.alignment"] {
            guard let n = a.int, n > 0, n <= 1 << 20, n & (n - 1) == 0 else {
                throw r.fail(at: 0, "general.alignment \(a) is not a power of two up to 1 MiB")
            }
            align = n
        }
        alignment = align
        struct Raw { var name: String; var dims: [Int]; var type: UInt32; var offset: UInt64; var at: Int }
        var raws: [Raw] = []
        var names = Set<String>()
        for _ in 0..<Int(tensorCount) {
            let at = r.offset
            let tname = try r.string()
            let shown = SafeTensorsFile.printable(tname)
            guard names.insert(tname).inserted else { throw r.fail(at: at, "tensor \(shown) appears twice") }
            let nd = try r.u32()
            guard (1...4).contains(nd) else { throw r.fail(at: at, "tensor \(shown) has \(nd) dimensions (1 to 4)") }
            var dims: [Int] = []
            for _ in 0..<nd {
                let d = try r.u64()
                guard d >= 1, d < 1 << 40 else { throw r.fail(at: at, "tensor \(shown) has dimension \(d)") }
                dims.append(Int(d))
            }
            raws.append(Raw(name: tname, dims: dims, type: try r.u32(), offset: try r.u64(), at: at))
        }
        let dataStart = (r.offset + align - 1) / align * align
        guard dataStart <= file.size else { throw r.fail(at: r.offset, "the file ends before its data section") }
        var tensors: [GGUFTensor] = []
        for t in raws {
            let shown = SafeTensorsFile.printable(t.name)
            guard let dtype = GGMLType.dtypes[t.type], let format = dtype.weightFormat else {
                throw LoopError.unsupported("GGUF tensor \(shown) is \(GGMLType.name(t.type)) (the engine reads F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K)")
            }
            var count = 1
            for d in t.dims {
                let (p, o) = count.multipliedReportingOverflow(by: d)
                guard !o, p < 1 << 40 else { throw r.fail(at: t.at, "tensor \(shown) dims \(t.dims) overflow") }
                count = p
            }
            guard t.dims[0] % format.elementsPerBlock == 0, let bytes = format.bytes(elements: count) else {
                throw r.fail(at: t.at, "tensor \(shown) is \(GGMLType.name(t.type)) with rows of \(t.dims[0]) elements, not whole blocks of \(format.elementsPerBlock)")
            }
            guard t.offset % UInt64(align) == 0 else {
                throw r.fail(at: t.at, "tensor \(shown) offset \(t.offset) is not a multiple of the alignment \(align)")
            }
            guard t.offset <= UInt64(file.size - dataStart), bytes <= file.size - dataStart - Int(t.offset) else {
                throw r.fail(at: t.at, "tensor \(shown) (\(bytes) bytes at data offset \(t.offset)) runs past the end of the file (\(file.size) bytes)")
            }
            tensors.append(GGUFTensor(name: t.name, dims: t.dims, dtype: dtype, fileOffset: dataStart + Int(t.offset), byteCount: bytes))
        }
        let sorted = tensors.sorted { $0.fileOffset < $1.fileOffset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.fileOffset + a.byteCount > b.fileOffset {
            throw LoopError.invalidArgument("invalid GGUF file \(name): tensors \(SafeTensorsFile.printable(a.name)) and \(SafeTensorsFile.printable(b.name)) overlap")
        }
        self.keys = keys
        self.metadata = metadata
        self.tensors = tensors
        tensorsByName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0) })
    }

    public func bytes(of t: GGUFTensor) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[t.fileOffset..<(t.fileOffset + t.byteCount)])
    }

    /// A metadata value that must be present (`what` names it in the error).
    public func require(_ key: String) throws -> GGUFValue {
        guard let v = metadata[key] else { throw LoopError.invalidArgument("GGUF file \(path) has no metadata \(key)") }
        return v
    }

    public func int(_ key: String) throws -> Int? {
        guard let v = metadata[key] else { return nil }
        guard let i = v.int else { throw LoopError.invalidArgument("GGUF metadata \(key) in \(path) is not an integer") }
        return i
    }

    public func double(_ key: String) throws -> Double? {
        guard let v = metadata[key] else { return nil }
        guard let d = v.double else { throw LoopError.invalidArgument("GGUF metadata \(key) in \(path) is not a number") }
        return d
    }

    public func string(_ key: String) throws -> String? {
        guard let v = metadata[key] else { return nil }
        guard let s = v.string else { throw LoopError.invalidArgument("GGUF metadata \(key) in \(path) is not a string") }
        return s
    }

    /// An array value whose every element `element` converts (`what` names the element kind in errors).
    private func array<T>(_ key: String, of what: String, _ element: (GGUFValue) -> T?) throws -> [T]? {
        guard let v = metadata[key] else { return nil }
        guard let a = v.array else { throw LoopError.invalidArgument("GGUF metadata \(key) in \(path) is not an array") }
        return try a.map {
            guard let x = element($0) else { throw LoopError.invalidArgument("GGUF metadata \(key) in \(path) is not an array of \(what)") }
            return x
        }
    }

    public func strings(_ key: String) throws -> [String]? { try array(key, of: "strings") { $0.string } }
    public func ints(_ key: String) throws -> [Int]? { try array(key, of: "integers") { $0.int } }
    public func floats(_ key: String) throws -> [Float]? { try array(key, of: "numbers") { $0.double.map(Float.init) } }

    /// Bounds-checked little-endian reads over the file's bytes.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        let name: String
        var offset = 0

        init(bytes: UnsafeRawBufferPointer, name: String) {
            self.bytes = bytes
            self.name = name
        }

        func fail(at: Int, _ why: String) -> LoopError {
            .invalidArgument("invalid GGUF file \(name): \(why) (at byte \(at))")
        }

        mutating func need(_ n: Int) throws {
            guard n >= 0, n <= bytes.count - offset else {
                throw fail(at: offset, "the file ends inside its header (\(n) more bytes needed, \(bytes.count - offset) left)")
            }
        }

        mutating func bytes(_ n: Int) throws -> [UInt8] {
            try need(n)
            defer { offset += n }
            return Array(bytes[offset..<(offset + n)])
        }

        mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
            try need(MemoryLayout<T>.size)
            defer { offset += MemoryLayout<T>.size }
            return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }

        mutating func u32() throws -> UInt32 { try load(UInt32.self) }
        mutating func u64() throws -> UInt64 { try load(UInt64.self) }

        mutating func string() throws -> String {
            let at = offset
            let n = try u64()
            guard n <= UInt64(GGUFFile.maxString) else { throw fail(at: at, "a string of \(n) bytes (limit \(GGUFFile.maxString))") }
            let b = try bytes(Int(n))
            guard let s = String(bytes: b, encoding: .utf8) else { throw fail(at: at, "a string that is not UTF-8") }
            return s
        }

        mutating func value(type: UInt32, depth: Int, key: String) throws -> GGUFValue {
            let at = offset
            switch type {
            case 0: return .u8(try load(UInt8.self))
            case 1: return .i8(try load(Int8.self))
            case 2: return .u16(try load(UInt16.self))
            case 3: return .i16(try load(Int16.self))
            case 4: return .u32(try load(UInt32.self))
            case 5: return .i32(try load(Int32.self))
            case 6: return .f32(Float(bitPattern: try load(UInt32.self)))
            case 7:
                let b = try load(UInt8.self)
                guard b <= 1 else { throw fail(at: at, "metadata \(SafeTensorsFile.printable(key)): boolean byte \(b)") }
                return .bool(b == 1)
            case 8: return .string(try string())
            case 9:
                guard depth == 0 else { throw fail(at: at, "metadata \(SafeTensorsFile.printable(key)): arrays nested deeper than two levels") }
                let et = try u32()
                let n = try u64()
                // Every element takes at least one byte: a count beyond the bytes left is a lie.
                guard n <= UInt64(GGUFFile.maxArray), n <= UInt64(bytes.count - offset) else {
                    throw fail(at: at, "metadata \(SafeTensorsFile.printable(key)): an array of \(n) elements")
                }
                var items: [GGUFValue] = []
                items.reserveCapacity(Int(n))
                for _ in 0..<Int(n) { items.append(try value(type: et, depth: depth + 1, key: key)) }
                return .array(type: et, items)
            case 10: return .u64(try load(UInt64.self))
            case 11: return .i64(try load(Int64.self))
            case 12: return .f64(Double(bitPattern: try load(UInt64.self)))
            default: throw fail(at: at, "metadata \(SafeTensorsFile.printable(key)) has unknown value type \(type)")
            }
        }
    }
}

/// Writes a GGUF v3 file: metadata and tensor infos first, then each tensor's bytes at aligned
/// offsets, streamed from the caller one tensor at a time (so a model is never held whole).
/// The file is written under a temporary name and renamed when complete.
public struct GGUFWriter {
    public var metadata: [(String, GGUFValue)] = []
    /// Tensors in file order: name, dims as the engine writes shapes (outermost first), dtype.
    public var tensors: [(name: String, shape: [Int], dtype: DType)] = []
    public let alignment = 32

    public init() {}

    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.0 == key }) { metadata[i].1 = value } else { metadata.append((key, value)) }
    }

    /// Writes the file; `data(i)` returns tensor i's bytes (exactly its stored size).
    public func write(to url: URL, data: (Int) throws -> [UInt8]) throws {
        var header = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { header.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { header.append(contentsOf: $0) } }
        func str(_ s: String) { let b = Array(s.utf8); u64(UInt64(b.count)); header.append(contentsOf: b) }
        func value(_ v: GGUFValue) {
            switch v {
            case .u8(let x): header.append(x)
            case .i8(let x): header.append(UInt8(bitPattern: x))
            case .u16(let x): withUnsafeBytes(of: x.littleEndian) { header.append(contentsOf: $0) }
            case .i16(let x): withUnsafeBytes(of: x.littleEndian) { header.append(contentsOf: $0) }
            case .u32(let x): u32(x)
            case .i32(let x): u32(UInt32(bitPattern: x))
            case .u64(let x): u64(x)
            case .i64(let x): u64(UInt64(bitPattern: x))
            case .f32(let x): u32(x.bitPattern)
            case .f64(let x): u64(x.bitPattern)
            case .bool(let x): header.append(x ? 1 : 0)
            case .string(let s): str(s)
            case .array(let t, let items):
                u32(t)
                u64(UInt64(items.count))
                for i in items { value(i) }
            }
        }
        header.append(contentsOf: Array("GGUF".utf8))
        u32(3)
        u64(UInt64(tensors.count))
        u64(UInt64(metadata.count))
        for (k, v) in metadata {
            str(k)
            u32(v.typeCode)
            value(v)
        }
        var offsets: [Int] = [], sizes: [Int] = []
        var at = 0
        for t in tensors {
            guard let code = GGMLType.code(of: t.dtype), let f = t.dtype.weightFormat,
                  let last = t.shape.last, last % f.elementsPerBlock == 0,
                  let size = f.bytes(elements: t.shape.reduce(1, *)) else {
                throw LoopError.invalidArgument("cannot write tensor \(t.name) \(t.shape) as \(t.dtype.rawValue) to GGUF")
            }
            guard t.name.utf8.count < 64 else {
                throw LoopError.invalidArgument("tensor name \(t.name) is \(t.name.utf8.count) bytes; GGUF (ggml) names hold at most 63")
            }
            str(t.name)
            u32(UInt32(t.shape.count))
            for d in t.shape.reversed() { u64(UInt64(d)) }
            u32(code)
            u64(UInt64(at))
            offsets.append(at)
            sizes.append(size)
            at = (at + size + alignment - 1) / alignment * alignment
        }
        while header.count % alignment != 0 { header.append(0) }

        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid())")
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else {
            throw LoopError.io("cannot create \(tmp.path) (is the folder writable?)")
        }
        var done = false
        defer { if !done { try? FileManager.default.removeItem(at: tmp) } }
        let h = try FileHandle(forWritingTo: tmp)
        do {
            try h.write(contentsOf: header)
            var written = 0
            for i in tensors.indices {
                if written < offsets[i] { try h.write(contentsOf: Data(count: offsets[i] - written)); written = offsets[i] }
                let b = try data(i)
                guard b.count == sizes[i] else {
                    throw LoopError.invalidArgument("tensor \(tensors[i].name): \(b.count) bytes given, its \(tensors[i].dtype.rawValue) layout needs \(sizes[i])")
                }
                try h.write(contentsOf: b)
                written += b.count
            }
            try h.synchronize()
            try h.close()
        } catch {
            try? h.close()
            if let e = error as? LoopError { throw e }
            throw LoopError.io("writing \(url.path): \(error.localizedDescription)")
        }
        if FileManager.default.fileExists(atPath: url.path) { try? FileManager.default.removeItem(at: url) }
        do { try FileManager.default.moveItem(at: tmp, to: url) } catch {
            throw LoopError.io("cannot move the finished file to \(url.path): \(error.localizedDescription)")
        }
        done = true
    }
}
