// Shared pieces of the MemoryFile tests: sizes, a seeded PRNG, helpers to
// read the allocator's state, touch and check pages, hold or fail the
// reclaimer, a recording EvictableMemoryUser, and a harness that runs a
// scenario that must trap in a child process.
//
// Every name here starts with `MF` or `mf`, so that it cannot collide with
// the SegmentSet tests' helpers in the same module.

import Dispatch
import Foundation
import XCTest

@testable import PGAlloc
import Workloads

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Sizes

let mfPage = PageSize.base
let mfHuge = PageSize.huge
let mfGiB: UInt64 = 1 << 30

/// The index of the first element of `sorted` that is not below `key`.
func mfLowerBound(_ sorted: [UInt64], _ key: UInt64) -> Int {
    var lo = 0
    var hi = sorted.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if sorted[mid] < key {
            lo = mid + 1
        } else {
            hi = mid
        }
    }
    return lo
}

/// `n` pages, in bytes.
func mfPages(_ n: UInt64) -> UInt64 { n * mfPage }

// MARK: - Random numbers

/// The SegmentSet tests' splitmix64, so that a printed seed replays a run
/// the same way in every test.
typealias MFRandom = SegmentTestRandom

extension SegmentTestRandom {
    /// A number in `[lower, upper]`.
    mutating func inRange(_ lower: UInt64, _ upper: UInt64) -> UInt64 {
        inClosedRange(lower, upper)
    }

    mutating func element<T>(_ array: [T]) -> T { array[index(array.count)] }
}

enum MFEnvironment {
    /// The seed of a randomized test: `PGALLOC_TEST_SEED` if set, else
    /// `defaultSeed`. Printed, so that a failure can be replayed.
    static func seed(_ test: String, default defaultSeed: UInt64) -> UInt64 {
        var seed = defaultSeed
        if let text = ProcessInfo.processInfo.environment["PGALLOC_TEST_SEED"] {
            if let value = UInt64(text) {
                seed = value
            } else if text.hasPrefix("0x"), let value = UInt64(text.dropFirst(2), radix: 16) {
                seed = value
            }
        }
        print("\(test): seed \(seed) (replay with PGALLOC_TEST_SEED=\(seed))")
        return seed
    }

    /// Whether the host may back a memfd with transparent huge pages, in
    /// which case touching one page can commit 2 MiB and exact block counts
    /// cannot be predicted.
    static let shmemHugePagesPossible: Bool = {
        func selected(_ path: String) -> String? {
            guard let text = MFProc.read(path) else { return nil }
            guard let open = text.firstIndex(of: "["), let close = text.firstIndex(of: "]") else { return nil }
            return String(text[text.index(after: open)..<close])
        }
        let base = "/sys/kernel/mm/transparent_hugepage"
        guard let top = selected(base + "/shmem_enabled") else { return false }
        let topOff = top == "never" || top == "deny"
        let sizes = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        for dir in sizes where dir.hasPrefix("hugepages-") {
            guard let mode = selected("\(base)/\(dir)/shmem_enabled") else { continue }
            if mode == "inherit" ? !topOff : mode != "never" {
                return true
            }
        }
        return !topOff
    }()

    /// Whether the host has swap, which can move pages out of mincore's
    /// sight and into "swapped" accounting.
    static let swapPossible: Bool = {
        guard let text = MFProc.read("/proc/swaps") else { return true }
        return text.split(separator: "\n").count > 1
    }()

    /// Exact block counts (`totalUsage`) can be predicted from touched pages.
    static var exactBlockCounts: Bool { !shmemHugePagesPossible && !swapPossible }
}

// MARK: - Making files and reading their state

/// A segment of the usage set, as the tests compare it.
struct MFSegment: Hashable, CustomStringConvertible {
    var range: FileRange
    var info: UsageInfo

    init(_ range: FileRange, _ info: UsageInfo) {
        self.range = range
        self.info = info
    }

