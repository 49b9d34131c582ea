import PGAlloc

extension Array where Element == IndexEntry {
    /// The frame whose span holds `address`, by binary search (the spans
    /// ascend and do not overlap).
    func frame(holding address: UInt64) -> Int? {
        var lo = 0
        var hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if self[mid].firstAddress <= address { lo = mid + 1 } else { hi = mid }
        }
        let f = lo - 1
        return f >= 0 && address < self[f].endAddress ? f : nil
    }
}

/// What the index says about one frame.
public struct IndexEntry: Hashable, Sendable {
    public var offset: UInt64
    public var uncompressedLength: UInt32
    public var compressedLength: UInt32
    public var firstAddress: UInt64
    public var endAddress: UInt64
    public var headerCRC: UInt32
    public var payloadCRC: UInt32
    /// Version 2, in signed checkpoints: the frame's digest, the SHA-256 of
    /// its header (tag to headerCRC) followed by the SHA-256 of its payload
    /// as stored (see `FrameDigest`). Empty otherwise.
    public var digest: [UInt8] = []

    func encode(into w: inout ByteWriter) {
        w.startRecord()
        w.u64(offset, IndexEntryLayout.offset)
        w.u32(uncompressedLength, IndexEntryLayout.uncompressedLength)
        w.u32(compressedLength, IndexEntryLayout.compressedLength)
        w.u64(firstAddress, IndexEntryLayout.firstAddress)
        w.u64(endAddress, IndexEntryLayout.endAddress)
        w.u32(headerCRC, IndexEntryLayout.headerCRC)
        w.u32(payloadCRC, IndexEntryLayout.payloadCRC)
        if !digest.isEmpty {
            w.field(IndexEntryLayout.digest)
            w.raw(digest)
        }
    }

    /// CRC-32C of the entry's first 40 bytes (its digest left out),
    /// continuing `crc`.
    func checksum(continuing crc: UInt32) -> UInt32 {
        var w = ByteWriter(capacity: IndexEntryLayout.recordLength + digest.count)
        encode(into: &w)
        return w.bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[..<IndexEntryLayout.recordLength]), continuing: crc) }
    }
}

/// The totals a checkpoint records: frames and bytes stored (the index),
/// and the per-kind figures (version 1's index, version 2's `ACCT`
/// section).
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
}

extension IndexTotals {
    /// Version 1's fixed part of the index: tag, kind count, totals, and
    /// the per-kind figures. Only tests write version 1 (the fixtures); the
    /// writer writes version 2.
    func encodeVersion1(into w: inout ByteWriter) {
        w.startRecord()
        w.u32(CheckpointFormat.indexTagV1, IndexLayout.tag)
        w.u32(UInt32(CheckpointFormat.kindCount), IndexLayout.kindCount)
        w.u64(frameCount, IndexLayout.frameCount)
        w.u64(storedBytes, IndexLayout.storedBytes)
        for kind in MemoryKind.allCases {
            w.u64(storedPerKind[kind])
        }
        for kind in MemoryKind.allCases {
            w.u64(accounting[kind])
        }
    }
}

/// The shape of an index record, which differs between versions.
struct IndexShape: Hashable, Sendable {
    var version: UInt32
    /// Bytes per entry: 40, or 72 with frame digests (version 2).
    var entryLength: Int

    /// Bytes before the entries.
    var fixedLength: Int {
        version == 1 ? IndexLayout.storedPerKind + 16 * CheckpointFormat.kindCount : IndexLayout.fixedLength
    }

    /// Length of the record for `frameCount` frames, or nil if it would
    /// not fit 64 bits.
    func length(frameCount: UInt64) -> UInt64? {
        let (entries, o1) = UInt64(entryLength).multipliedReportingOverflow(by: frameCount)
        let (total, o2) = entries.addingReportingOverflow(UInt64(fixedLength + ClosingLayout.recordLength))
        return o1 || o2 ? nil : total
    }

    /// The entry lengths version 2 allows.
    static let entryLengths = [IndexEntryLayout.recordLength, IndexEntryLayout.digest.end]
}

/// Encodes the index record of version 2.
func encodeIndex(frameCount: UInt64, storedBytes: UInt64, entries: [IndexEntry], entryLength: Int) -> [UInt8] {
    let shape = IndexShape(version: 2, entryLength: entryLength)
    var w = ByteWriter(capacity: Int(shape.length(frameCount: frameCount)!))
    w.u32(CheckpointFormat.indexTagV2, IndexLayout.tag)
    w.u32(UInt32(entryLength), IndexLayout.entryLength)
    w.u64(frameCount, IndexLayout.frameCount)
    w.u64(storedBytes, IndexLayout.storedBytes)
    for e in entries {
        precondition(IndexEntryLayout.recordLength + e.digest.count == entryLength, "encodeIndex: an entry of the wrong length")
        e.encode(into: &w)
    }
    w.crc(from: 0)
    w.u32(0)
    return w.bytes
}

