import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file. The mapping lives as long as this object.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let base: UnsafeRawPointer?
    /// true when `base` is a heap copy (`init(copying:path:)`), not a mapping.
    private let isHeapCopy: Bool

    public init(path: String) throws {
        self.path = path
        isHeapCopy = false
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is then rejected as not a
        // regular file); it changes nothing for regular files.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw LoopError.fileNotFound(path) }
            throw LoopError.io("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw LoopError.io("cannot stat \(path)") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw LoopError.io("\(path) is not a regular file") }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw LoopError.io("cannot map \(path): \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    /// An in-memory "file": a heap copy of `bytes` that behaves like a mapping of them (used to
    /// parse safetensors data that is not on disk, and by the fuzz targets).
    public init(copying bytes: UnsafeRawBufferPointer, path: String) {
        self.path = path
        size = bytes.count
        isHeapCopy = true
        if bytes.isEmpty {
            base = nil
        } else {
            let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 16)
            p.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            base = UnsafeRawPointer(p)
        }
    }

    deinit {
        guard let base else { return }
        if isHeapCopy {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        } else {
            munmap(UnsafeMutableRawPointer(mutating: base), size)
        }
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// Drops the mapping's resident pages (they are read back from the file if touched again):
    /// once a device holds its own copy of the weights, the mapped file need not stay in memory.
    public func releaseResidentPages() { releaseResidentPages(0..<size) }

    /// The same for the pages that hold bytes `range` (whole pages around it; a page shared
    /// with a neighbouring tensor is simply read back when that one is touched).
    public func releaseResidentPages(_ range: Range<Int>) {
        guard let base, !isHeapCopy, !range.isEmpty, range.lowerBound >= 0, range.upperBound <= size else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page, end = min(size, (range.upperBound + page - 1) / page * page)
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }
}

/// One tensor's entry in a safetensors header, with its absolute byte range in the file.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let fileOffset: Int
    public let byteCount: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A safetensors file read through mmap. The header is checked in full before any tensor is
/// used: JSON shape, known dtypes, offsets inside the data, no overlaps, dtype x shape = bytes.
public final class SafeTensorsFile: @unchecked Sendable {
    public let file: MappedFile
    public let tensors: [String: TensorInfo]
    public let metadata: [String: String]

    /// Largest header we accept (the format's own reference implementation caps it at 100 MB).
    public static let maxHeaderBytes = 100_000_000

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    /// Parses safetensors bytes held in memory (checked exactly as a file is); `name` stands for
    /// the file name in error messages.
    public convenience init(bytes: Data, name: String = "<memory>") throws {
        let file = bytes.withUnsafeBytes { MappedFile(copying: $0, path: name) }
        try self.init(file: file)
    }

    /// Tensors already located in `file` (a GGUF file's data, or tensors built in memory).
    init(file: MappedFile, tensors: [String: TensorInfo]) {
        self.file = file
        self.tensors = tensors
        metadata = [:]
    }

    public init(file: MappedFile) throws {
        self.file = file
        let name = (file.path as NSString).lastPathComponent
        func fail(_ reason: String) -> LoopError { .invalidSafetensors(file: name, reason: reason) }
        guard file.size >= 8 else { throw fail("file is \(file.size) bytes, shorter than the 8-byte header length") }
        let raw = file.bytes
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(raw[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(Self.maxHeaderBytes) else { throw fail("header length \(n) exceeds the 100 MB limit") }
        guard Int(n) <= file.size - 8 else {
            throw fail("header length \(n) is larger than the file (\(file.size) bytes)")
        }
        let headerData = Data(raw[8..<(8 + Int(n))])
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: headerData) } catch {
            throw fail("header is not valid JSON")
        }
        guard let dict = json as? [String: Any] else { throw fail("header is not a JSON object") }
        let dataStart = 8 + Int(n)
        let dataSize = file.size - dataStart
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (key, value) in dict {
            if key == "__metadata__" {
                guard let m = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (mk, mv) in m {
                    guard let s = mv as? String else { throw fail("__metadata__ value for \(Self.printable(mk)) is not a string") }
                    metadata[mk] = s
                }
                continue
            }
            let tname = Self.printable(key)
            guard let entry = value as? [String: Any] else { throw fail("entry \(tname) is not an object") }
            guard let dts = entry["dtype"] as? String else { throw fail("tensor \(tname) has no dtype") }
            guard let dtype = DType(rawValue: dts), dtype.isSafeTensorsType else {
                throw fail("tensor \(tname) has unsupported dtype \(Self.printable(dts))")
            }
            guard let shapeAny = entry["shape"] as? [Any] else { throw fail("tensor \(tname) has no shape") }
            var shape: [Int] = []
            var count = 1
            // Product of the non-zero dimensions: a zero dimension must not hide absurd others.
            var extent = 1
            for d in shapeAny {
                guard let v = Self.integer(d), v >= 0, v < (1 << 40) else {
                    throw fail("tensor \(tname) has an invalid dimension \(Self.printable("\(d)"))")
                }
                shape.append(v)
                let (p, o) = extent.multipliedReportingOverflow(by: max(v, 1))
                guard !o, p < (1 << 46) else { throw fail("tensor \(tname) shape is too large") }
                extent = p
                count *= v
            }
            guard let offs = entry["data_offsets"] as? [Any], offs.count == 2,
                  let b = Self.integer(offs[0]), let e = Self.integer(offs[1])
            else { throw fail("tensor \(tname) has no valid data_offsets") }
            guard b >= 0, e >= 0 else { throw fail("tensor \(tname) has negative data_offsets [\(b), \(e)]") }
            guard e >= b else { throw fail("tensor \(tname) has data_offsets [\(b), \(e)] out of order") }
            guard e <= dataSize else {
                throw fail("tensor \(tname) data_offsets [\(b), \(e)] lie outside the \(dataSize)-byte data section (file truncated?)")
            }
            guard e - b == count * dtype.byteSize else {
                throw fail("tensor \(tname) is \(dtype.rawValue) \(shape) = \(count * dtype.byteSize) bytes but data_offsets span \(e - b)")
            }
            tensors[key] = TensorInfo(name: key, dtype: dtype, shape: shape, fileOffset: dataStart + b, byteCount: e - b)
        }
        let sorted = tensors.values.filter { $0.byteCount > 0 }.sorted { $0.fileOffset < $1.fileOffset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.fileOffset + a.byteCount > b.fileOffset {
            throw fail("tensors \(Self.printable(a.name)) and \(Self.printable(b.name)) overlap")
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// A JSON integer literal within `Int` (not a boolean, not a number with a fraction or an
    /// exponent: those parse as doubles).
    static func integer(_ value: Any) -> Int? {
        guard let n = value as? NSNumber else { return nil }
        switch String(cString: n.objCType) {
        case "c", "C", "B", "d", "f": return nil  // booleans, doubles
        default: return value as? Int
        }
    }

    /// `text` fit for a one-line error message: control characters escaped, cut after 200 characters.
    public static func printable(_ text: String) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count == 200 { out += "..."; break }
            count += 1
            if scalar.properties.generalCategory == .control || scalar == "\u{2028}" || scalar == "\u{2029}" {
                out += scalar.escaped(asASCII: true)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// The raw bytes of one tensor, inside the mapping (valid while this file is alive).
    public func bytes(of info: TensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[info.fileOffset..<(info.fileOffset + info.byteCount)])
    }

    /// A tensor widened to fp32 (integers converted by value).
    public func floats(_ name: String) throws -> [Float] {
        guard let info = tensors[name] else { throw LoopError.missingTensor(name) }
        return Self.toFloats(bytes(of: info), dtype: info.dtype, count: info.elementCount)
    }

    /// An integer tensor (I64 / I32) as Ints.
    public func ints(_ name: String) throws -> [Int] {
        guard let info = tensors[name] else { throw LoopError.missingTensor(name) }
        let raw = bytes(of: info)
        switch info.dtype {
        case .i64: return (0..<info.elementCount).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        case .i32: return (0..<info.elementCount).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        default: return try floats(name).map { Int($0) }
        }
    }

    public static func toFloats(_ raw: UnsafeRawBufferPointer, dtype: DType, count: Int) -> [Float] {
        if let format = dtype.weightFormat { return format.dequantize(raw, count) }
        switch dtype {
        case .i64:
            return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        case .i32:
            return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        case .u32:
            return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) }
        default:
            preconditionFailure("\(dtype) has a weight format")
        }
    }
}

/// Writes a safetensors file (used by `lens` output, `synth`, and tests).
public enum SafeTensorsWriter {
    public struct Entry {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public var data: Data
        public init(name: String, dtype: DType, shape: [Int], data: Data) {
            self.name = name; self.dtype = dtype; self.shape = shape; self.data = data
        }
        public static func f32(_ name: String, shape: [Int], _ values: [Float]) -> Entry {
            Entry(name: name, dtype: .f32, shape: shape, data: values.withUnsafeBytes { Data($0) })
        }
    }

    public static func serialize(_ entries: [Entry], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for e in entries {
            header[e.name] = ["dtype": e.dtype.rawValue, "shape": e.shape, "data_offsets": [offset, offset + e.data.count]]
            offset += e.data.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        var n = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(json)
        for e in entries { out.append(e.data) }
        return out
    }

    public static func write(_ entries: [Entry], to url: URL, metadata: [String: String] = [:]) throws {
        try serialize(entries, metadata: metadata).write(to: url)
    }
}
