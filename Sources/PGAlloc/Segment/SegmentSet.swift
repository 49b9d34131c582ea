/// An ordered map from non-overlapping ranges of `UInt64` keys to values:
/// gVisor's segment set, as a B-tree with gap tracking.
///
/// A *segment* is a range of keys with a value; a *gap* is a maximal range
/// with no segment, possibly empty (between two touching segments). An empty
/// set has one gap spanning `[minKey, maxKey)`.
///
/// `Segment` and `Gap` are positions in the tree. As in the seed, any
/// mutation of the set invalidates every position except the ones it
/// returns; changing a segment's value does not invalidate positions.
///
/// A `SegmentSet` is a value: copies share storage until one is mutated.
public struct SegmentSet<Functions: SegmentSetFunctions> {
    public typealias Value = Functions.Value

    @usableFromInline var storage: SegmentSetStorage<Functions>

    /// A position of a segment in the set.
    public struct Segment: Hashable, Sendable {
        @usableFromInline let node: Int32
        @usableFromInline let index: Int32

        @inline(__always) @usableFromInline
        init(_ p: SegmentPosition) {
            node = Int32(truncatingIfNeeded: p.n)
            index = Int32(truncatingIfNeeded: p.i)
        }

        @inline(__always) @usableFromInline
        var position: SegmentPosition { SegmentPosition(Int(node), Int(index)) }
    }

    /// A position of a gap in the set.
    public struct Gap: Hashable, Sendable {
        @usableFromInline let node: Int32
        @usableFromInline let index: Int32

        @inline(__always) @usableFromInline
        init(_ p: SegmentPosition) {
            node = Int32(truncatingIfNeeded: p.n)
            index = Int32(truncatingIfNeeded: p.i)
        }

        @inline(__always) @usableFromInline
        var position: SegmentPosition { SegmentPosition(Int(node), Int(index)) }
    }

    /// What holds a key: a segment or a gap.
    public enum Position: Hashable, Sendable {
        case segment(Segment)
        case gap(Gap)
    }

    /// An empty set.
    public init() {
        storage = SegmentSetStorage()
    }

    @inline(__always) @usableFromInline
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            storage = storage.copy()
        }
    }

    @inline(__always) @usableFromInline
    static func segment(_ p: SegmentPosition) -> Segment? { p.ok ? Segment(p) : nil }

    @inline(__always) @usableFromInline
    static func gap(_ p: SegmentPosition) -> Gap? { p.ok ? Gap(p) : nil }
}

extension SegmentSet: @unchecked Sendable where Value: Sendable {}

// MARK: - Whole-set queries

extension SegmentSet {
    /// Whether the set holds no segment.
    @inlinable
    public var isEmpty: Bool { storage.count(0) == 0 }

    /// Whether no segment overlaps `range`.
    ///
    /// - Precondition: `range` is well formed.
    public func isEmptyRange(_ range: FileRange) -> Bool {
        precondition(range.isWellFormed, "SegmentSet.isEmptyRange(\(range)): invalid range")
        if range.isEmpty {
            return true
        }
        let (_, gap) = storage.find(range.start)
        return gap.ok && range.end <= storage.gapEnd(gap)
    }

    /// The total length of all segments.
    public var span: UInt64 {
        var total: UInt64 = 0
        var s = storage.lowerBoundSegment(Functions.minKey)
        while s.ok {
            total &+= storage.key(s.n, s.i).length
            s = storage.nextSegment(ofSegment: s)
        }
        return total
    }

    /// The total length of the parts of segments inside `range`.
    ///
    /// - Precondition: `range` is well formed.
    public func spanRange(_ range: FileRange) -> UInt64 {
        precondition(range.isWellFormed, "SegmentSet.spanRange(\(range)): invalid range")
        var total: UInt64 = 0
        if range.isEmpty {
            return 0
        }
        var s = storage.lowerBoundSegment(range.start)
        while s.ok && storage.key(s.n, s.i).start < range.end {
            total &+= storage.key(s.n, s.i).intersection(range).length
            s = storage.nextSegment(ofSegment: s)
        }
        return total
    }

