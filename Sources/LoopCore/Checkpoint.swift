import Foundation

/// A checkpoint folder as the families publish it: `config.json` plus either one
/// `model.safetensors` or shards listed by `model.safetensors.index.json`.
public final class Checkpoint: @unchecked Sendable {
    public let directory: URL
    /// config.json parsed as a JSON object.
    public let config: [String: Any]
    public let configData: Data
    private var files: [SafeTensorsFile] = []
    private var where_: [String: (file: Int, info: TensorInfo)] = [:]
    /// MLX-quantized weights (config.json "quantization"): name -> the block-format tensor the
    /// engine reads (see MLXAffine), built from `name` (U32), its `.scales` and `.biases`.
    private var mlxWeights: [String: (info: TensorInfo, bits: Int, groupSize: Int)] = [:]
    /// Repacked bytes of the MLX weights asked for (dropped again by releaseResidentPages(of:)).
    private var repacked: [String: UnsafeMutableRawBufferPointer] = [:]
    private let repackLock = NSLock()
    /// The GGUF file this checkpoint was read from (nil for a folder).
    public let gguf: GGUFFile?
    /// GGUF tensors stored with llama.cpp's Q/K row permutation: name -> heads to undo it over.
    private var permutedRows: [String: Int] = [:]

    public init(directory: URL) throws {
        self.directory = directory
        gguf = nil
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDir) else {
            throw LoopError.fileNotFound(directory.path)
        }
        guard isDir.boolValue else { throw LoopError.invalidArgument("model path \(directory.path) is not a folder") }
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else { throw LoopError.fileNotFound(configURL.path) }
        configData = try Self.readSmallFile(configURL)
        config = try Self.parseConfig(configData, path: configURL.path)

