import Foundation

/// Plain fp32 CPU twins of the plan ops: the reference every GPU kernel is checked against.
/// Each op kind lives in its own file (`CPUOps/<Kind>.swift`), written as simple loops with
/// fp32 accumulation. Twins do not check bounds: `CPUBackend` validates every op first.
public enum CPUOps {}

/// A column window of an fp32 row-major matrix: element (r, c) lives at
/// `base[r * stride + col + c]`. `stride` is the matrix's declared width (values per row).
/// A plain pointer view (marked Sendable so that row-parallel loops can share it; the
/// parallel twins write disjoint elements).
public struct CPURows: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    public let stride: Int
    public let col: Int

    public init(base: UnsafeMutablePointer<Float>, stride: Int, col: Int = 0) {
        self.base = base; self.stride = stride; self.col = col
    }

    /// A window over a buffer (which must hold every row the op touches).
    public init(_ buffer: UnsafeMutableBufferPointer<Float>, stride: Int, col: Int = 0) {
        self.init(base: buffer.baseAddress!, stride: stride, col: col)
    }

    /// Pointer to element (r, 0) of the window.
    @inline(__always) public func row(_ r: Int) -> UnsafeMutablePointer<Float> { base + r * stride + col }

    @inline(__always) public subscript(r: Int, c: Int) -> Float {
        get { base[r * stride + col + c] }
        nonmutating set { base[r * stride + col + c] = newValue }
    }
}

/// A read-only pointer that parallel loops may share (the data is not written meanwhile).
struct SharedPointer: @unchecked Sendable {
    let pointer: UnsafePointer<Float>?
}
