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
    /// The parent (`PRNT`) of an incremental checkpoint.
    public var parent: ParentRecord? = nil
    /// Pages not stored but referenced (`REFS`), by address.
    public var references = SpillArray<PageReference>()
    /// Where the page hashes (`PHSH`) are, and which pages they cover.
    var pageHashes: PageHashes? = nil

    /// Bytes of the references.
    public var referencedBytes: UInt64 { references.reduce(0) { $0 + $1.destination.length } }
}

/// A checkpoint's `PHSH`: the pages it stores, and where each one's hash
/// lies in the file.
struct PageHashes: Sendable {
    /// The stored pages.
    var runs: PageRunTable
    /// Checkpoint offset of the first hash; of a sealed payload, its offset
    /// in the plaintext.
    var hashesOffset: UInt64
    /// Whether the whole payload's CRC was checked.
    var checked: Bool
    /// The payload, if it is sealed (an encrypted checkpoint).
    var sealed: SealedPayload? = nil

    /// Reads the hashes of the stored pages from the `ordinal`-th on into
    /// `out` (32 bytes each), from `input`, the checkpoint's file.
    func readDigests(from input: RandomAccessInput, ordinal: UInt64, into out: UnsafeMutableRawBufferPointer) throws {
        let at = hashesOffset + ordinal * UInt64(PageDigest.length)
        if let sealed {
            try sealed.read(from: input, plainOffset: at, into: out)
        } else {
            try input.read(at: at, into: out, section: .section(.pageHashes))
        }
    }
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
