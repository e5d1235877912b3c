// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "LoopVK",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "LoopEngine", targets: ["LoopEngine"]),
        .library(name: "LoopCore", targets: ["LoopCore"]),
        .library(name: "LoopTokenizer", targets: ["LoopTokenizer"]),
        .executable(name: "loopvk", targets: ["loopvk"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
    ],
    targets: [
        // System-library shims: only LoopVulkan imports them.
        .systemLibrary(name: "CVulkan", path: "Sources/CVulkan"),
        .systemLibrary(name: "CShaderc", path: "Sources/CShaderc"),

        // Tensors, dtypes, safetensors, configs, the loop plan, the CPU reference backend.
        .target(name: "LoopCore"),
        // tokenizer.json byte-level BPE, chat templates, streaming detokenizer.
        .target(name: "LoopTokenizer"),
        // Vulkan context, memory, pipelines, kernels, step recorder.
        .target(
            name: "LoopVulkan",
            dependencies: ["CVulkan", "CShaderc", "LoopCore"],
            plugins: ["EmbedShadersPlugin"]
        ),
        // Generation, KV cache policy, exit policies, sampling, parity checks, benchmarks.
        .target(name: "LoopEngine", dependencies: ["LoopCore", "LoopTokenizer", "LoopVulkan"]),
        // The OpenAI-compatible HTTP server (`loopvk serve`); the engine does not depend on it.
        .target(
            name: "LoopServer",
            dependencies: ["LoopEngine", "LoopCore", "LoopTokenizer", .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "loopvk",
            dependencies: ["LoopEngine", "LoopServer", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // Build tool: embeds Shaders/*.comp|*.glsl into the LoopVulkan module as string literals.
        .executableTarget(name: "EmbedShaders"),
        .plugin(name: "EmbedShadersPlugin", capability: .buildTool(), dependencies: ["EmbedShaders"]),

        // Golden-fixture checks shared by the CPU and GPU test targets.
        .target(name: "LoopTestSupport", dependencies: ["LoopCore"], path: "Tests/LoopTestSupport"),
        .testTarget(name: "LoopCoreTests", dependencies: ["LoopCore", "LoopTestSupport"]),
        .testTarget(name: "LoopTokenizerTests", dependencies: ["LoopTokenizer"]),
        .testTarget(name: "LoopVulkanTests", dependencies: ["LoopVulkan", "LoopCore", "LoopTestSupport"]),
        .testTarget(name: "LoopServerTests", dependencies: ["LoopServer"]),
        .testTarget(name: "LoopEngineTests", dependencies: ["LoopEngine", "LoopTokenizer", "LoopTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
