import Foundation
import Testing
@testable import LoopCore

/// A fresh temporary folder, removed when `body` returns.
private func withTempDir<T>(_ body: (URL) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("synth-test-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    return try body(dir)
}

private let smallPresets: [(family: String, preset: String)] = [
    ("ouro", "ouro-small"), ("huginn", "huginn-small"), ("loopus", "loopus-small"),
    ("llama", "llama-small"), ("llama", "qwen3-small"),
]

/// (model_type, key path of the hidden size, hidden size) the config.json of a preset must show.
private func expectedConfig(_ p: SynthPreset) -> (type: String, hidden: Int, vocab: Int) {
    switch p.model {
    case .ouro(let d, _): return ("ouro", d.hidden, d.vocab)
    case .huginn(let g): return ("huginn_raven", g.hidden, g.vocab)
    case .loopus(let d, _, _, _, _, _): return ("lds", d.hidden, d.vocab)
    case .llama(let d): return (d.modelType, d.hidden, d.vocab)
    }
}

@Suite struct SynthTests {
    @Test func presetTable() throws {
        let p = Synth.presets
        #expect(Set(p.keys) == ["ouro", "huginn", "loopus", "llama"])
        for name in ["ouro-1.4b", "ouro-2.6b", "ouro-bench", "ouro-small"] { #expect(p["ouro"]!.contains(name)) }
        for name in ["huginn-3.5b", "huginn-small"] { #expect(p["huginn"]!.contains(name)) }
        for name in ["loopus-qwen3-1.7b", "loopus-small"] { #expect(p["loopus"]!.contains(name)) }
        for name in ["llama-1b", "llama-small"] { #expect(p["llama"]!.contains(name)) }
        #expect(throws: LoopError.self) { try Synth.preset(family: "gpt2", name: "x") }
        #expect(throws: LoopError.self) { try Synth.preset(family: "ouro", name: "huginn-small") }
        // Names are unique within the whole table.
        #expect(Set(Synth.allPresets.map(\.name)).count == Synth.allPresets.count)
    }

    @Test(arguments: smallPresets.map { "\($0.family)/\($0.preset)" })
    func smallPresetRoundTrip(_ key: String) throws {
        let parts = key.split(separator: "/").map(String.init)
        let (family, name) = (parts[0], parts[1])
        let preset = try Synth.preset(family: family, name: name)
        let specs = Synth.tensors(of: preset)
        try withTempDir { dir in
            var calls: [(Int64, Int64)] = []
            try Synth.write(family: family, preset: name, to: dir, seed: 7) { calls.append(($0, $1)) }

            // model.safetensors: every tensor present, right shape and dtype, nothing else.
            let path = dir.appendingPathComponent("model.safetensors").path
            let file = try SafeTensorsFile(path: path)
            #expect(file.tensors.count == specs.count)
            #expect(file.metadata["format"] == "pt")
            for s in specs {
                let info = try #require(file.tensors[s.name], "missing \(s.name)")
                #expect(info.shape == s.shape, "\(s.name)")
                #expect(info.dtype == .bf16, "\(s.name)")
            }
            #expect(!FileManager.default.fileExists(atPath: path + ".partial"))
            let size = try #require((try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value)
            #expect(size == (try Synth.fileSize(family: family, preset: name)))
            #expect(calls.last?.0 == size && calls.last?.1 == size)
            #expect(zip(calls, calls.dropFirst()).allSatisfy { $0.0 <= $1.0 })

            // Values: finite; random tensors not constant; fills in their ranges.
            for s in specs {
                let v = try file.floats(s.name)
                #expect(v.allSatisfy { $0.isFinite }, "\(s.name)")
                switch s.fill {
                case .uniform(let c, let hw):
                    if v.count > 1 { #expect(Set(v).count > 1, "\(s.name) is constant") }
                    #expect(v.allSatisfy { abs($0 - c) <= hw + (abs(c) + hw) * 0.004 }, "\(s.name) out of range")   // bf16 rounding: half an ulp is 2^-8 relative
                    let mean = v.reduce(0, +) / Float(v.count)
                    if v.count >= 4096 { #expect(abs(mean - c) < hw * 0.05, "\(s.name) mean \(mean)") }
                case .constant(let x): #expect(v.allSatisfy { $0 == x })
                case .logUniform(let lo, let hi):
                    #expect(Set(v).count > 1)
                    #expect(v.allSatisfy { $0 >= Foundation.log(lo) - 0.01 && $0 <= Foundation.log(hi) + 0.01 })
                case .ropeTable: break
                }
            }

            // config.json parses, names the family and carries the preset's dims.
            let data = try Data(contentsOf: dir.appendingPathComponent("config.json"))
            let cfg = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let exp = expectedConfig(preset)
            #expect(cfg["model_type"] as? String == exp.type)
            switch preset.model {
            case .ouro(let d, let passes):
                #expect(cfg["hidden_size"] as? Int == d.hidden)
                #expect(cfg["num_hidden_layers"] as? Int == d.layers)
                #expect(cfg["intermediate_size"] as? Int == d.intermediate)
                #expect(cfg["head_dim"] as? Int == d.headDim)
                #expect(cfg["total_ut_steps"] as? Int == passes)
                #expect(cfg["torch_dtype"] as? String == "bfloat16")
                #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("generation_config.json").path))
            case .huginn(let g):
                #expect(cfg["n_embd"] as? Int == g.hidden)
                #expect(cfg["n_heads"] as? Int == g.heads)
                #expect(cfg["n_layers_in_recurrent_block"] as? Int == g.core)
                #expect(cfg["mean_recurrence"] as? Int == g.meanRecurrence)
                #expect(cfg["block_size"] as? Int == g.blockSize)
                #expect(cfg["tie_embeddings"] as? Bool == true)
                #expect(file.tensors["lm_head.weight"] == nil)
            case .loopus(let d, let enc, let rea, let dec, let passes, _):
                let base = try #require(cfg["base_config_dict"] as? [String: Any])
                #expect(base["hidden_size"] as? Int == d.hidden)
                #expect(base["num_hidden_layers"] as? Int == d.layers)
                #expect(base["num_key_value_heads"] as? Int == d.kvHeads)
                #expect(base["model_type"] as? String == "qwen3")
                #expect(cfg["encoder_layer_indices"] as? [Int] == enc)
                #expect(cfg["reasoning_layer_indices"] as? [Int] == rea)
                #expect(cfg["decoder_layer_indices"] as? [Int] == dec)
                #expect(cfg["N"] as? Int == passes)
                #expect(enc.count + rea.count + dec.count == d.layers)
            case .llama(let d):
                #expect(cfg["hidden_size"] as? Int == d.hidden)
                #expect(cfg["num_hidden_layers"] as? Int == d.layers)
                #expect(cfg["tie_word_embeddings"] as? Bool == d.tiedEmbeddings)
                #expect((file.tensors["lm_head.weight"] != nil) == !d.tiedEmbeddings)
            }
            #expect(cfg["vocab_size"] as? Int == exp.vocab)
        }
    }

    /// Tensor names and shapes follow the official fixtures' patterns (layer numbers aside).
    @Test func namesMatchTheFixtures() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../shared/fixtures")
            .standardized
        let pairs = [("ouro-tiny-bf16", "ouro", "ouro-small"), ("huginn-tiny-fp32", "huginn", "huginn-small"),
                     ("loopus-tiny-qwen3-fp32", "loopus", "loopus-small")]
        func pattern(_ name: String) -> String {
            name.split(separator: ".").map { $0.allSatisfy(\.isNumber) ? "N" : String($0) }.joined(separator: ".")
        }
        for (fixture, family, name) in pairs {
            let path = fixtures.appendingPathComponent(fixture).appendingPathComponent("model.safetensors").path
            guard FileManager.default.fileExists(atPath: path) else { continue }   // fixtures not in this checkout
            let official = Set(try SafeTensorsFile(path: path).tensors.keys.map(pattern))
            let ours = Set(Synth.tensors(of: try Synth.preset(family: family, name: name)).map { pattern($0.name) })
            #expect(official == ours, "\(fixture): only official \(official.subtracting(ours)), only ours \(ours.subtracting(official))")
        }
    }

    @Test func ouroBenchIs142_6M() throws {
        let n = try Synth.parameterCount(family: "ouro", preset: "ouro-bench")
        // 6 layers x (4·1024² + 3·1024·2816 + 4·1024) + 2·32000·1024 + 1024 + 1025
        #expect(n == 142_632_961)
        #expect((Double(n) / 1e5).rounded() / 10 == 142.6)
        #expect(try Synth.fileSize(family: "ouro", preset: "ouro-bench") > Int64(2 * n))
    }

    @Test func publishedParameterCounts() throws {
        // Independent arithmetic from the published shapes.
        let ouroLayer = 4 * 2048 * 2048 + 3 * 2048 * 5632 + 4 * 2048
        #expect(try Synth.parameterCount(family: "ouro", preset: "ouro-1.4b") == 24 * ouroLayer + 2 * 49152 * 2048 + 2048 + 2049)
        #expect(try Synth.parameterCount(family: "ouro", preset: "ouro-2.6b") == 48 * ouroLayer + 2 * 49152 * 2048 + 2048 + 2049)
        let h = 5280
        let huginnBlock = 4 * h + 3 * h * h + 2 * h + h * h + 2 * 17920 * h + h * 17920
        #expect(try Synth.parameterCount(family: "huginn", preset: "huginn-3.5b") == 8 * huginnBlock + 65536 * h + 2 * h * h + h)
        let llamaLayer = 2048 * 2048 * 2 + 2 * 512 * 2048 + 3 * 2048 * 8192 + 2 * 2048
        #expect(try Synth.parameterCount(family: "llama", preset: "llama-1b") == 16 * llamaLayer + 128256 * 2048 + 2048)
        let qwenLayer = 2 * 2048 * 2048 + 2 * 1024 * 2048 + 3 * 2048 * 6144 + 2 * 2048 + 2 * 128
        #expect(try Synth.parameterCount(family: "llama", preset: "qwen3-1.7b") == 28 * qwenLayer + 151936 * 2048 + 2048)
        #expect(try Synth.parameterCount(family: "loopus", preset: "loopus-qwen3-1.7b")
            == 28 * qwenLayer + 2 * 151936 * 2048 + 2048 + (2 * 128 * 2048 + 2 * 2048) + (2 * 2048 + 2048 + 1))
    }

    @Test func seedsAreReproducible() throws {
        try withTempDir { dir in
            let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b"), c = dir.appendingPathComponent("c")
            try Synth.write(family: "loopus", preset: "loopus-small", to: a, seed: 1, progress: nil)
            try Synth.write(family: "loopus", preset: "loopus-small", to: b, seed: 1, progress: nil)
            try Synth.write(family: "loopus", preset: "loopus-small", to: c, seed: 2, progress: nil)
            let da = try Data(contentsOf: a.appendingPathComponent("model.safetensors"))
            #expect(da == (try Data(contentsOf: b.appendingPathComponent("model.safetensors"))))
            #expect(da != (try Data(contentsOf: c.appendingPathComponent("model.safetensors"))))
            // Rewriting into the same folder replaces the files.
            try Synth.write(family: "loopus", preset: "loopus-small", to: a, seed: 2, progress: nil)
            #expect(try Data(contentsOf: a.appendingPathComponent("model.safetensors"))
                == (try Data(contentsOf: c.appendingPathComponent("model.safetensors"))))
        }
    }

    @Test func dtypesF32AndF16() throws {
        try withTempDir { dir in
            for dt in [DType.f32, .f16] {
                let out = dir.appendingPathComponent(dt.rawValue)
                try Synth.write(family: "ouro", preset: "ouro-small", to: out, dtype: dt, progress: nil)
                let file = try SafeTensorsFile(path: out.appendingPathComponent("model.safetensors").path)
                #expect(file.tensors.values.allSatisfy { $0.dtype == dt })
                let w = try file.floats("model.layers.0.mlp.down_proj.weight")
                #expect(w.allSatisfy { $0.isFinite } && Set(w).count > 1000)
                let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any]
                #expect(cfg?["torch_dtype"] as? String == (dt == .f32 ? "float32" : "float16"))
            }
            #expect(throws: LoopError.self) {
                try Synth.write(family: "ouro", preset: "ouro-small", to: dir.appendingPathComponent("i"), dtype: .i32, progress: nil)
            }
        }
    }

    @Test func huginnRopeTable() throws {
        try withTempDir { dir in
            try Synth.write(family: "huginn", preset: "huginn-small", to: dir, dtype: .f32, progress: nil)
            let file = try SafeTensorsFile(path: dir.appendingPathComponent("model.safetensors").path)
            let t = try file.floats("freqs_cis")   // [1, 512, 1, 32, 2]
            #expect(t.count == 512 * 32 * 2)
            for (pos, pair) in [(0, 0), (1, 0), (7, 3), (511, 31), (300, 10)] {
                let angle = Double(pos) * Foundation.pow(50000, -Double(2 * pair) / 64)
                let i = (pos * 32 + pair) * 2
                #expect(abs(Double(t[i]) - Foundation.cos(angle)) < 1e-4)
                #expect(abs(Double(t[i + 1]) - Foundation.sin(angle)) < 1e-4)
            }
        }
    }

    /// (default passes, hidden, vocab, KV slots at the default passes) the plan of a preset must have.
    private func expectedPlan(_ p: SynthPreset) -> (passes: Int, hidden: Int, vocab: Int, slots: Int) {
        switch p.model {
        case .ouro(let d, let passes): return (passes, d.hidden, d.vocab, passes * d.layers)
        case .huginn(let g): return (g.meanRecurrence, g.hidden, g.vocab, g.prelude + g.core * g.meanRecurrence + g.coda)
        case .loopus(let d, let e, let r, let dec, let passes, _): return (passes, d.hidden, d.vocab, e.count + passes * r.count + dec.count)
        case .llama(let d): return (1, d.hidden, d.vocab, d.layers)
        }
    }

    /// Every small preset loads through the family plan builders and a CPU forward over a few
    /// tokens gives finite logits that are not degenerate.
    @Test(arguments: smallPresets.map { "\($0.family)/\($0.preset)" })
    func smallPresetPlansAndRuns(_ key: String) throws {
        let parts = key.split(separator: "/").map(String.init)
        let preset = try Synth.preset(family: parts[0], name: parts[1])
        try withTempDir { dir in
            try Synth.write(preset, to: dir, seed: 3, progress: nil)
            let ck = try Checkpoint(directory: dir)
            let (plan, info) = try ModelFamily.plan(checkpoint: ck, passes: nil)
            let exp = expectedPlan(preset)
            #expect(info.defaultPasses == exp.passes && info.passes == exp.passes)
            #expect(info.hidden == exp.hidden && info.vocab == exp.vocab)
            #expect(plan.kvSlots == exp.slots)

            let (small, _) = try ModelFamily.plan(checkpoint: ck, passes: nil, maxContext: 16)
            let runner = PlanRunner(plan: small, backend: try CPUBackend(plan: small, checkpoint: ck, maxRows: 8, maxContext: 16))
            let r = try runner.forward(tokens: [5, 17, 300, 2, 999, 41, 41, 7])
            #expect(r.logits.allSatisfy { $0.isFinite })
            let mean = r.logits.reduce(0, +) / Float(r.logits.count)
            let variance = r.logits.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(r.logits.count)
            #expect(variance > 0.01 && variance < 100, "logit variance \(variance)")
            let argmaxes = Set((0..<r.rows).map { PlanRunner.argmax(r.logits(row: $0)) })
            #expect(argmaxes.count > 1, "every position predicts the same token")
            for signals in r.exitSignals { #expect(signals.allSatisfy { $0.isFinite }) }
        }
    }

    /// The big presets' layouts (header + sparse zero data, no gigabytes written) pass the plan
    /// builders' name, shape and config checks.
    @Test(arguments: Synth.allPresets.filter { !$0.name.hasSuffix("-small") }.map { "\($0.family)/\($0.name)" })
    func bigPresetLayoutsPlan(_ key: String) throws {
        let parts = key.split(separator: "/").map(String.init)
        let preset = try Synth.preset(family: parts[0], name: parts[1])
        try withTempDir { dir in
            try Synth.write(preset, to: dir, seed: 0, dtype: nil, skeleton: true, progress: nil)
            let ck = try Checkpoint(directory: dir)
            #expect(Int64(ck.totalBytes) + 8 < (try Synth.fileSize(family: parts[0], preset: parts[1])))
            let (plan, info) = try ModelFamily.plan(checkpoint: ck, passes: nil, maxContext: 64)
            let exp = expectedPlan(preset)
            #expect(info.defaultPasses == exp.passes && info.hidden == exp.hidden && info.vocab == exp.vocab)
            #expect(plan.kvSlots == exp.slots)
        }
    }

    @Test func configJSONRendering() {
        let j = SynthJSON.object(["b": .double(1e-6), "a": .array([.int(1), .double(1e6)]), "c": .object([:]), "d": .string("x\"é")])
        #expect(j.render() == "{\n  \"a\": [\n    1,\n    1000000.0\n  ],\n  \"b\": 1e-06,\n  \"c\": {},\n  \"d\": \"x\\\"\\u00e9\"\n}")
    }
}
