import CVulkan

/// A failed Vulkan call: which call, and the VkResult it returned.
public struct VulkanError: Error, CustomStringConvertible {
    public let call: String
    public let result: Int32
    public let detail: String?

    init(_ call: String, _ result: VkResult, detail: String? = nil) {
        self.call = call
        self.result = result.rawValue
        self.detail = detail
    }

    init(_ call: String, message: String) {
        self.call = call
        self.result = 0
        self.detail = message
    }

    public var description: String {
        let name = VulkanError.resultName(result)
        if result == 0, let detail { return "\(call): \(detail)" }
        return "\(call) failed with \(name)" + (detail.map { " (\($0))" } ?? "")
    }

    static func resultName(_ r: Int32) -> String {
        switch r {
        case 0: return "VK_SUCCESS"
        case -1: return "VK_ERROR_OUT_OF_HOST_MEMORY"
        case -2: return "VK_ERROR_OUT_OF_DEVICE_MEMORY"
        case -3: return "VK_ERROR_INITIALIZATION_FAILED"
        case -4: return "VK_ERROR_DEVICE_LOST"
        case -5: return "VK_ERROR_MEMORY_MAP_FAILED"
        case -6: return "VK_ERROR_LAYER_NOT_PRESENT"
        case -7: return "VK_ERROR_EXTENSION_NOT_PRESENT"
        case -8: return "VK_ERROR_FEATURE_NOT_PRESENT"
        case -9: return "VK_ERROR_INCOMPATIBLE_DRIVER"
        case -10: return "VK_ERROR_TOO_MANY_OBJECTS"
        case -11: return "VK_ERROR_FORMAT_NOT_SUPPORTED"
        case -13: return "VK_ERROR_UNKNOWN"
        case 2: return "VK_TIMEOUT"
        default: return "VkResult(\(r))"
        }
    }
}

/// Throws a `VulkanError` naming `call` unless `result` is VK_SUCCESS.
@inline(__always)
func vkCheck(_ result: VkResult, _ call: @autoclosure () -> String) throws {
    if result != VK_SUCCESS { throw VulkanError(call(), result) }
}