        let single = directory.appendingPathComponent("model.safetensors")
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        var shardNames: [String] = []
        var expected: [String: String] = [:]
        if FileManager.default.fileExists(atPath: single.path) {
            shardNames = ["model.safetensors"]
        } else if FileManager.default.fileExists(atPath: index.path) {
            let indexData = try Self.readSmallFile(index)
            guard let obj = try? JSONSerialization.jsonObject(with: indexData) as? [String: Any] else {
                throw LoopError.invalidArgument("\(index.path) is not a JSON object")
            }
            guard let map = obj["weight_map"] as? [String: String] else {
                throw LoopError.invalidArgument("\(index.path) has no weight_map object of tensor name -> shard file name")
            }
            expected = map
            shardNames = Array(Set(map.values)).sorted()
        } else {
            throw LoopError.fileNotFound("\(single.path) (or model.safetensors.index.json)")
        }
        var shards: [(name: String, file: SafeTensorsFile)] = []
        for name in shardNames {
            let shown = SafeTensorsFile.printable(name)
            guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
                throw LoopError.invalidArgument("shard name \"\(shown)\" in model.safetensors.index.json must be a plain file name")
            }
            let path = directory.appendingPathComponent(name).path
            let f: SafeTensorsFile
            do {
                f = try SafeTensorsFile(path: path)
            } catch LoopError.fileNotFound {
                throw LoopError.fileNotFound("\(path) (a shard named by model.safetensors.index.json)")
            }
            shards.append((name, f))
        }
        try addShards(shards, index: expected)
        try indexMLXQuantization()
    }

    deinit { for b in repacked.values { b.deallocate() } }

    /// MLX's quantized layout: with `"quantization": {"group_size", "bits"}` in config.json,
    /// every U32 tensor `X.weight` with `X.scales` and `X.biases` is a quantized weight.
    private func indexMLXQuantization() throws {
        let cfgPath = directory.appendingPathComponent("config.json").path
        let packedNames = where_.filter { $0.value.info.dtype == .u32 }.map(\.key).sorted()
        guard let q = config["quantization"] else {
            if let n = packedNames.first {
                throw LoopError.invalidConfig("tensor \(SafeTensorsFile.printable(n)) is U32 (MLX-packed) but \(cfgPath) has no \"quantization\" object with bits and group_size")
            }
            return
        }
        guard let qd = q as? [String: Any], let bits = qd["bits"] as? Int, let gs = qd["group_size"] as? Int else {
            throw LoopError.invalidConfig("\(cfgPath): \"quantization\" must be an object with integer \"bits\" and \"group_size\" (MLX's layout)")
        }
        guard [4, 8].contains(bits), [32, 64, 128].contains(gs) else {
            throw LoopError.invalidConfig("\(cfgPath): MLX quantization with bits \(bits) and group size \(gs) is not supported (bits 4 or 8, group size 32, 64 or 128)")
        }
        for name in packedNames {
            let w = where_[name]!.info
            let stem = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
            let shown = SafeTensorsFile.printable(name)
            guard let s = where_[stem + ".scales"]?.info, let b = where_[stem + ".biases"]?.info else {
                throw LoopError.missingTensor("\(SafeTensorsFile.printable(stem)).scales / .biases (the MLX scales and biases of \(shown))")
            }
            guard w.shape.count == 2, s.shape.count == 2, b.shape == s.shape, s.dtype == b.dtype,
                  let dtype = MLXAffine.dtype(bits: bits, groupSize: gs, scales: s.dtype) else {
                throw LoopError.invalidArgument("MLX weight \(shown) \(w.shape) with scales \(s.dtype.rawValue) \(s.shape) and biases \(b.dtype.rawValue) \(b.shape): expected 2-D U32 weights and bf16/f16 scales and biases of one shape")
            }
            let rows = w.shape[0], inF = w.shape[1] * 32 / bits
            guard s.shape == [rows, inF / gs], inF % gs == 0 else {
                throw LoopError.wrongShape(tensor: stem + ".scales", expected: [rows, inF / gs], found: s.shape)
            }
            let bytes = dtype.weightFormat!.bytes(elements: rows * inF)!
            mlxWeights[name] = (TensorInfo(name: name, dtype: dtype, shape: [rows, inF], fileOffset: 0, byteCount: bytes), bits, gs)
        }
    }

    /// The repacked bytes of an MLX weight (built once, until released).
    private func mlxBytes(_ name: String, _ q: (info: TensorInfo, bits: Int, groupSize: Int)) -> UnsafeRawBufferPointer {
        repackLock.lock(); defer { repackLock.unlock() }
        if let b = repacked[name] { return UnsafeRawBufferPointer(b) }
        let stem = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
        func raw(_ n: String) -> UnsafeRawBufferPointer { let w = where_[n]!; return files[w.file].bytes(of: w.info) }
        let data = MLXAffine.repack(weight: raw(name), scales: raw(stem + ".scales"), biases: raw(stem + ".biases"),
                                    rows: q.info.shape[0], inF: q.info.shape[1], bits: q.bits, groupSize: q.groupSize)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: max(data.count, 1), alignment: 16)
        data.withUnsafeBytes { buf.copyMemory(from: $0) }
        repacked[name] = buf
        return UnsafeRawBufferPointer(rebasing: buf[0..<data.count])
    }

    /// A checkpoint whose safetensors are already open (or held in memory): `configData` is the
    /// text of config.json (checked as the folder initializer checks it); `directory` is only
    /// used for messages and side files. For tests and the fuzz targets.
    init(directory: URL, configData: Data, shards: [(name: String, file: SafeTensorsFile)]) throws {
        self.directory = directory
        self.configData = configData
        gguf = nil
        config = try Self.parseConfig(configData, path: directory.appendingPathComponent("config.json").path)
        try addShards(shards, index: [:])
        try indexMLXQuantization()
    }

    /// A GGUF file's tensors under the names the families read, its config built from the
    /// metadata (see GGUFModelMap). `directory` is the file itself; there are no side files.
    public init(gguf g: GGUFFile) throws {
        directory = URL(fileURLWithPath: g.path)
        gguf = g
        let m = try GGUFModelMap.map(g)
        configData = m.configData
        config = m.config
        var infos: [String: TensorInfo] = [:]
        for (name, t) in m.tensors {
            infos[name] = TensorInfo(name: name, dtype: t.tensor.dtype, shape: m.shapes[name] ?? t.tensor.shape, fileOffset: t.tensor.fileOffset, byteCount: t.tensor.byteCount)
            if let heads = t.permuteHeads {
                let rows = t.tensor.shape[0]
                guard heads > 0, rows % heads == 0, (rows / heads) % 2 == 0 else {
                    throw LoopError.invalidArgument("GGUF tensor \(t.tensor.name) has \(rows) rows, not an even number per head over \(heads) heads")
                }
                permutedRows[name] = heads
            }
        }
        var shards = [(name: (g.path as NSString).lastPathComponent, file: SafeTensorsFile(file: g.file, tensors: infos))]
        if !m.extra.isEmpty {
            var bytes: [UInt8] = [], extra: [String: TensorInfo] = [:]
            for (name, e) in m.extra.sorted(by: { $0.key < $1.key }) {
                extra[name] = TensorInfo(name: name, dtype: .f32, shape: e.shape, fileOffset: bytes.count, byteCount: e.values.count * 4)
                for v in e.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
            }
            let file = bytes.withUnsafeBytes { MappedFile(copying: $0, path: g.path + " (metadata tensors)") }
            shards.append((name: "metadata", file: SafeTensorsFile(file: file, tensors: extra)))
        }
        try addShards(shards, index: [:])
    }

    /// A permuted GGUF tensor's rows put back in the Hugging Face order (built once, until released).
    private func unpermutedBytes(_ name: String, heads: Int) -> UnsafeRawBufferPointer {
        repackLock.lock(); defer { repackLock.unlock() }
        let w = where_[name]!
        if let b = repacked[name] { return UnsafeRawBufferPointer(rebasing: b[0..<w.info.byteCount]) }
        let src = files[w.file].bytes(of: w.info)
        let rows = w.info.shape[0], rowBytes = w.info.byteCount / rows
        let order = GGUFModelMap.permutedRow(rows: rows, heads: heads)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: max(w.info.byteCount, 1), alignment: 16)
        for r in 0..<rows {
            let from = order[r] * rowBytes
            UnsafeMutableRawBufferPointer(rebasing: buf[(r * rowBytes)..<((r + 1) * rowBytes)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: src[from..<(from + rowBytes)]))
        }
        repacked[name] = buf
        return UnsafeRawBufferPointer(rebasing: buf[0..<w.info.byteCount])
    }

    /// config.json as a JSON object.
    static func parseConfig(_ data: Data, path: String) throws -> [String: Any] {
        guard let obj = try? JSONSerialization.jsonObject(with: data), let dict = obj as? [String: Any] else {
            throw LoopError.invalidConfig("\(path) is not a JSON object")
        }
        return dict
    }

    /// Indexes the tensors of `shards`; `expected` (tensor -> shard name, from the index file)
    /// must agree with where each tensor is.
    private func addShards(_ shards: [(name: String, file: SafeTensorsFile)], index expected: [String: String]) throws {
        let shardNames = shards.map(\.name)
        for (i, (_, f)) in shards.enumerated() {
            files.append(f)
            for (tname, info) in f.tensors {
                if where_[tname] != nil {
                    throw LoopError.invalidArgument("tensor \(SafeTensorsFile.printable(tname)) appears in two shards")
                }
                where_[tname] = (i, info)
            }
        }
        for (tname, shard) in expected.sorted(by: { $0.key < $1.key }) {
            guard let w = where_[tname] else {
                throw LoopError.missingTensor("\(SafeTensorsFile.printable(tname)) (listed in the index under \(SafeTensorsFile.printable(shard)))")
            }
            if shardNames[w.file] != shard {
                throw LoopError.invalidArgument(
                    "tensor \(SafeTensorsFile.printable(tname)) is in \(SafeTensorsFile.printable(shardNames[w.file])), the index says \(SafeTensorsFile.printable(shard))")
            }
        }
    }

    /// Largest config.json / index file we read (real ones are a few KB to a few MB).
    static let maxJSONFileBytes = 64 << 20

    /// Reads a JSON side file, turning every failure (unreadable, a folder, a FIFO, too big)
    /// into a one-line LoopError.
    static func readSmallFile(_ url: URL) throws -> Data {
        let file = try MappedFile(path: url.path)
        guard file.size <= maxJSONFileBytes else {
            throw LoopError.io("\(url.path) is \(file.size) bytes, more than the \(maxJSONFileBytes)-byte limit for a JSON file")
        }
        return Data(file.bytes)
    }

    public var tensorNames: [String] { where_.keys.sorted() }

    public func info(_ name: String) -> TensorInfo? { mlxWeights[name]?.info ?? where_[name]?.info }

    /// Drops the resident pages of every mapped file (see `MappedFile.releaseResidentPages`).
    public func releaseResidentPages() {
        for f in files { f.file.releaseResidentPages() }
    }

    /// Drops the resident pages of one tensor's bytes (after a device has copied them).
    public func releaseResidentPages(of name: String) {
        if mlxWeights[name] != nil {
            repackLock.lock()
            repacked.removeValue(forKey: name)?.deallocate()
            repackLock.unlock()
            let stem = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
            for part in [name, stem + ".scales", stem + ".biases"] {
                if let w = where_[part] { files[w.file].file.releaseResidentPages(w.info.fileOffset..<(w.info.fileOffset + w.info.byteCount)) }
            }
            return
        }
        guard let w = where_[name] else { return }
        if permutedRows[name] != nil {
            repackLock.lock()
            repacked.removeValue(forKey: name)?.deallocate()
            repackLock.unlock()
        }
        files[w.file].file.releaseResidentPages(w.info.fileOffset..<(w.info.fileOffset + w.info.byteCount))
    }

    /// The tensor's raw stored bytes (inside the mmap; valid while the checkpoint lives).
    public func bytes(_ name: String) throws -> (info: TensorInfo, bytes: UnsafeRawBufferPointer) {
        if let q = mlxWeights[name] { return (q.info, mlxBytes(name, q)) }
        guard let w = where_[name] else { throw LoopError.missingTensor(name) }
        if let heads = permutedRows[name] { return (w.info, unpermutedBytes(name, heads: heads)) }
        return (w.info, files[w.file].bytes(of: w.info))
    }

    public func floats(_ name: String) throws -> [Float] {
        let (info, raw) = try bytes(name)
        return SafeTensorsFile.toFloats(raw, dtype: info.dtype, count: info.elementCount)
    }

    /// Checks that `name` exists, is a float tensor and has `shape`.
    public func require(_ name: String, shape: [Int]) throws {
        guard let info = info(name) else { throw LoopError.missingTensor(name) }
        guard info.dtype.isFloat else { throw LoopError.wrongDType(tensor: name, found: info.dtype.rawValue) }
        guard info.shape == shape else { throw LoopError.wrongShape(tensor: name, expected: shape, found: info.shape) }
    }

    /// Total stored bytes of all tensors.
    public var totalBytes: Int { where_.values.reduce(0) { $0 + $1.info.byteCount } }

    /// Reads an optional JSON file next to config.json.
    public func jsonFile(_ name: String) -> [String: Any]? {
        guard gguf == nil else { return nil }
        let url = directory.appendingPathComponent(name)
        guard let d = try? Self.readSmallFile(url) else { return nil }
        return (try? JSONSerialization.jsonObject(with: d)) as? [String: Any]
    }
}