    /// Bytes of the set's node arrays that nodes have used: what the set
    /// holds in memory. The arrays reserve room for twice as many at most
    /// (they grow by doubling and never shrink); room never used costs no
    /// memory.
    public var storageBytes: Int {
        storage.used * SegmentSetStorage<Functions>.bytesPerNode
    }

    /// The number of segments (walks the whole set).
    public var segmentCount: Int {
        var n = 0
        var s = storage.lowerBoundSegment(Functions.minKey)
        while s.ok {
            n += 1
            s = storage.nextSegment(ofSegment: s)
        }
        return n
    }
}

// MARK: - Finding

extension SegmentSet {
    /// The segment or gap holding `key`.
    @inlinable
    public func find(_ key: UInt64) -> Position {
        let (seg, gap) = storage.find(key)
        return seg.ok ? .segment(Segment(seg)) : .gap(Gap(gap))
    }

    /// The segment holding `key`, if any.
    @inlinable
    public func findSegment(containing key: UInt64) -> Segment? {
        Self.segment(storage.find(key).segment)
    }

    /// The gap holding `key`, if no segment holds it.
    @inlinable
    public func findGap(containing key: UInt64) -> Gap? {
        Self.gap(storage.find(key).gap)
    }

    /// The first segment holding a key `>= key`.
    @inlinable
    public func lowerBoundSegment(_ key: UInt64) -> Segment? {
        Self.segment(storage.lowerBoundSegment(key))
    }

    /// The last segment holding a key `<= key`.
    @inlinable
    public func upperBoundSegment(_ key: UInt64) -> Segment? {
        let (seg, gap) = storage.find(key)
        return Self.segment(seg.ok ? seg : storage.previousSegment(ofGap: gap))
    }

    /// The first gap holding a key `>= key`, or the empty gap right after
    /// the segment holding `key`.
    @inlinable
    public func lowerBoundGap(_ key: UInt64) -> Gap {
        let (seg, gap) = storage.find(key)
        return Gap(gap.ok ? gap : storage.nextGap(ofSegment: seg))
    }

    /// The last gap holding a key `<= key`, or the gap right before the
    /// segment holding `key`.
    @inlinable
    public func upperBoundGap(_ key: UInt64) -> Gap {
        let (seg, gap) = storage.find(key)
        return Gap(gap.ok ? gap : storage.previousGap(ofSegment: seg))
    }

    /// The first segment, if any.
    @inlinable
    public var firstSegment: Segment? {
        isEmpty ? nil : Segment(storage.firstSegment(under: 0))
    }

    /// The last segment, if any.
    @inlinable
    public var lastSegment: Segment? {
        isEmpty ? nil : Segment(storage.lastSegment(under: 0))
    }

    /// The gap before the first segment (the whole key space if empty).
    @inlinable
    public var firstGap: Gap { Gap(storage.firstGap()) }

    /// The gap after the last segment (the whole key space if empty).
    @inlinable
    public var lastGap: Gap { Gap(storage.lastGap()) }
}

// MARK: - Segments

extension SegmentSet {
    @inlinable
    public func range(of segment: Segment) -> FileRange {
        storage.key(Int(segment.node), Int(segment.index))
    }

    @inlinable
    public func start(of segment: Segment) -> UInt64 { range(of: segment).start }

    @inlinable
    public func end(of segment: Segment) -> UInt64 { range(of: segment).end }

    /// The value of a segment. Setting it does not invalidate positions.
    @inlinable
    public subscript(segment: Segment) -> Value {
        get {
            storage.value(Int(segment.node), Int(segment.index))
        }
        _modify {
            makeUnique()
            yield &storage.valuePointer(Int(segment.node), Int(segment.index)).pointee
        }
    }

