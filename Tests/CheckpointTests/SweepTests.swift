import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc

/// Exhaustive damage to one small checkpoint (fixtures/v2/crafted.pgsnap:
/// about 4.6 KiB, three frames, every section of version 2 a writer
/// without keys writes, and annotations): every single-bit flip at every
/// offset and every truncation must be rejected with a CheckpointError,
/// never a trap, a hang or a success. Each case runs under a watchdog that
/// kills the test process if it takes more than `caseDeadline`.
///
/// The full sweeps take about 2.5 minutes in a debug build. With
/// PGSNAP_QUICK_SWEEP set, they run on a sample instead: every section's
/// first and last bytes and every 61st offset and length.
/// `SweepTestsVersion1` runs the same sweeps over fixtures/v1/crafted.pgsnap,
/// sampled unless PGSNAP_FULL_SWEEP is set (version 1's reader shares
/// everything with version 2's but the metadata and the index, and was
/// swept exhaustively when it was the only one).
class SweepTests: XCTestCase {
    static let caseDeadline: Double = 20

    /// The format version of the checkpoint swept.
    class var version: Int { 2 }

    class var exhaustive: Bool { ProcessInfo.processInfo.environment["PGSNAP_QUICK_SWEEP"] == nil }

    var exhaustive: Bool { Self.exhaustive }

    /// The crafted checkpoint swept, and where its parts lie.
    class func craftedBase() throws -> (bytes: [UInt8], layout: CraftedLayout) {
        try FixtureCatalogV2.craftedBase().encoded()
    }

    /// Checks that the committed fixture is the one the sweep means.
    func checkBase() throws {
        XCTAssert(base == (try Self.craftedBase().bytes), "the committed crafted fixture is the crafted base")
    }

    /// The offsets (or lengths) of `0..<count` a sweep covers.
    func positions(_ count: Int) throws -> [Int] {
        if exhaustive {
            return Array(0..<count)
        }
        let (_, layout) = try Self.craftedBase()
        var edges: Set<Int> = []
        var ranges = [layout.header, layout.metadata, layout.index, layout.trailer]
        ranges += layout.frameHeaders + layout.framePayloads + layout.sections
        if !layout.headTable.isEmpty {
            ranges += [layout.headTable, layout.tailTable]
        }
        for r in ranges where !r.isEmpty {
            edges.formUnion([r.lowerBound, r.lowerBound + 1, r.upperBound - 1])
        }
        edges.formUnion(stride(from: 0, to: count, by: 61))
        return edges.filter { $0 < count }.sorted()
    }

    /// A thread that aborts the process, naming the case, when a case runs
    /// past the deadline: a hang becomes a failure instead of a stuck run.
    final class Watchdog: @unchecked Sendable {
        private let lock = NSLock()
        private var current = ""
        private var started = DispatchTime.now()
        private var running = true
        private var thread: Thread?

        init(deadline: Double) {
            let t = Thread { [unowned self] in
                while true {
                    usleep(200_000)
                    self.lock.lock()
                    if !self.running {
                        self.lock.unlock()
                        return
                    }
                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - self.started.uptimeNanoseconds) / 1e9
                    let name = self.current
                    self.lock.unlock()
                    if !name.isEmpty && elapsed > deadline {
                        fatalError("sweep: \(name) still running after \(elapsed) s (deadline \(deadline) s): a hang")
                    }
                }
            }
            thread = t
            t.start()
        }

        func begin(_ name: String) {
            lock.lock()
            current = name
            started = DispatchTime.now()
            lock.unlock()
        }

        func end() {
            lock.lock()
            current = ""
            lock.unlock()
        }

