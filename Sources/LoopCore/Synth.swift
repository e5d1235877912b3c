import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Synthetic checkpoints: random weights in a family's official folder format and real
/// dimensions (config.json with the published key set, one `model.safetensors` with the official
/// tensor names, shapes and dtype). For benchmarks, memory planning and loader tests where the
/// real weights are not at hand: the numbers mean nothing, but a forward pass stays finite and
/// non-degenerate.
///
/// Values (u uniform in (-1, 1)):
/// - linear weights `[out, in]`: `u · sqrt(3/in) · 0.5` (output std about half the input rms)
/// - embeddings `[vocab, h]`: `u · sqrt(3/h)` (std 1/sqrt(h); Huginn scales by sqrt(h) to unit size)
/// - RMSNorm / LayerNorm weights: `1 + 0.1·u`; biases (exit gate, delta_proj, q_head) 0;
///   Huginn qk_bias `0.05·u`; LoopUS A_log `log(U(1, 16))`
/// - Huginn `freqs_cis`: the real RoPE table (cos, sin of pos · base^(-2i/hd)), not random.
///
/// Writing streams: the header first, then each tensor in chunks of a few MB filled in parallel
/// by a splitmix64 generator seeded per (seed, tensor name, 256Ki-element block), so the bytes
/// depend only on the seed and never on the thread count; the whole file is never in memory.
public enum Synth {
    /// How a tensor's values are made.
    public enum Fill: Sendable, Equatable {
        /// `center + halfWidth · u`, u uniform in (-1, 1).
        case uniform(center: Float, halfWidth: Float)
        /// `log(v)`, v uniform in (low, high).
        case logUniform(low: Float, high: Float)
        case constant(Float)
        /// A RoPE table `[..., positions, ..., headDim/2, 2]` of (cos, sin) for interleaved pairs.
        case ropeTable(theta: Float, headDim: Int)
    }

