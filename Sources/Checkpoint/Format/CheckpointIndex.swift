import PGAlloc

/// What the index says about one frame.
public struct IndexEntry: Hashable, Sendable {
    public var offset: UInt64
    public var uncompressedLength: UInt32
    public var compressedLength: UInt32
    public var firstAddress: UInt64
    public var endAddress: UInt64
    public var headerCRC: UInt32
    public var payloadCRC: UInt32

    func encode(into w: inout ByteWriter) {
        w.u64(offset)
        w.u32(uncompressedLength)
        w.u32(compressedLength)
        w.u64(firstAddress)
        w.u64(endAddress)
        w.u32(headerCRC)
        w.u32(payloadCRC)
    }

    /// CRC-32C of the encoded entry, continuing `crc`.
    func checksum(continuing crc: UInt32) -> UInt32 {
        var w = ByteWriter(capacity: CheckpointFormat.indexEntryLength)
        encode(into: &w)
        return w.bytes.withUnsafeBytes { CRC32C.checksum($0, continuing: crc) }
    }
}

/// The totals at the head of the index.
public struct IndexTotals: Hashable, Sendable {
    public var frameCount: UInt64
    /// Bytes of page data stored.
    public var storedBytes: UInt64
    /// Stored bytes per kind of the segment they lie in: the restored
    /// file's accounting.
    public var storedPerKind: MemoryStats
    /// The saved file's accounting when the save ended.
    public var accounting: MemoryStats

    public init(frameCount: UInt64 = 0, storedBytes: UInt64 = 0, storedPerKind: MemoryStats = MemoryStats(), accounting: MemoryStats = MemoryStats()) {
        self.frameCount = frameCount
        self.storedBytes = storedBytes
        self.storedPerKind = storedPerKind
        self.accounting = accounting
    }

    func encode(into w: inout ByteWriter) {
        w.u32(CheckpointFormat.indexTag)
        w.u32(UInt32(CheckpointFormat.kindCount))
        w.u64(frameCount)
        w.u64(storedBytes)
        for kind in MemoryKind.allCases {
            w.u64(storedPerKind[kind])
        }
        for kind in MemoryKind.allCases {
            w.u64(accounting[kind])
        }
    }

    static let encodedLength = CheckpointFormat.indexFixedLength + 16 * CheckpointFormat.kindCount
}

/// Checks the index as it is read: the totals, then the entries in pieces,
/// then the checksum. Keeps a checksum of the entries alone, to compare
/// with the one computed from the frames.
struct IndexDecoder {
    let header: CheckpointHeader
    let indexOffset: UInt64
    private(set) var totals = IndexTotals()
    private(set) var decodedEntries: UInt64 = 0
    /// CRC-32C of the entries' bytes.
    private(set) var entriesCRC: UInt32 = 0
    private var recordCRC: UInt32 = 0
    private var previous: IndexEntry?

    init(header: CheckpointHeader, indexOffset: UInt64) {
        self.header = header
        self.indexOffset = indexOffset
    }

    var remaining: UInt64 { totals.frameCount - decodedEntries }

    /// Offset of the next entry.
    var offset: UInt64 {
        indexOffset + UInt64(IndexTotals.encodedLength) + decodedEntries * UInt64(CheckpointFormat.indexEntryLength)
    }

