/// A place in the tree: segment `i` of node `n`, or gap `i` of node `n`
/// (the gap before segment `i`). `n == -1` is the terminal position.
@usableFromInline
struct SegmentPosition: Hashable, Sendable {
    @usableFromInline var n: Int
    @usableFromInline var i: Int

    @inline(__always) @usableFromInline
    init(_ n: Int, _ i: Int) {
        self.n = n
        self.i = i
    }

    @usableFromInline static let terminal = SegmentPosition(-1, 0)

    @inline(__always) @usableFromInline
    var ok: Bool { n >= 0 }
}

extension SegmentSetStorage {
    /// The first segment in the subtree of `n`, which must be non-empty.
    @inline(__always) @usableFromInline
    func firstSegment(under n: Int) -> SegmentPosition {
        var n = n
        while hasChildren(n) {
            n = child(n, 0)
        }
        return SegmentPosition(n, 0)
    }

    /// The last segment in the subtree of `n`, which must be non-empty.
    @inline(__always) @usableFromInline
    func lastSegment(under n: Int) -> SegmentPosition {
        var n = n
        while hasChildren(n) {
            n = child(n, count(n))
        }
        return SegmentPosition(n, count(n) - 1)
    }

    /// The segment before child position `i` of `n`, climbing as needed.
    @inline(__always) @usableFromInline
    func segmentBefore(_ n: Int, _ i: Int) -> SegmentPosition {
        var n = n
        var i = i
        while i == 0 {
            let p = parent(n)
            if p < 0 {
                return .terminal
            }
            i = parentIndex(n)
            n = p
        }
        return SegmentPosition(n, i - 1)
    }

    /// The segment after child position `i` of `n`, climbing as needed.
    @inline(__always) @usableFromInline
    func segmentAfter(_ n: Int, _ i: Int) -> SegmentPosition {
        var n = n
        var i = i
        while i == count(n) {
            let p = parent(n)
            if p < 0 {
                return .terminal
            }
            i = parentIndex(n)
            n = p
        }
        return SegmentPosition(n, i)
    }

    @usableFromInline
    func previousSegment(ofSegment s: SegmentPosition) -> SegmentPosition {
        if hasChildren(s.n) {
            return lastSegment(under: child(s.n, s.i))
        }
        if s.i > 0 {
            return SegmentPosition(s.n, s.i - 1)
        }
        let p = parent(s.n)
        if p < 0 {
            return .terminal
        }
        return segmentBefore(p, parentIndex(s.n))
    }

    @usableFromInline
    func nextSegment(ofSegment s: SegmentPosition) -> SegmentPosition {
        if hasChildren(s.n) {
            return firstSegment(under: child(s.n, s.i + 1))
        }
        if s.i < count(s.n) - 1 {
            return SegmentPosition(s.n, s.i + 1)
        }
        let p = parent(s.n)
        if p < 0 {
            return .terminal
        }
        return segmentAfter(p, parentIndex(s.n))
    }

    /// The gap just before a segment; always a leaf position.
    @inline(__always) @usableFromInline
    func previousGap(ofSegment s: SegmentPosition) -> SegmentPosition {
        if hasChildren(s.n) {
            let last = lastSegment(under: child(s.n, s.i))
            return SegmentPosition(last.n, last.i + 1)
        }
        return s
    }

    /// The gap just after a segment; always a leaf position.
    @inline(__always) @usableFromInline
    func nextGap(ofSegment s: SegmentPosition) -> SegmentPosition {
        if hasChildren(s.n) {
            return firstSegment(under: child(s.n, s.i + 1))
        }
        return SegmentPosition(s.n, s.i + 1)
    }

    @inline(__always) @usableFromInline
    func previousSegment(ofGap g: SegmentPosition) -> SegmentPosition {
        segmentBefore(g.n, g.i)
    }

    @inline(__always) @usableFromInline
    func nextSegment(ofGap g: SegmentPosition) -> SegmentPosition {
        segmentAfter(g.n, g.i)
    }

    @usableFromInline
    func previousGap(ofGap g: SegmentPosition) -> SegmentPosition {
        let s = previousSegment(ofGap: g)
        return s.ok ? previousGap(ofSegment: s) : .terminal
    }

    @usableFromInline
    func nextGap(ofGap g: SegmentPosition) -> SegmentPosition {
        let s = nextSegment(ofGap: g)
        return s.ok ? nextGap(ofSegment: s) : .terminal
    }

    @inline(__always) @usableFromInline
    func gapStart(_ g: SegmentPosition) -> UInt64 {
        if g.i > 0 {
            return key(g.n, g.i - 1).end
        }
        let s = segmentBefore(g.n, g.i)
        return s.ok ? key(s.n, s.i).end : Functions.minKey
    }

    @inline(__always) @usableFromInline
    func gapEnd(_ g: SegmentPosition) -> UInt64 {
        if g.i < count(g.n) {
            return key(g.n, g.i).start
        }
        let s = segmentAfter(g.n, g.i)
        return s.ok ? key(s.n, s.i).start : Functions.maxKey
    }

    @inline(__always) @usableFromInline
    func gapRange(_ g: SegmentPosition) -> FileRange {
        FileRange(start: gapStart(g), end: gapEnd(g))
    }

    // MARK: Find

    /// The segment holding `key` (and a terminal gap), or the gap holding it
    /// (and a terminal segment).
    ///
    /// Each node is searched linearly, as the seed does: for a node's few
    /// keys that costs about what a binary search costs in instructions,
    /// and the branch predictor misses only where the scan stops, rather
    /// than on half of a binary search's coin-toss comparisons.
    @usableFromInline
    func find(_ key: UInt64) -> (segment: SegmentPosition, gap: SegmentPosition) {
        var n = 0
        while true {
            let c = count(n)
            let base = keys + n &* segmentMaxKeys
            var i = 0
            while i < c && base[i].end <= key {
                i &+= 1
            }
            if i < c && key >= base[i].start {
                return (SegmentPosition(n, i), .terminal)
            }
            if !hasChildren(n) {
                return (.terminal, SegmentPosition(n, i))
            }
            n = child(n, i)
        }
    }

    @usableFromInline
    func firstGap() -> SegmentPosition {
        var n = 0
        while hasChildren(n) {
            n = child(n, 0)
        }
        return SegmentPosition(n, 0)
    }

    @usableFromInline
    func lastGap() -> SegmentPosition {
        var n = 0
        while hasChildren(n) {
            n = child(n, count(n))
        }
        return SegmentPosition(n, count(n))
    }
}
