import Foundation

extension CPUOps {
    /// Ouro's Q-exit decision (the rule: `OuroQExit`) after pass `pass` (0-based) of `passes`,
    /// on row 0 of `control` (layout: `ExitControl`), which carries Π(1 − λ). Stopping records
    /// the passes used and the stop flag; otherwise the next pass is flagged to run.
    public static func exitDecide(signal: CPURows, control: CPURows, pass: Int, passes: Int, threshold: Float, minPasses: Int) {
        let remaining = OuroQExit.remaining(control[0, 0], gateLogit: signal[0, 0])
        control[0, 0] = remaining
        let done = pass + 1
        if OuroQExit.stops(remaining: remaining, done: done, passes: passes, threshold: threshold, minPasses: minPasses) {
            control[0, 1] = Float(done)
            control[0, ExitControl.stoppedAfter(done, passes: passes)] = 1
        } else {
            control[0, ExitControl.run(done)] = 1
        }
    }
}
