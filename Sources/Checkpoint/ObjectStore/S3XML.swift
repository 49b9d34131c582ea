/// The few values pgsnap reads from S3's XML answers: an error's `Code`
/// and `Message`, a new upload's `UploadId`, a listing's `Key`s.
///
/// S3's answers are flat, generated documents; this reads the text of an
/// element by its name and decodes XML's character references, which is
/// all those values need. It never traps on malformed input: a value that
/// is not there is nil.
struct S3XML {
    private let bytes: [UInt8]

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The text of the first `<name>` element.
    func value(of name: String) -> String? {
        values(of: name).first
    }

    /// The text of every `<name>` element, in document order.
    func values(of name: String) -> [String] {
        var out: [String] = []
        let open = Array("<\(name)>".utf8)
        let close = Array("</\(name)>".utf8)
        var from = 0
        while let start = find(open, from: from) {
            let valueStart = start + open.count
            guard let end = find(close, from: valueStart) else { break }
            out.append(S3XML.decode(String(decoding: bytes[valueStart..<end], as: UTF8.self)))
            from = end + close.count
        }
        return out
    }

    /// Whether the document is an `<Error>` (S3 may answer 200 to a
    /// CompleteMultipartUpload and report an error in the body).
    var isError: Bool {
        find(Array("<Error>".utf8), from: 0) != nil
    }

    /// Where `pattern` first occurs at or after `from`.
    private func find(_ pattern: [UInt8], from: Int) -> Int? {
        guard !pattern.isEmpty, bytes.count >= pattern.count else { return nil }
        var i = from
        while i <= bytes.count - pattern.count {
            if bytes[i] == pattern[0] && bytes[i..<i + pattern.count].elementsEqual(pattern) {
                return i
            }
            i += 1
        }
        return nil
    }

    /// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;` and `&#N;`/`&#xN;`.
    static func decode(_ s: String) -> String {
        guard s.contains("&") else { return s }
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == "&", let semicolon = s[i...].firstIndex(of: ";"), s.distance(from: i, to: semicolon) <= 10 {
                let entity = s[s.index(after: i)..<semicolon]
                var scalar: Unicode.Scalar?
                switch entity {
                case "amp": scalar = "&"
                case "lt": scalar = "<"
                case "gt": scalar = ">"
                case "quot": scalar = "\""
                case "apos": scalar = "'"
                default:
                    if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
                        scalar = UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init)
                    } else if entity.hasPrefix("#") {
                        scalar = UInt32(entity.dropFirst()).flatMap(Unicode.Scalar.init)
                    }
                }
                if let scalar {
                    out.unicodeScalars.append(scalar)
                    i = s.index(after: semicolon)
                    continue
                }
            }
            out.append(s[i])
            i = s.index(after: i)
        }
        return out
    }

    /// `text` with `&`, `<`, `>` and `"` escaped, for a document sent.
    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}
