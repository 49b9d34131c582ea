// Host memory-pressure notification (DelayedEviction.enabled with
// useHostMemcgPressure): real pressure in a small memory cgroup made for
// the test starts evictions, through cgroup v1 memory.pressure_level and
// through a cgroup v2 PSI trigger; registration fails with
// pressureNotificationUnavailable on a directory with neither.
//
// The pressure comes from a child process placed in a cgroup v1 memory
// cgroup limited to 64 MiB, writing far more than that to a file on disk
// (page cache the kernel must reclaim). The test process itself stays in
// its own cgroup. Cgroups are removed afterwards, whatever happens.

import Foundation
import TestSupport
import XCTest

@testable import PGAlloc

#if canImport(Glibc)
import Glibc
#endif

/// A cgroup directory made for one test.
final class MFCgroup {
    let path: String
    private static let counter = MFLocked(0)

    /// Makes a child of `hierarchy`; skips the test if that is not
    /// possible here (no such hierarchy, not allowed).
    init(hierarchy: String, required file: String) throws {
        guard FileManager.default.fileExists(atPath: "\(hierarchy)/\(file)") else {
            throw XCTSkip("\(hierarchy)/\(file) is absent")
        }
        let n = MFCgroup.counter.withLock { value -> Int in
            value += 1
            return value
        }
        path = "\(hierarchy)/pgalloc-mftest-\(getpid())-\(n)"
        guard mkdir(path, 0o755) == 0 else {
            throw XCTSkip("cannot create the cgroup \(path): \(HostError.last("mkdir"))")
        }
    }

    func write(_ file: String, _ value: String) throws {
        try value.write(toFile: "\(path)/\(file)", atomically: false, encoding: .utf8)
    }

    /// Removes the cgroup, waiting (up to 10 s) for exited tasks to leave.
    func remove() {
        for _ in 0..<1000 {
            if rmdir(path) == 0 || errno == ENOENT {
                return
            }
            usleep(10_000)
        }
        print("MFCgroup: cannot remove \(path): \(HostError.last("rmdir"))")
    }

