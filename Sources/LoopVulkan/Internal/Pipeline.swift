import CVulkan
import Foundation

/// How a shader binding reads its buffer range.
public enum BindingKind: Sendable, Equatable {
    /// `VK_DESCRIPTOR_TYPE_STORAGE_BUFFER`: a `buffer` block in GLSL.
    case storageBuffer
    /// `VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER` over a `VkBufferView` of format
    /// `R32G32B32A32_UINT`: a `usamplerBuffer` in GLSL, one 16-byte texel per `texelFetch`.
    /// The range's offset must be a multiple of `minTexelBufferOffsetAlignment`, its size a
    /// multiple of 16 bytes and at most `maxTexelBufferElements` texels.
    case uniformTexels

    var descriptorType: VkDescriptorType {
        switch self {
        case .storageBuffer: return VK_DESCRIPTOR_TYPE_STORAGE_BUFFER
        case .uniformTexels: return VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
        }
    }
}

/// A compute pipeline for one shader file + defines + workgroup size: its descriptor set
/// layout (one binding per entry of `kinds`, at bindings 0..N-1) and a push-constant block.
/// Specialization constants 0 and 1 are the workgroup size; `constants` fill ids 2, 3, ...
public final class ComputePipeline {
    let context: VulkanContext
    public let name: String
    public let kinds: [BindingKind]
    public var bindings: Int { kinds.count }
    public let pushBytes: Int
    public let localSize: (Int, Int)
    public let constants: [UInt32]
    /// The subgroup size the pipeline was created with (VkPipelineShaderStageRequiredSubgroupSizeCreateInfo), nil = the driver's choice.
    public let requiredSubgroupSize: Int?
    let setLayout: VkDescriptorSetLayout
    let layout: VkPipelineLayout
    let pipeline: VkPipeline

    init(context: VulkanContext, shader: String, defines: [String: String], kinds: [BindingKind], pushBytes: Int, localSize: (Int, Int),
         constants: [UInt32] = [], subgroupSize: Int? = nil) throws {
        self.context = context
        // Only where the device can require sizes for compute shaders, the size is in range and
        // the workgroup fits in maxComputeWorkgroupSubgroups subgroups of it.
        let info = context.info
        let required = subgroupSize.flatMap { sg -> Int? in
            guard info.subgroupSizeControl, sg >= info.minSubgroupSize, sg <= info.maxSubgroupSize,
                  localSize.0 * localSize.1 <= info.maxComputeWorkgroupSubgroups * sg else { return nil }
            return sg
        }
        self.requiredSubgroupSize = required
        self.name = shader
        self.kinds = kinds
        self.pushBytes = pushBytes
        self.localSize = localSize
        self.constants = constants
        let device = context.device
        let code = try ShaderCompiler.shared.spirv(shader, defines: defines)

        var module: VkShaderModule?
        try code.withUnsafeBufferPointer { cp in
            var mci = VkShaderModuleCreateInfo()
            mci.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO
            mci.codeSize = cp.count * 4
            mci.pCode = cp.baseAddress
            try vkCheck(vkCreateShaderModule(device, &mci, nil, &module), "vkCreateShaderModule(\(shader))")
        }
        defer { vkDestroyShaderModule(device, module, nil) }

        var lbs = kinds.enumerated().map { i, kind -> VkDescriptorSetLayoutBinding in
            var b = VkDescriptorSetLayoutBinding()
            b.binding = UInt32(i)
            b.descriptorType = kind.descriptorType
            b.descriptorCount = 1
            b.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT.rawValue
            return b
        }
        var sl: VkDescriptorSetLayout?
        try lbs.withUnsafeMutableBufferPointer { lp in
            var ci = VkDescriptorSetLayoutCreateInfo()
            ci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO
            ci.bindingCount = UInt32(lp.count)
            ci.pBindings = UnsafePointer(lp.baseAddress)
            try vkCheck(vkCreateDescriptorSetLayout(device, &ci, nil, &sl), "vkCreateDescriptorSetLayout")
        }
        setLayout = sl!

        var range = VkPushConstantRange(stageFlags: VK_SHADER_STAGE_COMPUTE_BIT.rawValue, offset: 0, size: UInt32(max(pushBytes, 4)))
        var pl: VkPipelineLayout?
        var slOpt: VkDescriptorSetLayout? = setLayout
        let plResult = withUnsafePointer(to: &slOpt) { slp in
            var ci = VkPipelineLayoutCreateInfo()
            ci.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO
            ci.setLayoutCount = 1
            ci.pSetLayouts = slp
            ci.pushConstantRangeCount = pushBytes > 0 ? 1 : 0
            return withUnsafePointer(to: &range) { rp in
                ci.pPushConstantRanges = rp
                return vkCreatePipelineLayout(device, &ci, nil, &pl)
            }
        }
        if plResult != VK_SUCCESS {
            vkDestroyDescriptorSetLayout(device, setLayout, nil)
            throw VulkanError("vkCreatePipelineLayout", plResult)
        }
        layout = pl!
        let pipelineLayout = pl!

        // Specialization constants 0 and 1: workgroup size x and y; then the shader's own.
        var specData: [UInt32] = [UInt32(localSize.0), UInt32(localSize.1)] + constants
        var entries = specData.indices.map { VkSpecializationMapEntry(constantID: UInt32($0), offset: UInt32($0 * 4), size: 4) }
        var pipe: VkPipeline?
        let entryName = strdup("main")!
        defer { free(entryName) }
        let r: VkResult = specData.withUnsafeMutableBytes { sd in
            entries.withUnsafeMutableBufferPointer { ep in
                var spec = VkSpecializationInfo(mapEntryCount: UInt32(ep.count), pMapEntries: UnsafePointer(ep.baseAddress), dataSize: sd.count, pData: UnsafeRawPointer(sd.baseAddress))
                var sizeInfo = VkPipelineShaderStageRequiredSubgroupSizeCreateInfoEXT()
                sizeInfo.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO_EXT
                sizeInfo.requiredSubgroupSize = UInt32(required ?? 0)
                return withUnsafePointer(to: &spec) { spp in withUnsafeMutablePointer(to: &sizeInfo) { zp in
                    var stage = VkPipelineShaderStageCreateInfo()
                    stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO
                    stage.stage = VK_SHADER_STAGE_COMPUTE_BIT
                    stage.module = module
                    stage.pName = UnsafePointer(entryName)
                    stage.pSpecializationInfo = spp
                    if let required {
                        stage.pNext = UnsafeRawPointer(zp)
                        // Full subgroups where the workgroup's x is a whole number of them.
                        if info.computeFullSubgroups && localSize.0 % required == 0 {
                            stage.flags |= VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT_EXT.rawValue
                        }
                    }
                    var ci = VkComputePipelineCreateInfo()
                    ci.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO
                    ci.stage = stage
                    ci.layout = pipelineLayout
                    return vkCreateComputePipelines(device, nil, 1, &ci, nil, &pipe)
                } }
            }
        }
        if r != VK_SUCCESS {
            vkDestroyPipelineLayout(device, pipelineLayout, nil)
            vkDestroyDescriptorSetLayout(device, setLayout, nil)
            throw VulkanError("vkCreateComputePipelines(\(shader))", r)
        }
        pipeline = pipe!
        VulkanObjects.created("pipeline")
    }

