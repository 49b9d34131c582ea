// Merging touching segments, splitting, isolating, and applying a change to
// a contiguous run of segments.

extension SegmentSet {
    /// Joins two neighbouring segments if they touch and their values merge;
    /// returns the joined segment, or nil if they stay apart.
    ///
    /// - Precondition: `second` is the segment right after `first`.
    @discardableResult
    public mutating func merge(_ first: Segment, _ second: Segment) -> Segment? {
        precondition(
            nextSegment(after: first) == second,
            "SegmentSet.merge: \(range(of: first)) and \(range(of: second)) are not neighbours\n\(self)")
        return mergeUnchecked(first, second)
    }

    /// As `merge(_:_:)`, without checking that the segments are neighbours.
    @discardableResult
    public mutating func mergeUnchecked(_ first: Segment, _ second: Segment) -> Segment? {
        makeUnique()
        return Self.segment(storage.mergeUnchecked(first.position, second.position))
    }

    /// Merges every pair of touching segments that can be merged.
    public mutating func mergeAll() {
        guard !isEmpty else { return }
        makeUnique()
        mergeRun(from: storage.firstSegment(under: 0), until: .max)
    }

    /// Merges touching segments among those holding a key in `range`.
    public mutating func mergeRange(_ range: FileRange) {
        let first = storage.lowerBoundSegment(range.start)
        guard first.ok else { return }
        makeUnique()
        mergeRun(from: first, until: range.end)
    }

    private mutating func mergeRun(from first: SegmentPosition, until limit: UInt64) {
        var seg = first
        var next = storage.nextSegment(ofSegment: seg)
        while next.ok && storage.key(next.n, next.i).start < limit {
            let merged = storage.mergeUnchecked(seg, next)
            if merged.ok {
                seg = merged
            } else {
                seg = next
            }
            next = storage.nextSegment(ofSegment: seg)
        }
    }

    /// Merges the segment holding `range.start` with its predecessor, and
    /// the segment holding `range.end - 1` with its successor, where they can
    /// be merged.
    public mutating func mergeAdjacent(_ range: FileRange) {
        guard !range.isEmpty else { return }
        makeUnique()
        let first = storage.find(range.start).segment
        if first.ok {
            let prev = storage.previousSegment(ofSegment: first)
            if prev.ok {
                _ = storage.mergeUnchecked(prev, first)
            }
        }
        let last = storage.find(range.end &- 1).segment
        if last.ok {
            let next = storage.nextSegment(ofSegment: last)
            if next.ok {
                _ = storage.mergeUnchecked(last, next)
            }
        }
    }

    /// Merges `segment` with its predecessor and then its successor, where
    /// they touch and can be merged; returns the segment that holds it
    /// now. Equivalent to `mergeAdjacent(range(of: segment))`, without
    /// looking the segment up.
    @discardableResult
    public mutating func mergeWithNeighbours(_ segment: Segment) -> Segment {
        makeUnique()
        var seg = segment.position
        let prev = storage.previousSegment(ofSegment: seg)
        if prev.ok {
            let merged = storage.mergeUnchecked(prev, seg)
            if merged.ok {
                seg = merged
            }
        }
        let next = storage.nextSegment(ofSegment: seg)
        if next.ok {
            let merged = storage.mergeUnchecked(seg, next)
            if merged.ok {
                seg = merged
            }
        }
        return Segment(seg)
    }

    /// Splits a segment at `key`; returns the two halves.
    ///
    /// - Precondition: `key` lies strictly inside the segment.
    @discardableResult
    public mutating func split(_ segment: Segment, at key: UInt64) -> (Segment, Segment) {
        precondition(
            range(of: segment).canSplit(at: key),
            "SegmentSet.split: cannot split \(range(of: segment)) at 0x\(String(key, radix: 16))")
        return splitUnchecked(segment, at: key)
    }

    /// As `split(_:at:)`, without checking `key`.
    @discardableResult
    public mutating func splitUnchecked(_ segment: Segment, at key: UInt64) -> (Segment, Segment) {
        makeUnique()
        let (a, b) = storage.splitUnchecked(segment.position, at: key)
        return (Segment(a), Segment(b))
    }

    /// Splits the segment holding `key` there, if `key` is strictly inside
    /// one; returns whether it did.
    @discardableResult
    public mutating func splitAt(_ key: UInt64) -> Bool {
        let seg = storage.find(key).segment
        guard seg.ok, storage.key(seg.n, seg.i).canSplit(at: key) else {
            return false
        }
        makeUnique()
        _ = storage.splitUnchecked(seg, at: key)
        return true
    }

    /// Splits `segment` where needed so that it does not reach outside
    /// `range`; returns the part inside.
    @discardableResult
    public mutating func isolate(_ segment: Segment, to range: FileRange) -> Segment {
        makeUnique()
        return Segment(storage.isolate(segment.position, range))
    }

    /// Applies `body` to each segment of the contiguous run starting at
    /// `range.start`, isolated to `range`, until `range` is covered or a
    /// non-empty gap interrupts the run. Returns that gap, or nil if the run
    /// covered `range`; also returns the gap holding `range.start` if no
    /// segment does.
    ///
    /// `body` receives each segment's range and its value to change. It
    /// does not merge: call `mergeRange(_:)` after it if the values may
    /// now merge. An empty `range` changes nothing and returns nil.
    @discardableResult
    public mutating func applyContiguous(_ range: FileRange, _ body: (FileRange, inout Value) -> Void) -> Gap? {
        guard !range.isEmpty else { return nil }
        let (found, gap) = storage.find(range.start)
        guard found.ok else {
            return Gap(gap)
        }
        makeUnique()
        var seg = found
        while true {
            seg = storage.isolate(seg, range)
            body(storage.key(seg.n, seg.i), &storage.valuePointer(seg.n, seg.i).pointee)
            if storage.key(seg.n, seg.i).end >= range.end {
                return nil
            }
            let next = storage.nextGap(ofSegment: seg)
            if storage.gapRange(next).length != 0 {
                return Gap(next)
            }
            seg = storage.nextSegment(ofGap: next)
            if !seg.ok {
                return nil
            }
        }
    }
}
