/// A half-open range of offsets `[start, end)` in a file, or of keys in a
/// `SegmentSet`.
///
/// Not `Range<UInt64>`: a range may span the whole 64-bit space (the single
/// gap of an empty set does), and `Range.count` traps past `Int.max`.
@frozen
public struct FileRange: Hashable, Sendable, CustomStringConvertible {
    public var start: UInt64
    public var end: UInt64

    @inlinable
    public init(start: UInt64, end: UInt64) {
        self.start = start
        self.end = end
    }

    /// `end - start`, wrapping if the range is not well formed.
    @inlinable
    public var length: UInt64 { end &- start }

    /// Whether `start <= end`.
    @inlinable
    public var isWellFormed: Bool { start <= end }

    /// Whether the range holds no key.
    @inlinable
    public var isEmpty: Bool { start >= end }

    /// Whether `key` lies in the range.
    @inlinable
    public func contains(_ key: UInt64) -> Bool { start <= key && key < end }

    /// Whether every key of `other` lies in this range.
    @inlinable
    public func isSuperset(of other: FileRange) -> Bool { start <= other.start && other.end <= end }

    /// Whether the two ranges share a key.
    @inlinable
    public func overlaps(_ other: FileRange) -> Bool { start < other.end && other.start < end }

    /// The keys in both ranges; empty (start == end) if they share none.
    @inlinable
    /// The parts of this range outside `other`: none, one or two ranges,
    /// in order.
    public func subtracting(_ other: FileRange) -> [FileRange] {
        guard overlaps(other) else { return isEmpty ? [] : [self] }
        var out: [FileRange] = []
        if start < other.start {
            out.append(FileRange(start: start, end: other.start))
        }
        if other.end < end {
            out.append(FileRange(start: other.end, end: end))
        }
        return out
    }

    public func intersection(_ other: FileRange) -> FileRange {
        let s = max(start, other.start)
        let e = min(end, other.end)
        return s < e ? FileRange(start: s, end: e) : FileRange(start: s, end: s)
    }

    /// Whether splitting at `key` leaves two non-empty ranges.
    @inlinable
    public func canSplit(at key: UInt64) -> Bool { start < key && key < end }

    /// Whether both bounds are multiples of `alignment` (a power of two).
    @inlinable
    public func isAligned(to alignment: UInt64) -> Bool { (start | end) & (alignment &- 1) == 0 }

    public var description: String {
        "[0x\(String(start, radix: 16)), 0x\(String(end, radix: 16)))"
    }
}
