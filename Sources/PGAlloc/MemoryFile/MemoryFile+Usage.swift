#if canImport(Glibc)
import Glibc
#endif

// Usage: which pages are committed, and how much memory the file holds.

extension MemoryFile {
    /// Brings the accounting up to date: finds which pages of allocated
    /// ranges not yet known committed are now committed (`mincore`), and
    /// accounts them. Skips the scan when the file's block count says
    /// nothing changed, at most once a second while some usage is
    /// unexplained (swap), and within 10 ms of the last scan.
    ///
    /// - Throws: `HostError` from `fstat`, `mmap` or `mincore`.
    /// - Note: gVisor MemoryFile.UpdateUsage.
    public func updateUsage() throws {
        try core.updateUsage()
    }

    /// The bytes the host spends on the file, swapped pages included
    /// (`st_blocks * 512`). Cheaper than `updateUsage`, with no breakdown.
    ///
    /// - Note: gVisor MemoryFile.TotalUsage.
    public func totalUsage() throws -> UInt64 {
        // After destroy the descriptor number may name another file.
        core.state.withLock { core.checkAlive($0, "totalUsage") }
        return try core.totalUsage()
    }

    /// The size of the file: an upper bound on what can be allocated
    /// without growing it. May change at any time.
    ///
    /// - Note: gVisor MemoryFile.TotalSize.
    public var totalSize: UInt64 {
        core.state.withLock { $0.fileSize }
    }
}

extension MemoryFileCore {
    func totalUsage() throws(HostError) -> UInt64 {
        var st = stat()
        _ = try retryingInterrupts("fstat") { fstat(fd, &st) }
        return UInt64(st.st_blocks) * 512
    }

    func updateUsage() throws {
        // The stored pages a lazy restore still loads are accounted but not
        // yet known committed: a scan would count them again.
        try waitForAllContents()
        // The seed decides and scans under its lock, dropping it only around
        // mincore; here each step takes the lock on its own.
        let currentUsage: UInt64? = try state.withLock { (s: inout MemoryFileState) throws -> UInt64? in
            checkAlive(s, "updateUsage")
            let current = try totalUsage()
            if current == s.usageExpected && s.usageSwapped == 0 {
                return nil
            }
            let now = monotonicNanoseconds()
            // With usage unexplained (swap), scan at most once a second.
            if current == s.usageExpected + s.usageSwapped && s.usageLast != 0 && now < s.usageLast + 1_000_000_000 {
                return nil
            }
            // The host updates usage at CONFIG_HZ (100 per second).
            if s.usageLast != 0 && now - s.usageLast < 10_000_000 {
                return nil
            }
            s.usageLast = now
            return current
        }
        guard let currentUsage else { return }
        try updateUsageByScanning(currentUsage: currentUsage, checkCommitted: residency)
    }

    /// mincore over a mapped slice (or, under the `hideResidency` test
    /// hook, nothing resident).
    func residency(_ slice: UnsafeMutableRawBufferPointer, _ committed: UnsafeMutablePointer<UInt8>) throws {
        if options.hideResidency {
            committed.initialize(repeating: 0, count: slice.count / Int(PageSize.base))
            return
        }
        try HostMapping.residency(slice.baseAddress!, length: slice.count, into: committed)
    }

    /// Scans every allocated segment that may have become committed: for
    /// each mapped slice, `checkCommitted` sets one byte per page (bit 0:
    /// committed) without the lock held; then, under the lock, the pages
    /// found committed are marked known committed and accounted, in the
    /// segments that can still take them. Finally, usage the scan did not
    /// explain is accounted as swapped System memory: the file's block
    /// count, `currentUsage` or the count at the end if that is smaller,
    /// less the known-committed bytes.
    ///
    /// Called without the state lock: it takes the lock for each step on
    /// its own. The seed's version is called with its lock held and drops
    /// it around mincore, which a `withLock` body cannot do; hence the name
    /// without `Locked`.
    ///
    /// - Note: gVisor MemoryFile.updateUsageLocked.
    func updateUsageByScanning(
        currentUsage: UInt64,
        checkCommitted: (UnsafeMutableRawBufferPointer, UnsafeMutablePointer<UInt8>) throws -> Void
    ) throws {
        var changedAny = false
        defer {
            state.withLock { s in
                if changedAny {
                    s.usage.mergeAll()
                }
                // The lock was dropped around each mincore, so pages may
                // have gone while the scan ran: the reclaimer decommits
                // freed ranges, and whatever of them was known committed
                // has already left usageExpected. Measured before the scan,
                // they would stay as phantom swap; measured after, pages
                // committed behind the scan would pass for swap. The
                // smaller count errs on neither side. (The seed keeps the
                // count from before, assuming nothing is decommitted while
                // it scans, which its own unlocked mincore does not ensure.)
                let after = (try? totalUsage()) ?? currentUsage
                adjustSwap(&s, currentUsage: min(currentUsage, after))
            }
        }

        // Mincore results: one byte per page of at most one chunk.
        let vector = UnsafeMutablePointer<UInt8>.allocate(capacity: Int(chunkSize / PageSize.base))
        defer { vector.deallocate() }

        var cursor: UInt64 = 0
        while true {
            guard let r = nextCommittableRange(from: cursor) else { break }
            var sliceStart = r.start
            try forEachMappingSlice(r) { slice in
                let pages = slice.count / Int(PageSize.base)
                try checkCommitted(slice, vector)
                let sliceRange = FileRange(start: sliceStart, end: sliceStart + UInt64(slice.count))
                sliceStart = sliceRange.end
                if markCommitted(in: sliceRange, vector: vector, pages: pages) {
                    changedAny = true
                }
            }
            cursor = r.end
        }
    }

