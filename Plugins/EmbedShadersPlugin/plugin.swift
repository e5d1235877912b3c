import Foundation
import PackagePlugin

/// Embeds every GLSL file under the package's top-level `Shaders/` folder into the target as
/// a generated Swift source, so the `loopvk` binary finds its shaders from any directory.
@main
struct EmbedShadersPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let shaderDir = context.package.directoryURL.appendingPathComponent("Shaders")
        let files = (try? FileManager.default.contentsOfDirectory(at: shaderDir, includingPropertiesForKeys: nil)) ?? []
        let inputs = files
            .filter { ["comp", "glsl"].contains($0.pathExtension) }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("EmbeddedShaders.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) shaders",
                executable: try context.tool(named: "EmbedShaders").url,
                arguments: [output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }
}
