import PGAlloc

/// Reads frame `f`'s whole record (header and payload, in one read: one
/// request to an object store) and checks the header against its index
/// entry, the previous frame's entry and (when given) the segment table:
/// what the sequential reader checks, frame by frame. Returns the header
/// and the payload as stored (its CRC, digest and seal are checked when it
/// is decompressed, by `metadata.frameOpener`).
func readFrameRecord(
    _ f: Int, from input: RandomAccessInput, metadata: CheckpointMetadata, segments: SegmentLookup?
) throws -> (FrameHeader, [UInt8]) {
    let entry = metadata.index[f]
    let section = CheckpointSection.frame(UInt64(f))
    let recordEnd = f + 1 < metadata.index.count ? metadata.index[f + 1].offset : metadata.indexOffset
    // Never more than the largest record the header allows, sealed or not.
    let sealOverhead = metadata.frameOpener?.sealOverhead(frameLimit: metadata.header.frameLimit) ?? 0
    let largest = UInt64(FrameLayout.fixedLength) + UInt64(metadata.header.frameLimit / 4096) * 20 + 64
        + CheckpointFormat.maxCompressedLength(frameLimit: metadata.header.frameLimit) + UInt64(sealOverhead) + 8
    guard recordEnd > entry.offset, recordEnd - entry.offset <= largest else {
        throw CheckpointError.field(
            section, entry.offset, "record", expected: "at most \(largest) bytes up to the next frame", found: recordEnd - entry.offset)
    }
    let record = try input.read(at: entry.offset, count: Int(recordEnd - entry.offset), section: section)
    guard record.count >= FrameLayout.fixedLength else {
        throw CheckpointError(.truncated, section, offset: entry.offset, "a frame record is at least \(FrameLayout.fixedLength) bytes")
    }
    let previousEnd = f > 0 ? metadata.index[f - 1].endAddress : 0
    let prefix = try FrameHeaderPrefix.decode(
        Array(record[..<FrameLayout.fixedLength]), offset: entry.offset, expectedSequence: UInt64(f), previousEnd: previousEnd,
        header: metadata.header, sealOverhead: sealOverhead)
    guard FrameLayout.fixedLength + prefix.restLength <= record.count else {
        throw CheckpointError.field(section, entry.offset, "header", expected: "a header inside the record", found: "\(prefix.restLength) more bytes")
    }
    let header = try prefix.complete(
        Array(record[FrameLayout.fixedLength..<FrameLayout.fixedLength + prefix.restLength]), offset: entry.offset, header: metadata.header)
    let described = header.indexEntry(offset: entry.offset, digest: entry.digest)
    let length = UInt64(header.headerLength) + UInt64(header.compressedLength)
    if described != entry || CheckpointFormat.padded(length) != recordEnd - entry.offset {
        throw CheckpointError.field(
            section, entry.offset, "header", expected: "the frame the index describes at \(hex(entry.offset))",
            found: "runs \(hex(header.runs.first!.start))..\(hex(header.runs.last!.end)), \(header.compressedLength) bytes compressed")
    }
    for (i, run) in header.runs.enumerated() where !(segments?.isReferenced(run) ?? true) {
        throw CheckpointError.field(
            section, entry.offset + UInt64(FrameLayout.fixedLength), "run \(i)",
            expected: "pages inside segments with references", found: run)
    }
    return (header, Array(record[Int(header.headerLength)..<Int(length)]))
}

/// Whether runs lie inside segments with references, by binary search (a
/// lazy loader checks frames in any order).
struct SegmentLookup: Sendable {
    let segments: [SegmentRecord]

    init(_ segments: [SegmentRecord]) {
        self.segments = segments
    }

    func isReferenced(_ run: FileRange) -> Bool {
        var lo = 0
        var hi = segments.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if segments[mid].range.end <= run.start { lo = mid + 1 } else { hi = mid }
        }
        var at = run.start
        var i = lo
        while at < run.end {
            guard i < segments.count, segments[i].range.start <= at, segments[i].refs > 0 else { return false }
            at = segments[i].range.end
            i += 1
        }
        return true
    }
}
