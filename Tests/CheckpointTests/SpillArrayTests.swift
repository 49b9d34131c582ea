import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import TestSupport
import Workloads

/// `SpillArray` against a plain array, across its move into a temporary
/// file; and saves and restores whose references and runs of stored pages
/// are spilled (the heap limit lowered so that small checkpoints reach it).
final class SpillArrayTests: XCTestCase {
    private var savedLimit = 0

    override func setUp() {
        savedLimit = spillHeapLimit
    }

    override func tearDown() {
        spillHeapLimit = savedLimit
    }

    /// Random appends, writes, copies and sorts, compared with an array
    /// after each step; the array crosses the heap limit and keeps growing
    /// in the file.
    func testMatchesAnArrayAcrossTheMoveToAFile() throws {
        spillHeapLimit = 64 << 10
        let seed = testSeed(0x5B11_0001, "spill array model")
        var rng = SplitMix64(seed: seed)
        var spill = SpillArray<UInt64>()
        var model: [UInt64] = []
        var copies: [(SpillArray<UInt64>, [UInt64])] = []
        while model.count < 200_000 {
            switch rng.next() % 8 {
            case 0:
                let n = Int(rng.next() % 5000)
                let values = (0..<n).map { _ in rng.next() }
                spill.append(contentsOf: values)
                model.append(contentsOf: values)
            case 1 where !model.isEmpty:
                let i = Int(rng.next() % UInt64(model.count))
                let v = rng.next()
                spill[i] = v
                model[i] = v
            case 2:
                // A copy made now must keep its contents while the
                // original changes.
                copies.append((spill, model))
            case 3 where model.count < 50_000:
                spill.sort()
                model.sort()
            default:
                let v = rng.next()
                spill.append(v)
                model.append(v)
            }
            XCTAssertEqual(spill.count, model.count, "seed \(seed)")
        }
        XCTAssertTrue(spill.elementsEqual(model), "seed \(seed)")
        XCTAssertTrue(spill.isSpilled, "200,000 elements pass a 64 KiB heap limit")
        for (copy, expected) in copies {
            XCTAssertTrue(copy.elementsEqual(expected), "a copy changed with the original, seed \(seed)")
        }
        var bytes = SpillArray<UInt8>()
        bytes.append(contentsOf: (0..<300_000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        var joined: [UInt8] = []
        bytes.forEachPiece(pieceLength: 100_000) { joined += $0 }
        XCTAssertEqual(joined, Array(bytes))
    }

    /// Where no temporary file can be made, the array stays in the heap.
    func testStaysInTheHeapWithoutATemporaryDirectory() throws {
        spillHeapLimit = 4096
        let old = ProcessInfo.processInfo.environment["TMPDIR"]
        setenv("TMPDIR", "/nonexistent/pgsnap-spill", 1)
        defer {
            if let old { setenv("TMPDIR", old, 1) } else { unsetenv("TMPDIR") }
        }
        let spill = SpillArray<UInt32>(0..<100_000)
        XCTAssertFalse(spill.isSpilled)
        XCTAssertTrue(spill.elementsEqual(0..<100_000))
    }

    /// A temporary directory that fills up while the array grows in it:
    /// the array goes back to the heap with its contents (a write to a
    /// mapping of a full file would be a SIGBUS instead).
    func testGoesBackToTheHeapWhenTheTemporaryDirectoryIsFull() throws {
        let dir = try ScratchDirectory(for: self)
        let mount = dir.path("small")
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        guard run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mount]) == 0 else {
            throw XCTSkip("cannot mount a tmpfs (not root?)")
        }
        defer { _ = run("/bin/umount", [mount]) }
        spillHeapLimit = 64 << 10
        let old = ProcessInfo.processInfo.environment["TMPDIR"]
        setenv("TMPDIR", mount, 1)
        defer {
            if let old { setenv("TMPDIR", old, 1) } else { unsetenv("TMPDIR") }
        }
        var spill = SpillArray<UInt64>()
        var sawSpilled = false
        for i in 0..<(1 << 20) {
            spill.append(UInt64(i))
            sawSpilled = sawSpilled || spill.isSpilled
        }
        XCTAssertTrue(sawSpilled, "the array moved into the 1 MiB tmpfs first")
        XCTAssertFalse(spill.isSpilled, "8 MiB do not fit a 1 MiB tmpfs")
        XCTAssertTrue(spill.elementsEqual(0..<(1 << 20)))
    }

