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

    private final class Box {
        let name: String
        let body: () -> Void
        init(name: String, body: @escaping () -> Void) {
            self.name = name
            self.body = body
        }
    }

    /// Starts `body` on a new thread named `name` (at most 15 bytes are
    /// shown by the host).
    package init(name: String, _ body: @escaping @Sendable () -> Void) throws(HostError) {
        let box = Unmanaged.passRetained(Box(name: name, body: body))
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        let rc = pthread_create(&thread, &attr, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            pg_set_thread_name(String(box.name.prefix(15)))
            box.body()
            return nil
        }, box.toOpaque())
        if rc != 0 {
            box.release()
            throw HostError("pthread_create", errno: rc)
        }
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
}
