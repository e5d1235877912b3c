import Foundation
import LoopCore

// `.exitDecide`: Ouro's Q-exit decision on the device after a pass (the rule itself is
// `ExitControl`'s, written once on the host in LoopCore/Plan.swift; exit_decide.comp is its
// shader twin). Fused with the gate's one-output product where recording pairs them.

/// exit_decide.comp: the gate logit at `s_col` (or, with `gate`, the product computing it)
/// updates the control row at `c_col` after pass `pass_index` of `passes`.
struct ExitDecidePush: PushBlock {
    static let shader = "exit_decide.comp"
    var sCol: UInt32 = 0, cCol: UInt32 = 0, passIndex: UInt32 = 0, passes: UInt32 = 0
    var threshold: Float = 0, minPasses: UInt32 = 0, gate: UInt32 = 0, inF: UInt32 = 0
    var xCol: UInt32 = 0, wBase: UInt32 = 0, bBase: UInt32 = 0, hasBias: UInt32 = 0
}

extension Kernels {
    /// With `gate` (the one-output linear that computes the signal), that product first, in
    /// the same workgroup.
    func encodeExitDecide(_ op: Op, gate: Op?, rows: Int, into cb: RecordedCommands, buffers: DeviceBuffers) throws {
        guard case let .exitDecide(signal, control, pass, passes, threshold, minPasses) = op else { return }
        var x = buffers.dummyBinding, xCol = 0, inF = 0, wb = buffers.dummyBinding, wBase: UInt32 = 0, wdt = DType.f32
        var bb = buffers.dummyBinding, bBase: UInt32 = 0, bdt = DType.f32, hasBias = false
        if case let .linear(gx, weight, bias, _, gin, _, _) = gate {
            x = Binding(try buffers.act(gx.name)); xCol = gx.col; inF = gin
            (wb, wBase, wdt) = try weightWindow(buffers, weight.name, start: weight.offset, count: gin)
            if let bias { (bb, bBase, bdt) = try weightWindow(buffers, bias.name, start: bias.offset, count: 1); hasBias = true }
        }
        let p = try pipeline("exit_decide.comp", storage: 5, push: ExitDecidePush.self, local: reduceShape.local, w: wdt, b: bdt, defines: reduceShape.defines)
        try cb.dispatch(p, [Binding(try buffers.act(signal.name)), Binding(try buffers.act(control.name)), x, wb, bb],
                        push: ExitDecidePush(sCol: u32(signal.col), cCol: u32(control.col), passIndex: u32(pass), passes: u32(passes),
                                             threshold: threshold, minPasses: u32(minPasses), gate: gate == nil ? 0 : 1, inF: u32(inF),
                                             xCol: u32(xCol), wBase: wBase, bBase: bBase, hasBias: hasBias ? 1 : 0),
                        groups: (1, 1, 1))
    }
}
