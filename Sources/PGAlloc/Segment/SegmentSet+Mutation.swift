/// Insertion, removal, merging and splitting, on node positions. The public
/// `SegmentSet` methods check their arguments and call these.
extension SegmentSetStorage {
    /// Inserts `range` into `gap` without merging; returns the new segment.
    /// `bounds`, if given, is the gap's range, which saves looking it up.
    ///
    /// - Precondition: `range` is non-empty and lies within `gap`.
    @usableFromInline
    func insertWithoutMergingUnchecked(
        _ gap: SegmentPosition, _ range: FileRange, _ value: Value, bounds: FileRange? = nil
    ) -> SegmentPosition {
        let g = rebalanceBeforeInsert(gap.n, gap)
        let n = g.n
        let c = count(n)
        // Moving the gap to another node (above) does not change its range.
        let splitsMaxGap = Functions.tracksGaps && (c == 0 || (bounds ?? gapRange(g)).length == maxGap(n))
        moveSegments(from: n, g.i, to: n, g.i + 1, count: c - g.i)
        setKey(n, g.i, range)
        setValue(n, g.i, value)
        headers[n].count = Int32(c + 1)
        if splitsMaxGap {
            updateMaxGapLeaf(n)
        }
        return g
    }

    /// Inserts `range` into `gap`, merging with the neighbours where the
    /// set's functions allow; returns the segment now holding `range`.
    ///
    /// - Precondition: `range` is non-empty and lies within `gap`.
    @usableFromInline
    func insert(_ gap: SegmentPosition, _ range: FileRange, _ value: Value) -> SegmentPosition {
        let prev = previousSegment(ofGap: gap)
        let next = nextSegment(ofGap: gap)
        let bounds = FileRange(
            start: prev.ok ? key(prev.n, prev.i).end : Functions.minKey,
            end: next.ok ? key(next.n, next.i).start : Functions.maxKey)
        return insert(gap, bounds, prev, next, range, value)
    }

    /// As `insert(_:_:_:)`, for a caller that knows the range of `gap`
    /// (`bounds`): the neighbours are looked up only where `range` touches
    /// them, since they merge with it only there.
    ///
    /// - Precondition: `bounds` is the range of `gap`; `range` is non-empty
    ///   and lies within it.
    @usableFromInline
    func insert(_ gap: SegmentPosition, bounds: FileRange, _ range: FileRange, _ value: Value) -> SegmentPosition {
        let prev = range.start == bounds.start ? previousSegment(ofGap: gap) : .terminal
        let next = range.end == bounds.end ? nextSegment(ofGap: gap) : .terminal
        return insert(gap, bounds, prev, next, range, value)
    }

    /// Inserts `range` into `gap`, whose range is `bounds`, merging with
    /// `prev` and `next` (the segments around the gap, or terminal ones not
    /// to merge with) where they touch and their values merge.
    @inline(__always) @usableFromInline
    func insert(
        _ gap: SegmentPosition, _ bounds: FileRange, _ prev: SegmentPosition, _ next: SegmentPosition,
        _ range: FileRange, _ value: Value
    ) -> SegmentPosition {
        let wasMaxGap = Functions.tracksGaps && bounds.length == maxGap(gap.n)
        if prev.ok && bounds.start == range.start {
            let prevRange = key(prev.n, prev.i)
            if let merged = Functions.merge(prevRange, self.value(prev.n, prev.i), range, value) {
                setKey(prev.n, prev.i, FileRange(start: prevRange.start, end: range.end))
                setValue(prev.n, prev.i, merged)
                if next.ok && bounds.end == range.end {
                    let nextRange = key(next.n, next.i)
                    if let all = Functions.merge(FileRange(start: prevRange.start, end: range.end), merged, nextRange, self.value(next.n, next.i)) {
                        if wasMaxGap {
                            updateMaxGapLeaf(gap.n, known: (gap.i, 0))
                        }
                        setKey(prev.n, prev.i, FileRange(start: prevRange.start, end: nextRange.end))
                        setValue(prev.n, prev.i, all)
                        return previousSegment(ofGap: remove(next))
                    }
                }
                if wasMaxGap {
                    updateMaxGapLeaf(gap.n, known: (gap.i, bounds.end &- range.end))
                }
                return prev
            }
        }
        if next.ok && bounds.end == range.end {
            let nextRange = key(next.n, next.i)
            if let merged = Functions.merge(range, value, nextRange, self.value(next.n, next.i)) {
                setKey(next.n, next.i, FileRange(start: range.start, end: nextRange.end))
                setValue(next.n, next.i, merged)
                if wasMaxGap {
                    updateMaxGapLeaf(gap.n, known: (gap.i, range.start &- bounds.start))
                }
                return next
            }
        }
        return insertWithoutMergingUnchecked(gap, range, value, bounds: bounds)
    }

