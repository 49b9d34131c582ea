import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import TestSupport
import Workloads
import CLinuxShim

/// The memory as a save saw it: the usage set's shape and every non-zero
/// page's bytes.
struct SavedMemory {
    var fileSize: UInt64
    var shape: [SegmentRecord]
    var pages: [UInt64: [UInt8]]

    init(_ file: MemoryFile) throws {
        fileSize = file.totalSize
        let usage = file.usageSnapshot
        shape = savedShape(usage)
        pages = [:]
        for (range, info) in usage.segments where info.refs > 0 {
            var at = range.start
            while at < range.end {
                let bytes = try readBytes(file.fileDescriptor, FileRange(start: at, end: at + 4096))
                if bytes.contains(where: { $0 != 0 }) {
                    pages[at] = bytes
                }
                at += 4096
            }
        }
    }

    /// Fails unless `file` holds this memory.
    func check(_ file: MemoryFile, _ what: String, file f: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(file.totalSize, fileSize, "\(what): file size", file: f, line: line)
        XCTAssertEqual(savedShape(file.usageSnapshot), shape, "\(what): usage set", file: f, line: line)
        let restored = try SavedMemory(file)
        let differing = Set(restored.pages.keys).symmetricDifference(pages.keys).union(pages.keys.filter { restored.pages[$0] != pages[$0] })
        XCTAssertTrue(differing.isEmpty, "\(what): \(differing.count) pages differ, first at \(differing.min().map { hex($0) } ?? "")", file: f, line: line)
        try file.checkInvariants()
    }
}

final class IncrementalTests: XCTestCase {
    /// A file of `pages` random pages in two segments of different kinds.
    func makeFile(pages: Int, rng: inout SplitMix64) throws -> (MemoryFile, [FileRange]) {
        let file = try MemoryFile()
        let a = try file.allocate(UInt64(pages / 2) * 4096, kind: .anonymous)
        let b = try file.allocate(UInt64(pages - pages / 2) * 4096, kind: .tmpfs)
        for range in [a, b] {
            try writeThroughMapping(file, at: range.start, rng.bytes(Int(range.length)))
        }
        return (file, [a, b])
    }

    func randomPage(in ranges: [FileRange], _ rng: inout SplitMix64) -> UInt64 {
        let total = ranges.reduce(0) { $0 + $1.length } / 4096
        var n = rng.next() % total
        for r in ranges {
            if n < r.length / 4096 { return r.start + n * 4096 }
            n -= r.length / 4096
        }
        preconditionFailure()
    }

    func testChildStoresOnlyTheChangedPagesAndRestoresTheWholeMemory() throws {
        let dir = try ScratchDirectory(for: self)
        var rng = SplitMix64(seed: testSeed(41, "incremental child"))
        let (file, ranges) = try makeFile(pages: 2048, rng: &rng)
        defer { file.destroy() }
        let full = try file.save(to: .path(dir.path("full")))
        XCTAssertEqual(full.storedBytes, 2048 * 4096)
        XCTAssertNil(full.parent)
        // 20 pages change, at distinct addresses.
        var changed = Set<UInt64>()
        while changed.count < 20 {
            changed.insert(randomPage(in: ranges, &rng))
        }
        for page in changed {
            try writeThroughMapping(file, at: page, rng.bytes(4096))
        }
        let expected = try SavedMemory(file)
        let child = try file.save(to: .path(dir.path("child")), parent: .path(dir.path("full")))
        XCTAssertEqual(child.storedBytes, 20 * 4096, "only the changed pages are stored")
        XCTAssertEqual(child.referencedBytes, (2048 - 20) * 4096)
        XCTAssertEqual(child.parent?.depth, 1)
        XCTAssertEqual(child.parent?.path, "full", "the parent's path, relative to the child's directory")
        let (parentIdentity, _) = try CheckpointReader.identity(of: .path(dir.path("full")))
        XCTAssertEqual(child.parent?.identity, parentIdentity)

        let eager = try MemoryFile.restore(from: .path(dir.path("child")))
        defer { eager.destroy() }
        try expected.check(eager, "eager restore of the child")
        XCTAssertEqual(eager.accounting.snapshot(), file.accounting.snapshot(), "accounting")

        var lazyOptions = RestoreOptions()
        lazyOptions.mode = .lazy(LazyRestoreOptions())
        let lazy = try MemoryFile.restore(from: .path(dir.path("child")), options: lazyOptions)
        defer { lazy.destroy() }
        try lazy.waitUntilLoaded()
        try expected.check(lazy, "lazy restore of the child")

        // Raw images too.
        let image = dir.path("image")
        _ = try RawImage.restore(from: .path(dir.path("child")), toImage: image)
        let fd = open(image, O_RDONLY)
        defer { close(fd) }
        for (page, bytes) in expected.pages where try readBytes(fd, FileRange(start: page, end: page + 4096)) != bytes {
            XCTFail("image page \(hex(page)) differs")
            break
        }
    }

