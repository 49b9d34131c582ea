import CLinuxShim
// The reclaimer: a thread that decommits freed ranges and makes them free
// again, from the end of the file inward.

extension MemoryFile {
    /// Waits until the reclaimer has taken back every range freed so far.
    public func waitForReclaim() {
        core.waitForReclaim()
    }

    /// Waits up to `timeoutNanoseconds` for the reclaimer to take back every
    /// range freed so far; returns whether it did.
    public func waitForReclaim(timeoutNanoseconds: UInt64) -> Bool {
        core.waitForReclaim(timeoutNanoseconds: timeoutNanoseconds)
    }
}

/// Frees the reclaimer waits for (a short while) before taking a batch.
let reclaimBatch = 32

extension MemoryFileCore {
    /// The reclaimer thread's body.
    ///
    /// - Note: gVisor MemoryFile.runReclaim.
    func runReclaim() {
        while let batch = findReclaimable() {
            for fr in batch {
                decommitForReclaim(fr)
            }
            // A few ranges per trip through the lock: short enough that a
            // thread waiting for it spins rather than sleeps.
            var next = 0
            while next < batch.count {
                let end = min(batch.count, next + 8)
                state.withLock { s in
                    for fr in batch[next..<end] {
                        markReclaimedLocked(&s, fr)
                    }
                    // No longer in flight: these pages may be allocated and
                    // freed again before the batch ends.
                    s.reclaimInFlightMarked = end
                }
                next = end
            }
        }
        releaseAfterDestroy()
    }

    /// Reclaims, on the calling thread and under the lock, every range
    /// waiting in the reclaim set (not those the reclaimer already took).
    /// Allocation does this before it grows the file.
    func reclaimPendingLocked(_ s: inout MemoryFileState) {
        for fr in Self.reclaimOrder(s.pendingReclaim) {
            decommitForReclaim(fr)
            markReclaimedLocked(&s, fr)
        }
        s.pendingReclaim.removeAll(keepingCapacity: true)
    }

    /// Freed ranges in the order the reclaimer takes them: joined where
    /// they touch (in a reclaim set, as the seed keeps them), from the end
    /// of the file inward, as allocation works from the end inward and
    /// reclaiming in the same order keeps its searches short.
    static func reclaimOrder(_ ranges: [FileRange]) -> [FileRange] {
        var set = UntrackedFileRangeSet()
        for r in ranges {
            set.add(r, ())
        }
        return set.segments.reversed().map(\.range)
    }

    /// Gives the memory of a freed range back to the host, or at least
    /// makes it read as zero when allocated again.
    private func decommitForReclaim(_ fr: FileRange) {
        if options.manualZeroing {
            // Only whole huge pages may be punched: the pages are zeroed
            // when allocated again, so a failure costs only memory.
            let start = (fr.start + PageSize.huge - 1) & ~(PageSize.huge - 1)
            let end = fr.end & ~(PageSize.huge - 1)
            if start < end {
                let huge = FileRange(start: start, end: end)
                do {
                    try decommitFile(huge)
                } catch {
                    logger.warning("MemoryFile reclaim: cannot decommit \(huge): \(error)")
                }
            }
            return
        }
        do {
            try decommitFile(fr)
        } catch {
            logger.warning("MemoryFile reclaim: cannot decommit \(fr): \(error); zeroing instead")
            // Zeroing keeps the memory but makes the pages read as zero
            // when they are allocated again.
            do {
                try manuallyZero(fr)
            } catch let zeroError {
                fatalError("MemoryFile reclaim: cannot decommit \(fr) (\(error)) nor zero it (\(zeroError))")
            }
        }
    }

    /// Takes every range waiting for reclaim, ordered from the end of the
    /// file inward and joined, waiting until there is one; nil once the
    /// file is destroyed. The seed takes one range at a time; taking all
    /// that piled up while the last ones were punched ends in the same
    /// state with far fewer trips through the lock, which the allocating
    /// threads would otherwise wait for.
    ///
    /// When it runs out of work it spins for a short while, watching
    /// `reclaimEvents`, before sleeping on `reclaimCond`: under steady
    /// churn the next free comes within microseconds, and waking a sleeping
    /// thread would cost the freeing thread more than the free itself.
    ///
    /// - Note: gVisor MemoryFile.findReclaimable.
    func findReclaimable() -> [FileRange]? {
        enum Outcome {
            case taken([FileRange])
            case destroyed
            case idle(events: UInt64)
            case accumulate(events: UInt64)
        }
        while true {
            let outcome = state.withLock { s -> Outcome in
                s.reclaimInFlight = []
                s.reclaimInFlightMarked = 0
                if s.destroyed {
                    return .destroyed
                }
                if s.reclaimable {
                    if !s.reclaimBatchDeferred && s.reclaimWaiters == 0 {
                        // Let a few more frees arrive first: a batch costs a
                        // trip through the lock to take it and one per 8
                        // ranges to mark them, and every trip may stall an
                        // allocating thread. Allocation reclaims by itself
                        // rather than grow the file, so waiting costs
                        // nothing there.
                        s.reclaimBatchDeferred = true
                        return .accumulate(events: reclaimEvents.load(ordering: .acquiring))
                    }
                    s.reclaimBatchDeferred = false
                    if !s.pendingReclaim.isEmpty {
                        // Take every pending range at once, swapping the
                        // array with the spare one: constant time under the
                        // lock; ordering them happens outside.
                        let taken = s.pendingReclaim
                        s.pendingReclaim = s.spareReclaim
                        s.spareReclaim = []
                        // In flight from now on, ordered or not.
                        s.reclaimInFlight = taken
                        s.reclaimInFlightMarked = 0
                        return .taken(taken)
                    }
                    s.reclaimable = false
                    state.broadcast(reclaimIdleCond)
                }
                return .idle(events: reclaimEvents.load(ordering: .acquiring))
            }
            switch outcome {
            case .taken(var taken):
                let batch = Self.reclaimOrder(taken)
                state.withLock { s in
                    // The same pages, joined and ordered.
                    s.reclaimInFlight = batch
                    // `taken` is now the only owner of its storage: emptied
                    // in place, it is the next spare.
                    taken.removeAll(keepingCapacity: true)
                    s.spareReclaim = taken
                }
                return batch
            case .destroyed:
                return nil
            case .idle(let seen):
                if spinForReclaimEvent(since: seen) {
                    continue
                }
                sleepUntilReclaimable()
            case .accumulate(let seen):
                spinForReclaimEvents(since: seen, count: UInt64(reclaimBatch), nanoseconds: 100_000)
            }
        }
    }

