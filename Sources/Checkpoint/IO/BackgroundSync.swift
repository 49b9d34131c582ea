#if canImport(Glibc)
import Glibc
#endif
import PGAlloc
import SystemPackage

/// Makes a file durable on a thread of its own while its writer goes on.
///
/// On the virtual disks this project runs on, an `fsync` costs about as
/// much per byte as the disk write itself (the host flushes its own cache),
/// and `sync_file_range` does not shorten it: a 1 GiB save waited 0.36 s in
/// its final fsync. Asking for an `fdatasync` every few tens of MiB on this
/// thread, while the workers compress, leaves the final `fsync` only the
/// last bytes.
///
/// Requests never block the writer: one that comes while a sync runs is
/// served by the next sync. `finish()` waits for the thread and reports the
/// first failure: an error seen here is not seen again by a later `fsync`
/// of the same file, so it must not be dropped.
final class BackgroundSync: @unchecked Sendable {
    private struct State {
        /// Requests made, and requests a sync has covered.
        var requested = 0
        var served = 0
        var stopping = false
        var failure: HostError?
    }

    private let fd: FileDescriptor
    private let name: String
    private let lock = StateLock(State())
    private let wake: StateLock<State>.Condition
    private let idle: StateLock<State>.Condition
    private var thread: HostThread?

    /// Starts the thread; `fd` must stay open until `finish()` returns.
    init(descriptor fd: FileDescriptor, name: String) throws {
        self.fd = fd
        self.name = name
        wake = lock.makeCondition()
        idle = lock.makeCondition()
        thread = try HostThread(name: "pgsnap-sync") { [self] in
            self.run()
        }
    }

    deinit {
        precondition(thread == nil, "BackgroundSync: finish() was not called before the sync was dropped")
    }

    /// Asks for a sync of everything written so far; returns at once.
    func request() {
        lock.withLock { $0.requested += 1 }
        lock.signal(wake)
    }

    /// Waits until every request so far has been served by a sync, a sync
    /// has failed, or `finish()` was called.
    func waitUntilIdle() {
        lock.withLock(waitingOn: idle) { s -> StateLock<State>.Step<Void> in
            s.served >= s.requested || s.failure != nil || s.stopping ? .done(()) : .wait
        }
    }

    /// Stops the thread once the sync under way, if any, is done (a request
    /// not yet started is dropped: the caller's own fsync covers it), and
    /// throws the first failure of any sync.
    func finish() throws {
        guard let t = thread else { return }
        lock.withLock { $0.stopping = true }
        lock.signal(wake)
        lock.broadcast(idle)
        t.join()
        thread = nil
        if let failure = lock.withLock({ $0.failure }) {
            throw failure
        }
    }

    private func run() {
        while true {
            let target = lock.withLock(waitingOn: wake) { s -> StateLock<State>.Step<Int?> in
                if s.stopping || s.failure != nil {
                    return .done(nil)
                }
                return s.requested > s.served ? .done(s.requested) : .wait
            }
            guard let target else {
                lock.broadcast(idle)
                return
            }
            let failure: HostError?
            if fdatasync(fd.rawValue) == 0 {
                failure = nil
            } else {
                // EINTR: the next request or the final fsync retries.
                failure = errno == EINTR ? nil : HostError.last("fdatasync \(name)")
            }
            lock.withLock { s in
                s.served = target
                if s.failure == nil {
                    s.failure = failure
                }
            }
            lock.broadcast(idle)
        }
    }
}