    func testIdenticalPagesAreStoredOnce() throws {
        let dir = try ScratchDirectory(for: self)
        let file = try MemoryFile()
        defer { file.destroy() }
        let range = try file.allocate(64 * 4096, kind: .anonymous)
        var rng = SplitMix64(seed: 5)
        let a = rng.bytes(4096)
        let b = rng.bytes(4096)
        for i in 0..<64 {
            try writeThroughMapping(file, at: range.start + UInt64(i) * 4096, i % 3 == 0 ? a : (i % 3 == 1 ? b : rng.bytes(4096)))
        }
        let expected = try SavedMemory(file)
        let report = try file.save(to: .path(dir.path("c")))
        // 21 pages of b, 22 of a, 21 distinct: a and b stored once each.
        XCTAssertEqual(report.storedBytes, (2 + 21) * 4096)
        XCTAssertEqual(report.duplicateBytes, (64 - 23) * 4096)
        let restored = try MemoryFile.restore(from: .path(dir.path("c")))
        defer { restored.destroy() }
        try expected.check(restored, "restore")
        let metadata = try CheckpointReader.readMetadata(from: .path(dir.path("c")))
        XCTAssertEqual(metadata.references.map(\.link), Array(repeating: 0, count: metadata.references.count))
        XCTAssertEqual(metadata.referencedBytes, report.duplicateBytes)
    }

