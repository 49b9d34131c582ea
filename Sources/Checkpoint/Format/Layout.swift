// Every fixed field of docs/FORMAT.md, written once: its offset in its
// record, its width and its name in messages. Encoders write fields in
// this order and decoders read them by these names, so that an offset in
// an error message is always the one the document gives.

/// One fixed-width field of a record.
struct Field: Sendable {
    /// Offset from the start of the record.
    let offset: Int
    /// Width in bytes.
    let size: Int
    /// The name docs/FORMAT.md gives it.
    let name: String

    init(_ offset: Int, _ size: Int, _ name: String) {
        self.offset = offset
        self.size = size
        self.name = name
    }

    /// Offset of the first byte after the field.
    var end: Int { offset + size }
}

/// The header, at offset 0 (versions 1 and 2).
enum HeaderLayout {
    static let magic = Field(0, 8, "magic")
    static let version = Field(8, 4, "version")
    static let headerLength = Field(12, 4, "headerLength")
    static let flags = Field(16, 4, "flags")
    static let pageSize = Field(20, 4, "pageSize")
    static let frameLimit = Field(24, 4, "frameLimit")
    static let kindCount = Field(28, 4, "kindCount")
    static let fileSize = Field(32, 8, "fileSize")
    static let dataSize = Field(40, 8, "dataSize")
    static let segmentCount = Field(48, 8, "segmentCount")
    static let reserved = Field(56, 4, "reserved")
    static let headerCRC = Field(60, 4, "headerCRC")
    static let recordLength = 64
}

/// A segment record: of version 1's metadata, and of version 2's `SEGT`
/// section.
enum SegmentRecordLayout {
    static let start = Field(0, 8, "start")
    static let end = Field(8, 8, "end")
    static let refs = Field(16, 8, "refs")
    static let kind = Field(24, 1, "kind")
    static let reserved = Field(25, 7, "reserved")
    static let recordLength = 32
}

/// The 8 bytes that close version 1's metadata and the index: a CRC-32C
/// and 4 reserved bytes.
enum ClosingLayout {
    static let crc = Field(0, 4, "crc")
    static let reserved = Field(4, 4, "reserved")
    static let recordLength = 8
}

/// The fixed start of a frame record; the run table follows.
enum FrameLayout {
    static let tag = Field(0, 4, "tag")
    static let runCount = Field(4, 4, "runCount")
    static let sequence = Field(8, 8, "sequence")
    static let firstAddress = Field(16, 8, "firstAddress")
    static let uncompressedLength = Field(24, 4, "uncompressedLength")
    static let compressedLength = Field(28, 4, "compressedLength")
    static let payloadCRC = Field(32, 4, "payloadCRC")
    static let runTableLength = Field(36, 4, "runTableLength")
    /// Where the run table starts.
    static let fixedLength = 40
    /// The run table's closing CRC.
    static let headerCRCLength = 4
}

/// The fixed start of the index record. Version 1 follows it with the
/// per-kind totals; version 2 with the entries.
enum IndexLayout {
    static let tag = Field(0, 4, "tag")
    /// Version 1: the number of kinds counted. Version 2: the length of
    /// an entry.
    static let kindCount = Field(4, 4, "kindCount")
    static let entryLength = Field(4, 4, "entryLength")
    static let frameCount = Field(8, 8, "frameCount")
    static let storedBytes = Field(16, 8, "storedBytes")
    /// Version 1 only: stored bytes per kind, then the accounting per kind,
    /// 8 bytes each.
    static let storedPerKind = 24
    static let fixedLength = 24
}

/// An index entry (version 2 adds an optional frame digest after these).
enum IndexEntryLayout {
    static let offset = Field(0, 8, "offset")
    static let uncompressedLength = Field(8, 4, "uncompressedLength")
    static let compressedLength = Field(12, 4, "compressedLength")
    static let firstAddress = Field(16, 8, "firstAddress")
    static let endAddress = Field(24, 8, "endAddress")
    static let headerCRC = Field(32, 4, "headerCRC")
    static let payloadCRC = Field(36, 4, "payloadCRC")
    static let recordLength = 40
    /// Version 2: the frame's digest (its header and the SHA-256 of its
    /// payload, hashed), in entries of length 72.
    static let digest = Field(40, 32, "digest")
}

/// The trailer, the last 64 bytes of a checkpoint (versions 1 and 2).
enum TrailerLayout {
    static let magic = Field(0, 8, "magic")
    static let version = Field(8, 4, "version")
    static let trailerLength = Field(12, 4, "trailerLength")
    static let indexOffset = Field(16, 8, "indexOffset")
    static let indexLength = Field(24, 8, "indexLength")
    static let checkpointLength = Field(32, 8, "checkpointLength")
    static let frameCount = Field(40, 8, "frameCount")
    static let storedBytes = Field(48, 8, "storedBytes")
    static let headerCRC = Field(56, 4, "headerCRC")
    static let trailerCRC = Field(60, 4, "trailerCRC")
    static let recordLength = 64
}

/// A section table (version 2): its fixed start, then `count` entries,
/// then a closing CRC.
enum SectionTableLayout {
    static let tag = Field(0, 4, "tag")
    static let count = Field(4, 4, "count")
    static let fixedLength = 8
}

/// An entry of a section table.
enum SectionEntryLayout {
    static let type = Field(0, 4, "type")
    static let flags = Field(4, 4, "flags")
    static let offset = Field(8, 8, "offset")
    static let length = Field(16, 8, "length")
    static let crc = Field(24, 4, "crc")
    static let reserved = Field(28, 4, "reserved")
    static let recordLength = 32
}
