/// How far a save, restore or verification has got, for progress displays.
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

/// A callback that receives progress, on the thread that drives the work.
public typealias ProgressHandler = @Sendable (CheckpointProgress) -> Void