        func stop() {
            lock.lock()
            running = false
            lock.unlock()
        }
    }

    /// The result of one sweep.
    struct Tally {
        var cases = 0
        var rejected = 0
        var byReason: [String: Int] = [:]
        var slowest: (String, Double) = ("", 0)
        var accepted: [String] = []

        mutating func record(_ name: String, seconds: Double, _ error: (any Error)?) {
            cases += 1
            if seconds > slowest.1 { slowest = (name, seconds) }
            guard let error else {
                accepted.append(name)
                return
            }
            rejected += 1
            let key: String
            if let e = error as? ChainError {
                // A checkpoint whose parent it no longer finds or
                // recognises: rejected before any memory is created.
                key = "chain \(e.reason)"
            } else if let e = error as? CheckpointError {
                let f = ExpectedFailure(e)
                let reason = f.reason.hasPrefix("unsupportedVersion") ? "unsupportedVersion" : f.reason
                key = reason + " " + (f.section.hasPrefix("frame") ? "frame" : f.section)
            } else {
                key = "non-checkpoint error: \(type(of: error))"
            }
            byReason[key, default: 0] += 1
        }

        func report(_ title: String) -> String {
            let reasons = byReason.sorted { $0.value > $1.value }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            return "\(title): \(rejected)/\(cases) rejected; slowest \(slowest.0) \(String(format: "%.3f", slowest.1)) s; \(reasons)"
        }
    }

    var base: [UInt8] = []
    var memfd: Int32 = -1
    var watchdog: Watchdog!

    /// The fixture swept.
    class var fixture: String { "crafted" }

    override func setUpWithError() throws {
        base = try readFile(fixturesDirectory + "/v\(Self.version)/\(Self.fixture).pgsnap")
        try checkBase()
        memfd = try OwnedFileDescriptor.memfd(name: "sweep").release()
        watchdog = Watchdog(deadline: Self.caseDeadline)
    }

    override func tearDown() {
        watchdog.stop()
        close(memfd)
    }

    /// Puts `bytes` in the memfd and runs `body` on it from offset 0,
    /// under the watchdog; returns the error and the time taken.
    func run(_ name: String, _ bytes: [UInt8], _ body: (Int32) throws -> Void) throws -> ((any Error)?, Double) {
        let fd = memfd
        guard ftruncate(fd, 0) == 0 else { throw HostError.last("ftruncate") }
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard written == bytes.count else { throw HostError.last("pwrite") }
        lseek(fd, 0, SEEK_SET)
        watchdog.begin(name)
        defer { watchdog.end() }
        let start = DispatchTime.now()
        var error: (any Error)?
        do {
            try body(fd)
        } catch let e {
            error = e
        }
        return (error, Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
    }

    /// Restores from a pipe: the bytes fit the pipe's buffer (64 KiB), so
    /// they are written whole and the write end closed before reading.
    func runStream(_ name: String, _ bytes: [UInt8]) throws -> ((any Error)?, Double) {
        precondition(bytes.count <= 65536)
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw HostError.last("pipe") }
        defer { close(fds[0]) }
        if !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(fds[1], $0.baseAddress!, $0.count) }
            precondition(n == bytes.count, "sweep: short write to the pipe")
        }
        close(fds[1])
        watchdog.begin(name)
        defer { watchdog.end() }
        let start = DispatchTime.now()
        var error: (any Error)?
        do {
            var options = RestoreOptions()
            options.parentSearchPaths = parentSearchPaths
            try MemoryFile.restore(from: .descriptor(fds[0]), options: options).destroy()
        } catch let e {
            error = e
        }
        return (error, Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
    }

    func verify(_ fd: Int32) throws {
        var options = RestoreOptions(threads: 1)
        options.parentSearchPaths = parentSearchPaths
        _ = try CheckpointReader.verify(.descriptor(fd), options: options)
    }

    /// Where the swept checkpoint's parents are found.
    var parentSearchPaths: [String] { [] }

    func restore(_ fd: Int32) throws {
        var options = RestoreOptions()
        options.threads = 2
        options.parentSearchPaths = parentSearchPaths
        try MemoryFile.restore(from: .descriptor(fd), options: options).destroy()
    }

    func finish(_ tally: Tally, _ title: String) {
        print("sweep v\(Self.version) " + tally.report(exhaustive ? title : title + " [sampled]"))
        XCTAssertEqual(tally.rejected, tally.cases, "\(title): accepted \(tally.accepted.prefix(20))")
        XCTAssertEqual(tally.byReason.keys.filter { $0.hasPrefix("non-checkpoint") }, [], "\(title): errors that are not CheckpointError")
        XCTAssertLessThan(tally.slowest.1, 5, "\(title): slowest case \(tally.slowest.0)")
    }

    func testTheBaseIsValid() throws {
        let (error, _) = try run("base", base, verify)
        XCTAssertNil(error)
        let (restored, _) = try run("base", base, restore)
        XCTAssertNil(restored)
        let (streamed, _) = try runStream("base", base)
        XCTAssertNil(streamed)
    }

    /// Every one of the 8 single-bit flips at every offset, through verify.
    func testEveryBitFlipIsRejectedByVerify() throws {
        var tally = Tally()
        var bytes = base
        for offset in try positions(bytes.count) {
            for bit in exhaustive ? Array(0..<8) : [offset % 8] {
                bytes[offset] ^= 1 << bit
                let (error, seconds) = try run("verify, bit \(bit) of byte \(offset) flipped", bytes, verify)
                tally.record("byte \(offset) bit \(bit)", seconds: seconds, error)
                bytes[offset] ^= 1 << bit
            }
        }
        finish(tally, "bit flips (verify, \(base.count) bytes, every bit)")
    }

    /// One bit flip at every offset (bit `offset % 8`) through restore from
    /// the file, and from a pipe; and every byte set to 0xff (where it is
    /// not already) through restore.
    func testEveryByteChangeIsRejectedByRestore() throws {
        var file = Tally()
        var stream = Tally()
        var saturated = Tally()
        var bytes = base
        for offset in try positions(bytes.count) {
            let bit = offset % 8
            bytes[offset] ^= 1 << bit
            let (e1, t1) = try run("restore, bit \(bit) of byte \(offset) flipped", bytes, restore)
            file.record("byte \(offset) bit \(bit)", seconds: t1, e1)
            let (e2, t2) = try runStream("restore from a pipe, bit \(bit) of byte \(offset) flipped", bytes)
            stream.record("byte \(offset) bit \(bit)", seconds: t2, e2)
            bytes[offset] = base[offset]
            if base[offset] != 0xFF {
                bytes[offset] = 0xFF
                let (e3, t3) = try run("restore, byte \(offset) set to ff", bytes, restore)
                saturated.record("byte \(offset) = ff", seconds: t3, e3)
                bytes[offset] = base[offset]
            }
        }
        finish(file, "bit flips (restore from the file, one per byte)")
        finish(stream, "bit flips (restore from a pipe, one per byte)")
        finish(saturated, "bytes set to 0xff (restore from the file)")
    }

    /// Every truncation, through verify, restore, and restore from a pipe.
    func testEveryTruncationIsRejected() throws {
        var verified = Tally()
        var restored = Tally()
        var streamed = Tally()
        for length in try positions(base.count) {
            let cut = Array(base.prefix(length))
            let (e1, t1) = try run("verify, cut to \(length) bytes", cut, verify)
            verified.record("length \(length)", seconds: t1, e1)
            let (e2, t2) = try run("restore, cut to \(length) bytes", cut, restore)
            restored.record("length \(length)", seconds: t2, e2)
            let (e3, t3) = try runStream("restore from a pipe, cut to \(length) bytes", cut)
            streamed.record("length \(length)", seconds: t3, e3)
        }
        finish(verified, "truncations (verify, lengths 0..<\(base.count))")
        finish(restored, "truncations (restore from the file)")
        finish(streamed, "truncations (restore from a pipe)")
    }

    /// Bytes inserted or appended anywhere: every offset, one zero byte
    /// and eight (which keeps 8-byte alignment).
    func testEveryInsertionIsRejected() throws {
        var tally = Tally()
        for offset in try positions(base.count + 1) {
            for count in [1, 8] {
                var bytes = base
                bytes.insert(contentsOf: [UInt8](repeating: 0, count: count), at: offset)
                let (error, seconds) = try run("verify, \(count) bytes inserted at \(offset)", bytes, verify)
                tally.record("\(count) at \(offset)", seconds: seconds, error)
            }
        }
        finish(tally, "insertions (verify, 1 and 8 zero bytes at every offset)")
    }
}

