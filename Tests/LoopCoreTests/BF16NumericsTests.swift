import Foundation
import Testing
import LoopCore
import LoopTestSupport

/// `--numerics bf16` on the CPU reference against the bf16 fixture's golden_bf16.safetensors (the
/// official code run end to end in torch bfloat16).
@Suite struct BF16NumericsTests {
    static let fixture = "ouro-tiny-bf16"

    static func cpuBackend(kv: String) -> BackendFactory {
        { plan, weights in
            try CPUBackend(layout: BackendLayout(plan: plan, maxRows: 32, maxContext: 64), weights: weights,
                           kernels: KernelConfig.resolve(for: .cpuReference, deviceName: "cpu-reference", override: "kv=\(kv)", check: false))
        }
    }

    static func check(_ numerics: Numerics, goldenFile: String = "golden_bf16.safetensors", kv: String = "f32") throws -> GoldenComparer {
        try checkGoldens(directory: fixtureURL(fixture), makeBackend: cpuBackend(kv: kv), numerics: numerics, goldenFile: goldenFile)
    }

    /// The greedy ids (and the Q-exit choices) of the bfloat16 reference run, exactly, with either KV
    /// cache dtype (bf16 values are exact in f16 at these magnitudes).
    @Test(arguments: ["f32", "f16"])
    func greedyIdsEqualGoldenBF16(kv: String) throws {
        let cmp = try Self.check(.bf16, kv: kv)
        print(cmp.report)
        #expect(cmp.exactChecks.contains("gen_ids") && cmp.exactChecks.contains("exit_step_q050"))
        #expect(cmp.failures.isEmpty, "\(cmp.failures)")
        #expect(!cmp.enforceTolerance)

        // The same through a plain greedy run of a bf16 plan.
        let ck = try Checkpoint(directory: fixtureURL(Self.fixture))
        let (plan, info) = try ModelFamily.plan(checkpoint: ck, passes: nil, numerics: .bf16)
        #expect(plan.numerics == .bf16)
        let runner = PlanRunner(plan: plan, backend: try Self.cpuBackend(kv: kv)(plan, WeightStore(checkpoint: ck, plan: plan)))
        let golden = try Goldens(fixtureURL(Self.fixture).appendingPathComponent("golden_bf16.safetensors"))
        let prompt = try golden.i("input_ids").map { Int32($0) }
        let gen = try runner.greedy(prompt: prompt, count: try golden.shape("gen_ids")[0],
                                    exit: .ouroQExit(threshold: info.earlyExitThreshold ?? 1))
        #expect(gen.ids.map { Int($0) } == (try golden.i("gen_ids")))
        // Logits are bf16 values.
        for row in gen.logits { #expect(row.allSatisfy { Float16Bits.roundToBF16($0) == $0 }) }
    }

    /// bf16 rounding brings the logits closer to the bfloat16 run than fp32 numerics are.
    /// Measured (CPU reference, kv=f32), relative RMS error against golden_bf16 of ut_logits per
    /// pass: fp32 mode 0.0068 0.0082 0.0126 0.0169, bf16 mode 0.0042 0.0067 0.0093 0.0111 (sum
    /// ratio 0.71). Each tensor must be strictly closer, and the summed error at most 0.85 of
    /// fp32's: a bound between the measured 0.71 and "no better" (1). A lost rounding point fails
    /// it: without RMSNorm's cast before the weight multiply the bf16 mode measured 0.0086 0.0107
    /// 0.0141 0.0185 (worse than fp32 on every pass, sum ratio 1.16).
    @Test func logitsCloserToGoldenBF16ThanFP32() throws {
        let bf = try Self.check(.bf16), fp = try Self.check(.fp32)
        let names = (0..<4).map { "ut_logits[\($0)]" } + ["logits", "gen_logits"]
        var sumBF: Float = 0, sumFP: Float = 0
        for name in names {
            let b = try #require(bf.stat(name)), f = try #require(fp.stat(name))
            print(String(format: "%@: rel-rms fp32 %.4g bf16 %.4g, max abs fp32 %.4g bf16 %.4g", name, f.relRMS, b.relRMS, f.maxAbs, b.maxAbs))
            #expect(b.relRMS < f.relRMS, "\(name): bf16 \(b) vs fp32 \(f)")
            if name.hasPrefix("ut_logits") { sumBF += b.relRMS; sumFP += f.relRMS }
        }
        #expect(sumBF <= 0.85 * sumFP, "summed ut_logits rel-rms: bf16 \(sumBF), fp32 \(sumFP)")
    }

    /// The first KV slot (pass 0, layer 0: embedding, RMSNorm, the q/k/v product, RoPE) is
    /// bit-identical to the bfloat16 run in bf16 mode, and not in fp32 mode.
    @Test func firstSlotIsBitExact() throws {
        let ck = try Checkpoint(directory: fixtureURL(Self.fixture))
        let golden = try Goldens(fixtureURL(Self.fixture).appendingPathComponent("golden_bf16.safetensors"))
        let prompt = try golden.i("input_ids").map { Int32($0) }
        let n = prompt.count
        let shape = try golden.shape("kv_prefill_k")  // [slots, kvHeads, T, headDim]
        let (kvHeads, headDim) = (shape[1], shape[3])
        var exact: [Numerics: Bool] = [:]
        for numerics in Numerics.allCases {
            let (plan, _) = try ModelFamily.plan(checkpoint: ck, passes: nil, numerics: numerics)
            let runner = PlanRunner(plan: plan, backend: try Self.cpuBackend(kv: "f32")(plan, WeightStore(checkpoint: ck, plan: plan)))
            _ = try runner.forward(tokens: prompt, pos0: 0)
            var same = true
            for (part, key) in [(KVPart.k, "kv_prefill_k"), (KVPart.v, "kv_prefill_v")] {
                let c = try runner.backend.readKV(slot: 0, part: part, rows: n)
                let g = try golden.f(key, 0)
                for h in 0..<kvHeads { for r in 0..<n { for d in 0..<headDim where c[r * plan.kvWidth + h * headDim + d] != g[(h * n + r) * headDim + d] { same = false } } }
            }
            exact[numerics] = same
        }
        #expect(exact[.bf16] == true)
        #expect(exact[.fp32] == false)
    }

    /// Plans: fp32 by default; bf16 rounds the RoPE table (HF casts cos/sin to the activations'
    /// dtype) and nothing else computed. The backend layout carries the numerics.
    @Test func planNumerics() throws {
        let ck = try Checkpoint(directory: fixtureURL(Self.fixture))
        let (fp, _) = try ModelFamily.plan(checkpoint: ck, passes: nil)
        #expect(fp.numerics == .fp32)
        #expect(fp.castTables == ["rope.table"])
        let bf = fp.with(numerics: .bf16)
        let t = try #require(bf.computed["rope.table"]).values
        #expect(t.allSatisfy { Float16Bits.roundToBF16($0) == $0 })
        #expect(t != fp.computed["rope.table"]!.values)
        #expect(BackendLayout(plan: bf, maxRows: 4).numerics == .bf16)
        #expect(BackendLayout(plan: fp, maxRows: 4).numerics == .fp32)
        #expect(try Numerics.parse("BF16") == .bf16)
        #expect { try Numerics.parse("fp16") } throws: { "\($0)".contains("fp32, bf16") }
        // A fixture with no bfloat16 run says so.
        #expect { try checkGoldens(directory: fixtureURL("ouro-tiny-fp32"), makeBackend: Self.cpuBackend(kv: "f32"), numerics: .bf16) }
            throws: { "\($0)".contains("golden_bf16.safetensors") }
    }
}
