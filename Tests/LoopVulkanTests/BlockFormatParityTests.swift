import Foundation
import LoopCore
@testable import LoopVulkan
import Testing

/// The block formats on the GPU (linear_block.comp, embedding.comp's block branch) against
/// the CPU twins' dequantized weights: the decode product (1 row), few-row and prefill
/// products (3, 8, 9 and 70 rows: whole and partial row groups of 8), the embedding gather;
/// both read paths (the texel one over the interleaved copy and over row-major W); weights read from row offsets, with and without bias, accumulating.
/// Both sides multiply the same dequantized values in fp32, so the products agree to
/// accumulation order: NMSE <= 1e-9.
@Suite(.serialized, .enabled(if: GPU.available))
struct BlockFormatParityTests {
    static let formats: [DType] = [.q8_0, .q4_0, .q4_k, .q6_k, .mlx4g64bf16, .mlx8g32f16, .mlx4g128f16, .mlx4g32bf16, .mlx8g128bf16]
    static let threshold = 1e-9

    func check(_ name: String, acts: [String: Int], rows: Int, tokens: [Int32]? = nil, weights: WeightStore, inputs: [String: [Float]],
               ops: [Op], outputs: [String], kernels spec: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> VulkanBackend {
        let layout = BackendLayout(activations: acts, kvSlots: 0, kvWidth: 1, maxContext: max(64, rows), maxRows: rows)
        let cpu = try CPUBackend(layout: layout, weights: weights)
        let gpu = try VulkanBackend(context: GPU.context!, layout: layout, weights: weights, kernels: GPU.kernels(spec))
        for backend in [cpu as PlanBackend, gpu] {
            for (k, v) in inputs { try backend.write(k, values: v) }
            try backend.run(ops, section: SectionKey(name, rows: rows), tokens: tokens ?? [Int32](repeating: 0, count: rows), pos0: 0)
        }
        for out in outputs {
            let c = try cpu.read(out, rows: rows), g = try gpu.read(out, rows: rows)
            #expect(g.allSatisfy { $0.isFinite }, "\(name): GPU produced NaN/Inf in \(out)", sourceLocation: sourceLocation)
            let e = nmse(g, c)
            #expect(e <= Self.threshold, "\(name): \(out) NMSE \(e) > \(Self.threshold)", sourceLocation: sourceLocation)
        }
        GPU.expectNoValidationMessages(sourceLocation: sourceLocation)
        return gpu
    }

    /// Kernel configurations: each read path (the texel one over the interleaved copy), and the
    /// texel path over row-major W (interleave=0).
    static var linearKernels: [String] {
        GPU.readPaths.map { "read=\($0)" } + (GPU.hasTexelPath ? ["read=texel,interleave=0"] : [])
    }

    @Test(arguments: formats, linearKernels)
    func linear(dtype: DType, path: String) throws {
        var rng = SeededRandom(seed: 77)
        let epb = dtype.weightFormat!.elementsPerBlock
        let inF = max(epb, 256) * 2   // 512: whole blocks of every format
        for (rows, outF, xCol) in [(1, 33, 0), (1, 67, 3), (3, 19, 1), (8, 40, 0), (9, 17, 2), (70, 24, 0)] {
            let w = WeightStore(checkpoint: nil)
            addWeight(w, "W", dtype, [outF + 3, inF], rng.floats((outF + 3) * inF, 0.2))
            addWeight(w, "b", .bf16, [outF + 3], rng.floats(outF + 3))
            let inputs = ["x": rng.floats(rows * (inF + xCol)), "y": rng.floats(rows * (outF + 2))]
            for (acc, bias, offRows) in [(false, false, 0), (false, true, 3), (true, true, 1), (true, false, 2)] {
                let name = "block-linear-\(dtype.rawValue)-\(path)-\(rows)x\(inF)x\(outF)-x\(xCol)-\(acc)-\(bias)-\(offRows)"
                let gpu = try check(name, acts: ["x": inF + xCol, "y": outF + 2], rows: rows, weights: w, inputs: inputs,
                                    ops: [.linear(x: ActRef("x", col: xCol), weight: WeightRef("W", offset: offRows * inF), bias: bias ? WeightRef("b", offset: offRows) : nil,
                                                  out: ActRef("y", col: offRows % 2), inFeatures: inF, outFeatures: outF, accumulate: acc)],
                                    outputs: ["y"], kernels: path)
                let keys = gpu.kernels.pipelineKeys.filter { $0.hasPrefix("linear_block.comp|\(dtype.rawValue)|") }
                #expect(!keys.isEmpty, "\(name) did not take linear_block.comp")
                let interleaved = keys.contains { $0.contains("INTERLEAVED=1") }
                #expect(interleaved == (path == "read=texel"), "\(name): interleaved kernel \(interleaved) for \(path)")
            }
        }
    }

    /// The stacked gate/up product followed by silu(gate) * up, recorded as one section (so the
    /// texel path fuses them into the interleaved kernel's SILU variant): both halves and H
    /// against the CPU twins, decode and prefill rows, with and without bias.
    @Test(arguments: formats, GPU.readPaths)
    func gateUpSilu(dtype: DType, path: ReadPath) throws {
        var rng = SeededRandom(seed: 80)
        let inF = max(dtype.weightFormat!.elementsPerBlock, 256) * 2, dim = 64
        for (rows, bias) in [(1, false), (1, true), (9, true)] {
            let w = WeightStore(checkpoint: nil)
            addWeight(w, "W", dtype, [2 * dim, inF], rng.floats(2 * dim * inF, 0.2))
            addWeight(w, "b", .bf16, [2 * dim], rng.floats(2 * dim))
            let ops: [Op] = [.linear(x: ActRef("x"), weight: WeightRef("W"), bias: bias ? WeightRef("b") : nil, out: ActRef("gu"),
                                     inFeatures: inF, outFeatures: 2 * dim, accumulate: false),
                             .siluMul(gate: ActRef("gu"), up: ActRef("gu", col: dim), out: ActRef("h"), dim: dim)]
            let name = "block-gate-up-silu-\(dtype.rawValue)-\(path)-\(rows)-\(bias)"
            let gpu = try check(name, acts: ["x": inF, "gu": 2 * dim, "h": dim], rows: rows, weights: w, inputs: ["x": rng.floats(rows * inF)],
                                ops: ops, outputs: ["gu", "h"], kernels: "read=\(path)")
            let fused = gpu.kernels.pipelineKeys.contains { $0.hasPrefix("linear_block.comp|\(dtype.rawValue)|") && $0.contains("SILU=1") }
            #expect(fused == (path == .texel), "\(name): fused SiLU kernel \(fused)")
        }
    }

    @Test(arguments: formats, GPU.readPaths)
    func embedding(dtype: DType, path: ReadPath) throws {
        var rng = SeededRandom(seed: 78)
        let vocab = 37, dim = max(dtype.weightFormat!.elementsPerBlock, 64) * 2
        let w = WeightStore(checkpoint: nil)
        addWeight(w, "emb", dtype, [vocab + 2, dim], rng.floats((vocab + 2) * dim))
        let tokens: [Int32] = [0, 5, 36, 5, 17, 2, 9]
        _ = try check("block-embedding-\(dtype.rawValue)-\(path)", acts: ["out": dim + 3], rows: tokens.count, tokens: tokens, weights: w, inputs: [:],
                      ops: [.embed(table: WeightRef("emb", offset: 2 * dim), vocab: vocab, dim: dim, out: ActRef("out", col: 2), scale: 1.7)],
                      outputs: ["out"], kernels: "read=\(path)")
    }

    /// Rows that are not whole blocks are refused with the tensor named, before any dispatch.
    @Test func rowsNotWholeBlocksAreAnError() throws {
        var rng = SeededRandom(seed: 79)
        let w = WeightStore(checkpoint: nil)
        addWeight(w, "W", .q4_k, [4, 512], rng.floats(4 * 512))
        let layout = BackendLayout(activations: ["x": 512, "y": 8], kvSlots: 0, kvWidth: 1, maxContext: 8, maxRows: 1)
        let gpu = try VulkanBackend(context: GPU.context!, layout: layout, weights: w, kernels: GPU.kernels())
        let op = Op.linear(x: ActRef("x"), weight: WeightRef("W"), bias: nil, out: ActRef("y"), inFeatures: 256 + 32, outFeatures: 1, accumulate: false)
        #expect(throws: LoopError.self) { try gpu.run([op], section: SectionKey("bad", rows: 1), tokens: [0], pos0: 0) }
    }
}
