/// The fixed trailer at the end of a checkpoint.
struct CheckpointTrailer: Hashable {
    var version: UInt32
    var indexOffset: UInt64
    var indexLength: UInt64
    var checkpointLength: UInt64
    var frameCount: UInt64
    var storedBytes: UInt64
    var headerCRC: UInt32

    /// Version 2: where the tail section table starts, right after the
    /// index.
    var tailOffset: UInt64 { indexOffset + indexLength }

    /// Version 2: bytes of the tail (section table and payloads), between
    /// the index and the trailer.
    var tailLength: UInt64 { checkpointLength - UInt64(TrailerLayout.recordLength) - tailOffset }

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: TrailerLayout.recordLength)
        w.field(TrailerLayout.magic)
        w.raw(CheckpointFormat.trailerMagic)
        w.u32(version, TrailerLayout.version)
        w.u32(UInt32(TrailerLayout.recordLength), TrailerLayout.trailerLength)
        w.u64(indexOffset, TrailerLayout.indexOffset)
        w.u64(indexLength, TrailerLayout.indexLength)
        w.u64(checkpointLength, TrailerLayout.checkpointLength)
        w.u64(frameCount, TrailerLayout.frameCount)
        w.u64(storedBytes, TrailerLayout.storedBytes)
        w.u32(headerCRC, TrailerLayout.headerCRC)
        w.field(TrailerLayout.trailerCRC)
        w.crc(from: 0)
        return w.bytes
    }

    /// Decodes and checks the trailer found at `offset`, against the
    /// header. `framesOffset` is where the frames start: known from the
    /// header in version 1, only after the head sections in version 2 (nil:
    /// the checks that need it are left to the reader).
    static func decode(_ bytes: [UInt8], offset: UInt64, header: CheckpointHeader, framesOffset: UInt64?) throws(CheckpointError) -> CheckpointTrailer {
        var r = ByteReader(bytes, base: offset, section: .trailer)
        let magic = try r.raw(TrailerLayout.magic.size)
        if Array(magic) != CheckpointFormat.trailerMagic {
            throw .field(r, TrailerLayout.magic, expected: hexBytes(CheckpointFormat.trailerMagic), found: hexBytes(magic))
        }
        var crcReader = ByteReader(bytes, base: offset, section: .trailer)
        _ = try crcReader.raw(TrailerLayout.trailerCRC.offset)
        try crcReader.checkCRC(from: 0, what: TrailerLayout.trailerCRC.name)
        let version = try r.u32(TrailerLayout.version)
        if version != header.version {
            throw .field(r, TrailerLayout.version, expected: "\(header.version) (the header's)", found: version)
        }
        let length = try r.u32(TrailerLayout.trailerLength)
        if length != UInt32(TrailerLayout.recordLength) {
            throw .field(r, TrailerLayout.trailerLength, expected: "64", found: length)
        }
        let t = CheckpointTrailer(
            version: version, indexOffset: try r.u64(TrailerLayout.indexOffset), indexLength: try r.u64(TrailerLayout.indexLength),
            checkpointLength: try r.u64(TrailerLayout.checkpointLength), frameCount: try r.u64(TrailerLayout.frameCount),
            storedBytes: try r.u64(TrailerLayout.storedBytes), headerCRC: try r.u32(TrailerLayout.headerCRC))
        if t.headerCRC != header.crc {
            throw .field(
                r, TrailerLayout.headerCRC, expected: "\(hex(UInt64(header.crc))) (the header's)",
                found: hex(UInt64(t.headerCRC)))
        }
        // The frame count must leave room for at least a minimal record per
        // frame between the metadata and the index.
        let firstFrame = framesOffset ?? CheckpointFormat.minFramesOffsetV2
        if t.indexOffset < firstFrame || t.indexOffset % 8 != 0
            || (t.indexOffset - firstFrame) / CheckpointFormat.minFrameRecordLength < t.frameCount
            || (framesOffset != nil && (t.frameCount == 0) != (t.indexOffset == firstFrame))
        {
            throw .field(
                r, TrailerLayout.indexOffset,
                expected: "8-aligned, after the metadata at \(hex(firstFrame)), with room for \(t.frameCount) frames",
                found: hex(t.indexOffset))
        }
        let lengths = version == 1
            ? [IndexShape(version: 1, entryLength: IndexEntryLayout.recordLength).length(frameCount: t.frameCount)]
            : IndexShape.entryLengths.map { IndexShape(version: 2, entryLength: $0).length(frameCount: t.frameCount) }
        if !lengths.contains(t.indexLength) {
            throw .field(
                r, TrailerLayout.indexLength, expected: lengths.map { $0.map(String.init) ?? "-" }.joined(separator: " or "),
                found: t.indexLength)
        }
        // Version 1: nothing between the index and the trailer. Version 2:
        // at least a tail section table.
        let tailMinimum: UInt64 = version == 1 ? 0 : CheckpointFormat.minTailLength
        let (indexEnd, o1) = t.indexOffset.addingReportingOverflow(t.indexLength)
        let (end, o2) = indexEnd.addingReportingOverflow(UInt64(TrailerLayout.recordLength))
        if o1 || o2 || (version == 1 ? end != t.checkpointLength : t.checkpointLength < end || t.checkpointLength - end < tailMinimum) {
            throw .field(
                r, TrailerLayout.checkpointLength,
                expected: version == 1 ? "indexOffset + indexLength + 64" : "indexOffset + indexLength + the tail + 64",
                found: t.checkpointLength)
        }
        if t.storedBytes > header.fileSize {
            throw .field(r, TrailerLayout.storedBytes, expected: "at most fileSize", found: t.storedBytes)
        }
        return t
    }
}
