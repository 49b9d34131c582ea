/// `ANNO` (head, ancillary): free-form annotations, such as who saved the
/// checkpoint, when, and from what. A reader that skips it restores the
/// same memory.
///
/// Payload: count u32, then `count` entries of keyLength u8, key (1 to 64
/// bytes of `a-z 0-9 . _ -`), valueLength u16, value (UTF-8, at most
/// 4096 bytes); keys unique and in increasing byte order.
enum AnnotationsSection {
    static let maxLength: UInt64 = 64 << 10
    static let maxKeyLength = 64
    static let maxValueLength = 4096

    /// Whether `key` may name an annotation.
    static func isValidKey(_ key: String) -> Bool {
        let bytes = Array(key.utf8)
        return (1...maxKeyLength).contains(bytes.count)
            && bytes.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }
    }

    /// Checks annotations a caller gives a save.
    static func validate(_ annotations: [String: String]) throws(CheckpointUsageError) {
        for (key, value) in annotations {
            guard isValidKey(key) else {
                throw CheckpointUsageError("annotation key '\(key)' must be 1 to 64 characters of a-z, 0-9, '.', '_' and '-'")
            }
            guard value.utf8.count <= maxValueLength else {
                throw CheckpointUsageError("annotation '\(key)' is longer than \(maxValueLength) bytes")
            }
        }
        guard UInt64(encode(annotations).count) <= maxLength else {
            throw CheckpointUsageError("annotations take more than \(maxLength) bytes")
        }
    }

    static func encode(_ annotations: [String: String]) -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(annotations.count))
        for key in annotations.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            let k = Array(key.utf8)
            let v = Array(annotations[key]!.utf8)
            w.u8(UInt8(k.count))
            w.raw(k)
            w.u8(UInt8(v.count & 0xFF))
            w.u8(UInt8(v.count >> 8))
            w.raw(v)
        }
        return w.bytes
    }

    static func decode(_ bytes: [UInt8], offset: UInt64) throws(CheckpointError) -> [String: String] {
        let section = CheckpointSection.section(.annotations)
        var r = ByteReader(bytes, base: offset, section: section)
        let count = try r.u32()
        var out: [String: String] = [:]
        var previous: [UInt8]?
        for i in 0..<count {
            let at = r.offset
            let keyLength = Int(try r.u8())
            let key = Array(try r.raw(keyLength))
            let valueLength = Int(try r.u8()) | Int(try r.u8()) << 8
            let value = Array(try r.raw(valueLength))
            guard let k = String(validating: key, as: UTF8.self), isValidKey(k) else {
                throw .field(section, at, "annotation \(i) key", expected: "1 to 64 characters of a-z, 0-9, '.', '_' and '-'", found: hexBytes(key))
            }
            if let previous, !previous.lexicographicallyPrecedes(key) {
                throw .field(section, at, "annotation \(i) key", expected: "keys in increasing order, each once", found: k)
            }
            guard valueLength <= maxValueLength, let v = String(validating: value, as: UTF8.self) else {
                throw .field(section, at, "annotation \(i) value", expected: "UTF-8 text of at most \(maxValueLength) bytes", found: "\(valueLength) bytes")
            }
            out[k] = v
            previous = key
        }
        if r.position != bytes.count {
            throw .field(section, r.offset, "length", expected: "\(r.position) bytes for \(count) annotations", found: bytes.count)
        }
        return out
    }
}