    deinit {
        VulkanObjects.destroyed("pipeline")
        vkDestroyPipeline(context.device, pipeline, nil)
        vkDestroyPipelineLayout(context.device, layout, nil)
        vkDestroyDescriptorSetLayout(context.device, setLayout, nil)
    }
}

/// A buffer range bound at one binding of a dispatch.
public struct Binding {
    let slice: BufferSlice
    let offset: UInt64
    let range: UInt64
    /// The whole slice.
    public init(_ slice: BufferSlice) { self.slice = slice; self.offset = 0; self.range = slice.size }
    /// Bytes [offset, offset + range) of the slice.
    public init(_ slice: BufferSlice, offset: UInt64, range: UInt64) { self.slice = slice; self.offset = offset; self.range = range }
}

/// A command buffer recorded once and replayed; owns the descriptor sets and the buffer views
/// its dispatches use (destroyed with it).
public final class RecordedCommands {
    let context: VulkanContext
    let commandBuffer: VkCommandBuffer
    private let commandPool: VkCommandPool
    private var pools: [VkDescriptorPool] = []
    private var setsLeft = 0
    public private(set) var dispatchCount = 0
    public private(set) var barrierCount = 0
    private var ended = false
    /// Pipelines referenced by the recording are kept alive with it.
    private var pipelines: [ObjectIdentifier: ComputePipeline] = [:]
    /// With profiling: a timestamp at the start and after every dispatch (exact mode, each
    /// dispatch serialised by a barrier) or around the whole recording (light mode).
    private var timestamps: TimestampPool?
    public let profile: ProfileMode?
    /// Labels of the timestamped intervals, in order.
    public private(set) var intervalLabels: [String] = []
    /// What the next dispatches serve (the op kind); names their profiling intervals.
    public var label = ""

