import CVulkan
import Foundation

/// One VkDeviceMemory allocation with one VkBuffer over all of it; tensors are sub-ranges.
final class MemoryBlock {
    let context: VulkanContext
    let memory: VkDeviceMemory
    let buffer: VkBuffer
    let size: UInt64
    let mapped: UnsafeMutableRawPointer?
    var used: UInt64 = 0

    /// `map`: map the memory when the chosen type is host-visible (false: leave device memory
    /// unmapped, so transfers take the staging path they take on a discrete GPU). `readback`:
    /// host-visible memory the host reads (staging), HOST_CACHED where the device has it:
    /// reads from write-combined memory (large-BAR device-local) are slow on the CPU.
    init(context: VulkanContext, size: UInt64, hostVisible: Bool, map: Bool = true, readback: Bool = false) throws {
        self.context = context
        let device = context.device
        var bci = VkBufferCreateInfo()
        bci.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO
        bci.size = size
        bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT.rawValue | VK_BUFFER_USAGE_TRANSFER_SRC_BIT.rawValue | VK_BUFFER_USAGE_TRANSFER_DST_BIT.rawValue | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT.rawValue
        // Conditional sections read their flag from an activation buffer.
        if context.beginConditionalRendering != nil { bci.usage |= VK_BUFFER_USAGE_CONDITIONAL_RENDERING_BIT_EXT.rawValue }
        bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE
        var buf: VkBuffer?
        try vkCheck(vkCreateBuffer(device, &bci, nil, &buf), "vkCreateBuffer(\(size) bytes)")
        var req = VkMemoryRequirements()
        vkGetBufferMemoryRequirements(device, buf, &req)
        let wanted: UInt32 = hostVisible
            ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT.rawValue
            : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue
        let preferred: UInt32 = wanted | VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue | (hostVisible ? 0 : VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT.rawValue)
        var mem: VkDeviceMemory?
        var chosenFlags: UInt32 = 0
        var lastResult = VK_ERROR_OUT_OF_DEVICE_MEMORY
        let choices = hostVisible && readback ? [wanted | VK_MEMORY_PROPERTY_HOST_CACHED_BIT.rawValue, wanted] : [preferred, wanted]
        for flags in choices {
            guard let type = MemoryBlock.findType(context.memoryProperties, bits: req.memoryTypeBits, flags: flags) else { continue }
            var ai = VkMemoryAllocateInfo()
            ai.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO
            ai.allocationSize = req.size
            ai.memoryTypeIndex = type.index
            lastResult = vkAllocateMemory(device, &ai, nil, &mem)
            if lastResult == VK_SUCCESS { chosenFlags = type.flags; break }
        }
        guard let mem else {
            vkDestroyBuffer(device, buf, nil)
            throw VulkanError("vkAllocateMemory", lastResult, detail: "\(size >> 20) MiB on \(context.info.name)")
        }
        try vkCheck(vkBindBufferMemory(device, buf, mem, 0), "vkBindBufferMemory")
        var ptr: UnsafeMutableRawPointer?
        let coherent = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT.rawValue
        if chosenFlags & coherent == coherent && (map || hostVisible) {
            try vkCheck(vkMapMemory(device, mem, 0, VkDeviceSize(VK_WHOLE_SIZE), 0, &ptr), "vkMapMemory")
        }
        // A CPU device's memory is the process's own: ask for transparent huge pages, so that
        // first touching gigabytes of weights takes 2 MiB faults instead of 4 KiB ones (where
        // the kernel allows it; a refusal changes nothing).
        if let ptr, context.info.kind == .cpu, size >= 4 << 20 {
            let huge = 2 << 20
            let start = (Int(bitPattern: ptr) + huge - 1) / huge * huge
            let end = (Int(bitPattern: ptr) + Int(size)) / huge * huge
            if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_HUGEPAGE) }
        }
        self.memory = mem
        self.buffer = buf!
        self.size = size
        self.mapped = ptr
        VulkanObjects.created("memory block", bytes: size)
    }

    deinit {
        VulkanObjects.destroyed("memory block", bytes: size)
        if mapped != nil { vkUnmapMemory(context.device, memory) }
        vkDestroyBuffer(context.device, buffer, nil)
        vkFreeMemory(context.device, memory, nil)
    }

    static func findType(_ mp: VkPhysicalDeviceMemoryProperties, bits: UInt32, flags: UInt32) -> (index: UInt32, flags: UInt32)? {
        withUnsafeBytes(of: mp.memoryTypes) { raw in
            let types = raw.bindMemory(to: VkMemoryType.self)
            for i in 0..<Int(mp.memoryTypeCount) where bits & (1 << UInt32(i)) != 0 {
                if types[i].propertyFlags & flags == flags { return (UInt32(i), types[i].propertyFlags) }
            }
            return nil
        }
    }
}

