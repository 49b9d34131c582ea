import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import TestSupport
import Workloads
import Synchronization
import CLinuxShim

/// A W-save file of `allocated` bytes, every `stride`-th page written,
/// saved with `frameSize` frames to `path`.
func makeWSaveCheckpoint(
    _ path: String, allocated: UInt64 = 256 << 20, touched: UInt64 = 64 << 20, frameSize: Int = 256 << 10
) throws -> (layout: WSave.Layout, ranges: [FileRange]) {
    let layout = WSave.Layout(allocated: allocated, touched: touched)
    let file = try MemoryFile()
    defer { file.destroy() }
    let ranges = try WSave.populate(file, layout)
    try file.updateUsage()
    var options = SaveOptions()
    options.frameSize = frameSize
    _ = try file.save(to: .path(path), options: options)
    return (layout, ranges)
}

/// Lazy restores: the file is usable before its frames are loaded; every
/// access waits only for what it needs; the result equals an eager
/// restore's.
final class LazyRestoreTests: XCTestCase {
    func makeCheckpoint(
        _ path: String, allocated: UInt64 = 256 << 20, touched: UInt64 = 64 << 20, frameSize: Int = 256 << 10
    ) throws -> (layout: WSave.Layout, ranges: [FileRange]) {
        try makeWSaveCheckpoint(path, allocated: allocated, touched: touched, frameSize: frameSize)
    }

    func lazyOptions(_ configure: (inout LazyRestoreOptions) -> Void = { _ in }) -> RestoreOptions {
        var lazy = LazyRestoreOptions()
        configure(&lazy)
        var options = RestoreOptions()
        options.mode = .lazy(lazy)
        return options
    }

    /// The chunk mappings of `file`: raw access, as a VMM using them as
    /// guest memory would make, which only the fault handler sees.
    func chunks(_ file: MemoryFile) throws -> [(base: UnsafeMutableRawPointer, offset: UInt64, length: Int)] {
        var out: [(UnsafeMutableRawPointer, UInt64, Int)] = []
        try file.forEachChunkMapping { out.append(($0, $1, $2)) }
        return out.map { (base: $0.0, offset: $0.1, length: $0.2) }
    }

    func rawPointer(_ file: MemoryFile, _ offset: UInt64) throws -> UnsafeMutableRawPointer {
        let c = try chunks(file).first { offset >= $0.offset && offset < $0.offset + UInt64($0.length) }!
        return c.base + Int(offset - c.offset)
    }

    /// The usage set and accounting of a file, to compare two files.
    func shape(_ file: MemoryFile) -> (String, MemoryStats) {
        (file.description, file.accounting.snapshot())
    }

