import PGAlloc

/// The header of a frame record: which page runs the frame's payload
/// holds, and the payload's sizes and checksum.
public struct FrameHeader: Hashable, Sendable {
    public var sequence: UInt64
    public var uncompressedLength: UInt32
    public var compressedLength: UInt32
    public var payloadCRC: UInt32
    /// Page ranges, in address order, whose bytes make up the payload.
    public var runs: [FileRange]
    /// Set by `encoded()` and by decoding.
    public internal(set) var headerCRC: UInt32 = 0
    /// Bytes of the header (tag to headerCRC). Set by `encoded()` and by
    /// decoding.
    public internal(set) var headerLength: Int = 0

    public init(sequence: UInt64, uncompressedLength: UInt32, compressedLength: UInt32, payloadCRC: UInt32, runs: [FileRange]) {
        self.sequence = sequence
        self.uncompressedLength = uncompressedLength
        self.compressedLength = compressedLength
        self.payloadCRC = payloadCRC
        self.runs = runs
    }

    /// Bytes of the record: header, payload and padding.
    var recordLength: UInt64 {
        let n = UInt64(headerLength) + UInt64(compressedLength)
        return n + UInt64(CheckpointFormat.padding(after: n))
    }

    /// The header bytes (the payload follows them).
    ///
    /// - Precondition: at least one run; runs page-aligned and in order.
    mutating func encoded() -> [UInt8] {
        precondition(!runs.isEmpty, "FrameHeader: a frame holds at least one run")
        var table = ByteWriter(capacity: 4 * runs.count)
        var previousEnd = runs[0].start
        for run in runs {
            precondition(run.start >= previousEnd && run.end > run.start, "FrameHeader: runs out of order: \(runs)")
            table.leb128((run.start - previousEnd) / CheckpointFormat.pageSize)
            table.leb128(run.length / CheckpointFormat.pageSize)
            previousEnd = run.end
        }
        var w = ByteWriter(capacity: CheckpointFormat.frameFixedLength + table.bytes.count + 4)
        w.u32(CheckpointFormat.frameTag)
        w.u32(UInt32(runs.count))
        w.u64(sequence)
        w.u64(runs[0].start)
        w.u32(uncompressedLength)
        w.u32(compressedLength)
        w.u32(payloadCRC)
        w.u32(UInt32(table.bytes.count))
        w.raw(table.bytes)
        let crcAt = w.bytes.count
        w.crc(from: 0)
        headerCRC = w.bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: crcAt, as: UInt32.self).littleEndian }
        headerLength = w.bytes.count
        return w.bytes
    }

    /// The index entry describing this frame at checkpoint offset `offset`.
    func indexEntry(offset: UInt64) -> IndexEntry {
        IndexEntry(
            offset: offset, uncompressedLength: uncompressedLength, compressedLength: compressedLength,
            firstAddress: runs.first!.start, endAddress: runs.last!.end, headerCRC: headerCRC, payloadCRC: payloadCRC)
    }
}

/// The fixed first 40 bytes of a frame record, checked against the limits
/// before anything else of the frame is read.
struct FrameHeaderPrefix {
    var runCount: Int
    var sequence: UInt64
    var firstAddress: UInt64
    var uncompressedLength: UInt32
    var compressedLength: UInt32
    var payloadCRC: UInt32
    var runTableLength: Int
    var bytes: [UInt8]

