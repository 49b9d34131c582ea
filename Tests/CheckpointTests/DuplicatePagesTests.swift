import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import TestSupport
import Workloads

/// How a save finds pages it has seen: by a key (XXH3 without a parent),
/// then byte for byte; only the pages stored are hashed with SHA-256.
final class DuplicatePagesTests: XCTestCase {
    /// Pages made to share a key: the table records only a few of them and
    /// a lookup compares only a few, whatever the number of such pages.
    func testPagesSharingAKeyCostAFewComparisonsEach() throws {
        var table = try DigestTable(expectedEntries: 100_000)
        let page = CheckpointFormat.pageSize
        for n in 0..<1000 {
            table.insert(key: 0xABCD, link: 0, source: UInt64(n) * page)
        }
        table.insert(key: 0x1234, link: 0, source: 5000 * page)
        XCTAssertEqual(table.count, DigestTable.maxPerKey + 1)

        var compared: [UInt64] = []
        let none = table.find(key: 0xABCD) { _, source in
            compared.append(source)
            return false
        }
        XCTAssertNil(none)
        XCTAssertEqual(compared, (0..<UInt64(DigestTable.maxPerKey)).map { $0 * page }, "the first pages of the key, each once")

        let third = table.find(key: 0xABCD) { _, source in source == 2 * page }
        XCTAssertEqual(third?.source, 2 * page)
        XCTAssertEqual(third?.link, 0)
        XCTAssertNil(table.find(key: 0xABCD) { _, source in source == 20 * page }, "a page past the limit was not recorded")
        XCTAssertEqual(table.find(key: 0x1234) { _, _ in true }?.source, 5000 * page)
        XCTAssertNil(table.find(key: 0x1240) { _, _ in true })
    }

    /// Hundreds of distinct pages, each copied again in a random order
    /// across small frames: more than a worker keeps for comparison, so
    /// pages are read back, pushed out and read back again. Every copy is
    /// a reference, and the memory restores exactly, from a MemoryFile and
    /// from a raw image (read with pread).
    func testCopiesOfManyDistinctPagesAreReferencedAndRestoreExactly() throws {
        let seed = testSeed(UInt64.random(in: 0..<UInt64.max), "DuplicatePagesTests")
        let dir = try ScratchDirectory(for: self)
        var rng = SplitMix64(seed: seed)
        let page = 4096
        let distinct = 600
        let copies = 1400
        let source = try MemoryFile()
        let fr = try source.allocate(UInt64((distinct + copies) * page), kind: .anonymous)
        let pages = (0..<distinct).map { _ in (0..<page / 8).flatMap { _ in withUnsafeBytes(of: rng.next()) { Array($0) } } }
        for (i, bytes) in pages.enumerated() {
            try writeThroughMapping(source, at: fr.start + UInt64(i * page), bytes)
        }
        for c in 0..<copies {
            let of = Int(rng.next() % UInt64(distinct))
            try writeThroughMapping(source, at: fr.start + UInt64((distinct + c) * page), pages[of])
        }
        var options = SaveOptions()
        options.frameSize = 64 * page
        let path = dir.path("copies.ckpt")
        let report = try source.save(to: .path(path), options: options)
        XCTAssertEqual(report.storedBytes, UInt64(distinct * page), "seed \(seed)")
        XCTAssertEqual(report.duplicateBytes, UInt64(copies * page), "seed \(seed)")
        let restored = try MemoryFile.restore(from: .path(path))
        XCTAssertTrue(try sameContents(source.fileDescriptor, restored.fileDescriptor, in: fr), "seed \(seed)")
        XCTAssertNoThrow(try CheckpointReader.verify(.path(path)), "seed \(seed)")

        // The same memory as a raw image.
        let image = dir.path("image.raw")
        let bytes = try readBytes(source.fileDescriptor, fr)
        try Data(bytes).write(to: URL(fileURLWithPath: image))
        let imagePath = dir.path("image.ckpt")
        let imageReport = try RawImage.save(source: image, kind: .anonymous, to: .path(imagePath), options: options)
        XCTAssertEqual(imageReport.storedBytes, UInt64(distinct * page), "seed \(seed)")
        XCTAssertEqual(imageReport.duplicateBytes, UInt64(copies * page), "seed \(seed)")
        let restoredImage = dir.path("restored.raw")
        _ = try RawImage.restore(from: .path(imagePath), toImage: restoredImage)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: restoredImage)), Data(bytes), "seed \(seed)")
    }
}
