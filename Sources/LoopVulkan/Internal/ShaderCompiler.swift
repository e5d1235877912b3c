import CShaderc
import Foundation
import LoopCore

/// Where GLSL comes from: the copies embedded at build time, or a folder (`--shader-dir`,
/// `LOOPVK_SHADER_DIR`) for kernel work without rebuilding.
public enum ShaderSource {
    nonisolated(unsafe) public static var overrideDirectory: String? = LoopEnvironment.shaderDirectory

    /// Names of all shader files available (embedded or in the override folder).
    public static var names: [String] {
        if let dir = overrideDirectory, let files = try? FileManager.default.contentsOfDirectory(atPath: dir) {
            return files.filter { $0.hasSuffix(".comp") || $0.hasSuffix(".glsl") }.sorted()
        }
        return EmbeddedShaders.files.keys.sorted()
    }

    public static func text(_ name: String) throws -> String {
        if let dir = overrideDirectory {
            let path = (dir as NSString).appendingPathComponent(name)
            guard let s = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw VulkanError("shader source", message: "cannot read \(path)")
            }
            return s
        }
        guard let s = EmbeddedShaders.files[name] else { throw VulkanError("shader source", message: "no shader named \(name)") }
        return s
    }

    /// The source with `#include "file"` lines replaced by the file (recursively, once each).
    public static func expanded(_ name: String) throws -> String {
        var seen: Set<String> = []
        func expand(_ n: String) throws -> String {
            seen.insert(n)
            var out: [Substring] = []
            for line in try text(n).split(separator: "\n", omittingEmptySubsequences: false) {
                let t = line.trimmingCharacters(in: .whitespaces)
                if t.hasPrefix("#include") {
                    let parts = t.split(separator: "\"")
                    guard parts.count >= 2 else { throw VulkanError("shader source", message: "\(n): malformed #include") }
                    let inc = String(parts[1])
                    if !seen.contains(inc) { out.append(Substring(try expand(inc))) }
                } else {
                    out.append(line)
                }
            }
            return out.joined(separator: "\n")
        }
        return try expand(name)
    }
}

/// GLSL -> SPIR-V with shaderc (one compiler per process), cached on disk by a hash of the
/// source, the defines and the target.
public final class ShaderCompiler: @unchecked Sendable {
    public static let shared = ShaderCompiler()

    private let compiler: shaderc_compiler_t
    private let lock = NSLock()
    private var memoryCache: [String: [UInt32]] = [:]
    public let cacheDirectory: String?

    private init() {
        compiler = shaderc_compiler_initialize()
        let env = ProcessInfo.processInfo.environment
        var dir: String?
        if let d = LoopEnvironment.shaderCache {
            dir = d.isEmpty || d == "0" ? nil : d
        } else if let x = env["XDG_CACHE_HOME"], !x.isEmpty {
            dir = x + "/loopvk/spirv"
        } else if let h = env["HOME"], !h.isEmpty {
            dir = h + "/.cache/loopvk/spirv"
        }
        if let dir { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        cacheDirectory = dir
    }

    /// Compiles shader file `name` with `defines`. Throws with the compiler's message (which
    /// names the file and line) when the GLSL does not compile.
    public func spirv(_ name: String, defines: [String: String] = [:]) throws -> [UInt32] {
        let source = try ShaderSource.expanded(name)
        let defineText = defines.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";")
        let key = Self.fnv1a("v1|vulkan1.2|\(name)|\(defineText)|\(source)")
        lock.lock(); defer { lock.unlock() }
        if let c = memoryCache[key] { return c }
        let path = cacheDirectory.map { "\($0)/\(key).spv" }
        if let path, let data = FileManager.default.contents(atPath: path), data.count % 4 == 0, data.count >= 20,
           data.withUnsafeBytes({ $0.load(as: UInt32.self) }) == 0x0723_0203 {
            let words = data.withUnsafeBytes { Array($0.bindMemory(to: UInt32.self)) }
            memoryCache[key] = words
            return words
        }
        let words = try compile(source, name: name, defines: defines)
        memoryCache[key] = words
        if let path {
            // Write then rename: concurrent processes never see a half-written file.
            let tmp = path + ".\(getpid()).\(UInt64.random(in: 0...UInt64.max)).tmp"
            let data = words.withUnsafeBytes { Data($0) }
            if FileManager.default.createFile(atPath: tmp, contents: data) { rename(tmp, path) }
        }
        return words
    }

    /// Compiles GLSL text directly (no cache); `name` is the file name used in messages.
    /// `optimize` false keeps debug names (tests read the push-constant members by name).
    public func compile(source: String, name: String, defines: [String: String] = [:], optimize: Bool = true) throws -> [UInt32] {
        lock.lock(); defer { lock.unlock() }
        return try compile(source, name: name, defines: defines, optimize: optimize)
    }

    private func compile(_ source: String, name: String, defines: [String: String], optimize: Bool = true) throws -> [UInt32] {
        guard let opts = shaderc_compile_options_initialize() else { throw VulkanError("shaderc", message: "cannot create options") }
        defer { shaderc_compile_options_release(opts) }
        shaderc_compile_options_set_target_env(opts, shaderc_target_env_vulkan, UInt32(shaderc_env_version_vulkan_1_2.rawValue))
        shaderc_compile_options_set_target_spirv(opts, shaderc_spirv_version_1_5)
        shaderc_compile_options_set_optimization_level(opts, optimize ? shaderc_optimization_level_performance : shaderc_optimization_level_zero)
        for (k, v) in defines {
            shaderc_compile_options_add_macro_definition(opts, k, k.utf8.count, v, v.utf8.count)
        }
        let result = source.withCString { src in
            shaderc_compile_into_spv(compiler, src, strlen(src), shaderc_compute_shader, name, "main", opts)
        }
        guard let result else { throw VulkanError("shaderc", message: "compilation of \(name) returned no result") }
        defer { shaderc_result_release(result) }
        guard shaderc_result_get_compilation_status(result) == shaderc_compilation_status_success else {
            let msg = String(cString: shaderc_result_get_error_message(result))
            throw VulkanError("shaderc", message: "\(name) does not compile: \(msg.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        let n = shaderc_result_get_length(result)
        let bytes = UnsafeRawBufferPointer(start: shaderc_result_get_bytes(result), count: n)
        return Array(bytes.bindMemory(to: UInt32.self))
    }

    static func fnv1a(_ s: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        var h2: UInt64 = 0x84222325_cbf29ce4
        for b in s.utf8.reversed() { h2 = (h2 ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return String(format: "%016llx%016llx", h, h2)
    }
}
