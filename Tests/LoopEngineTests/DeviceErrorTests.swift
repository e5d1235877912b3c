import Foundation
import LoopCore
import LoopEngine
import LoopTestSupport
import LoopVulkan
import Testing

/// Device-level bad input: a clear one-line error, never a crash.
@Suite(.serialized) struct DeviceErrorTests {
    static let binary = Paths.cli

    func cli(_ args: [String], env: [String: String] = [:]) throws -> (Int32, String, String) { try runCLI(args, env: env) }

    @Test(.enabled(if: backendChoices.count > 1)) func deviceNameThatMatchesNothing() throws {
        #expect { try VulkanContext(deviceName: "no-such-gpu-xyz") } throws: { "\($0)".contains("no Vulkan device matches \"no-such-gpu-xyz\"") }
    }

    /// A model whose KV cache cannot fit is refused before anything is allocated, with numbers.
    @Test(.enabled(if: backendChoices.count > 1)) func modelThatDoesNotFitIsRefused() throws {
        var preset = try Synth.preset(family: "ouro", name: "ouro-small")
        guard case .ouro(var d, let passes) = preset.model else { Issue.record("ouro-small is not an Ouro preset"); return }
        // KV: 16 slots x 2 x 2^19 positions x 1024 x 2 bytes (f16) = 34 GiB, more than any device
        // here (a CPU device is held to 3/4 of the host's memory).
        d.maxPositions = 1 << 19
        d.hidden = 1024
        d.heads = 16
        d.kvHeads = 16
        d.headDim = 64
        d.intermediate = 128
        preset.model = .ouro(d, passes: passes)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loopvk-nofit-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Synth.write(preset, to: dir, seed: 1, progress: nil)
        #expect { try Model(directory: dir, backend: .vulkan(device: nil), maxContext: 1 << 19) } throws: {
            let s = "\($0)"
            return s.contains("device memory") && s.contains("KV cache") && s.contains("GiB")
        }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: DeviceErrorTests.binary.path)))
    func noVulkanDriverIsAClearErrorAndCPUStillWorks() throws {
        let env = ["VK_ICD_FILENAMES": "/nonexistent/icd.json", "VK_DRIVER_FILES": "/nonexistent/icd.json"]
        let (status, _, err) = try cli(["run", "--prompt", "Q: 1 plus 2 A:", "--max-tokens", "2"], env: env)
        #expect(status != 0)
        #expect(err.contains("Vulkan") && err.contains("--cpu"), "stderr: \(err)")
        #expect(!err.contains("Fatal error"))
        let (ok, out, _) = try cli(["run", "--prompt", "Q: 1 plus 2 A:", "--max-tokens", "2", "--cpu"], env: env)
        #expect(ok == 0)
        #expect(out.contains("3"))
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: DeviceErrorTests.binary.path)))
    func cliBadOptionsAreOneLineErrors() throws {
        for args in [["run", "--prompt", "x", "--passes", "0", "--cpu"], ["run", "--prompt", "x", "--temperature", "-1", "--cpu"],
                     ["run", "--prompt", "", "--cpu"], ["run", "--model", "/nonexistent/model", "--prompt", "x", "--cpu"],
                     ["run", "--prompt", "x", "--exit", "bogus", "--cpu"], ["run", "--prompt", "x", "--top-p", "2", "--cpu"],
                     ["run", "--tokens", "1,2,99999", "--cpu"]] {
            let (status, _, err) = try cli(args)
            #expect(status != 0, "\(args) succeeded")
            let lines = err.split(separator: "\n").filter { !$0.isEmpty && !$0.hasPrefix("Usage") && !$0.hasPrefix("  See") }
            #expect(lines.count >= 1 && lines.count <= 2, "\(args): \(err)")
            #expect(!err.contains("Fatal error"), "\(args) crashed: \(err)")
        }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: DeviceErrorTests.binary.path)))
    func promptFileWithInvalidUTF8() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bad-utf8-\(getpid()).txt")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data([0x51, 0x3A, 0xFF, 0xFE, 0x20]).write(to: url)
        let (status, _, err) = try cli(["run", "--prompt-file", url.path, "--cpu"])
        #expect(status != 0)
        #expect(err.contains("not valid UTF-8"), "\(err)")
    }

    /// Huginn's hard context limit (block_size; 4096 in the real model, 256 in the fixture).
    @Test func promptLongerThanHuginnsBlockSize() throws {
        let model = try Model(directory: LoopTestSupport.fixtureURL("huginn-tiny-fp32"), backend: .cpu)
        #expect(model.layout.maxContext == 256)
        #expect { try Generator(model: model).generate(prompt: [Int](repeating: 7, count: 300), options: GenerationOptions()) } throws: {
            "\($0)".contains("300 tokens") && "\($0)".contains("256")
        }
    }
}
