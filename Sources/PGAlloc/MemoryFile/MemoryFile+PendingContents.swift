import Synchronization

// Contents that are still arriving: a lazy restore returns a MemoryFile
// whose stored pages are loaded in the background. The file knows them
// only through `PendingContents`, which the loader implements: operations
// that read or write page contents wait for the pages they touch, and
// operations that discard pages (decRef to zero, decommit) drop them from
// what is still to load. Once everything is loaded the file forgets the
// loader, and these checks cost one atomic load.

/// Pages of a MemoryFile whose contents are still to be written into it.
///
/// The loader takes no lock of the MemoryFile: the MemoryFile may call
/// `drop` with its state lock held (its lock is then the outer one).
package protocol PendingContents: AnyObject, Sendable {
    /// Returns once every page of `range` that is still to load is loaded,
    /// loading the frames that hold them first.
    ///
    /// - Throws: the error of a frame that could not be loaded (its pages
    ///   hold no valid contents).
    func waitUntilLoaded(_ range: FileRange) throws
    /// The pages of `range` no longer need their saved contents (they are
    /// freed or decommitted): never write them. Returns once no write to
    /// them is in progress, with the stored pages of `range` that were
    /// still to load (the file accounted them in advance and must give
    /// that back).
    ///
    /// Called with the MemoryFile's state lock held.
    func drop(_ range: FileRange) -> [FileRange]
    /// Returns once everything is loaded (or failed).
    func waitUntilLoaded() throws
    /// How far loading has got.
    var progress: ContentLoadProgress { get }
    /// Stops loading; returns once nothing touches the file any more.
    func cancel()
}

/// How far the background loading of a lazily restored file has got.
public struct ContentLoadProgress: Sendable, Hashable {
    /// Frames loaded (or dropped because their pages were freed), out of
    /// `framesTotal`.
    public var framesDone: Int
    public var framesTotal: Int
    /// Bytes of page data written into the file, out of `bytesTotal` (the
    /// bytes stored in the checkpoint, less those dropped).
    public var bytesLoaded: UInt64
    public var bytesTotal: UInt64
    /// Frames that could not be loaded (checksum, decompression or read
    /// failures): their pages hold no valid data.
    public var framesFailed: Int

    public init(framesDone: Int, framesTotal: Int, bytesLoaded: UInt64, bytesTotal: UInt64, framesFailed: Int) {
        self.framesDone = framesDone
        self.framesTotal = framesTotal
        self.bytesLoaded = bytesLoaded
        self.bytesTotal = bytesTotal
        self.framesFailed = framesFailed
    }

    /// Whether nothing is left to load.
    public var isComplete: Bool { framesDone + framesFailed == framesTotal }
}

/// The loader a MemoryFile waits for, if any. `active` is read on every
/// access to page contents; the loader itself only when it is set.
final class PendingContentsSlot: @unchecked Sendable {
    private let active = Atomic<Bool>(false)
    private let lock = StateLock<PendingContents?>(nil)

    /// The loader, while there is one.
    @inline(__always)
    var current: PendingContents? {
        guard active.load(ordering: .acquiring) else { return nil }
        return lock.withLock { $0 }
    }

    func attach(_ pending: PendingContents) {
        lock.withLock { slot in
            precondition(slot == nil, "MemoryFile: a second loader attached")
            slot = pending
        }
        active.store(true, ordering: .releasing)
    }

    /// Forgets the loader; returns it.
    func detach() -> PendingContents? {
        active.store(false, ordering: .releasing)
        return lock.withLock { slot in
            let p = slot
            slot = nil
            return p
        }
    }
}

extension MemoryFile {
    /// Whether the file is still loading contents in the background (a lazy
    /// restore).
    public var isLoading: Bool { core.pendingContents.current != nil }

    /// How far the background loading has got; nil if the file has nothing
    /// to load.
    public var loadProgress: ContentLoadProgress? { core.pendingContents.current?.progress }

    /// Returns once every page is loaded; returns at once for a file that
    /// was not lazily restored. After it returns, the file's pages may be
    /// read through its descriptor too.
    ///
    /// - Throws: the error of a frame that could not be loaded.
    public func waitUntilLoaded() throws {
        guard let pending = core.pendingContents.current else { return }
        try pending.waitUntilLoaded()
        // Fully loaded without a failure: nothing to wait for any more.
        if pending.progress.framesFailed == 0 {
            core.detachPendingContents(ifIs: pending)
        }
    }

    /// Attaches the loader of a lazy restore: from now on, operations on
    /// page contents wait for it.
    package func attachPendingContents(_ pending: PendingContents) {
        core.pendingContents.attach(pending)
    }