/// The sweeps over fixtures/v1/crafted.pgsnap: sampled, unless
/// PGSNAP_FULL_SWEEP is set.
final class SweepTestsVersion1: SweepTests {
    override class var version: Int { 1 }

    override class var exhaustive: Bool { ProcessInfo.processInfo.environment["PGSNAP_FULL_SWEEP"] != nil }

    override class func craftedBase() throws -> (bytes: [UInt8], layout: CraftedLayout) {
        try FixtureCatalog.base()
    }

    // Declared again: test discovery on Linux lists a class's own methods.
    override func testTheBaseIsValid() throws { try super.testTheBaseIsValid() }
    override func testEveryBitFlipIsRejectedByVerify() throws { try super.testEveryBitFlipIsRejectedByVerify() }
    override func testEveryByteChangeIsRejectedByRestore() throws { try super.testEveryByteChangeIsRejectedByRestore() }
    override func testEveryTruncationIsRejected() throws { try super.testEveryTruncationIsRejected() }
    override func testEveryInsertionIsRejected() throws { try super.testEveryInsertionIsRejected() }
}

/// The sweeps over fixtures/v2/chain-child.pgsnap, an incremental
/// checkpoint (PRNT, PHSH, REFS) whose parent, chain-parent.pgsnap, is found
/// in the fixtures' directory: every byte of its parent's identity and
/// path, its page hashes and its references is flipped, cut and shifted
/// like the rest. A damaged parent record is a `ChainError` (the parent is
/// not found or not recognised), also a rejection.
final class SweepTestsChain: SweepTests {
    override class var fixture: String { "chain-child" }