/// Checks the index as it is read: the fixed part, then the entries in
/// pieces, then the checksum. Keeps the entries (the lazy and ranged
/// readers find frames through them) and a checksum of the entries
/// alone, to compare with the one computed from the frames.
struct IndexDecoder {
    let header: CheckpointHeader
    let indexOffset: UInt64
    /// Checkpoint offset of the first frame, where the first entry points;
    /// nil when the reader learns it only later (a version-2 file, whose
    /// head sections are read after the index).
    let framesOffset: UInt64?
    private(set) var shape: IndexShape
    private(set) var totals = IndexTotals()
    private(set) var entries: [IndexEntry] = []
    /// CRC-32C of the entries' first 40 bytes (their digests left out: a
    /// reader compares those itself, when it needs them).
    private(set) var entriesCRC: UInt32 = 0
    private var recordCRC: UInt32 = 0
    /// The record as a part of the checkpoint's manifest: every byte
    /// decoded.
    private(set) var manifestPart = PartHasher()

    init(header: CheckpointHeader, indexOffset: UInt64, framesOffset: UInt64?) {
        self.header = header
        self.indexOffset = indexOffset
        self.framesOffset = framesOffset
        shape = IndexShape(version: header.version, entryLength: IndexEntryLayout.recordLength)
    }

    var decodedEntries: UInt64 { UInt64(entries.count) }
    var remaining: UInt64 { totals.frameCount - decodedEntries }

    /// Offset of the next entry.
    var offset: UInt64 {
        indexOffset + UInt64(shape.fixedLength) + decodedEntries * UInt64(shape.entryLength)
    }

    /// Bytes of the fixed part of a version's index.
    static func fixedLength(version: UInt32) -> Int {
        IndexShape(version: version, entryLength: IndexEntryLayout.recordLength).fixedLength
    }

