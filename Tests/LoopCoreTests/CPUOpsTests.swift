import Foundation
import Testing
@testable import LoopCore

/// Runs `ops` on a fresh CPU backend over `rows` rows with the given activations and weights.
private func makeBackend(acts: [String: Int], weights: [String: [Float]], kvSlots: Int = 0, kvWidth: Int = 0,
                         maxContext: Int = 8, maxRows: Int = 4) throws -> CPUBackend {
    let store = WeightStore(checkpoint: nil)
    for (k, v) in weights { store.add(k, shape: [v.count], floats: v) }
    return try CPUBackend(layout: BackendLayout(activations: acts, kvSlots: kvSlots, kvWidth: kvWidth,
                                                maxContext: maxContext, maxRows: maxRows), weights: store)
}

private func close(_ a: [Float], _ b: [Float], tol: Float = 1e-5) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tol * (1 + abs($1)) }
}

private let tokens1: [Int32] = [0]
private func run(_ b: CPUBackend, _ ops: [Op], rows: Int = 1, pos0: Int = 0) throws {
    try b.run(ops, section: SectionKey("test", rows: rows), tokens: [Int32](repeating: 0, count: rows), pos0: pos0)
}

@Suite struct CPUOpsTests {
    @Test func embedding() throws {
        let b = try makeBackend(acts: ["x": 2], weights: ["emb": [0, 1, 10, 11, 20, 21]])
        try b.run([.embed(table: WeightRef("emb"), vocab: 3, dim: 2, out: ActRef("x"), scale: 2)],
                  section: SectionKey("e", rows: 2), tokens: [2, 0], pos0: 0)
        #expect(try b.read("x", rows: 2) == [40, 42, 0, 2])
        // token id outside the vocabulary
        #expect(throws: LoopError.self) {
            try b.run([.embed(table: WeightRef("emb"), vocab: 3, dim: 2, out: ActRef("x"), scale: 1)],
                      section: SectionKey("e", rows: 1), tokens: [3], pos0: 0)
        }
    }

    @Test func rmsNormModes() throws {
        let inv = 1 / Float(12.5).squareRoot()   // rms of [3, 4] = sqrt(12.5)
        let b = try makeBackend(acts: ["x": 4, "a": 4, "o": 4], weights: ["w": [1, 2]])
        try b.write("x", values: [3, 4, 6, 8])
        // two groups of 2, same weight for each group
        try run(b, [.rmsNorm(x: ActRef("x"), add: nil, weight: WeightRef("w"), out: ActRef("o"), dim: 2, groups: 2, eps: 0, mode: .plain)])
        #expect(close(try b.read("o", rows: 1), [3 * inv, 8 * inv, 3 * inv, 8 * inv]))
        // accumulate: out += norm(x) * w
        try b.write("o", values: [1, 1, 1, 1])
        try run(b, [.rmsNorm(x: ActRef("x"), add: nil, weight: WeightRef("w"), out: ActRef("o"), dim: 2, groups: 2, eps: 0, mode: .accumulate)])
        #expect(close(try b.read("o", rows: 1), [1 + 3 * inv, 1 + 8 * inv, 1 + 3 * inv, 1 + 8 * inv]))
        // normalizeSum: out = norm(x + add) * w, written in place over x
        try b.write("x", values: [1, 2, 0, 0])
        try b.write("a", values: [2, 2, 3, 4])
        try run(b, [.rmsNorm(x: ActRef("x"), add: ActRef("a"), weight: nil, out: ActRef("x"), dim: 2, groups: 2, eps: 0, mode: .normalizeSum)])
        #expect(close(try b.read("x", rows: 1), [3 * inv, 4 * inv, 3 * inv, 4 * inv]))
        // eps enters as mean(x²) + eps
        try b.write("x", values: [3, 4, 0, 0])
        try run(b, [.rmsNorm(x: ActRef("x", col: 0), add: nil, weight: nil, out: ActRef("o", col: 2), dim: 2, groups: 1, eps: 0.5, mode: .plain)])
        let inv2 = 1 / Float(13).squareRoot()
        #expect(close(Array(try b.read("o", rows: 1)[2...]), [3 * inv2, 4 * inv2]))
    }

    @Test func layerNorm() throws {
        let b = try makeBackend(acts: ["x": 4, "o": 4], weights: ["w": [1, 1, 2, 1], "b": [0.5, 0.5, 0.5, 0.5]])
        try b.write("x", values: [1, 2, 3, 4])
        try run(b, [.layerNorm(x: ActRef("x"), weight: WeightRef("w"), bias: WeightRef("b"), out: ActRef("o"), dim: 4, eps: 0)])
        let s = 1 / Float(1.25).squareRoot()
        #expect(close(try b.read("o", rows: 1), [-1.5 * s + 0.5, -0.5 * s + 0.5, 2 * 0.5 * s + 0.5, 1.5 * s + 0.5]))
    }

    @Test func linearSmall() throws {
        let b = try makeBackend(acts: ["x": 2, "o": 3], weights: ["w": [1, 0, 0, 1, 1, 1], "bias": [0, 0, 1]])
        try b.write("x", values: [1, 2, 3, 5])
        try run(b, [.linear(x: ActRef("x"), weight: WeightRef("w"), bias: WeightRef("bias"), out: ActRef("o"),
                            inFeatures: 2, outFeatures: 3, accumulate: false)], rows: 2)
        #expect(try b.read("o", rows: 2) == [1, 2, 4, 3, 5, 9])
        // accumulate, weight offset (rows 1 and 2 of W as a 2x2 matrix), no bias
        try run(b, [.linear(x: ActRef("x"), weight: WeightRef("w", offset: 2), bias: nil, out: ActRef("o", col: 1),
                            inFeatures: 2, outFeatures: 2, accumulate: true)], rows: 1)
        #expect(try b.read("o", rows: 1) == [1, 4, 7])
    }

    @Test func linearParallelMatchesNaive() throws {
        let rows = 3, inF = 256, outF = 700
        var g = SystemRandomNumberGenerator()
        let x = (0..<(rows * inF)).map { _ in Float.random(in: -1...1, using: &g) }
        let w = (0..<(outF * inF)).map { _ in Float.random(in: -1...1, using: &g) }
        let bias = (0..<outF).map { _ in Float.random(in: -1...1, using: &g) }
        let b = try makeBackend(acts: ["x": inF, "o": outF], weights: ["w": w, "b": bias])
        try b.write("x", values: x)
        try run(b, [.linear(x: ActRef("x"), weight: WeightRef("w"), bias: WeightRef("b"), out: ActRef("o"),
                            inFeatures: inF, outFeatures: outF, accumulate: false)], rows: rows)
        let got = try b.read("o", rows: rows)
        var worst: Double = 0
        for r in 0..<rows {
            for o in 0..<outF {
                var s = Double(bias[o])
                for i in 0..<inF { s += Double(x[r * inF + i]) * Double(w[o * inF + i]) }
                worst = max(worst, abs(Double(got[r * outF + o]) - s))
            }
        }
        #expect(worst < 1e-4)
    }

    @Test func ropeLayouts() throws {
        // positions 0 and 1; pair 0 rotates by 90 degrees at position 1, pair 1 does not rotate.
        let table: [Float] = [1, 0, 1, 0,   0, 1, 1, 0]
        let b = try makeBackend(acts: ["q": 4], weights: ["t": table])
        try b.write("q", values: [1, 2, 3, 4])
        try run(b, [.rope(x: ActRef("q"), heads: 1, headDim: 4, table: WeightRef("t"), tablePositions: 2, layout: .rotateHalf)])
        #expect(try b.read("q", rows: 1) == [1, 2, 3, 4])  // position 0 is the identity
        try run(b, [.rope(x: ActRef("q"), heads: 1, headDim: 4, table: WeightRef("t"), tablePositions: 2, layout: .rotateHalf)], pos0: 1)
        #expect(try b.read("q", rows: 1) == [-3, 2, 1, 4])  // dims 0 and 2 form pair 0
        try b.write("q", values: [1, 2, 3, 4])
        try run(b, [.rope(x: ActRef("q"), heads: 1, headDim: 4, table: WeightRef("t"), tablePositions: 2, layout: .interleaved)], pos0: 1)
        #expect(try b.read("q", rows: 1) == [-2, 1, 3, 4])  // dims 0 and 1 form pair 0
        // beyond the table
        #expect(throws: LoopError.self) {
            try run(b, [.rope(x: ActRef("q"), heads: 1, headDim: 4, table: WeightRef("t"), tablePositions: 2, layout: .interleaved)], pos0: 2)
        }
    }

    @Test func kvWriteAndAttention() throws {
        // 2 query heads sharing 1 KV head of dim 2 (GQA), KV width 2.
        let b = try makeBackend(acts: ["k": 2, "v": 2, "q": 4, "o": 4], weights: [:], kvSlots: 2, kvWidth: 2)
        try b.write("k", values: [1, 0])
        try b.write("v", values: [5, 7])
        try b.write("q", values: [3, 1, -2, 4])
        let step: [Op] = [
            .kvWrite(src: ActRef("k"), slot: 1, part: .k),
            .kvWrite(src: ActRef("v"), slot: 1, part: .v),
            .attention(q: ActRef("q"), slot: 1, out: ActRef("o"), heads: 2, kvHeads: 1, headDim: 2, scale: 0.5),
        ]
        try run(b, step)
        // one KV row: attention returns V for every head
        #expect(try b.read("o", rows: 1) == [5, 7, 5, 7])
        #expect(try b.readKV(slot: 1, part: .v, rows: 1) == [5, 7])
        #expect(try b.readKV(slot: 0, part: .v, rows: 1) == [0, 0])
        // second position with the same key: equal weights -> mean of the two V rows
        try b.write("v", values: [1, 3])
        try run(b, step, pos0: 1)
        #expect(close(try b.read("o", rows: 1), [3, 5, 3, 5]))
        // two query rows at once: row 0 (position 0) sees only V0, row 1 sees both (causal)
        try b.write("k", values: [0, 0, 0, 0])
        try b.write("v", values: [2, 2, 4, 6])
        try run(b, step, rows: 2)
        #expect(close(try b.read("o", rows: 2), [2, 2, 2, 2, 3, 4, 3, 4]))
        // softmax weights: keys [1,0] and [0,1], q = [ln 3 / s, 0] -> weights 3/4, 1/4
        try b.write("k", values: [1, 0, 0, 1])
        try b.write("v", values: [4, 0, 0, 4])
        try b.write("q", values: [0, 0, 0, 0, log(3) / 0.5, 0, 0, 0])
        try run(b, step, rows: 2)
        #expect(close(Array(try b.read("o", rows: 2)[4...]), [3, 1, 2, 2]))
        // slot out of range
        #expect(throws: LoopError.self) { try run(b, [.kvWrite(src: ActRef("k"), slot: 2, part: .k)]) }
    }

    @Test func siluMul() throws {
        let b = try makeBackend(acts: ["g": 2, "u": 2, "o": 2], weights: [:])
        try b.write("g", values: [1, 0])
        try b.write("u", values: [2, 5])
        try run(b, [.siluMul(gate: ActRef("g"), up: ActRef("u"), out: ActRef("o"), dim: 2)])
        #expect(close(try b.read("o", rows: 1), [2 * 0.7310585786, 0]))
    }

    @Test func unaryKinds() throws {
        let b = try makeBackend(acts: ["x": 3, "o": 3], weights: [:])
        try b.write("x", values: [0, 1, 30])
        func check(_ k: UnaryKind, _ scale: Float, _ want: [Float]) throws {
            try run(b, [.unary(kind: k, x: ActRef("x"), out: ActRef("o"), dim: 3, scale: scale)])
            #expect(close(try b.read("o", rows: 1), want), "\(k)")
        }
        try check(.sigmoid, 0, [0.5, 0.7310585786, 1])
        try check(.softplus, 0, [0.6931471806, 1.3132616875, 30])
        try check(.exp, 0, [1, 2.7182818285, exp(30)])
        try check(.silu, 0, [0, 0.7310585786, 30])
        try check(.fill, 3, [3, 3, 3])
        try check(.scale, -2, [0, -2, -60])
    }

    @Test func binaryKinds() throws {
        let b = try makeBackend(acts: ["a": 2, "b": 2, "o": 2], weights: ["w": [10, 20]])
        try b.write("a", values: [1, 2, 3, 4])
        try b.write("b", values: [5, 7, 1, 1])
        try run(b, [.binary(kind: .add, a: ActRef("a"), b: .act(ActRef("b")), out: ActRef("o"), dim: 2)], rows: 2)
        #expect(try b.read("o", rows: 2) == [6, 9, 4, 5])
        try run(b, [.binary(kind: .sub, a: ActRef("a"), b: .act(ActRef("b")), out: ActRef("o"), dim: 2)], rows: 2)
        #expect(try b.read("o", rows: 2) == [-4, -5, 2, 3])
        try run(b, [.binary(kind: .mul, a: ActRef("a"), b: .row(WeightRef("w")), out: ActRef("a"), dim: 2)], rows: 2)
        #expect(try b.read("a", rows: 2) == [10, 40, 30, 80])
    }

    @Test func copyWindows() throws {
        let b = try makeBackend(acts: ["x": 2, "e": 2, "cat": 4], weights: [:])
        try b.write("x", values: [1, 2, 3, 4])
        try b.write("e", values: [5, 6, 7, 8])
        try run(b, [.copy(src: ActRef("x"), out: ActRef("cat"), width: 2),
                    .copy(src: ActRef("e"), out: ActRef("cat", col: 2), width: 2)], rows: 2)
        #expect(try b.read("cat", rows: 2) == [1, 2, 5, 6, 3, 4, 7, 8])
        // window past the width
        #expect(throws: LoopError.self) { try run(b, [.copy(src: ActRef("x"), out: ActRef("cat", col: 3), width: 2)]) }
    }

    @Test func backendBounds() throws {
        let b = try makeBackend(acts: ["x": 2], weights: [:], maxContext: 4, maxRows: 2)
        let fill: [Op] = [.unary(kind: .fill, x: ActRef("x"), out: ActRef("x"), dim: 2, scale: 1)]
        #expect(throws: LoopError.self) { try run(b, fill, rows: 3) }          // rows > maxRows
        #expect(throws: LoopError.self) { try run(b, fill, rows: 2, pos0: 3) } // pos0 + rows > maxContext
        #expect(throws: LoopError.self) { try run(b, [.unary(kind: .fill, x: ActRef("y"), out: ActRef("y"), dim: 2, scale: 1)]) }
        #expect(throws: LoopError.self) { try b.write("x", values: [1, 2, 3]) }
        try run(b, fill, rows: 2, pos0: 2)
        #expect(try b.read("x", rows: 2) == [1, 1, 1, 1])
    }
}

@Suite struct CPUOpsReductionTests {
    @Test func argmaxAndSoftmax() throws {
        let b = try makeBackend(acts: ["x": 4, "i": 1, "p": 4], weights: [:])
        try b.write("x", values: [1, 3, 3, 2, 0, 0, 0, 0])
        try run(b, [.argmax(x: ActRef("x"), out: ActRef("i"), dim: 4),
                    .softmax(x: ActRef("x"), out: ActRef("p"), dim: 4)], rows: 2)
        #expect(try b.read("i", rows: 2) == [1, 0])
        let e: [Float] = [1, 3, 3, 2].map { exp(Float($0) - 3) }
        let s = e.reduce(0, +)
        #expect(close(try b.read("p", rows: 2), e.map { $0 / s } + [0.25, 0.25, 0.25, 0.25]))
    }
}
