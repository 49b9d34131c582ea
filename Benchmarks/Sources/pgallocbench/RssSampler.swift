#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Samples RssAnon of /proc/self/status every 5 ms on a thread of its own
/// while a phase is open, and reports the phase's peak. VmHWM would include
/// the memfd pages mapped into the process (RssShmem); RssAnon is the
/// process's own heap and stacks: what save and restore cost beyond the
/// memory they save or restore.
final class RssSampler: @unchecked Sendable {
    private struct State {
        var active = false
        var stopping = false
        var peakKiB = -1
        var samples = 0
    }

    private let state = Mutex(State())
    private var thread = pthread_t()
    private let intervalMicroseconds: UInt32

    init(intervalMicroseconds: UInt32 = 5000) {
        self.intervalMicroseconds = intervalMicroseconds
        let box = Unmanaged.passRetained(self)
        let rc = pthread_create(&thread, nil, { arg in
            let sampler = Unmanaged<RssSampler>.fromOpaque(arg!).takeRetainedValue()
            sampler.run()
            return nil
        }, box.toOpaque())
        if rc != 0 {
            box.release()
            die("pthread_create: \(rc)")
        }
    }

    private func run() {
        while true {
            let (active, stopping) = state.withLock { ($0.active, $0.stopping) }
            if stopping {
                return
            }
            if active {
                record(procStatusKiB("RssAnon"))
            }
            usleep(intervalMicroseconds)
        }
    }

    private func record(_ kib: Int) {
        state.withLock { s in
            if s.active {
                s.peakKiB = max(s.peakKiB, kib)
                s.samples += 1
            }
        }
    }

    /// Opens a phase: the peak starts at the current RssAnon.
    func begin() {
        let now = procStatusKiB("RssAnon")
        state.withLock { s in
            s.active = true
            s.peakKiB = now
            s.samples = 1
        }
    }

    /// Closes the phase; returns its peak RssAnon (KiB) and sample count.
    func end() -> (peakKiB: Int, samples: Int) {
        record(procStatusKiB("RssAnon"))
        return state.withLock { s in
            s.active = false
            return (s.peakKiB, s.samples)
        }
    }

    /// Stops the thread and waits for it.
    func stop() {
        state.withLock { $0.stopping = true }
        pthread_join(thread, nil)
    }
}
