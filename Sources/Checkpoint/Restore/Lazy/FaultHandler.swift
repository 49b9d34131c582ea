#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import PGAlloc

/// Serves the page faults of a userfaultfd registered in missing mode over
/// memory that holds a checkpoint's address space: a lazily restored
/// MemoryFile's chunk mappings (which this registers), or a VMM's guest
/// memory regions (which the VMM registered: `pgsnap serve-uffd`).
///
/// For a MemoryFile:
/// Missing mode rather than minor: the loader writes frames into the memfd
/// with `pwrite`, which puts the pages in the page cache; an access to a
/// page that is there (loaded, or written by the user since) never faults.
/// Only pages absent from the page cache fault: pages still to load (the
/// handler asks the loader for their frame, first in line, and wakes the
/// thread once it is written), holes (answered at once with a zero page,
/// as the kernel itself would), and pages of a frame that failed (poisoned:
/// the access raises SIGBUS). Minor mode would fault on pages already in
/// the page cache instead, which is the opposite of what is needed here.
///
/// For a VMM's private anonymous memory, the loader writes each frame with
/// UFFDIO_COPY (`copy(_:at:)`), which installs the pages and wakes whoever
/// waits on them.
final class FaultHandler: LoadTarget, @unchecked Sendable {
    private let uffd: Int32
    private let stopFD: Int32
    /// Where each range of checkpoint addresses is mapped.
    private let chunks: [UffdMapping]
    private var thread: HostThread?
    /// Whether this registered the ranges (and unregisters them).
    private let ownsRegistration: Bool
    private var running = true
    /// What to do with a fault at a checkpoint address (a page), asked of
    /// the loader; runs on the handler thread.
    private let classify: @Sendable (UInt64) -> FaultAction
    /// Called with the checkpoint addresses of a range the memory's owner
    /// removed (`madvise(MADV_DONTNEED)`: a balloon), on the handler
    /// thread; the range reads as zero from then on.
    private let removed: (@Sendable (FileRange) -> Void)?
    /// Called on the handler thread when the peer is gone (the
    /// userfaultfd's memory was released).
    private let ended: (@Sendable () -> Void)?

    enum FaultAction {
        /// The page holds no saved data: give it a zero page now.
        case zero
        /// The page is loaded: wake the thread.
        case wake
        /// The page's frame is loading: the loader wakes the thread.
        case wait
        /// The page's frame failed: SIGBUS.
        case poison
    }

    /// Opens a userfaultfd with the features a lazy restore needs (missing
    /// faults on shmem, UFFDIO_POISON), or says why it cannot.
    static func openUserfaultfd() -> Result<Int32, LazyRestoreError> {
        let fd = pg_uffd_open(O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            return .failure(.userfaultfdUnavailable(HostError.last("userfaultfd").description))
        }
        var granted: UInt64 = 0
        let wanted = pg_UFFD_FEATURE_MISSING_SHMEM | pg_UFFD_FEATURE_POISON
        if pg_uffd_api(fd, wanted, &granted, nil) != 0 {
            let e = HostError.last("ioctl(UFFDIO_API)")
            close(fd)
            return .failure(.userfaultfdUnavailable(e.description))
        }
        guard granted & wanted == wanted else {
            close(fd)
            return .failure(.userfaultfdUnavailable("the kernel lacks missing-page faults on shmem or UFFDIO_POISON (Linux 6.6)"))
        }
        return .success(fd)
    }

    /// Registers every chunk of `file` on `uffd` (which this takes over)
    /// and starts the handler thread.
    convenience init(file: MemoryFile, uffd: Int32, classify: @escaping @Sendable (UInt64) -> FaultAction) throws {
        var chunks: [(UInt64, UInt64, UInt64)] = []
        do {
            try file.forEachChunkMapping { base, offset, length in
                let address = UInt64(UInt(bitPattern: base))
                guard pg_uffd_register(uffd, address, UInt64(length), pg_UFFDIO_REGISTER_MODE_MISSING, nil) == 0 else {
                    throw HostError.last("ioctl(UFFDIO_REGISTER)")
                }
                chunks.append((address, offset, UInt64(length)))
            }
        } catch {
            for c in chunks {
                _ = pg_uffd_unregister(uffd, c.0, c.2)
            }
            close(uffd)
            throw error
        }
        try self.init(
            uffd: uffd, mappings: chunks.map { (base: $0.0, offset: $0.1, length: $0.2) }, ownsRegistration: true,
            classify: classify, removed: nil, ended: nil)
    }

    /// Serves `uffd` (which this takes over), already registered over
    /// `mappings`, and starts the handler thread.
    init(
        uffd: Int32, mappings: [(base: UInt64, offset: UInt64, length: UInt64)], ownsRegistration: Bool,
        classify: @escaping @Sendable (UInt64) -> FaultAction, removed: (@Sendable (FileRange) -> Void)?,
        ended: (@Sendable () -> Void)?
    ) throws {
        self.uffd = uffd
        self.classify = classify
        self.removed = removed
        self.ended = ended
        self.ownsRegistration = ownsRegistration
        chunks = mappings
        stopFD = pg_eventfd(0, pg_EFD_CLOEXEC)
        if stopFD < 0 {
            let e = HostError.last("eventfd")
            if ownsRegistration {
                for c in mappings {
                    _ = pg_uffd_unregister(uffd, c.base, c.length)
                }
            }
            close(uffd)
            throw e
        }
        thread = try HostThread(name: "pgsnap-faults") { [self] in
            self.serve()
        }
    }

