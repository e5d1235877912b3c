import Foundation
import LoopCore
@testable import LoopVulkan
import Testing

/// Every typed push-constant block against the block its shader declares: the members of the
/// compiled SPIR-V's push-constant struct (names and count, from OpMemberName / OpTypeStruct),
/// under the block's defines, on both read paths where the shader has a texel path.
@Suite struct PushBlockTests {
    static let blocks: [any PushBlock.Type] = [
        LinearPush.self, MatmulPush.self, LinearSiluPush.self, MatmulSiluPush.self, LinearArgmaxPush.self,
        AttentionPush.self, AttentionCombinePush.self, RMSNormPush.self, LayerNormPush.self, RopePush.self, KVWritePush.self,
        KVCopyPush.self, ExitDecidePush.self, EmbeddingPush.self, SiluMulPush.self, UnaryPush.self, BinaryPush.self, CopyPush.self,
        ArgmaxPush.self, SoftmaxPush.self, AdvancePush.self, BlockLinearPush.self, BlockLinearSiluPush.self,
    ]

    /// The push-constant struct's member names in the SPIR-V of `words`.
    static func pushMembers(_ words: [UInt32]) -> [String] {
        var i = 5
        var pointerType: [UInt32: UInt32] = [:]        // pointer id -> pointee (push-constant class)
        var pushPointer: UInt32?
        var memberNames: [UInt32: [UInt32: String]] = [:]
        var memberCount: [UInt32: Int] = [:]
        func string(_ ws: ArraySlice<UInt32>) -> String {
            var bytes: [UInt8] = []
            for w in ws { for k in 0..<4 { let b = UInt8((w >> (8 * k)) & 0xff); if b == 0 { return String(decoding: bytes, as: UTF8.self) }; bytes.append(b) } }
            return String(decoding: bytes, as: UTF8.self)
        }
        while i < words.count {
            let count = Int(words[i] >> 16), op = words[i] & 0xffff
            guard count > 0, i + count <= words.count else { break }
            let args = words[(i + 1)..<(i + count)]
            let a = Array(args)
            switch op {
            case 6: memberNames[a[0], default: [:]][a[1]] = string(args.dropFirst(2))      // OpMemberName
            case 30: memberCount[a[0]] = a.count - 1                                        // OpTypeStruct
            case 32 where a[1] == 9: pointerType[a[0]] = a[2]                                // OpTypePointer PushConstant
            case 59 where a[2] == 9: pushPointer = a[0]                                      // OpVariable PushConstant
            default: break
            }
            i += count
        }
        guard let ptr = pushPointer, let st = pointerType[ptr] else { return [] }
        let n = memberCount[st] ?? 0
        return (0..<n).map { memberNames[st]?[UInt32($0)] ?? "#\($0)" }
    }

    @Test(arguments: blocks.map { ObjectIdentifier($0) })
    func blockMatchesTheShader(_ id: ObjectIdentifier) throws {
        let block = Self.blocks.first { ObjectIdentifier($0) == id }!
        let texel = try ShaderSource.text(block.shader).contains("READ_TEXEL")
        let paths = block.defines["READ_TEXEL"] != nil || !texel ? [[String: String]()] : [["READ_TEXEL": "0"], ["READ_TEXEL": "1"]]
        for path in paths {
            let defines = ["W_DTYPE": "0", "B_DTYPE": "0"].merging(block.defines) { $1 }.merging(path) { $1 }
            let spirv = try ShaderCompiler.shared.compile(source: try ShaderSource.expanded(block.shader), name: block.shader, defines: defines, optimize: false)
            let members = Self.pushMembers(spirv)
            #expect(!members.isEmpty, "\(block.shader) \(defines): no push-constant block found")
            #expect(members == block.memberNames, "\(block) vs \(block.shader) \(defines): \(block.memberNames) vs \(members)")
        }
    }

    @Test func wordsFollowTheDeclaration() {
        let p = LinearSiluPush(base: LinearPush(inF: 7, rows: 3), silu: SiluTail(siluDim: 5, hStride: 6, hCol: 2))
        #expect(p.words == [7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 5, 6, 2])
        #expect(RMSNormPush(eps: 0.5).words[9] == Float(0.5).bitPattern)
        #expect(LinearSiluPush.wordCount == 15 && LinearArgmaxPush.wordCount == 14 && RMSNormPush.wordCount == 18)
    }
}

/// A dispatch whose push constants do not fill the pipeline's block is an error (never padded).
@Suite(.serialized, .enabled(if: GPU.available))
struct DispatchCheckTests {
    @Test func shortOrLongPushBlockIsAnError() throws {
        let ctx = GPU.context!
        let p = try ctx.makePipeline("copy.comp", bindings: 2, pushBytes: CopyPush.wordCount * 4)
        let arena = MemoryArena(context: ctx, hostVisible: true, blockSize: 1 << 16)
        let a = try arena.allocate(256), b = try arena.allocate(256)
        let cb = try ctx.record()
        for words in [[UInt32](repeating: 0, count: 5), [UInt32](repeating: 0, count: 7)] {
            #expect(throws: VulkanError.self) { try cb.dispatch(p, [Binding(a), Binding(b)], push: words, groups: (1, 1, 1)) }
        }
        #expect(throws: VulkanError.self) { try cb.dispatch(p, [Binding(a)], push: CopyPush().words, groups: (1, 1, 1)) }
        try cb.dispatch(p, [Binding(a), Binding(b)], push: CopyPush(width: 4, rows: 1).words, groups: (1, 1, 1))
        try cb.end()
        GPU.expectNoValidationMessages()
    }
}
