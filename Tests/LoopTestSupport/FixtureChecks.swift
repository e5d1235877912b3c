// Golden-fixture checks that work over any PlanBackend: the CPU reference tests and the Vulkan
// tests run the same `checkFixture(name:makeBackend:)` with their own backend factory. The checks
// themselves are LoopCore's `checkGoldens` (also behind `loopvk compare --golden`).
import Foundation
import Testing
import LoopCore

/// The tolerance (atol = rtol) the goldens hold with the f16 KV cache (`kv=f16`, the default
/// where the device has 16-bit storage): 2e-3. Measured on lavapipe and the CPU reference, the
/// worst element of the four fixtures sits at 13x the fp32 tolerance of 1e-4 (ut_hidden of
/// ouro-tiny-bf16, |x - g| = 1.8e-3), i.e. at a quarter of this one; ids and exit decisions
/// stay exact.
public let f16KVTolerance: Float = 2e-3

/// The folder of a model fixture under Tests/Fixtures.
public func fixtureURL(_ name: String, file: String = #filePath) -> URL {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(name)
}

/// Runs every check of a model fixture on backends made by `makeBackend`, records each failure
/// as a test issue and returns the comparer (statistics, report).
@discardableResult
public func checkFixture(name: String, atol: Float = 1e-4, rtol: Float = 1e-4, makeBackend: BackendFactory,
                         sourceLocation: SourceLocation = #_sourceLocation) throws -> GoldenComparer {
    let cmp = try checkGoldens(directory: fixtureURL(name), makeBackend: makeBackend, atol: atol, rtol: rtol)
    for f in cmp.failures { Issue.record(Comment(rawValue: f), sourceLocation: sourceLocation) }
    return cmp
}

/// A scratch folder under the temporary directory, emptied when first asked for in a test run:
/// one per suite (a per-process name would pile up in /tmp run after run). Keep it in a
/// `static let` so a run asks once.
public func scratchFolder(_ name: String) -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(name)
    try? FileManager.default.removeItem(at: url)
    return url
}