    /// Buffer views made for texel bindings, one per distinct (buffer, offset, range).
    private var views: [ViewKey: VkBufferView] = [:]
    /// Memory blocks the views point into are kept alive with them.
    private var viewBlocks: [ObjectIdentifier: MemoryBlock] = [:]
    public var bufferViewCount: Int { views.count }

    private struct ViewKey: Hashable {
        let block: ObjectIdentifier
        let offset: UInt64
        let range: UInt64
    }

    init(context: VulkanContext, profile: ProfileMode? = nil, capacity: Int = 4096) throws {
        self.context = context
        self.profile = context.supportsTimestamps ? profile : nil
        // A command pool of its own: recordings made on different threads never share a pool
        // (command pools need external synchronisation).
        var pci = VkCommandPoolCreateInfo()
        pci.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO
        pci.queueFamilyIndex = context.queueFamily
        var pool: VkCommandPool?
        try vkCheck(vkCreateCommandPool(context.device, &pci, nil, &pool), "vkCreateCommandPool")
        commandPool = pool!
        var ai = VkCommandBufferAllocateInfo()
        ai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO
        ai.commandPool = pool
        ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY
        ai.commandBufferCount = 1
        var cb: VkCommandBuffer?
        let r = vkAllocateCommandBuffers(context.device, &ai, &cb)
        if r != VK_SUCCESS { vkDestroyCommandPool(context.device, pool, nil) }
        try vkCheck(r, "vkAllocateCommandBuffers")
        commandBuffer = cb!
        VulkanObjects.created("recording")
        var bi = VkCommandBufferBeginInfo()
        bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
        // A greedy chain (VulkanBackend.runGreedyChain) lists a token's sections once per token
        // in one submission.
        bi.flags = VK_COMMAND_BUFFER_USAGE_SIMULTANEOUS_USE_BIT.rawValue
        try vkCheck(vkBeginCommandBuffer(commandBuffer, &bi), "vkBeginCommandBuffer")
        if self.profile != nil {
            let pool = try TimestampPool(context: context, capacity: capacity)
            pool.recordReset(commandBuffer)
            _ = pool.recordTimestamp(commandBuffer)
            timestamps = pool
        }
    }

    deinit {
        VulkanObjects.destroyed("recording")
        vkDestroyCommandPool(context.device, commandPool, nil)    // frees the command buffer too
        for p in pools { vkDestroyDescriptorPool(context.device, p, nil) }
        for v in views.values { vkDestroyBufferView(context.device, v, nil) }
    }

    private func allocateSet(_ p: ComputePipeline) throws -> VkDescriptorSet {
        if setsLeft == 0 {
            let sets = 256
            var sizes = [VkDescriptorPoolSize(type: VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount: UInt32(sets * 8)),
                         VkDescriptorPoolSize(type: VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, descriptorCount: UInt32(sets * 4))]
            var ci = VkDescriptorPoolCreateInfo()
            ci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO
            ci.maxSets = UInt32(sets)
            ci.poolSizeCount = UInt32(sizes.count)
            var pool: VkDescriptorPool?
            try sizes.withUnsafeMutableBufferPointer { sp in
                ci.pPoolSizes = UnsafePointer(sp.baseAddress)
                try vkCheck(vkCreateDescriptorPool(context.device, &ci, nil, &pool), "vkCreateDescriptorPool")
            }
            pools.append(pool!)
            setsLeft = sets
        }
        var set: VkDescriptorSet?
        var layout: VkDescriptorSetLayout? = p.setLayout
        var ai = VkDescriptorSetAllocateInfo()
        ai.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO
        ai.descriptorPool = pools.last
        ai.descriptorSetCount = 1
        let r = withUnsafePointer(to: &layout) { lp in
            ai.pSetLayouts = lp
            return vkAllocateDescriptorSets(context.device, &ai, &set)
        }
        if r == VK_ERROR_OUT_OF_POOL_MEMORY || r == VK_ERROR_FRAGMENTED_POOL {
            setsLeft = 0
            return try allocateSet(p)
        }
        try vkCheck(r, "vkAllocateDescriptorSets")
        setsLeft -= 1
        return set!
    }