    deinit {
        stop()
        close(stopFD)
    }

    /// The mapped address of the checkpoint address `offset`.
    func address(of offset: UInt64) -> UInt64? {
        for c in chunks where offset >= c.offset && offset < c.offset + c.length {
            return c.base + (offset - c.offset)
        }
        return nil
    }

    /// The file offset of the mapped address `address`.
    private func offset(of address: UInt64) -> UInt64? {
        for c in chunks where address >= c.base && address < c.base + c.length {
            return c.offset + (address - c.base)
        }
        return nil
    }

    private func serve() {
        var events = [pg_uffd_event](repeating: pg_uffd_event(), count: 64)
        var fds = [pollfd(fd: uffd, events: Int16(POLLIN), revents: 0), pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
        while true {
            let n = poll(&fds, 2, -1)
            if n < 0 {
                if errno == EINTR { continue }
                fatalError("pgsnap: polling the userfaultfd failed: \(HostError.last("poll"))")
            }
            if fds[1].revents != 0 {
                return
            }
            if fds[0].revents & Int16(POLLHUP | POLLERR) != 0 {
                // The memory the userfaultfd served is gone.
                ended?()
                return
            }
            let count = events.withUnsafeMutableBufferPointer { pg_uffd_read_events(uffd, $0.baseAddress, Int32($0.count)) }
            if count < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                fatalError("pgsnap: reading the userfaultfd failed: \(HostError.last("read"))")
            }
            if count == 0 {
                ended?()
                return
            }
            for e in events.prefix(Int(count)) {
                switch e.event {
                case pg_UFFD_EVENT_PAGEFAULT:
                    let page = e.address & ~UInt64(4095)
                    guard let offset = offset(of: page) else { continue }
                    switch classify(offset) {
                    case .zero:
                        zero(page)
                    case .wake:
                        _ = pg_uffd_wake(uffd, page, 4096)
                    case .wait:
                        break
                    case .poison:
                        poisonPage(page)
                    }
                case pg_UFFD_EVENT_REMOVE:
                    // Whole pages only: a removal is page-aligned.
                    if let removed, let start = offset(of: e.start), let end = offset(of: e.end - 1) {
                        removed(FileRange(start: start, end: end + 1))
                    }
                default:
                    break
                }
            }
        }
    }

    private func zero(_ page: UInt64) {
        if pg_uffd_zeropage(uffd, page, 4096, nil) != 0 {
            // EEXIST: the page is there already (loaded or written since
            // the fault was raised); wake the thread to find it.
            _ = pg_uffd_wake(uffd, page, 4096)
        }
    }

    private func poisonPage(_ page: UInt64) {
        if pg_uffd_poison(uffd, page, 4096, nil) != 0 {
            _ = pg_uffd_wake(uffd, page, 4096)
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws {
        try copy(bytes, at: address)
    }

    /// Copies `bytes` into the memory at checkpoint address `offset` with
    /// UFFDIO_COPY (waking threads waiting on those pages); pages already
    /// there are left as they are.
    func copy(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        // A page there already was faulted in as zero, or copied: it stays.
        // An owner gone away has nothing left to load into.
        _ = try uffdCopy(
            uffd, bytes, at: offset, call: "ioctl(UFFDIO_COPY)",
            mapping: { at in chunks.first { at >= $0.offset && at < $0.offset + $0.length } }, existing: { _, _ in })
    }

    /// Wakes the threads waiting on the pages at these file offsets (their
    /// frame is written).
    func wake(offsets: [UInt64]) {
        for offset in offsets {
            if let a = address(of: offset) {
                _ = pg_uffd_wake(uffd, a, 4096)
            }
        }
    }

    /// Poisons the pages of `ranges` (file offsets) in the mappings, waking
    /// the threads waiting on them into a SIGBUS.
    func poison(_ ranges: [FileRange]) {
        for r in ranges {
            var at = r.start
            while at < r.end {
                guard let a = address(of: at), let c = chunks.first(where: { at >= $0.offset && at < $0.offset + $0.length }) else { break }
                let end = min(r.end, c.offset + c.length)
                if pg_uffd_poison(uffd, a, end - at, nil) != 0 {
                    // Some page is present (EEXIST): poison page by page.
                    var p = at
                    while p < end {
                        poisonPage(address(of: p)!)
                        p += 4096
                    }
                }
                at = end
            }
        }
    }

    /// Clears poison from the pages of `range` (file offsets): they were
    /// freed or decommitted, and read as zero from now on.
    func clearPoison(_ range: FileRange) {
        var at = range.start
        while at < range.end {
            guard let a = address(of: at), let c = chunks.first(where: { at >= $0.offset && at < $0.offset + $0.length }) else { break }
            let end = min(range.end, c.offset + c.length)
            _ = madvise(UnsafeMutableRawPointer(bitPattern: UInt(a)), Int(end - at), MADV_DONTNEED)
            at = end
        }
    }

    /// Unregisters the mappings it registered (access is ordinary from now
    /// on; pages still poisoned stay so) and stops the thread. Threads
    /// waiting on a fault are woken into an ordinary fault.
    func stop() {
        guard running else { return }
        running = false
        if ownsRegistration {
            for c in chunks {
                _ = pg_uffd_unregister(uffd, c.base, c.length)
            }
        }
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(stopFD, $0.baseAddress, 8) }
        thread?.join()
        thread = nil
        close(uffd)
    }
}
