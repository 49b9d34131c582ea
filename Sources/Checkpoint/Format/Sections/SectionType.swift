/// The type of a version-2 section: four ASCII letters or digits (`SEGT`),
/// stored as they read, first letter first.
public struct SectionType: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The four bytes, as stored (little-endian: the first letter is the
    /// low byte).
    public let rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// The type spelled by `name`.
    ///
    /// - Precondition: `name` is four ASCII letters or digits.
    init(_ name: StaticString) {
        precondition(name.utf8CodeUnitCount == 4, "SectionType: \(name) is not four letters")
        var v: UInt32 = 0
        name.withUTF8Buffer { bytes in
            for (i, b) in bytes.enumerated() {
                v |= UInt32(b) << (8 * i)
            }
        }
        rawValue = v
    }

    var bytes: [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: rawValue >> (8 * $0)) } }

    /// Whether every byte is an ASCII letter or digit, as the format
    /// requires.
    var isWellFormed: Bool {
        bytes.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }

    /// The four letters, or their bytes in hexadecimal if they are not
    /// letters.
    public var description: String {
        isWellFormed ? String(decoding: bytes, as: UTF8.self) : hexBytes(bytes)
    }

    public static func < (a: SectionType, b: SectionType) -> Bool { a.description < b.description }

    /// The segment table (head, critical, required).
    public static let segments = SectionType("SEGT")
    /// Stored bytes and the saved file's accounting per memory kind (tail,
    /// critical, required).
    public static let accounting = SectionType("ACCT")
    /// Free-form annotations: who saved it, when, from what (head,
    /// ancillary).
    public static let annotations = SectionType("ANNO")
    /// The parent of an incremental checkpoint (head, critical).
    public static let parent = SectionType("PRNT")
    /// A content hash of every stored page (tail, ancillary).
    public static let pageHashes = SectionType("PHSH")
    /// Pages that are not stored but taken from the parent or from another
    /// stored page (tail, critical).
    public static let references = SectionType("REFS")
    /// The order in which frames were first needed after a lazy restore
    /// (tail, ancillary).
    public static let prefetch = SectionType("PREF")
    /// How the checkpoint is encrypted, and for whom (head, critical, the
    /// first head section).
    public static let encryption = SectionType("ENCR")
    /// The checkpoint's identity sealed with its file key, which
    /// authenticates everything but the frames to whoever can open it
    /// (tail, critical, sealed, required with `ENCR`; the last tail
    /// section but `SIGN`).
    public static let authentication = SectionType("AUTH")
    /// A signature over the checkpoint's identity (tail, ancillary, last).
    public static let signature = SectionType("SIGN")
}

/// Where a section lies: before the frames, or after the index.
public enum SectionPlacement: String, Hashable, Sendable, CustomStringConvertible {
    /// Between the header and the first frame: known before any page is
    /// read.
    case head
    /// Between the index and the trailer: known only once every frame is
    /// written.
    case tail

    public var description: String { rawValue }
}

/// The flags of a section.
public struct SectionFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// A reader that does not know the section's type must reject the
    /// checkpoint (otherwise it skips the section).
    public static let critical = SectionFlags(rawValue: 1)
    /// The payload is encrypted with the checkpoint's file key (see
    /// `ENCR`).
    public static let sealed = SectionFlags(rawValue: 2)

    /// The flags version 2 defines; any other bit makes the file invalid.
    static let known: SectionFlags = [.critical, .sealed]
}

/// An entry of a section table: what a section is, and where.
public struct SectionEntry: Hashable, Sendable {
    public var type: SectionType
    public var flags: SectionFlags
    /// Checkpoint offset of the payload.
    public var offset: UInt64
    /// Bytes of the payload (without padding).
    public var length: UInt64
    /// CRC-32C of the payload.
    public var crc: UInt32
    public var placement: SectionPlacement

    public var isCritical: Bool { flags.contains(.critical) }
    public var isSealed: Bool { flags.contains(.sealed) }

    /// The payload's range in the checkpoint.
    var end: UInt64 { offset + length }
}
