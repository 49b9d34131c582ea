#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import PGAlloc

/// Catches access to a lazily restored MemoryFile's chunk mappings, with a
/// userfaultfd registered in missing mode on every chunk.
///
/// Missing mode rather than minor: the loader writes frames into the memfd
/// with `pwrite`, which puts the pages in the page cache; an access to a
/// page that is there (loaded, or written by the user since) never faults.
/// Only pages absent from the page cache fault: pages still to load (the
/// handler asks the loader for their frame, first in line, and wakes the
/// thread once it is written), holes (answered at once with a zero page,
/// as the kernel itself would), and pages of a frame that failed (poisoned:
/// the access raises SIGBUS). Minor mode would fault on pages already in
/// the page cache instead, which is the opposite of what is needed here.
final class ChunkFaultHandler: @unchecked Sendable {
    private let uffd: Int32
    private let stopFD: Int32
    private let chunks: [(base: UInt64, offset: UInt64, length: UInt64)]
    private var thread: HostThread?
    private var registered = true
    /// What to do with a fault at a file offset (a page), asked of the
    /// loader; runs on the handler thread.
    private let classify: @Sendable (UInt64) -> FaultAction

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
    init(file: MemoryFile, uffd: Int32, classify: @escaping @Sendable (UInt64) -> FaultAction) throws {
        self.uffd = uffd
        self.classify = classify
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
        self.chunks = chunks.map { (base: $0.0, offset: $0.1, length: $0.2) }
        stopFD = pg_eventfd(0, pg_EFD_CLOEXEC)
        if stopFD < 0 {
            let e = HostError.last("eventfd")
            for c in chunks {
                _ = pg_uffd_unregister(uffd, c.0, c.2)
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

    /// The mapped address of the page at file offset `offset`.
    private func address(of offset: UInt64) -> UInt64? {
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
            let count = events.withUnsafeMutableBufferPointer { pg_uffd_read_events(uffd, $0.baseAddress, Int32($0.count)) }
            if count < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                fatalError("pgsnap: reading the userfaultfd failed: \(HostError.last("read"))")
            }
            for e in events.prefix(Int(count)) where e.event == pg_UFFD_EVENT_PAGEFAULT {
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

    /// Unregisters the mappings (access is ordinary from now on; pages
    /// still poisoned stay so) and stops the thread. Threads waiting on a
    /// fault are woken into an ordinary fault.
    func stop() {
        guard registered else { return }
        registered = false
        for c in chunks {
            _ = pg_uffd_unregister(uffd, c.base, c.length)
        }
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(stopFD, $0.baseAddress, 8) }
        thread?.join()
        thread = nil
        close(uffd)
    }
}
