import CVulkan
import Foundation
import LoopCore

/// What `loopvk devices` prints about a physical device.
public struct DeviceInfo: Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable { case discrete = "discrete GPU", integrated = "integrated GPU", virtual = "virtual GPU", cpu = "CPU", other = "other" }
    public var index: Int
    public var name: String
    public var kind: Kind
    public var apiVersion: String
    public var driverVersion: String
    public var driverName: String
    public var heaps: [(size: UInt64, deviceLocal: Bool)]
    public var subgroupSize: Int
    /// Compute shaders may use subgroup shuffles (the subgroup-only attention needs them).
    public var subgroupShuffle: Bool
    public var maxStorageBufferRange: UInt64
    public var minStorageBufferOffsetAlignment: UInt64
    public var maxComputeSharedMemory: Int
    public var storageBuffer16Bit: Bool
    public var shaderFloat16: Bool
    public var timestampPeriod: Float
    /// Texels (of any format) one buffer view may span.
    public var maxTexelBufferElements: UInt64
    /// Byte alignment of a buffer view's offset.
    public var minTexelBufferOffsetAlignment: UInt64
    /// Whether `R32G32B32A32_UINT` has `VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT` (the
    /// texel read path needs it).
    public var uniformTexelBuffers: Bool
    /// VK_EXT_conditional_rendering with its feature: sections that run only when a device
    /// value is non-zero (exit decisions taken on the device).
    public var conditionalRendering: Bool = false
    /// Storage buffers one compute shader may bind (the smallest of the per-stage, per-set and
    /// per-stage-resources limits).
    public var maxStorageBuffersPerStage: Int = 4
    /// Workgroups one dispatch may launch in x, y and z (`maxComputeWorkGroupCount`; 65,535 in
    /// x on lavapipe and Intel).
    public var maxWorkGroupCount: [Int] = [65535, 65535, 65535]
    /// Subgroup sizes a compute pipeline may require (VK_EXT_subgroup_size_control; both equal
    /// `subgroupSize` without it).
    public var minSubgroupSize: Int = 0
    public var maxSubgroupSize: Int = 0
    /// VK_EXT_subgroup_size_control with `subgroupSizeControl` for compute shaders: pipelines
    /// that assume `subgroupSize` require it (VkPipelineShaderStageRequiredSubgroupSizeCreateInfo).
    public var subgroupSizeControl = false
    /// `computeFullSubgroups`: such pipelines also get REQUIRE_FULL_SUBGROUPS where their
    /// workgroup is a whole number of subgroups.
    public var computeFullSubgroups = false
    /// The most subgroups one workgroup of a required subgroup size may hold.
    public var maxComputeWorkgroupSubgroups = 0
    /// Clustered subgroup operations in compute shaders (the storage attention's key clusters).
    public var subgroupClustered = false
    /// Compute units (NVIDIA SMs via VK_NV_shader_sm_builtins, AMD CUs via
    /// VK_AMD_shader_core_properties, a CPU device's threads) and where the number came from.
    public var computeUnits = 16
    public var computeUnitsSource = "fallback"

    /// What the kernel configuration's defaults depend on (see KernelConfig.defaults).
    public var traits: DeviceTraits {
        DeviceTraits(kind: kind == .cpu ? .cpu : .gpu, subgroupSize: subgroupSize, subgroupShuffle: subgroupShuffle,
                     uniformTexelBuffers: uniformTexelBuffers, conditionalSections: conditionalRendering,
                     storage16Bit: storageBuffer16Bit, threads: kind == .cpu ? DeviceTraits.cpuDeviceThreads() : 1,
                     computeUnits: kind == .cpu ? DeviceTraits.cpuDeviceThreads() : computeUnits)
    }

    var rank: Int {
        switch kind { case .discrete: return 0; case .integrated: return 1; case .virtual: return 2; case .cpu: return 3; case .other: return 4 }
    }

    public var description: String {
        var s = "[\(index)] \(name)\n"
        s += "    type: \(kind.rawValue)\n    Vulkan API: \(apiVersion)\n    driver: \(driverName) \(driverVersion)\n"
        for (i, h) in heaps.enumerated() {
            s += "    heap \(i): \(String(format: "%.2f", Double(h.size) / 1_073_741_824)) GiB\(h.deviceLocal ? " (device-local)" : "")\n"
        }
        s += "    subgroup size: \(subgroupSize) (min \(minSubgroupSize), max \(maxSubgroupSize); required per pipeline: \(subgroupSizeControl ? "yes" : "no")"
        s += ", full subgroups: \(computeFullSubgroups ? "yes" : "no"), clustered ops: \(subgroupClustered ? "yes" : "no"))\n"
        s += "    compute units: \(kind == .cpu ? "\(traits.computeUnits) (device threads)" : "\(computeUnits) (\(computeUnitsSource))")\n"
        s += "    max storage buffer range: \(maxStorageBufferRange) bytes (\(maxStorageBufferRange >> 20) MiB)\n"
        s += "    16-bit storage: \(storageBuffer16Bit ? "yes" : "no"), fp16 arithmetic: \(shaderFloat16 ? "yes" : "no")\n"
        s += "    uniform texel buffers (RGBA32UI): \(uniformTexelBuffers ? "yes, up to \(maxTexelBufferElements) texels" : "no")"
        return s
    }
}