    /// Decodes the prefix of frame `expectedSequence` found at `offset`;
    /// `previousEnd` is where the previous frame's last run ends.
    static func decode(
        _ bytes: [UInt8], offset: UInt64, expectedSequence: UInt64, previousEnd: UInt64, header: CheckpointHeader
    ) throws(CheckpointError) -> FrameHeaderPrefix {
        let section = CheckpointSection.frame(expectedSequence)
        var r = ByteReader(bytes, base: offset, section: section)
        let tag = try r.u32()
        if tag != CheckpointFormat.frameTag {
            throw .field(section, offset, "tag", expected: "FRM1 (46 52 4d 31)", found: hexBytes(bytes.prefix(4)))
        }
        let runCount = try r.u32()
        let sequence = try r.u64()
        if sequence != expectedSequence {
            throw .field(section, offset + 8, "sequence", expected: "\(expectedSequence)", found: sequence)
        }
        let firstAddress = try r.u64()
        if firstAddress % CheckpointFormat.pageSize != 0 || firstAddress < previousEnd || firstAddress >= header.fileSize {
            throw .field(
                section, offset + 16, "firstAddress",
                expected: "page-aligned, from \(hex(previousEnd)) (the end of the previous run) to below fileSize \(hex(header.fileSize))",
                found: hex(firstAddress))
        }
        let uncompressed = try r.u32()
        if uncompressed == 0 || UInt64(uncompressed) % CheckpointFormat.pageSize != 0 || uncompressed > header.frameLimit {
            throw .field(
                section, offset + 24, "uncompressedLength",
                expected: "a multiple of 4096 from 4096 to frameLimit \(header.frameLimit)", found: uncompressed)
        }
        if runCount == 0 || UInt64(runCount) > UInt64(uncompressed) / CheckpointFormat.pageSize {
            throw .field(
                section, offset + 4, "runCount",
                expected: "1 to \(UInt64(uncompressed) / CheckpointFormat.pageSize) (one page per run at least)", found: runCount)
        }
        let compressed = try r.u32()
        let maxCompressed = CheckpointFormat.maxCompressedLength(frameLimit: header.frameLimit)
        if compressed == 0 || UInt64(compressed) > maxCompressed {
            throw .field(section, offset + 28, "compressedLength", expected: "1 to \(maxCompressed)", found: compressed)
        }
        let payloadCRC = try r.u32()
        let tableLength = try r.u32()
        if UInt64(tableLength) < 2 * UInt64(runCount) || UInt64(tableLength) > 20 * UInt64(runCount) {
            throw .field(
                section, offset + 36, "runTableLength", expected: "\(2 * UInt64(runCount)) to \(20 * UInt64(runCount)) for \(runCount) runs",
                found: tableLength)
        }
        return FrameHeaderPrefix(
            runCount: Int(runCount), sequence: sequence, firstAddress: firstAddress, uncompressedLength: uncompressed,
            compressedLength: compressed, payloadCRC: payloadCRC, runTableLength: Int(tableLength), bytes: bytes)
    }

    /// Bytes that follow the prefix in the header: the run table and the
    /// CRC.
    var restLength: Int { runTableLength + 4 }

    /// Decodes the rest of the header and checks the runs: non-empty,
    /// inside the file, adding up to the uncompressed length.
    func complete(_ rest: [UInt8], offset: UInt64, header: CheckpointHeader) throws(CheckpointError) -> FrameHeader {
        let section = CheckpointSection.frame(sequence)
        let all = bytes + rest
        var r = ByteReader(all, base: offset, section: section)
        _ = try r.raw(CheckpointFormat.frameFixedLength)
        let tableEnd = CheckpointFormat.frameFixedLength + runTableLength
        var runs: [FileRange] = []
        runs.reserveCapacity(runCount)
        let page = CheckpointFormat.pageSize
        let maxPages = header.fileSize / page
        var end = firstAddress
        var total: UInt64 = 0
        for i in 0..<runCount {
            let at = r.offset
            let gap = try r.leb128(field: "run \(i) gap", limit: tableEnd)
            let length = try r.leb128(field: "run \(i) length", limit: tableEnd)
            // In pages: no multiplication can overflow past these checks.
            let startPage = end / page
            if length == 0 || gap > maxPages || length > maxPages || startPage + gap + length > maxPages {
                throw .field(
                    section, at, "run \(i)", expected: "a non-empty page range inside the file (\(maxPages) pages)",
                    found: "gap \(gap) pages, length \(length) pages after \(hex(end))")
            }
            let start = end + gap * page
            end = start + length * page
            total += length * page
            runs.append(FileRange(start: start, end: end))
        }
        if r.position != tableEnd {
            throw .field(
                section, r.offset, "runTableLength", expected: "\(r.position - CheckpointFormat.frameFixedLength) bytes for \(runCount) runs",
                found: runTableLength)
        }
        if total != UInt64(uncompressedLength) {
            throw .field(section, offset + 24, "uncompressedLength", expected: "\(total) (the sum of the runs)", found: uncompressedLength)
        }
        try r.checkCRC(from: 0, what: "headerCRC")
        var frame = FrameHeader(
            sequence: sequence, uncompressedLength: uncompressedLength, compressedLength: compressedLength,
            payloadCRC: payloadCRC, runs: runs)
        frame.headerCRC = all.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: tableEnd, as: UInt32.self).littleEndian }
        frame.headerLength = all.count
        return frame
    }
}
