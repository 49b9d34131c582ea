import PGAlloc

/// Everything a checkpoint says about itself, apart from page data.
public struct CheckpointMetadata: Sendable {
    public var header: CheckpointHeader
    public var segments: [SegmentRecord]
    public var totals: IndexTotals
    /// Bytes of the checkpoint.
    public var checkpointLength: UInt64
    /// Every frame's header (runs included), in order, if asked for.
    public var frames: [FrameHeader]
    /// What the index says of each frame, in order.
    public var index: [IndexEntry]
    /// Version 2: the sections, head ones then tail ones, in file order.
    /// Empty for version 1.
    public var sections: [SectionEntry]
    /// Version 2: the `ANNO` section's annotations (empty without one).
    public var annotations: [String: String]
    /// Checkpoint offset of the first frame.
    public var framesOffset: UInt64
    /// Checkpoint offset of the index (where the frames end).
    public var indexOffset: UInt64
    /// Bytes of the index.
    public var indexLength: UInt64
    /// Version 2: the `PREF` section's frames (the order a lazy restore
    /// loads them in); empty without one.
    public var prefetchOrder: [UInt64]
    /// Version 2: the checkpoint's identity, signature and encryption.
    public var security = CheckpointSecurity()
    /// What checks and opens the frames before they are decompressed (a
    /// signature required, an encrypted checkpoint), for whoever reads
    /// them later (a lazy loader).
    var frameOpener: FrameOpener? = nil
}

/// What a scan does with the frames' payloads.
enum PayloadMode {
    /// Skip them (seek over them in a file): for reading the metadata.
    case skip
    /// Check their checksums, decompress them on worker threads, and hand
    /// the data to a sink.
    case decompress(FrameSink)

    var readsPayloads: Bool {
        if case .decompress = self { true } else { false }
    }
}

/// Receives the checkpoint's parts as a scan validates them.
protocol FrameSink: AnyObject, Sendable {
    /// Called once the header, the sections and the segment table are read
    /// and checked (and, from a file, the index and trailer), before any
    /// frame.
    func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws
    /// Called on a worker thread with the decompressed data of a checked
    /// frame, `data.count == frame.uncompressedLength`.
    func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws
}
