#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim

/// A host thread running one closure, which can be joined.
///
/// The reclaimer, eviction workers and the memory-pressure listener run on
/// these, as the seed runs them on goroutines; so do the checkpoint
/// pipelines.
package final class HostThread: @unchecked Sendable {
    private var thread = pthread_t()
    private let lock = StateLock(false)
    private let finished: StateLock<Bool>.Condition

    private final class Box {
        let name: String
        let body: () -> Void
        let owner: HostThread
        init(name: String, body: @escaping () -> Void, owner: HostThread) {
            self.name = name
            self.body = body
            self.owner = owner
        }
    }

    /// Starts `body` on a new thread named `name` (at most 15 bytes are
    /// shown by the host).
    package init(name: String, _ body: @escaping @Sendable () -> Void) throws(HostError) {
        finished = lock.makeCondition()
        let box = Unmanaged.passRetained(Box(name: name, body: body, owner: self))
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        let rc = pthread_create(&thread, &attr, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            pg_set_thread_name(String(box.name.prefix(15)))
            box.body()
            box.owner.lock.withLock { $0 = true }
            box.owner.lock.broadcast(box.owner.finished)
            return nil
        }, box.toOpaque())
        if rc != 0 {
            box.release()
            throw HostError("pthread_create", errno: rc)
        }
    }

    /// Whether the thread's body has returned.
    package var isFinished: Bool {
        lock.withLock { $0 }
    }

    /// Waits until the body returns and releases the thread. Call at most
    /// once, and not from the thread itself.
    package func join() {
        pthread_join(thread, nil)
    }

    /// Lets the thread release itself when it ends; it can no longer be
    /// joined.
    package func detach() {
        pthread_detach(thread)
    }

    /// Waits up to `timeoutNanoseconds` for the body to return; returns
    /// whether it did.
    package func waitUntilFinished(timeoutNanoseconds: UInt64) -> Bool {
        lock.withLock(waitingOn: finished, timeoutNanoseconds: timeoutNanoseconds) { done in
            done ? .done(true) : .wait
        } ?? false
    }
}
