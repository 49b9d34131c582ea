#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import Logging
import Synchronization

// The locks of PGAlloc, outermost first: a thread holding one takes only
// locks listed after it.
//
// 1. `MemoryFileCore.state`, the lock of `MemoryFileState`. Its conditions
//    are waited on with no other lock held.
// 2. `ChunkMappings`' lock, taken under the state lock to grow the table
//    (`growFile`), to map a chunk when `allocate` zeroes pages by hand
//    (with `manualZeroing`, or when `reclaimPendingLocked` cannot punch a
//    hole) and to unmap every chunk after destroy (`releaseAfterDestroy`).
// 3. `MemoryAccounting`'s lock, taken under the state lock wherever pages
//    change account. Several files may share one accounting; no thread
//    ever holds two files' state locks.
//
// Leaves, never held while another lock is taken: ChunkMappings' lock and
// MemoryAccounting's (so neither is nested in the other), and
// `MemoryFileCore.threads`, which init and destroy take with no other lock
// held. `MemoryPressureNotifier` has no lock; its listener thread runs a
// callback that takes the state lock, so the listener, like the
// reclaimer, is stopped and joined with no lock held. Callers' code
// (`EvictableMemoryUser.evict`, `allocateAndFill`'s `read`, the bodies
// of `mapInternal` and `forEachMappedSlice`) runs with no lock of PGAlloc
// held and may call back in. Log messages may be written under the state
// lock: a log handler must not call into the MemoryFile.

/// A page allocator over one memory file (a memfd): hands out page ranges of
/// the file with reference counts, takes freed ranges back in the
/// background, and accounts committed memory per kind. A port of gVisor's
/// `pgalloc.MemoryFile`.
///
/// Every page of the file is *committed* (the host spends memory on it,
/// swapped or not) or *uncommitted* (it reads as zero and costs nothing).
/// Reading or writing an uncommitted page commits it; `decommit` and the
/// reclaimer punch holes to uncommit. Which pages are committed is learned
/// from the host (`updateUsage`), not tracked by faulting.
///
/// Every method may be called from any thread. Broken preconditions (a
/// misaligned range, a `decRef` of free pages) trap with a message naming
/// the call, the range and the usage set; failures of the host throw
/// `HostError`.
///
/// Dropping the last reference destroys the file, as `destroy()` does.
public final class MemoryFile: @unchecked Sendable, CustomStringConvertible {
    let core: MemoryFileCore

    /// Creates a MemoryFile over a new memfd.
    ///
    /// - Throws: `HostError` if the memfd cannot be created or the reclaimer
    ///   thread started; `MemoryFileError.pressureNotificationUnavailable`
    ///   if host memory-pressure notification was asked for and is missing.
    public convenience init(options: MemoryFileOptions = MemoryFileOptions()) throws {
        let fd = try OwnedFileDescriptor.memfd(name: options.name)
        try self.init(adopting: fd, options: options)
    }

    /// Creates a MemoryFile over a file the caller gives up: the file is
    /// truncated to zero bytes first. The seed's `NewMemoryFile`.
    public init(adopting file: consuming OwnedFileDescriptor, options: MemoryFileOptions = MemoryFileOptions()) throws {
        core = try MemoryFileCore(file: file, options: options)
    }

    deinit {
        core.destroy()
    }

    /// The options in effect (`.default` eviction resolved).
    public var options: MemoryFileOptions { core.options }

    /// The per-kind accounting this file charges.
    public var accounting: MemoryAccounting { core.accounting }

    /// The backing file's descriptor. Owned by the MemoryFile: do not close
    /// it; valid until `destroy()`.
    public var fileDescriptor: Int32 { core.fd }

    /// The usage set, one line per segment.
    public var description: String {
        core.state.withLock { $0.usage.description }
    }

    /// Releases the file, its mappings and its threads. Returns once the
    /// reclaimer has stopped.
    ///
    /// - Precondition: every allocated page has been freed (not checked,
    ///   as in the seed); no method is called afterwards.
    ///
    /// - Note: gVisor MemoryFile.Destroy.
    public func destroy() {
        core.destroy()
    }
}

