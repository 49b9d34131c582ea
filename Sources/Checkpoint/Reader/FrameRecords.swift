import PGAlloc

/// Reads frame `f`'s header and checks it against its index entry, the
/// previous frame's entry and (when given) the segment table: what the
/// sequential reader checks, frame by frame.
func readFrameHeader(_ f: Int, from input: RandomAccessInput, metadata: CheckpointMetadata, segments: SegmentLookup?) throws -> FrameHeader {
    let entry = metadata.index[f]
    let section = CheckpointSection.frame(UInt64(f))
    let recordEnd = f + 1 < metadata.index.count ? metadata.index[f + 1].offset : metadata.indexOffset
    let prefixBytes = try input.read(at: entry.offset, count: FrameLayout.fixedLength, section: section)
    let previousEnd = f > 0 ? metadata.index[f - 1].endAddress : 0
    let prefix = try FrameHeaderPrefix.decode(
        prefixBytes, offset: entry.offset, expectedSequence: UInt64(f), previousEnd: previousEnd, header: metadata.header)
    let rest = try input.read(at: entry.offset + UInt64(FrameLayout.fixedLength), count: prefix.restLength, section: section)
    let header = try prefix.complete(rest, offset: entry.offset, header: metadata.header)
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
    return header
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
