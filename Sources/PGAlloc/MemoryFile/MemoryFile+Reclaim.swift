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

extension MemoryFileCore {
    /// The reclaimer thread's body.
    ///
    /// - Note: gVisor MemoryFile.runReclaim.
    func runReclaim() {
        while let fr = findReclaimable() {
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
            } else {
                do {
                    try decommitFile(fr)
                } catch {
                    logger.warning("MemoryFile reclaim: cannot decommit \(fr): \(error); zeroing instead")
                    // Zeroing keeps the memory but makes the pages read as
                    // zero when they are allocated again.
                    do {
                        try manuallyZero(fr)
                    } catch let zeroError {
                        fatalError("MemoryFile reclaim: cannot decommit \(fr) (\(error)) nor zero it (\(zeroError))")
                    }
                }
            }
            state.withLock { s in
                markDecommittedLocked(&s, fr)
                markReclaimedLocked(&s, fr)
            }
        }
        releaseAfterDestroy()
    }

    /// Takes the last range waiting for reclaim out of the reclaim set,
    /// sleeping until there is one; nil once the file is destroyed.
    ///
    /// - Note: gVisor MemoryFile.findReclaimable.
    func findReclaimable() -> FileRange? {
        state.withLock(waitingOn: reclaimCond) { s -> StateLock<MemoryFileState>.Step<FileRange?> in
            s.reclaimInFlight = nil
            while true {
                if s.destroyed {
                    return .done(nil)
                }
                if s.reclaimable {
                    break
                }
                if options.delayedEviction == .enabled && !options.useHostMemcgPressure {
                    // Out of work: evict what can be evicted, to make more.
                    startEvictionsLocked(&s)
                }
                return .wait
            }
            // Allocation works from the end of the file inward; reclaiming
            // in the same order keeps its gap searches short.
            if let seg = s.reclaim.lastSegment {
                let fr = s.reclaim.range(of: seg)
                s.reclaim.remove(seg)
                s.reclaimInFlight = fr
                return .done(fr)
            }
            s.reclaimable = false
            state.broadcast(reclaimIdleCond)
            return .wait
        }
    }

    /// Frees the pages of `fr`, which the reclaimer has decommitted.
    ///
    /// - Note: gVisor MemoryFile.markReclaimed.
    func markReclaimedLocked(_ s: inout MemoryFileState, _ fr: FileRange) {
        guard let seg = s.usage.findSegment(containing: fr.start) else {
            preconditionFailure("MemoryFile reclaim: reclaimed pages \(fr) include unallocated pages:\n\(s.usage)")
        }
        let range = s.usage.range(of: seg)
        precondition(
            range.isSuperset(of: fr),
            "MemoryFile reclaim: reclaimed pages \(fr) are not all in segment \(range) \(s.usage[seg]):\n\(s.usage)")
        let expected = UsageInfo(kind: .system, knownCommitted: false, refs: 0)
        precondition(
            s.usage[seg] == expected,
            "MemoryFile reclaim: reclaimed pages \(fr) are in segment \(range) with state \(s.usage[seg]), expected \(expected):\n\(s.usage)")
        // The segment may reach beyond fr (another freed range waiting for
        // reclaim): free only fr.
        s.usage.remove(s.usage.isolate(seg, to: fr))
    }

    func waitForReclaim() {
        state.withLock(waitingOn: reclaimIdleCond) { s -> StateLock<MemoryFileState>.Step<Void> in
            if s.destroyed || !s.reclaimable {
                return .done(())
            }
            return .wait
        }
    }

    func waitForReclaim(timeoutNanoseconds: UInt64) -> Bool {
        state.withLock(waitingOn: reclaimIdleCond, timeoutNanoseconds: timeoutNanoseconds) { s -> StateLock<MemoryFileState>.Step<Void> in
            if s.destroyed || !s.reclaimable {
                return .done(())
            }
            return .wait
        } != nil
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