    /// A save whose references and stored runs pass the (lowered) heap
    /// limit, restored eagerly from a file and from a pipe and lazily; an
    /// incremental child of it whose references to its parent spill too
    /// (and the plan of the parent's pages they make), restored eagerly and
    /// lazily.
    func testSaveAndRestoreWithSpilledTables() throws {
        spillHeapLimit = 4096
        let dir = try ScratchDirectory(for: self)
        let seed = testSeed(0x5B11_0002, "spilled tables")
        var rng = SplitMix64(seed: seed)
        let file = try MemoryFile()
        defer { file.destroy() }
        let pages = 3000
        let range = try file.allocate(UInt64(pages) * 4096, kind: .anonymous)
        // Every third page repeats one of 16 pages: thousands of
        // references of link 0, and runs of stored pages between them.
        let repeated = (0..<16).map { _ in rng.bytes(4096) }
        var image: [UInt8] = []
        for i in 0..<pages {
            image += i % 3 == 2 ? repeated[Int(rng.next() % 16)] : rng.bytes(4096)
        }
        try writeThroughMapping(file, at: range.start, image)
        let expected = try SavedMemory(file)
        var options = SaveOptions()
        options.frameSize = 64 * 4096
        let report = try file.save(to: .path(dir.path("full")), options: options)
        let metadata = try CheckpointReader.readMetadata(from: .path(dir.path("full")))
        XCTAssertGreaterThan(metadata.references.count, 900, "seed \(seed)")
        XCTAssertTrue(metadata.references.isSpilled)
        XCTAssertEqual(metadata.referencedBytes, report.duplicateBytes)

        let eager = try MemoryFile.restore(from: .path(dir.path("full")))
        defer { eager.destroy() }
        try expected.check(eager, "eager restore, seed \(seed)")
        let piped = try withPipe(feeding: try Data(contentsOf: URL(fileURLWithPath: dir.path("full"))).map { $0 }) {
            try MemoryFile.restore(from: .descriptor($0))
        }
        defer { piped.destroy() }
        try expected.check(piped, "restore from a pipe, seed \(seed)")
        var lazyOptions = RestoreOptions()
        lazyOptions.mode = .lazy(LazyRestoreOptions())
        let lazy = try MemoryFile.restore(from: .path(dir.path("full")), options: lazyOptions)
        defer { lazy.destroy() }
        try lazy.waitUntilLoaded()
        try expected.check(lazy, "lazy restore, seed \(seed)")
        XCTAssertNoThrow(try CheckpointReader.verify(.path(dir.path("full"))), "seed \(seed)")

        // A tenth of the pages change: the child references its parent
        // around each of them.
        for _ in 0..<(pages / 10) {
            let page = range.start + (rng.next() % UInt64(pages)) * 4096
            try writeThroughMapping(file, at: page, rng.bytes(4096))
        }
        let childExpected = try SavedMemory(file)
        _ = try file.save(to: .path(dir.path("child")), parent: .path(dir.path("full")), options: options)
        let child = try CheckpointReader.readMetadata(from: .path(dir.path("child")))
        XCTAssertTrue(child.references.contains { $0.link == 1 } && child.references.isSpilled, "seed \(seed)")
        let restoredChild = try MemoryFile.restore(from: .path(dir.path("child")))
        defer { restoredChild.destroy() }
        try childExpected.check(restoredChild, "restore of the child, seed \(seed)")
        let lazyChild = try MemoryFile.restore(from: .path(dir.path("child")), options: lazyOptions)
        defer { lazyChild.destroy() }
        try lazyChild.waitUntilLoaded()
        try childExpected.check(lazyChild, "lazy restore of the child, seed \(seed)")
    }

    private func run(_ tool: String, _ arguments: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}
