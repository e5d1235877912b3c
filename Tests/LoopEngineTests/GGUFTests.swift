import Foundation
import LoopCore
@testable import LoopEngine
import LoopTestSupport
import LoopTokenizer
import Testing

/// GGUF files written by `loopvk quantize` and read back: the mapping to llama.cpp's names (and
/// its Q/K permutation) is checked by an f32 file giving the folder's results op by op; quantized
/// files by the GPU against the CPU twins; the reader by damaged files.
@Suite(.serialized)
struct GGUFTests {
    static let work = scratchFolder("loopvk-gguf-tests")

    static func quantized(_ source: URL, _ type: Quantize.FileType, _ tag: String) throws -> URL {
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let out = work.appendingPathComponent("\(tag)-\(type.rawValue).gguf")
        if !FileManager.default.fileExists(atPath: out.path) { _ = try Quantize.run(model: source, type: type, out: out) }
        return out
    }

    static var bundled: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Models/looped-arith")
    }

    /// f32 GGUF == folder, op by op, for every family (Ouro and Llama-layout names with the
    /// permuted Q/K rows; Huginn and LoopUS under their own names).
    @Test(arguments: ["ouro-tiny-fp32", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"])
    func f32FileMatchesTheFolder(fixture: String) throws {
        let file = try Self.quantized(fixtureURL(fixture), .f32, fixture)
        let fromFile = try Model(directory: file, backend: .cpu, maxContext: 32, maxRows: 16)
        let fromFolder = try Model(directory: fixtureURL(fixture), backend: .cpu, maxContext: 32, maxRows: 16)
        let r = try Comparison.run(gpu: fromFile, cpu: fromFolder, tokens: [1, 7, 30, 2, 11])
        #expect(r.passed, "\(fixture): \(r.ops.filter { !$0.passed })")
        #expect(fromFile.plan.passCount == fromFolder.plan.passCount)
    }

    /// The written Q rows really are in llama.cpp's interleaved order (not just undone consistently).
    @Test func ouroQRowsArePermutedAsLlamaCppWritesThem() throws {
        let file = try Self.quantized(fixtureURL("ouro-tiny-fp32"), .f32, "ouro-tiny-fp32")
        let g = try GGUFFile(path: file.path)
        let t = try #require(g.tensorsByName["blk.0.attn_q.weight"])
        let stored = SafeTensorsFile.toFloats(g.bytes(of: t), dtype: .f32, count: t.dims[0] * t.dims[1])
        let hf = try Checkpoint(directory: fixtureURL("ouro-tiny-fp32")).floats("model.layers.0.self_attn.q_proj.weight")
        let cols: Int = t.dims[0]
        let half = 16  // head_dim 32
        // HF row (head 0, second half, i = 3) goes to row 3 * 2 + 1.
        let hfRow = half + 3, ggRow = 3 * 2 + 1
        let storedRow = Array(stored[(ggRow * cols)..<((ggRow + 1) * cols)])
        let hfRowValues = Array(hf[(hfRow * cols)..<((hfRow + 1) * cols)])
        #expect(storedRow == hfRowValues)
        #expect(g.tensorsByName["blk.0.attn_post_norm.weight"] != nil)
        #expect(g.tensorsByName["blk.0.ffn_post_norm.weight"] != nil)
        #expect(try g.int("ouro.num_loops") == 4)
    }

    /// Quantized files: the block kernels end to end (GPU against the CPU twins, same file).
    @Test(.enabled(if: backendChoices.count > 1), arguments: [("ouro-tiny-fp32", Quantize.FileType.q8_0), ("huginn-tiny-fp32", .q4_0), ("loopus-tiny-qwen3-fp32", .q8_0)])
    func quantizedFileRunsTheSameOnGPUAndCPU(fixture: String, type: Quantize.FileType) throws {
        let file = try Self.quantized(fixtureURL(fixture), type, fixture)
        let g = try GGUFFile(path: file.path)
        #expect(g.tensors.contains { $0.dtype.isBlock })
        let gpu = try Model(directory: file, backend: .vulkan(device: nil), maxContext: 32, maxRows: 16, kernels: "kv=f32")
        let cpu = try Model(directory: file, backend: .cpu, maxContext: 32, maxRows: 16)
        let r = try Comparison.run(gpu: gpu, cpu: cpu, tokens: [1, 7, 30, 2, 11])
        #expect(r.passed, "\(fixture) \(type): \(r.ops.filter { !$0.passed })")
    }

    /// The tokenizer rebuilt from llama.cpp's keys alone (no tokenizer.huggingface.json) encodes
    /// the bundled model's eval prompts to the same ids as tokenizer.json.
    @Test func tokenizerFromLlamaCppKeysMatchesTokenizerJSON() throws {
        let folder = Self.bundled
        let ck = try Checkpoint(directory: folder)
        var w = GGUFWriter()
        w.set("general.architecture", .string("ouro"))
        for (k, v) in try ModelFiles.tokenizerMetadata(folder: folder, config: ck.config) where k != "tokenizer.huggingface.json" { w.set(k, v) }
        try FileManager.default.createDirectory(at: Self.work, withIntermediateDirectories: true)
        let out = Self.work.appendingPathComponent("tokenizer-only.gguf")
        try w.write(to: out) { _ in [] }
        let fromKeys = try Tokenizer(data: ModelFiles.tokenizerJSON(GGUFFile(path: out.path)))
        let original = try Tokenizer(contentsOf: folder.appendingPathComponent("tokenizer.json"))
        let lines = try String(contentsOf: folder.appendingPathComponent("eval-dev.jsonl"), encoding: .utf8).split(separator: "\n").prefix(40)
        for line in lines + ["<|im_start|>user\n12 plus 3<|im_end|>\n"] {
            let text = String(line)
            #expect(try fromKeys.encode(text, addSpecialTokens: true) == original.encode(text, addSpecialTokens: true), "\(text)")
        }
        let cfg = try #require(ModelFiles.tokenizerConfig(at: Self.work.appendingPathComponent("tokenizer-only.gguf")))
        let folderConfig = try TokenizerConfig(contentsOf: folder.appendingPathComponent("tokenizer_config.json"))
        #expect(cfg.eosToken == folderConfig.eosToken)
        #expect(cfg.bosToken == folderConfig.bosToken)
    }

    /// An Ouro GGUF without the exit gate (as llama.cpp's converter writes it) runs every pass
    /// and refuses Q-exit saying why.
    @Test func ouroWithoutGateRefusesQExit() throws {
        let src = try GGUFFile(path: Self.quantized(fixtureURL("ouro-tiny-fp32"), .f32, "ouro-tiny-fp32").path)
        var w = GGUFWriter()
        for k in src.keys where !k.hasPrefix("loopvk.ouro.early_exit_gate") { w.set(k, src.metadata[k]!) }
        w.tensors = src.tensors.map { ($0.name, $0.shape, $0.dtype) }
        let out = Self.work.appendingPathComponent("ouro-nogate.gguf")
        try w.write(to: out) { Array(src.bytes(of: src.tensors[$0])) }
        let m = try Model(directory: out, backend: .cpu, maxContext: 16, maxRows: 8)
        #expect(m.plan.exitAct == nil)
        #expect(try ExitPolicy.parse("fixed:2", info: m.info) == .fixed(2))
        #expect(throws: LoopError.self) { try ExitPolicy.parse("q-exit:0.5", info: m.info) }
        do { _ = try ExitPolicy.parse("q-exit:0.5", info: m.info) } catch { #expect("\(error)".contains("gate")) }
    }

    /// Damaged files: one clear error each, never a crash.
    @Test func damagedFilesGiveClearErrors() throws {
        let good = try Data(contentsOf: Self.quantized(fixtureURL("ouro-tiny-fp32"), .q8_0, "ouro-tiny-fp32"))
        func check(_ bytes: Data, _ expected: String) {
            let url = Self.work.appendingPathComponent("bad.gguf")
            try? bytes.write(to: url)
            do {
                _ = try Checkpoint.open(url)
                Issue.record("no error for \(expected)")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
            }
        }
        check(good.prefix(5000), "runs past the end")
        check(good.prefix(30), "ends inside its header")
        var v = good; v[4] = 9
        check(v, "version 9")
        var magic = good; magic[0] = UInt8(ascii: "X")
        check(magic, "not a GGUF file")
        // The first tensor's type -> Q5_K: named as unsupported.
        let g = try GGUFFile(path: Self.quantized(fixtureURL("ouro-tiny-fp32"), .q8_0, "ouro-tiny-fp32").path)
        let first = g.tensors[0]
        let nameBytes = Data(first.name.utf8)
        let at = try #require(good.range(of: nameBytes)).upperBound + 4 + 8 * first.dims.count
        var t = good; t[at] = 13; t[at + 1] = 0; t[at + 2] = 0; t[at + 3] = 0
        check(t, "Q5_K")
        // An array count bigger than the file.
        let withTokenizer = try Data(contentsOf: Self.quantized(Self.bundled, .q8_0, "looped-arith"))
        let key = try #require(withTokenizer.range(of: Data("tokenizer.ggml.tokens".utf8))).upperBound
        var a = withTokenizer; a.replaceSubrange((key + 8)..<(key + 16), with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Data($0) })
        check(a, "an array of")
    }
}
