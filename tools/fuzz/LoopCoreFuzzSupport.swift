// Shared by the LoopCore fuzz targets (compiled into the LoopCore module with them; SwiftPM
// never sees this folder). Any thrown error must be a LoopError whose description is one
// non-empty line: anything else is turned into a crash, so libFuzzer records the input.

import Foundation

enum FuzzCheck {
    /// Traps unless `error` is a LoopError with a one-line, non-empty description.
    static func expectCleanError(_ error: any Error, _ context: String) {
        guard let loop = error as? LoopError else {
            fatalError("\(context): threw \(type(of: error)), not a LoopError: \(error)")
        }
        let text = loop.description
        if text.isEmpty { fatalError("\(context): empty error description") }
        if text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            fatalError("\(context): error description is not one line: \(text.debugDescription)")
        }
        if text.utf8.count > 4096 { fatalError("\(context): error description is \(text.utf8.count) bytes long") }
    }

    /// Traps with `message` when `condition` is false (an invariant of a successful parse).
    static func require(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fatalError(message()) }
    }

    /// A directory from the environment, or the default relative to the working directory.
    static func directory(_ variable: String, default fallback: String) -> URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.environment[variable] ?? fallback)
    }
}
