import Crypto

/// What identifies a checkpoint's contents: the SHA-256 manifest digest of
/// docs/FORMAT.md ("Identity"). It covers the header, the head sections
/// (segment table, parent, encryption), the index (each frame's offset,
/// addresses and checksums) and every tail section but the signature
/// (accounting, page hashes, references): a child records its parent's,
/// and a signature signs it.
public struct CheckpointIdentity: Hashable, Sendable, CustomStringConvertible {
    /// The 32 bytes of the digest.
    public let bytes: [UInt8]

    public static let length = 32

    /// - Precondition: `bytes.count == CheckpointIdentity.length`.
    public init(bytes: [UInt8]) {
        precondition(bytes.count == Self.length, "CheckpointIdentity: \(bytes.count) bytes, not \(Self.length)")
        self.bytes = bytes
    }

    /// The digest in lowercase hexadecimal, 64 digits.
    public var description: String {
        bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined()
    }

    /// The identity spelled by 64 hexadecimal digits, or nil.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 2 * Self.length else { return nil }
        var out: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let b = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            out.append(b)
        }
        bytes = out
    }
}

/// Computes a manifest digest from the parts of a checkpoint, given in
/// file order. Each part is prefixed by its length, so that no two ways
/// of cutting the same bytes into parts hash alike.
struct ManifestHasher {
    private var hash = SHA256()
    /// Bytes still expected in the part being added.
    private var remaining: UInt64 = 0

    static let domain = Array("pgsnap manifest v2\0".utf8)

    init() {
        hash.update(data: Self.domain)
    }

    /// Starts a part of `length` bytes, given next by one or more `add`.
    mutating func beginPart(length: UInt64) {
        precondition(remaining == 0, "ManifestHasher: the last part lacks \(remaining) bytes")
        var w = ByteWriter()
        w.u64(length)
        hash.update(data: w.bytes)
        remaining = length
    }

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        precondition(UInt64(bytes.count) <= remaining, "ManifestHasher: \(bytes.count) bytes given, \(remaining) expected")
        hash.update(bufferPointer: bytes)
        remaining -= UInt64(bytes.count)
    }

    mutating func add(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { add($0) }
    }

    /// A whole part.
    mutating func part(_ bytes: [UInt8]) {
        beginPart(length: UInt64(bytes.count))
        add(bytes)
    }

    /// A tail section's part: its type, flags and length, then its
    /// payload (given by `add`). The table that lists it is not hashed:
    /// its offsets follow from the lengths by the format's rules.
    mutating func beginTailSection(type: SectionType, flags: SectionFlags, length: UInt64) {
        var w = ByteWriter()
        w.u32(type.rawValue)
        w.u32(flags.rawValue)
        w.u64(length)
        part(w.bytes)
        beginPart(length: length)
    }

    consuming func finish() -> CheckpointIdentity {
        precondition(remaining == 0, "ManifestHasher: the last part lacks \(remaining) bytes")
        return CheckpointIdentity(bytes: Array(hash.finalize()))
    }
}
