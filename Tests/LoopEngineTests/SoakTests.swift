import Foundation
import LoopEngine
import Testing

/// A short soak in its own process (so other tests' objects do not count): decoding leaves host
/// and device memory flat, and reloading the model leaks no Vulkan objects or device memory.
@Suite(.enabled(if: backendChoices.count > 1 && FileManager.default.fileExists(atPath: Paths.cli.path)))
struct SoakTests {
    @Test func decodeAndReloadsAreFlat() throws {
        let (status, out, err) = try runCLI(["soak", "--tokens", "1200", "--reloads", "6", "--json"])
        #expect(status == 0, "\(err)")
        let r = try JSONDecoder().decode(SoakReport.self, from: Data(out.utf8))
        #expect(r.tokens == 1200 && r.sequences >= 3)
        #expect(r.deviceBytesEnd == r.deviceBytesStart)
        #expect(r.rssEndMB - r.rssStartMB < 16, "RSS grew \(r.rssStartMB) -> \(r.rssEndMB) MB while decoding")
        #expect(r.liveObjectsAfter == r.liveObjectsBefore, "live Vulkan object owners \(r.liveObjectsBefore) -> \(r.liveObjectsAfter)")
        #expect(r.deviceBytesAfterReloads == r.deviceBytesBeforeReloads)
        #expect(r.rssLastReloadMB - r.rssFirstReloadMB < 48, "RSS grew \(r.rssFirstReloadMB) -> \(r.rssLastReloadMB) MB over reloads")
    }
}
