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

    public init(sequence: UInt64, uncompressedLength: UInt32, compressedLength: UInt32, payloadCRC: UInt32, runs: [FileRange]) {
        self.sequence = sequence
        self.uncompressedLength = uncompressedLength
        self.compressedLength = compressedLength
        self.payloadCRC = payloadCRC
        self.runs = runs
    }

    /// Bytes of the record: header, payload and padding.
    var recordLength: UInt64 {
        let n = UInt64(CheckpointFormat.frameHeaderLength(runCount: runs.count)) + UInt64(compressedLength)
        return n + UInt64(CheckpointFormat.padding(after: n))
    }

    /// The header bytes (the payload follows them).
    mutating func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: CheckpointFormat.frameHeaderLength(runCount: runs.count))
        w.u32(CheckpointFormat.frameTag)
        w.u32(UInt32(runs.count))
        w.u64(sequence)
        w.u32(uncompressedLength)
        w.u32(compressedLength)
        w.u32(payloadCRC)
        w.u32(0)
        for run in runs {
            w.u64(run.start)
            w.u64(run.length)
        }
        let crcAt = w.bytes.count
        w.crc(from: 0)
        headerCRC = w.bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: crcAt, as: UInt32.self).littleEndian }
        w.u32(0)
        return w.bytes
    }

    /// The index entry describing this frame at checkpoint offset `offset`.
    func indexEntry(offset: UInt64) -> IndexEntry {
        IndexEntry(
            offset: offset, uncompressedLength: uncompressedLength, compressedLength: compressedLength,
            firstAddress: runs.first!.start, endAddress: runs.last!.end, headerCRC: headerCRC, payloadCRC: payloadCRC)
    }
}

/// The fixed first 32 bytes of a frame record, checked against the limits
/// before anything else of the frame is read.
struct FrameHeaderPrefix {
    var runCount: Int
    var sequence: UInt64
    var uncompressedLength: UInt32
    var compressedLength: UInt32
    var payloadCRC: UInt32
    var bytes: [UInt8]

    /// Decodes the prefix of frame `expectedSequence` found at `offset`.
    static func decode(
        _ bytes: [UInt8], offset: UInt64, expectedSequence: UInt64, header: CheckpointHeader
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
        let uncompressed = try r.u32()
        if uncompressed == 0 || UInt64(uncompressed) % CheckpointFormat.pageSize != 0 || uncompressed > header.frameLimit {
            throw .field(
                section, offset + 16, "uncompressedLength",
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
            throw .field(section, offset + 20, "compressedLength", expected: "1 to \(maxCompressed)", found: compressed)
        }
        let payloadCRC = try r.u32()
        try r.zeros(4, field: "reserved")
        return FrameHeaderPrefix(
            runCount: Int(runCount), sequence: sequence, uncompressedLength: uncompressed,
            compressedLength: compressed, payloadCRC: payloadCRC, bytes: bytes)
    }

    /// Bytes that follow the prefix in the header: the runs, the CRC and
    /// the reserved word.
    var restLength: Int {
        CheckpointFormat.frameHeaderLength(runCount: runCount) - CheckpointFormat.frameFixedLength
    }

    /// Decodes the rest of the header and checks the runs: aligned,
    /// non-empty, inside the file, in address order from `previousEnd`,
    /// adding up to the uncompressed length.
    func complete(
        _ rest: [UInt8], offset: UInt64, previousEnd: UInt64, header: CheckpointHeader
    ) throws(CheckpointError) -> FrameHeader {
        let section = CheckpointSection.frame(sequence)
        let all = bytes + rest
        var r = ByteReader(all, base: offset, section: section)
        _ = try r.raw(CheckpointFormat.frameFixedLength)
        var runs: [FileRange] = []
        runs.reserveCapacity(runCount)
        var end = previousEnd
        var total: UInt64 = 0
        for i in 0..<runCount {
            let at = r.offset
            let start = try r.u64()
            let length = try r.u64()
            let page = CheckpointFormat.pageSize
            let (runEnd, overflow) = start.addingReportingOverflow(length)
            if start % page != 0 || length % page != 0 || length == 0 || overflow || runEnd > header.fileSize {
                throw .field(
                    section, at, "run \(i)", expected: "a page-aligned non-empty range inside the file (size \(hex(header.fileSize)))",
                    found: "start \(hex(start)) length \(hex(length))")
            }
            if start < end {
                throw .field(section, at, "run \(i) order", expected: "start >= \(hex(end)) (end of the previous run)", found: hex(start))
            }
            end = runEnd
            total += length
            runs.append(FileRange(start: start, end: runEnd))
        }
        if total != UInt64(uncompressedLength) {
            throw .field(section, offset + 16, "uncompressedLength", expected: "\(total) (the sum of the runs)", found: uncompressedLength)
        }
        let crcAt = r.position
        try r.checkCRC(from: 0, what: "headerCRC")
        try r.zeros(4, field: "reserved")
        var frame = FrameHeader(
            sequence: sequence, uncompressedLength: uncompressedLength, compressedLength: compressedLength,
            payloadCRC: payloadCRC, runs: runs)
        frame.headerCRC = all.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: crcAt, as: UInt32.self).littleEndian }
        return frame
    }
}