    @inlinable
    public func nextSegment(after segment: Segment) -> Segment? {
        Self.segment(storage.nextSegment(ofSegment: segment.position))
    }

    @inlinable
    public func previousSegment(before segment: Segment) -> Segment? {
        Self.segment(storage.previousSegment(ofSegment: segment.position))
    }

    @inlinable
    public func nextGap(after segment: Segment) -> Gap {
        Gap(storage.nextGap(ofSegment: segment.position))
    }

    @inlinable
    public func previousGap(before segment: Segment) -> Gap {
        Gap(storage.previousGap(ofSegment: segment.position))
    }

    /// The segment right after `segment` if it touches it, else the gap
    /// after it; nil if `segment` ends at `maxKey`.
    public func nextNonEmpty(after segment: Segment) -> Position? {
        let gap = storage.nextGap(ofSegment: segment.position)
        if storage.gapRange(gap).length != 0 {
            return .gap(Gap(gap))
        }
        return Self.segment(storage.nextSegment(ofGap: gap)).map(Position.segment)
    }

    /// The segment right before `segment` if it touches it, else the gap
    /// before it; nil if `segment` starts at `minKey`.
    public func previousNonEmpty(before segment: Segment) -> Position? {
        let gap = storage.previousGap(ofSegment: segment.position)
        if storage.gapRange(gap).length != 0 {
            return .gap(Gap(gap))
        }
        return Self.segment(storage.previousSegment(ofGap: gap)).map(Position.segment)
    }

    /// Changes a segment's range. Does not invalidate positions.
    ///
    /// - Precondition: `range` is non-empty and overlaps neither neighbour.
    public mutating func setRange(of segment: Segment, to range: FileRange) {
        let s = segment.position
        precondition(!range.isEmpty, "SegmentSet.setRange(\(range)): invalid segment range")
        let prev = storage.previousSegment(ofSegment: s)
        if prev.ok {
            precondition(
                range.start >= storage.key(prev.n, prev.i).end,
                "SegmentSet.setRange(\(range)): overlaps segment \(storage.key(prev.n, prev.i))")
        }
        let next = storage.nextSegment(ofSegment: s)
        if next.ok {
            precondition(
                range.end <= storage.key(next.n, next.i).start,
                "SegmentSet.setRange(\(range)): overlaps segment \(storage.key(next.n, next.i))")
        }
        precondition(
            range.start >= Functions.minKey && range.end <= Functions.maxKey,
            "SegmentSet.setRange(\(range)): outside the key space")
        setRangeUnchecked(of: segment, to: range)
    }

    /// Changes a segment's range without checking it, keeping gap tracking
    /// right. Does not invalidate positions.
    ///
    /// - Precondition: `range` is non-empty and overlaps neither neighbour.
    public mutating func setRangeUnchecked(of segment: Segment, to range: FileRange) {
        makeUnique()
        let s = segment.position
        storage.setKey(s.n, s.i, range)
        if Functions.tracksGaps {
            storage.updateMaxGapLeaf(storage.previousGap(ofSegment: s).n)
            storage.updateMaxGapLeaf(storage.nextGap(ofSegment: s).n)
        }
    }

    /// Changes a segment's start. See `setRange(of:to:)`.
    public mutating func setStart(of segment: Segment, to start: UInt64) {
        setRange(of: segment, to: FileRange(start: start, end: end(of: segment)))
    }

    /// Changes a segment's end. See `setRange(of:to:)`.
    public mutating func setEnd(of segment: Segment, to end: UInt64) {
        setRange(of: segment, to: FileRange(start: start(of: segment), end: end))
    }
}

// MARK: - Gaps

extension SegmentSet {
    @inlinable
    public func range(of gap: Gap) -> FileRange {
        storage.gapRange(gap.position)
    }

    @inlinable
    public func start(of gap: Gap) -> UInt64 { storage.gapStart(gap.position) }

