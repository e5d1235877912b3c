// libFuzzer target: config.json decoding and plan building for every family, against a fixed
// set of tensors (the tiny Ouro, Huginn and LoopUS fixture checkpoints, loaded once, held in
// one in-memory Checkpoint). A plan that builds is also run on the CPU reference backend for
// two tokens. Build and run: tools/fuzz/run.sh (compiled into the LoopCore module).
//
// LOOPVK_FUZZ_MODELS: the folder holding ouro-tiny-fp32/, huginn-tiny-fp32/ and
// loopus-tiny-qwen3-fp32/ (default ../shared/fixtures).

import Foundation

private let fixtureShards: [(name: String, file: SafeTensorsFile)] = {
    let root = FuzzCheck.directory("LOOPVK_FUZZ_MODELS", default: "../shared/fixtures")
    var shards: [(name: String, file: SafeTensorsFile)] = []
    var seen = Set<String>()
    for model in ["ouro-tiny-fp32", "huginn-tiny-fp32", "loopus-tiny-qwen3-fp32"] {
        let path = root.appendingPathComponent(model).appendingPathComponent("model.safetensors").path
        guard let file = try? SafeTensorsFile(path: path) else { fatalError("cannot read \(path) (set LOOPVK_FUZZ_MODELS)") }
        for name in file.tensors.keys where !seen.insert(name).inserted { fatalError("tensor \(name) in two fixtures") }
        shards.append((model, file))
    }
    return shards
}()

private let fakeDirectory = URL(fileURLWithPath: "/nonexistent/loopvk-fuzz-config")

@_cdecl("LLVMFuzzerTestOneInput")
public func configPlanFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = data.map { Data(bytes: $0, count: size) } ?? Data()
    let checkpoint: Checkpoint
    do {
        checkpoint = try Checkpoint(directory: fakeDirectory, configData: text, shards: fixtureShards)
    } catch {
        FuzzCheck.expectCleanError(error, "Checkpoint(configData:)")
        return 0
    }
    let plan: LoopPlan
    let info: ModelInfo
    do {
        (plan, info) = try ModelFamily.plan(checkpoint: checkpoint, passes: nil)
    } catch {
        FuzzCheck.expectCleanError(error, "ModelFamily.plan")
        return 0
    }
    FuzzCheck.require(plan.passCount == info.passes && info.passes >= 1 && info.passes <= ModelFamily.maxPasses, "pass count")
    FuzzCheck.require(plan.maxContext == info.maxContext && plan.maxContext >= 1, "context")
    // Other pass counts and a context cap go through the same checks.
    for (passes, cap) in [(1, 4), (ModelFamily.maxPasses + 1, 4), (0, 4), (2, 0)] {
        do {
            let (p, _) = try ModelFamily.plan(checkpoint: checkpoint, passes: passes, maxContext: cap)
            FuzzCheck.require(p.passCount == passes && p.maxContext <= cap, "plan(passes: \(passes), maxContext: \(cap))")
        } catch {
            FuzzCheck.expectCleanError(error, "ModelFamily.plan(passes: \(passes))")
        }
    }
    // Run the plan (capped at 8 positions) for two tokens: every op is validated against the
    // checkpoint by the backend, so a plan that names a missing or too small tensor shows here.
    do {
        let backend = try CPUBackend(plan: plan, checkpoint: checkpoint, maxRows: 2, maxContext: 8)
        let logits = try PlanRunner(plan: plan, backend: backend).forward(tokens: [0, Int32(plan.vocab - 1)]).logits
        FuzzCheck.require(logits.count == 2 * plan.vocab, "logits count")
    } catch {
        fatalError("running a plan that built threw: \(error)")
    }
    return 0
}