    /// A `R32G32B32A32_UINT` view of a binding's range (vkCreateBufferView), made once per
    /// recording and range.
    private func view(_ b: Binding, for p: ComputePipeline) throws -> VkBufferView {
        let info = context.info
        let offset = b.slice.offset + b.offset
        guard offset % max(info.minTexelBufferOffsetAlignment, 1) == 0, b.range > 0, b.range % 16 == 0,
              b.range / 16 <= info.maxTexelBufferElements, offset + b.range <= b.slice.block.size else {
            throw VulkanError("dispatch(\(p.name))", message: "texel binding at byte \(offset) of \(b.range) bytes: offset must be a multiple of \(info.minTexelBufferOffsetAlignment), size a multiple of 16 of at most \(info.maxTexelBufferElements) texels")
        }
        let key = ViewKey(block: ObjectIdentifier(b.slice.block), offset: offset, range: b.range)
        if let v = views[key] { return v }
        var ci = VkBufferViewCreateInfo()
        ci.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO
        ci.buffer = b.slice.buffer
        ci.format = VK_FORMAT_R32G32B32A32_UINT
        ci.offset = offset
        ci.range = b.range
        var v: VkBufferView?
        try vkCheck(vkCreateBufferView(context.device, &ci, nil, &v), "vkCreateBufferView")
        views[key] = v!
        viewBlocks[ObjectIdentifier(b.slice.block)] = b.slice.block
        return v!
    }

    /// Records one dispatch: binds `p`, its buffers (as storage buffers or texel views, as the
    /// pipeline declares) and push constants, dispatches `groups`.
    /// The push constants must fill the pipeline's block exactly: a short or long block is an
    /// error, never padded.
    public func dispatch(_ p: ComputePipeline, _ bindings: [Binding], push: [UInt32], groups: (Int, Int, Int)) throws {
        guard bindings.count == p.bindings else {
            throw VulkanError("dispatch(\(p.name))", message: "\(bindings.count) bindings given, \(p.bindings) declared")
        }
        guard push.count * 4 == p.pushBytes else {
            throw VulkanError("dispatch(\(p.name))", message: "\(push.count * 4) bytes of push constants given, the block has \(p.pushBytes)")
        }
        let limits = context.info.maxWorkGroupCount
        guard groups.0 <= limits[0], groups.1 <= limits[1], groups.2 <= limits[2] else {
            throw VulkanError("dispatch(\(p.name))", message: "\(groups.0) x \(groups.1) x \(groups.2) workgroups; the device allows at most \(limits[0]) x \(limits[1]) x \(limits[2])")
        }
        if profile == .exact && dispatchCount > 0 { barrier() }    // serialise: each interval is one dispatch
        let limit = context.info.maxStorageBufferRange
        for (b, kind) in zip(bindings, p.kinds) where kind == .storageBuffer && b.range > limit {
            throw VulkanError("dispatch(\(p.name))", message: "a binding of \(b.range) bytes exceeds maxStorageBufferRange \(limit)")
        }
        var texelViews: [VkBufferView?] = []
        for (b, kind) in zip(bindings, p.kinds) {
            texelViews.append(kind == .uniformTexels ? try view(b, for: p) : nil)
        }
        pipelines[ObjectIdentifier(p)] = p
        let set = try allocateSet(p)
        var infos = bindings.map { VkDescriptorBufferInfo(buffer: $0.slice.buffer, offset: $0.slice.offset + $0.offset, range: max($0.range, 4)) }
        infos.withUnsafeMutableBufferPointer { ip in
            texelViews.withUnsafeMutableBufferPointer { vp in
                var writes = (0..<ip.count).map { i -> VkWriteDescriptorSet in
                    var w = VkWriteDescriptorSet()
                    w.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET
                    w.dstSet = set
                    w.dstBinding = UInt32(i)
                    w.descriptorCount = 1
                    w.descriptorType = p.kinds[i].descriptorType
                    if p.kinds[i] == .uniformTexels {
                        w.pTexelBufferView = UnsafePointer(vp.baseAddress! + i)
                    } else {
                        w.pBufferInfo = UnsafePointer(ip.baseAddress! + i)
                    }
                    return w
                }
                vkUpdateDescriptorSets(context.device, UInt32(writes.count), &writes, 0, nil)
            }
        }
        vkCmdBindPipeline(commandBuffer, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline)
        var setOpt: VkDescriptorSet? = set
        vkCmdBindDescriptorSets(commandBuffer, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &setOpt, 0, nil)
        if p.pushBytes > 0 {
            var data = push
            vkCmdPushConstants(commandBuffer, p.layout, VK_SHADER_STAGE_COMPUTE_BIT.rawValue, 0, UInt32(p.pushBytes), &data)
        }
        vkCmdDispatch(commandBuffer, UInt32(groups.0), UInt32(groups.1), UInt32(groups.2))
        dispatchCount += 1
        VulkanObjects.dispatchRecorded()
        if profile == .exact, let t = timestamps {
            _ = t.recordTimestamp(commandBuffer)
            intervalLabels.append(label.isEmpty ? p.name : label)
        }
    }