/// The state the seed marks "protected by mu".
struct MemoryFileState: ~Copyable {
    /// Every page in use or waiting for the reclaimer; maximally merged
    /// (markReclaimed relies on it). Pages with no segment are free and
    /// uncommitted.
    var usage = UsageSet()

    /// Bytes of file blocks the usage set accounts as known committed; when
    /// it matches the file's block count, a usage scan can be skipped.
    var usageExpected: UInt64 = 0
    /// Bytes the file holds beyond what the usage set accounts, assumed
    /// swapped; accounted as `.system`.
    var usageSwapped: UInt64 = 0
    /// Monotonic time (ns) of the start of the last usage scan; 0 if none.
    var usageLast: UInt64 = 0

    /// The size of the file: a power-of-two multiple of the chunk size, or 0.
    var fileSize: UInt64 = 0

    /// A lazy restore's stored pages still to load, per kind: accounted
    /// already (the file's accounting is in place from the start), but not
    /// yet known committed. The accounting equals the known-committed
    /// segments plus these. Zero once everything is loaded.
    var pendingAccounted = MemoryStats()

    /// Set by destroy; tells the reclaimer to release everything and stop.
    var destroyed = false

    /// True if `pendingReclaim` may hold ranges to reclaim.
    var reclaimable = false
    /// Freed ranges (refs 0) waiting for the reclaimer, in the order they
    /// were freed. The seed keeps them in a reclaim set; freeing only
    /// appends here, and the reclaimer orders and joins what it takes in a
    /// reclaim set of its own, off the lock.
    var pendingReclaim: [FileRange] = []
    /// An empty array with capacity, swapped with `pendingReclaim` when the
    /// reclaimer takes it, so that the pending list keeps its capacity
    /// from batch to batch.
    var spareReclaim: [FileRange] = []
    /// The ranges the reclaimer took out of `pendingReclaim`; those from
    /// `reclaimInFlightMarked` on are still being decommitted.
    var reclaimInFlight: [FileRange] = []
    /// How many of `reclaimInFlight` are reclaimed already.
    var reclaimInFlightMarked = 0
    /// Whether the reclaimer sleeps on `reclaimCond` (rather than working
    /// or spinning), so that freeing pages must wake it.
    var reclaimerSleeping = false
    /// Whether the reclaimer already let frees accumulate once before its
    /// next batch.
    var reclaimBatchDeferred = false
    /// Threads in `waitForReclaim`: while there are any, the reclaimer
    /// takes its batches at once.
    var reclaimWaiters = 0

    /// Evictable ranges, per user.
    var evictable: [ObjectIdentifier: EvictableUserInfo] = [:]
    /// Eviction threads running.
    var evictionsRunning = 0

    /// The memfd; closed by destroy.
    var file: OwnedFileDescriptor?
}

/// The allocator itself. Background threads (the reclaimer, eviction
/// workers, the pressure listener) hold the core, not the public
/// `MemoryFile`, so that dropping the last `MemoryFile` can destroy it.
final class MemoryFileCore: @unchecked Sendable {
    let options: MemoryFileOptions
    let accounting: MemoryAccounting
    /// The memfd's number, for lock-free use; valid until destroy.
    let fd: Int32
    let state: StateLock<MemoryFileState>
    let mappings = ChunkMappings()
    /// The loader of a lazy restore, while contents are still arriving.
    let pendingContents = PendingContentsSlot()
    /// The order in which a lazy restore's pages were first needed (file
    /// offsets): the next save stores it as its prefetch order. A leaf
    /// lock.
    let accessOrder = StateLock<[UInt64]>([])
    /// Counts frees (and destroy), so that the reclaimer can watch for work
    /// without the lock while it spins before sleeping.
    let reclaimEvents = Atomic<UInt64>(0)
    let logger = Logger(label: "PGAlloc.MemoryFile")

    /// Signaled when `reclaimable` or `destroyed` turns true.
    let reclaimCond: StateLock<MemoryFileState>.Condition
    /// Signaled when the reclaimer runs out of work.
    let reclaimIdleCond: StateLock<MemoryFileState>.Condition
    /// Signaled when `evictionsRunning` drops to 0.
    let evictionsDoneCond: StateLock<MemoryFileState>.Condition