    init(_ start: UInt64, _ end: UInt64, _ kind: MemoryKind, committed: Bool = false, refs: UInt64 = 1) {
        self.init(FileRange(start: start, end: end), UsageInfo(kind: kind, knownCommitted: committed, refs: refs))
    }

    var description: String { "\(range) \(info)" }
}

func mfMakeFile(_ configure: (inout MemoryFileOptions) -> Void = { _ in }) throws -> MemoryFile {
    var options = MemoryFileOptions()
    options.name = "pgalloc-mftest"
    configure(&options)
    return try MemoryFile(options: options)
}

func mfRange(_ start: UInt64, _ end: UInt64) -> FileRange { FileRange(start: start, end: end) }

extension MemoryFile {
    /// The usage set as an array.
    var mfSegments: [MFSegment] {
        usageSnapshot.segments.map { MFSegment($0.range, $0.value) }
    }

    var mfUsageLast: UInt64 { core.state.withLock { $0.usageLast } }
    var mfUsageExpected: UInt64 { core.state.withLock { $0.usageExpected } }
    var mfUsageSwapped: UInt64 { core.state.withLock { $0.usageSwapped } }
    var mfEvictionsRunning: Int { core.state.withLock { $0.evictionsRunning } }

    /// The evictable ranges the file holds for `user`, nil if it has no
    /// entry; and whether an eviction thread runs for it.
    func mfEvictable(_ user: any EvictableMemoryUser) -> (ranges: [FileRange], evicting: Bool)? {
        core.state.withLock { s in
            guard let info = s.evictable[ObjectIdentifier(user)] else { return nil }
            return (info.ranges.segments.map(\.range), info.evicting)
        }
    }

    /// Makes the next `updateUsage()` scan unless the file's block count
    /// equals the known-committed bytes: moves the time of the last scan
    /// two seconds back, past both of the seed's time-based skips.
    func mfAllowNextScan() {
        core.state.withLock { s in
            let now = monotonicNanoseconds()
            s.usageLast = now > 2_000_000_001 ? now - 2_000_000_000 : 1
        }
    }

    /// `updateUsage()`, with the time-based skips out of the way.
    func mfScan() throws {
        mfAllowNextScan()
        try updateUsage()
    }

    /// Writes `byte` over every byte of `fr`.
    func mfFill(_ fr: FileRange, _ byte: UInt8) throws {
        try forEachMappedSlice(fr) { buffer in
            memset(buffer.baseAddress!, Int32(byte), buffer.count)
        }
    }

    /// Writes `byte` at the start of every page of `fr` (commits each).
    func mfTouch(_ fr: FileRange, _ byte: UInt8 = 0xA5) throws {
        try forEachMappedSlice(fr) { buffer in
            var off = 0
            while off < buffer.count {
                buffer[off] = byte
                off += Int(mfPage)
            }
        }
    }

    /// Whether every byte of `fr` equals `byte` (reading commits the pages).
    func mfAllBytes(_ fr: FileRange, equal byte: UInt8) throws -> Bool {
        var all = true
        try forEachMappedSlice(fr) { buffer in
            if !all { return }
            for b in buffer where b != byte {
                all = false
                return
            }
        }
        return all
    }

    /// The 8 bytes at `offset` (reading commits the page).
    func mfLoadWord(_ offset: UInt64) throws -> UInt64 {
        var value: UInt64 = 0
        try forEachMappedSlice(mfRange(offset, offset + 8)) { buffer in
            value = buffer.loadUnaligned(as: UInt64.self)
        }
        return value
    }

    func mfStoreWord(_ offset: UInt64, _ value: UInt64) throws {
        try forEachMappedSlice(mfRange(offset, offset + 8)) { buffer in
            buffer.storeBytes(of: value, as: UInt64.self)
        }
    }
}

/// Asserts that `file.checkInvariants()` passes.
func mfAssertInvariants(_ file: MemoryFile, _ context: @autoclosure () -> String = "", file path: StaticString = #filePath, line: UInt = #line) {
    do {
        try file.checkInvariants()
    } catch {
        XCTFail("invariants broken \(context()): \(error)", file: path, line: line)
    }
}