    /// The part at or after `cursor` of the first segment there that can
    /// still become committed (referenced, not known committed), if any.
    func nextCommittableRange(from cursor: UInt64) -> FileRange? {
        state.withLock { s in
            var seg = s.usage.lowerBoundSegment(cursor)
            while let current = seg {
                if s.usage[current].canCommit {
                    return s.usage.range(of: current).intersection(FileRange(start: cursor, end: .max))
                }
                seg = s.usage.nextSegment(after: current)
            }
            return nil
        }
    }

    /// Marks the runs of committed pages that `vector` reports for `r` as
    /// known committed, in segments that can still take them; returns
    /// whether it changed anything.
    private func markCommitted(in r: FileRange, vector: UnsafeMutablePointer<UInt8>, pages: Int) -> Bool {
        var changed = false
        state.withLock { s in
            var seg = s.usage.lowerBoundSegment(r.start)
            var i = 0
            while i < pages {
                if vector[i] & 1 == 0 {
                    i += 1
                    continue
                }
                var j = i + 1
                while j < pages && vector[j] & 1 != 0 {
                    j += 1
                }
                let committed = FileRange(
                    start: r.start + UInt64(i) * PageSize.base, end: r.start + UInt64(j) * PageSize.base)
                if markCommittedLocked(&s, committed, from: seg) {
                    changed = true
                }
                // The segment holding the end of this run: the next run may
                // start inside it.
                seg = s.usage.lowerBoundSegment(committed.end)
                i = j
            }
            if changed {
                mergeMarkedLocked(&s, r)
            }
        }
        return changed
    }

    /// Merges the segments that marking pages of `r` split or made equal,
    /// inside `r` and with its neighbours. Called before the lock is
    /// dropped: other threads must never see the set less than maximally
    /// merged.
    func mergeMarkedLocked(_ s: inout MemoryFileState, _ r: FileRange) {
        s.usage.mergeRange(r)
        s.usage.mergeAdjacent(r)
    }

    /// Marks the pages of `committed` that can still become committed (in
    /// referenced segments not known committed) as known committed, and
    /// accounts them; starts looking at `from` if given. Returns whether it
    /// changed anything. Does not merge.
    @discardableResult
    func markCommittedLocked(_ s: inout MemoryFileState, _ committed: FileRange, from start: UsageSet.Segment? = nil) -> Bool {
        var changed = false
        var seg = start ?? s.usage.lowerBoundSegment(committed.start)
        while let current = seg, s.usage.end(of: current) <= committed.start {
            seg = s.usage.nextSegment(after: current)
        }
        while let current = seg, s.usage.start(of: current) < committed.end {
            var next = current
            if s.usage[current].canCommit {
                next = s.usage.isolate(current, to: committed)
                let length = s.usage.range(of: next).length
                s.usage[next].knownCommitted = true
                accounting.inc(length, s.usage[next].kind)
                s.usageExpected += length
                changed = true
            }
            seg = s.usage.nextSegment(after: next)
        }
        return changed
    }

    /// Accounts usage the segments do not explain as swapped System memory.
    ///
    /// - Precondition: `currentUsage` leaves out every page decommitted
    ///   since the known-committed pages were last counted.
    func adjustSwap(_ s: inout MemoryFileState, currentUsage: UInt64) {
        if s.usageExpected < currentUsage {
            // The shortfall is in pages no scan could account to a kind:
            // swapped ones, and freed pages committed without being known
            // to be (until the reclaimer takes them back).
            let swapped = currentUsage - s.usageExpected
            if s.usageSwapped < swapped {
                accounting.inc(swapped - s.usageSwapped, .system)
            } else {
                accounting.dec(s.usageSwapped - swapped, .system)
            }
            s.usageSwapped = swapped
        } else if s.usageSwapped != 0 {
            // More is accounted than the file holds: pages were committed
            // while the scan ran. Report what was found and forget swap.
            accounting.dec(s.usageSwapped, .system)
            s.usageSwapped = 0
        }
    }
}
