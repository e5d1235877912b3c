import Foundation

extension CPUOps {
    /// Ouro's Q-exit decision after pass `pass` (0-based) of `passes`, on row 0 of `control`
    /// (layout: `ExitControl`): Π(1 − λ) *= 1 − sigmoid(signal); the token stops when the exit
    /// CDF 1 − Π(1 − λ) reaches `threshold` with at least `minPasses` passes done, or at the
    /// last pass. Stopping records the passes used and the stop flag; otherwise the next pass
    /// is flagged to run. The host reference is ExitTracker's q-exit branch.
    public static func exitDecide(signal: CPURows, control: CPURows, pass: Int, passes: Int, threshold: Float, minPasses: Int) {
        let lambda = 1 / (1 + Foundation.exp(-signal[0, 0]))
        let remaining = control[0, 0] * (1 - lambda)
        control[0, 0] = remaining
        let done = pass + 1
        if done >= passes || (1 - remaining >= threshold && done >= minPasses) {
            control[0, 1] = Float(done)
            control[0, ExitControl.stoppedAfter(done, passes: passes)] = 1
        } else {
            control[0, ExitControl.run(done)] = 1
        }
    }
}