/// The Vulkan instance, one logical device with a compute queue, and a command pool.
/// Every object made from it keeps a strong reference to it, so it is destroyed last.
public final class VulkanContext: @unchecked Sendable {
    let instance: VkInstance
    let physical: VkPhysicalDevice
    let device: VkDevice
    let queue: VkQueue
    let queueFamily: UInt32
    let commandPool: VkCommandPool
    private var messenger: VkDebugUtilsMessengerEXT?
    public let info: DeviceInfo
    public let validationEnabled: Bool
    let memoryProperties: VkPhysicalDeviceMemoryProperties
    let submitLock = NSLock()
    /// The fence every submission waits on (submissions are serialised by `submitLock`).
    let submitFence: VkFence
    /// Valid bits of the compute queue's timestamps (0 = no timestamps).
    let timestampValidBits: UInt32
    /// Host time of the last submission: the vkQueueSubmit call and the wait for its fence.
    public internal(set) var lastSubmitSeconds: Double = 0
    /// Submissions made for transfers and fills (staging copies, zero fills) on this device.
    public internal(set) var transferSubmissions = 0
    public internal(set) var lastWaitSeconds: Double = 0
    public var supportsTimestamps: Bool { timestampValidBits > 0 && info.timestampPeriod > 0 }
    /// VK_EXT_conditional_rendering entry points (nil when the device lacks the extension).
    let beginConditionalRendering: PFN_vkCmdBeginConditionalRenderingEXT?
    let endConditionalRendering: PFN_vkCmdEndConditionalRenderingEXT?

    /// Set by tests that open devices through `Model` and want the validation layer on them
    /// (nil: `LOOPVK_VALIDATION` decides).
    nonisolated(unsafe) public static var validationOverride: Bool?

    /// True when validation should be on: `validationOverride`, else `LOOPVK_VALIDATION=1`.
    public static var validationRequested: Bool {
        if let v = validationOverride { return v }
        return LoopEnvironment.validation ?? false
    }

    /// Lists the physical devices (creates and destroys a bare instance).
    public static func listDevices() throws -> [DeviceInfo] {
        let inst = try makeInstance(validation: false).instance
        defer { vkDestroyInstance(inst, nil) }
        return try enumerate(inst).map(\.1)
    }