    func testLazyRestoreEqualsEagerThroughRawAccess() throws {
        let dir = try ScratchDirectory(for: self)
        let path = dir.path("c")
        let (layout, ranges) = try makeCheckpoint(path)
        let eager = try MemoryFile.restore(from: .path(path))
        defer { eager.destroy() }

        let started = ContinuousClock.now
        let lazy = try MemoryFile.restore(from: .path(path), options: lazyOptions { $0.backgroundLoading = false })
        defer { lazy.destroy() }
        print("lazy restore returned after \(started.duration(to: .now))")
        XCTAssertTrue(lazy.isLoading)
        let before = try XCTUnwrap(lazy.loadProgress)
        XCTAssertEqual(before.framesDone, 0, "nothing loaded before anything is touched")
        // At once: the segments (ranges, kinds, references) and the
        // accounting; which pages are known committed follows as frames load.
        XCTAssertEqual(savedShape(lazy.usageSnapshot), savedShape(eager.usageSnapshot), "usage set in place at once")
        XCTAssertEqual(shape(lazy).1, shape(eager).1, "accounting in place at once")
        XCTAssertNoThrow(try lazy.checkInvariants(), "accounting equals the known-committed pages plus those accounted in advance")

        // Two threads read every page through the raw mapping, in
        // different orders: each read faults, loads its frame, and sees the
        // saved bytes.
        let pageCount = Int(layout.allocated / 4096)
        let expected = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { expected.deallocate() }
        let mismatches = Atomic<Int>(0)
        let bases = try ranges.map { UInt(bitPattern: try rawPointer(lazy, $0.start)) }
        DispatchQueue.concurrentPerform(iterations: 2) { t in
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
            let want = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
            defer {
                buffer.deallocate()
                want.deallocate()
            }
            for i in 0..<pageCount {
                let page = t == 0 ? i : pageCount - 1 - i
                let a = page / Int(WSave.pagesPerRange)
                let j = UInt64(page) % WSave.pagesPerRange
                buffer.copyMemory(from: UnsafeRawPointer(bitPattern: bases[a] + UInt(j * 4096))!, byteCount: 4096)
                if j % layout.stride == 0 {
                    WSave.fillPage(want, UInt64(a) * WSave.pagesPerRange + j)
                } else {
                    memset(want, 0, 4096)
                }
                if memcmp(buffer, want, 4096) != 0 {
                    mismatches.add(1, ordering: .relaxed)
                }
            }
        }
        XCTAssertEqual(mismatches.load(ordering: .relaxed), 0, "pages read through the mapping differ from the saved ones")
        try lazy.waitUntilLoaded()
        XCTAssertFalse(lazy.isLoading, "a fully loaded file forgets its loader")
        XCTAssertEqual(try WSave.verify(fd: lazy.fileDescriptor, ranges: ranges, layout), 0)
        XCTAssertTrue(try sameContents(lazy.fileDescriptor, eager.fileDescriptor, in: FileRange(start: 0, end: lazy.totalSize)))
        XCTAssertEqual(shape(lazy).0, shape(eager).0)
        XCTAssertEqual(shape(lazy).1, shape(eager).1)
        XCTAssertNoThrow(try lazy.checkInvariants())
        // (Reading the holes through the mapping committed them, as it would
        // have in any file: the files' block counts differ for that reason
        // alone.)
        _ = expected
    }

    func testBackgroundLoadingFinishesAlone() throws {
        let dir = try ScratchDirectory(for: self)
        let path = dir.path("c")
        let (layout, ranges) = try makeCheckpoint(path)
        let lazy = try MemoryFile.restore(from: .path(path), options: lazyOptions())
        defer { lazy.destroy() }
        let deadline = ContinuousClock.now + .seconds(60)
        while lazy.isLoading && ContinuousClock.now < deadline {
            usleep(2000)
        }
        XCTAssertFalse(lazy.isLoading, "background loading did not finish")
        XCTAssertEqual(try WSave.verify(fd: lazy.fileDescriptor, ranges: ranges, layout), 0)
    }

    /// A loaded frame forgets its header and its runs of pages, and the
    /// header of a frame its own copies come from goes once the last unit
    /// of them is loaded: what the loader holds shrinks as frames load, and
    /// is nothing once all are.
    func testLoadedFramesForgetTheirRuns() throws {
        let dir = try ScratchDirectory(for: self)
        let path = dir.path("c")
        // Dense W-save memory: a frame's stored pages lie in hundreds of runs.
        let (layout, ranges) = try makeWSaveCheckpoint(path, allocated: 64 << 20, touched: 64 << 20, frameSize: 256 << 10)
        let lazy = try MemoryFile.restore(from: .path(path), options: lazyOptions { $0.backgroundLoading = false })
        defer { lazy.destroy() }
        let loader = try XCTUnwrap(lazy.core.pendingContents.current as? LazyLoader)
        // Half the file through the API: its frames load, the rest wait.
        let half = FileRange(start: ranges[0].start, end: ranges[0].start + 32 << 20)
        try lazy.forEachMappedSlice(half) { _ in }
        // Decommitting zero pages of the other half (every 64th such page)
        // reads their frames' headers without loading them.
        var zeros = 0
        for p in UInt64(8192)..<16384 where WSave.pageClass(p) == 0 {
            zeros += 1
            if zeros % 64 == 0 {
                try lazy.decommit(FileRange(start: ranges[0].start + p * 4096, end: ranges[0].start + (p + 1) * 4096))
            }
        }
        XCTAssertGreaterThan(loader.heldRuns, 100, "frames read but not loaded hold their runs")
        try lazy.waitUntilLoaded()
        XCTAssertEqual(loader.heldRuns, 0)
        XCTAssertEqual(try WSave.verify(fd: lazy.fileDescriptor, ranges: ranges, layout), 0)
    }