    /// Decodes the totals (the record's first bytes).
    mutating func decodeTotals(_ bytes: [UInt8]) throws(CheckpointError) {
        var r = ByteReader(bytes, base: indexOffset, section: .index)
        let tag = try r.u32()
        if tag != CheckpointFormat.indexTag {
            throw .field(.index, indexOffset, "tag", expected: "IDX1 (49 44 58 31)", found: hexBytes(bytes.prefix(4)))
        }
        let kindCount = try r.u32()
        if kindCount != UInt32(CheckpointFormat.kindCount) {
            throw .field(.index, indexOffset + 4, "kindCount", expected: "\(CheckpointFormat.kindCount)", found: kindCount)
        }
        totals.frameCount = try r.u64()
        totals.storedBytes = try r.u64()
        var stored: UInt64 = 0
        for kind in MemoryKind.allCases {
            let v = try r.u64()
            totals.storedPerKind[kind] = v
            let (s, o) = stored.addingReportingOverflow(v)
            if o {
                throw .field(.index, r.offset - 8, "storedPerKind", expected: "a sum that fits 64 bits", found: "overflow")
            }
            stored = s
        }
        if stored != totals.storedBytes {
            throw .field(.index, indexOffset + 16, "storedPerKind", expected: "a sum equal to storedBytes \(totals.storedBytes)", found: stored)
        }
        if totals.storedBytes > header.fileSize {
            throw .field(.index, indexOffset + 16, "storedBytes", expected: "at most fileSize \(header.fileSize)", found: totals.storedBytes)
        }
        for kind in MemoryKind.allCases {
            totals.accounting[kind] = try r.u64()
        }
        recordCRC = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[..<IndexTotals.encodedLength])) }
    }

    /// Decodes and checks the next entries; `bytes` holds whole entries.
    mutating func decodeEntries(_ bytes: [UInt8]) throws(CheckpointError) {
        precondition(bytes.count % CheckpointFormat.indexEntryLength == 0)
        let count = UInt64(bytes.count / CheckpointFormat.indexEntryLength)
        precondition(count <= remaining)
        recordCRC = bytes.withUnsafeBytes { CRC32C.checksum($0, continuing: recordCRC) }
        entriesCRC = bytes.withUnsafeBytes { CRC32C.checksum($0, continuing: entriesCRC) }
        var r = ByteReader(bytes, base: offset, section: .index)
        let maxCompressed = CheckpointFormat.maxCompressedLength(frameLimit: header.frameLimit)
        for _ in 0..<count {
            let at = r.offset
            let i = decodedEntries
            let e = IndexEntry(
                offset: try r.u64(), uncompressedLength: try r.u32(), compressedLength: try r.u32(),
                firstAddress: try r.u64(), endAddress: try r.u64(), headerCRC: try r.u32(), payloadCRC: try r.u32())
            let minOffset = previous.map { $0.offset + 1 } ?? header.framesOffset
            if e.offset < minOffset || e.offset >= indexOffset || e.offset % 8 != 0 {
                throw .field(
                    .index, at, "entry \(i) offset",
                    expected: "8-aligned, from \(hex(minOffset)) to below the index at \(hex(indexOffset))", found: hex(e.offset))
            }
            if i == 0 && e.offset != header.framesOffset {
                throw .field(.index, at, "entry 0 offset", expected: "\(hex(header.framesOffset)) (right after the metadata)", found: hex(e.offset))
            }
            if e.uncompressedLength == 0 || e.uncompressedLength > header.frameLimit || UInt64(e.uncompressedLength) % CheckpointFormat.pageSize != 0 {
                throw .field(.index, at + 8, "entry \(i) uncompressedLength", expected: "a multiple of 4096 up to \(header.frameLimit)", found: e.uncompressedLength)
            }
            if e.compressedLength == 0 || UInt64(e.compressedLength) > maxCompressed {
                throw .field(.index, at + 12, "entry \(i) compressedLength", expected: "1 to \(maxCompressed)", found: e.compressedLength)
            }
            let minEnd = previous?.endAddress ?? 0
            if e.firstAddress < minEnd || e.firstAddress >= e.endAddress || e.endAddress > header.fileSize
                || e.endAddress - e.firstAddress < UInt64(e.uncompressedLength)
            {
                throw .field(
                    .index, at + 16, "entry \(i) addresses",
                    expected: "from \(hex(minEnd)), spanning at least the frame's bytes, inside the file",
                    found: "[\(hex(e.firstAddress)), \(hex(e.endAddress)))")
            }
            previous = e
            decodedEntries += 1
        }
    }

    /// Checks the 8 bytes after the last entry: indexCRC and reserved.
    func finish(_ tail: [UInt8]) throws(CheckpointError) {
        precondition(remaining == 0)
        var r = ByteReader(tail, base: offset, section: .index)
        try r.checkClosingCRC(recordCRC, what: "indexCRC")
    }
}

