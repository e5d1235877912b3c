import Foundation
import LoopCore
import LoopVulkan

/// Entry points of the engine that need no model.
public enum Engine {
    /// Descriptions of the Vulkan devices, one block per device, each with the kernel
    /// configuration the device gets (its defaults, `LOOPVK_KERNELS`, then `kernels`).
    public static func devices(kernels: String? = nil) throws -> [String] {
        try VulkanContext.listDevices().map { d in
            let config: String
            do { config = try KernelConfig.resolve(for: d.traits, deviceName: d.name, override: kernels).description } catch { config = "unusable: \(error)" }
            return d.description + "\n    kernels: " + config
        }
    }

    /// Checkpoints whose weights are smaller than this run lavapipe without worker threads.
    public static let smallModelBytes: UInt64 = 64 << 20

    /// lavapipe (Mesa's CPU Vulkan driver) runs each dispatch on a pool of worker threads
    /// (`LP_NUM_THREADS`, default one per core), and waking the pool costs tens of microseconds
    /// per dispatch. A small model's token is all such dispatches and runs several times faster
    /// on the submitting thread alone (`LP_NUM_THREADS=0`); a large one needs every core's
    /// bandwidth (figures: README, "Performance"). So: when the user has not set
    /// `LP_NUM_THREADS` and the checkpoint's safetensors total under `smallModelBytes`, set it
    /// to 0. Call before the first Vulkan device is opened in the process (the driver reads it
    /// then); other drivers ignore it. Returns whether it set the variable.
    @discardableResult
    public static func tuneCPUDeviceThreads(forCheckpoint directory: URL) -> Bool {
        guard ProcessInfo.processInfo.environment["LP_NUM_THREADS"] == nil else { return false }
        let files = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: [.fileSizeKey])) ?? []
        let bytes = files.filter { $0.pathExtension == "safetensors" }
            .compactMap { try? $0.resourceValues(forKeys: [.fileSizeKey]).fileSize }.reduce(0, +)
        guard bytes > 0, UInt64(bytes) < smallModelBytes else { return false }
        return setenv("LP_NUM_THREADS", "0", 0) == 0
    }

    /// Loads shaders from `path` (GLSL files) instead of the embedded copies.
    public static func useShaderDirectory(_ path: String) {
        ShaderSource.overrideDirectory = path
    }
}
