import Crypto

/// The SHA-256 of one page, as `PHSH` stores it: a value cheap to compare
/// and to keep in tables.
struct PageDigest: Hashable, Sendable {
    var words: (UInt64, UInt64, UInt64, UInt64)

    static let length = 32

    init(words: (UInt64, UInt64, UInt64, UInt64)) {
        self.words = words
    }

    /// The SHA-256 of `page`.
    init(of page: UnsafeRawBufferPointer) {
        let digest = SHA256.hash(data: page)
        words = digest.withUnsafeBytes { b in
            (b.loadUnaligned(fromByteOffset: 0, as: UInt64.self), b.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
             b.loadUnaligned(fromByteOffset: 16, as: UInt64.self), b.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        }
    }

    /// The digest stored in `bytes` (32 of them).
    init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == Self.length, "PageDigest: \(bytes.count) bytes")
        words = (bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self), bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self), bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// The first eight bytes, as a table key.
    var prefix: UInt64 { words.0 }

    static func == (a: PageDigest, b: PageDigest) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
    }
}
