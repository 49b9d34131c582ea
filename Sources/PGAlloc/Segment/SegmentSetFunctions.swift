/// What an instance of `SegmentSet` supplies: its value type, its key
/// bounds, and how values merge and split. gVisor generates one set per
/// instance; here one generic set takes the instance as a type.
///
/// Values are `BitwiseCopyable`: the tree moves them with `memmove` and
/// never has to release them, so the seed's `ClearValue` has nothing to do.
public protocol SegmentSetFunctions {
    associatedtype Value: BitwiseCopyable

    /// The smallest key a segment may hold. Default 0.
    static var minKey: UInt64 { get }
    /// One past the largest key a segment may hold. Default `UInt64.max`.
    static var maxKey: UInt64 { get }
    /// Whether every node keeps its largest gap, which the large-enough-gap
    /// searches need. Default true.
    static var tracksGaps: Bool { get }

    /// The value of the segment made by joining two adjacent segments, or
    /// nil if they must stay apart.
    static func merge(_ range1: FileRange, _ value1: Value, _ range2: FileRange, _ value2: Value) -> Value?

    /// The values of the two halves of `range` split at `key`.
    static func split(_ range: FileRange, _ value: Value, at key: UInt64) -> (Value, Value)
}

extension SegmentSetFunctions {
    @inlinable public static var minKey: UInt64 { 0 }
    @inlinable public static var maxKey: UInt64 { .max }
    @inlinable public static var tracksGaps: Bool { true }
}

/// A set instance for values with no content: segments are just ranges, and
/// adjacent ones always merge (the seed's reclaim and evictable sets).
public enum RangeSetFunctions: SegmentSetFunctions {
    public typealias Value = Void

    @inlinable
    public static func merge(_: FileRange, _: Void, _: FileRange, _: Void) -> Void? { () }

    @inlinable
    public static func split(_: FileRange, _: Void, at _: UInt64) -> (Void, Void) { ((), ()) }
}

/// A set of ranges with no values, merged wherever they touch.
public typealias FileRangeSet = SegmentSet<RangeSetFunctions>

/// As `RangeSetFunctions`, without gap tracking: for sets that are never
/// searched for gaps (the seed's reclaim and evictable sets), whose
/// mutations then skip the bookkeeping.
public enum UntrackedRangeSetFunctions: SegmentSetFunctions {
    public typealias Value = Void

    @inlinable
    public static var tracksGaps: Bool { false }

    @inlinable
    public static func merge(_: FileRange, _: Void, _: FileRange, _: Void) -> Void? { () }

    @inlinable
    public static func split(_: FileRange, _: Void, at _: UInt64) -> (Void, Void) { ((), ()) }
}

/// A set of ranges merged wherever they touch, without gap tracking.
public typealias UntrackedFileRangeSet = SegmentSet<UntrackedRangeSetFunctions>
