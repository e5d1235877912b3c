import Foundation
import LoopCore
import LoopVulkan
import Testing

/// One validated Vulkan context for the whole test process (lavapipe in CI). Suites that need
/// it are `.enabled(if: GPU.available)` so machines without Vulkan skip them cleanly.
enum GPU {
    static let context: VulkanContext? = {
        setenv("LOOPVK_VALIDATION_QUIET", "1", 0)
        return try? VulkanContext(validation: true)
    }()
    static var available: Bool { context != nil }
    /// The decode-GEMV read paths this device can run (tests run each).
    static var readPaths: [ReadPath] {
        ReadPath.allCases.filter { $0 == .storage || context?.info.uniformTexelBuffers == true }
    }

    /// The test device's kernel configuration (its defaults and LOOPVK_KERNELS), with `read`
    /// and then `spec` applied.
    static func kernels(read: ReadPath? = nil, _ spec: String = "") throws -> KernelConfig {
        let info = context!.info
        var c = try KernelConfig.resolve(for: info.traits, deviceName: info.name)
        if let read { c.read = read }
        return try c.applying(spec, device: info.traits)
    }

    static var hasTexelPath: Bool { readPaths.contains(.texel) }
    /// VK_EXT_conditional_rendering (exit decisions on the device).
    static var hasConditionalSections: Bool { context?.info.conditionalRendering == true }

    /// Fails the current test if the validation layer reported anything since `reset`.
    static func expectNoValidationMessages(sourceLocation: SourceLocation = #_sourceLocation) {
        let msgs = ValidationLog.all
        #expect(msgs.isEmpty, "validation messages: \(msgs.prefix(3))", sourceLocation: sourceLocation)
        ValidationLog.reset()
    }
}

/// Deterministic random numbers (LoopCore's SplitMix64) so failures reproduce.
struct SeededRandom {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { generator.next() }
    /// Uniform in [-scale, scale).
    mutating func float(_ scale: Float = 1) -> Float {
        (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
    mutating func floats(_ n: Int, _ scale: Float = 1) -> [Float] { (0..<n).map { _ in float(scale) } }
}

/// NMSE = sum((a-b)^2) / sum(b^2) with `b` the reference.
func nmse(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    return Parity.nmse(a, b)
}

/// Stores `values` as a tensor of `dtype` (16-bit types rounded as the checkpoints are).
func addWeight(_ store: WeightStore, _ name: String, _ dtype: DType, _ shape: [Int], _ values: [Float]) {
    store.add(name, dtype: dtype, shape: shape, floats: values)
}

@Suite(.enabled(if: GPU.available))
struct ValidationLayerTests {
    /// The GPU tests mean something only with the Khronos validation layer loaded.
    @Test func validationLayerIsLoaded() {
        #expect(GPU.context!.validationEnabled, "VK_LAYER_KHRONOS_validation is not installed (apt-get install vulkan-validationlayers)")
    }
}