/// Asserts that the usage set is exactly `expected`.
func mfAssertSegments(_ file: MemoryFile, _ expected: [MFSegment], _ context: @autoclosure () -> String = "", file path: StaticString = #filePath, line: UInt = #line) {
    let actual = file.mfSegments
    if actual != expected {
        XCTFail("usage set \(context()):\n  got      \(actual)\n  expected \(expected)", file: path, line: line)
    }
}

/// MemoryStats holding `pairs` (every other kind zero).
func mfStats(_ pairs: [MemoryKind: UInt64]) -> MemoryStats {
    var stats = MemoryStats()
    for (kind, bytes) in pairs {
        stats[kind] = bytes
    }
    return stats
}

// MARK: - Placement, stated by brute force

/// The gaps between sorted, disjoint `segments`, the last one unbounded.
func mfGaps(_ segments: [FileRange]) -> [FileRange] {
    var out: [FileRange] = []
    var start: UInt64 = 0
    for s in segments {
        out.append(mfRange(start, s.start))
        start = s.end
    }
    out.append(mfRange(start, UInt64.max))
    return out
}

/// Where the seed puts a top-down allocation: the highest aligned start
/// whose range lies in a gap inside the file; else the end of the smallest
/// doubling of the file (1 GiB if empty) that fits it above the last
/// segment, if that stays within Int64.
func mfBruteForceTopDown(_ segments: [FileRange], fileSize: UInt64, length: UInt64, alignment: UInt64) -> FileRange? {
    var best: UInt64?
    for gap in mfGaps(segments) {
        let end = min(gap.end, fileSize)
        guard end >= length else { continue }
        let start = (end - length) & ~(alignment - 1)
        if start >= gap.start, best.map({ start > $0 }) ?? true {
            best = start
        }
    }
    if let best {
        return mfRange(best, best + length)
    }
    let lastEnd = segments.last?.end ?? 0
    let minStart = (lastEnd + alignment - 1) & ~(alignment - 1)
    var size = fileSize
    while true {
        size = size == 0 ? mfGiB : size * 2
        if size > UInt64(Int64.max) {
            return nil
        }
        if size >= length, (size - length) & ~(alignment - 1) >= minStart {
            let start = (size - length) & ~(alignment - 1)
            return mfRange(start, start + length)
        }
    }
}

/// The largest file: a multiple of the chunk size that an off_t holds.
let mfMaxFileSize = UInt64(Int64.max) & ~(mfGiB - 1)

/// Where a bottom-up allocation goes: the lowest aligned start that fits
/// in a gap, if a file of whole chunks can reach its end.
func mfBruteForceBottomUp(_ segments: [FileRange], length: UInt64, alignment: UInt64) -> FileRange? {
    for gap in mfGaps(segments) {
        let start = (gap.start + alignment - 1) & ~(alignment - 1)
        if start + length <= gap.end {
            return start + length <= mfMaxFileSize ? mfRange(start, start + length) : nil
        }
    }
    return nil
}

// MARK: - Holding and failing the reclaimer

/// Plugs into `MemoryFileOptions.fallocateFailure`: every punch-hole
/// `fallocate` (the reclaimer's, and `decommit`'s) first passes through the
/// gate. A closed gate holds the reclaimer inside the hook, so that freed
/// pages stay in the usage set as System until the test opens it (other
/// threads, such as a test calling `decommit`, pass); a failing gate makes
/// fallocate fail with an errno.
final class MFReclaimGate: @unchecked Sendable {
    private let condition = NSCondition()
    private var closed = false
    private var failure: Int32? = nil
    private var waiting = 0
    private var calls: [FileRange] = []

    /// The hook to install in the options.
    var hook: @Sendable (FileRange) -> Int32? {
        { [self] fr in self.pass(fr) }
    }