    /// Opens a device. `deviceName`: a case-insensitive substring of the device name, or an
    /// index; nil picks `LOOPVK_DEVICE` from the environment, else discrete > integrated > CPU.
    public init(deviceName: String? = nil, validation: Bool = VulkanContext.validationRequested) throws {
        let (inst, layerOn) = try Self.makeInstance(validation: validation)
        instance = inst
        validationEnabled = layerOn
        var ok = false
        defer { if !ok { vkDestroyInstance(inst, nil) } }

        if layerOn, let create = Self.instanceProc(inst, "vkCreateDebugUtilsMessengerEXT", PFN_vkCreateDebugUtilsMessengerEXT.self) {
            var ci = VkDebugUtilsMessengerCreateInfoEXT()
            ci.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT
            ci.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT.rawValue | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT.rawValue
            ci.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT.rawValue | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT.rawValue | VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT.rawValue
            ci.pfnUserCallback = debugCallback
            var m: VkDebugUtilsMessengerEXT?
            try vkCheck(create(inst, &ci, nil, &m), "vkCreateDebugUtilsMessengerEXT")
            messenger = m
        }

        let devices = try Self.enumerate(inst)
        guard !devices.isEmpty else { throw VulkanError("vkEnumeratePhysicalDevices", message: "no Vulkan device found (install a driver, e.g. mesa-vulkan-drivers for lavapipe, or use --cpu)") }
        let want = deviceName ?? LoopEnvironment.device
        let chosen: (VkPhysicalDevice, DeviceInfo)
        if let want, !want.isEmpty {
            if let idx = Int(want), devices.indices.contains(idx) {
                chosen = devices[idx]
            } else if let m = devices.first(where: { $0.1.name.lowercased().contains(want.lowercased()) }) {
                chosen = m
            } else {
                throw VulkanError("device selection", message: "no Vulkan device matches \"\(want)\"; available: " + devices.map { "\($0.1.index): \($0.1.name)" }.joined(separator: ", "))
            }
        } else {
            chosen = devices.min { $0.1.rank < $1.1.rank || ($0.1.rank == $1.1.rank && $0.1.index < $1.1.index) }!
        }
        physical = chosen.0
        info = chosen.1

        // A queue family with compute.
        var qCount: UInt32 = 0
        vkGetPhysicalDeviceQueueFamilyProperties(physical, &qCount, nil)
        var qProps = [VkQueueFamilyProperties](repeating: VkQueueFamilyProperties(), count: Int(qCount))
        vkGetPhysicalDeviceQueueFamilyProperties(physical, &qCount, &qProps)
        guard let family = qProps.indices.first(where: { qProps[$0].queueFlags & VK_QUEUE_COMPUTE_BIT.rawValue != 0 }) else {
            throw VulkanError("vkGetPhysicalDeviceQueueFamilyProperties", message: "device \(info.name) has no compute queue")
        }
        queueFamily = UInt32(family)
        timestampValidBits = qProps[family].timestampValidBits
        let physical = self.physical

        var priority: Float = 1
        var qci = VkDeviceQueueCreateInfo()
        qci.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO
        qci.queueFamilyIndex = UInt32(family)
        qci.queueCount = 1
        var dev: VkDevice?
        let conditional = info.conditionalRendering
        let sizeControl = info.subgroupSizeControl
        let extName = strdup("VK_EXT_conditional_rendering")!, sizeExtName = strdup("VK_EXT_subgroup_size_control")!
        defer { free(extName); free(sizeExtName) }
        var extPtrs: [UnsafePointer<CChar>?] = (conditional ? [UnsafePointer(extName)] : []) + (sizeControl ? [UnsafePointer(sizeExtName)] : [])
        // VK_EXT_subgroup_size_control's features, where the device has them.
        var sizeFeatures = VkPhysicalDeviceSubgroupSizeControlFeaturesEXT()
        sizeFeatures.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT
        sizeFeatures.subgroupSizeControl = VkBool32(VK_TRUE)
        sizeFeatures.computeFullSubgroups = VkBool32(info.computeFullSubgroups ? VK_TRUE : VK_FALSE)
        var condFeatures = VkPhysicalDeviceConditionalRenderingFeaturesEXT()
        condFeatures.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_CONDITIONAL_RENDERING_FEATURES_EXT
        condFeatures.conditionalRendering = VkBool32(VK_TRUE)
        // 16-bit storage (Vulkan 1.1 core) where the device has it: the f16 KV cache.
        var storage16 = VkPhysicalDevice16BitStorageFeatures()
        storage16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES
        storage16.storageBuffer16BitAccess = VkBool32(info.storageBuffer16Bit ? VK_TRUE : VK_FALSE)
        try withUnsafePointer(to: &priority) { pp in
            qci.pQueuePriorities = pp
            try withUnsafePointer(to: &qci) { qp in
                try withUnsafeMutablePointer(to: &sizeFeatures) { zf in
                try withUnsafeMutablePointer(to: &condFeatures) { cf in
                    // pNext: storage16 -> [conditional rendering] -> [subgroup size control]
                    if sizeControl { cf.pointee.pNext = UnsafeMutableRawPointer(zf) }
                    if conditional { storage16.pNext = UnsafeMutableRawPointer(cf) } else if sizeControl { storage16.pNext = UnsafeMutableRawPointer(zf) }
                    try withUnsafePointer(to: &storage16) { sf in
                        try extPtrs.withUnsafeMutableBufferPointer { ep in
                            var dci = VkDeviceCreateInfo()
                            dci.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO
                            dci.queueCreateInfoCount = 1
                            dci.pQueueCreateInfos = qp
                            dci.pNext = UnsafeRawPointer(sf)
                            dci.enabledExtensionCount = UInt32(ep.count)
                            dci.ppEnabledExtensionNames = ep.isEmpty ? nil : UnsafePointer(ep.baseAddress)
                            try vkCheck(vkCreateDevice(physical, &dci, nil, &dev), "vkCreateDevice")
                        }
                    }
                }
                }
            }
        }
        device = dev!
        if conditional {
            beginConditionalRendering = vkGetDeviceProcAddr(dev!, "vkCmdBeginConditionalRenderingEXT").map { unsafeBitCast($0, to: PFN_vkCmdBeginConditionalRenderingEXT.self) }
            endConditionalRendering = vkGetDeviceProcAddr(dev!, "vkCmdEndConditionalRenderingEXT").map { unsafeBitCast($0, to: PFN_vkCmdEndConditionalRenderingEXT.self) }
        } else {
            beginConditionalRendering = nil
            endConditionalRendering = nil
        }
        var q: VkQueue?
        vkGetDeviceQueue(device, queueFamily, 0, &q)
        queue = q!

        var pci = VkCommandPoolCreateInfo()
        pci.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO
        pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT.rawValue
        pci.queueFamilyIndex = queueFamily
        var pool: VkCommandPool?
        if let r = Optional(vkCreateCommandPool(device, &pci, nil, &pool)), r != VK_SUCCESS {
            vkDestroyDevice(device, nil)
            throw VulkanError("vkCreateCommandPool", r)
        }
        commandPool = pool!
        var fci = VkFenceCreateInfo()
        fci.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO
        var fence: VkFence?
        if let r = Optional(vkCreateFence(device, &fci, nil, &fence)), r != VK_SUCCESS {
            vkDestroyCommandPool(device, pool, nil)
            vkDestroyDevice(device, nil)
            throw VulkanError("vkCreateFence", r)
        }
        submitFence = fence!
        var mp = VkPhysicalDeviceMemoryProperties()
        vkGetPhysicalDeviceMemoryProperties(physical, &mp)
        memoryProperties = mp
        ok = true
        VulkanObjects.created("context")
        VulkanObjects.registerExitReport()
    }