    func testAPIAccessWaitsOnlyForItsFrames() throws {
        let dir = try ScratchDirectory(for: self)
        let path = dir.path("c")
        let (layout, ranges) = try makeCheckpoint(path)
        let lazy = try MemoryFile.restore(from: .path(path), options: lazyOptions { $0.backgroundLoading = false })
        defer { lazy.destroy() }
        // A stored page (not of the all-zero class) of the third range,
        // through the API.
        let expected = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { expected.deallocate() }
        var j: UInt64 = 0
        repeat {
            j += layout.stride
            WSave.fillPage(expected, 2 * WSave.pagesPerRange + j)
        } while pg_is_zero(expected, 4096) == 1
        let page = FileRange(start: ranges[2].start + j * 4096, end: ranges[2].start + (j + 1) * 4096)
        try lazy.forEachMappedSlice(page) { slice in
            XCTAssertEqual(memcmp(slice.baseAddress!, expected, 4096), 0)
        }
        let progress = try XCTUnwrap(lazy.loadProgress)
        XCTAssertEqual(progress.framesDone, 1, "one frame loaded for one page: \(progress)")
    }

    /// A lazy restore that records the order its frames were needed in
    /// passes it to the next save: the frames holding those pages, in that
    /// order, through the API and through raw access.
    func testRecordedAccessOrderBecomesThePrefetchOrder() throws {
        let dir = try ScratchDirectory(for: self)
        let path = dir.path("c")
        _ = try makeCheckpoint(path)
        let metadata = try CheckpointReader.readMetadata(from: .path(path), includeFrames: true)
        XCTAssertTrue(metadata.prefetchOrder.isEmpty)
        let lazy = try MemoryFile.restore(from: .path(path), options: lazyOptions {
            $0.backgroundLoading = false
            $0.recordAccessOrder = AccessRecording(seconds: 60, frameShare: 1)
        })
        defer { lazy.destroy() }
        // A page of frame 5, then (raw) of frame 2, then of frame 5 again
        // (not recorded twice), then (API) of frame 7.
        let pages = [5, 2, 5, 7].map { metadata.frames[$0].runs[0].start }
        try lazy.forEachMappedSlice(FileRange(start: pages[0], end: pages[0] + 4096)) { _ in }
        let chunks = try lazy.withChunkMappings { $0.map { (UInt(bitPattern: $0.address), $0.offset, UInt64($0.length)) } }
        var rawBytes: [UInt64] = []
        for address in pages[1...2] {
            let c = try XCTUnwrap(chunks.first { address >= $0.1 && address < $0.1 + $0.2 })
            rawBytes.append(UnsafeRawPointer(bitPattern: c.0 + UInt(address - c.1))!.load(as: UInt64.self))
        }
        try lazy.forEachMappedSlice(FileRange(start: pages[3], end: pages[3] + 4096)) { _ in }
        try lazy.waitUntilLoaded()
        // What the raw loads saw is what the file holds.
        for (address, seen) in zip(pages[1...2], rawBytes) {
            try lazy.forEachMappedSlice(FileRange(start: address, end: address + 4096)) { slice in
                XCTAssertEqual(slice.load(as: UInt64.self), seen)
            }
        }
        let saved = dir.path("ordered")
        var options = SaveOptions()
        options.frameSize = 256 << 10
        _ = try lazy.save(to: .path(saved), options: options)
        let next = try CheckpointReader.readMetadata(from: .path(saved), includeFrames: true)
        let expected = [pages[0], pages[1], pages[3]].map { page in
            UInt64(next.index.firstIndex { $0.firstAddress <= page && page < $0.endAddress }!)
        }
        XCTAssertEqual(next.prefetchOrder, expected)
    }

