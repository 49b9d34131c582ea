import Synchronization

// Reference counts of allocated pages.

extension MemoryFile {
    /// Takes one more reference on every page of `fr`.
    ///
    /// - Precondition: `fr` is non-empty, page-aligned, and every page of it
    ///   is allocated and not yet freed.
    /// - Note: gVisor MemoryFile.IncRef.
    public func incRef(_ fr: FileRange) {
        core.incRef(fr)
    }

    /// Drops one reference on every page of `fr`. Pages left with none are
    /// accounted as `.system` and handed to the reclaimer, which decommits
    /// them and makes them free again.
    ///
    /// - Precondition: `fr` is non-empty, page-aligned, and every page of it
    ///   is allocated with at least one reference.
    /// - Note: gVisor MemoryFile.DecRef.
    public func decRef(_ fr: FileRange) {
        core.decRef(fr)
    }
}

extension MemoryFileCore {
    func incRef(_ fr: FileRange) {
        checkPageRange(fr, "incRef")
        state.withLock { s in
            checkAlive(s, "incRef")
            var freed: FileRange?
            let gap = s.usage.applyContiguous(fr) { range, info in
                if info.refs == 0 && freed == nil {
                    freed = range
                }
                info.refs += 1
            }
            if let gap {
                preconditionFailure(
                    "MemoryFile.incRef(\(fr)): unallocated pages \(s.usage.range(of: gap).intersection(fr)):\n\(s.usage)")
            }
            if let freed {
                preconditionFailure("MemoryFile.incRef(\(fr)): pages \(freed) were already freed:\n\(s.usage)")
            }
            s.usage.mergeAdjacent(fr)
        }
    }

    func decRef(_ fr: FileRange) {
        checkPageRange(fr, "decRef")
        let wake = state.withLock { s -> Bool in
            checkAlive(s, "decRef")
            // From the first segment ending after fr.start, so that a gap at
            // the start of fr is reported as precisely as one in its middle.
            var seg = s.usage.lowerBoundSegment(fr.start)
            if let first = seg, freeBesideFreedPagesLocked(&s, fr, first) {
                return noteFreedLocked(&s)
            }
            var freed = false
            var touched = 0
            var last: UsageSet.Segment?
            var expected = fr.start
            while let current = seg, s.usage.start(of: current) < fr.end {
                if s.usage.start(of: current) > expected {
                    preconditionFailure(
                        "MemoryFile.decRef(\(fr)): unallocated pages \(FileRange(start: expected, end: s.usage.start(of: current))):\n\(s.usage)")
                }
                let isolated = s.usage.isolate(current, to: fr)
                let range = s.usage.range(of: isolated)
                var info = s.usage[isolated]
                if info.refs == 0 {
                    preconditionFailure("MemoryFile.decRef(\(fr)): no references left on \(range):\n\(s.usage)")
                }
                info.refs -= 1
                if info.refs == 0 {
                    // Before the reclaimer can see them: a loader still
                    // writing saved contents must leave them alone.
                    dropPendingContentsLocked(&s, range)
                    s.pendingReclaim.append(range)
                    freed = true
                    // Freed pages count as System until the reclaimer has
                    // taken them back.
                    if info.knownCommitted {
                        accounting.move(range.length, to: .system, from: info.kind)
                    }
                    info.kind = .system
                }
                s.usage[isolated] = info
                touched += 1
                last = isolated
                expected = range.end
                seg = s.usage.nextSegment(after: isolated)
            }
            if expected < fr.end {
                preconditionFailure(
                    "MemoryFile.decRef(\(fr)): unallocated pages \(FileRange(start: expected, end: fr.end)):\n\(s.usage)")
            }
            if touched == 1 {
                // One segment: merge around it without looking it up again.
                s.usage.mergeWithNeighbours(last!)
            } else {
                if freed {
                    // Freed segments of different kinds are all System now
                    // and may merge with each other.
                    s.usage.mergeRange(fr)
                }
                s.usage.mergeAdjacent(fr)
            }
            return freed && noteFreedLocked(&s)
        }
        if wake {
            state.signal(reclaimCond)
        }
    }

    /// The common case of a free under churn, done without splitting a
    /// segment only to merge the piece back: `fr` is the first or last part
    /// of one segment with a single reference, and the freed pages next to
    /// it (waiting for the reclaimer) would absorb it. The boundary between
    /// the two segments moves instead, which ends in the same maximally
    /// merged set. `seg` is the first segment ending after `fr.start`.
    /// Returns false, changing nothing, in any other case.
    private func freeBesideFreedPagesLocked(_ s: inout MemoryFileState, _ fr: FileRange, _ seg: UsageSet.Segment) -> Bool {
        let range = s.usage.range(of: seg)
        let info = s.usage[seg]
        guard range.start <= fr.start && fr.end <= range.end && info.refs == 1 && range != fr else {
            return false
        }
        let freedInfo = UsageInfo(kind: .system, knownCommitted: info.knownCommitted, refs: 0)
        if fr.start == range.start {
            guard let prev = s.usage.previousSegment(before: seg),
                s.usage.end(of: prev) == fr.start && s.usage[prev] == freedInfo
            else {
                return false
            }
            s.usage.moveBoundary(between: prev, and: seg, to: fr.end)
        } else if fr.end == range.end {
            guard let next = s.usage.nextSegment(after: seg),
                s.usage.start(of: next) == fr.end && s.usage[next] == freedInfo
            else {
                return false
            }
            s.usage.moveBoundary(between: seg, and: next, to: fr.start)
        } else {
            return false
        }
        s.pendingReclaim.append(fr)
        if info.knownCommitted {
            accounting.move(fr.length, to: .system, from: info.kind)
        }
        return true
    }

    /// Records that ranges were added to `pendingReclaim`; returns whether
    /// the reclaimer sleeps and must be woken (by signaling `reclaimCond`
    /// once the lock is released).
    func noteFreedLocked(_ s: inout MemoryFileState) -> Bool {
        s.reclaimable = true
        reclaimEvents.add(1, ordering: .releasing)
        if s.reclaimerSleeping {
            s.reclaimerSleeping = false
            return true
        }
        return false
    }
}
