import Foundation
import LoopCore

/// `loopvk quantize`: a checkpoint folder of any family written as one GGUF file with its
/// weights in a block format, tokenizer and chat template included. Llama, Qwen3 and Ouro files
/// use llama.cpp's layout (see GGUFModelMap); Huginn and LoopUS keep their tensor names and
/// config.json under their own architecture names.
///
/// Which tensors are quantized: the weights of matrix products and the embedding tables (the
/// plan says which), when their rows are whole blocks; norms, biases and other small tensors
/// stay F32. The file types follow llama.cpp's choices:
/// - `q8_0`, `q6_k`: every product weight in that format;
/// - `q4_0`: Q4_0, the output head Q6_K (as llama-quantize does);
/// - `q4_k_m`: Q4_K, with the head and, on llama.cpp's "more bits" layers (the first and last
///   eighth and every third between), the V projection and the MLP down projection in Q6_K;
/// - `f16`, `f32`: unquantized.
/// A weight whose rows are not whole blocks of the chosen format falls back to Q8_0 (rows of
/// whole 32-blocks), else F16.
public enum Quantize {
    public enum FileType: String, CaseIterable, Sendable {
        case q8_0, q4_0, q4_k_m = "q4_k_m", q6_k, f16, f32

        /// llama.cpp's `general.file_type` (`llama_ftype`).
        var llamaFileType: UInt32 {
            switch self {
            case .f32: return 0
            case .f16: return 1
            case .q4_0: return 2
            case .q8_0: return 7
            case .q4_k_m: return 15
            case .q6_k: return 18
            }
        }
    }

    public struct Report: Sendable, Codable {
        public var architecture: String
        public var fileType: String
        public var tensors: Int
        /// Tensors per stored type.
        public var types: [String: Int]
        public var inputBytes: Int
        public var outputBytes: Int
        /// Source tensors not written (nothing in the plan reads them).
        public var dropped: [String]
    }

