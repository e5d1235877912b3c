import CVulkan
import Foundation
import LoopCore

/// Messages the validation layer reported (warnings and errors), process-wide. Tests assert
/// that none arrived.
public enum ValidationLog {
    nonisolated(unsafe) private static var messages: [String] = []
    private static let lock = NSLock()

    public static var count: Int { lock.lock(); defer { lock.unlock() }; return messages.count }
    public static var all: [String] { lock.lock(); defer { lock.unlock() }; return messages }
    public static func reset() { lock.lock(); messages.removeAll(); lock.unlock() }

    static func record(_ m: String) {
        lock.lock(); messages.append(m); lock.unlock()
        if !LoopEnvironment.validationQuiet {
            FileHandle.standardError.write(("[vulkan validation] " + m + "\n").data(using: .utf8)!)
        }
    }
}

let debugCallback: PFN_vkDebugUtilsMessengerCallbackEXT = { severity, _, data, _ in
    let sev = severity.rawValue
    if sev >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT.rawValue {
        let text = data?.pointee.pMessage.map { String(cString: $0) } ?? "(no message)"
        ValidationLog.record(text)
    }
    return VkBool32(VK_FALSE)
}