/// A sub-range of a memory block: what descriptors bind and uploads fill.
public struct BufferSlice {
    let block: MemoryBlock
    public let offset: UInt64
    public let size: UInt64
    var buffer: VkBuffer { block.buffer }
    var mapped: UnsafeMutableRawPointer? { block.mapped.map { $0 + Int(offset) } }
    public var isHostVisible: Bool { block.mapped != nil }
}

/// A host-visible staging buffer reused by the small transfers of one owner (a backend's
/// per-token reads and writes), so that none of them allocates memory where device memory is
/// not mapped (discrete GPUs).
public final class StagingCache {
    static let bytes = 1 << 20
    var block: MemoryBlock?
    let lock = NSLock()
    public init() {}
}

/// Sub-allocates tensors from large blocks (bump allocation; freed together with the arena).
public final class MemoryArena {
    let context: VulkanContext
    let hostVisible: Bool
    let map: Bool
    let blockSize: UInt64
    private(set) var blocks: [MemoryBlock] = []
    public private(set) var allocatedBytes: UInt64 = 0

    /// `map`: see `MemoryBlock.init` (device memory only; host-visible arenas are always mapped).
    public init(context: VulkanContext, hostVisible: Bool = false, blockSize: UInt64 = 32 << 20, map: Bool = true) {
        self.context = context
        self.hostVisible = hostVisible
        self.map = map
        self.blockSize = blockSize
    }

    /// `bytes` rounded up to 16 (whole texels, so a texel view may cover the last bytes),
    /// aligned to the device's storage-buffer and texel-buffer offset alignments (at least 256).
    public func allocate(_ bytes: Int) throws -> BufferSlice {
        let align = max(256, context.info.minStorageBufferOffsetAlignment, context.info.minTexelBufferOffsetAlignment)
        let size = max(UInt64(bytes + 15) & ~15, 16)
        if let b = blocks.last {
            let start = (b.used + align - 1) / align * align
            if start + size <= b.size {
                b.used = start + size
                allocatedBytes += size
                return BufferSlice(block: b, offset: start, size: size)
            }
        }
        let b = try MemoryBlock(context: context, size: max(blockSize, (size + align - 1) / align * align), hostVisible: hostVisible, map: map)
        blocks.append(b)
        b.used = size
        allocatedBytes += size
        return BufferSlice(block: b, offset: 0, size: size)
    }
}

extension VulkanContext {
    /// Records commands into a one-time command buffer, submits it and waits.
    func oneShot(_ body: (VkCommandBuffer) throws -> Void) throws {
        var ai = VkCommandBufferAllocateInfo()
        ai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO
        ai.commandPool = commandPool
        ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY
        ai.commandBufferCount = 1
        var cb: VkCommandBuffer?
        submitLock.lock(); defer { submitLock.unlock() }
        transferSubmissions += 1
        try vkCheck(vkAllocateCommandBuffers(device, &ai, &cb), "vkAllocateCommandBuffers")
        defer { vkFreeCommandBuffers(device, commandPool, 1, &cb) }
        var bi = VkCommandBufferBeginInfo()
        bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
        bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT.rawValue
        try vkCheck(vkBeginCommandBuffer(cb, &bi), "vkBeginCommandBuffer")
        try body(cb!)
        try vkCheck(vkEndCommandBuffer(cb), "vkEndCommandBuffer")
        try submitLocked([cb!])
    }