    /// Quantizes the checkpoint folder `model` into `out`. `progress(done, total, name)` is called
    /// before each tensor.
    public static func run(model: URL, type: FileType, out: URL, progress: ((Int, Int, String) -> Void)? = nil) throws -> Report {
        guard !Checkpoint.isGGUF(model) else {
            throw LoopError.invalidArgument("\(model.path) is already a GGUF file; quantize reads a checkpoint folder (config.json + safetensors)")
        }
        let ck = try Checkpoint(directory: model)
        let modelType = ck.config["model_type"] as? String ?? "llama"
        guard let arch = GGUFModelMap.architectures[modelType] else {
            throw LoopError.unknownModelType(modelType)
        }
        let llamaCpp = GGUFModelMap.llamaCppArchitectures.contains(arch)
        let (plan, _) = try ModelFamily.plan(checkpoint: ck, passes: nil, maxContext: 1)

        // What the plan does with each checkpoint tensor.
        var products = Set<String>(), used = Set<String>()
        var head: String?
        func sources(_ name: String) -> [String] { plan.concatenated[name] ?? [name] }
        for op in plan.allOps {
            for w in op.weights { used.formUnion(sources(w.name)) }
            switch op {
            case .linear(_, let w, _, let out, _, _, _):
                products.formUnion(sources(w.name))
                if out.name == plan.logitsAct { head = w.name }
            case .embed(let table, _, _, _, _):
                products.formUnion(sources(table.name))
            default: break
            }
        }
        let layers = (ck.config["num_hidden_layers"] as? Int) ?? 1
        func moreBits(_ name: String) -> Bool {
            // llama.cpp's use_more_bits over the layer index of blk.N.
            let p = name.split(separator: ".")
            guard p.count > 2, p[0] == "blk", let i = Int(p[1]) else { return false }
            let n = layers
            return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
        }
        func wanted(ggufName: String, hfName: String) -> DType {
            let isHead = hfName == head || ggufName == "output.weight"
            switch type {
            case .f32: return .f32
            case .f16: return .f16
            case .q8_0: return .q8_0
            case .q6_k: return .q6_k
            case .q4_0: return isHead ? .q6_k : .q4_0
            case .q4_k_m:
                if isHead { return .q6_k }
                if llamaCpp, ggufName.hasSuffix("attn_v.weight") || ggufName.hasSuffix("ffn_down.weight"), moreBits(ggufName) { return .q6_k }
                return .q4_k
            }
        }

        var w = GGUFWriter()
        w.set("general.architecture", .string(arch))
        w.set("general.name", .string(model.lastPathComponent))
        w.set("general.file_type", .u32(type.llamaFileType))
        w.set("general.quantization_version", .u32(2))
        for (k, v) in GGUFModelMap.metadata(config: ck.config, arch: arch, configData: ck.configData) { w.set(k, v) }
        for (k, v) in try ModelFiles.tokenizerMetadata(folder: model, config: ck.config) { w.set(k, v) }

        struct Item { var hf: String; var gguf: String; var dtype: DType; var shape: [Int]; var permuteHeads: Int?; var storedBytes: Int }
        var items: [Item] = [], dropped: [String] = [], counts: [String: Int] = [:]
        for name in ck.tensorNames {
            guard let info = ck.info(name) else { continue }
            // Tensors the plan builder reads itself (LoopUS's A_log, Huginn's freqs_cis) are not
            // op weights: only llama.cpp's layouts drop what they have no name for.
            if llamaCpp, !used.contains(name), GGUFModelMap.ggufName(name, arch: arch) == nil { dropped.append(name); continue }
            if llamaCpp, arch == "ouro", name.hasPrefix("model.early_exit_gate.") {
                // llama.cpp would refuse an unknown tensor: the gate travels as metadata.
                let key = name.hasSuffix(".bias") ? GGUFModelMap.gateBiasKey : GGUFModelMap.gateWeightKey
                w.set(key, .array(type: 6, try ck.floats(name).map { .f32($0) }))
                continue
            }
            var gname = name
            if llamaCpp {
                guard let g = GGUFModelMap.ggufName(name, arch: arch) else {
                    throw LoopError.unsupported("tensor \(name) of this \(modelType) checkpoint has no place in llama.cpp's \(arch) layout")
                }
                gname = g
            }
            var dtype: DType = .f32
            if products.contains(name), info.shape.count == 2 {
                dtype = wanted(ggufName: gname, hfName: name)
                let cols = info.shape[1]
                if let f = dtype.weightFormat, cols % f.elementsPerBlock != 0 { dtype = cols % 32 == 0 ? .q8_0 : .f16 }
                if type == .f32 { dtype = .f32 }
            }
            let heads = llamaCpp && GGUFModelMap.permutesQK(arch: arch) ? GGUFModelMap.permutationHeads(name, config: ck.config) : nil
            items.append(Item(hf: name, gguf: gname, dtype: dtype, shape: info.shape, permuteHeads: heads, storedBytes: info.byteCount))
            counts[dtype.rawValue, default: 0] += 1
        }
        // llama.cpp's order: the embedding, the blocks in order, then the rest.
        func rank(_ n: String) -> (Int, Int, String) {
            let p = n.split(separator: ".")
            if p.first == "blk", p.count > 1, let i = Int(p[1]) { return (1, i, n) }
            return (n.hasPrefix("token_embd") ? 0 : 2, 0, n)
        }
        if llamaCpp { items.sort { rank($0.gguf) < rank($1.gguf) } }
        for it in items where it.shape.count > 4 {
            w.set(GGUFModelMap.shapeKeyPrefix + it.gguf, .array(type: 11, it.shape.map { .i64(Int64($0)) }))
        }
        w.tensors = items.map { ($0.gguf, GGUFModelMap.storedShape($0.shape), $0.dtype) }

        var inputBytes = 0
        try w.write(to: out) { i in
            let it = items[i]
            progress?(i, items.count, it.hf)
            var values = try ck.floats(it.hf)
            inputBytes += it.storedBytes
            ck.releaseResidentPages(of: it.hf)
            if let heads = it.permuteHeads {
                let rows = it.shape[0], cols = values.count / rows
                let order = GGUFModelMap.permutedRow(rows: rows, heads: heads)
                var p = [Float](repeating: 0, count: values.count)
                for r in 0..<rows { p.replaceSubrange((order[r] * cols)..<((order[r] + 1) * cols), with: values[(r * cols)..<((r + 1) * cols)]) }
                values = p
            }
            switch it.dtype {
            case .f32: return values.withUnsafeBytes { Array($0) }
            case .f16: return values.map { Float16Bits.floatToF16($0) }.withUnsafeBytes { Array($0) }
            default: return it.dtype.weightFormat!.quantize(values)
            }
        }
        progress?(items.count, items.count, "")
        let size = (try? FileManager.default.attributesOfItem(atPath: out.path)[.size] as? Int) ?? 0
        return Report(architecture: arch, fileType: type.rawValue, tensors: items.count, types: counts,
                      inputBytes: inputBytes, outputBytes: size ?? 0, dropped: dropped)
    }
}

/// `loopvk quantize --type mlx4|mlx8`: a checkpoint folder written as an MLX-quantized folder, as
/// mlx-lm's `convert -q` writes one: config.json with `"quantization": {"group_size", "bits"}`
/// (and the same under `"quantization_config"`), `model.safetensors` with each product weight
/// (the plan's matrix products and embedding tables whose rows are whole groups) as `X.weight`
/// U32 [out, in * bits / 32], `X.scales` and `X.biases` [out, in / group_size], every other
/// tensor as stored; the tokenizer and the folder's other files copied. Scales and biases are
/// bf16 (f16 when the source weight is f16), w = scale * q + bias per group with mlx.core.quantize's
/// rule (MLXAffine.format).
extension Quantize {
    public struct MLXReport: Sendable, Codable {
        public var bits: Int
        public var groupSize: Int
        public var quantized: Int
        public var kept: Int
        public var inputBytes: Int
        public var outputBytes: Int
    }

