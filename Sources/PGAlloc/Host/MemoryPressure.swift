#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import SystemPackage

/// The host offers no way to be told of memory pressure on a cgroup.
struct MemoryPressureUnavailable: Error {
    /// Each file looked at and why it cannot serve, joined by "; ".
    var tried: String
}

/// Calls back when the host reports memory pressure on a memory cgroup.
///
/// Two mechanisms, whichever the cgroup has:
/// - cgroup v1: an eventfd registered through `cgroup.event_control` on the
///   cgroup's `memory.pressure_level` (the seed's
///   `hostmm.NotifyCurrentMemcgPressureCallback`);
/// - cgroup v2: a PSI trigger written to the cgroup's `memory.pressure` (or
///   the system's `/proc/pressure/memory`), polled for `POLLPRI`.
///
/// A listener thread waits for events and runs the callback; `stop()` ends
/// it.
final class MemoryPressureNotifier: @unchecked Sendable {
    /// The pressure worth reacting to.
    enum Level: String {
        /// The host is reclaiming memory (v1 "low"; v2: tasks stalled on
        /// memory for 7% of the time).
        case low
        /// The host is swapping or reclaiming hard (v1 "medium"; v2: 15%).
        case medium
        /// The host is close to OOM (v1 "critical"; v2: 50%, all tasks
        /// stalled).
        case critical

        /// Over a 2 s window: without CAP_SYS_RESOURCE (in most
        /// containers, even as root) the kernel only accepts windows that
        /// are multiples of 2 s, and rejects others with EINVAL.
        var psiTrigger: String {
            switch self {
            case .low: "some 140000 2000000"
            case .medium: "some 300000 2000000"
            case .critical: "full 1000000 2000000"
            }
        }
    }

    /// Which mechanism is in use, and on what file.
    enum Mechanism: Equatable, CustomStringConvertible {
        case cgroupV1(pressureLevel: String)
        case psi(pressureFile: String)

        var description: String {
            switch self {
            case .cgroupV1(let path): "cgroup v1 \(path)"
            case .psi(let path): "PSI trigger on \(path)"
            }
        }
    }

    let mechanism: Mechanism
    private let thread: HostThread
    private let stopFD: Int32
    private let eventFD: Int32
    private var stopped = false

    /// Starts listening on `cgroupDirectory` (the process's own memory
    /// cgroup if nil).
    ///
    /// - Throws: `MemoryPressureUnavailable` if neither mechanism is
    ///   available, naming what was tried; `HostError` if registration
    ///   fails.
    init(cgroupDirectory: String?, level: Level, callback: @escaping @Sendable () -> Void) throws {
        let (mechanism, eventFD, stopFD) = try MemoryPressureNotifier.register(cgroupDirectory: cgroupDirectory, level: level)
        self.mechanism = mechanism
        self.eventFD = eventFD
        self.stopFD = stopFD
        do {
            switch mechanism {
            case .cgroupV1:
                thread = try HostThread(name: "pgalloc-pressure") {
                    MemoryPressureNotifier.listenV1(eventFD: eventFD, callback: callback)
                }
            case .psi:
                thread = try HostThread(name: "pgalloc-pressure") {
                    MemoryPressureNotifier.listenPSI(triggerFD: eventFD, stopFD: stopFD, callback: callback)
                }
            }
        } catch {
            close(eventFD)
            if stopFD != eventFD {
                close(stopFD)
            }
            throw error
        }
    }

    deinit {
        stop()
    }

    /// Ends the listener thread and waits for it. Must not be called from
    /// the callback.
    func stop() {
        if stopped {
            return
        }
        stopped = true
        // The top bit cannot be a count of events: it means "stop".
        var value: UInt64 = 1 << 63
        _ = withUnsafeBytes(of: &value) { Glibc.write(stopFD, $0.baseAddress, 8) }
        thread.join()
        close(eventFD)
        if stopFD != eventFD {
            close(stopFD)
        }
    }

    // MARK: Registration

