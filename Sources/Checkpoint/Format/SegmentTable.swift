import PGAlloc

extension SegmentRecord {
    func encode(into w: inout ByteWriter) {
        w.u64(range.start)
        w.u64(range.end)
        w.u64(refs)
        w.u8(kind.rawValue)
        w.zeros(7)
    }
}

/// Checks the segment table as it is read, record by record, so that a
/// huge count costs nothing until the records are really there.
struct SegmentTableDecoder {
    let header: CheckpointHeader
    private(set) var decoded: UInt64 = 0
    private var previous: SegmentRecord?
    private var crc: UInt32 = 0

    init(header: CheckpointHeader) {
        self.header = header
    }

    /// Offset of the next record.
    var offset: UInt64 {
        UInt64(CheckpointFormat.headerLength) + decoded * CheckpointFormat.segmentRecordLength
    }

    /// Records still to read.
    var remaining: UInt64 { header.segmentCount - decoded }

    /// Decodes and checks the next records; `bytes` holds whole records.
    mutating func decode(_ bytes: [UInt8]) throws(CheckpointError) -> [SegmentRecord] {
        precondition(bytes.count % Int(CheckpointFormat.segmentRecordLength) == 0)
        let count = UInt64(bytes.count) / CheckpointFormat.segmentRecordLength
        precondition(count <= remaining)
        crc = bytes.withUnsafeBytes { CRC32C.checksum($0, continuing: crc) }
        var r = ByteReader(bytes, base: offset, section: .metadata)
        var out: [SegmentRecord] = []
        out.reserveCapacity(Int(count))
        for _ in 0..<count {
            let at = r.offset
            let index = decoded
            let start = try r.u64()
            let end = try r.u64()
            let refs = try r.u64()
            let rawKind = try r.u8()
            try r.zeros(7, field: "segment \(index) reserved")
            let page = CheckpointFormat.pageSize
            if start % page != 0 || end % page != 0 || start >= end || end > header.fileSize {
                throw .field(
                    .metadata, at, "segment \(index) range",
                    expected: "page-aligned start < end <= fileSize \(hex(header.fileSize))",
                    found: "[\(hex(start)), \(hex(end)))")
            }
            guard rawKind < UInt8(CheckpointFormat.kindCount), let kind = MemoryKind(rawValue: rawKind) else {
                throw .field(.metadata, at + 24, "segment \(index) kind", expected: "0..<\(CheckpointFormat.kindCount)", found: rawKind)
            }
            if refs == 0 && kind != .system {
                throw .field(.metadata, at + 24, "segment \(index) kind", expected: "system for a segment with no references", found: kind)
            }
            let record = SegmentRecord(range: FileRange(start: start, end: end), refs: refs, kind: kind)
            if let p = previous {
                if start < p.range.end {
                    throw .field(
                        .metadata, at, "segment \(index) order",
                        expected: "start >= \(hex(p.range.end)) (end of segment \(index - 1))", found: hex(start))
                }
                if start == p.range.end && kind == p.kind && refs == p.refs {
                    throw .field(
                        .metadata, at, "segment \(index)",
                        expected: "a different kind or refs than the touching segment before it", found: record)
                }
            }
            previous = record
            decoded += 1
            out.append(record)
        }
        return out
    }

    /// Checks the 8 bytes after the last record: metadataCRC and reserved.
    func finish(_ tail: [UInt8]) throws(CheckpointError) {
        precondition(remaining == 0)
        var r = ByteReader(tail, base: offset, section: .metadata)
        try r.checkClosingCRC(crc, what: "metadataCRC")
    }
}