    public static func runMLX(model: URL, bits: Int, groupSize gs: Int, out: URL, progress: ((Int, Int, String) -> Void)? = nil) throws -> MLXReport {
        guard !Checkpoint.isGGUF(model) else {
            throw LoopError.invalidArgument("\(model.path) is a GGUF file; an MLX folder is written from a checkpoint folder (config.json + safetensors)")
        }
        guard MLXAffine.dtype(bits: bits, groupSize: gs, scales: .bf16) != nil else {
            throw LoopError.invalidArgument("MLX quantization with bits \(bits) and group size \(gs) is not supported (bits 4 or 8, group size 32, 64 or 128)")
        }
        let fm = FileManager.default
        if fm.fileExists(atPath: out.path) {
            guard (try? fm.contentsOfDirectory(atPath: out.path))?.isEmpty == true else {
                throw LoopError.invalidArgument("\(out.path) exists and is not an empty folder; give a new folder for the MLX checkpoint")
            }
        }
        let ck = try Checkpoint(directory: model)
        guard ck.config["quantization"] == nil else {
            throw LoopError.invalidArgument("\(model.path) is already MLX-quantized (config.json has \"quantization\")")
        }
        let (plan, _) = try ModelFamily.plan(checkpoint: ck, passes: nil, maxContext: 1)
        var products = Set<String>()
        for op in plan.allOps {
            switch op {
            case .linear(_, let w, _, _, _, _, _): products.formUnion(plan.concatenated[w.name] ?? [w.name])
            case .embed(let table, _, _, _, _): products.formUnion(plan.concatenated[table.name] ?? [table.name])
            default: break
            }
        }

        // Everything goes into a temporary folder beside `out`, renamed when complete.
        let tmp = out.deletingLastPathComponent().appendingPathComponent(".\(out.lastPathComponent).partial-\(getpid())")
        try? fm.removeItem(at: tmp)
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        do {
            var entries: [SafeTensorsWriter.Entry] = []
            var quantized = 0, kept = 0, inputBytes = 0
            let names = ck.tensorNames
            for (i, name) in names.enumerated() {
                progress?(i, names.count, name)
                guard let info = ck.info(name) else { continue }
                inputBytes += info.byteCount
                if products.contains(name), info.shape.count == 2, info.shape[1] % gs == 0, name.hasSuffix(".weight") {
                    let scales: DType = info.dtype == .f16 ? .f16 : .bf16
                    let format = MLXAffine.format(bits: bits, groupSize: gs, scales: scales)
                    let rows = info.shape[0], cols = info.shape[1]
                    let blocks = format.quantize(try ck.floats(name))
                    let (w, s, b) = MLXAffine.unpack(blocks, groups: rows * cols / gs, bits: bits, groupSize: gs)
                    let stem = String(name.dropLast(".weight".count))
                    entries.append(.init(name: name, dtype: .u32, shape: [rows, cols * bits / 32], data: Data(w)))
                    entries.append(.init(name: stem + ".scales", dtype: scales, shape: [rows, cols / gs], data: Data(s)))
                    entries.append(.init(name: stem + ".biases", dtype: scales, shape: [rows, cols / gs], data: Data(b)))
                    quantized += 1
                } else {
                    let (ti, raw) = try ck.bytes(name)
                    entries.append(.init(name: name, dtype: ti.dtype, shape: ti.shape, data: Data(raw)))
                    kept += 1
                }
                ck.releaseResidentPages(of: name)
            }
            progress?(names.count, names.count, "")
            try SafeTensorsWriter.write(entries, to: tmp.appendingPathComponent("model.safetensors"), metadata: ["format": "mlx"])
            guard var config = try JSONSerialization.jsonObject(with: ck.configData) as? [String: Any] else {
                throw LoopError.invalidConfig("\(model.path)/config.json is not a JSON object")
            }
            config["quantization"] = ["group_size": gs, "bits": bits]
            config["quantization_config"] = ["group_size": gs, "bits": bits]
            try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]).write(to: tmp.appendingPathComponent("config.json"))
            // The tokenizer and everything else that is not weights or the index of weights.
            for f in try fm.contentsOfDirectory(atPath: model.path).sorted()
            where f != "config.json" && !f.hasSuffix(".safetensors") && f != "model.safetensors.index.json" && !f.hasPrefix(".") {
                var isDir: ObjCBool = false
                let src = model.appendingPathComponent(f)
                guard fm.fileExists(atPath: src.path, isDirectory: &isDir), !isDir.boolValue else { continue }
                try fm.copyItem(at: src, to: tmp.appendingPathComponent(f))
            }
            if fm.fileExists(atPath: out.path) { try fm.removeItem(at: out) }   // (empty, checked above)
            try fm.moveItem(at: tmp, to: out)
            let size = (try? fm.attributesOfItem(atPath: out.appendingPathComponent("model.safetensors").path)[.size] as? Int) ?? 0
            return MLXReport(bits: bits, groupSize: gs, quantized: quantized, kept: kept, inputBytes: inputBytes, outputBytes: size ?? 0)
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }
}
