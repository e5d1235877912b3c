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

    public init(directory: URL) throws {
        self.directory = directory
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDir) else {
            throw LoopError.fileNotFound(directory.path)
        }
        guard isDir.boolValue else { throw LoopError.invalidArgument("model path \(directory.path) is not a folder") }
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else { throw LoopError.fileNotFound(configURL.path) }
        configData = try Data(contentsOf: configURL)
        guard let obj = try? JSONSerialization.jsonObject(with: configData), let dict = obj as? [String: Any] else {
            throw LoopError.invalidConfig("\(configURL.path) is not a JSON object")
        }
        config = dict

        let single = directory.appendingPathComponent("model.safetensors")
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        var shardNames: [String] = []
        var expected: [String: String] = [:]
        if FileManager.default.fileExists(atPath: single.path) {
            shardNames = ["model.safetensors"]
        } else if FileManager.default.fileExists(atPath: index.path) {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(contentsOf: index)) as? [String: Any],
                  let map = obj["weight_map"] as? [String: String]
            else { throw LoopError.invalidArgument("\(index.path) has no weight_map object") }
            expected = map
            shardNames = Array(Set(map.values)).sorted()
        } else {
            throw LoopError.fileNotFound("\(single.path) (or model.safetensors.index.json)")
        }
        for (i, name) in shardNames.enumerated() {
            guard !name.contains("/") else { throw LoopError.invalidArgument("shard name \(name) must be a plain file name") }
            let f = try SafeTensorsFile(path: directory.appendingPathComponent(name).path)
            files.append(f)
            for (tname, info) in f.tensors {
                if where_[tname] != nil { throw LoopError.invalidArgument("tensor \(tname) appears in two shards") }
                where_[tname] = (i, info)
            }
        }
        for (tname, shard) in expected {
            guard let w = where_[tname] else {
                throw LoopError.missingTensor("\(tname) (listed in the index under \(shard))")
            }
            if shardNames[w.file] != shard {
                throw LoopError.invalidArgument("tensor \(tname) is in \(shardNames[w.file]), the index says \(shard)")
            }
        }
    }

    public var tensorNames: [String] { where_.keys.sorted() }

    public func info(_ name: String) -> TensorInfo? { where_[name]?.info }

    /// The tensor's raw stored bytes (inside the mmap; valid while the checkpoint lives).
    public func bytes(_ name: String) throws -> (info: TensorInfo, bytes: UnsafeRawBufferPointer) {
        guard let w = where_[name] else { throw LoopError.missingTensor(name) }
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
        let url = directory.appendingPathComponent(name)
        guard let d = try? Data(contentsOf: url) else { return nil }
        return (try? JSONSerialization.jsonObject(with: d)) as? [String: Any]
    }
}
