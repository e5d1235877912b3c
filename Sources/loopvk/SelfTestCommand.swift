import ArgumentParser
import Foundation
import LoopEngine

struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Check a Vulkan device: every op and variant its kernel configuration uses against the CPU twins, then the bundled model pass by pass.")

    @Option(help: "Vulkan device: a name substring or index (see `loopvk devices`).")
    var device: String?

    @Option(help: "Kernel overrides (as for `run`), e.g. gpu or read=storage.")
    var kernels: String?

    @Flag(help: "Skip the bundled model's end-to-end check.")
    var noModel = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    func run() throws {
        let report = try SelfTest.run(device: device, kernels: kernels, model: noModel ? nil : URL(fileURLWithPath: DefaultModel.path())) { line in
            if !json { printErr("selftest: \(line)") }
        }
        if json {
            try printJSON(report)
        } else {
            for f in report.failures { print(f) }
            print(String(format: "selftest on %@: %d cases, %d failed, %.1f s (validation layer %@)", report.device, report.cases, report.failures.count,
                         report.seconds, report.validation ? "on" : "not installed"))
            print("kernels: \(report.kernels)")
        }
        if !report.passed { throw ExitCode(1) }
    }
}