    /// Random changes between saves, each saved with the last checkpoint
    /// (or a flattened copy of it) as parent; then every checkpoint is
    /// restored, eagerly and lazily, and compared with the memory as it
    /// was when it was saved.
    func testRandomChains() throws {
        let dir = try ScratchDirectory(for: self)
        var rng = SplitMix64(seed: testSeed(77, "random chains"))
        let (file, ranges) = try makeFile(pages: 512, rng: &rng)
        defer { file.destroy() }
        var saved: [(path: String, memory: SavedMemory)] = []
        var parent: String?
        for step in 0..<10 {
            if step > 0 {
                let changes = Int(rng.next() % 40)
                for _ in 0..<changes {
                    let page = randomPage(in: ranges, &rng)
                    switch rng.next() % 5 {
                    case 0:
                        // A copy of a few other pages: stored once.
                        let other = randomPage(in: ranges, &rng)
                        let count = UInt64(1 + rng.next() % 8)
                        let end = min(page + count * 4096, ranges.first { $0.contains(page) }!.end)
                        let from = min(other, ranges.first { $0.contains(other) }!.end - (end - page))
                        if from >= ranges.first(where: { $0.contains(other) })!.start {
                            try writeThroughMapping(file, at: page, try readBytes(file.fileDescriptor, FileRange(start: from, end: from + (end - page))))
                        }
                    case 1:
                        // The contents of an earlier save: found in the
                        // chain, maybe at another address.
                        if let old = saved.randomElement(using: &rng)?.memory.pages.randomElement(using: &rng)?.value {
                            try writeThroughMapping(file, at: page, old)
                        }
                    case 2:
                        try file.decommit(FileRange(start: page, end: page + 4096))
                    default:
                        try writeThroughMapping(file, at: page, rng.bytes(4096))
                    }
                }
            }
            let path = dir.path("c\(step)")
            let report: SaveReport
            // Small frames too: references then span frames, and a frame
            // gives pages to many places.
            var options = SaveOptions()
            options.frameSize = [16 << 10, 64 << 10, 8 << 20].randomElement(using: &rng)!
            if let parent {
                report = try file.save(to: .path(path), parent: .path(parent), options: options)
                XCTAssertNotNil(report.parent, "step \(step)")
                XCTAssertGreaterThan(report.referencedBytes, 0, "step \(step): most pages are the parent's")
            } else {
                report = try file.save(to: .path(path), options: options)
            }
            saved.append((path, try SavedMemory(file)))
            parent = path
            if rng.next() % 4 == 0 {
                // A flattened copy becomes the next parent.
                let flat = dir.path("flat\(step)")
                let flattened = try MemoryFile.flatten(.path(path), to: .path(flat))
                XCTAssertNil(flattened.parent)
                XCTAssertEqual(flattened.referencedBytes, 0)
                saved.append((flat, saved.last!.memory))
                parent = flat
            }
        }
        // Pages come from several links, not only the parent.
        let deepest = try saved.map { try CheckpointReader.readMetadata(from: .path($0.path)).references.map(\.link).max() ?? 0 }.max()!
        XCTAssertGreaterThan(deepest, 1, "some page comes from a grandparent or further")
        for (path, memory) in saved {
            let name = (path as NSString).lastPathComponent
            let eager = try MemoryFile.restore(from: .path(path))
            try memory.check(eager, "\(name) eager")
            eager.destroy()
            var options = RestoreOptions()
            var lazy = LazyRestoreOptions()
            lazy.backgroundLoading = false
            options.mode = .lazy(lazy)
            let file = try MemoryFile.restore(from: .path(path), options: options)
            // Some pages through the API first (their units load first),
            // then the rest.
            for (page, bytes) in memory.pages.prefix(16) {
                try file.forEachMappedSlice(FileRange(start: page, end: page + 4096)) { slice in
                    XCTAssertEqual(Array(UnsafeRawBufferPointer(slice)), bytes, "\(name) lazy page \(hex(page))")
                }
            }
            try file.waitUntilLoaded()
            try memory.check(file, "\(name) lazy")
            file.destroy()
        }
    }

    /// A save with a parent hashes a page when it first looks at it and
    /// stores that hash: it must store those same bytes even if a writer
    /// the caller failed to stop changes the page before the frame is
    /// made, or `verify` would find the page unlike its hash.
    func testAChildStoresThePagesItHashedWhenAWriterChangesThemLater() throws {
        let dir = try ScratchDirectory(for: self)
        var rng = SplitMix64(seed: testSeed(43, "child of changing pages"))
        let (file, ranges) = try makeFile(pages: 512, rng: &rng)
        defer { file.destroy() }
        _ = try file.save(to: .path(dir.path("full")))
        for range in ranges {
            try writeThroughMapping(file, at: range.start, rng.bytes(Int(range.length)))
        }
        let source = ChangingAfterLook(file)
        let parent = try IncrementalParent.open(
            .path(dir.path("full")), for: .path(dir.path("child")), searchPaths: [], keys: CheckpointKeys())
        let report = try CheckpointWriter.save(source, to: .path(dir.path("child")), parent: parent, options: SaveOptions())
        XCTAssertGreaterThan(source.changedPages, 0, "the source changed the pages it lent")
        XCTAssertEqual(report.storedBytes, 512 * 4096, "every page differs from the parent's")
        XCTAssertNoThrow(try CheckpointReader.verify(.path(dir.path("child"))), "the stored pages match their hashes")
        // A save without a parent hashes only the pages it stores, from
        // its own copy of them.
        _ = try CheckpointWriter.save(ChangingAfterLook(file), to: .path(dir.path("full2")), options: SaveOptions())
        XCTAssertNoThrow(try CheckpointReader.verify(.path(dir.path("full2"))), "a full save's pages match their hashes")
    }

