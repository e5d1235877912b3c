import ArgumentParser
import Foundation
import LoopEngine

@main
struct LoopVK: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loopvk",
        abstract: "Run looped language models (Ouro, Huginn-0125, LoopUS) on any Vulkan GPU.",
        subcommands: [Run.self, Lens.self, Compare.self, Eval.self, Profile.self, Report.self, Bench.self, Soak.self, Tokenize.self, Detokenize.self, Devices.self, SelfTestCommand.self, Synth.self, QuantizeCommand.self, Serve.self, BatchBenchCommand.self]
    )
}
