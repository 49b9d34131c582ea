#if canImport(Glibc)
import Glibc
#endif
import Synchronization

// What save and restore (the Checkpoint module) need from the allocator.
// `package` access: part of this package's contract, not of the library's.

/// A segment of the usage set as a checkpoint stores it: a page range with
/// its kind and references. A save describes the file with these, merged
/// where kind and references are equal (which pages are committed is
/// carried by the stored pages instead); a restore rebuilds the usage set
/// from them.
public struct SegmentRecord: Hashable, Sendable, CustomStringConvertible {
    public var range: FileRange
    public var refs: UInt64
    public var kind: MemoryKind

    public init(range: FileRange, refs: UInt64, kind: MemoryKind) {
        self.range = range
        self.refs = refs
        self.kind = kind
    }

    public var description: String { "\(range) \(kind) refs \(refs)" }
}

/// How a save found the pages that hold data.
package enum CommittedScan: String, Sendable {
    /// The file's block count equalled the known-committed bytes: no scan.
    case none
    /// mincore over the allocated ranges not known committed.
    case mincore
    /// SEEK_DATA/SEEK_HOLE over those ranges.
    case seekData
    /// mincore, then SEEK_DATA for pages mincore cannot see (swapped).
    case mincoreThenSeekData
}

extension MemoryFile {
    /// Gets the file ready to be saved and describes it: waits until reclaim
    /// is idle, refuses pending evictions, and makes every page that holds
    /// data known committed, so that the known-committed pages are exactly
    /// the ones to store.
    ///
    /// Which pages are committed is learnt as `updateUsage` does (mincore),
    /// or with SEEK_DATA when the ranges to scan are much larger than the
    /// data they can hold; and if the file's block count still exceeds the
    /// known-committed bytes (mincore cannot see swapped pages), SEEK_DATA
    /// finds the rest. Pages that were never touched are never read.
    ///
    /// - Throws: `MemoryFileError.evictionsPending`; `HostError`.
    package func prepareForSave() throws -> (fileSize: UInt64, segments: [SegmentRecord], scan: CommittedScan) {
        // A lazily restored file is saved once everything is loaded: the
        // save reads every stored page anyway.
        try core.waitForAllContents()
        return try core.prepareForSave()
    }

    /// Bytes known to be committed.
    package var knownCommittedBytes: UInt64 {
        core.state.withLock { $0.usageExpected }
    }

    /// Known-committed ranges of referenced pages at or after `cursor`, in
    /// order, touching ones joined, totalling at most `maxBytes` (the last
    /// one cut to fit).
    package func committedRuns(from cursor: UInt64, maxBytes: UInt64) -> [FileRange] {
        core.state.withLock { s in
            var out: [FileRange] = []
            var total: UInt64 = 0
            var seg = s.usage.lowerBoundSegment(cursor)
            while let current = seg, total < maxBytes {
                let info = s.usage[current]
                if info.knownCommitted && info.refs > 0 {
                    var r = s.usage.range(of: current)
                    r.start = max(r.start, cursor)
                    if r.length > maxBytes - total {
                        r.end = r.start + (maxBytes - total)
                    }
                    if let last = out.last, last.end == r.start {
                        out[out.count - 1].end = r.end
                    } else {
                        out.append(r)
                    }
                    total += r.length
                }
                seg = s.usage.nextSegment(after: current)
            }
            return out
        }
    }

    /// Sets up a new, empty MemoryFile as a restored one: sizes the file,
    /// installs the usage set (nothing known committed yet), and hands
    /// segments without references to the reclaimer.
    ///
    /// - Precondition: nothing has been allocated from this file.
    /// - Throws: `HostError` if the file cannot be sized;
    ///   `SegmentImportError` if the segments are not sorted and disjoint.
    package func installRestoredLayout(fileSize: UInt64, segments: [SegmentRecord]) throws {
        try core.installRestoredLayout(fileSize: fileSize, segments: segments, committed: [])
    }

    /// As `installRestoredLayout(fileSize:segments:)`, for a lazy restore:
    /// the stored pages, whose contents arrive later, are accounted at once
    /// (`stored`, per kind); they become known committed as they load
    /// (`markPendingLoaded`).
    package func installRestoredLayout(fileSize: UInt64, segments: [SegmentRecord], accountedInAdvance stored: MemoryStats) throws {
        try core.installRestoredLayout(fileSize: fileSize, segments: segments, committed: [])
        core.state.withLock { s in
            for kind in MemoryKind.allCases where stored[kind] > 0 {
                core.accounting.inc(stored[kind], kind)
                s.pendingAccounted[kind] += stored[kind]
            }
        }
    }

    /// Marks restored pages as known committed and accounts them.
    package func markRestoredCommitted(_ runs: [FileRange]) {
        core.state.withLock { s in
            for run in runs {
                var seg = s.usage.findSegment(containing: run.start)
                while let current = seg, s.usage.start(of: current) < run.end {
                    let isolated = s.usage.isolate(current, to: run)
                    let length = s.usage.range(of: isolated).length
                    precondition(!s.usage[isolated].knownCommitted, "MemoryFile restore: \(run) restored twice")
                    s.usage[isolated].knownCommitted = true
                    core.accounting.inc(length, s.usage[isolated].kind)
                    s.usageExpected += length
                    seg = s.usage.nextSegment(after: isolated)
                }
            }
            // Only around these runs can segments now merge.
            if let first = runs.first, let last = runs.last {
                let span = FileRange(start: first.start, end: last.end)
                s.usage.mergeRange(span)
                s.usage.mergeAdjacent(span)
            }
        }
    }
}