    /// A global compute->compute memory barrier (a later dispatch reads what an earlier wrote).
    public func barrier() {
        var mb = VkMemoryBarrier()
        mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER
        mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_SHADER_READ_BIT.rawValue
        mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT.rawValue | VK_ACCESS_SHADER_WRITE_BIT.rawValue
        vkCmdPipelineBarrier(commandBuffer, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue,
                             0, 1, &mb, 0, nil, 0, nil)
        barrierCount += 1
    }

    /// Starts commands that run only when the 32-bit value at `byteOffset` of `slice` is
    /// non-zero when they execute (VK_EXT_conditional_rendering; it affects dispatches).
    public func beginCondition(_ slice: BufferSlice, byteOffset: Int) throws {
        guard let begin = context.beginConditionalRendering else {
            throw VulkanError("vkCmdBeginConditionalRenderingEXT", message: "\(context.info.name) lacks VK_EXT_conditional_rendering")
        }
        var ci = VkConditionalRenderingBeginInfoEXT()
        ci.sType = VK_STRUCTURE_TYPE_CONDITIONAL_RENDERING_BEGIN_INFO_EXT
        ci.buffer = slice.buffer
        ci.offset = slice.offset + UInt64(byteOffset)
        begin(commandBuffer, &ci)
    }

    public func endCondition() {
        context.endConditionalRendering?(commandBuffer)
    }

    /// Ends recording, with a barrier that makes shader writes visible to the host and to
    /// whatever the next submission runs (conditions of later sections included).
    public func end() throws {
        guard !ended else { return }
        if profile == .light, let t = timestamps {
            _ = t.recordTimestamp(commandBuffer)
            intervalLabels.append("all")
        }
        var mb = VkMemoryBarrier()
        mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER
        mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_SHADER_READ_BIT.rawValue
        mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT.rawValue | VK_ACCESS_SHADER_READ_BIT.rawValue | VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_READ_BIT.rawValue
        var dstStages = VK_PIPELINE_STAGE_HOST_BIT.rawValue | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue | VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue
        if context.beginConditionalRendering != nil {
            mb.dstAccessMask |= VK_ACCESS_CONDITIONAL_RENDERING_READ_BIT_EXT.rawValue
            dstStages |= VK_PIPELINE_STAGE_CONDITIONAL_RENDERING_BIT_EXT.rawValue
        }
        vkCmdPipelineBarrier(commandBuffer, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue, dstStages, 0, 1, &mb, 0, nil, 0, nil)
        try vkCheck(vkEndCommandBuffer(commandBuffer), "vkEndCommandBuffer")
        ended = true
    }
}

/// How recorded sections are timed: `exact` serialises dispatches and timestamps each one;
/// `light` timestamps only the start and end of each section (true per-pass time).
public enum ProfileMode: String, Sendable, CaseIterable { case exact, light }

extension RecordedCommands {
    /// Durations (ns) of the timestamped intervals of the last execution, with their labels.
    public func intervals() throws -> [(label: String, ns: Double)] {
        guard let t = timestamps else { return [] }
        let ts = try t.read()
        return zip(intervalLabels, zip(ts, ts.dropFirst())).map { ($0, $1.1 - $1.0) }
    }
}

extension VulkanContext {
    /// Submits recorded command buffers together in one vkQueueSubmit and waits.
    public func submit(_ recorded: [RecordedCommands]) throws {
        try submit(recorded.map(\.commandBuffer))
    }

    /// A pipeline whose `bindings` are all storage buffers.
    public func makePipeline(_ shader: String, defines: [String: String] = [:], bindings: Int, pushBytes: Int, localSize: (Int, Int) = (64, 1)) throws -> ComputePipeline {
        try ComputePipeline(context: self, shader: shader, defines: defines, kinds: Array(repeating: .storageBuffer, count: bindings),
                            pushBytes: pushBytes, localSize: localSize)
    }

    /// A pipeline with one binding per entry of `kinds` and specialization constants 2, 3, ...
    /// `subgroupSize`: the size the shader assumes, required where the device allows it.
    public func makePipeline(_ shader: String, defines: [String: String] = [:], kinds: [BindingKind], pushBytes: Int, localSize: (Int, Int) = (64, 1),
                             constants: [UInt32], subgroupSize: Int? = nil) throws -> ComputePipeline {
        try ComputePipeline(context: self, shader: shader, defines: defines, kinds: kinds, pushBytes: pushBytes, localSize: localSize, constants: constants,
                            subgroupSize: subgroupSize)
    }

    public func record(profile: ProfileMode? = nil, capacity: Int = 4096) throws -> RecordedCommands {
        try RecordedCommands(context: self, profile: profile, capacity: capacity)
    }
}
