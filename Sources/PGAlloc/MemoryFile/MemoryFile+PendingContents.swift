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
    /// them is in progress.
    func drop(_ range: FileRange)
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
    /// loader must not write them.
    @inline(__always)
    func dropPendingContents(_ fr: FileRange) {
        pendingContents.current?.drop(fr)
    }

    func detachPendingContents(ifIs pending: PendingContents) {
        guard let current = pendingContents.current, current === pending else { return }
        _ = pendingContents.detach()
    }
}
