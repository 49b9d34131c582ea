/// A gap a search found, with its range, which the search computes on the
/// way (the outer gaps of a leaf take a climb through the ancestors) and
/// callers need next; `position` is terminal if none was found.
@usableFromInline
struct FoundGap: Sendable {
    @usableFromInline var position: SegmentPosition
    @usableFromInline var range: FileRange

    @inline(__always) @usableFromInline
    init(position: SegmentPosition, range: FileRange) {
        self.position = position
        self.range = range
    }

    @usableFromInline static let none = FoundGap(position: .terminal, range: FileRange(start: 0, end: 0))
}

/// Gap tracking: every node keeps the length of the longest gap in its
/// subtree, so that a search for a gap of at least N bytes skips every
/// subtree whose longest gap is shorter, and costs O(log n).
extension SegmentSetStorage {
    @inline(__always) @usableFromInline
    func maxGap(_ n: Int) -> UInt64 { headers[n].maxGap }

    /// The longest of the `count + 1` gaps of leaf `n`. If the caller knows
    /// the length of gap `known` (it just changed it), that length is used
    /// rather than climbing to an ancestor for it.
    @usableFromInline
    func calculateMaxGapLeaf(_ n: Int, known: (index: Int, length: UInt64)? = nil) -> UInt64 {
        func outerGapLength(_ i: Int) -> UInt64 {
            if let known, known.index == i {
                return known.length
            }
            return gapRange(SegmentPosition(n, i)).length
        }
        let c = count(n)
        var best = outerGapLength(0)
        if c == 0 {
            return best
        }
        // The inner gaps need no climbing: four at a time while four
        // remain, then one at a time. Stopping at the largest possible
        // length, as calculateMaxGapInternal does, keeps the loops scalar.
        let k = keys + n &* segmentMaxKeys
        var i = 1
        while i &+ 3 < c && best < .max {
            let g0 = k[i].start &- k[i &- 1].end
            let g1 = k[i &+ 1].start &- k[i].end
            let g2 = k[i &+ 2].start &- k[i &+ 1].end
            let g3 = k[i &+ 3].start &- k[i &+ 2].end
            best = Swift.max(best, Swift.max(Swift.max(g0, g1), Swift.max(g2, g3)))
            i &+= 4
        }
        while i < c && best < .max {
            let len = k[i].start &- k[i &- 1].end
            if len > best {
                best = len
            }
            i &+= 1
        }
        let last = outerGapLength(c)
        return last > best ? last : best
    }

    /// The longest of the children's longest gaps, for internal node `n`,
    /// or `bound` as soon as a child has that much: the caller knows no
    /// child has more.
    ///
    /// The early stop also keeps the loop scalar: vectorized for a baseline
    /// x86-64 (SSE2, no 64-bit unsigned comparison), a maximum costs a
    /// dozen instructions per pair of elements, more than the scalar loop
    /// over a node's few.
    @usableFromInline
    func calculateMaxGapInternal(_ n: Int, atMost bound: UInt64 = .max) -> UInt64 {
        let gaps = childGaps + n &* segmentMaxDegree
        var best = gaps[0]
        var i = 1
        let c = count(n)
        // Four children a step while four remain, then one at a time.
        while i &+ 3 <= c && best < bound {
            best = Swift.max(best, Swift.max(Swift.max(gaps[i], gaps[i &+ 1]), Swift.max(gaps[i &+ 2], gaps[i &+ 3])))
            i &+= 4
        }
        while i <= c && best < bound {
            if gaps[i] > best {
                best = gaps[i]
            }
            i += 1
        }
        return best
    }

    /// Recomputes the longest gap of leaf `n` and carries any change up to
    /// the ancestors, stopping as soon as an ancestor is unaffected.
    @usableFromInline
    func updateMaxGapLeaf(_ n: Int, known: (index: Int, length: UInt64)? = nil) {
        precondition(!hasChildren(n), "SegmentSet.updateMaxGapLeaf: node \(n) is not a leaf")
        let newMax = calculateMaxGapLeaf(n, known: known)
        let oldMax = maxGap(n)
        if newMax == oldMax {
            return
        }
        setMaxGap(n, newMax)
        if newMax > oldMax {
            var p = parent(n)
            while p >= 0 {
                if maxGap(p) >= newMax {
                    break
                }
                setMaxGap(p, newMax)
                p = parent(p)
            }
            return
        }
        // The leaf's gap shrank: an ancestor changes only if that gap was
        // its longest, and then no child of it has more than that.
        var p = parent(n)
        while p >= 0 {
            if maxGap(p) > oldMax {
                break
            }
            let parentMax = calculateMaxGapInternal(p, atMost: oldMax)
            if maxGap(p) == parentMax {
                break
            }
            setMaxGap(p, parentMax)
            p = parent(p)
        }
    }

