#if canImport(Glibc)
import Glibc
#endif
import PGAlloc

/// How far a save or restore has got, for progress displays.
public struct CheckpointProgress: Sendable {
    /// Bytes of page data processed so far.
    public var bytesDone: UInt64
    /// Bytes of page data in all (an upper bound while saving: zero pages
    /// are found on the way and not stored); 0 if unknown (a restore from a
    /// stream).
    public var bytesTotal: UInt64

    public init(bytesDone: UInt64, bytesTotal: UInt64) {
        self.bytesDone = bytesDone
        self.bytesTotal = bytesTotal
    }
}

/// Options of a save.
public struct SaveOptions: Sendable {
    /// zstd compression level. Level 1 is the measured default: see
    /// BENCHMARKS.md.
    public var level: Int32 = 1
    /// Threads that compress; every core by default.
    public var threads: Int = defaultThreadCount()
    /// Largest uncompressed size of a frame, a multiple of 4096 up to
    /// 64 MiB. Larger frames compress a little better and cost more memory
    /// per thread; see BENCHMARKS.md for the default's measurement.
    public var frameSize: Int = 8 << 20
    /// Called from the saving thread as frames are written.
    public var progress: (@Sendable (CheckpointProgress) -> Void)? = nil
    /// Runs of zero pages a save collects before it punches them, bounding
    /// its memory (16 bytes a run); tests lower it to exercise punching
    /// during the save.
    var zeroPageBatchLimit = 1 << 18

    public init() {}

    func validated() throws -> SaveOptions {
        guard frameSize >= 4096, frameSize % 4096 == 0, UInt64(frameSize) <= UInt64(CheckpointFormat.maxFrameLimit) else {
            throw CheckpointUsageError("frame size \(frameSize) must be a multiple of 4096 from 4096 to \(CheckpointFormat.maxFrameLimit)")
        }
        try checkThreadCount(threads)
        return self
    }
}

/// What a save did.
public struct SaveReport: Sendable, Hashable {
    /// Size of the saved file.
    public var fileSize: UInt64
    /// The saved memory's own length: `fileSize` for a MemoryFile, the
    /// image's length for a raw image.
    public var dataSize: UInt64
    /// Segments of the usage set stored.
    public var segments: Int
    /// Bytes of page data stored.
    public var storedBytes: UInt64
    /// Bytes of committed pages found all zero: not stored, and
    /// decommitted in the saved file.
    public var zeroBytesDropped: UInt64
    /// Frames written.
    public var frames: UInt64
    /// Bytes of the checkpoint.
    public var checkpointBytes: UInt64
    /// How the pages holding data were found ("none", "mincore",
    /// "seekData", "mincoreThenSeekData").
    public var scan: String
}

/// A save or restore asked for something impossible (bad options).
public struct CheckpointUsageError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The number of online CPUs.
public func defaultThreadCount() -> Int {
    max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}

/// The thread counts save, restore and verify accept.
public let threadCountRange = 1...1024

/// Throws unless `threads` is in `threadCountRange`.
func checkThreadCount(_ threads: Int) throws(CheckpointUsageError) {
    guard threadCountRange.contains(threads) else {
        throw CheckpointUsageError("thread count \(threads) must be from 1 to 1024")
    }
}
