import ArgumentParser
import LoopEngine
import LoopCore

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List Vulkan devices and their capabilities.")

    @Option(help: "Kernel overrides (see `loopvk run --help`); prints the configuration each device would get.")
    var kernels: String?

    func run() throws {
        let list = try Engine.devices(kernels: kernels)
        if list.isEmpty { print("no Vulkan devices") }
        for d in list { print(d) }
    }
}
