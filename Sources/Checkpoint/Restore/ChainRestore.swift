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
        if !metadata.references.isEmpty {
            sink.referencesRestored(coalescedDestinations(metadata.references))
        }
        return metadata
    }
}

/// The references' destinations (ascending, disjoint), adjacent ones
/// merged.
private func coalescedDestinations(_ references: [PageReference]) -> [FileRange] {
    var out: [FileRange] = []
    for r in references {
        if let last = out.last, last.end == r.destination.start {
            out[out.count - 1].end = r.destination.end
        } else {
            out.append(r.destination)
        }
    }
    return out
}

/// Passes frames to a restore sink, then writes the copies of their pages
/// the checkpoint references at other addresses (references of link 0),
/// from the decompressed frame: on the worker that has it, without reading
/// the pages back from the target.
final class OwnCopiesSink: FrameSink, @unchecked Sendable {
    let inner: RestoreSink
    /// The pieces to copy out of each frame, by frame number; set before
    /// the frames (`plan`), read by the workers after.
    private var pieces: [Int: [ReferencePlan.Piece]] = [:]
    private var placement: PlacementSink?
    /// Whether `plan` ran: the copies of link 0 are then this sink's.
    private(set) var planned = false

    init(_ inner: RestoreSink) {
        self.inner = inner
    }

    /// Groups the references of link 0 by the frame of `index` holding
    /// their sources. Called once, before `begin`.
    func plan(_ references: [PageReference], index: [IndexEntry]) throws {
        precondition(!planned, "OwnCopiesSink.plan: called twice")
        if references.contains(where: { $0.link == 0 }) {
            // Filtered lazily: no copy of the references is made.
            let own = try ReferencePlan(references: references.lazy.filter { $0.link == 0 }, index: { _ in index })
            for unit in own.units {
                pieces[unit.frame] = unit.pieces
            }
        }
        planned = true
    }

    func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws {
        try inner.begin(header: header, segments: segments)
        if !pieces.isEmpty {
            placement = PlacementSink(target: inner.target, pieces: pieces)
            pieces = [:]
        }
    }

    func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws {
        try inner.consume(frame, data: data)
        try placement?.consume(frame, data: data)
    }
}
