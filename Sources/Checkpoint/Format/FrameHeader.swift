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
    /// The header as written or read (tag to headerCRC): what a frame's
    /// digest hashes. Set by `encoded()` and by decoding.
    var bytes: [UInt8] = []

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
        let table = FrameHeader.runTable(runs)
        var w = ByteWriter(capacity: FrameLayout.fixedLength + table.count + FrameLayout.headerCRCLength)
        w.u32(CheckpointFormat.frameTag, FrameLayout.tag)
        w.u32(UInt32(runs.count), FrameLayout.runCount)
        w.u64(sequence, FrameLayout.sequence)
        w.u64(runs[0].start, FrameLayout.firstAddress)
        w.u32(uncompressedLength, FrameLayout.uncompressedLength)
        w.u32(compressedLength, FrameLayout.compressedLength)
        w.u32(payloadCRC, FrameLayout.payloadCRC)
        w.u32(UInt32(table.count), FrameLayout.runTableLength)
        w.raw(table)
        let crcAt = w.bytes.count
        w.crc(from: 0)
        headerCRC = w.bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: crcAt, as: UInt32.self).littleEndian }
        headerLength = w.bytes.count
        bytes = w.bytes
        return w.bytes
    }

    /// The run table of `runs`: a (gap, length) pair of LEB128 numbers of
    /// pages per run. The encoding is the only one the format allows (the
    /// shortest numbers), so that a decoded header encodes back to the
    /// bytes it was read from.
    ///
    /// - Precondition: at least one run; runs page-aligned and in order.
    static func runTable(_ runs: [FileRange]) -> [UInt8] {
        precondition(!runs.isEmpty, "FrameHeader: a frame holds at least one run")
        var table = ByteWriter(capacity: 4 * runs.count)
        var previousEnd = runs[0].start
        for run in runs {
            precondition(run.start >= previousEnd && run.end > run.start, "FrameHeader: runs out of order: \(runs)")
            table.leb128((run.start - previousEnd) / CheckpointFormat.pageSize)
            table.leb128(run.length / CheckpointFormat.pageSize)
            previousEnd = run.end
        }
        return table.bytes
    }

    /// The index entry describing this frame at checkpoint offset `offset`.
    func indexEntry(offset: UInt64, digest: [UInt8] = []) -> IndexEntry {
        IndexEntry(
            offset: offset, uncompressedLength: uncompressedLength, compressedLength: compressedLength,
            firstAddress: runs.first!.start, endAddress: runs.last!.end, headerCRC: headerCRC, payloadCRC: payloadCRC,
            digest: digest)
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
    /// `sealOverhead` is the bytes an encrypted payload adds (its tag), 0
    /// for a plain checkpoint.
    static func decode(
        _ bytes: [UInt8], offset: UInt64, expectedSequence: UInt64, previousEnd: UInt64, header: CheckpointHeader,
        sealOverhead: Int = 0
    ) throws(CheckpointError) -> FrameHeaderPrefix {
        let section = CheckpointSection.frame(expectedSequence)
        var r = ByteReader(bytes, base: offset, section: section)
        let tag = try r.u32(FrameLayout.tag)
        if tag != CheckpointFormat.frameTag {
            throw .field(r, FrameLayout.tag, expected: "FRM1 (46 52 4d 31)", found: hexBytes(bytes.prefix(4)))
        }
        let runCount = try r.u32(FrameLayout.runCount)
        let sequence = try r.u64(FrameLayout.sequence)
        if sequence != expectedSequence {
            throw .field(r, FrameLayout.sequence, expected: "\(expectedSequence)", found: sequence)
        }
        let firstAddress = try r.u64(FrameLayout.firstAddress)
        if firstAddress % CheckpointFormat.pageSize != 0 || firstAddress < previousEnd || firstAddress >= header.dataEnd {
            throw .field(
                r, FrameLayout.firstAddress,
                expected: "page-aligned, from \(hex(previousEnd)) (the end of the previous run) to below the data's end \(hex(header.dataEnd))",
                found: hex(firstAddress))
        }
        let uncompressed = try r.u32(FrameLayout.uncompressedLength)
        if uncompressed == 0 || UInt64(uncompressed) % CheckpointFormat.pageSize != 0 || uncompressed > header.frameLimit {
            throw .field(
                r, FrameLayout.uncompressedLength,
                expected: "a multiple of 4096 from 4096 to frameLimit \(header.frameLimit)", found: uncompressed)
        }
        if runCount == 0 || UInt64(runCount) > UInt64(uncompressed) / CheckpointFormat.pageSize {
            throw .field(
                r, FrameLayout.runCount,
                expected: "1 to \(UInt64(uncompressed) / CheckpointFormat.pageSize) (one page per run at least)", found: runCount)
        }
        let compressed = try r.u32(FrameLayout.compressedLength)
        let maxCompressed = CheckpointFormat.maxCompressedLength(frameLimit: header.frameLimit) + UInt64(sealOverhead)
        if compressed == 0 || UInt64(compressed) > maxCompressed {
            throw .field(r, FrameLayout.compressedLength, expected: "1 to \(maxCompressed)", found: compressed)
        }
        let payloadCRC = try r.u32(FrameLayout.payloadCRC)
        let tableLength = try r.u32(FrameLayout.runTableLength)
        if UInt64(tableLength) < 2 * UInt64(runCount) || UInt64(tableLength) > 20 * UInt64(runCount) {
            throw .field(
                r, FrameLayout.runTableLength, expected: "\(2 * UInt64(runCount)) to \(20 * UInt64(runCount)) for \(runCount) runs",
                found: tableLength)
        }
        return FrameHeaderPrefix(
            runCount: Int(runCount), sequence: sequence, firstAddress: firstAddress, uncompressedLength: uncompressed,
            compressedLength: compressed, payloadCRC: payloadCRC, runTableLength: Int(tableLength), bytes: bytes)
    }

    /// Bytes that follow the prefix in the header: the run table and the
    /// CRC.
    var restLength: Int { runTableLength + FrameLayout.headerCRCLength }

    /// Decodes the rest of the header and checks the runs: non-empty,
    /// inside the file, adding up to the uncompressed length.
    func complete(_ rest: [UInt8], offset: UInt64, header: CheckpointHeader) throws(CheckpointError) -> FrameHeader {
        let section = CheckpointSection.frame(sequence)
        let all = bytes + rest
        var r = ByteReader(all, base: offset, section: section)
        _ = try r.raw(FrameLayout.fixedLength)
        let tableEnd = FrameLayout.fixedLength + runTableLength
        var runs: [FileRange] = []
        runs.reserveCapacity(runCount)
        let page = CheckpointFormat.pageSize
        // Stored pages lie inside the saved memory's own length.
        let maxPages = header.dataEnd / page
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
                    section, at, "run \(i)", expected: "a non-empty page range inside the data (\(maxPages) pages)",
                    found: "gap \(gap) pages, length \(length) pages after \(hex(end))")
            }
            let start = end + gap * page
            end = start + length * page
            total += length * page
            runs.append(FileRange(start: start, end: end))
        }
        if r.position != tableEnd {
            throw .field(
                section, r.offset, "runTableLength", expected: "\(r.position - FrameLayout.fixedLength) bytes for \(runCount) runs",
                found: runTableLength)
        }
        if total != UInt64(uncompressedLength) {
            throw .field(
                section, offset + UInt64(FrameLayout.uncompressedLength.offset), "uncompressedLength",
                expected: "\(total) (the sum of the runs)", found: uncompressedLength)
        }
        try r.checkCRC(from: 0, what: "headerCRC")
        var frame = FrameHeader(
            sequence: sequence, uncompressedLength: uncompressedLength, compressedLength: compressedLength,
            payloadCRC: payloadCRC, runs: runs)
        frame.headerCRC = all.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: tableEnd, as: UInt32.self).littleEndian }
        frame.headerLength = all.count
        frame.bytes = all
        return frame
    }
}
