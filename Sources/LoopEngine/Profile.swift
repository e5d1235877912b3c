import Foundation
import LoopCore
import LoopVulkan

/// Where the GPU time of a prompt + decode run goes, per (op, pass) and per pass.
public struct ProfileReport: Sendable, Codable {
    public struct Row: Sendable, Codable {
        public var section: String
        public var op: String
        public var count: Int
        public var totalMicros: Double
        public var bytes: Double
        public var meanMicros: Double { count == 0 ? 0 : totalMicros / Double(count) }
        public var gbPerSecond: Double { totalMicros > 0 ? bytes / (totalMicros * 1e3) : 0 }
    }
    public struct Phase: Sendable, Codable {
        public var name: String
        public var count: Int
        public var totalMicros: Double
    }
    public var mode: String
    public var device: String
    public var promptTokens: Int
    public var decodeTokens: Int
    public var byOpAndPass: [Row]
    public var byPass: [Row]
    public var host: [Phase]
}

public enum Profiler {
    /// "pass3" -> "pass 4" (1-based, as the CLI prints passes).
    static func sectionLabel(_ s: String) -> String {
        // "pass<t>", or "pass<t>+exit(...)" with the exit decision on the device.
        if s.hasPrefix("pass"), let t = Int(s.dropFirst(4).prefix { $0.isNumber }) { return "pass \(t + 1)" }
        return s
    }

    /// Runs `prompt` then `decodeTokens` greedy tokens with GPU timestamps on.
    public static func run(model: Model, prompt: [Int], decodeTokens: Int, mode: ProfileMode, exit: ExitPolicy = .none)
        throws -> (report: ProfileReport, trace: Data) {
        var options = GenerationOptions()
        options.maxTokens = decodeTokens
        options.ignoreEOS = true
        options.exit = exit
        let r = try run(model: model, prompt: prompt, options: options, mode: mode)
        return (r.report, r.trace)
    }