    /// Records that leaf `n` now has a gap of `length`, where no gap of it
    /// shrank (a removal only joins gaps): its longest gap, and its
    /// ancestors', can only grow, so there is nothing to recompute.
    @inline(__always) @usableFromInline
    func growMaxGapLeaf(_ n: Int, to length: UInt64) {
        if length <= maxGap(n) {
            return
        }
        setMaxGap(n, length)
        var p = parent(n)
        while p >= 0 && maxGap(p) < length {
            setMaxGap(p, length)
            p = parent(p)
        }
    }

    /// Recomputes the longest gap of `n` from its own contents, without
    /// touching ancestors.
    @usableFromInline
    func updateMaxGapLocal(_ n: Int) {
        setMaxGap(n, hasChildren(n) ? calculateMaxGapInternal(n) : calculateMaxGapLeaf(n))
    }

    /// The first child position of internal node `n` in `from...through`
    /// whose subtree has a gap of at least `minSize`, or `through + 1`.
    ///
    /// Four children at a time while four remain, one branch saying that
    /// none of them qualifies: a search skips most of a node's up to 20.
    @inline(__always) @usableFromInline
    func firstChild(of n: Int, from: Int, through: Int, withGap minSize: UInt64) -> Int {
        let gaps = childGaps + n &* segmentMaxDegree
        var i = from
        while i &+ 3 <= through {
            if Swift.max(Swift.max(gaps[i], gaps[i &+ 1]), Swift.max(gaps[i &+ 2], gaps[i &+ 3])) >= minSize {
                break
            }
            i &+= 4
        }
        while i <= through && gaps[i] < minSize {
            i &+= 1
        }
        return i
    }

    /// The last child position of internal node `n` in `from...through`
    /// whose subtree has a gap of at least `minSize`, or `from - 1`; four
    /// at a time as `firstChild`.
    @inline(__always) @usableFromInline
    func lastChild(of n: Int, from: Int, through: Int, withGap minSize: UInt64) -> Int {
        let gaps = childGaps + n &* segmentMaxDegree
        var i = through
        while i &- 3 >= from {
            if Swift.max(Swift.max(gaps[i], gaps[i &- 1]), Swift.max(gaps[i &- 2], gaps[i &- 3])) >= minSize {
                break
            }
            i &-= 4
        }
        while i >= from && gaps[i] < minSize {
            i &-= 1
        }
        return i
    }

    /// The first gap of leaf `n` (which holds `c` segments) in
    /// `from...through` of at least `minSize`, with its range, or none.
    /// The inner gaps come straight from the keys; only the two outer ones
    /// take a climb through the ancestors.
    @usableFromInline
    func firstLeafGap(_ n: Int, from: Int, through: Int, count c: Int, minSize: UInt64) -> FoundGap {
        guard from <= through else {
            return .none
        }
        if from == 0 {
            let r = gapRange(SegmentPosition(n, 0))
            if r.length >= minSize {
                return FoundGap(position: SegmentPosition(n, 0), range: r)
            }
        }
        let k = keys + n &* segmentMaxKeys
        var i = from > 1 ? from : 1
        let lastInner = through < c &- 1 ? through : c &- 1
        // Four inner gaps at a time while four remain, as firstChild.
        while i &+ 3 <= lastInner {
            let g0 = k[i].start &- k[i &- 1].end
            let g1 = k[i &+ 1].start &- k[i].end
            let g2 = k[i &+ 2].start &- k[i &+ 1].end
            let g3 = k[i &+ 3].start &- k[i &+ 2].end
            if Swift.max(Swift.max(g0, g1), Swift.max(g2, g3)) >= minSize {
                break
            }
            i &+= 4
        }
        while i <= lastInner {
            let start = k[i &- 1].end
            let end = k[i].start
            if end &- start >= minSize {
                return FoundGap(position: SegmentPosition(n, i), range: FileRange(start: start, end: end))
            }
            i &+= 1
        }
        if through == c && c > 0 {
            let r = gapRange(SegmentPosition(n, c))
            if r.length >= minSize {
                return FoundGap(position: SegmentPosition(n, c), range: r)
            }
        }
        return .none
    }

    /// The last gap of leaf `n` (which holds `c` segments) in
    /// `from...through` of at least `minSize`, with its range, or none.
    @usableFromInline
    func lastLeafGap(_ n: Int, from: Int, through: Int, count c: Int, minSize: UInt64) -> FoundGap {
        guard from <= through else {
            return .none
        }
        if through == c && c > 0 {
            let r = gapRange(SegmentPosition(n, c))
            if r.length >= minSize {
                return FoundGap(position: SegmentPosition(n, c), range: r)
            }
        }
        let k = keys + n &* segmentMaxKeys
        var i = through < c &- 1 ? through : c &- 1
        let firstInner = from > 1 ? from : 1
        while i &- 3 >= firstInner {
            let g0 = k[i].start &- k[i &- 1].end
            let g1 = k[i &- 1].start &- k[i &- 2].end
            let g2 = k[i &- 2].start &- k[i &- 3].end
            let g3 = k[i &- 3].start &- k[i &- 4].end
            if Swift.max(Swift.max(g0, g1), Swift.max(g2, g3)) >= minSize {
                break
            }
            i &-= 4
        }
        while i >= firstInner {
            let start = k[i &- 1].end
            let end = k[i].start
            if end &- start >= minSize {
                return FoundGap(position: SegmentPosition(n, i), range: FileRange(start: start, end: end))
            }
            i &-= 1
        }
        if from == 0 {
            let r = gapRange(SegmentPosition(n, 0))
            if r.length >= minSize {
                return FoundGap(position: SegmentPosition(n, 0), range: r)
            }
        }
        return .none
    }