    private static func register(cgroupDirectory: String?, level: Level) throws -> (Mechanism, Int32, Int32) {
        var tried: [String] = []
        let v1Dir = cgroupDirectory ?? currentCgroupV1Directory(controller: "memory")
        if let dir = v1Dir {
            let path = dir + "/memory.pressure_level"
            if access(path, F_OK) == 0 {
                let efd = try registerV1(directory: dir, level: level)
                return (.cgroupV1(pressureLevel: path), efd, efd)
            }
            tried.append("\(path): absent")
        } else {
            tried.append("no cgroup v1 memory controller")
        }
        var psiFiles: [String] = []
        if let dir = cgroupDirectory ?? currentCgroupV2Directory() {
            psiFiles.append(dir + "/memory.pressure")
        }
        if cgroupDirectory == nil {
            psiFiles.append("/proc/pressure/memory")
        }
        for path in psiFiles {
            if access(path, F_OK) != 0 {
                tried.append("\(path): absent")
                continue
            }
            let fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
            if fd < 0 {
                tried.append("\(path): \(HostError.last("open"))")
                continue
            }
            let trigger = level.psiTrigger
            let written = trigger.withCString { Glibc.write(fd, $0, strlen($0) + 1) }
            if written < 0 {
                tried.append("\(path): \(HostError.last("write PSI trigger"))")
                close(fd)
                continue
            }
            let stop = pg_eventfd(0, pg_EFD_CLOEXEC)
            if stop < 0 {
                let e = HostError.last("eventfd")
                close(fd)
                throw e
            }
            return (.psi(pressureFile: path), fd, stop)
        }
        throw MemoryPressureUnavailable(tried: tried.joined(separator: "; "))
    }

    /// Registers an eventfd for `level` on the v1 cgroup in `directory`.
    private static func registerV1(directory: String, level: Level) throws(HostError) -> Int32 {
        let pressure = try OwnedFileDescriptor.open(directory + "/memory.pressure_level", flags: O_RDONLY)
        let control = try OwnedFileDescriptor.open(directory + "/cgroup.event_control", flags: O_WRONLY)
        let efd = pg_eventfd(0, pg_EFD_CLOEXEC)
        if efd < 0 {
            throw HostError.last("eventfd")
        }
        // One write: the kernel parses the whole line at once.
        let line = "\(efd) \(pressure.rawValue) \(level.rawValue)"
        let n = line.withCString { Glibc.write(control.rawValue, $0, strlen($0)) }
        if n != line.utf8.count {
            let e = n < 0 ? HostError.last("write cgroup.event_control") : HostError("write cgroup.event_control", errno: EIO)
            close(efd)
            throw e
        }
        return efd
    }

    // MARK: Listening

    private static func listenV1(eventFD: Int32, callback: () -> Void) {
        while true {
            var value: UInt64 = 0
            let n = withUnsafeMutableBytes(of: &value) { Glibc.read(eventFD, $0.baseAddress, 8) }
            if n < 0 {
                if errno == EINTR {
                    continue
                }
                fatalError("MemoryFile: reading the memory-pressure eventfd failed: \(HostError.last("read"))")
            }
            if value >= 1 << 63 {
                return
            }
            callback()
        }
    }

    private static func listenPSI(triggerFD: Int32, stopFD: Int32, callback: () -> Void) {
        var fds = [
            pollfd(fd: triggerFD, events: Int16(POLLPRI), revents: 0),
            pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            let n = poll(&fds, 2, -1)
            if n < 0 {
                if errno == EINTR {
                    continue
                }
                fatalError("MemoryFile: polling the PSI trigger failed: \(HostError.last("poll"))")
            }
            if fds[1].revents != 0 {
                return
            }
            if fds[0].revents & Int16(POLLERR) != 0 {
                // The cgroup went away; no more events will come. Wait to
                // be stopped.
                fds[0].fd = -1
                continue
            }
            if fds[0].revents & Int16(POLLPRI) != 0 {
                callback()
            }
        }
    }

    // MARK: Finding the cgroup

    /// The directory of this process's cgroup v1 hierarchy for
    /// `controller`, if that controller is mounted as v1.
    static func currentCgroupV1Directory(controller: String) -> String? {
        guard let mounts = readText("/proc/self/mounts"), let groups = readText("/proc/self/cgroup") else {
            return nil
        }
        var root: String?
        for line in mounts.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count >= 4 && f[2] == "cgroup" && f[3].split(separator: ",").contains(Substring(controller)) {
                root = String(f[1])
                break
            }
        }
        guard let root else { return nil }
        for line in groups.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if f.count == 3 && f[1].split(separator: ",").contains(Substring(controller)) {
                return root + String(f[2])
            }
        }
        return nil
    }

    /// The directory of this process's cgroup v2, if a v2 hierarchy is
    /// mounted.
    static func currentCgroupV2Directory() -> String? {
        guard let mounts = readText("/proc/self/mounts"), let groups = readText("/proc/self/cgroup") else {
            return nil
        }
        var root: String?
        for line in mounts.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count >= 3 && f[2] == "cgroup2" {
                root = String(f[1])
                break
            }
        }
        guard let root else { return nil }
        for line in groups.split(separator: "\n") where line.hasPrefix("0::") {
            return root + String(line.dropFirst(3))
        }
        return nil
    }

    private static func readText(_ path: String) -> String? {
        guard let fd = try? OwnedFileDescriptor.open(path, flags: O_RDONLY) else { return nil }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { (try? fd.descriptor.readAll(into: $0)) ?? 0 }
            bytes.append(contentsOf: buffer[0..<n])
            if n < buffer.count {
                break
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