    func testUserWritesBeforeLoadingAreKept() throws {
        let dir = try ScratchDirectory(for: self)
        let path = dir.path("c")
        let (layout, ranges) = try makeCheckpoint(path)
        let lazy = try MemoryFile.restore(from: .path(path), options: lazyOptions { $0.backgroundLoading = false })
        defer { lazy.destroy() }
        // A raw write to a stored page nobody loaded yet, and an API write
        // to another.
        let rawPage = ranges[1].start
        let apiPage = ranges[3].start + 4 * 4096
        try rawPointer(lazy, rawPage).storeBytes(of: 0xDEAD_BEEF, as: UInt64.self)
        try lazy.forEachMappedSlice(FileRange(start: apiPage, end: apiPage + 4096)) { slice in
            slice.storeBytes(of: 0xFEED_FACE, as: UInt64.self)
        }
        try lazy.waitUntilLoaded()
        var word: UInt64 = 0
        _ = pread(lazy.fileDescriptor, &word, 8, off_t(rawPage))
        XCTAssertEqual(word, 0xDEAD_BEEF, "the loader overwrote a raw write")
        _ = pread(lazy.fileDescriptor, &word, 8, off_t(apiPage))
        XCTAssertEqual(word, 0xFEED_FACE, "the loader overwrote an API write")
        // The rest of those pages is the saved data.
        let expected = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { expected.deallocate() }
        WSave.fillPage(expected, WSave.pagesPerRange)
        var got = [UInt8](repeating: 0, count: 4096)
        _ = pread(lazy.fileDescriptor, &got, 4096, off_t(rawPage))
        XCTAssertEqual(memcmp(Array(got[8...]), expected + 8, 4088), 0)
        _ = layout
    }

    func testFreedAndDecommittedPagesAreNeverLoaded() throws {
        let dir = try ScratchDirectory(for: self)
        let path = dir.path("c")
        let (_, ranges) = try makeCheckpoint(path)
        let lazy = try MemoryFile.restore(from: .path(path), options: lazyOptions { $0.backgroundLoading = false })
        defer { lazy.destroy() }
        let total = try XCTUnwrap(lazy.loadProgress).bytesTotal
        lazy.decRef(ranges[0])
        try lazy.decommit(ranges[1])
        try lazy.waitUntilLoaded()
        lazy.waitForReclaim()
        // Nothing of the two ranges was written into the file.
        XCTAssertEqual(try dataExtents(lazy.fileDescriptor, in: ranges[0]), [])
        XCTAssertEqual(try dataExtents(lazy.fileDescriptor, in: ranges[1]), [])
        XCTAssertFalse(lazy.isLoading)
        // The freed range comes back zeroed.
        let again = try lazy.allocate(64 << 20, kind: .anonymous, direction: .topDown)
        XCTAssertEqual(again, ranges[0])
        try lazy.forEachMappedSlice(again) { slice in
            XCTAssertEqual(pg_is_zero(slice.baseAddress!, slice.count), 1)
        }
        _ = total
    }

    func testDestroyWhileLoadingStopsTheLoader() throws {
        let dir = try ScratchDirectory(for: self)
        let path = dir.path("c")
        _ = try makeCheckpoint(path, allocated: 256 << 20, touched: 256 << 20)
        for _ in 0..<5 {
            let lazy = try MemoryFile.restore(from: .path(path), options: lazyOptions())
            usleep(2000)
            lazy.destroy()
        }
    }

