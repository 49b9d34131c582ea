import PGAlloc

extension SegmentRecord {
    func encode(into w: inout ByteWriter) {
        w.startRecord()
        w.u64(range.start, SegmentRecordLayout.start)
        w.u64(range.end, SegmentRecordLayout.end)
        w.u64(refs, SegmentRecordLayout.refs)
        w.field(SegmentRecordLayout.kind)
        w.u8(kind.rawValue)
        w.field(SegmentRecordLayout.reserved)
        w.zeros(SegmentRecordLayout.reserved.size)
    }
}

/// Encodes `segments` as segment records.
func encodeSegments(_ segments: ArraySlice<SegmentRecord>) -> [UInt8] {
    var w = ByteWriter(capacity: segments.count * SegmentRecordLayout.recordLength)
    for s in segments {
        s.encode(into: &w)
    }
    return w.bytes
}

/// Checks the segment table as it is read, record by record, so that a
/// huge count costs nothing until the records are really there. The table
/// is version 1's metadata (after the header) or version 2's `SEGT`
/// section.
struct SegmentTableDecoder {
    let header: CheckpointHeader
    /// Checkpoint offset of the first record.
    let base: UInt64
    let section: CheckpointSection
    private(set) var decoded: UInt64 = 0
    private var previous: SegmentRecord?
    /// CRC-32C of the records decoded so far.
    private(set) var crc: UInt32 = 0

    init(header: CheckpointHeader, base: UInt64, section: CheckpointSection) {
        self.header = header
        self.base = base
        self.section = section
    }

    /// Offset of the next record.
    var offset: UInt64 {
        base + decoded * UInt64(SegmentRecordLayout.recordLength)
    }

    /// Records still to read.
    var remaining: UInt64 { header.segmentCount - decoded }

    /// Decodes and checks the next records; `bytes` holds whole records.
    mutating func decode(_ bytes: [UInt8]) throws(CheckpointError) -> [SegmentRecord] {
        precondition(bytes.count % SegmentRecordLayout.recordLength == 0)
        let count = UInt64(bytes.count / SegmentRecordLayout.recordLength)
        precondition(count <= remaining)
        crc = bytes.withUnsafeBytes { CRC32C.checksum($0, continuing: crc) }
        var r = ByteReader(bytes, base: offset, section: section)
        var out: [SegmentRecord] = []
        out.reserveCapacity(Int(count))
        for _ in 0..<count {
            r.startRecord()
            let at = r.offset
            let index = decoded
            let start = try r.u64(SegmentRecordLayout.start)
            let end = try r.u64(SegmentRecordLayout.end)
            let refs = try r.u64(SegmentRecordLayout.refs)
            let rawKind = try r.u8(SegmentRecordLayout.kind)
            try r.zeros(SegmentRecordLayout.reserved.size, field: "segment \(index) reserved")
            let page = CheckpointFormat.pageSize
            if start % page != 0 || end % page != 0 || start >= end || end > header.fileSize {
                throw .field(
                    section, at, "segment \(index) range",
                    expected: "page-aligned start < end <= fileSize \(hex(header.fileSize))",
                    found: "[\(hex(start)), \(hex(end)))")
            }
            let kindAt = r.offset(of: SegmentRecordLayout.kind)
            guard rawKind < UInt8(CheckpointFormat.kindCount), let kind = MemoryKind(rawValue: rawKind) else {
                throw .field(section, kindAt, "segment \(index) kind", expected: "0..<\(CheckpointFormat.kindCount)", found: rawKind)
            }
            if refs == 0 && kind != .system {
                throw .field(section, kindAt, "segment \(index) kind", expected: "system for a segment with no references", found: kind)
            }
            let record = SegmentRecord(range: FileRange(start: start, end: end), refs: refs, kind: kind)
            if let p = previous {
                if start < p.range.end {
                    throw .field(
                        section, at, "segment \(index) order",
                        expected: "start >= \(hex(p.range.end)) (end of segment \(index - 1))", found: hex(start))
                }
                if start == p.range.end && kind == p.kind && refs == p.refs {
                    throw .field(
                        section, at, "segment \(index)",
                        expected: "a different kind or refs than the touching segment before it", found: record)
                }
            }
            previous = record
            decoded += 1
            out.append(record)
        }
        return out
    }

    /// Version 1: checks the 8 bytes after the last record, metadataCRC
    /// and reserved.
    func finish(_ tail: [UInt8]) throws(CheckpointError) {
        precondition(remaining == 0)
        var r = ByteReader(tail, base: offset, section: section)
        try r.checkClosingCRC(crc, what: "metadataCRC")
    }
}
