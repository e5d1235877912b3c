import Foundation
import LoopCore
import LoopVulkan

/// Long-run checks: decode many tokens (sequences back to back) and reload the model many
/// times; host RSS, device memory and live Vulkan objects must come back flat.
public struct SoakReport: Sendable, Codable {
    public var device: String
    public var tokens: Int
    public var sequences: Int
    public var decodeSeconds: Double
    /// After the first (warm-up) sequence and at the end of decoding.
    public var rssStartMB: Double
    public var rssEndMB: Double
    public var deviceBytesStart: UInt64
    public var deviceBytesEnd: UInt64
    public var reloads: Int
    /// Live Vulkan object owners and device memory before and after the reloads, and RSS after
    /// the first reload and after the last.
    public var liveObjectsBefore: Int
    public var liveObjectsAfter: Int
    public var deviceBytesBeforeReloads: UInt64
    public var deviceBytesAfterReloads: UInt64
    public var rssFirstReloadMB: Double
    public var rssLastReloadMB: Double
}

public enum Soak {
    /// Resident set size of this process, in bytes (Linux /proc/self/statm).
    public static func rssBytes() -> UInt64 {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let f = s.split(separator: " ")
        guard f.count > 1, let pages = UInt64(f[1]) else { return 0 }
        return pages * UInt64(sysconf(Int32(_SC_PAGESIZE)))
    }

    public static func run(directory: URL, device: String?, tokens: Int, reloads: Int, context: Int = 512,
                           progress: ((String) -> Void)? = nil) throws -> SoakReport {
        guard tokens >= 1, reloads >= 0 else { throw LoopError.invalidArgument("soak needs --tokens >= 1 and --reloads >= 0") }
        let mb = { (b: UInt64) in Double(b) / 1_048_576 }
        var report: SoakReport
        do {
            let model = try Model(directory: directory, backend: .vulkan(device: device), maxContext: context, maxRows: 64)
            let gen = Generator(model: model)
            var options = GenerationOptions()
            options.ignoreEOS = true
            let prompt = Bench.prompt(8, vocab: model.plan.vocab)
            var done = 0, sequences = 0, seconds = 0.0
            var rssStart: UInt64 = 0, devStart: UInt64 = 0
            while done < tokens {
                options.maxTokens = min(tokens - done, context - prompt.count)
                let r = try gen.generate(prompt: prompt, options: options)
                done += r.ids.count
                seconds += r.decodeSeconds
                sequences += 1
                if sequences == 1 { rssStart = rssBytes(); devStart = VulkanObjects.deviceMemoryBytes }
                progress?("decoded \(done)/\(tokens) tokens")
            }
            report = SoakReport(device: model.backend.name, tokens: done, sequences: sequences, decodeSeconds: seconds,
                                rssStartMB: mb(rssStart), rssEndMB: mb(rssBytes()), deviceBytesStart: devStart,
                                deviceBytesEnd: VulkanObjects.deviceMemoryBytes, reloads: reloads, liveObjectsBefore: 0, liveObjectsAfter: 0,
                                deviceBytesBeforeReloads: 0, deviceBytesAfterReloads: 0, rssFirstReloadMB: 0, rssLastReloadMB: 0)
        }
        // The decode model is gone here: what is live now is the baseline.
        report.liveObjectsBefore = VulkanObjects.liveTotal
        report.deviceBytesBeforeReloads = VulkanObjects.deviceMemoryBytes
        for i in 0..<reloads {
            do {
                let model = try Model(directory: directory, backend: .vulkan(device: device), maxContext: 64, maxRows: 16)
                var o = GenerationOptions()
                o.maxTokens = 2
                o.ignoreEOS = true
                _ = try Generator(model: model).generate(prompt: [1, 2, 3], options: o)
            }
            if i == 0 { report.rssFirstReloadMB = mb(rssBytes()) }
            progress?("reload \(i + 1)/\(reloads)")
        }
        report.rssLastReloadMB = mb(rssBytes())
        report.liveObjectsAfter = VulkanObjects.liveTotal
        report.deviceBytesAfterReloads = VulkanObjects.deviceMemoryBytes
        return report
    }
}