    override var parentSearchPaths: [String] { [fixturesDirectory + "/v2"] }

    override func checkBase() throws {
        let metadata = try CheckpointReader.readMetadata(from: .path(fixturesDirectory + "/v2/chain-child.pgsnap"))
        XCTAssertNotNil(metadata.parent, "the chain fixture has a parent")
        XCTAssertTrue(metadata.references.contains { $0.link == 1 } && metadata.references.contains { $0.link == 0 })
    }

    /// Every byte of the parent's record, the page hashes and the
    /// references (and of everything with PGSNAP_FULL_SWEEP); elsewhere,
    /// every section's first and last bytes and every 61st offset: the
    /// rest is what the crafted sweep covers. With PGSNAP_QUICK_SWEEP, the
    /// sample alone.
    override func positions(_ count: Int) throws -> [Int] {
        if ProcessInfo.processInfo.environment["PGSNAP_FULL_SWEEP"] != nil {
            return Array(0..<count)
        }
        let metadata = try CheckpointReader.readMetadata(from: .path(fixturesDirectory + "/v2/chain-child.pgsnap"))
        var edges = Set(stride(from: 0, to: count, by: 61))
        for s in metadata.sections {
            edges.formUnion([Int(s.offset), Int(s.offset) + 1, Int(s.end) - 1])
            if exhaustive && [SectionType.parent, .pageHashes, .references].contains(s.type) {
                edges.formUnion(Int(s.offset)..<Int(s.end))
            }
        }
        return edges.filter { $0 < count }.sorted()
    }

    override func testTheBaseIsValid() throws { try super.testTheBaseIsValid() }
    override func testEveryBitFlipIsRejectedByVerify() throws { try super.testEveryBitFlipIsRejectedByVerify() }
    override func testEveryByteChangeIsRejectedByRestore() throws { try super.testEveryByteChangeIsRejectedByRestore() }
    override func testEveryTruncationIsRejected() throws { try super.testEveryTruncationIsRejected() }
    override func testEveryInsertionIsRejected() throws { try super.testEveryInsertionIsRejected() }
}
