import Foundation
import LoopCore
import LoopTestSupport
@testable import LoopVulkan
import Testing

/// Dispatches per section of a decode token on lavapipe's texel configuration (fusion on), per
/// fixture, against counts derived from each family's layer structure: a builder or fusion
/// change that loses a fused step (or adds a dispatch) fails here.
@Suite(.serialized, .enabled(if: GPU.available && GPU.hasTexelPath))
struct DispatchCountTests {
    /// Recorded dispatches of (prelude, one pass, head) for one decode row.
    func counts(_ fixture: String) throws -> (prelude: Int, pass: Int, head: Int, config: [String: Any]) {
        let ck = try Checkpoint(directory: fixtureURL(fixture))
        let (plan, _) = try ModelFamily.plan(checkpoint: ck, passes: nil)
        let vb = try VulkanBackend(context: GPU.context!, layout: BackendLayout(plan: plan, maxRows: 4, maxContext: 16),
                                   weights: WeightStore(checkpoint: ck, plan: plan), kernels: GPU.kernels(read: .texel, "fusion=on,reduce=subgroup"))
        var out: [Int] = []
        for (name, ops) in [("prelude", plan.prelude), ("pass0", plan.passes[0]), ("head", plan.head)] {
            let key = SectionKey(name, rows: 1)
            try vb.run(ops, section: key, tokens: [1], pos0: 0)
            out.append(try #require(vb.recordedCounts(key)).dispatches)
        }
        GPU.expectNoValidationMessages()
        return (out[0], out[1], out[2], ck.config)
    }

    /// Ouro, per layer: q/k/v product, rope + K/V writes, attention, o product, post-attention
    /// norm + residual + pre-MLP norm, gate/up product + SiLU, down product, post-MLP norm +
    /// residual + the next norm (the next layer's input norm, or the final norm) = 8; a pass adds
    /// its first layer's input norm and the exit gate's product. Prelude: the embedding; head: the
    /// logits product.
    @Test(arguments: ["ouro-tiny-fp32", "ouro-tiny-bf16"])
    func ouro(fixture: String) throws {
        let c = try counts(fixture)
        let layers = try #require(c.config["num_hidden_layers"] as? Int)
        #expect(c.prelude == 1)
        #expect(c.pass == 2 + 8 * layers)
        #expect(c.head == 1)
    }

    /// Huginn, per layer: q, k and v products (windows of the fused Wqkv, biased), rope of q,
    /// rope of k + K/V writes, attention, o product, norm + residual + norm, gate/up + SiLU,
    /// down, norm + residual + the next norm (or the block's last norm alone) = 11. A pass adds
    /// two state copies, the adapter product and the first input norm; the prelude the
    /// embedding, the first input norm and the state initialisation; the head the prelude
    /// output's norm and the logits product.
    @Test func huginn() throws {
        let c = try counts("huginn-tiny-fp32")
        let prelude = try #require(c.config["n_layers_in_prelude"] as? Int)
        let core = try #require(c.config["n_layers_in_recurrent_block"] as? Int)
        let coda = try #require(c.config["n_layers_in_coda"] as? Int)
        #expect(c.prelude == 1 + 1 + 11 * prelude + 1)
        #expect(c.pass == 4 + 11 * core)
        #expect(c.head == 1 + 11 * coda + 1)
    }

    /// LoopUS over Qwen3, per layer: input norm, q/k/v product, q norm, k norm, rope + K/V
    /// writes, attention, o product, post-attention norm (with the residual), gate/up + SiLU,
    /// down = 10. A pass adds the state copy and the selective gate with the confidence head
    /// (difference, two products, sigmoid, mix, exp, two products... 11 ops); the prelude the
    /// embedding; the head the state copy, the final norm and the logits product.
    @Test func loopus() throws {
        let c = try counts("loopus-tiny-qwen3-fp32")
        let count = { (key: String) in (c.config[key] as? [Any])?.count ?? 0 }
        #expect(c.prelude == 1 + 10 * count("encoder_layer_indices"))
        #expect(c.pass == 1 + 10 * count("reasoning_layer_indices") + 11)
        #expect(c.head == 1 + 10 * count("decoder_layer_indices") + 2)
    }
}
