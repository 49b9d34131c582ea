/// What the allocator knows about a range of pages: the value of the usage
/// set. Pages with no segment are free and uncommitted.
public struct UsageInfo: Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    /// What the pages are used for. Freed pages waiting for the reclaimer
    /// are `.system`.
    public var kind: MemoryKind
    /// True if the pages are certainly committed (and accounted to `kind`);
    /// false if they may or may not be.
    public var knownCommitted: Bool
    /// References held by users; 0 while the pages wait for the reclaimer.
    public var refs: UInt64

    public init(kind: MemoryKind, knownCommitted: Bool = false, refs: UInt64 = 1) {
        self.kind = kind
        self.knownCommitted = knownCommitted
        self.refs = refs
    }

    /// Whether a scan may find these pages committed and account them.
    /// Freed pages are treated as uncommitted, like unallocated ones.
    ///
    /// - Note: gVisor usageInfo.canCommit.
    var canCommit: Bool { !knownCommitted && refs != 0 }

    public var description: String {
        "{\(kind), \(knownCommitted ? "committed" : "maybe-uncommitted"), refs \(refs)}"
    }
}

/// The usage set's instance: segments merge only when their values are
/// equal, which keeps the set maximally merged.
public enum UsageSetFunctions: SegmentSetFunctions {
    public typealias Value = UsageInfo

    @inlinable
    public static func merge(_: FileRange, _ v1: UsageInfo, _: FileRange, _ v2: UsageInfo) -> UsageInfo? {
        v1 == v2 ? v1 : nil
    }

    @inlinable
    public static func split(_: FileRange, _ v: UsageInfo, at _: UInt64) -> (UsageInfo, UsageInfo) {
        (v, v)
    }
}

/// The usage set of a MemoryFile.
public typealias UsageSet = SegmentSet<UsageSetFunctions>
