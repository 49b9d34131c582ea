// Adding and removing segments.

extension SegmentSet {
    /// Adds a segment, merging it with touching neighbours where the set's
    /// functions allow. Returns false, changing nothing, if `range` overlaps
    /// an existing segment.
    ///
    /// - Precondition: `range` is non-empty and within the key space.
    @discardableResult
    public mutating func add(_ range: FileRange, _ value: Value) -> Bool {
        checkNewSegment(range, "add")
        guard let gap = findGap(containing: range.start), range.end <= end(of: gap) else {
            return false
        }
        makeUnique()
        _ = storage.insert(gap.position, range, value)
        return true
    }

    /// Adds a segment without merging it. Returns false, changing nothing,
    /// if `range` overlaps an existing segment.
    ///
    /// - Precondition: `range` is non-empty and within the key space.
    @discardableResult
    public mutating func addWithoutMerging(_ range: FileRange, _ value: Value) -> Bool {
        checkNewSegment(range, "addWithoutMerging")
        guard let gap = findGap(containing: range.start), range.end <= end(of: gap) else {
            return false
        }
        makeUnique()
        _ = storage.insertWithoutMergingUnchecked(gap.position, range, value)
        return true
    }

    /// Inserts a segment into `gap`, merging it with touching neighbours
    /// where the set's functions allow; returns the segment that holds it.
    ///
    /// - Precondition: `range` is non-empty and lies within `gap`.
    @discardableResult
    public mutating func insert(_ range: FileRange, _ value: Value, into gap: Gap) -> Segment {
        checkNewSegment(range, "insert")
        checkFits(range, gap, "insert")
        makeUnique()
        return Segment(storage.insert(gap.position, range, value))
    }

    /// As `insert(_:_:into:)`, for a caller that has the gap's range at hand
    /// (from the search that found the gap): looks up only the neighbours
    /// that `range` touches, and checks that it fits only in debug builds.
    ///
    /// - Precondition: `gapRange` is the range of `gap`; `range` is
    ///   non-empty and lies within it.
    @discardableResult
    mutating func insert(_ range: FileRange, _ value: Value, into gap: Gap, gapRange: FileRange) -> Segment {
        assert(!range.isEmpty && gapRange.isSuperset(of: range) && self.range(of: gap) == gapRange,
               "SegmentSet.insert(\(range)): gap \(gapRange) is not the gap's range or does not hold it")
        makeUnique()
        return Segment(storage.insert(gap.position, bounds: gapRange, range, value))
    }

    /// Inserts a segment into `gap` without merging; returns it.
    ///
    /// - Precondition: `range` is non-empty and lies within `gap`.
    @discardableResult
    public mutating func insertWithoutMerging(_ range: FileRange, _ value: Value, into gap: Gap) -> Segment {
        checkNewSegment(range, "insertWithoutMerging")
        checkFits(range, gap, "insertWithoutMerging")
        return insertWithoutMergingUnchecked(range, value, into: gap)
    }

    /// Inserts a segment into `gap` without merging or checking; returns it.
    ///
    /// - Precondition: `range` is non-empty and lies within `gap`.
    @discardableResult
    public mutating func insertWithoutMergingUnchecked(_ range: FileRange, _ value: Value, into gap: Gap) -> Segment {
        makeUnique()
        return Segment(storage.insertWithoutMergingUnchecked(gap.position, range, value))
    }

    /// Moves the boundary between two touching segments to `key`: the keys
    /// between the old boundary and `key` pass from one segment to the
    /// other, without an insertion or a removal. No gap changes, so neither
    /// does any node's longest gap.
    ///
    /// - Precondition: `second` starts where `first` ends; `key` lies
    ///   strictly inside the range they cover together.
    mutating func moveBoundary(between first: Segment, and second: Segment, to key: UInt64) {
        let a = range(of: first)
        let b = range(of: second)
        precondition(
            a.end == b.start && a.start < key && key < b.end,
            "SegmentSet.moveBoundary(\(a), \(b), to: 0x\(String(key, radix: 16))): not touching, or the key is outside them")
        makeUnique()
        storage.setKey(Int(first.node), Int(first.index), FileRange(start: a.start, end: key))
        storage.setKey(Int(second.node), Int(second.index), FileRange(start: key, end: b.end))
    }

    /// Removes a segment; returns the gap it leaves.
    @discardableResult
    public mutating func remove(_ segment: Segment) -> Gap {
        makeUnique()
        return Gap(storage.remove(segment.position))
    }

    /// Removes every segment.
    public mutating func removeAll() {
        if isKnownUniquelyReferenced(&storage) {
            storage.reset()
        } else {
            storage = SegmentSetStorage()
        }
    }

    /// Removes every part of every segment inside `range`, splitting the
    /// segments that straddle its ends; returns the gap left.
    ///
    /// - Precondition: `range` is non-empty.
    @discardableResult
    public mutating func removeRange(_ range: FileRange) -> Gap {
        precondition(!range.isEmpty, "SegmentSet.removeRange(\(range)): invalid range")
        makeUnique()
        var (seg, gap) = storage.find(range.start)
        if seg.ok {
            seg = storage.isolate(seg, range)
            gap = storage.remove(seg)
        }
        seg = storage.nextSegment(ofGap: gap)
        while seg.ok && storage.key(seg.n, seg.i).start < range.end {
            seg = storage.isolate(seg, range)
            gap = storage.remove(seg)
            seg = storage.nextSegment(ofGap: gap)
        }
        return Gap(gap)
    }

    private func checkNewSegment(_ range: FileRange, _ call: String) {
        precondition(!range.isEmpty, "SegmentSet.\(call)(\(range)): invalid segment range")
        precondition(
            range.start >= Functions.minKey && range.end <= Functions.maxKey,
            "SegmentSet.\(call)(\(range)): outside the key space [\(Functions.minKey), \(Functions.maxKey))")
    }

    private func checkFits(_ range: FileRange, _ gap: Gap, _ call: String) {
        let g = self.range(of: gap)
        precondition(g.isSuperset(of: range), "SegmentSet.\(call)(\(range)): does not fit gap \(g)\n\(self)")
    }
}
