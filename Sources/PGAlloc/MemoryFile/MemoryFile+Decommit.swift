#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim

// Decommitting: giving pages' memory back to the host, keeping them
// allocated.

extension MemoryFile {
    /// Gives the memory of the pages of `fr` back to the host; they read as
    /// zero afterwards and stay allocated.
    ///
    /// - Precondition: `fr` is non-empty, page-aligned and allocated.
    /// - Throws: `HostError` if the host cannot punch the hole (or, with
    ///   `manualZeroing`, cannot map the pages to zero them).
    /// - Note: gVisor MemoryFile.Decommit.
    public func decommit(_ fr: FileRange) throws {
        try core.decommit(CollectionOfOne(fr))
    }
}

extension MemoryFile {
    /// Decommits every range of `ranges`, as `decommit(_:)` would one by
    /// one, taking the state lock twice in all rather than twice a range.
    /// Save uses it for the zero pages it finds.
    ///
    /// - Precondition: every range is non-empty, page-aligned and allocated.
    /// - Throws: `HostError` as `decommit(_:)`; the ranges before the one
    ///   that failed stay decommitted.
    public func decommit(_ ranges: [FileRange]) throws {
        try core.decommit(ranges)
    }
}

extension MemoryFileCore {
    /// Decommits `ranges` in order; the ones done before a failure are
    /// marked decommitted, and the error is thrown.
    func decommit(_ ranges: some Collection<FileRange>) throws {
        guard !ranges.isEmpty else { return }
        for fr in ranges {
            checkPageRange(fr, "decommit")
        }
        // After destroy the descriptor number may name another file.
        // Decommitted pages read as zero: saved contents still to load
        // must never land on them.
        state.withLock { s in
            checkAlive(s, "decommit")
            for fr in ranges {
                dropPendingContentsLocked(&s, fr)
            }
        }
        var done = 0
        defer {
            if done > 0 {
                state.withLock { s in
                    for fr in ranges.prefix(done) {
                        markDecommittedLocked(&s, fr)
                    }
                }
            }
        }
        for fr in ranges {
            if options.manualZeroing {
                // Punching holes need not zero pages here.
                try manuallyZero(fr)
            } else {
                try decommitFile(fr)
            }
            done += 1
        }
    }

    /// Writes zeroes over every page of `fr`, through the mappings.
    func manuallyZero(_ fr: FileRange) throws {
        try forEachMappingSlice(fr) { block in
            memset(block.baseAddress!, 0, block.count)
        }
    }

    /// Punches a hole over `fr` (`fallocate(PUNCH_HOLE | KEEP_SIZE)`).
    func decommitFile(_ fr: FileRange) throws(HostError) {
        if let hook = options.fallocateFailure, let errno = hook(fr) {
            throw HostError("fallocate", errno: errno)
        }
        _ = try retryingInterrupts("fallocate") {
            pg_fallocate(
                fd, pg_FALLOC_FL_PUNCH_HOLE | pg_FALLOC_FL_KEEP_SIZE,
                Int64(bitPattern: fr.start), Int64(bitPattern: fr.length))
        }
    }

    /// Records that the pages of `fr` are no longer known committed.
    func markDecommittedLocked(_ s: inout MemoryFileState, _ fr: FileRange) {
        var expectedDrop: UInt64 = 0
        var changed = false
        let gap = s.usage.applyContiguous(fr) { range, info in
            if info.knownCommitted {
                accounting.dec(range.length, info.kind)
                expectedDrop += range.length
                info.knownCommitted = false
                changed = true
            }
        }
        if let gap {
            preconditionFailure(
                "MemoryFile.decommit(\(fr)): unallocated pages \(s.usage.range(of: gap).intersection(fr)):\n\(s.usage)")
        }
        s.usageExpected -= expectedDrop
        // Where knownCommitted changed, segments may now merge anywhere in
        // the range (and with its neighbours: applyContiguous may have
        // split them off).
        if changed {
            s.usage.mergeRange(fr)
        }
        s.usage.mergeAdjacent(fr)
    }
}
