import PGAlloc

/// A sink that eager restores write into, page by page, and read back.
protocol RestoreSink: FrameSink {
    /// Where the pages go; valid once `begin` was called.
    var target: RestoreTarget { get }
    /// The referenced pages are written (sorted, disjoint).
    func referencesRestored(_ ranges: [FileRange])
}

extension CheckpointScanner {
    /// Scans the checkpoint into `sink` and restores its references: the
    /// chain of parents is found and each parent's identity checked before
    /// the sink creates any memory; from a file, the references are checked
    /// against the parents then too (from a stream, once read).
    ///
    /// From a file, the copies a checkpoint makes of its own pages are
    /// written by the frame workers from each frame as it is decompressed;
    /// from a stream, whose references come after its frames, they are
    /// copied within the target at the end.
    func restore(into sink: RestoreSink, location: CheckpointLocation, options: RestoreOptions) throws -> CheckpointMetadata {
        var scanner = self
        let resolution = ChainResolution(location: location, searchPaths: options.parentSearchPaths, keys: options.keys)
        let copies = OwnCopiesSink(sink)
        scanner.beforeFrames = { head, ends in
            try resolution.beforeFrames(head, ends)
            if let ends {
                try copies.plan(ends.references, index: ends.index.entries)
            }
        }
        let metadata = try scanner.scan(.decompress(copies))
        try resolution.check(metadata.references)
        try ReferenceReader.restore(
            metadata.references, chain: resolution.chain, target: sink.target, threads: options.threads,
            withinDone: copies.planned)
        // Destinations past the last frame, or all of them from a stream.
        let marked = copies.planned ? copies.markedUpTo : 0
        markRestored(metadata.references.lazy.filter { $0.destination.start >= marked }, in: sink)
        return metadata
    }
}

/// Tells `sink` the references' destinations are written, adjacent ones
/// merged, in bounded batches (a checkpoint may hold a reference per
/// page).
private func markRestored<References: Sequence<PageReference>>(_ references: References, in sink: RestoreSink) {
    let batch = 1 << 14
    var ranges: [FileRange] = []
    for r in references {
        if let last = ranges.last, last.end == r.destination.start {
            ranges[ranges.count - 1].end = r.destination.end
        } else {
            if ranges.count == batch {
                sink.referencesRestored(ranges)
                ranges.removeAll(keepingCapacity: true)
            }
            ranges.append(r.destination)
        }
    }
    if !ranges.isEmpty {
        sink.referencesRestored(ranges)
    }
}

/// Passes frames to a restore sink, then writes the copies of their pages
/// the checkpoint references at other addresses (references of link 0),
/// from the decompressed frame: on the worker that has it, without reading
/// the pages back from the target.
///
/// It also tells the sink which referenced pages are restored (all links)
/// with the frame whose span they fall in or come just before, rather than
/// all at the end: a MemoryFile's usage set then never holds a hole for
/// each of them (a checkpoint may hold a reference per page), only around
/// the frames in flight. Parents' pages are written after the frames; the
/// restore fails as a whole if they cannot be.
///
/// The references stay in the one array the checkpoint's metadata holds;
/// what this adds is 4 bytes a reference (their order by source address)
/// and an entry for each further frame a source crosses into.
final class OwnCopiesSink: FrameSink, @unchecked Sendable {
    let inner: RestoreSink
    // Set by `plan`, before the frames; only read by the workers after.
    private var references = SpillArray<PageReference>()
    private var index: [IndexEntry] = []
    /// The references of link 0, as positions in `references`, by source
    /// address: each is found from the frame holding its first page.
    private var bySource = SpillArray<UInt32>()
    /// (frame, position) for each frame after its first that a source
    /// reaches into, by frame.
    private var continued: [(frame: Int, reference: UInt32)] = []
    private var target: LoadTarget?
    /// Whether `plan` took the copies of link 0: they are then this sink's.
    private(set) var planned = false
    /// References whose destination starts below this address are marked
    /// restored by the frames (everything up to the last frame's end).
    var markedUpTo: UInt64 { index.last?.endAddress ?? 0 }

    init(_ inner: RestoreSink) {
        self.inner = inner
    }

    /// Orders the references of link 0 by source, over the frames of
    /// `index`. Called once, before `begin`. Throws if a source is not
    /// inside the frames' spans end to end.
    func plan(_ references: SpillArray<PageReference>, index: [IndexEntry]) throws {
        precondition(!planned, "OwnCopiesSink.plan: called twice")
        // Positions are 32-bit: past that (16 TiB of single pages) the
        // copies are made at the end instead.
        guard references.count <= Int(UInt32.max) else { return }
        self.references = references
        self.index = index
        var order = SpillArray<UInt32>()
        for (i, r) in references.enumerated() where r.link == 0 {
            order.append(UInt32(i))
            guard var f = index.frame(holding: r.source) else {
                throw Self.notInFrames(r)
            }
            while index[f].endAddress < r.sourceRange.end {
                // The source runs on into the next frame, which must start
                // where this one ends.
                guard f + 1 < index.count, index[f + 1].firstAddress == index[f].endAddress else {
                    throw Self.notInFrames(r)
                }
                f += 1
                continued.append((f, UInt32(i)))
            }
        }
        order.sort { references[Int($0)].source < references[Int($1)].source }
        continued.sort { $0.frame < $1.frame }
        bySource = order
        planned = true
    }

    private static func notInFrames(_ r: PageReference) -> CheckpointError {
        CheckpointError.field(
            .section(.references), 0, "source", expected: "pages the frames store", found: r.sourceRange)
    }

    func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws {
        try inner.begin(header: header, segments: segments)
        target = inner.target
    }

    func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws {
        try inner.consume(frame, data: data)
        guard !references.isEmpty, let target, Int(frame.sequence) < index.count else { return }
        let f = Int(frame.sequence)
        try copyOut(f, frame, data, to: target)
        // The referenced pages between the previous frame and this one's end.
        let from = f == 0 ? 0 : index[f - 1].endAddress
        let lo = references.partitionPoint { $0.destination.start < from }
        var end = lo
        while end < references.count && references[end].destination.start < index[f].endAddress {
            end += 1
        }
        if end > lo {
            markRestored(references[lo..<end], in: inner)
        }
    }

    /// Writes the copies whose sources are in frame `f`.
    private func copyOut(_ f: Int, _ frame: FrameHeader, _ data: UnsafeRawBufferPointer, to target: LoadTarget) throws {
        guard !bySource.isEmpty else { return }
        let span = FileRange(start: index[f].firstAddress, end: index[f].endAddress)
        let stored = FrameData(frame, data)
        func copy(_ r: PageReference) throws {
            // The part of the source inside this frame.
            let source = r.sourceRange.intersection(span)
            try target.write(try stored.bytes(of: source), at: r.destination.start + (source.start - r.source))
        }
        // Sources starting in this frame.
        var i = bySource.partitionPoint { references[Int($0)].source < span.start }
        while i < bySource.count && references[Int(bySource[i])].source < span.end {
            try copy(references[Int(bySource[i])])
            i += 1
        }
        // Sources that started in an earlier frame.
        i = continued.partitionPoint { $0.frame < f }
        while i < continued.count && continued[i].frame == f {
            try copy(references[Int(continued[i].reference)])
            i += 1
        }
    }
}