    private let threads = StateLock<(reclaimer: HostThread?, pressure: MemoryPressureNotifier?, destroyed: Bool)>(
        (nil, nil, false))

    init(file: consuming OwnedFileDescriptor, options requested: MemoryFileOptions) throws {
        var options = requested
        switch options.delayedEviction {
        case .default:
            options.delayedEviction = .enabled
        case .disabled, .manual:
            options.useHostMemcgPressure = false
        case .enabled:
            break
        }
        self.options = options
        accounting = options.accounting ?? MemoryAccounting()

        // Start from an empty file.
        try file.truncate(to: 0)
        fd = file.rawValue
        var initial = MemoryFileState()
        initial.file = consume file
        state = StateLock(initial)
        reclaimCond = state.makeCondition()
        reclaimIdleCond = state.makeCondition()
        evictionsDoneCond = state.makeCondition()

        if options.delayedEviction == .enabled && options.useHostMemcgPressure {
            let notifier: MemoryPressureNotifier
            do {
                notifier = try MemoryPressureNotifier(
                    cgroupDirectory: options.memoryCgroupDirectory, level: .low
                ) { [weak self] in
                    guard let self else { return }
                    let startedAny = self.state.withLock { self.startEvictionsLocked(&$0) }
                    if startedAny {
                        self.logger.debug("MemoryFile evicting because of memory-cgroup pressure")
                    }
                }
            } catch let unavailable as MemoryPressureUnavailable {
                // The host layer's error, as this module's users know it.
                throw MemoryFileError.pressureNotificationUnavailable(unavailable.tried)
            }
            threads.withLock { $0.pressure = notifier }
        }

        let reclaimer = try HostThread(name: "pgalloc-reclaim") { [self] in
            self.runReclaim()
        }
        threads.withLock { $0.reclaimer = reclaimer }

        workAroundIMA()
    }

    /// The kernel's Integrity Measurement Architecture, if enabled,
    /// checksums a file the first time it is mapped executable, committing
    /// every page of it; the file may grow to terabytes. Mapping it
    /// executable once now, while it is empty, makes IMA ignore later
    /// mappings. A failure is only logged: IMA may not be in use at all.
    private func workAroundIMA() {
        let p = mmap(nil, Int(PageSize.base), PROT_EXEC, MAP_SHARED, fd, 0)
        if p == MAP_FAILED || p == nil {
            logger.warning("MemoryFile: cannot pre-map the file PROT_EXEC: \(HostError.last("mmap"))")
            return
        }
        if munmap(p, Int(PageSize.base)) != 0 {
            fatalError("MemoryFile: cannot unmap the PROT_EXEC mapping: \(HostError.last("munmap"))")
        }
    }

    /// Marks the file destroyed and waits for the reclaimer to release it.
    /// A loader still writing contents is stopped first.
    func destroy() {
        pendingContents.detach()?.cancel()
        let reclaimer: HostThread? = threads.withLock { t in
            if t.destroyed {
                return nil
            }
            t.destroyed = true
            return t.reclaimer
        }
        guard let reclaimer else { return }
        state.withLock { $0.destroyed = true }
        reclaimEvents.add(1, ordering: .releasing)
        state.signal(reclaimCond)
        reclaimer.join()
        // Stopped without holding the state lock: the listener's callback
        // takes it.
        let pressure = threads.withLock { t in
            let p = t.pressure
            t.pressure = nil
            return p
        }
        pressure?.stop()
    }

    /// Traps if the file was destroyed.
    @inline(__always)
    func checkAlive(_ s: borrowing MemoryFileState, _ call: @autoclosure () -> String) {
        precondition(!s.destroyed, "MemoryFile.\(call()): called after destroy")
    }
}

/// Monotonic time in nanoseconds.
package func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Traps unless `fr` is a well-formed, non-empty, page-aligned range.
@inline(__always)
func checkPageRange(_ fr: FileRange, _ call: @autoclosure () -> String) {
    precondition(
        fr.isWellFormed && !fr.isEmpty && fr.isAligned(to: PageSize.base),
        "MemoryFile.\(call())(\(fr)): invalid range: must be non-empty and page-aligned")
}
