import Crypto

/// What identifies a checkpoint's contents: the SHA-256 manifest digest of
/// docs/FORMAT.md ("Identity"). It covers the header, the head sections
/// (segment table, parent, encryption), the index (each frame's offset,
/// addresses, checksums and, when signed, digest) and every tail section
/// but `AUTH` and `SIGN`, which carry the identity itself (accounting,
/// page hashes, references): a child records its parent's, `AUTH` seals
/// it and a signature signs it.
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
        hexDigits(bytes)
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

/// One part of a manifest: its length and its own SHA-256. Parts are
/// hashed on their own so that a reader can hash each one as it reads it,
/// in whatever order it reads them (from a file: the index and the tail
/// before the head), and combine them in file order at the end.
struct ManifestPart: Sendable, Hashable {
    var length: UInt64
    var digest: [UInt8]

    /// The 16-byte part that describes a tail section: its type, flags and
    /// length. The table that lists it is not hashed: its offsets follow
    /// from the lengths by the format's rules.
    static func tailSection(type: SectionType, flags: SectionFlags, length: UInt64) -> ManifestPart {
        var w = ByteWriter(capacity: 16)
        w.u32(type.rawValue)
        w.u32(flags.rawValue)
        w.u64(length)
        var h = PartHasher()
        h.add(w.bytes)
        return h.finish()
    }
}

/// Hashes one part of a manifest, fed in pieces.
struct PartHasher {
    private var hash = SHA256()
    private(set) var length: UInt64 = 0

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        hash.update(bufferPointer: bytes)
        length += UInt64(bytes.count)
    }

    mutating func add(_ bytes: some Sequence<UInt8>) {
        if bytes.withContiguousStorageIfAvailable({ add(UnsafeRawBufferPointer($0)) }) == nil {
            Array(bytes).withUnsafeBytes { add($0) }
        }
    }

    func finish() -> ManifestPart {
        ManifestPart(length: length, digest: Array(hash.finalize()))
    }
}

/// Computes a manifest digest from the parts of a checkpoint, given in
/// file order: the SHA-256 of a domain string, then of each part its
/// length (u64) and its SHA-256. The lengths keep two ways of cutting the
/// same bytes into parts from hashing alike.
struct ManifestHasher {
    private var hash = SHA256()
    /// The part being added by `beginPart` and `add`.
    private var current: PartHasher?
    /// Bytes still expected in the current part.
    private var remaining: UInt64 = 0

    static let domain = Array("pgsnap manifest v2\0".utf8)

    init() {
        hash.update(data: Self.domain)
    }

    /// Appends a part hashed elsewhere.
    mutating func append(_ part: ManifestPart) {
        precondition(current == nil, "ManifestHasher: the last part lacks \(remaining) bytes")
        var w = ByteWriter(capacity: 8)
        w.u64(part.length)
        hash.update(data: w.bytes)
        hash.update(data: part.digest)
    }

    /// Starts a part of `length` bytes, given next by one or more `add`.
    mutating func beginPart(length: UInt64) {
        precondition(current == nil, "ManifestHasher: the last part lacks \(remaining) bytes")
        current = PartHasher()
        remaining = length
        closeIfComplete()
    }

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        precondition(current != nil && UInt64(bytes.count) <= remaining, "ManifestHasher: \(bytes.count) bytes given, \(remaining) expected")
        current!.add(bytes)
        remaining -= UInt64(bytes.count)
        closeIfComplete()
    }

    mutating func add(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { add($0) }
    }

    private mutating func closeIfComplete() {
        if remaining == 0, let part = current {
            current = nil
            append(part.finish())
        }
    }

    /// A whole part.
    mutating func part(_ bytes: [UInt8]) {
        beginPart(length: UInt64(bytes.count))
        add(bytes)
    }

    /// A tail section's parts: its type, flags and length, then its
    /// payload (given by `add`).
    mutating func beginTailSection(type: SectionType, flags: SectionFlags, length: UInt64) {
        append(.tailSection(type: type, flags: flags, length: length))
        beginPart(length: length)
    }

    consuming func finish() -> CheckpointIdentity {
        precondition(current == nil, "ManifestHasher: the last part lacks \(remaining) bytes")
        return CheckpointIdentity(bytes: Array(hash.finalize()))
    }
}

extension SectionType {
    /// Whether a tail section of this type is left out of the manifest:
    /// `AUTH` and `SIGN` carry the identity, sealed or signed.
    var isOutsideManifest: Bool { self == .authentication || self == .signature }
}
