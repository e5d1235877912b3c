import ArgumentParser
import Foundation
import LoopEngine

// Entry point as top-level code: with more than one file in this target, main.swift may not use @main.
LoopVK.main()

struct LoopVK: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loopvk",
        abstract: "Run looped language models (Ouro, Huginn-0125, LoopUS) on any Vulkan GPU.",
        subcommands: [Devices.self, Synth.self]
    )
}

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List Vulkan devices and their capabilities.")

    func run() throws {
        let list = try Engine.devices()
        if list.isEmpty { print("no Vulkan devices") }
        for d in list { print(d) }
    }
}
