import ArgumentParser
import LoopEngine

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List Vulkan devices and their capabilities.")

    func run() throws {
        let list = try Engine.devices()
        if list.isEmpty { print("no Vulkan devices") }
        for d in list { print(d) }
    }
}