    /// The first gap of at least `minSize` in the subtree of `n`, with its
    /// range (which the search had to compute), or a terminal position.
    @usableFromInline
    func searchFirstLargeEnoughGap(under n: Int, minSize: UInt64) -> FoundGap {
        if maxGap(n) < minSize {
            return .none
        }
        let c = count(n)
        if hasChildren(n) {
            let i = firstChild(of: n, from: 0, through: c, withGap: minSize)
            if i <= c {
                return searchFirstLargeEnoughGap(under: child(n, i), minSize: minSize)
            }
        } else {
            let found = firstLeafGap(n, from: 0, through: c, count: c, minSize: minSize)
            if found.position.ok {
                return found
            }
        }
        preconditionFailure("SegmentSet: node \(n) records a gap of \(maxGap(n)) that none of its gaps has")
    }

    /// The last gap of at least `minSize` in the subtree of `n`, with its
    /// range, or a terminal position.
    @usableFromInline
    func searchLastLargeEnoughGap(under n: Int, minSize: UInt64) -> FoundGap {
        if maxGap(n) < minSize {
            return .none
        }
        let c = count(n)
        if hasChildren(n) {
            let i = lastChild(of: n, from: 0, through: c, withGap: minSize)
            if i >= 0 {
                return searchLastLargeEnoughGap(under: child(n, i), minSize: minSize)
            }
        } else {
            let found = lastLeafGap(n, from: 0, through: c, count: c, minSize: minSize)
            if found.position.ok {
                return found
            }
        }
        preconditionFailure("SegmentSet: node \(n) records a gap of \(maxGap(n)) that none of its gaps has")
    }

    /// The first gap after `gap` (not `gap` itself) of at least `minSize`,
    /// with its range, or a terminal position.
    @usableFromInline
    func nextLargeEnoughGap(after gap: SegmentPosition, minSize: UInt64) -> FoundGap {
        var g = gap
        if g.ok && hasChildren(g.n) && g.i == count(g.n) {
            g = SegmentPosition(nextSegment(ofGap: g).n, 0)
        }
        while true {
            // Climb while the node cannot hold the answer, or is a leaf whose
            // gaps after g are exhausted.
            while g.ok && (maxGap(g.n) < minSize || (!hasChildren(g.n) && g.i == count(g.n))) {
                g = SegmentPosition(parent(g.n), parentIndex(g.n))
            }
            if !g.ok {
                return .none
            }
            let c = count(g.n)
            if hasChildren(g.n) {
                let i = firstChild(of: g.n, from: g.i + 1, through: c, withGap: minSize)
                if i <= c {
                    return searchFirstLargeEnoughGap(under: child(g.n, i), minSize: minSize)
                }
            } else {
                let found = firstLeafGap(g.n, from: g.i + 1, through: c, count: c, minSize: minSize)
                if found.position.ok {
                    return found
                }
            }
            g = SegmentPosition(parent(g.n), parentIndex(g.n))
            if g.ok && g.i == count(g.n) {
                g = SegmentPosition(parent(g.n), parentIndex(g.n))
            }
        }
    }

    /// The last gap before `gap` (not `gap` itself) of at least `minSize`,
    /// with its range, or a terminal position.
    @usableFromInline
    func previousLargeEnoughGap(before gap: SegmentPosition, minSize: UInt64) -> FoundGap {
        var g = gap
        if g.ok && hasChildren(g.n) && g.i == 0 {
            let s = previousSegment(ofGap: g)
            g = SegmentPosition(s.n, count(s.n))
        }
        while true {
            while g.ok && (maxGap(g.n) < minSize || (!hasChildren(g.n) && g.i == 0)) {
                g = SegmentPosition(parent(g.n), parentIndex(g.n))
            }
            if !g.ok {
                return .none
            }
            if hasChildren(g.n) {
                let i = lastChild(of: g.n, from: 0, through: g.i - 1, withGap: minSize)
                if i >= 0 {
                    return searchLastLargeEnoughGap(under: child(g.n, i), minSize: minSize)
                }
            } else {
                let found = lastLeafGap(g.n, from: 0, through: g.i - 1, count: count(g.n), minSize: minSize)
                if found.position.ok {
                    return found
                }
            }
            g = SegmentPosition(parent(g.n), parentIndex(g.n))
            if g.ok && g.i == 0 {
                g = SegmentPosition(parent(g.n), parentIndex(g.n))
            }
        }
    }
}
