import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import Workloads

/// An eager restore's writes with UFFDIO_COPY (`UffdCopyTarget`): pages
/// written from several threads at once, across a chunk boundary, a page
/// written twice, and the memory after `finish()`. Run under
/// ThreadSanitizer by `make tsan`.
final class UffdCopyTargetTests: XCTestCase {
    /// The bytes of page `address` in write `round` (0 first, 1 for a page
    /// written again).
    static func page(_ address: UInt64, round: UInt8) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 4096)
        for i in stride(from: 0, to: 4096, by: 8) {
            let word = (address &+ UInt64(i)) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(round)
            withUnsafeBytes(of: word) { bytes.replaceSubrange(i..<i + 8, with: $0) }
        }
        return bytes
    }

    func makeTarget(_ file: MemoryFile) throws -> UffdCopyTarget {
        guard let target = UffdCopyTarget(file: file) else {
            // Root may always use userfaultfd on the kernels this project
            // supports: only an unprivileged run may go without.
            if geteuid() == 0 {
                XCTFail("userfaultfd is unavailable to root")
            }
            throw XCTSkip("userfaultfd is not available to this process")
        }
        return target
    }

    func testConcurrentRunsAcrossTheChunkBoundaryAndAPageWrittenTwice() throws {
        let seed = testSeed(0x0FFD_C0B1, "uffd copy target")
        var rng = SplitMix64(seed: seed)
        let file = try MemoryFile()
        let fr = try file.allocate(2 << 30, kind: .anonymous)
        let boundary: UInt64 = 1 << 30
        let window = FileRange(start: boundary - (8 << 20), end: boundary + (8 << 20))
        // Runs of 1 to 24 pages, with gaps, over the window.
        var runs: [FileRange] = []
        var at = window.start
        while at < window.end {
            at += (rng.next() % 3) * 4096
            let end = min(window.end, at + (1 + rng.next() % 24) * 4096)
            if at < end {
                runs.append(FileRange(start: at, end: end))
            }
            at = end
        }
        XCTAssertTrue(runs.contains { $0.contains(boundary - 1) || $0.contains(boundary) }, "seed \(seed)")
        let allRuns = runs
        let target = try makeTarget(file)
        // Four writers take the runs in turn.
        let writers = 4
        let failures = StateLock<[String]>([])
        DispatchQueue.concurrentPerform(iterations: writers) { w in
            for run in allRuns.indices where run % writers == w {
                var bytes: [UInt8] = []
                for address in stride(from: allRuns[run].start, to: allRuns[run].end, by: 4096) {
                    bytes += Self.page(address, round: 0)
                }
                do {
                    try bytes.withUnsafeBytes { try target.write($0, at: allRuns[run].start) }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        XCTAssertEqual(failures.withLock { $0 }, [], "seed \(seed)")
        // A page already there is replaced, as pwrite would.
        let again = runs[Int(rng.next() % UInt64(runs.count))].start
        try Self.page(again, round: 1).withUnsafeBytes { try target.write($0, at: again) }
        target.finish()

        let written = runs.flatMap { stride(from: $0.start, to: $0.end, by: 4096) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { buffer.deallocate() }
        for address in written {
            let expected = Self.page(address, round: address == again ? 1 : 0)
            try target.read(into: buffer, at: address)
            XCTAssertTrue(expected.elementsEqual(buffer), "page \(address) (pread), seed \(seed)")
            try file.forEachMappedSlice(FileRange(start: address, end: address + 4096)) { slice in
                XCTAssertTrue(expected.elementsEqual(UnsafeRawBufferPointer(slice)), "page \(address) (mapping), seed \(seed)")
            }
        }
        // Pages never written read as zero and take writes through the
        // mapping: nothing is registered any more.
        let writtenSet = Set(written)
        let holes = stride(from: window.start, to: window.end, by: 4096).filter { !writtenSet.contains($0) }
        XCTAssertFalse(holes.isEmpty, "seed \(seed)")
        for address in holes.prefix(16) + [fr.end - 4096] {
            try file.forEachMappedSlice(FileRange(start: address, end: address + 4096)) { slice in
                XCTAssertTrue(UnsafeRawBufferPointer(slice).allSatisfy { $0 == 0 }, "hole \(address), seed \(seed)")
                slice.storeBytes(of: 0xA5, toByteOffset: 0, as: UInt8.self)
            }
            try target.read(into: buffer, at: address)
            XCTAssertEqual(buffer[0], 0xA5, "hole \(address) written through the mapping, seed \(seed)")
        }
    }

    /// Without userfaultfd (pwrite), the restore gives the same file.
    func testRestoreWithPwriteAndWithUserfaultfdAgree() throws {
        let directory = try makeTemporaryDirectory("uffdtarget")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let seed = testSeed(0x0FFD_C0B2, "restore with and without userfaultfd")
        var rng = SplitMix64(seed: seed)
        let source = try MemoryFile()
        var ranges: [FileRange] = []
        for _ in 0..<200 {
            let fr = try source.allocate((1 + rng.next() % 8) * 4096, kind: .anonymous)
            ranges.append(fr)
            for address in stride(from: fr.start, to: fr.end, by: 4096) where rng.next() % 4 != 0 {
                // Some pages repeat another's contents: own copies.
                try writeThroughMapping(source, at: address, Self.page(rng.next() % 3 == 0 ? 0 : address, round: 0))
            }
        }
        let path = directory + "/pages.ckpt"
        var save = SaveOptions()
        save.frameSize = 64 << 10
        let report = try source.save(to: .path(path), options: save)
        XCTAssertGreaterThan(report.duplicateBytes, 0, "seed \(seed)")
        for userfaultfd in [true, false] {
            var options = RestoreOptions()
            options.writeWithUserfaultfd = userfaultfd
            let restored = try MemoryFile.restore(from: .path(path), options: options)
            for fr in ranges {
                XCTAssertTrue(
                    try sameContents(source.fileDescriptor, restored.fileDescriptor, in: fr),
                    "\(fr), userfaultfd \(userfaultfd), seed \(seed)")
            }
            XCTAssertEqual(try restored.totalUsage(), try source.totalUsage(), "userfaultfd \(userfaultfd), seed \(seed)")
            restored.destroy()
        }
    }
}
