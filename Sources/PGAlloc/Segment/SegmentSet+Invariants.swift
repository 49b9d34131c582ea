/// A broken invariant of a `SegmentSet`, found by `checkInvariants()`.
public struct SegmentSetInvariantError: Error, CustomStringConvertible {
    public var problem: String
    public var dump: String
    public var description: String { "\(problem)\n\(dump)" }
}

extension SegmentSet {
    /// Checks the whole tree: B-tree shape (node fill, uniform leaf depth,
    /// parent links), segment order and bounds, the recorded longest gap of
    /// every node recomputed from scratch, and, if asked, that no two
    /// touching segments could be merged. Tests call it after every
    /// mutation.
    ///
    /// - Throws: `SegmentSetInvariantError` describing the first problem,
    ///   with a dump of the tree.
    public func checkInvariants(requireMaximallyMerged: Bool = false) throws(SegmentSetInvariantError) {
        var problem: String?
        var leafDepth = -1
        var reachable = 0
        var last: (range: FileRange, value: Value)? = nil

        func fail(_ p: String) {
            if problem == nil {
                problem = p
            }
        }

        // Returns the longest gap the subtree should record.
        func walk(_ n: Int, depth: Int) -> UInt64 {
            reachable += 1
            let c = storage.count(n)
            if c < 0 || c > segmentMaxKeys {
                fail("node \(n) has \(c) segments")
                return 0
            }
            if n != 0 && c < segmentMinDegree - 1 {
                fail("node \(n) has \(c) segments, fewer than \(segmentMinDegree - 1)")
            }
            if n == 0 && c == 0 && storage.hasChildren(n) {
                fail("the empty root has children")
            }
            var best: UInt64 = 0
            for i in 0...c {
                if storage.hasChildren(n) {
                    let ch = storage.child(n, i)
                    if storage.parent(ch) != n || storage.parentIndex(ch) != i {
                        fail("node \(ch) links to parent (\(storage.parent(ch)), \(storage.parentIndex(ch))), expected (\(n), \(i))")
                    }
                    if Functions.tracksGaps && storage.childGap(n, i) != storage.maxGap(ch) {
                        fail("node \(n) copies child \(i)'s longest gap as 0x\(String(storage.childGap(n, i), radix: 16)), the child records 0x\(String(storage.maxGap(ch), radix: 16))")
                    }
                    best = max(best, walk(ch, depth: depth + 1))
                } else {
                    if leafDepth < 0 {
                        leafDepth = depth
                    } else if leafDepth != depth {
                        fail("leaf \(n) at depth \(depth), others at \(leafDepth)")
                    }
                    best = max(best, storage.gapRange(SegmentPosition(n, i)).length)
                }
                if i < c {
                    let r = storage.key(n, i)
                    let v = storage.value(n, i)
                    if r.start >= r.end {
                        fail("segment \(r) in node \(n) is empty or inverted")
                    }
                    if r.start < Functions.minKey || r.end > Functions.maxKey {
                        fail("segment \(r) is outside the key space")
                    }
                    if let (pr, pv) = last {
                        if r.start < pr.end {
                            fail("segment \(r) starts before its predecessor \(pr) ends")
                        } else if requireMaximallyMerged, r.start == pr.end, Functions.merge(pr, pv, r, v) != nil {
                            fail("segment \(r) touches its predecessor \(pr) and could merge with it")
                        }
                    }
                    last = (r, v)
                }
            }
            if Functions.tracksGaps && storage.maxGap(n) != best {
                fail("node \(n) records longest gap 0x\(String(storage.maxGap(n), radix: 16)), actual 0x\(String(best, radix: 16))")
            }
            return best
        }

        if storage.parent(0) != -1 {
            fail("the root has a parent")
        }
        _ = walk(0, depth: 0)
        if reachable != storage.liveNodes {
            fail("\(reachable) nodes reachable, \(storage.liveNodes) allocated")
        }
        if let problem {
            throw SegmentSetInvariantError(problem: problem, dump: debugDescription)
        }
    }
}