    /// Decodes the fixed part (the record's first bytes).
    mutating func decodeFixed(_ bytes: [UInt8]) throws(CheckpointError) {
        var r = ByteReader(bytes, base: indexOffset, section: .index)
        let tag = try r.u32(IndexLayout.tag)
        let expectedTag = header.version == 1 ? CheckpointFormat.indexTagV1 : CheckpointFormat.indexTagV2
        if tag != expectedTag {
            let name = header.version == 1 ? "IDX1 (49 44 58 31)" : "IDX2 (49 44 58 32)"
            throw .field(r, IndexLayout.tag, expected: name, found: hexBytes(bytes.prefix(4)))
        }
        if header.version == 1 {
            let kindCount = try r.u32(IndexLayout.kindCount)
            if kindCount != UInt32(CheckpointFormat.kindCount) {
                throw .field(r, IndexLayout.kindCount, expected: "\(CheckpointFormat.kindCount)", found: kindCount)
            }
        } else {
            let entryLength = try r.u32(IndexLayout.entryLength)
            guard IndexShape.entryLengths.contains(Int(entryLength)) else {
                throw .field(r, IndexLayout.entryLength, expected: "40 or 72", found: entryLength)
            }
            shape.entryLength = Int(entryLength)
        }
        totals.frameCount = try r.u64(IndexLayout.frameCount)
        totals.storedBytes = try r.u64(IndexLayout.storedBytes)
        if header.version == 1 {
            totals.storedPerKind = try decodePerKind(&r, storedBytes: totals.storedBytes)
        }
        if totals.storedBytes > header.fileSize {
            throw .field(.index, r.offset(of: IndexLayout.storedBytes), "storedBytes", expected: "at most fileSize \(header.fileSize)", found: totals.storedBytes)
        }
        if header.version == 1 {
            for kind in MemoryKind.allCases {
                totals.accounting[kind] = try r.u64()
            }
        }
        recordCRC = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[..<shape.fixedLength])) }
        manifestPart.add(bytes.prefix(shape.fixedLength))
    }

    /// Decodes and checks the next entries; `bytes` holds whole entries.
    mutating func decodeEntries(_ bytes: [UInt8]) throws(CheckpointError) {
        precondition(bytes.count % shape.entryLength == 0)
        let count = UInt64(bytes.count / shape.entryLength)
        precondition(count <= remaining)
        recordCRC = bytes.withUnsafeBytes { CRC32C.checksum($0, continuing: recordCRC) }
        manifestPart.add(bytes)
        entriesCRC = bytes.withUnsafeBytes { b in
            stride(from: 0, to: b.count, by: shape.entryLength).reduce(entriesCRC) { crc, at in
                CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[at..<at + IndexEntryLayout.recordLength]), continuing: crc)
            }
        }
        var r = ByteReader(bytes, base: offset, section: .index)
        let maxCompressed = CheckpointFormat.maxCompressedLength(frameLimit: header.frameLimit)
        for _ in 0..<count {
            r.startRecord()
            let i = decodedEntries
            var e = IndexEntry(
                offset: try r.u64(IndexEntryLayout.offset), uncompressedLength: try r.u32(IndexEntryLayout.uncompressedLength),
                compressedLength: try r.u32(IndexEntryLayout.compressedLength), firstAddress: try r.u64(IndexEntryLayout.firstAddress),
                endAddress: try r.u64(IndexEntryLayout.endAddress), headerCRC: try r.u32(IndexEntryLayout.headerCRC),
                payloadCRC: try r.u32(IndexEntryLayout.payloadCRC))
            if shape.entryLength > IndexEntryLayout.recordLength {
                e.digest = Array(try r.raw(IndexEntryLayout.digest.size))
            }
            let previous = entries.last
            let minOffset = previous.map { $0.offset + 1 } ?? framesOffset ?? CheckpointFormat.minFramesOffsetV2
            if e.offset < minOffset || e.offset >= indexOffset || e.offset % 8 != 0 {
                throw .field(
                    .index, r.offset(of: IndexEntryLayout.offset), "entry \(i) offset",
                    expected: "8-aligned, from \(hex(minOffset)) to below the index at \(hex(indexOffset))", found: hex(e.offset))
            }
            if i == 0, let framesOffset, e.offset != framesOffset {
                throw .field(
                    .index, r.offset(of: IndexEntryLayout.offset), "entry 0 offset",
                    expected: "\(hex(framesOffset)) (right after the metadata)", found: hex(e.offset))
            }
            if e.uncompressedLength == 0 || e.uncompressedLength > header.frameLimit || UInt64(e.uncompressedLength) % CheckpointFormat.pageSize != 0 {
                throw .field(
                    .index, r.offset(of: IndexEntryLayout.uncompressedLength), "entry \(i) uncompressedLength",
                    expected: "a multiple of 4096 up to \(header.frameLimit)", found: e.uncompressedLength)
            }
            if e.compressedLength == 0 || UInt64(e.compressedLength) > maxCompressed {
                throw .field(
                    .index, r.offset(of: IndexEntryLayout.compressedLength), "entry \(i) compressedLength",
                    expected: "1 to \(maxCompressed)", found: e.compressedLength)
            }
            let minEnd = previous?.endAddress ?? 0
            if e.firstAddress < minEnd || e.firstAddress >= e.endAddress || e.endAddress > header.dataEnd
                || e.endAddress - e.firstAddress < UInt64(e.uncompressedLength)
            {
                throw .field(
                    .index, r.offset(of: IndexEntryLayout.firstAddress), "entry \(i) addresses",
                    expected: "from \(hex(minEnd)), spanning at least the frame's bytes, inside the data (\(hex(header.dataEnd)))",
                    found: "[\(hex(e.firstAddress)), \(hex(e.endAddress)))")
            }
            entries.append(e)
        }
    }

    /// Checks the 8 bytes after the last entry: indexCRC and reserved.
    mutating func finish(_ tail: [UInt8]) throws(CheckpointError) {
        precondition(remaining == 0)
        var r = ByteReader(tail, base: offset, section: .index)
        try r.checkClosingCRC(recordCRC, what: "indexCRC")
        manifestPart.add(tail)
    }
}

/// Reads per-kind stored bytes, which must add up to `storedBytes`.
func decodePerKind(_ r: inout ByteReader, storedBytes: UInt64) throws(CheckpointError) -> MemoryStats {
    let start = r.offset
    var stats = MemoryStats()
    var sum: UInt64 = 0
    for kind in MemoryKind.allCases {
        let v = try r.u64()
        stats[kind] = v
        let (s, o) = sum.addingReportingOverflow(v)
        if o {
            throw .field(r.section, r.offset - 8, "storedPerKind", expected: "a sum that fits 64 bits", found: "overflow")
        }
        sum = s
    }
    if sum != storedBytes {
        throw .field(r.section, start, "storedPerKind", expected: "a sum equal to storedBytes \(storedBytes)", found: sum)
    }
    return stats
}