    func testWithoutUserfaultfd() throws {
        let dir = try ScratchDirectory(for: self)
        let path = dir.path("c")
        let (layout, ranges) = try makeCheckpoint(path)
        // Load eagerly: the file comes back complete.
        let eager = try MemoryFile.restore(from: .path(path), options: lazyOptions { $0.simulateNoUserfaultfd = true })
        XCTAssertFalse(eager.isLoading)
        XCTAssertEqual(try WSave.verify(fd: eager.fileDescriptor, ranges: ranges, layout), 0)
        eager.destroy()
        // Refuse.
        XCTAssertThrowsError(try MemoryFile.restore(from: .path(path), options: lazyOptions {
            $0.simulateNoUserfaultfd = true
            $0.withoutUserfaultfd = .fail
        })) { error in
            guard case LazyRestoreError.userfaultfdUnavailable = error else { return XCTFail("\(error)") }
        }
        // API only: lazy, and API access waits.
        let api = try MemoryFile.restore(from: .path(path), options: lazyOptions {
            $0.simulateNoUserfaultfd = true
            $0.withoutUserfaultfd = .apiOnly
            $0.backgroundLoading = false
        })
        defer { api.destroy() }
        XCTAssertTrue(api.isLoading)
        let expected = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { expected.deallocate() }
        WSave.fillPage(expected, 0)
        try api.forEachMappedSlice(FileRange(start: ranges[0].start, end: ranges[0].start + 4096)) { slice in
            XCTAssertEqual(memcmp(slice.baseAddress!, expected, 4096), 0)
        }
    }

    func testLazyRestoreFromAPipeIsRefused() throws {
        let dir = try ScratchDirectory(for: self)
        let path = dir.path("c")
        _ = try makeCheckpoint(path, allocated: 64 << 20, touched: 1 << 20)
        XCTAssertThrowsError(try withPipe(feeding: try readFile(path)) { fd in
            try MemoryFile.restore(from: .descriptor(fd), options: lazyOptions())
        }) { error in
            guard case LazyRestoreError.needsRandomAccess = error else { return XCTFail("\(error)") }
        }
    }
}

/// Frames that fail while loading: no wrong byte becomes visible.
final class LazyRestoreFailureTests: XCTestCase {
    static let childVariable = "PGSNAP_LAZY_SIGBUS_CHILD"

    /// A checkpoint whose frames `damaged` (indices) have a payload byte
    /// flipped; returns its metadata (read before the damage).
    func damagedCheckpoint(_ path: String, damaged: [Int]) throws -> (CheckpointMetadata, [FileRange], WSave.Layout) {
        let (layout, ranges) = try makeWSaveCheckpoint(path)
        let metadata = try CheckpointReader.readMetadata(from: .path(path), includeFrames: true)
        let fd = open(path, O_RDWR)
        defer { close(fd) }
        for f in damaged {
            let at = off_t(metadata.index[f].offset) + off_t(metadata.frames[f].headerLength) + off_t(metadata.frames[f].compressedLength / 2)
            var byte: UInt8 = 0
            _ = pread(fd, &byte, 1, at)
            byte ^= 0x40
            _ = pwrite(fd, &byte, 1, at)
        }
        return (metadata, ranges, layout)
    }

