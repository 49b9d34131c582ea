import PGAlloc

/// What comes before the frames: the segment table and, in version 2, the
/// head sections.
struct CheckpointHead {
    var segments: [SegmentRecord] = []
    /// Version 2: the head sections, in file order.
    var sections: [SectionEntry] = []
    var annotations: [String: String] = [:]
    /// Version 2: the `PRNT` section's parent.
    var parent: ParentRecord?
    /// Checkpoint offset of the first frame.
    var framesOffset: UInt64 = 0
}

extension CheckpointScanner {
    /// Phase 3: version 1's metadata, or version 2's head sections, read in
    /// order right after the header. From a file, `ends` bounds the head by
    /// where the index says the frames start.
    func readHead(header: CheckpointHeader, ends: CheckpointEnds?) throws -> CheckpointHead {
        var head = CheckpointHead()
        if header.version == 1 {
            var table = SegmentTableDecoder(header: header, base: UInt64(HeaderLayout.recordLength), section: .metadata)
            head.segments = try readSegments(&table)
            try table.finish(try input.read(ClosingLayout.recordLength, section: .metadata))
            head.framesOffset = input.offset
            return head
        }
        let reader = sectionReader(header, .stream(input))
        let entries = try reader.readTable(
            at: UInt64(HeaderLayout.recordLength), placement: .head, regionEnd: ends?.framesOffset,
            seen: Set(ends?.tail.map(\.type) ?? []))
        for entry in entries {
            switch entry.type {
            case .segments:
                head.segments = try readSegmentSection(entry, header: header)
            case .parent:
                head.parent = try ParentSection.decode(reader.readPayload(entry), offset: entry.offset)
            case .annotations:
                head.annotations = try AnnotationsSection.decode(reader.readPayload(entry), offset: entry.offset)
            default:
                try reader.skipPayload(entry)
            }
        }
        head.sections = entries
        head.framesOffset = input.offset
        return head
    }

    /// Reads the records `table` expects, in pieces: a huge count costs
    /// nothing until the records are really there.
    private func readSegments(_ table: inout SegmentTableDecoder) throws -> [SegmentRecord] {
        var records: [SegmentRecord] = []
        while table.remaining > 0 {
            let count = Int(min(table.remaining, 65536))
            records += try table.decode(try input.read(count * SegmentRecordLayout.recordLength, section: table.section))
        }
        return records
    }

    /// Reads the `SEGT` section: exactly `segmentCount` records.
    private func readSegmentSection(_ entry: SectionEntry, header: CheckpointHeader) throws -> [SegmentRecord] {
        let expected = header.segmentCount * UInt64(SegmentRecordLayout.recordLength)
        let reader = sectionReader(header, .stream(input))
        let length = try reader.plainLength(entry)
        if length != expected {
            throw CheckpointError.field(
                .section(.segments), entry.offset, "length", expected: "\(expected) (\(header.segmentCount) segments of 32 bytes)",
                found: length)
        }
        var table = SegmentTableDecoder(header: header, base: entry.offset, section: .section(.segments))
        var records: [SegmentRecord] = []
        try reader.readPayload(entry, pieceLength: 65536 * SegmentRecordLayout.recordLength) { piece, _ in
            let decoded = try table.decode(piece)
            if keepSegments {
                records += decoded
            }
        }
        return records
    }
}
