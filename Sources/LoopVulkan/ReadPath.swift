import Foundation

/// How `.linear` reads its weight matrix and input rows: the decode GEMV (one row, matvec.comp)
/// and the prefill matrix-matrix product (several rows, matmul.comp).
///
/// - `storage`: storage buffers (SSBOs): one feature per workgroup (GEMV), 64x64 shared-memory
///   tiles (matmul). Right for real GPUs.
/// - `texel`: uniform texel buffer views of format `R32G32B32A32_UINT` (16 bytes, e.g. 8 bf16,
///   per `texelFetch`), several features (and for matmul several rows) per subgroup. On lavapipe SSBO loads run at ~1 GB/s
///   while texel fetches reach ~20 GB/s (see DESIGN.md, "Facts learned on this platform").
///
/// Bias and output stay storage buffers on both paths; both give the same results up to fp32
/// summation order.
public enum ReadPath: String, Sendable, CaseIterable, CustomStringConvertible {
    case storage
    case texel

    public var description: String { rawValue }

    /// The environment variable that forces a path: `LOOPVK_READ_PATH=texel|storage`.
    public static let environmentKey = "LOOPVK_READ_PATH"

    /// The path a device reads fastest with: texel views on CPU devices that support them,
    /// storage buffers elsewhere.
    public static func preferred(for info: DeviceInfo) -> ReadPath {
        info.kind == .cpu && info.uniformTexelBuffers ? .texel : .storage
    }

    /// `requested` if given, else `LOOPVK_READ_PATH`, else the device's preferred path. Throws
    /// for an unknown value in the environment or a texel path the device cannot do.
    public static func resolve(_ requested: ReadPath?, for info: DeviceInfo,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ReadPath {
        var path = preferred(for: info)
        if let requested {
            path = requested
        } else if let v = environment[environmentKey], !v.isEmpty {
            guard let p = ReadPath(rawValue: v.lowercased()) else {
                throw VulkanError("read path", message: "\(environmentKey)=\(v): expected one of \(allCases.map(\.rawValue).joined(separator: ", "))")
            }
            path = p
        }
        if path == .texel && !info.uniformTexelBuffers {
            throw VulkanError("read path", message: "\(info.name) has no uniform texel buffers of format R32G32B32A32_UINT; use \(environmentKey)=storage")
        }
        return path
    }
}