    /// Submits command buffers in one vkQueueSubmit and waits for them (caller holds submitLock).
    func submitLocked(_ cbs: [VkCommandBuffer]) throws {
        var fence: VkFence? = submitFence
        try vkCheck(vkResetFences(device, 1, &fence), "vkResetFences")
        let t0 = DispatchTime.now().uptimeNanoseconds
        var list: [VkCommandBuffer?] = cbs
        try list.withUnsafeMutableBufferPointer { lp in
            var si = VkSubmitInfo()
            si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO
            si.commandBufferCount = UInt32(lp.count)
            si.pCommandBuffers = UnsafePointer(lp.baseAddress)
            try vkCheck(vkQueueSubmit(queue, 1, &si, fence), "vkQueueSubmit")
        }
        let t1 = DispatchTime.now().uptimeNanoseconds
        defer {
            lastSubmitSeconds = Double(t1 - t0) / 1e9
            lastWaitSeconds = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9
        }
        // Finite waits so a hung device is reported rather than hanging the process.
        var waited = 0
        while true {
            let r = vkWaitForFences(device, 1, &fence, VkBool32(VK_TRUE), 1_000_000_000)
            if r == VK_SUCCESS { break }
            if r == VK_TIMEOUT {
                waited += 1
                if waited >= 120 { throw VulkanError("vkWaitForFences", r, detail: "GPU work did not finish in 120 s") }
                continue
            }
            try vkCheck(r, "vkWaitForFences")
        }
    }

    /// Submits and waits.
    func submit(_ cbs: [VkCommandBuffer]) throws {
        submitLock.lock(); defer { submitLock.unlock() }
        try submitLocked(cbs)
    }

    /// Copies host bytes into a slice (directly when mapped, else through a staging buffer:
    /// `cache`'s for small transfers).
    public func upload(_ src: UnsafeRawBufferPointer, to dst: BufferSlice, at offset: Int = 0, cache: StagingCache? = nil) throws {
        precondition(UInt64(offset + src.count) <= dst.size, "upload past the end of a buffer slice")
        guard src.count > 0 else { return }
        if let p = dst.mapped {
            (p + offset).copyMemory(from: src.baseAddress!, byteCount: src.count)
            return
        }
        let chunk = 64 << 20
        var done = 0
        try withStaging(min(chunk, src.count), cache: cache) { staging in
            while done < src.count {
                let n = min(chunk, src.count - done)
                staging.mapped!.copyMemory(from: src.baseAddress! + done, byteCount: n)
                try oneShot { cb in
                    var region = VkBufferCopy(srcOffset: 0, dstOffset: dst.offset + UInt64(offset + done), size: UInt64(n))
                    vkCmdCopyBuffer(cb, staging.buffer, dst.buffer, 1, &region)
                }
                done += n
            }
        }
    }

    /// Runs `body` with a host-visible staging buffer of at least `bytes`: `cache`'s reused one
    /// up to `StagingCache.bytes`, else a temporary one.
    func withStaging(_ bytes: Int, cache: StagingCache?, _ body: (MemoryBlock) throws -> Void) throws {
        guard let cache, bytes <= StagingCache.bytes else {
            try body(try MemoryBlock(context: self, size: UInt64(bytes), hostVisible: true, readback: true))
            return
        }
        cache.lock.lock(); defer { cache.lock.unlock() }
        if cache.block == nil { cache.block = try MemoryBlock(context: self, size: UInt64(StagingCache.bytes), hostVisible: true, readback: true) }
        try body(cache.block!)
    }

    /// Copies bytes of a slice back to the host.
    public func download(_ src: BufferSlice, offset: Int = 0, into dst: UnsafeMutableRawBufferPointer, cache: StagingCache? = nil) throws {
        guard dst.count > 0 else { return }
        precondition(UInt64(offset + dst.count) <= src.size, "download past the end of a buffer slice")
        if let p = src.mapped {
            dst.baseAddress!.copyMemory(from: p + offset, byteCount: dst.count)
            return
        }
        try withStaging(dst.count, cache: cache) { staging in
            try oneShot { cb in
                var region = VkBufferCopy(srcOffset: src.offset + UInt64(offset), dstOffset: 0, size: UInt64(dst.count))
                vkCmdCopyBuffer(cb, src.buffer, staging.buffer, 1, &region)
            }
            dst.baseAddress!.copyMemory(from: staging.mapped!, byteCount: dst.count)
        }
    }
}

extension VulkanContext {
    /// Zero-fills the first `byteCount` bytes (rounded up to 4) of a slice.
    public func fill(_ s: BufferSlice, byteCount: Int) throws {
        let n = min(UInt64((byteCount + 3) & ~3), s.size)
        if let p = s.mapped {
            memset(p, 0, Int(n))
            return
        }
        try oneShot { cb in vkCmdFillBuffer(cb, s.buffer, s.offset, n, 0) }
    }
}