    private func pass(_ fr: FileRange) -> Int32? {
        condition.lock()
        defer { condition.unlock() }
        calls.append(fr)
        let holdable = MFReclaimGate.onReclaimerThread()
        if holdable {
            waiting += 1
            condition.broadcast()
        }
        // Never hold forever: a test that fails before opening the gate
        // must still be able to destroy its file.
        let deadline = Date(timeIntervalSinceNow: 60)
        while closed && holdable {
            if !condition.wait(until: deadline) {
                break
            }
        }
        if holdable {
            waiting -= 1
            condition.broadcast()
        }
        return failure
    }

    /// Whether the calling thread is a MemoryFile's reclaimer.
    static func onReclaimerThread() -> Bool {
        let comm = MFProc.read("/proc/thread-self/comm") ?? ""
        return comm.trimmingCharacters(in: .whitespacesAndNewlines) == "pgalloc-reclaim"
    }

    func close() {
        condition.lock()
        closed = true
        condition.unlock()
    }

    func open() {
        condition.lock()
        closed = false
        condition.broadcast()
        condition.unlock()
    }

    /// Makes fallocate fail with `errno` (nil: succeed).
    func fail(with errno: Int32?) {
        condition.lock()
        failure = errno
        condition.unlock()
    }

    /// Ranges that reached the hook so far.
    var ranges: [FileRange] {
        condition.lock()
        defer { condition.unlock() }
        return calls
    }

    /// Waits until a caller is held at the closed gate; false on timeout.
    func waitForHeldCaller(timeoutSeconds: Double = 60) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeoutSeconds)
        condition.lock()
        defer { condition.unlock() }
        while waiting == 0 {
            if !condition.wait(until: deadline) {
                return waiting != 0
            }
        }
        return true
    }
}

// MARK: - An evictable memory user

/// An EvictableMemoryUser that records what it is asked to evict. It keeps
/// its own idea of which ranges are evictable (as a real user would), so
/// that it can tell an eviction of a range it has since marked unevictable
/// (the race the seed documents) from a real one. `onEvict` runs first,
/// without the recorder's lock, and may block or call back into the file.
final class MFEvictionRecorder: EvictableMemoryUser, @unchecked Sendable {
    private let condition = NSCondition()
    private var _calls: [EvictableRange] = []
    private var _stale: [EvictableRange] = []
    private var evictable = FileRangeSet()
    private let onEvict: (@Sendable (MFEvictionRecorder, EvictableRange) -> Void)?

    init(onEvict: (@Sendable (MFEvictionRecorder, EvictableRange) -> Void)? = nil) {
        self.onEvict = onEvict
    }

    /// Marks `range` evictable in the user's own bookkeeping and in `file`.
    func markEvictable(_ range: EvictableRange, in file: MemoryFile) {
        condition.lock()
        evictable.removeRange(range)
        _ = evictable.add(range, ())
        condition.unlock()
        file.markEvictable(self, range)
    }

    /// Marks `range` unevictable in the user's own bookkeeping and in
    /// `file`.
    func markUnevictable(_ range: EvictableRange, in file: MemoryFile) {
        condition.lock()
        evictable.removeRange(range)
        condition.unlock()
        file.markUnevictable(self, range)
    }

    func evict(_ range: EvictableRange) {
        onEvict?(self, range)
        condition.lock()
        defer { condition.unlock() }
        _calls.append(range)
        if evictable.spanRange(range) != range.length {
            // Marked unevictable since the MemoryFile took it: leave it.
            _stale.append(range)
        }
        evictable.removeRange(range)
        condition.broadcast()
    }

    /// Every range `evict` was called with, in order.
    var calls: [EvictableRange] {
        condition.lock()
        defer { condition.unlock() }
        return _calls
    }

    /// The calls for ranges the user no longer considered evictable.
    var staleCalls: [EvictableRange] {
        condition.lock()
        defer { condition.unlock() }
        return _stale
    }

    /// Waits until `evict` has been called `count` times; false on timeout.
    func waitForCalls(_ count: Int, timeoutSeconds: Double = 60) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeoutSeconds)
        condition.lock()
        defer { condition.unlock() }
        while _calls.count < count {
            if !condition.wait(until: deadline) {
                return _calls.count >= count
            }
        }
        return true
    }
}