    func testDamagedFramesFailEveryWaiterAndNothingElse() throws {
        let dir = try ScratchDirectory(for: self)
        let path = dir.path("c")
        let probe = try CheckpointReader.readMetadata(from: .path(try { () throws -> String in
            _ = try makeWSaveCheckpoint(dir.path("probe"))
            return dir.path("probe")
        }()))
        let last = Int(probe.totals.frameCount) - 1
        let damaged = [0, last / 2, last]
        let (metadata, _, layout) = try damagedCheckpoint(path, damaged: damaged)
        let failures = Atomic<Int>(0)
        var lazy = LazyRestoreOptions()
        lazy.backgroundLoading = false
        lazy.onFailure = { _ in failures.add(1, ordering: .relaxed) }
        var options = RestoreOptions()
        options.mode = .lazy(lazy)
        let file = try MemoryFile.restore(from: .path(path), options: options)
        defer { file.destroy() }

        for f in damaged {
            let run = metadata.frames[f].runs[0]
            let page = FileRange(start: run.start, end: run.start + 4096)
            // Three threads wait for the same frame: every one learns it
            // failed.
            let outcomes = StateLock<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 3) { _ in
                do {
                    try file.forEachMappedSlice(page) { _ in }
                    outcomes.withLock { $0.append("success") }
                } catch let e as CheckpointError {
                    outcomes.withLock { $0.append("\(e.reason)") }
                } catch {
                    outcomes.withLock { $0.append("other \(error)") }
                }
            }
            XCTAssertEqual(outcomes.withLock { $0 }, Array(repeating: "checksumMismatch", count: 3), "frame \(f)")
        }
        XCTAssertEqual(failures.load(ordering: .relaxed), 3, "onFailure once per damaged frame")
        XCTAssertThrowsError(try file.waitUntilLoaded())
        // The copies of pages stored in a damaged frame (W-save pages repeat)
        // fail with it, once per unit (frame they come from and window of
        // address space they go to).
        let copies = try ReferencePlan(references: metadata.references, window: LazyLoader.referenceWindow) { _ in metadata.index }.units.filter { damaged.contains($0.frame) }
        XCTAssertEqual(failures.load(ordering: .relaxed), 3 + copies.count, "onFailure once per unit that failed")
        let progress = try XCTUnwrap(file.loadProgress)
        XCTAssertEqual(progress.framesFailed, 3 + copies.count)
        XCTAssertTrue(progress.isComplete)
        XCTAssertTrue(file.isLoading, "a file with failed frames keeps its loader, so that access to them keeps failing")

        // Every other frame holds its data.
        var intact = 0
        for (f, frame) in metadata.frames.enumerated() where !damaged.contains(f) {
            let run = frame.runs[0]
            try file.forEachMappedSlice(FileRange(start: run.start, end: run.start + 4096)) { _ in }
            intact += 1
        }
        XCTAssertGreaterThan(intact, 0)
        _ = layout

        // A damaged range freed and allocated again is plain memory.
        let run = metadata.frames[0].runs[0]
        XCTAssertNoThrow(try file.decommit(FileRange(start: run.start, end: run.start + 4096)))
    }

    /// Raw access to a page of a failed frame raises SIGBUS: in a child
    /// process (this test binary, re-run on this test).
    func testRawAccessToAFailedFrameRaisesSIGBUS() throws {
        if let path = ProcessInfo.processInfo.environment[Self.childVariable] {
            var lazy = LazyRestoreOptions()
            lazy.backgroundLoading = false
            var options = RestoreOptions()
            options.mode = .lazy(lazy)
            let metadata = try CheckpointReader.readMetadata(from: .path(path), includeFrames: true)
            let file = try MemoryFile.restore(from: .path(path), options: options)
            let run = metadata.frames[0].runs[0]
            var base: UnsafeMutableRawPointer?
            try file.forEachChunkMapping { b, offset, length in
                if run.start >= offset && run.start < offset + UInt64(length) {
                    base = b + Int(run.start - offset)
                }
            }
            let value = base!.load(as: UInt64.self)
            FileHandle.standardError.write("read \(value) from a failed frame\n".data(using: .utf8)!)
            exit(86)
        }
        let dir = try ScratchDirectory(for: self)
        let path = dir.path("c")
        _ = try damagedCheckpoint(path, damaged: [0])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        process.arguments = ["CheckpointTests.LazyRestoreFailureTests/testRawAccessToAFailedFrameRaisesSIGBUS"]
        var environment = ProcessInfo.processInfo.environment
        environment[Self.childVariable] = path
        environment["SWIFT_BACKTRACE"] = "enable=no"
        // Under ThreadSanitizer, let the signal kill the child as it would
        // without the sanitizer.
        environment["TSAN_OPTIONS"] = "handle_sigbus=0"
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        let errorPipe = Pipe()
        process.standardError = errorPipe
        try process.run()
        let stderr = String(decoding: errorPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal, "the child exited \(process.terminationStatus): \(stderr)")
        XCTAssertEqual(process.terminationStatus, SIGBUS, "the child died of signal \(process.terminationStatus)")
    }
}
