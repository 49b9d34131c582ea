#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Samples RssAnon of /proc/self/status every 5 ms on a thread of its own
/// while a phase is open, and reports the phase's peak. VmHWM would include
/// the memfd pages mapped into the process (RssShmem); RssAnon is the
/// process's own heap and stacks: what save and restore cost beyond the
/// memory they save or restore.
public final class RssSampler: @unchecked Sendable {
    private struct State {
        var active = false
        var stopping = false
        var peakKiB = -1
        var samples = 0
    }

    private let state = Mutex(State())
    private var thread = pthread_t()
    private let intervalMicroseconds: UInt32

    public init(intervalMicroseconds: UInt32 = 5000) {
        self.intervalMicroseconds = intervalMicroseconds
        let box = Unmanaged.passRetained(self)
        let rc = pthread_create(&thread, nil, { arg in
            let sampler = Unmanaged<RssSampler>.fromOpaque(arg!).takeRetainedValue()
            sampler.run()
            return nil
        }, box.toOpaque())
        if rc != 0 {
            box.release()
            fatalError("RssSampler: pthread_create: \(rc)")
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
    public func begin() {
        let now = procStatusKiB("RssAnon")
        state.withLock { s in
            s.active = true
            s.peakKiB = now
            s.samples = 1
        }
    }

    /// Closes the phase; returns its peak RssAnon (KiB) and sample count.
    public func end() -> (peakKiB: Int, samples: Int) {
        record(procStatusKiB("RssAnon"))
        return state.withLock { s in
            s.active = false
            return (s.peakKiB, s.samples)
        }
    }

    /// Stops the thread and waits for it.
    public func stop() {
        state.withLock { $0.stopping = true }
        pthread_join(thread, nil)
    }
}

/// A "NNN kB" field of /proc/self/status (VmHWM, RssAnon, ...) in KiB, or
/// -1. Reads with plain syscalls into a stack buffer: the sampler thread
/// calls it every few milliseconds and must not itself allocate much.
public func procStatusKiB(_ field: String) -> Int {
    let fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC)
    if fd < 0 {
        return -1
    }
    defer { close(fd) }
    return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 8192) { buf -> Int in
        var len = 0
        while len < buf.count {
            let n = read(fd, buf.baseAddress! + len, buf.count - len)
            if n <= 0 {
                break
            }
            len += n
        }
        let key = Array(field.utf8) + [UInt8(ascii: ":")]
        var i = 0
        while i < len {
            // i is at the start of a line.
            var match = i + key.count <= len
            if match {
                for k in 0..<key.count where buf[i + k] != key[k] {
                    match = false
                    break
                }
            }
            if match {
                var j = i + key.count
                while j < len && (buf[j] == 0x20 || buf[j] == 0x09) {
                    j += 1
                }
                var v = 0
                while j < len && buf[j] >= 0x30 && buf[j] <= 0x39 {
                    v = v * 10 + Int(buf[j] - 0x30)
                    j += 1
                }
                return v
            }
            while i < len && buf[i] != 0x0A {
                i += 1
            }
            i += 1
        }
        return -1
    }
}