    deinit {
        VulkanObjects.destroyed("context")
        vkDeviceWaitIdle(device)
        vkDestroyFence(device, submitFence, nil)
        vkDestroyCommandPool(device, commandPool, nil)
        vkDestroyDevice(device, nil)
        if let messenger, let destroy = Self.instanceProc(instance, "vkDestroyDebugUtilsMessengerEXT", PFN_vkDestroyDebugUtilsMessengerEXT.self) {
            destroy(instance, messenger, nil)
        }
        vkDestroyInstance(instance, nil)
    }

    static func instanceProc<T>(_ inst: VkInstance, _ name: String, _ type: T.Type) -> T? {
        guard let p = vkGetInstanceProcAddr(inst, name) else { return nil }
        return unsafeBitCast(p, to: type)
    }

    private static func makeInstance(validation: Bool) throws -> (instance: VkInstance, validation: Bool) {
        var layerCount: UInt32 = 0
        vkEnumerateInstanceLayerProperties(&layerCount, nil)
        var layers = [VkLayerProperties](repeating: VkLayerProperties(), count: Int(layerCount))
        vkEnumerateInstanceLayerProperties(&layerCount, &layers)
        let layerNames = layers.map { withUnsafeBytes(of: $0.layerName) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) } }
        let validationName = "VK_LAYER_KHRONOS_validation"
        let useLayer = validation && layerNames.contains(validationName)
        if validation && !useLayer {
            FileHandle.standardError.write("loopvk: validation requested but \(validationName) is not installed (apt-get install vulkan-validationlayers)\n".data(using: .utf8)!)
        }

        let appName = strdup("loopvk")!, layerC = strdup(validationName)!, extC = strdup("VK_EXT_debug_utils")!
        defer { free(appName); free(layerC); free(extC) }
        var app = VkApplicationInfo()
        app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO
        app.pApplicationName = UnsafePointer(appName)
        app.pEngineName = UnsafePointer(appName)
        app.apiVersion = LOOPVK_API_VERSION_1_2
        var layerPtrs: [UnsafePointer<CChar>?] = [UnsafePointer(layerC)]
        var extPtrs: [UnsafePointer<CChar>?] = [UnsafePointer(extC)]
        // Synchronization validation on top of the core checks.
        var enables: [VkValidationFeatureEnableEXT] = [VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT]
        var inst: VkInstance?
        let result: VkResult = withUnsafePointer(to: &app) { appP in
            layerPtrs.withUnsafeMutableBufferPointer { lp in
                extPtrs.withUnsafeMutableBufferPointer { ep in
                    enables.withUnsafeMutableBufferPointer { en in
                        var features = VkValidationFeaturesEXT()
                        features.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT
                        features.enabledValidationFeatureCount = UInt32(en.count)
                        features.pEnabledValidationFeatures = UnsafePointer(en.baseAddress)
                        return withUnsafePointer(to: &features) { fp in
                            var ci = VkInstanceCreateInfo()
                            ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO
                            ci.pApplicationInfo = appP
                            if useLayer {
                                ci.enabledLayerCount = 1
                                ci.ppEnabledLayerNames = UnsafePointer(lp.baseAddress)
                                ci.enabledExtensionCount = 1
                                ci.ppEnabledExtensionNames = UnsafePointer(ep.baseAddress)
                                ci.pNext = UnsafeRawPointer(fp)
                            }
                            return vkCreateInstance(&ci, nil, &inst)
                        }
                    }
                }
            }
        }
        if result == VK_ERROR_INCOMPATIBLE_DRIVER || result == VK_ERROR_INITIALIZATION_FAILED {
            throw VulkanError("vkCreateInstance", result, detail: "no usable Vulkan driver; use --cpu for the CPU reference")
        }
        try vkCheck(result, "vkCreateInstance")
        return (inst!, useLayer)
    }

    private static func enumerate(_ inst: VkInstance) throws -> [(VkPhysicalDevice, DeviceInfo)] {
        var count: UInt32 = 0
        try vkCheck(vkEnumeratePhysicalDevices(inst, &count, nil), "vkEnumeratePhysicalDevices")
        var devs = [VkPhysicalDevice?](repeating: nil, count: Int(count))
        try vkCheck(vkEnumeratePhysicalDevices(inst, &count, &devs), "vkEnumeratePhysicalDevices")
        return devs.compactMap { $0 }.enumerated().map { (i, pd) in (pd, describe(pd, index: i)) }
    }

    private static func describe(_ pd: VkPhysicalDevice, index: Int) -> DeviceInfo {
        var extCount: UInt32 = 0
        vkEnumerateDeviceExtensionProperties(pd, nil, &extCount, nil)
        var exts = [VkExtensionProperties](repeating: VkExtensionProperties(), count: Int(extCount))
        vkEnumerateDeviceExtensionProperties(pd, nil, &extCount, &exts)
        let extNames = Set(exts.map { e in withUnsafeBytes(of: e.extensionName) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) } })
        // Extension properties, each chained only where the device lists its extension.
        var sizeProps = VkPhysicalDeviceSubgroupSizeControlPropertiesEXT()
        sizeProps.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES_EXT
        var smProps = VkPhysicalDeviceShaderSMBuiltinsPropertiesNV()
        smProps.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV
        var amdProps = VkPhysicalDeviceShaderCorePropertiesAMD()
        amdProps.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD
        let hasSizeControl = extNames.contains("VK_EXT_subgroup_size_control")
        let hasSM = extNames.contains("VK_NV_shader_sm_builtins"), hasAMD = extNames.contains("VK_AMD_shader_core_properties")
        withUnsafeMutablePointer(to: &sizeProps) { zp in
            withUnsafeMutablePointer(to: &smProps) { np in
                withUnsafeMutablePointer(to: &amdProps) { ap in
                    var p2 = VkPhysicalDeviceProperties2()
                    p2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
                    var next: UnsafeMutableRawPointer? = nil
                    if hasSizeControl { zp.pointee.pNext = next; next = UnsafeMutableRawPointer(zp) }
                    if hasSM { np.pointee.pNext = next; next = UnsafeMutableRawPointer(np) }
                    if hasAMD { ap.pointee.pNext = next; next = UnsafeMutableRawPointer(ap) }
                    p2.pNext = next
                    if next != nil { vkGetPhysicalDeviceProperties2(pd, &p2) }
                }
            }
        }
        var sizeFeatures = VkPhysicalDeviceSubgroupSizeControlFeaturesEXT()
        sizeFeatures.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT
        if hasSizeControl {
            var f2 = VkPhysicalDeviceFeatures2()
            f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2
            withUnsafeMutablePointer(to: &sizeFeatures) { zp in
                f2.pNext = UnsafeMutableRawPointer(zp)
                vkGetPhysicalDeviceFeatures2(pd, &f2)
            }
        }
        var subgroup = VkPhysicalDeviceSubgroupProperties()
        subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES
        var driver = VkPhysicalDeviceDriverProperties()
        driver.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES
        var props2 = VkPhysicalDeviceProperties2()
        props2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
        withUnsafeMutablePointer(to: &driver) { dp in
            subgroup.pNext = UnsafeMutableRawPointer(dp)
            withUnsafeMutablePointer(to: &subgroup) { sp in
                props2.pNext = UnsafeMutableRawPointer(sp)
                vkGetPhysicalDeviceProperties2(pd, &props2)
            }
        }
        var f11 = VkPhysicalDeviceVulkan11Features()
        f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES
        var f12 = VkPhysicalDeviceVulkan12Features()
        f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES
        var feats = VkPhysicalDeviceFeatures2()
        feats.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2
        withUnsafeMutablePointer(to: &f12) { p12 in
            f11.pNext = UnsafeMutableRawPointer(p12)
            withUnsafeMutablePointer(to: &f11) { p11 in
                feats.pNext = UnsafeMutableRawPointer(p11)
                vkGetPhysicalDeviceFeatures2(pd, &feats)
            }
        }
        var mp = VkPhysicalDeviceMemoryProperties()
        vkGetPhysicalDeviceMemoryProperties(pd, &mp)
        let heaps: [(UInt64, Bool)] = withUnsafeBytes(of: mp.memoryHeaps) { raw in
            let hs = raw.bindMemory(to: VkMemoryHeap.self)
            return (0..<Int(mp.memoryHeapCount)).map { (hs[$0].size, hs[$0].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT.rawValue != 0) }
        }
        let p = props2.properties
        let name = withUnsafeBytes(of: p.deviceName) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        let driverName = withUnsafeBytes(of: driver.driverName) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        let driverInfo = withUnsafeBytes(of: driver.driverInfo) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        let kind: DeviceInfo.Kind
        switch p.deviceType {
        case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: kind = .discrete
        case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: kind = .integrated
        case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: kind = .virtual
        case VK_PHYSICAL_DEVICE_TYPE_CPU: kind = .cpu
        default: kind = .other
        }
        var fp = VkFormatProperties()
        vkGetPhysicalDeviceFormatProperties(pd, VK_FORMAT_R32G32B32A32_UINT, &fp)
        let texel = fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT.rawValue != 0
        let hasConditional = extNames.contains("VK_EXT_conditional_rendering")
        var condFeatures = VkPhysicalDeviceConditionalRenderingFeaturesEXT()
        condFeatures.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_CONDITIONAL_RENDERING_FEATURES_EXT
        if hasConditional {
            var f2 = VkPhysicalDeviceFeatures2()
            f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2
            withUnsafeMutablePointer(to: &condFeatures) { cp in
                f2.pNext = UnsafeMutableRawPointer(cp)
                vkGetPhysicalDeviceFeatures2(pd, &f2)
            }
        }
        let v = p.apiVersion
        var info = DeviceInfo(
            index: index, name: name, kind: kind,
            apiVersion: "\(loopvk_api_version_major(v)).\(loopvk_api_version_minor(v)).\(loopvk_api_version_patch(v))",
            driverVersion: driverInfo.isEmpty ? String(p.driverVersion) : driverInfo, driverName: driverName,
            heaps: heaps, subgroupSize: Int(subgroup.subgroupSize),
            subgroupShuffle: subgroup.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT.rawValue != 0
                && subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT.rawValue != 0,
            maxStorageBufferRange: UInt64(p.limits.maxStorageBufferRange),
            minStorageBufferOffsetAlignment: UInt64(p.limits.minStorageBufferOffsetAlignment),
            maxComputeSharedMemory: Int(p.limits.maxComputeSharedMemorySize),
            storageBuffer16Bit: f11.storageBuffer16BitAccess != 0, shaderFloat16: f12.shaderFloat16 != 0,
            timestampPeriod: p.limits.timestampPeriod,
            maxTexelBufferElements: UInt64(p.limits.maxTexelBufferElements),
            minTexelBufferOffsetAlignment: UInt64(p.limits.minTexelBufferOffsetAlignment),
            uniformTexelBuffers: texel)
        info.conditionalRendering = hasConditional && condFeatures.conditionalRendering != 0
        info.maxWorkGroupCount = [Int(p.limits.maxComputeWorkGroupCount.0), Int(p.limits.maxComputeWorkGroupCount.1), Int(p.limits.maxComputeWorkGroupCount.2)]
        let compute = VK_SHADER_STAGE_COMPUTE_BIT.rawValue
        info.subgroupClustered = subgroup.supportedOperations & VK_SUBGROUP_FEATURE_CLUSTERED_BIT.rawValue != 0 && subgroup.supportedStages & compute != 0
        info.subgroupSizeControl = hasSizeControl && sizeFeatures.subgroupSizeControl != 0 && sizeProps.requiredSubgroupSizeStages & compute != 0
            && sizeProps.minSubgroupSize <= subgroup.subgroupSize && subgroup.subgroupSize <= sizeProps.maxSubgroupSize
        info.computeFullSubgroups = info.subgroupSizeControl && sizeFeatures.computeFullSubgroups != 0
        info.minSubgroupSize = info.subgroupSizeControl ? Int(sizeProps.minSubgroupSize) : Int(subgroup.subgroupSize)
        info.maxSubgroupSize = info.subgroupSizeControl ? Int(sizeProps.maxSubgroupSize) : Int(subgroup.subgroupSize)
        info.maxComputeWorkgroupSubgroups = Int(sizeProps.maxComputeWorkgroupSubgroups)
        if hasSM, smProps.shaderSMCount > 0 {
            info.computeUnits = Int(smProps.shaderSMCount); info.computeUnitsSource = "SMs, VK_NV_shader_sm_builtins"
        } else if hasAMD, amdProps.shaderEngineCount > 0 {
            info.computeUnits = Int(amdProps.shaderEngineCount * amdProps.shaderArraysPerEngineCount * amdProps.computeUnitsPerShaderArray)
            info.computeUnitsSource = "CUs, VK_AMD_shader_core_properties"
        } else {
            // No vendor count: 16, the order of a mid-range GPU's units.
            info.computeUnits = 16; info.computeUnitsSource = "fallback: not reported by the driver"
        }
        info.maxStorageBuffersPerStage = Int(min(p.limits.maxPerStageDescriptorStorageBuffers, p.limits.maxDescriptorSetStorageBuffers, p.limits.maxPerStageResources))
        return info
    }
}
