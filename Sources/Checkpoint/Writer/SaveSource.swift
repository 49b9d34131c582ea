import PGAlloc

/// What a save reads: a MemoryFile of this process, or memory it did not
/// allocate (a raw memory image, another process's memfd).
protocol SaveSource: AnyObject, Sendable {
    /// Gets ready and describes the memory; called once, first.
    func prepare() throws -> SaveLayout
    /// Runs of pages that may hold data, at or after `cursor`, in order,
    /// totalling at most `maxBytes`.
    func committedRuns(from cursor: UInt64, maxBytes: UInt64) throws -> [FileRange]
    /// Calls `body` on the bytes of `run`, in order, in one or more slices.
    /// A source that lends its memory passes slices of it, valid as long as
    /// the source; one that must copy reads into `buffer`, the caller's,
    /// and reads a run that `buffer` can hold whole in one slice at its
    /// start, where it stays until the caller reuses `buffer`.
    func forEachSlice(of run: FileRange, buffer: UnsafeMutableRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void) throws
    /// Pages of `runs` were found all zero and were not stored: give them
    /// back to the host if the source can (`SaveOptions.decommitZeroPages`).
    /// Returns the bytes given back.
    func decommitZeroPages(_ runs: [FileRange]) throws -> UInt64
    /// The memory's accounting at the end of the save.
    func accountingSnapshot() -> MemoryStats
    /// Addresses in the order they were first needed after a lazy restore
    /// (for the checkpoint's prefetch order); empty if unknown.
    func accessOrder() -> [UInt64]
}

/// What a source looks like to a save.
struct SaveLayout {
    var fileSize: UInt64
    var dataSize: UInt64
    var segments: [SegmentRecord]
    /// How the pages holding data were found.
    var scan: String
    /// Bytes in the runs `committedRuns` will return (for progress).
    var committedBytes: UInt64
}
