import Foundation
import LoopCore
import LoopVulkan

/// Entry points of the engine that need no model.
public enum Engine {
    /// Descriptions of the Vulkan devices, one block per device.
    public static func devices() throws -> [String] {
        try VulkanContext.listDevices().map(\.description)
    }

    /// Loads shaders from `path` (GLSL files) instead of the embedded copies.
    public static func useShaderDirectory(_ path: String) {
        ShaderSource.overrideDirectory = path
    }
}
