import Foundation

/// JSON string literals for the places that write JSON text by hand (byte-exact config files,
/// the server's responses): one escaper.
public enum JSONText {
    /// `s` as a JSON string literal: quote, backslash and control characters escaped. With
    /// `asciiOnly` every scalar outside printable ASCII becomes `\uXXXX` (UTF-16 units, as Python's
    /// `json.dumps(ensure_ascii=True)` writes); otherwise UTF-8 is kept, except U+2028 and U+2029,
    /// escaped for JavaScript readers.
    public static func quote(_ s: String, asciiOnly: Bool = false) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20 || (asciiOnly && u.value > 0x7E) || u.value == 0x2028 || u.value == 0x2029:
                for unit in String(u).utf16 { out += String(format: "\\u%04x", unit) }
            default:
                out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
