// The naive model's mutations, each done the obvious way, splitting and
// merging where the set does so that both end with the same segments.

@testable import PGAlloc

extension SegmentModel {
    /// Inserts `r` into gap `j` (which must hold it), merging with the
    /// previous segment first and then the next, as the set does; returns
    /// the index of the segment holding `r`.
    @discardableResult
    mutating func insert(_ r: FileRange, _ value: Value, intoGap j: Int, merging: Bool) -> Int {
        if merging {
            if j > 0, segments[j - 1].range.end == r.start,
                let merged = F.merge(segments[j - 1].range, segments[j - 1].value, r, value)
            {
                segments[j - 1].range.end = r.end
                segments[j - 1].value = merged
                if j < segments.count, segments[j].range.start == r.end {
                    _ = mergePair(j - 1)
                }
                return j - 1
            }
            if j < segments.count, segments[j].range.start == r.end,
                let merged = F.merge(r, value, segments[j].range, segments[j].value)
            {
                segments[j].range.start = r.start
                segments[j].value = merged
                return j
            }
        }
        segments.insert(SegmentModelEntry(range: r, value: value), at: j)
        return j
    }

    /// Adds `r` if no segment overlaps it.
    mutating func add(_ r: FileRange, _ value: Value, merging: Bool) -> Bool {
        guard let j = fitsGap(r) else {
            return false
        }
        insert(r, value, intoGap: j, merging: merging)
        return true
    }

    /// Removes segment `i`; returns the gap left, which keeps index `i`.
    mutating func remove(at i: Int) -> Int {
        segments.remove(at: i)
        return i
    }

    /// Splits segment `i` at `key`, strictly inside it.
    mutating func split(_ i: Int, at key: UInt64) -> (Int, Int) {
        let s = segments[i]
        precondition(s.range.start < key && key < s.range.end, "model: bad split")
        let (v1, v2) = F.split(s.range, s.value, at: key)
        segments[i] = SegmentModelEntry(range: FileRange(start: s.range.start, end: key), value: v1)
        segments.insert(SegmentModelEntry(range: FileRange(start: key, end: s.range.end), value: v2), at: i + 1)
        return (i, i + 1)
    }

    /// Splits segment `i` at `r`'s bounds where they fall strictly inside it;
    /// returns the part inside `r`.
    mutating func isolate(_ i: Int, _ r: FileRange) -> Int {
        var i = i
        if segments[i].range.start < r.start && r.start < segments[i].range.end {
            i = split(i, at: r.start).1
        }
        if segments[i].range.start < r.end && r.end < segments[i].range.end {
            i = split(i, at: r.end).0
        }
        return i
    }

    /// Merges segments `i` and `i + 1` if they touch and merge.
    mutating func mergePair(_ i: Int) -> Int? {
        let a = segments[i]
        let b = segments[i + 1]
        guard a.range.end == b.range.start, let merged = F.merge(a.range, a.value, b.range, b.value) else {
            return nil
        }
        segments[i] = SegmentModelEntry(range: FileRange(start: a.range.start, end: b.range.end), value: merged)
        segments.remove(at: i + 1)
        return i
    }

    /// Merges from segment `i` rightwards, each result with its successor,
    /// while the successor starts before `limit`.
    private mutating func mergeRun(from i: Int, until limit: UInt64) {
        var i = i
        while i + 1 < segments.count && segments[i + 1].range.start < limit {
            if mergePair(i) == nil {
                i += 1
            }
        }
    }

    /// Merges segment `i` with its predecessor, then whatever holds it
    /// with its successor; returns the index of the segment holding it.
    mutating func mergeWithNeighbours(_ i: Int) -> Int {
        var i = i
        if i > 0, let merged = mergePair(i - 1) {
            i = merged
        }
        if i + 1 < segments.count {
            _ = mergePair(i)
        }
        return i
    }

    mutating func mergeAll() {
        mergeRun(from: 0, until: .max)
    }

    mutating func mergeRange(_ r: FileRange) {
        mergeRun(from: lowerBound(r.start), until: r.end)
    }

    mutating func mergeAdjacent(_ r: FileRange) {
        // An empty range has no first or last key: nothing to merge.
        guard !r.isEmpty else { return }
        if let first = segmentIndex(containing: r.start), first > 0 {
            _ = mergePair(first - 1)
        }
        if let last = segmentIndex(containing: r.end &- 1), last + 1 < segments.count {
            _ = mergePair(last)
        }
    }

    /// Removes every key of `r` from every segment; returns the gap that
    /// now holds `r.start`.
    mutating func removeRange(_ r: FileRange) -> Int {
        var kept: [SegmentModelEntry<Value>] = []
        for s in segments {
            guard s.range.start < r.end && r.start < s.range.end else {
                kept.append(s)
                continue
            }
            // Split the way the set does: at r.start, then the right part
            // at r.end.
            var rest = s
            if rest.range.start < r.start {
                let (v1, v2) = F.split(rest.range, rest.value, at: r.start)
                kept.append(SegmentModelEntry(range: FileRange(start: rest.range.start, end: r.start), value: v1))
                rest = SegmentModelEntry(range: FileRange(start: r.start, end: rest.range.end), value: v2)
            }
            if r.end < rest.range.end {
                let (_, v2) = F.split(rest.range, rest.value, at: r.end)
                kept.append(SegmentModelEntry(range: FileRange(start: r.end, end: rest.range.end), value: v2))
            }
        }
        segments = kept
        return gapIndex(containing: r.start)!
    }

    /// The contiguous run from `r.start`, each segment isolated to `r` and
    /// passed to `body`; returns the gap that stopped the run (or the gap
    /// holding `r.start`), nil if the run covered `r` (an empty `r` is
    /// covered by nothing and changes nothing).
    mutating func applyContiguous(_ r: FileRange, _ body: (FileRange, inout Value) -> Void) -> Int? {
        guard !r.isEmpty else { return nil }
        guard var i = segmentIndex(containing: r.start) else {
            return gapIndex(containing: r.start)
        }
        while true {
            i = isolate(i, r)
            body(segments[i].range, &segments[i].value)
            if segments[i].range.end >= r.end {
                return nil
            }
            if gapLength(i + 1) != 0 {
                return i + 1
            }
            if i + 1 == segments.count {
                return nil
            }
            i += 1
        }
    }
}