    @inlinable
    public func end(of gap: Gap) -> UInt64 { storage.gapEnd(gap.position) }

    /// Whether the gap is empty: it lies between two touching segments.
    @inlinable
    public func isEmpty(_ gap: Gap) -> Bool { range(of: gap).length == 0 }

    @inlinable
    public func nextSegment(after gap: Gap) -> Segment? {
        Self.segment(storage.nextSegment(ofGap: gap.position))
    }

    @inlinable
    public func previousSegment(before gap: Gap) -> Segment? {
        Self.segment(storage.previousSegment(ofGap: gap.position))
    }

    @inlinable
    public func nextGap(after gap: Gap) -> Gap? {
        Self.gap(storage.nextGap(ofGap: gap.position))
    }

    @inlinable
    public func previousGap(before gap: Gap) -> Gap? {
        Self.gap(storage.previousGap(ofGap: gap.position))
    }

    /// The first gap after `gap` (not `gap` itself) at least `minSize` long.
    /// O(log n).
    ///
    /// - Precondition: the set tracks gaps.
    @inlinable
    public func nextLargeEnoughGap(after gap: Gap, minSize: UInt64) -> Gap? {
        precondition(Functions.tracksGaps, "SegmentSet.nextLargeEnoughGap: this set does not track gaps")
        return Self.gap(storage.nextLargeEnoughGap(after: gap.position, minSize: minSize).position)
    }

    /// The last gap before `gap` (not `gap` itself) at least `minSize` long.
    /// O(log n).
    ///
    /// - Precondition: the set tracks gaps.
    @inlinable
    public func previousLargeEnoughGap(before gap: Gap, minSize: UInt64) -> Gap? {
        precondition(Functions.tracksGaps, "SegmentSet.previousLargeEnoughGap: this set does not track gaps")
        return Self.gap(storage.previousLargeEnoughGap(before: gap.position, minSize: minSize).position)
    }

    /// As `nextLargeEnoughGap(after:minSize:)`, with the gap's range, which
    /// the search has at hand.
    func nextLargeEnoughGapAndRange(after gap: Gap, minSize: UInt64) -> (gap: Gap, range: FileRange)? {
        precondition(Functions.tracksGaps, "SegmentSet.nextLargeEnoughGap: this set does not track gaps")
        let found = storage.nextLargeEnoughGap(after: gap.position, minSize: minSize)
        return found.position.ok ? (Gap(found.position), found.range) : nil
    }

    /// As `previousLargeEnoughGap(before:minSize:)`, with the gap's range,
    /// which the search has at hand.
    func previousLargeEnoughGapAndRange(before gap: Gap, minSize: UInt64) -> (gap: Gap, range: FileRange)? {
        precondition(Functions.tracksGaps, "SegmentSet.previousLargeEnoughGap: this set does not track gaps")
        let found = storage.previousLargeEnoughGap(before: gap.position, minSize: minSize)
        return found.position.ok ? (Gap(found.position), found.range) : nil
    }

    /// The first gap in the set at least `minSize` long. O(log n).
    ///
    /// - Precondition: the set tracks gaps.
    @inlinable
    public func firstLargeEnoughGap(minSize: UInt64) -> Gap? {
        precondition(Functions.tracksGaps, "SegmentSet.firstLargeEnoughGap: this set does not track gaps")
        return Self.gap(storage.searchFirstLargeEnoughGap(under: 0, minSize: minSize).position)
    }

    /// The last gap in the set at least `minSize` long. O(log n).
    ///
    /// - Precondition: the set tracks gaps.
    @inlinable
    public func lastLargeEnoughGap(minSize: UInt64) -> Gap? {
        precondition(Functions.tracksGaps, "SegmentSet.lastLargeEnoughGap: this set does not track gaps")
        return Self.gap(storage.searchLastLargeEnoughGap(under: 0, minSize: minSize).position)
    }
}