    /// One tensor of a synthetic checkpoint.
    public struct TensorSpec: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var fill: Fill
        /// False for stored buffers that are not model parameters (Huginn's `freqs_cis`).
        public var isParameter: Bool = true
        public var elementCount: Int { shape.reduce(1, *) }
    }

    /// Family -> preset names (sorted).
    public static var presets: [String: [String]] {
        var out: [String: [String]] = [:]
        for p in allPresets { out[p.family, default: []].append(p.name) }
        return out.mapValues { $0.sorted() }
    }

    /// The families `write` accepts.
    public static var families: [String] { ["huginn", "llama", "loopus", "ouro"] }

    /// Looks up a preset; the error names the known ones.
    public static func preset(family: String, name: String) throws -> SynthPreset {
        guard families.contains(family) else {
            throw LoopError.invalidArgument("unknown family \"\(family)\" (known: \(families.joined(separator: ", ")))")
        }
        guard let p = allPresets.first(where: { $0.family == family && $0.name == name }) else {
            let known = presets[family, default: []].joined(separator: ", ")
            throw LoopError.invalidArgument("unknown preset \"\(name)\" for family \(family) (known: \(known))")
        }
        return p
    }

    /// The tensors of a preset, sorted by name (the order they are stored in). Each family's file lists its own
    /// (`synthTensors`).
    public static func tensors(of preset: SynthPreset) -> [TensorSpec] {
        let specs: [TensorSpec]
        switch preset.model {
        case .ouro(let d, _): specs = Ouro.synthTensors(d)
        case .huginn(let g): specs = Huginn.synthTensors(g)
        case .loopus(let d, let enc, let rea, let dec, _, _): specs = LoopUS.synthTensors(d, encoder: enc, reasoning: rea, decoder: dec)
        case .llama(let d): specs = Llama.synthTensors(d)
        }
        return specs.sorted { $0.name < $1.name }
    }

    /// LoopUS selective-gate rank: ceil(hidden / 16) (Mamba's dt_rank; 128 for hidden 2048).
    public static func gateRank(hidden: Int) -> Int { (hidden + 15) / 16 }

    /// Parameters of a preset: the summed element counts of its tensors (buffers such as
    /// `freqs_cis` excluded).
    public static func parameterCount(family: String, preset: String) throws -> Int {
        tensors(of: try self.preset(family: family, name: preset)).filter(\.isParameter).reduce(0) { $0 + $1.elementCount }
    }

    /// Bytes `model.safetensors` will have for a preset in `dtype` (header included).
    public static func fileSize(family: String, preset: String, dtype: DType? = nil) throws -> Int64 {
        let p = try self.preset(family: family, name: preset)
        let specs = tensors(of: p)
        return Int64(header(specs, dtype: dtype ?? p.defaultDType).count) + dataBytes(specs, dtype: dtype ?? p.defaultDType)
    }

    /// Writes a random-weight checkpoint folder (`config.json`, `generation_config.json` where the
    /// family ships one, `model.safetensors`) for `preset` of `family` into `dir` (created if
    /// needed; files of the same names are replaced). `dtype` nil = the preset's default (bf16);
    /// f32, f16 and bf16 are accepted. `progress(bytesWritten, totalBytes)` is called on the
    /// calling thread after each chunk of `model.safetensors`.
    public static func write(family: String, preset: String, to dir: URL, seed: UInt64 = 0, dtype: DType? = nil,
                             progress: ((Int64, Int64) -> Void)?) throws {
        try write(self.preset(family: family, name: preset), to: dir, seed: seed, dtype: dtype, progress: progress)
    }

    public static func write(_ preset: SynthPreset, to dir: URL, seed: UInt64 = 0, dtype: DType? = nil,
                             progress: ((Int64, Int64) -> Void)?) throws {
        try write(preset, to: dir, seed: seed, dtype: dtype, skeleton: false, progress: progress)
    }

    /// `skeleton`: write the configs and the safetensors header, then extend the file to its full
    /// size without writing the data (a sparse file of zeros): lets tests run the loaders over the
    /// big presets' layouts without gigabytes of disk.
    static func write(_ preset: SynthPreset, to dir: URL, seed: UInt64, dtype: DType?, skeleton: Bool,
                      progress: ((Int64, Int64) -> Void)?) throws {
        let dt = dtype ?? preset.defaultDType
        guard dt.isFloat else { throw LoopError.invalidArgument("dtype \(dt.rawValue) is not a float type (use bf16, f16 or f32)") }
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: dir.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw LoopError.invalidArgument("output path \(dir.path) exists and is not a folder") }
        } else {
            do { try fm.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
                throw LoopError.io("cannot create folder \(dir.path): \(error.localizedDescription)")
            }
        }
        let specs = tensors(of: preset)
        let headerBytes = header(specs, dtype: dt)
        let total = Int64(headerBytes.count) + dataBytes(specs, dtype: dt)
        if !skeleton { try checkFreeSpace(dir, needed: total) }

        for (name, json) in preset.configFiles(dtype: dt) {
            let url = dir.appendingPathComponent(name)
            do { try Data((json.render() + "\n").utf8).write(to: url, options: .atomic) } catch {
                throw LoopError.io("cannot write \(url.path): \(error.localizedDescription)")
            }
        }
        let final = dir.appendingPathComponent("model.safetensors").path
        let partial = final + ".partial"
        try writeSafetensors(specs, header: headerBytes, dtype: dt, seed: seed, path: partial, total: total,
                             skeleton: skeleton, progress: progress)
        guard rename(partial, final) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(partial)
            throw LoopError.io("cannot rename \(partial) to \(final): \(why)")
        }
    }

    // MARK: - safetensors layout

    static func dataBytes(_ specs: [TensorSpec], dtype: DType) -> Int64 {
        specs.reduce(Int64(0)) { $0 + Int64($1.elementCount * dtype.byteSize) }
    }

    /// The 8-byte length plus the JSON header (padded with spaces to a multiple of 8), in the
    /// layout the `safetensors` library writes: `__metadata__` first, tensors in storage order.
    static func header(_ specs: [TensorSpec], dtype: DType) -> [UInt8] {
        var json = "{\"__metadata__\":{\"format\":\"pt\"}"
        var offset = 0
        for s in specs {
            let n = s.elementCount * dtype.byteSize
            json += ",\(SynthJSON.quote(s.name)):{\"dtype\":\"\(dtype.rawValue)\",\"shape\":["
                + s.shape.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(offset),\(offset + n)]}"
            offset += n
        }
        json += "}"
        var body = Array(json.utf8)
        while (body.count + 8) % 8 != 0 { body.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 8)
        let len = UInt64(body.count)
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: len >> (8 * UInt64(i)))) }
        return out + body
    }

    static func checkFreeSpace(_ dir: URL, needed: Int64) throws {
        var st = statvfs()
        guard statvfs(dir.path, &st) == 0 else { return }
        let free = Int64(st.f_bavail) * Int64(st.f_frsize)
        // Room for the file plus 64 MB; an existing model.safetensors will be replaced.
        var existing: Int64 = 0
        if let a = try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("model.safetensors").path),
           let n = a[.size] as? NSNumber { existing = n.int64Value }
        if free + existing < needed + (64 << 20) {
            throw LoopError.io(String(format: "not enough space in %@: model.safetensors needs %.2f GB, %.2f GB free",
                                      dir.path, Double(needed) / 1e9, Double(free + existing) / 1e9))
        }
    }

    // MARK: - streaming writer

    /// Elements per independently seeded block (the unit of parallel filling).
    static let blockElements = 1 << 18
    /// Blocks per write chunk (4 MB of bf16, 8 MB of f32).
    static let blocksPerChunk = 8

    static func writeSafetensors(_ specs: [TensorSpec], header: [UInt8], dtype: DType, seed: UInt64, path: String,
                                 total: Int64, skeleton: Bool = false, progress: ((Int64, Int64) -> Void)?) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw LoopError.io("cannot create \(path): \(String(cString: strerror(errno)))") }
        var ok = false
        defer {
            close(fd)
            if !ok { unlink(path) }
        }
        try header.withUnsafeBytes { try writeAll(fd, $0.baseAddress!, $0.count, path: path) }
        var written = Int64(header.count)
        progress?(written, total)
        if skeleton {
            guard ftruncate(fd, off_t(total)) == 0 else {
                throw LoopError.io("cannot extend \(path): \(String(cString: strerror(errno)))")
            }
            progress?(total, total)
            ok = true
            return
        }

        let esize = dtype.byteSize
        let chunkElements = blockElements * blocksPerChunk
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunkElements * esize, alignment: 64)
        defer { buffer.deallocate() }
        let shared = SendablePointer(buffer)
        for spec in specs {
            let n = spec.elementCount
            let nameSeed = mix(seed ^ fnv1a(spec.name))
            var offset = 0
            while offset < n {
                let count = min(chunkElements, n - offset)
                let blocks = (count + blockElements - 1) / blockElements
                let base = offset, fill = spec.fill
                DispatchQueue.concurrentPerform(iterations: blocks) { k in
                    let start = base + k * blockElements
                    let c = min(blockElements, n - start)
                    let state = mix(nameSeed &+ UInt64(start / blockElements) &* 0xD1B5_4A32_D192_ED03)
                    fillBlock(fill, dtype: dtype, start: start, count: c, state: state,
                              out: shared.pointer + k * blockElements * esize)
                }
                try writeAll(fd, buffer, count * esize, path: path)
                written += Int64(count * esize)
                progress?(written, total)
                offset += count
            }
        }
        ok = true
    }

    static func writeAll(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int, path: String) throws {
        var done = 0
        while done < n {
            let r = Glibc.write(fd, p + done, n - done)
            if r < 0 {
                if errno == EINTR { continue }
                throw LoopError.io("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            guard r > 0 else { throw LoopError.io("cannot write \(path): no progress") }
            done += r
        }
    }

    // MARK: - values

    /// splitmix64 step.
    @inline(__always) static func next(_ s: inout UInt64) -> UInt64 {
        s &+= 0x9E37_79B9_7F4A_7C15
        return mix(s)
    }

    /// splitmix64 finalizer.
    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }

    /// fp32 -> bf16, round to nearest even (values here are finite).
    @inline(__always) static func bf16(_ v: Float) -> UInt16 {
        let u = v.bitPattern
        return UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
    }

    /// Fills elements `start ..< start+count` of a tensor into `out` (element 0 of `out` is `start`).
    static func fillBlock(_ fill: Fill, dtype: DType, start: Int, count: Int, state: UInt64,
                          out: UnsafeMutableRawPointer) {
        var s = state
        switch fill {
        case .uniform(let c, let hw):
            switch dtype {
            case .bf16, .f16:
                // Four 16-bit uniforms per 64 random bits.
                let p = out.assumingMemoryBound(to: UInt16.self)
                let scale = hw / 32768, offset = c + 0.5 * scale
                let isBF = dtype == .bf16
                var i = 0
                while i < count {
                    let r = next(&s)
                    for k in 0..<min(4, count - i) {
                        let v = Float(Int16(truncatingIfNeeded: r >> (16 * UInt64(k)))) * scale + offset
                        p[i + k] = isBF ? bf16(v) : Float16(v).bitPattern
                    }
                    i += 4
                }
            default:
                let p = out.assumingMemoryBound(to: Float.self)
                let scale = hw / 2_147_483_648, offset = c + 0.5 * scale
                var i = 0
                while i < count {
                    let r = next(&s)
                    p[i] = Float(Int32(truncatingIfNeeded: r)) * scale + offset
                    if i + 1 < count { p[i + 1] = Float(Int32(truncatingIfNeeded: r >> 32)) * scale + offset }
                    i += 2
                }
            }
        case .constant(let v):
            for i in 0..<count { store(v, at: i, dtype: dtype, out: out) }
        case .logUniform(let lo, let hi):
            for i in 0..<count {
                let u = Double(next(&s) >> 11) * 0x1p-53
                store(Float(Foundation.log(Double(lo) + (Double(hi) - Double(lo)) * u)), at: i, dtype: dtype, out: out)
            }
        case .ropeTable(let theta, let headDim):
            let half = headDim / 2
            for i in 0..<count {
                let e = start + i
                let pair = (e / 2) % half, pos = e / (2 * half)
                // As the reference builds it in fp32: 1 / theta^(2i/d), then pos * freq.
                let freq = 1 / Foundation.powf(theta, Float(2 * pair) / Float(headDim))
                let angle = Double(Float(pos) * freq)
                store(Float(e % 2 == 0 ? Foundation.cos(angle) : Foundation.sin(angle)), at: i, dtype: dtype, out: out)
            }
        }
    }

    @inline(__always) static func store(_ v: Float, at i: Int, dtype: DType, out: UnsafeMutableRawPointer) {
        switch dtype {
        case .bf16: out.storeBytes(of: Float16Bits.floatToBF16(v), toByteOffset: 2 * i, as: UInt16.self)
        case .f16: out.storeBytes(of: Float16(v).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
        default: out.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
        }
    }
}

/// A synthetic checkpoint's tensor list under construction, with the value rules of `Synth` (see there) for each
/// kind of tensor; the families' `synthTensors` append to it in any order (`Synth.tensors(of:)` sorts).
struct SynthTensors {
    var specs: [Synth.TensorSpec] = []

    mutating func append(_ name: String, _ shape: [Int], _ fill: Synth.Fill, isParameter: Bool = true) {
        specs.append(Synth.TensorSpec(name: name, shape: shape, fill: fill, isParameter: isParameter))
    }

    /// A linear weight `[out, in]`: `u · sqrt(3/in) · 0.5`.
    mutating func linear(_ name: String, _ out: Int, _ inF: Int) {
        append(name, [out, inF], .uniform(center: 0, halfWidth: 0.5 * (3 / Float(inF)).squareRoot()))
    }

    /// An RMSNorm / LayerNorm weight `[n]`: `1 + 0.1·u`.
    mutating func norm(_ name: String, _ n: Int) { append(name, [n], .uniform(center: 1, halfWidth: 0.1)) }

    /// A bias that starts at 0.
    mutating func zeros(_ name: String, _ shape: [Int]) { append(name, shape, .constant(0)) }

    /// An embedding `[vocab, h]`: `u · sqrt(3/h)`.
    mutating func embedding(_ name: String, _ vocab: Int, _ h: Int) {
        append(name, [vocab, h], .uniform(center: 0, halfWidth: (3 / Float(h)).squareRoot()))
    }

    /// A Llama / Qwen3 / Ouro layer under prefix `p`: attention (Qwen3's q_norm / k_norm when `d.qkNorm`), SwiGLU MLP,
    /// the norms; `sandwich` adds Ouro's second pair of norms.
    mutating func decoderLayer(_ p: String, _ d: SynthDecoder, sandwich: Bool) {
        let q = d.heads * d.headDim, kv = d.kvHeads * d.headDim
        linear("\(p).self_attn.q_proj.weight", q, d.hidden)
        linear("\(p).self_attn.k_proj.weight", kv, d.hidden)
        linear("\(p).self_attn.v_proj.weight", kv, d.hidden)
        linear("\(p).self_attn.o_proj.weight", d.hidden, q)
        if d.qkNorm {
            norm("\(p).self_attn.q_norm.weight", d.headDim)
            norm("\(p).self_attn.k_norm.weight", d.headDim)
        }
        linear("\(p).mlp.gate_proj.weight", d.intermediate, d.hidden)
        linear("\(p).mlp.up_proj.weight", d.intermediate, d.hidden)
        linear("\(p).mlp.down_proj.weight", d.hidden, d.intermediate)
        norm("\(p).input_layernorm.weight", d.hidden)
        norm("\(p).post_attention_layernorm.weight", d.hidden)
        if sandwich {
            norm("\(p).input_layernorm_2.weight", d.hidden)
            norm("\(p).post_attention_layernorm_2.weight", d.hidden)
        }
    }
}

/// A raw buffer pointer handed to `concurrentPerform` workers, which write disjoint ranges.
private struct SendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ p: UnsafeMutableRawPointer) { pointer = p }
}