    /// Spins up to 50 µs for `reclaimEvents` to move past `seen`.
    private func spinForReclaimEvent(since seen: UInt64) -> Bool {
        spinForReclaimEvents(since: seen, count: 1, nanoseconds: 50_000)
    }

    /// Spins until `reclaimEvents` has moved `count` past `seen` or
    /// `nanoseconds` have passed; returns whether it moved that far.
    @discardableResult
    private func spinForReclaimEvents(since seen: UInt64, count: UInt64, nanoseconds: UInt64) -> Bool {
        let deadline = monotonicNanoseconds() + nanoseconds
        while true {
            for _ in 0..<16 {
                if reclaimEvents.load(ordering: .acquiring) &- seen >= count {
                    return true
                }
                pg_cpu_relax()
            }
            if monotonicNanoseconds() >= deadline {
                return false
            }
        }
    }

    /// Sleeps on `reclaimCond` until there is work or the file is
    /// destroyed, starting evictions first when they wait for the
    /// reclaimer to be idle.
    private func sleepUntilReclaimable() {
        state.withLock(waitingOn: reclaimCond) { s -> StateLock<MemoryFileState>.Step<Void> in
            if s.destroyed || s.reclaimable {
                s.reclaimerSleeping = false
                return .done(())
            }
            if options.delayedEviction == .enabled && !options.useHostMemcgPressure {
                // Out of work: evict what can be evicted, to make more.
                startEvictionsLocked(&s)
            }
            s.reclaimerSleeping = true
            return .wait
        }
    }

    /// Frees the pages of `fr`, which the reclaimer has decommitted: drops
    /// their committed accounting and removes them from the usage set. The
    /// seed does this in two steps (markDecommitted, which merges the range
    /// into one segment, then markReclaimed); one pass over the segments of
    /// `fr` ends in the same state with fewer lookups.
    ///
    /// - Precondition: every page of `fr` is freed (System, no references).
    /// - Note: gVisor MemoryFile.markDecommitted and markReclaimed.
    func markReclaimedLocked(_ s: inout MemoryFileState, _ fr: FileRange) {
        var next = s.usage.findSegment(containing: fr.start)
        var expected = fr.start
        while expected < fr.end {
            guard let seg = next, s.usage.start(of: seg) <= expected else {
                preconditionFailure("MemoryFile reclaim: reclaimed pages \(fr) include unallocated pages at 0x\(String(expected, radix: 16)):\n\(s.usage)")
            }
            let info = s.usage[seg]
            precondition(
                info.kind == .system && info.refs == 0,
                "MemoryFile reclaim: reclaimed pages \(fr) are in segment \(s.usage.range(of: seg)) with state \(info), expected freed System pages:\n\(s.usage)")
            let isolated = s.usage.isolate(seg, to: fr)
            let range = s.usage.range(of: isolated)
            if info.knownCommitted {
                accounting.dec(range.length, .system)
                s.usageExpected -= range.length
            }
            let gap = s.usage.remove(isolated)
            expected = range.end
            next = s.usage.nextSegment(after: gap)
        }
    }

    func waitForReclaim() {
        state.withLock { $0.reclaimWaiters += 1 }
        state.withLock(waitingOn: reclaimIdleCond) { s -> StateLock<MemoryFileState>.Step<Void> in
            if s.destroyed || !s.reclaimable {
                s.reclaimWaiters -= 1
                return .done(())
            }
            return .wait
        }
    }

    func waitForReclaim(timeoutNanoseconds: UInt64) -> Bool {
        state.withLock { $0.reclaimWaiters += 1 }
        let done = state.withLock(waitingOn: reclaimIdleCond, timeoutNanoseconds: timeoutNanoseconds) { s -> StateLock<MemoryFileState>.Step<Void> in
            if s.destroyed || !s.reclaimable {
                return .done(())
            }
            return .wait
        } != nil
        state.withLock { $0.reclaimWaiters -= 1 }
        return done
    }

    /// After destroy: unmap everything and close the file. Runs on the
    /// reclaimer thread as it exits.
    private func releaseAfterDestroy() {
        state.withLock { s in
            precondition(s.destroyed, "MemoryFile reclaim: the reclaimer stopped but the file is not destroyed")
            for failure in mappings.unmapAll() {
                logger.warning("MemoryFile destroy: \(failure)")
            }
            s.file = nil
            s.reclaimable = false
            state.broadcast(reclaimIdleCond)
        }
    }
}
