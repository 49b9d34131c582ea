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
        // The inner gaps need no climbing. Stopping at the largest possible
        // length, as calculateMaxGapInternal does, keeps the loop scalar.
        let k = keys + n &* segmentMaxKeys
        var previousEnd = k[0].end
        var i = 1
        while i < c && best < .max {
            let r = k[i]
            let len = r.start &- previousEnd
            if len > best {
                best = len
            }
            previousEnd = r.end
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
    @inline(__always) @usableFromInline
    func firstChild(of n: Int, from: Int, through: Int, withGap minSize: UInt64) -> Int {
        let gaps = childGaps + n &* segmentMaxDegree
        var i = from
        while i <= through && gaps[i] < minSize {
            i &+= 1
        }
        return i
    }

    /// The last child position of internal node `n` in `from...through`
    /// whose subtree has a gap of at least `minSize`, or `from - 1`.
    @inline(__always) @usableFromInline
    func lastChild(of n: Int, from: Int, through: Int, withGap minSize: UInt64) -> Int {
        let gaps = childGaps + n &* segmentMaxDegree
        var i = through
        while i >= from && gaps[i] < minSize {
            i &-= 1
        }
        return i
    }

    /// The range of gap `i` of leaf `n` (which holds `c` segments): inner
    /// gaps straight from the keys `k` of the leaf, the outer two through
    /// the ancestors.
    @inline(__always) @usableFromInline
    func leafGapRange(_ n: Int, _ i: Int, count c: Int, keys k: UnsafeMutablePointer<FileRange>) -> FileRange {
        if i > 0 && i < c {
            return FileRange(start: k[i &- 1].end, end: k[i].start)
        }
        return gapRange(SegmentPosition(n, i))
    }

    /// The first gap of leaf `n` (which holds `c` segments) in
    /// `from...through` of at least `minSize`, with its range, or none.
    @usableFromInline
    func firstLeafGap(_ n: Int, from: Int, through: Int, count c: Int, minSize: UInt64) -> FoundGap {
        let k = keys + n &* segmentMaxKeys
        var i = from
        while i <= through {
            let r = leafGapRange(n, i, count: c, keys: k)
            if r.length >= minSize {
                return FoundGap(position: SegmentPosition(n, i), range: r)
            }
            i &+= 1
        }
        return .none
    }

    /// The last gap of leaf `n` (which holds `c` segments) in
    /// `from...through` of at least `minSize`, with its range, or none.
    @usableFromInline
    func lastLeafGap(_ n: Int, from: Int, through: Int, count c: Int, minSize: UInt64) -> FoundGap {
        let k = keys + n &* segmentMaxKeys
        var i = through
        while i >= from {
            let r = leafGapRange(n, i, count: c, keys: k)
            if r.length >= minSize {
                return FoundGap(position: SegmentPosition(n, i), range: r)
            }
            i &-= 1
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
