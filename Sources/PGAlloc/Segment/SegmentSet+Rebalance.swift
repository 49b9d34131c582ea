/// Keeping the B-tree balanced: splitting full nodes before an insertion and
/// joining deficient ones after a removal. Both keep gap iterators valid by
/// returning where the caller's position moved to.
extension SegmentSetStorage {
    /// Splits `n` and any full ancestors so that `n` has room for one more
    /// segment; returns where `gap` (a position in `n` or elsewhere) is now.
    @usableFromInline
    func rebalanceBeforeInsert(_ n: Int, _ gap: SegmentPosition) -> SegmentPosition {
        if count(n) < segmentMaxKeys {
            return gap
        }
        var gap = gap
        if parent(n) >= 0 {
            gap = rebalanceBeforeInsert(parent(n), gap)
        }
        let half = segmentMinDegree - 1
        let leaf = !hasChildren(n)
        if parent(n) < 0 {
            // The root stays node 0: its two halves move into new children
            // and it keeps only the middle segment.
            let left = allocateNode(parent: n, parentIndex: 0, hasChildren: !leaf)
            let right = allocateNode(parent: n, parentIndex: 1, hasChildren: !leaf)
            moveSegments(from: n, 0, to: left, 0, count: half)
            moveSegments(from: n, segmentMinDegree, to: right, 0, count: half)
            moveSegments(from: n, half, to: n, 0, count: 1)
            headers[left].count = Int32(half)
            headers[right].count = Int32(half)
            if !leaf {
                moveChildren(from: n, 0, to: left, 0, count: segmentMinDegree)
                moveChildren(from: n, segmentMinDegree, to: right, 0, count: segmentMinDegree)
                relinkChildren(left, from: 0, to: segmentMinDegree)
                relinkChildren(right, from: 0, to: segmentMinDegree)
            }
            headers[n].count = 1
            headers[n].hasChildren = true
            adopt(n, 0, left)
            adopt(n, 1, right)
            if Functions.tracksGaps {
                updateMaxGapLocal(left)
                updateMaxGapLocal(right)
            }
            if gap.n != n {
                return gap
            }
            if gap.i < segmentMinDegree {
                return SegmentPosition(left, gap.i)
            }
            return SegmentPosition(right, gap.i - segmentMinDegree)
        }

        // Move the middle segment up into the parent (which has room now)
        // and the upper half into a new right sibling.
        let p = parent(n)
        let pi = parentIndex(n)
        let pc = count(p)
        moveSegments(from: p, pi, to: p, pi + 1, count: pc - pi)
        moveSegments(from: n, half, to: p, pi, count: 1)
        moveChildren(from: p, pi + 1, to: p, pi + 2, count: pc - pi)
        relinkChildren(p, from: pi + 2, to: pc + 2)
        let sibling = allocateNode(parent: p, parentIndex: pi + 1, hasChildren: !leaf)
        children[p &* segmentMaxDegree &+ pi + 1] = Int32(truncatingIfNeeded: sibling)
        headers[p].count = Int32(pc + 1)
        moveSegments(from: n, segmentMinDegree, to: sibling, 0, count: half)
        headers[sibling].count = Int32(half)
        if !leaf {
            moveChildren(from: n, segmentMinDegree, to: sibling, 0, count: segmentMinDegree)
            relinkChildren(sibling, from: 0, to: segmentMinDegree)
        }
        headers[n].count = Int32(half)
        if Functions.tracksGaps {
            updateMaxGapLocal(n)
            updateMaxGapLocal(sibling)
        }
        if gap.n != n || gap.i < segmentMinDegree {
            return gap
        }
        return SegmentPosition(sibling, gap.i - segmentMinDegree)
    }

    /// Records that a borrow moved keys and gaps from `donor` to `receiver`,
    /// siblings, the longest moved being `moved` long (a child's longest
    /// gap, or one gap between leaves). Every gap keeps its length in a
    /// borrow; only which node holds it changes. The receiver's longest can
    /// only grow, to `moved`; the donor's changes only if `moved` was it.
    @inline(__always) @usableFromInline
    func passGap(_ moved: UInt64, from donor: Int, to receiver: Int) {
        if moved > maxGap(receiver) {
            setMaxGap(receiver, moved)
        }
        if moved >= maxGap(donor) {
            updateMaxGapLocal(donor)
        }
    }

