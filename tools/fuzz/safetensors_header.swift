// libFuzzer target: the safetensors header parser, from bytes in memory
// (SafeTensorsFile(bytes:)), then every tensor read back, then a write/parse round trip.
// Build and run: tools/fuzz/run.sh (compiled into the LoopCore module).

import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func safetensorsFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Data(bytes: $0, count: size) } ?? Data()
    let file: SafeTensorsFile
    do {
        file = try SafeTensorsFile(bytes: bytes, name: "fuzz.safetensors")
    } catch {
        FuzzCheck.expectCleanError(error, "SafeTensorsFile(bytes:)")
        return 0
    }
    // A header that passed the checks describes tensors that lie inside the data, one after
    // another without overlap, each exactly dtype x shape bytes long.
    var entries: [SafeTensorsWriter.Entry] = []
    for name in file.tensors.keys.sorted() {
        let info = file.tensors[name]!
        FuzzCheck.require(info.byteCount == info.elementCount * info.dtype.byteSize, "\(name): byte count")
        FuzzCheck.require(info.fileOffset >= 8 && info.fileOffset + info.byteCount <= size, "\(name): range")
        let raw = file.bytes(of: info)
        FuzzCheck.require(raw.count == info.byteCount, "\(name): bytes(of:)")
        do {
            let floats = try file.floats(name)
            FuzzCheck.require(floats.count == info.elementCount, "\(name): floats count")
            if !info.dtype.isFloat {
                FuzzCheck.require(try file.ints(name).count == info.elementCount, "\(name): ints count")
            }
        } catch {
            fatalError("\(name): reading a checked tensor threw \(error)")
        }
        entries.append(SafeTensorsWriter.Entry(name: name, dtype: info.dtype, shape: info.shape, data: Data(raw)))
    }
    // What the writer makes of the parsed tensors parses back to the same tensors.
    do {
        let again = try SafeTensorsFile(bytes: try SafeTensorsWriter.serialize(entries, metadata: file.metadata))
        FuzzCheck.require(again.tensors.count == file.tensors.count, "round trip: tensor count")
        FuzzCheck.require(again.metadata == file.metadata, "round trip: metadata")
        for (name, info) in file.tensors {
            guard let back = again.tensors[name] else { fatalError("round trip lost \(name.debugDescription)") }
            FuzzCheck.require(back.dtype == info.dtype && back.shape == info.shape, "round trip: \(name) dtype/shape")
            FuzzCheck.require(Data(again.bytes(of: back)) == Data(file.bytes(of: info)), "round trip: \(name) bytes")
        }
    } catch {
        fatalError("round trip of a valid file failed: \(error)")
    }
    return 0
}
