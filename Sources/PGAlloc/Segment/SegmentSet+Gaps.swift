/// Gap tracking: every node keeps the length of the longest gap in its
/// subtree, so that a search for a gap of at least N bytes skips every
/// subtree whose longest gap is shorter, and costs O(log n).
extension SegmentSetStorage {
    @inline(__always) @usableFromInline
    func maxGap(_ n: Int) -> UInt64 { headers[n].maxGap }

    /// The longest of the `count + 1` gaps of leaf `n`.
    @usableFromInline
    func calculateMaxGapLeaf(_ n: Int) -> UInt64 {
        let c = count(n)
        var best = gapRange(SegmentPosition(n, 0)).length
        if c == 0 {
            return best
        }
        // The inner gaps need no climbing.
        var i = 1
        while i < c {
            let len = key(n, i).start &- key(n, i - 1).end
            if len > best {
                best = len
            }
            i += 1
        }
        let last = gapRange(SegmentPosition(n, c)).length
        return last > best ? last : best
    }

    /// The longest of the children's longest gaps, for internal node `n`.
    @usableFromInline
    func calculateMaxGapInternal(_ n: Int) -> UInt64 {
        let gaps = childGaps + n &* segmentMaxDegree
        var best = gaps[0]
        var i = 1
        let c = count(n)
        while i <= c {
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
    func updateMaxGapLeaf(_ n: Int) {
        precondition(!hasChildren(n), "SegmentSet.updateMaxGapLeaf: node \(n) is not a leaf")
        let newMax = calculateMaxGapLeaf(n)
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
        // its longest.
        var p = parent(n)
        while p >= 0 {
            if maxGap(p) > oldMax {
                break
            }
            let parentMax = calculateMaxGapInternal(p)
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

    /// The length of gap `i` of leaf `n`: inner gaps straight from the
    /// neighbouring keys, the outer two through the ancestors.
    @inline(__always) @usableFromInline
    func leafGapLength(_ n: Int, _ i: Int, count c: Int) -> UInt64 {
        if i > 0 && i < c {
            return key(n, i).start &- key(n, i - 1).end
        }
        return gapRange(SegmentPosition(n, i)).length
    }

    /// The first gap of at least `minSize` in the subtree of `n`.
    @usableFromInline
    func searchFirstLargeEnoughGap(under n: Int, minSize: UInt64) -> SegmentPosition {
        if maxGap(n) < minSize {
            return .terminal
        }
        let c = count(n)
        if hasChildren(n) {
            for i in 0...c where childGap(n, i) >= minSize {
                return searchFirstLargeEnoughGap(under: child(n, i), minSize: minSize)
            }
        } else {
            for i in 0...c where leafGapLength(n, i, count: c) >= minSize {
                return SegmentPosition(n, i)
            }
        }
        preconditionFailure("SegmentSet: node \(n) records a gap of \(maxGap(n)) that none of its gaps has")
    }

    /// The last gap of at least `minSize` in the subtree of `n`.
    @usableFromInline
    func searchLastLargeEnoughGap(under n: Int, minSize: UInt64) -> SegmentPosition {
        if maxGap(n) < minSize {
            return .terminal
        }
        let c = count(n)
        if hasChildren(n) {
            for i in stride(from: c, through: 0, by: -1) where childGap(n, i) >= minSize {
                return searchLastLargeEnoughGap(under: child(n, i), minSize: minSize)
            }
        } else {
            for i in stride(from: c, through: 0, by: -1) where leafGapLength(n, i, count: c) >= minSize {
                return SegmentPosition(n, i)
            }
        }
        preconditionFailure("SegmentSet: node \(n) records a gap of \(maxGap(n)) that none of its gaps has")
    }

    /// The first gap after `gap` (not `gap` itself) of at least `minSize`.
    @usableFromInline
    func nextLargeEnoughGap(after gap: SegmentPosition, minSize: UInt64) -> SegmentPosition {
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
                return .terminal
            }
            g.i += 1
            let c = count(g.n)
            if hasChildren(g.n) {
                while g.i <= c {
                    if childGap(g.n, g.i) >= minSize {
                        return searchFirstLargeEnoughGap(under: child(g.n, g.i), minSize: minSize)
                    }
                    g.i += 1
                }
            } else {
                while g.i <= c {
                    if leafGapLength(g.n, g.i, count: c) >= minSize {
                        return g
                    }
                    g.i += 1
                }
            }
            g = SegmentPosition(parent(g.n), parentIndex(g.n))
            if g.ok && g.i == count(g.n) {
                g = SegmentPosition(parent(g.n), parentIndex(g.n))
            }
        }
    }

    /// The last gap before `gap` (not `gap` itself) of at least `minSize`.
    @usableFromInline
    func previousLargeEnoughGap(before gap: SegmentPosition, minSize: UInt64) -> SegmentPosition {
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
                return .terminal
            }
            g.i -= 1
            if hasChildren(g.n) {
                while g.i >= 0 {
                    if childGap(g.n, g.i) >= minSize {
                        return searchLastLargeEnoughGap(under: child(g.n, g.i), minSize: minSize)
                    }
                    g.i -= 1
                }
            } else {
                let c = count(g.n)
                while g.i >= 0 {
                    if leafGapLength(g.n, g.i, count: c) >= minSize {
                        return g
                    }
                    g.i -= 1
                }
            }
            g = SegmentPosition(parent(g.n), parentIndex(g.n))
            if g.ok && g.i == 0 {
                g = SegmentPosition(parent(g.n), parentIndex(g.n))
            }
        }
    }
}
