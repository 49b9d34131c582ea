// What the scheduler did to the calling thread, so that a timed loop can
// say how much of its wall time it spent running: on this shared 2-vCPU
// machine a short loop that shares its CPU with another runnable thread
// takes about twice as long, without executing one instruction more.
//
// The loop's own figures are its wall time (loop_s) and the thread's CPU
// time over the same stretch (loop_run_s, read right next to the wall
// clock); their difference is time the loop did not run. The counters
// (wait, preemptions, migrations) are read around those clock reads, and
// the CPU-time read is a system call, a place where a preemption that
// fell due during the set-up takes effect: loop_wait_s may include a wait
// just before or after the loop.

#if canImport(Glibc)
import Glibc
#endif

/// The calling thread's scheduler counters (Linux, /proc/thread-self).
struct ThreadSchedule {
    /// Time spent runnable but waiting for a CPU, ns (schedstat, field 2).
    var waitNanoseconds: UInt64 = 0
    /// Times the thread was preempted.
    var involuntarySwitches: UInt64 = 0
    /// Times it moved to another CPU.
    var migrations: UInt64 = 0
    /// The CPU it last ran on.
    var cpu: Int32 = -1
    /// False if the counters could not be read.
    var valid = false

    /// The counters before a timed loop: the wait counter read last, so
    /// that a wait while the others are read is not counted in the loop.
    static func beforeLoop() -> ThreadSchedule {
        snapshot(waitFirst: false)
    }

    /// The counters after a timed loop: the wait counter read first.
    static func afterLoop() -> ThreadSchedule {
        snapshot(waitFirst: true)
    }

    private static func snapshot(waitFirst: Bool) -> ThreadSchedule {
        var s = ThreadSchedule()
        var stat = waitFirst ? readSmallFile("/proc/thread-self/schedstat") : nil
        guard let sched = readSmallFile("/proc/thread-self/sched"),
            let procStat = readSmallFile("/proc/thread-self/stat")
        else {
            return s
        }
        if !waitFirst {
            stat = readSmallFile("/proc/thread-self/schedstat")
        }
        // Field 39 of stat, "processor"; fields are counted from 1, and the
        // second (the name, in parentheses) may hold spaces.
        if let close = procStat.lastIndex(of: ")") {
            let rest = procStat[procStat.index(after: close)...].split(separator: " ")
            if rest.count > 36, let cpu = Int32(rest[36]) {
                s.cpu = cpu
            }
        }
        guard let fields = stat?.split(separator: " "), fields.count >= 2, let wait = UInt64(fields[1]) else {
            return s
        }
        s.waitNanoseconds = wait
        s.involuntarySwitches = field(sched, "nr_involuntary_switches") ?? 0
        s.migrations = field(sched, "se.nr_migrations") ?? 0
        s.valid = true
        return s
    }

    /// Adds what happened between `start` and `end` to a result line, as
    /// `<prefix>_run_s` (the thread's CPU time, `run` nanoseconds, taken
    /// next to the wall clock: reading the counters costs tens of µs),
    /// `_wait_s`, `_preempted`, `_migrations` and the CPUs at both ends.
    static func record(
        _ r: inout ResultLine, _ prefix: String, run: UInt64, from start: ThreadSchedule, to end: ThreadSchedule
    ) {
        r.set("\(prefix)_run_s", nanoseconds: run)
        guard start.valid && end.valid else {
            for key in ["wait_s", "preempted", "migrations", "cpus"] {
                r.set("\(prefix)_\(key)", "NA")
            }
            return
        }
        r.set("\(prefix)_wait_s", nanoseconds: end.waitNanoseconds &- start.waitNanoseconds)
        r.set("\(prefix)_preempted", end.involuntarySwitches &- start.involuntarySwitches)
        r.set("\(prefix)_migrations", end.migrations &- start.migrations)
        r.set("\(prefix)_cpus", "\(start.cpu),\(end.cpu)")
    }

    /// The calling thread's CPU time in nanoseconds
    /// (CLOCK_THREAD_CPUTIME_ID: schedstat's own figure is brought up to
    /// date only at ticks and switches).
    static func cpuNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// The number after `name` and a colon on a line of /proc/.../sched.
    private static func field(_ text: String, _ name: String) -> UInt64? {
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let value = line[line.index(after: colon)...].filter { $0 != " " }
            return UInt64(value.split(separator: ".").first ?? "")
        }
        return nil
    }

    /// A small /proc file, read to its end (they report size 0).
    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            return nil
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 {
                return n == 0 ? String(decoding: bytes, as: UTF8.self) : nil
            }
            bytes.append(contentsOf: buffer[0..<n])
        }
    }
}