extension MemoryFileCore {
    func prepareForSave() throws -> (fileSize: UInt64, segments: [SegmentRecord], scan: CommittedScan) {
        waitForReclaim()
        let pending = state.withLock { s in
            checkAlive(s, "save")
            return s.evictable.count
        }
        if pending != 0 {
            throw MemoryFileError.evictionsPending(users: pending)
        }

        // What the block count says is committed but not known to be.
        let (current, expected, canCommitBytes) = try state.withLock { (s: inout MemoryFileState) throws -> (UInt64, UInt64, UInt64) in
            var bytes: UInt64 = 0
            s.usage.forEachSegment { range, info in
                if info.canCommit {
                    bytes += range.length
                }
            }
            return (try totalUsage(), s.usageExpected, bytes)
        }
        var scan = CommittedScan.none
        if current > expected && canCommitBytes > 0 {
            // mincore costs per page of the range, SEEK_DATA per extent of
            // data: prefer SEEK_DATA when the range dwarfs the data.
            if canCommitBytes / 16 > current - expected {
                try markDataCommittedBySeeking()
                scan = .seekData
            } else {
                state.withLock { $0.usageLast = monotonicNanoseconds() }
                try updateUsageByScanning(currentUsage: current, checkCommitted: residency)
                scan = .mincore
                let (after, known) = try state.withLock { (s: inout MemoryFileState) throws -> (UInt64, UInt64) in
                    (try totalUsage(), s.usageExpected)
                }
                if after > known {
                    // Pages mincore cannot see: swapped ones.
                    try markDataCommittedBySeeking()
                    scan = .mincoreThenSeekData
                }
            }
        }
        // Account whatever is still unexplained as swapped system memory,
        // as updateUsage does, from a count taken now that reclaim is idle.
        // Also when nothing was scanned: swap accounted by an earlier
        // updateUsage may stand for freed pages the reclaimer has taken
        // back since, and the accounting a checkpoint records (and the
        // source keeps) must not carry it.
        try state.withLock { (s: inout MemoryFileState) throws in
            adjustSwap(&s, currentUsage: try totalUsage())
        }

        let layout = state.withLock { s -> (UInt64, [SegmentRecord]) in
            var segments: [SegmentRecord] = []
            s.usage.forEachSegment { range, info in
                if let last = segments.last, last.range.end == range.start, last.kind == info.kind, last.refs == info.refs {
                    segments[segments.count - 1].range.end = range.end
                } else {
                    segments.append(SegmentRecord(range: range, refs: info.refs, kind: info.kind))
                }
            }
            return (s.fileSize, segments)
        }
        return (layout.0, layout.1, scan)
    }

    /// Finds the data extents (SEEK_DATA/SEEK_HOLE) of every allocated range
    /// not known committed, and marks them known committed.
    private func markDataCommittedBySeeking() throws {
        var cursor: UInt64 = 0
        while true {
            guard let r = nextCommittableRange(from: cursor) else { return }
            var extents: [FileRange] = []
            var offset = r.start
            while offset < r.end {
                guard let data = try SparseFile.nextData(fd, from: offset), data < r.end else { break }
                let hole = try SparseFile.nextHole(fd, from: data) ?? r.end
                extents.append(FileRange(start: data, end: min(hole, r.end)))
                offset = hole
            }
            if !extents.isEmpty {
                state.withLock { s in
                    for e in extents {
                        markCommittedLocked(&s, e)
                    }
                    mergeMarkedLocked(&s, r)
                }
            }
            cursor = r.end
        }
    }

    func installRestoredLayout(fileSize: UInt64, segments: [SegmentRecord], committed: [FileRange]) throws {
        var starts: [UInt64] = []
        var ends: [UInt64] = []
        var infos: [UsageInfo] = []
        var committedBytes = MemoryStats()
        var run = 0
        // Each segment, cut where the committed runs start and end.
        for segment in segments {
            var at = segment.range.start
            while at < segment.range.end {
                while run < committed.count && committed[run].end <= at {
                    run += 1
                }
                var end = segment.range.end
                var isCommitted = false
                if run < committed.count && committed[run].start <= at {
                    end = min(end, committed[run].end)
                    isCommitted = true
                } else if run < committed.count && committed[run].start < end {
                    end = committed[run].start
                }
                precondition(!isCommitted || segment.refs > 0, "MemoryFile restore: committed pages \(committed[run]) in a freed segment")
                starts.append(at)
                ends.append(end)
                infos.append(UsageInfo(kind: segment.kind, knownCommitted: isCommitted, refs: segment.refs))
                if isCommitted {
                    committedBytes[segment.kind] += end - at
                }
                at = end
            }
        }
        let usage = try UsageSet(importing: SegmentDataSlices(starts: starts, ends: ends, values: infos))
        let wake = try state.withLock { (s: inout MemoryFileState) throws -> Bool in
            checkAlive(s, "restore")
            precondition(s.usage.isEmpty && s.fileSize == 0, "MemoryFile restore: the file is not new")
            if fileSize > 0 {
                try growFile(&s, toCover: fileSize)
            }
            s.usage = usage
            s.usage.mergeAll()
            for kind in MemoryKind.allCases where committedBytes[kind] > 0 {
                accounting.inc(committedBytes[kind], kind)
                s.usageExpected += committedBytes[kind]
            }
            var freed = false
            for segment in segments where segment.refs == 0 {
                s.pendingReclaim.append(segment.range)
                freed = true
            }
            return freed && noteFreedLocked(&s)
        }
        if wake {
            state.signal(reclaimCond)
        }
    }
}
