/// GPT-2's reversible byte <-> character table.
///
/// Byte-level BPE works on bytes, but the vocabulary stores tokens as text. Each of the 256 byte
/// values is shown as one printable character: the bytes `!`...`~`, `¡`...`¬` and `®`...`ÿ` as
/// the Latin-1 character of the same value, the 68 others (controls, space, DEL, NBSP, soft
/// hyphen) as U+0100, U+0101, ... in byte order, so a space is `Ġ` (U+0120) and `\n` is `Ċ`.
enum ByteLevel {
    /// `scalars[b]` is the character standing for byte `b`.
    static let scalars: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if isPrintedAsItself(UInt8(byte)) {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The inverse table, indexed by scalar value (0..<324); `-1` where a scalar stands for no byte.
    static let bytesByScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (byte, scalar) in scalars.enumerated() {
            table[Int(scalar.value)] = Int16(byte)
        }
        return table
    }()

    private static func isPrintedAsItself(_ byte: UInt8) -> Bool {
        (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
    }

    /// The byte a character stands for, or nil when it is not one of the 256 table characters.
    @inline(__always)
    static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let value = Int(scalar.value)
        guard value < bytesByScalar.count else { return nil }
        let byte = bytesByScalar[value]
        return byte < 0 ? nil : UInt8(byte)
    }

    /// Maps the UTF-8 bytes of `text` to their table characters.
    static func encode<S: StringProtocol>(_ text: S) -> String {
        var result = String.UnicodeScalarView()
        for byte in text.utf8 {
            result.append(scalars[Int(byte)])
        }
        return String(result)
    }

    /// The bytes a token string stands for, following the `tokenizers` ByteLevel decoder: a
    /// token made only of table characters becomes their bytes; any other token (an added
    /// token such as `<think>\n`, say) contributes its own UTF-8 bytes unchanged.
    static func decodedBytes(of token: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.unicodeScalars.count)
        for scalar in token.unicodeScalars {
            guard let byte = byte(for: scalar) else { return Array(token.utf8) }
            bytes.append(byte)
        }
        return bytes
    }
}

/// UTF-8 decoding that replaces invalid input the way Rust's `String::from_utf8_lossy` does
/// (and with it the `tokenizers` ByteLevel decoder): each maximal invalid subpart (an invalid
/// byte, or the longest prefix of a well-formed sequence that breaks off) becomes one U+FFFD.
enum LossyUTF8 {
    /// Decodes `bytes`. With `isFinal` false, a well-formed but incomplete sequence at the very
    /// end is left undecoded, so that later bytes can complete it; `consumed` says how many bytes
    /// were used (all of them when `isFinal` is true).
    static func decode(_ bytes: some Collection<UInt8>, isFinal: Bool) -> (text: String, consumed: Int) {
        let input = Array(bytes)
        var output: [UInt8] = []
        output.reserveCapacity(input.count)
        let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]
        var i = 0
        let n = input.count
        while i < n {
            let first = input[i]
            if first < 0x80 {
                output.append(first)
                i += 1
                continue
            }
            let width: Int
            switch first {
            case 0xC2...0xDF: width = 2
            case 0xE0...0xEF: width = 3
            case 0xF0...0xF4: width = 4
            default: width = 0
            }
            if width == 0 {
                output.append(contentsOf: replacement)
                i += 1
                continue
            }
            // Count how many bytes after `first` continue a well-formed sequence.
            var valid = 1
            while valid < width, i + valid < n, isAllowed(input[i + valid], after: first, at: valid) {
                valid += 1
            }
            if valid == width {
                output.append(contentsOf: input[i..<(i + width)])
                i += width
            } else if i + valid == n && !isFinal {
                break  // incomplete sequence at the end: wait for more bytes
            } else {
                output.append(contentsOf: replacement)
                i += valid
            }
        }
        return (String(decoding: output, as: UTF8.self), i)
    }

    /// Whether `byte` may sit at position `index` (1, 2 or 3) of a sequence starting with `first`.
    @inline(__always)
    private static func isAllowed(_ byte: UInt8, after first: UInt8, at index: Int) -> Bool {
        if index == 1 {
            switch first {
            case 0xE0: return (0xA0...0xBF).contains(byte)  // no overlong forms
            case 0xED: return (0x80...0x9F).contains(byte)  // no surrogates
            case 0xF0: return (0x90...0xBF).contains(byte)  // no overlong forms
            case 0xF4: return (0x80...0x8F).contains(byte)  // nothing above U+10FFFF
            default: return (0x80...0xBF).contains(byte)
            }
        }
        return (0x80...0xBF).contains(byte)
    }
}