    /// Removes a segment; returns the gap it leaves.
    @usableFromInline
    func remove(_ seg: SegmentPosition) -> SegmentPosition {
        if hasChildren(seg.n) {
            // Replace the segment with its predecessor, which is in a leaf,
            // and remove the predecessor from there instead.
            let victim = previousSegment(ofSegment: seg)
            setKey(seg.n, seg.i, key(victim.n, victim.i))
            setValue(seg.n, seg.i, value(victim.n, victim.i))
            if Functions.tracksGaps {
                // The gap after seg now starts earlier: it only grows.
                let after = nextGap(ofSegment: seg)
                growMaxGapLeaf(after.n, to: gapRange(after).length)
            }
            // The victim's leaf loses its last gap to the leaf after seg:
            // its longest gap may shrink.
            return nextGap(ofGap: removeFromLeaf(victim, gapsOnlyJoin: false))
        }
        return removeFromLeaf(seg, gapsOnlyJoin: true)
    }

    /// Removes a segment of a leaf; returns the gap it leaves. When
    /// `gapsOnlyJoin`, the removal only joins the two gaps around the
    /// segment, so the leaf's longest gap can only grow.
    @inline(__always) @usableFromInline
    func removeFromLeaf(_ seg: SegmentPosition, gapsOnlyJoin: Bool) -> SegmentPosition {
        let n = seg.n
        let c = count(n)
        moveSegments(from: n, seg.i + 1, to: n, seg.i, count: c - seg.i - 1)
        headers[n].count = Int32(c - 1)
        if Functions.tracksGaps {
            if gapsOnlyJoin {
                growMaxGapLeaf(n, to: gapRange(seg).length)
            } else {
                updateMaxGapLeaf(n)
            }
        }
        return rebalanceAfterRemove(n, seg)
    }

    /// Joins `first` with its successor `second` if they touch and their
    /// values merge; returns the joined segment, or terminal.
    @usableFromInline
    func mergeUnchecked(_ first: SegmentPosition, _ second: SegmentPosition) -> SegmentPosition {
        let r1 = key(first.n, first.i)
        let r2 = key(second.n, second.i)
        guard r1.end == r2.start,
            let merged = Functions.merge(r1, value(first.n, first.i), r2, value(second.n, second.i))
        else {
            return .terminal
        }
        setKey(first.n, first.i, FileRange(start: r1.start, end: r2.end))
        setValue(first.n, first.i, merged)
        return previousSegment(ofGap: remove(second))
    }

    /// Splits a segment at `key`; returns the two halves.
    ///
    /// - Precondition: `key` lies strictly inside the segment.
    @usableFromInline
    func splitUnchecked(_ seg: SegmentPosition, at split: UInt64) -> (SegmentPosition, SegmentPosition) {
        let r = key(seg.n, seg.i)
        let (v1, v2) = Functions.split(r, value(seg.n, seg.i), at: split)
        setKey(seg.n, seg.i, FileRange(start: r.start, end: split))
        setValue(seg.n, seg.i, v1)
        let second = insertWithoutMergingUnchecked(nextGap(ofSegment: seg), FileRange(start: split, end: r.end), v2)
        return (previousSegment(ofSegment: second), second)
    }

    /// Splits a segment where needed so that it does not reach outside `r`;
    /// returns the part inside.
    @usableFromInline
    func isolate(_ seg: SegmentPosition, _ r: FileRange) -> SegmentPosition {
        var seg = seg
        if key(seg.n, seg.i).canSplit(at: r.start) {
            seg = splitUnchecked(seg, at: r.start).1
        }
        if key(seg.n, seg.i).canSplit(at: r.end) {
            seg = splitUnchecked(seg, at: r.end).0
        }
        return seg
    }

    /// The first segment at or after `key`.
    @usableFromInline
    func lowerBoundSegment(_ key: UInt64) -> SegmentPosition {
        let (seg, gap) = find(key)
        return seg.ok ? seg : nextSegment(ofGap: gap)
    }
}