    /// Restores the B-tree invariants after `n` lost a segment, borrowing
    /// from or joining with siblings up the tree; returns where `gap` is now.
    ///
    /// - Precondition: `n` is the only node that may break an invariant.
    @usableFromInline
    func rebalanceAfterRemove(_ n: Int, _ gap: SegmentPosition) -> SegmentPosition {
        var n = n
        var gap = gap
        while true {
            if count(n) >= segmentMinDegree - 1 {
                return gap
            }
            let p = parent(n)
            if p < 0 {
                // The root may hold any number of segments.
                return gap
            }
            let pi = parentIndex(n)
            let nc = count(n)

            // Borrow the last segment of the previous sibling, through the
            // parent.
            if pi > 0 {
                let sibling = child(p, pi - 1)
                let sc = count(sibling)
                if sc >= segmentMinDegree {
                    moveSegments(from: n, 0, to: n, 1, count: nc)
                    moveSegments(from: p, pi - 1, to: n, 0, count: 1)
                    moveSegments(from: sibling, sc - 1, to: p, pi - 1, count: 1)
                    if hasChildren(n) {
                        moveChildren(from: n, 0, to: n, 1, count: nc + 1)
                        adopt(n, 0, child(sibling, sc))
                        relinkChildren(n, from: 1, to: nc + 2)
                    }
                    headers[n].count = Int32(nc + 1)
                    headers[sibling].count = Int32(sc - 1)
                    if Functions.tracksGaps {
                        // What passed from the sibling to n: its last child,
                        // or, between leaves, the gap between the borrowed
                        // segment (now in the parent) and n's new first.
                        let moved = hasChildren(n) ? maxGap(child(n, 0)) : key(n, 0).start &- key(p, pi - 1).end
                        passGap(moved, from: sibling, to: n)
                    }
                    if gap.n == sibling && gap.i == sc {
                        // The gap after the borrowed segment, which now sits
                        // in the parent, is the first gap of n.
                        return SegmentPosition(n, 0)
                    }
                    if gap.n == n {
                        return SegmentPosition(n, gap.i + 1)
                    }
                    return gap
                }
            }

            // Borrow the first segment of the next sibling.
            if pi < count(p) {
                let sibling = child(p, pi + 1)
                let sc = count(sibling)
                if sc >= segmentMinDegree {
                    moveSegments(from: p, pi, to: n, nc, count: 1)
                    moveSegments(from: sibling, 0, to: p, pi, count: 1)
                    moveSegments(from: sibling, 1, to: sibling, 0, count: sc - 1)
                    if hasChildren(n) {
                        adopt(n, nc + 1, child(sibling, 0))
                        moveChildren(from: sibling, 1, to: sibling, 0, count: sc)
                        relinkChildren(sibling, from: 0, to: sc)
                    }
                    headers[n].count = Int32(nc + 1)
                    headers[sibling].count = Int32(sc - 1)
                    if Functions.tracksGaps {
                        // The sibling's first child, or the gap between n's
                        // new last segment and the one now in the parent.
                        let moved = hasChildren(n) ? maxGap(child(n, nc + 1)) : key(p, pi).start &- key(n, nc).end
                        passGap(moved, from: sibling, to: n)
                    }
                    if gap.n == sibling {
                        if gap.i == 0 {
                            return SegmentPosition(n, nc + 1)
                        }
                        return SegmentPosition(sibling, gap.i - 1)
                    }
                    return gap
                }
            }

            if count(p) == 1 {
                // p is the root and both its children are deficient: pull
                // them up into the root, which keeps its place as node 0.
                let left = child(p, 0)
                let right = child(p, 1)
                let lc = count(left)
                let rc = count(right)
                moveSegments(from: p, 0, to: p, lc, count: 1)
                moveSegments(from: left, 0, to: p, 0, count: lc)
                moveSegments(from: right, 0, to: p, lc + 1, count: rc)
                headers[p].count = Int32(lc + rc + 1)
                headers[p].hasChildren = hasChildren(left)
                if hasChildren(left) {
                    moveChildren(from: left, 0, to: p, 0, count: lc + 1)
                    moveChildren(from: right, 0, to: p, lc + 1, count: rc + 1)
                    relinkChildren(p, from: 0, to: lc + rc + 2)
                }
                freeNode(left)
                freeNode(right)
                if gap.n == left {
                    return SegmentPosition(p, gap.i)
                }
                if gap.n == right {
                    return SegmentPosition(p, gap.i + lc + 1)
                }
                return gap
            }

            // Join n with a sibling and the parent segment between them into
            // whichever of the two comes first.
            let left: Int
            let right: Int
            if pi > 0 {
                left = child(p, pi - 1)
                right = n
            } else {
                left = n
                right = child(p, pi + 1)
            }
            let lc = count(left)
            let rc = count(right)
            let li = parentIndex(left)
            // The joined node has every gap of both (the parent segment
            // between them keeps both its neighbouring gaps).
            let joinedMax = Functions.tracksGaps ? Swift.max(maxGap(left), maxGap(right)) : 0
            if gap.n == right {
                gap = SegmentPosition(left, gap.i + lc + 1)
            }
            moveSegments(from: p, li, to: left, lc, count: 1)
            moveSegments(from: right, 0, to: left, lc + 1, count: rc)
            if hasChildren(left) {
                moveChildren(from: right, 0, to: left, lc + 1, count: rc + 1)
                relinkChildren(left, from: lc + 1, to: lc + rc + 2)
            }
            headers[left].count = Int32(lc + rc + 1)
            let pc = count(p)
            moveSegments(from: p, li + 1, to: p, li, count: pc - li - 1)
            moveChildren(from: p, li + 2, to: p, li + 1, count: pc - li - 1)
            relinkChildren(p, from: li + 1, to: pc)
            headers[p].count = Int32(pc - 1)
            freeNode(right)
            if Functions.tracksGaps {
                setMaxGap(left, joinedMax)
            }
            n = p
        }
    }
}
