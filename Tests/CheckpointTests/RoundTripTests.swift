import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import Workloads

/// Save then restore, and compare everything: contents (with pread, which
/// commits nothing), the usage set, committed bytes, accounting.
final class RoundTripTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("roundtrip")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Checks that `restored` is `source` as saved by `report`.
    func assertRestored(_ restored: MemoryFile, from source: MemoryFile, report: SaveReport, file: StaticString = #filePath, line: UInt = #line) throws {
        try source.checkInvariants()
        try restored.checkInvariants()
        let sourceUsage = source.usageSnapshot
        let restoredUsage = restored.usageSnapshot
        XCTAssertEqual(restored.totalSize, source.totalSize, "file size", file: file, line: line)
        XCTAssertEqual(savedShape(restoredUsage), savedShape(sourceUsage), "usage set", file: file, line: line)

        // Contents: every allocated range reads the same.
        for (range, info) in sourceUsage.segments where info.refs > 0 {
            if !(try sameContents(source.fileDescriptor, restored.fileDescriptor, in: range)) {
                XCTFail("contents differ in \(range)", file: file, line: line)
                return
            }
        }

        // What was stored is exactly the non-zero pages, now known committed
        // and accounted to their kinds; nothing else is committed.
        let (nonZero, perKind) = try nonZeroPages(source.fileDescriptor, sourceUsage)
        let nonZeroBytes = nonZero.reduce(0) { $0 + $1.length }
        // Each distinct page is stored once; its copies are references.
        XCTAssertEqual(report.storedBytes + report.duplicateBytes, nonZeroBytes, "stored and duplicate bytes", file: file, line: line)
        XCTAssertEqual(report.referencedBytes, 0, "referenced bytes without a parent", file: file, line: line)
        XCTAssertEqual(try restored.totalUsage(), nonZeroBytes, "restored committed bytes", file: file, line: line)
        XCTAssertEqual(knownCommittedRanges(restoredUsage), nonZero, "restored known-committed ranges", file: file, line: line)
        XCTAssertEqual(restored.accounting.snapshot(), perKind, "restored accounting", file: file, line: line)
        // The source, after save, holds and accounts the same, if its
        // zero pages were decommitted (SaveOptions.decommitZeroPages, the
        // default); otherwise it keeps them, committed and known.
        if report.zeroBytesDecommitted == report.zeroBytesDropped {
            XCTAssertEqual(knownCommittedRanges(sourceUsage), nonZero, "source known-committed ranges after save", file: file, line: line)
            XCTAssertEqual(source.accounting.snapshot(), perKind, "source accounting after save", file: file, line: line)
            XCTAssertEqual(try source.totalUsage(), nonZeroBytes, "source committed after save (zero pages decommitted)", file: file, line: line)
        } else {
            XCTAssertEqual(report.zeroBytesDecommitted, 0, "zero bytes decommitted: all or none", file: file, line: line)
            let (committed, committedPerKind) = try committedPages(source.fileDescriptor, sourceUsage)
            XCTAssertEqual(knownCommittedRanges(sourceUsage), committed, "source known-committed ranges after save", file: file, line: line)
            XCTAssertEqual(source.accounting.snapshot(), committedPerKind, "source accounting after save", file: file, line: line)
            XCTAssertEqual(try source.totalUsage(), nonZeroBytes + report.zeroBytesDropped, "source committed after save (zero pages kept)", file: file, line: line)
        }
    }

    func testEmptyMemoryFile() throws {
        let source = try MemoryFile()
        let path = directory + "/empty.ckpt"
        let report = try source.save(to: .path(path))
        XCTAssertEqual(report.fileSize, 0)
        XCTAssertEqual(report.segments, 0)
        XCTAssertEqual(report.frames, 0)
        let restored = try MemoryFile.restore(from: .path(path))
        XCTAssertEqual(restored.totalSize, 0)
        XCTAssertTrue(restored.usageSnapshot.isEmpty)
        try assertRestored(restored, from: source, report: report)
        let meta = try CheckpointReader.verify(.path(path))
        XCTAssertEqual(meta.totals.frameCount, 0)
        XCTAssertEqual(meta.checkpointLength, report.checkpointBytes)
    }

    /// Allocates `count` ranges of random kinds, sizes, directions and
    /// references, and writes their pages in the four ways a page can be:
    /// untouched, written with zeros, written with data, written with data
    /// and zeroed again later. Frees some.
    func populate(_ file: MemoryFile, count: Int, seed: UInt64, updateUsage: Bool) throws {
        var rng = SplitMix64(seed: seed)
        var live: [FileRange] = []
        var zeroLater: [UInt64] = []
        for _ in 0..<count {
            let pages = 1 + rng.next() % 8
            let kind = MemoryKind.allCases[Int(rng.next() % UInt64(MemoryKind.allCases.count))]
            let direction: AllocationDirection = rng.next() % 4 == 0 ? .bottomUp : .topDown
            let fr = try file.allocate(pages * 4096, kind: kind, direction: direction)
            live.append(fr)
            if rng.next() % 3 == 0 {
                // More references on part of the range: splits segments.
                let first = rng.next() % pages
                file.incRef(FileRange(start: fr.start + first * 4096, end: fr.end))
            }
            for p in 0..<pages {
                let address = fr.start + p * 4096
                switch rng.next() % 5 {
                case 0:
                    break
                case 1:
                    try writeThroughMapping(file, at: address, [UInt8](repeating: 0, count: 4096))
                case 2, 3:
                    var page = [UInt8](repeating: 0, count: 4096)
                    for i in stride(from: 0, to: 4096, by: 8) where rng.next() % 4 == 0 {
                        page[i] = UInt8(truncatingIfNeeded: rng.next() | 1)
                    }
                    try writeThroughMapping(file, at: address, page)
                default:
                    try writeThroughMapping(file, at: address, [UInt8](repeating: 0xAB, count: 4096))
                    zeroLater.append(address)
                }
            }
        }
        if updateUsage {
            try file.updateUsage()
        }
        // Data that becomes zero after the scan saw it committed.
        for address in zeroLater where rng.next() % 2 == 0 {
            try writeThroughMapping(file, at: address, [UInt8](repeating: 0, count: 4096))
        }
        // Free a quarter (whole ranges, one reference).
        for fr in live where rng.next() % 4 == 0 {
            file.decRef(fr)
        }
    }

    func testThousandsOfSegmentsOfMixedKindsAndReferences() throws {
        for (updateUsage, decommit) in [(true, false), (true, true), (false, false), (false, true)] {
            let seed = testSeed(0x5EED_0001, "mixed segments (updateUsage \(updateUsage), decommitZeroPages \(decommit))")
            let source = try MemoryFile()
            try populate(source, count: 2500, seed: seed, updateUsage: updateUsage)
            XCTAssertGreaterThan(source.usageSnapshot.segmentCount, 1000)
            let path = directory + "/mixed.ckpt"
            var options = SaveOptions()
            options.frameSize = 256 << 10  // many frames
            options.decommitZeroPages = decommit
            let report = try source.save(to: .path(path), options: options)
            XCTAssertGreaterThan(report.frames, 1)
            XCTAssertGreaterThan(report.zeroBytesDropped, 0)
            XCTAssertEqual(report.zeroBytesDecommitted, decommit ? report.zeroBytesDropped : 0)
            let restored = try MemoryFile.restore(from: .path(path))
            try assertRestored(restored, from: source, report: report)
            let meta = try CheckpointReader.verify(.path(path))
            XCTAssertEqual(meta.totals.storedBytes, report.storedBytes)
            XCTAssertEqual(meta.segments.count, report.segments)
        }
    }

    func testZeroPagesPunchedWhileTheWorkersRun() throws {
        // A batch limit of one run: the writer punches the zero pages of
        // every frame as it comes, while the workers compress the next.
        let seed = testSeed(0x5EED_0002, "zero pages punched during save")
        let source = try MemoryFile()
        try populate(source, count: 1500, seed: seed, updateUsage: true)
        let path = directory + "/zero-batches.ckpt"
        var options = SaveOptions()
        options.frameSize = 64 << 10
        options.zeroPageBatchLimit = 1
        options.decommitZeroPages = true
        let report = try source.save(to: .path(path), options: options)
        XCTAssertGreaterThan(report.zeroBytesDropped, 0)
        XCTAssertEqual(report.zeroBytesDecommitted, report.zeroBytesDropped)
        XCTAssertGreaterThan(report.frames, 10)
        let restored = try MemoryFile.restore(from: .path(path))
        try assertRestored(restored, from: source, report: report)
    }

    func testFramesStraddlingTheChunkBoundary() throws {
        let source = try MemoryFile()
        // One allocation of 2 GiB covers the boundary at 1 GiB.
        let fr = try source.allocate(2 << 30, kind: .tmpfs)
        let boundary: UInt64 = 1 << 30
        XCTAssertTrue(fr.contains(boundary))
        var rng = SplitMix64(seed: 7)
        // 16 MiB of data around the boundary, and pages at both ends.
        var data = [UInt8](repeating: 0, count: 16 << 20)
        for i in stride(from: 0, to: data.count, by: 64) {
            data[i] = UInt8(truncatingIfNeeded: rng.next() | 1)
        }
        try writeThroughMapping(source, at: boundary - (8 << 20), data)
        try writeThroughMapping(source, at: fr.start, [UInt8](repeating: 1, count: 4096))
        try writeThroughMapping(source, at: fr.end - 4096, [UInt8](repeating: 2, count: 4096))
        try source.updateUsage()
        let path = directory + "/boundary.ckpt"
        var options = SaveOptions()
        options.frameSize = 4 << 20
        let report = try source.save(to: .path(path), options: options)
        let meta = try CheckpointReader.readMetadata(from: .path(path), includeFrames: true)
        XCTAssertTrue(
            meta.frames.contains { frame in frame.runs.contains { $0.contains(boundary - 1) && $0.contains(boundary) } },
            "a frame's run crosses the 1 GiB boundary")
        let restored = try MemoryFile.restore(from: .path(path))
        try assertRestored(restored, from: source, report: report)
    }

    func testSparseTerabyteHoldingAFewMiB() throws {
        let source = try MemoryFile()
        let fr = try source.allocate(1 << 40, kind: .anonymous)
        var rng = SplitMix64(seed: 11)
        var written: [UInt64] = []
        for _ in 0..<64 {
            let page = (rng.next() % (fr.length / 4096)) * 4096 + fr.start
            try writeThroughMapping(source, at: page, [UInt8](repeating: UInt8(truncatingIfNeeded: rng.next() | 1), count: 4096))
            written.append(page)
        }
        try writeThroughMapping(source, at: fr.start + (300 << 30), [UInt8](repeating: 9, count: 4 << 20))
        // No updateUsage: the save must find the data itself, and cheaply.
        let path = directory + "/tera.ckpt"
        let report = try source.save(to: .path(path))
        XCTAssertEqual(report.scan, CommittedScan.seekData.rawValue)
        XCTAssertEqual(report.fileSize, 1 << 40)
        let restored = try MemoryFile.restore(from: .path(path))
        try assertRestored(restored, from: source, report: report)
        XCTAssertLessThan(report.checkpointBytes, 8 << 20)
    }

    /// Data found by SEEK_DATA next to pages already known committed: the
    /// new committed segment must merge with its neighbour, leaving the
    /// usage set maximally merged (checked by checkInvariants).
    func testSeekDataMergesWithKnownCommittedNeighbours() throws {
        let source = try MemoryFile()
        let fr = try source.allocate(64 * 4096, kind: .anonymous)
        try writeThroughMapping(source, at: fr.start, [UInt8](repeating: 1, count: 4096))
        try source.updateUsage()
        try writeThroughMapping(source, at: fr.start + 4096, [UInt8](repeating: 2, count: 4096))
        let path = directory + "/seek-merge.ckpt"
        let report = try source.save(to: .path(path))
        XCTAssertEqual(report.scan, CommittedScan.seekData.rawValue)
        let restored = try MemoryFile.restore(from: .path(path))
        try assertRestored(restored, from: source, report: report)
    }

    /// mincore cannot see swapped pages of a memfd; SEEK_DATA can. With the
    /// residency hidden (every page as if swapped), save must still store
    /// every page that holds data.
    func testPagesMincoreCannotSeeAreStillSaved() throws {
        var options = MemoryFileOptions()
        options.hideResidency = true
        let source = try MemoryFile(options: options)
        let fr = try source.allocate(8 << 20, kind: .pageCache)
        var rng = SplitMix64(seed: 13)
        for _ in 0..<400 {
            let page = fr.start + (rng.next() % 2048) * 4096
            try writeThroughMapping(source, at: page, [UInt8](repeating: 0x5A, count: 4096))
        }
        // Data dense in its range: mincore is chosen, sees nothing, and
        // SEEK_DATA must find the pages.
        let path = directory + "/hidden.ckpt"
        let report = try source.save(to: .path(path))
        XCTAssertEqual(report.scan, CommittedScan.mincoreThenSeekData.rawValue)
        let restored = try MemoryFile.restore(from: .path(path))
        try assertRestored(restored, from: source, report: report)
    }

    func testWSaveLayoutRoundTrip() throws {
        let source = try MemoryFile()
        let layout = WSave.Layout(allocated: 256 << 20, touched: 64 << 20)
        let ranges = try WSave.populate(source, layout)
        try source.updateUsage()
        let path = directory + "/wsave.ckpt"
        let report = try source.save(to: .path(path))
        let restored = try MemoryFile.restore(from: .path(path))
        XCTAssertEqual(try WSave.verify(fd: restored.fileDescriptor, ranges: ranges, layout), 0)
        try assertRestored(restored, from: source, report: report)
    }

    func testStreamingThroughAPipe() throws {
        let source = try MemoryFile()
        try populate(source, count: 300, seed: testSeed(0x5EED_0002, "pipe"), updateUsage: true)
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let (readEnd, writeEnd) = (fds[0], fds[1])
        let saved = StateLock<Result<SaveReport, any Error>?>(nil)
        let writer = try HostThread(name: "test-save") {
            let r = Result { try source.save(to: .descriptor(writeEnd)) }
            close(writeEnd)
            saved.withLock { $0 = r }
        }
        let restored = try MemoryFile.restore(from: .descriptor(readEnd))
        writer.join()
        close(readEnd)
        let report = try XCTUnwrap(saved.withLock { $0 }).get()
        try assertRestored(restored, from: source, report: report)
    }

    /// Copies of a checkpoint's own pages whose sources cross frames (four
    /// pages a frame): restored from a file, they are written from each
    /// frame as it is decompressed; from a pipe, copied at the end. Both
    /// give the source's memory.
    func testOwnCopiesAcrossFramesFromAFileAndAPipe() throws {
        let page = 4096
        let source = try MemoryFile()
        let fr = try source.allocate(UInt64(64 * page), kind: .anonymous)
        var rng = SplitMix64(seed: 0xC0_91E5)
        let distinct = (0..<6).map { _ in (0..<page).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
        // Pages 0-5 distinct; pages 20-23 repeat pages 1-4 (a source that
        // crosses from frame 0 into frame 1); pages 40-45 repeat 0-5 (from
        // frame 0 through frame 1); page 50 repeats page 5 alone.
        for (i, bytes) in distinct.enumerated() {
            try writeThroughMapping(source, at: fr.start + UInt64(i * page), bytes)
        }
        try writeThroughMapping(source, at: fr.start + UInt64(20 * page), Array(distinct[1...4].joined()))
        try writeThroughMapping(source, at: fr.start + UInt64(40 * page), Array(distinct.joined()))
        try writeThroughMapping(source, at: fr.start + UInt64(50 * page), distinct[5])
        var options = SaveOptions()
        options.frameSize = 4 * page
        let path = directory + "/copies.ckpt"
        let report = try source.save(to: .path(path), options: options)
        XCTAssertEqual(report.duplicateBytes, UInt64(11 * page), "pages stored once and referenced again")
        let metadata = try CheckpointReader.readMetadata(from: .path(path))
        XCTAssertTrue(
            metadata.references.contains { r in
                metadata.index.frame(holding: r.source) != metadata.index.frame(holding: r.sourceRange.end - 1)
            }, "a reference whose source crosses frames: \(metadata.references)")

        let fromFile = try MemoryFile.restore(from: .path(path))
        try assertRestored(fromFile, from: source, report: report)

        let fromPipe = try withPipe(feeding: try readFile(path)) { try MemoryFile.restore(from: .descriptor($0)) }
        try assertRestored(fromPipe, from: source, report: report)
    }

    func testVerifyAndMetadataFromAPipe() throws {
        let source = try MemoryFile()
        try populate(source, count: 100, seed: 3, updateUsage: true)
        let path = directory + "/p.ckpt"
        let report = try source.save(to: .path(path))
        for verify in [false, true] {
            let fd = open(path, O_RDONLY)
            var fds: [Int32] = [0, 0]
            XCTAssertEqual(pipe(&fds), 0)
            let writeEnd = fds[1]
            let feeder = try HostThread(name: "test-feed") {
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    _ = buffer.withUnsafeBytes { write(writeEnd, $0.baseAddress, n) }
                }
                close(writeEnd)
            }
            let meta = verify
                ? try CheckpointReader.verify(.descriptor(fds[0]))
                : try CheckpointReader.readMetadata(from: .descriptor(fds[0]))
            feeder.join()
            close(fds[0])
            close(fd)
            XCTAssertEqual(meta.totals.storedBytes, report.storedBytes)
            XCTAssertEqual(meta.checkpointLength, report.checkpointBytes)
        }
    }

    /// A checkpoint whose usage set has freed segments (references 0) puts
    /// them in the reclaim set: the reclaimer frees them.
    func testFreedSegmentsGoToTheReclaimer() throws {
        let path = directory + "/freed.ckpt"
        let segments = [
            SegmentRecord(range: FileRange(start: 0, end: 8192), refs: 1, kind: .anonymous),
            SegmentRecord(range: FileRange(start: 8192, end: 65536), refs: 0, kind: .system),
            SegmentRecord(range: FileRange(start: 65536, end: 69632), refs: 3, kind: .tmpfs),
        ]
        try writeCheckpoint(path: path, fileSize: 1 << 30, segments: segments, pages: [0: 1, 65536: 2])
        let restored = try MemoryFile.restore(from: .path(path))
        restored.waitForReclaim()
        try restored.checkInvariants()
        let shape = savedShape(restored.usageSnapshot)
        XCTAssertEqual(shape, [
            SegmentRecord(range: FileRange(start: 0, end: 8192), refs: 1, kind: .anonymous),
            SegmentRecord(range: FileRange(start: 65536, end: 69632), refs: 3, kind: .tmpfs),
        ])
        XCTAssertEqual(try readBytes(restored.fileDescriptor, FileRange(start: 65536, end: 65537)), [2])
        XCTAssertEqual(restored.accounting.snapshot()[.anonymous], 4096)
        XCTAssertEqual(restored.accounting.snapshot()[.tmpfs], 4096)
    }

    func testRawImageRoundTripKeepsHolesAndLength() throws {
        let image = directory + "/image.raw"
        let fd = open(image, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        // Data, a hole, a written zero page, a partial last page.
        let length: UInt64 = (40 << 20) + 1234
        XCTAssertEqual(ftruncate(fd, off_t(length)), 0)
        var rng = SplitMix64(seed: 21)
        func put(_ offset: UInt64, _ bytes: [UInt8]) {
            _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        }
        put(0, (0..<(1 << 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        put(16 << 20, [UInt8](repeating: 0, count: 8192))
        put(20 << 20, [UInt8](repeating: 7, count: 3 << 20))
        put(length - 100, [UInt8](repeating: 3, count: 100))
        fsync(fd)
        let checkpoint = directory + "/image.ckpt"
        let report = try RawImage.save(source: image, kind: .tmpfs, to: .path(checkpoint))
        // The 768 pages of sevens are stored once.
        XCTAssertEqual(report.storedBytes, (1 << 20) + 4096 + 4096)
        XCTAssertEqual(report.duplicateBytes, (3 << 20) - 4096)
        let restoredPath = directory + "/restored.raw"
        let meta = try RawImage.restore(from: .path(checkpoint), toImage: restoredPath)
        XCTAssertEqual(meta.header.dataSize, length)
        let original = try Data(contentsOf: URL(fileURLWithPath: image))
        let restoredData = try Data(contentsOf: URL(fileURLWithPath: restoredPath))
        XCTAssertEqual(original, restoredData)
        var st = stat()
        XCTAssertEqual(stat(restoredPath, &st), 0)
        XCTAssertEqual(UInt64(st.st_size), length)
        // Holes stay holes: only the non-zero pages take blocks.
        let dataBytes = report.storedBytes + report.duplicateBytes
        XCTAssertLessThanOrEqual(UInt64(st.st_blocks) * 512, dataBytes + 65536)
        XCTAssertGreaterThanOrEqual(UInt64(st.st_blocks) * 512, dataBytes - 4096)
    }
}
