import CVulkan
import Foundation

/// A pool of GPU timestamp queries for one recorded command buffer. Timestamps are converted
/// to nanoseconds with the device's `timestampPeriod` and masked by the queue's
/// `timestampValidBits`.
final class TimestampPool {
    let context: VulkanContext
    let pool: VkQueryPool
    let capacity: Int
    private(set) var used = 0

    init(context: VulkanContext, capacity: Int) throws {
        self.context = context
        self.capacity = capacity
        var ci = VkQueryPoolCreateInfo()
        ci.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO
        ci.queryType = VK_QUERY_TYPE_TIMESTAMP
        ci.queryCount = UInt32(capacity)
        var p: VkQueryPool?
        try vkCheck(vkCreateQueryPool(context.device, &ci, nil, &p), "vkCreateQueryPool")
        pool = p!
        VulkanObjects.created("query pool")
    }

    deinit {
        VulkanObjects.destroyed("query pool")
        vkDestroyQueryPool(context.device, pool, nil)
    }

    /// Resets the pool (recorded at the start of the command buffer).
    func recordReset(_ cb: VkCommandBuffer) {
        vkCmdResetQueryPool(cb, pool, 0, UInt32(capacity))
    }

    /// Records a timestamp after all earlier work; returns its index.
    func recordTimestamp(_ cb: VkCommandBuffer) -> Int {
        precondition(used < capacity, "timestamp pool full")
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, pool, UInt32(used))
        used += 1
        return used - 1
    }

    /// The recorded timestamps in nanoseconds (after the command buffer completed).
    func read() throws -> [Double] {
        guard used > 0 else { return [] }
        var values = [UInt64](repeating: 0, count: used)
        try values.withUnsafeMutableBytes { raw in
            try vkCheck(vkGetQueryPoolResults(context.device, pool, 0, UInt32(used), raw.count, raw.baseAddress, 8,
                                              VK_QUERY_RESULT_64_BIT.rawValue | VK_QUERY_RESULT_WAIT_BIT.rawValue), "vkGetQueryPoolResults")
        }
        let bits = context.timestampValidBits
        let mask: UInt64 = bits >= 64 ? .max : (UInt64(1) << UInt64(bits)) - 1
        let period = Double(context.info.timestampPeriod)
        return values.map { Double($0 & mask) * period }
    }
}
