import Foundation
import LoopCore

/// Process-wide counts of live Vulkan object owners (contexts, memory blocks, pipelines,
/// recordings, timestamp pools), device memory held, and dispatches recorded / executed — for
/// leak checks and soak runs. Each owner's deinit destroys the Vulkan objects it made.
public enum VulkanObjects {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var counts: [String: Int] = [:]
    nonisolated(unsafe) private static var bytes: UInt64 = 0
    nonisolated(unsafe) private static var recorded = 0
    nonisolated(unsafe) private static var executed = 0
    nonisolated(unsafe) private static var reportRegistered = false

    static func created(_ kind: String, bytes b: UInt64 = 0) {
        lock.lock(); counts[kind, default: 0] += 1; bytes += b; lock.unlock()
    }
    static func destroyed(_ kind: String, bytes b: UInt64 = 0) {
        lock.lock(); counts[kind, default: 0] -= 1; bytes -= b; lock.unlock()
    }
    static func dispatchRecorded() { lock.lock(); recorded += 1; lock.unlock() }
    static func dispatchesExecuted(_ n: Int) { lock.lock(); executed += n; lock.unlock() }

    /// Live owners by kind (zero counts left out).
    public static var live: [String: Int] { lock.lock(); defer { lock.unlock() }; return counts.filter { $0.value != 0 } }
    public static var liveTotal: Int { live.values.reduce(0, +) }
    /// Bytes of VkDeviceMemory currently allocated by this process.
    public static var deviceMemoryBytes: UInt64 { lock.lock(); defer { lock.unlock() }; return bytes }
    public static var dispatchesRecordedTotal: Int { lock.lock(); defer { lock.unlock() }; return recorded }
    public static var dispatchesExecutedTotal: Int { lock.lock(); defer { lock.unlock() }; return executed }

    /// With `LOOPVK_DISPATCH_REPORT` set, prints the dispatch and validation totals at exit
    /// (how many dispatches a test suite ran under the validation layer).
    static func registerExitReport() {
        lock.lock(); defer { lock.unlock() }
        guard !reportRegistered, LoopEnvironment.dispatchReport else { return }
        reportRegistered = true
        atexit {
            let line = "loopvk: \(VulkanObjects.dispatchesRecordedTotal) dispatches recorded, \(VulkanObjects.dispatchesExecutedTotal) executed, \(ValidationLog.count) validation messages\n"
            FileHandle.standardError.write(line.data(using: .utf8)!)
        }
    }
}