    /// Generates from `prompt` with `options` (and the KV policy `kv`) with GPU timestamps on;
    /// returns the profile of that run and the generation itself (`loopvk report` shows both).
    public static func run(model: Model, prompt: [Int], options: GenerationOptions, kv: KVPolicy = .latest, mode: ProfileMode)
        throws -> (report: ProfileReport, trace: Data, generation: GenerationResult) {
        guard let vb = model.vulkan else { throw LoopError.invalidArgument("profile needs a Vulkan device (not --cpu)") }
        guard vb.context.supportsTimestamps else { throw LoopError.unsupported("\(vb.context.info.name) has no compute-queue timestamps") }
        let gen = Generator(model: model, kv: kv)
        vb.profileMode = mode
        vb.clearProfile()
        defer { vb.profileMode = nil }
        let exit = options.exit
        let generation = try gen.generate(prompt: prompt, options: options)

        // Ops of every section name, to attribute bytes.
        var sectionOps: [String: [Op]] = ["prelude": gen.prelude, "prelude-warm": gen.warmPrelude, "head": gen.head, "head-argmax": gen.headArgmax, "head-prefill": gen.prefillHead]
        for (ops, name) in gen.prefillSections(warm: false) + gen.prefillSections(warm: true) { sectionOps[name] = ops }
        for (t, ops) in gen.passes.enumerated() {
            sectionOps["pass\(t)"] = ops
            if case .qExit(let q) = exit {
                sectionOps[gen.deviceExitSectionName(t, threshold: q, minPasses: options.minPasses)] = gen.deviceExitPass(t, threshold: q, minPasses: options.minPasses)
            }
        }
        for k in 1..<max(gen.passes.count, 1) { sectionOps["kvfill\(k)"] = gen.kvFill(afterPasses: k) }
        let cost = OpCost(model: model)

        var rows: [String: ProfileReport.Row] = [:], order: [String] = []
        var passes: [String: ProfileReport.Row] = [:], passOrder: [String] = []
        // Bytes: each submitted section run counts its ops once (exact mode attributes them to
        // the op kind, light mode to the section).
        var seenRun = Set<String>()
        for iv in vb.gpuIntervals {
            let sec = sectionLabel(iv.section)
            let ops = sectionOps[iv.section] ?? []
            let us = iv.nanoseconds / 1e3
            let runKey = "\(iv.submission)|\(iv.section)"
            let firstOfRun = seenRun.insert(runKey).inserted
            if passes[sec] == nil { passOrder.append(sec); passes[sec] = .init(section: sec, op: "all", count: 0, totalMicros: 0, bytes: 0) }
            passes[sec]!.totalMicros += us
            if firstOfRun {
                passes[sec]!.count += 1
                passes[sec]!.bytes += cost.bytes(ops, rows: iv.rows, pos0: iv.pos0)
            }
            guard mode == .exact else { continue }
            let key = "\(sec)|\(iv.label)"
            if rows[key] == nil { order.append(key); rows[key] = .init(section: sec, op: iv.label, count: 0, totalMicros: 0, bytes: 0) }
            rows[key]!.totalMicros += us
        }
        // Counts and bytes: each step (a plan op, or ops fused into one dispatch, labelled
        // "a+b") counts once per run of its section, however many dispatches served it.
        if mode == .exact {
            var counted = Set<String>()
            var steps: [String: [(label: String, ops: [Op])]] = [:]
            for iv in vb.gpuIntervals {
                let sec = sectionLabel(iv.section)
                let k = "\(iv.submission)|\(iv.section)|\(iv.label)"
                guard counted.insert(k).inserted else { continue }
                if steps[iv.section] == nil { steps[iv.section] = vb.steps(sectionOps[iv.section] ?? []) }
                let labelled = steps[iv.section]!.filter { $0.label == iv.label }
                rows["\(sec)|\(iv.label)"]!.count += labelled.count
                rows["\(sec)|\(iv.label)"]!.bytes += cost.bytes(labelled.flatMap(\.ops), rows: iv.rows, pos0: iv.pos0)
            }
        }
        var host: [String: ProfileReport.Phase] = [:]
        for h in vb.hostPhases {
            host[h.name, default: .init(name: h.name, count: 0, totalMicros: 0)].count += 1
            host[h.name]!.totalMicros += h.seconds * 1e6
        }
        let report = ProfileReport(mode: mode.rawValue, device: vb.context.info.name, promptTokens: prompt.count, decodeTokens: generation.ids.count,
                                   byOpAndPass: order.map { rows[$0]! }, byPass: passOrder.map { passes[$0]! },
                                   host: ["record", "submit", "wait"].compactMap { host[$0] })
        return (report, try trace(vb), generation)
    }

    /// Chrome / Perfetto trace-event JSON: one track for GPU work (events named by pass and op),
    /// one for the host phases.
    static func trace(_ vb: VulkanBackend) throws -> Data {
        var events: [[String: Any]] = [
            ["name": "process_name", "ph": "M", "pid": 1, "args": ["name": "loopvk"]],
            ["name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": ["name": "GPU (\(vb.context.info.name))"]],
            ["name": "thread_name", "ph": "M", "pid": 1, "tid": 2, "args": ["name": "host"]],
        ]
        var submitStart: [Int: Double] = [:]
        for h in vb.hostPhases {
            events.append(["name": h.name, "cat": "host", "ph": "X", "pid": 1, "tid": 2, "ts": h.start * 1e6, "dur": h.seconds * 1e6,
                           "args": ["section": h.detail]])
            if h.name == "wait" { submitStart[h.submission] = h.start * 1e6 }
        }
        // GPU intervals of one submission run back to back from the start of its wait.
        var clock: [Int: Double] = [:]
        for iv in vb.gpuIntervals {
            let ts = clock[iv.submission] ?? submitStart[iv.submission] ?? 0
            let dur = iv.nanoseconds / 1e3
            clock[iv.submission] = ts + dur
            let sec = sectionLabel(iv.section)
            events.append(["name": iv.label == "all" ? sec : "\(sec) \(iv.label)", "cat": "gpu", "ph": "X", "pid": 1, "tid": 1, "ts": ts, "dur": dur,
                           "args": ["section": sec, "op": iv.label, "pos0": iv.pos0, "rows": iv.rows]])
        }
        return try JSONSerialization.data(withJSONObject: ["traceEvents": events, "displayTimeUnit": "ms"], options: [.sortedKeys])
    }
}