/// A value behind a lock, shareable with escaping closures.
final class MFLocked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T

    init(_ value: T) {
        self.value = value
    }

    func withLock<R>(_ body: (inout T) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// A one-shot latch a thread waits on; opened once.
final class MFLatch: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    func open() { semaphore.signal() }
    /// False on timeout.
    func wait(timeoutSeconds: Double = 60) -> Bool {
        semaphore.wait(timeout: .now() + timeoutSeconds) == .success
    }
}

// MARK: - /proc

enum MFProc {
    /// The whole text of a file, read with read(2) to its end: /proc files
    /// report size 0, and Foundation stops reading them after one page.
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR {
                continue
            }
            if n <= 0 {
                return n == 0 ? String(decoding: bytes, as: UTF8.self) : nil
            }
            bytes.append(contentsOf: buffer[0..<n])
        }
    }

    /// The targets of this process's open descriptors.
    static func openFileTargets() -> [String] {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)") }
    }

    /// Lines of /proc/self/maps that contain `needle`.
    static func mapLines(containing needle: String) -> [String] {
        guard let maps = read("/proc/self/maps") else { return [] }
        return maps.split(separator: "\n").map(String.init).filter { $0.contains(needle) }
    }
}

// MARK: - Scenarios that must trap, run in a child process

/// Re-runs one test of this binary in a child process with an environment
/// variable naming a scenario; in the child, the test runs the scenario,
/// which must trap. The parent checks that the child died of a signal and
/// that its standard error names the call.
enum MFTrap {
    static let variable = "PGALLOC_MF_TRAP_SCENARIO"

    /// In the child: runs `body` (which must trap; if it returns, exits
    /// with status 86). In the parent: runs the test named by `testCase`
    /// and `function` in a child and checks how it died.
    static func expect(
        _ testCase: XCTestCase, _ scenario: String, function: String = #function,
        messageContains expected: [String], file: StaticString = #filePath, line: UInt = #line,
        _ body: () throws -> Void
    ) throws {
        if let current = ProcessInfo.processInfo.environment[variable] {
            // A child runs only its own scenario.
            if current == scenario {
                try body()
                FileHandle.standardError.write("scenario \(scenario) returned without trapping\n".data(using: .utf8)!)
                exit(86)
            }
            return
        }
        let testName = function.hasSuffix("()") ? String(function.dropLast(2)) : function
        let filter = "PGAllocTests.\(type(of: testCase))/\(testName)"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        process.arguments = [filter]
        var environment = ProcessInfo.processInfo.environment
        environment[variable] = scenario
        // A trap need not be symbolicated: keep the child quick.
        environment["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = environment
        let errorPipe = Pipe()
        process.standardError = errorPipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let stderrData = errorPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stderrText = String(decoding: stderrData, as: UTF8.self)

        XCTAssertEqual(process.terminationReason, .uncaughtSignal,
                       "scenario \(scenario): the child exited with status \(process.terminationStatus) instead of trapping; stderr:\n\(stderrText)",
                       file: file, line: line)
        if process.terminationReason == .uncaughtSignal {
            XCTAssert([SIGILL, SIGTRAP].contains(process.terminationStatus),
                      "scenario \(scenario): the child died of signal \(process.terminationStatus), not a trap; stderr:\n\(stderrText)",
                      file: file, line: line)
        }
        #if DEBUG
        // Optimized builds drop precondition messages; debug builds print them.
        for needle in expected {
            XCTAssert(stderrText.contains(needle),
                      "scenario \(scenario): stderr does not mention \"\(needle)\":\n\(stderrText)", file: file, line: line)
        }
        #endif
    }
}

/// A counter hooks can share across threads: `next()` returns 1, 2, ...
final class MFCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        count += 1
        return count
    }

    func reset() {
        lock.lock()
        count = 0
        lock.unlock()
    }
}