/// The fixed trailer at the end of a checkpoint.
struct CheckpointTrailer: Hashable {
    var indexOffset: UInt64
    var indexLength: UInt64
    var checkpointLength: UInt64
    var frameCount: UInt64
    var storedBytes: UInt64
    var headerCRC: UInt32

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: CheckpointFormat.trailerLength)
        w.raw(CheckpointFormat.trailerMagic)
        w.u32(CheckpointFormat.version)
        w.u32(UInt32(CheckpointFormat.trailerLength))
        w.u64(indexOffset)
        w.u64(indexLength)
        w.u64(checkpointLength)
        w.u64(frameCount)
        w.u64(storedBytes)
        w.u32(headerCRC)
        w.crc(from: 0)
        return w.bytes
    }

    /// Decodes and checks the trailer found at `offset`, against the header.
    static func decode(_ bytes: [UInt8], offset: UInt64, header: CheckpointHeader) throws(CheckpointError) -> CheckpointTrailer {
        var r = ByteReader(bytes, base: offset, section: .trailer)
        let magic = try r.raw(8)
        if Array(magic) != CheckpointFormat.trailerMagic {
            throw .field(.trailer, offset, "magic", expected: hexBytes(CheckpointFormat.trailerMagic), found: hexBytes(magic))
        }
        var crcReader = ByteReader(bytes, base: offset, section: .trailer)
        _ = try crcReader.raw(60)
        try crcReader.checkCRC(from: 0, what: "trailerCRC")
        let version = try r.u32()
        if version != CheckpointFormat.version {
            throw .field(.trailer, offset + 8, "version", expected: "\(CheckpointFormat.version)", found: version)
        }
        let length = try r.u32()
        if length != UInt32(CheckpointFormat.trailerLength) {
            throw .field(.trailer, offset + 12, "trailerLength", expected: "64", found: length)
        }
        let t = CheckpointTrailer(
            indexOffset: try r.u64(), indexLength: try r.u64(), checkpointLength: try r.u64(),
            frameCount: try r.u64(), storedBytes: try r.u64(), headerCRC: try r.u32())
        if t.headerCRC != header.crc {
            throw .field(
                .trailer, offset + 56, "headerCRC", expected: "\(hex(UInt64(header.crc))) (the header's)",
                found: hex(UInt64(t.headerCRC)))
        }
        // The frame count must leave room for at least a minimal record per
        // frame between the metadata and the index.
        let framesOffset = header.framesOffset
        if t.indexOffset < framesOffset || t.indexOffset % 8 != 0
            || (t.indexOffset - framesOffset) / CheckpointFormat.minFrameRecordLength < t.frameCount
            || (t.frameCount == 0) != (t.indexOffset == framesOffset)
        {
            throw .field(
                .trailer, offset + 16, "indexOffset",
                expected: "8-aligned, after the metadata at \(hex(framesOffset)), with room for \(t.frameCount) frames",
                found: hex(t.indexOffset))
        }
        let expectedIndexLength = CheckpointFormat.indexLength(frameCount: t.frameCount)
        if t.indexLength != expectedIndexLength {
            throw .field(.trailer, offset + 24, "indexLength", expected: "\(expectedIndexLength)", found: t.indexLength)
        }
        let end = t.indexOffset.addingReportingOverflow(t.indexLength)
        if end.overflow || end.partialValue + UInt64(CheckpointFormat.trailerLength) != t.checkpointLength {
            throw .field(
                .trailer, offset + 32, "checkpointLength", expected: "indexOffset + indexLength + 64",
                found: t.checkpointLength)
        }
        if t.storedBytes > header.fileSize {
            throw .field(.trailer, offset + 48, "storedBytes", expected: "at most fileSize", found: t.storedBytes)
        }
        return t
    }
}