    /// Runs `command` with /bin/sh in every cgroup of `cgroups`, to the end;
    /// returns its exit status.
    static func run(_ command: String, in cgroups: [MFCgroup]) throws -> Int32 {
        let join = cgroups.map { "echo $$ > \($0.path)/cgroup.procs" }.joined(separator: " && ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "\(join) && exec \(command)"]
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}

final class MemoryFilePressureTests: XCTestCase {
    func testPressureNotificationUnavailable() throws {
        let dir = try ScratchDirectory(for: self).path
        let name = "pgalloc-mftest-nopressure-\(UUID().uuidString.prefix(8))"
        XCTAssertThrowsError(try mfMakeFile {
            $0.name = name
            $0.delayedEviction = .enabled
            $0.useHostMemcgPressure = true
            $0.memoryCgroupDirectory = dir
        }) { error in
            guard case .pressureNotificationUnavailable(let why)? = error as? MemoryFileError else {
                return XCTFail("expected pressureNotificationUnavailable, got \(error)")
            }
            XCTAssertTrue(why.contains("\(dir)/memory.pressure_level: absent"), why)
            XCTAssertTrue(why.contains("\(dir)/memory.pressure: absent"), why)
            XCTAssertTrue("\(error)".hasPrefix("memory-pressure notification unavailable"), "\(error)")
        }
        // The failed init left no memfd open.
        XCTAssertFalse(MFProc.openFileTargets().contains { $0.contains(name) })

        // The same directory is not consulted when pressure is not used.
        let file = try mfMakeFile {
            $0.delayedEviction = .enabled
            $0.memoryCgroupDirectory = dir
        }
        XCTAssertFalse(file.shouldCacheEvictable)
    }

    func testCgroupV1PressureStartsEvictions() throws {
        let cgroup = try MFCgroup(hierarchy: "/sys/fs/cgroup/memory", required: "memory.pressure_level")
        defer { cgroup.remove() }
        try cgroup.write("memory.limit_in_bytes", "\(64 << 20)")

        let file = try mfMakeFile {
            $0.delayedEviction = .enabled
            $0.useHostMemcgPressure = true
            $0.memoryCgroupDirectory = cgroup.path
        }
        XCTAssertTrue(file.options.useHostMemcgPressure)
        XCTAssertTrue(file.shouldCacheEvictable)
        // The listener names itself once it runs.
        XCTAssertTrue(waitFor { self.threadCount("pgalloc-pressure") >= 1 }, "no listener thread")

        let user = MFEvictionRecorder()
        user.markEvictable(mfRange(0, 1 << 20), in: file)
        user.markEvictable(mfRange(2 << 20, 3 << 20), in: file)
        // Delayed until pressure: marking starts nothing, and neither does
        // the reclaimer going idle.
        let fr = try file.allocate(mfPage, kind: .anonymous)
        file.decRef(fr)
        file.waitForReclaim()
        XCTAssertEqual(file.mfEvictionsRunning, 0)

        try pressure(until: { user.calls.count >= 2 }, cgroups: [cgroup], megabytes: 256)
        XCTAssertTrue(user.waitForCalls(2, timeoutSeconds: 10), "no eviction after memory pressure in \(cgroup.path)")
        file.waitForEvictions()
        XCTAssertEqual(user.calls, [mfRange(2 << 20, 3 << 20), mfRange(0, 1 << 20)])
        XCTAssertEqual(file.evictableUserCount, 0)
        mfAssertInvariants(file)

        // Destroy stops the listener.
        file.destroy()
        XCTAssertTrue(waitFor { self.threadCount("pgalloc-pressure") == 0 }, "the listener thread survived destroy")
    }

    func testPSIPressureStartsEvictions() throws {
        let v2 = try MFCgroup(hierarchy: "/sys/fs/cgroup/unified", required: "cgroup.procs")
        defer { v2.remove() }
        guard FileManager.default.fileExists(atPath: "\(v2.path)/memory.pressure") else {
            throw XCTSkip("no PSI in \(v2.path)")
        }
        // The memory limit comes from a v1 memory cgroup; the stalls it
        // causes show in the v2 cgroup's PSI.
        let v1 = try MFCgroup(hierarchy: "/sys/fs/cgroup/memory", required: "memory.limit_in_bytes")
        defer { v1.remove() }
        try v1.write("memory.limit_in_bytes", "\(64 << 20)")

        let pressureFile = "\(v2.path)/memory.pressure"
        let file = try mfMakeFile {
            $0.delayedEviction = .enabled
            $0.useHostMemcgPressure = true
            $0.memoryCgroupDirectory = v2.path
        }
        XCTAssertTrue(file.shouldCacheEvictable)
        XCTAssertTrue(MFProc.openFileTargets().contains(pressureFile), "the PSI trigger is not registered")

        let user = MFEvictionRecorder()
        user.markEvictable(mfRange(0, 4096), in: file)
        XCTAssertEqual(file.mfEvictionsRunning, 0)
        try pressure(until: { !user.calls.isEmpty }, cgroups: [v1, v2], megabytes: 1536)
        XCTAssertTrue(user.waitForCalls(1, timeoutSeconds: 10), "no eviction after memory stalls in \(v2.path)")
        file.waitForEvictions()
        XCTAssertEqual(user.calls, [mfRange(0, 4096)])
        mfAssertInvariants(file)

        file.destroy()
        XCTAssertFalse(MFProc.openFileTargets().contains(pressureFile), "destroy left the PSI trigger open")
        XCTAssertTrue(waitFor { self.threadCount("pgalloc-pressure") == 0 })
    }

    // MARK: Helpers

    /// Writes `megabytes` of page cache from a child in `cgroups`, up to
    /// three times, until `done()`.
    private func pressure(until done: () -> Bool, cgroups: [MFCgroup], megabytes: Int) throws {
        let target = try ScratchDirectory("pressure", for: self).path("written")
        for _ in 0..<3 where !done() {
            let status = try MFCgroup.run("dd if=/dev/zero of=\(target) bs=1M count=\(megabytes) status=none", in: cgroups)
            XCTAssertEqual(status, 0, "the pressure writer failed")
            unlink(target)
            if waitFor(seconds: 5, done) {
                return
            }
        }
    }

    /// Polls `condition` every 10 ms for up to `seconds`.
    private func waitFor(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while !condition() {
            if Date() > deadline {
                return false
            }
            usleep(10_000)
        }
        return true
    }

    /// Threads of this process named `name` (as the host shows it: 15
    /// bytes at most).
    private func threadCount(_ name: String) -> Int {
        let name = String(name.prefix(15))
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { tid in
            let comm = MFProc.read("/proc/self/task/\(tid)/comm") ?? ""
            return comm.trimmingCharacters(in: .whitespacesAndNewlines) == name
        }.count
    }
}
