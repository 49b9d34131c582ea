/// Where in a checkpoint a problem was found.
public enum CheckpointSection: Hashable, Sendable, CustomStringConvertible {
    case header
    case metadata
    /// The frame record with this sequence number.
    case frame(UInt64)
    case index
    case trailer
    /// The file as a whole (its length, what follows the trailer).
    case file
    /// Version 2: the section table before the frames (`head`) or after
    /// the index (`tail`).
    case sectionTable(SectionPlacement)
    /// Version 2: the section of this type.
    case section(SectionType)

    public var description: String {
        switch self {
        case .header: "header"
        case .metadata: "metadata"
        case .frame(let n): "frame \(n)"
        case .index: "index"
        case .trailer: "trailer"
        case .file: "file"
        case .sectionTable(let placement): "\(placement) section table"
        case .section(let type): "section \(type)"
        }
    }
}

/// A checkpoint that cannot be read: it is not one, it is of an unknown
/// version, it is cut short, a checksum does not match, or a field breaks a
/// rule of docs/FORMAT.md.
///
/// Nothing read from a checkpoint ever traps: every problem becomes one of
/// these, naming the section, the offset, what was expected and what was
/// found.
public struct CheckpointError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        /// The magic number is wrong: this is not a checkpoint.
        case notACheckpoint
        /// A version this reader does not know.
        case unsupportedVersion(UInt32)
        /// The file ends before the section does.
        case truncated
        /// A checksum does not match.
        case checksumMismatch
        /// A field breaks a rule of the format.
        case invalidField(String)
        /// A frame's payload does not decompress to what its header says.
        case badPayload
        /// Bytes follow the trailer.
        case trailingData
        /// A critical section of a type this reader does not know: it
        /// cannot restore the checkpoint without understanding it.
        case unknownCriticalSection(SectionType)
        /// A well-formed checkpoint that asks for more than the reader
        /// allows (`RestoreOptions.memoryLimit`).
        case limitExceeded
        /// An encrypted part whose AEAD tag does not match: it was changed,
        /// or it belongs to another checkpoint.
        case authenticationFailed
    }

    public var reason: Reason
    public var section: CheckpointSection
    /// Offset in the checkpoint where the problem lies.
    public var offset: UInt64
    /// What was expected and what was found.
    public var detail: String

    public init(_ reason: Reason, _ section: CheckpointSection, offset: UInt64, _ detail: String) {
        self.reason = reason
        self.section = section
        self.offset = offset
        self.detail = detail
    }

    public var description: String {
        let what: String
        switch reason {
        case .notACheckpoint: what = "not a pgsnap checkpoint"
        case .unsupportedVersion(let v):
            let read = CheckpointFormat.versionsRead
            what = "unsupported format version \(v) (this reader reads versions \(read.lowerBound) to \(read.upperBound))"
        case .truncated: what = "truncated"
        case .checksumMismatch: what = "checksum mismatch"
        case .invalidField(let field): what = "invalid \(field)"
        case .badPayload: what = "bad compressed payload"
        case .trailingData: what = "data after the trailer"
        case .unknownCriticalSection(let type): what = "unknown critical section \(type)"
        case .limitExceeded: what = "over the restore limit"
        case .authenticationFailed: what = "authentication failed"
        }
        let place = "\(section) at offset \(offset) (0x\(String(offset, radix: 16)))"
        return detail.isEmpty ? "\(place): \(what)" : "\(place): \(what): \(detail)"
    }

    static func field(_ section: CheckpointSection, _ offset: UInt64, _ field: String, expected: String, found: some CustomStringConvertible) -> CheckpointError {
        CheckpointError(.invalidField(field), section, offset: offset, "expected \(expected), found \(found)")
    }

    /// A field of a record read by `r` that breaks a rule.
    static func field(_ r: ByteReader, _ f: Field, expected: String, found: some CustomStringConvertible) -> CheckpointError {
        .field(r.section, r.offset(of: f), f.name, expected: expected, found: found)
    }
}

/// Formats `x` as hexadecimal with a `0x` prefix.
func hex(_ x: UInt64) -> String { "0x" + String(x, radix: 16) }