    func testChangedMovedMissingAndCyclicParents() throws {
        let dir = try ScratchDirectory(for: self)
        var rng = SplitMix64(seed: 9)
        let (file, ranges) = try makeFile(pages: 64, rng: &rng)
        defer { file.destroy() }
        _ = try file.save(to: .path(dir.path("p")))
        try writeThroughMapping(file, at: ranges[0].start, rng.bytes(4096))
        _ = try file.save(to: .path(dir.path("c")), parent: .path(dir.path("p")))

        func chainError(_ path: String, _ options: RestoreOptions = RestoreOptions()) -> ChainError? {
            do {
                let f = try MemoryFile.restore(from: .path(path), options: options)
                f.destroy()
                return nil
            } catch let e as ChainError {
                return e
            } catch {
                XCTFail("\(error)")
                return nil
            }
        }
        // Moved: found through the search paths.
        try FileManager.default.createDirectory(atPath: dir.path("elsewhere"), withIntermediateDirectories: false)
        XCTAssertEqual(rename(dir.path("p"), dir.path("elsewhere/p")), 0)
        XCTAssertEqual(chainError(dir.path("c"))?.reason, .parentMissing)
        XCTAssertEqual(chainError(dir.path("c"))?.link, 1)
        var options = RestoreOptions()
        options.parentSearchPaths = [dir.path("nowhere"), dir.path("elsewhere")]
        XCTAssertNil(chainError(dir.path("c"), options))

        // Changed: another checkpoint in its place.
        try writeThroughMapping(file, at: ranges[1].start, rng.bytes(4096))
        _ = try file.save(to: .path(dir.path("p")))
        XCTAssertEqual(chainError(dir.path("c"))?.reason, .parentChanged)
        // The right one, in a search path, wins over a wrong one in place.
        XCTAssertNil(chainError(dir.path("c"), options))

        // A copy of the child where its parent should be: its own parent
        // is then itself.
        XCTAssertEqual(unlink(dir.path("p")), 0)
        try FileManager.default.copyItem(atPath: dir.path("c"), toPath: dir.path("p"))
        XCTAssertEqual(chainError(dir.path("p"))?.reason, .cycle)
        // Saving a child over a link of its chain is refused.
        XCTAssertThrowsError(try file.save(to: .path(dir.path("elsewhere/p")), parent: .path(dir.path("c")), parentSearchPaths: [dir.path("elsewhere")]))
    }
}

/// A MemoryFile as a save reads it, with a writer that changes the first
/// byte of every page of a slice once the save has looked at the slice.
final class ChangingAfterLook: SaveSource, @unchecked Sendable {
    private let inner: MemoryFileSource
    private let counted = StateLock(0)
    var changedPages: Int { counted.withLock { $0 } }

    init(_ file: MemoryFile) {
        inner = MemoryFileSource(file)
    }

    func prepare() throws -> SaveLayout { try inner.prepare() }
    func committedRuns(from cursor: UInt64, maxBytes: UInt64) throws -> [FileRange] {
        inner.committedRuns(from: cursor, maxBytes: maxBytes)
    }
    func decommitZeroPages(_ runs: [FileRange]) throws -> UInt64 { try inner.decommitZeroPages(runs) }
    func accountingSnapshot() -> MemoryStats { inner.accountingSnapshot() }
    func accessOrder() -> [UInt64] { inner.accessOrder() }

    func forEachSlice(of run: FileRange, buffer: UnsafeMutableRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try inner.forEachSlice(of: run, buffer: buffer) { slice in
            try body(slice)
            let page = Int(CheckpointFormat.pageSize)
            let bytes = UnsafeMutableRawPointer(mutating: slice.baseAddress!)
            for offset in stride(from: 0, to: slice.count, by: page) {
                bytes.storeBytes(of: bytes.load(fromByteOffset: offset, as: UInt8.self) &+ 1, toByteOffset: offset, as: UInt8.self)
            }
            counted.withLock { $0 += slice.count / page }
        }
    }
}