    /// The loader finished: the file no longer waits for it.
    package func detachPendingContents(_ pending: PendingContents) {
        core.detachPendingContents(ifIs: pending)
    }

    /// A frame's pages are written: marks the pages `wanted()` returns
    /// (asked under the state lock, so that no drop comes between) known
    /// committed; they were accounted in advance. Returns them.
    package func markPendingLoaded(_ wanted: () -> [FileRange]) -> [FileRange] {
        core.state.withLock { s in
            let runs = wanted()
            for run in runs {
                var seg = s.usage.findSegment(containing: run.start)
                while let current = seg, s.usage.start(of: current) < run.end {
                    let isolated = s.usage.isolate(current, to: run)
                    let length = s.usage.range(of: isolated).length
                    let kind = s.usage[isolated].kind
                    if !s.usage[isolated].knownCommitted {
                        s.usage[isolated].knownCommitted = true
                        s.usageExpected += length
                        core.settlePending(&s, length, kind)
                    }
                    seg = s.usage.nextSegment(after: isolated)
                }
            }
            if let first = runs.first, let last = runs.last {
                let span = FileRange(start: first.start, end: last.end)
                s.usage.mergeRange(span)
                s.usage.mergeAdjacent(span)
            }
            return runs
        }
    }

    /// Pages that were accounted in advance will never be loaded (their
    /// frame failed): gives their accounting back.
    package func releasePendingAccounting(_ ranges: [FileRange]) {
        core.state.withLock { s in
            for r in ranges {
                core.releasePendingLocked(&s, r)
            }
        }
    }

    /// Everything is loaded: whatever is left accounted in advance (a
    /// checkpoint whose per-kind totals disagreed with its frames) is given
    /// back. Returns what was left.
    package func settlePendingAccounting() -> MemoryStats {
        core.state.withLock { s in
            let left = s.pendingAccounted
            for kind in MemoryKind.allCases where left[kind] > 0 {
                core.accounting.dec(left[kind], kind)
            }
            s.pendingAccounted = MemoryStats()
            return left
        }
    }

    /// Records that a lazy restore's page at `offset` was needed (the first
    /// of its frame), for the checkpoint this file is saved to next.
    package func recordAccess(_ offset: UInt64) {
        core.accessOrder.withLock { $0.append(offset) }
    }

    /// The order recorded by `recordAccessOrder`, empty if none.
    package var recordedAccessOrder: [UInt64] {
        core.accessOrder.withLock { $0 }
    }
}

extension MemoryFileCore {
    /// Waits until the pages of `fr` hold their contents, if a loader is
    /// attached.
    @inline(__always)
    func waitForContents(_ fr: FileRange) throws {
        if let pending = pendingContents.current {
            try pending.waitUntilLoaded(fr)
        }
    }

    /// The pages of `fr` lose their contents (freed or decommitted): the
    /// loader must not write them, and the stored ones still to load give
    /// back the accounting they had in advance.
    @inline(__always)
    func dropPendingContentsLocked(_ s: inout MemoryFileState, _ fr: FileRange) {
        guard let pending = pendingContents.current else { return }
        for r in pending.drop(fr) {
            releasePendingLocked(&s, r)
        }
    }

    /// Gives back the advance accounting of the stored pages of `r`, which
    /// will never be loaded.
    func releasePendingLocked(_ s: inout MemoryFileState, _ r: FileRange) {
        var seg = s.usage.findSegment(containing: r.start)
        while let current = seg, s.usage.start(of: current) < r.end {
            let length = s.usage.range(of: current).intersection(r).length
            let kind = s.usage[current].kind
            let released = min(length, s.pendingAccounted[kind])
            s.pendingAccounted[kind] -= released
            accounting.dec(released, kind)
            seg = s.usage.nextSegment(after: current)
        }
    }

    /// `length` bytes of `kind` accounted in advance are now known
    /// committed. A checkpoint whose per-kind totals were wrong can leave
    /// too little in advance: the difference is accounted now.
    func settlePending(_ s: inout MemoryFileState, _ length: UInt64, _ kind: MemoryKind) {
        let settled = min(length, s.pendingAccounted[kind])
        s.pendingAccounted[kind] -= settled
        if settled < length {
            accounting.inc(length - settled, kind)
        }
    }

    /// Waits until every page holds its contents, if a loader is attached:
    /// for operations over the whole file.
    func waitForAllContents() throws {
        try pendingContents.current?.waitUntilLoaded()
    }

    func detachPendingContents(ifIs pending: PendingContents) {
        guard let current = pendingContents.current, current === pending else { return }
        _ = pendingContents.detach()
    }
}
