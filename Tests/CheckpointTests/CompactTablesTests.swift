import PGAlloc
import Workloads
import XCTest

@testable import Checkpoint

/// The tables a reader holds for a whole checkpoint (its references, the
/// runs of pages its hashes list) are kept compact: these check that the
/// compact forms give back what was encoded, at the limits of the compact
/// fields too.
final class CompactTablesTests: XCTestCase {
    private let page = CheckpointFormat.pageSize

    func testAPageReferenceKeepsItsFieldsIn24Bytes() {
        XCTAssertEqual(MemoryLayout<PageReference>.stride, 24)
        let most = PageReference.maxPages * page
        var r = PageReference(destination: FileRange(start: 1 << 50, end: (1 << 50) + most), link: 7, source: 1 << 44)
        XCTAssertEqual(r.destination, FileRange(start: 1 << 50, end: (1 << 50) + most))
        XCTAssertEqual(r.link, 7)
        XCTAssertEqual(r.sourceRange, FileRange(start: 1 << 44, end: (1 << 44) + most))
        r.destination.end = r.destination.start + 3 * page
        r.link = 0
        XCTAssertEqual(r.destination.length, 3 * page)
        XCTAssertEqual(r.link, 0)
        XCTAssertEqual(r.sourceRange.length, 3 * page)
    }

    /// An entry of `REFS` longer than one reference gives is read as
    /// several that continue one another; the encoder never joins
    /// references past that length.
    func testAReferenceEntryLongerThanAReferenceIsSplit() throws {
        let pages = PageReference.maxPages + 5
        var w = ByteWriter()
        w.u64(1, ReferencesSection.entryCount)
        w.u64(pages, ReferencesSection.referencedPages)
        w.leb128(10)  // gap
        w.leb128(pages)
        w.leb128(1)  // link
        w.leb128(ReferencesSection.zigzag(-8))  // source page 2
        let out = try ReferencesSection.decode(w.bytes, offset: 0, dataEnd: 1 << 60, depth: 1)
        XCTAssertEqual(out.count, 2)
        XCTAssertEqual(out[0].destination, FileRange(start: 10 * page, end: (10 + PageReference.maxPages) * page))
        XCTAssertEqual(out[0].source, 2 * page)
        XCTAssertEqual(out[1].destination, FileRange(start: out[0].destination.end, end: (10 + pages) * page))
        XCTAssertEqual(out[1].source, out[0].sourceRange.end)
        XCTAssertEqual(out.map(\.link), [1, 1])

        var encoder = ReferencesSection.Encoder()
        for r in out {
            encoder.add(r)
        }
        let again = try ReferencesSection.decode(encoder.finish(), offset: 0, dataEnd: 1 << 60, depth: 1)
        XCTAssertEqual(again, out)
    }

    /// Runs decoded for a file below 2^32 pages (kept in 32 bits) and for a
    /// larger one (64 bits) answer alike; the larger one also holds runs
    /// past 2^32 pages.
    func testPageRunsAnswerAlikeIn32And64Bits() throws {
        let seed: UInt64 = 0x9A6E_5EED
        print("testPageRunsAnswerAlikeIn32And64Bits seed \(seed)")
        var rng = SplitMix64(seed: seed)
        var encoder = PageRunEncoder()
        var at: UInt64 = 0
        var runs: [FileRange] = []
        for _ in 0..<500 {
            at += 1 + rng.next() % 5
            let n = 1 + rng.next() % 9
            let r = FileRange(start: at * page, end: (at + n) * page)
            encoder.add(r)
            runs.append(r)
            at += n
        }
        let far = FileRange(start: (1 << 33) * page, end: ((1 << 33) + 4) * page)
        var wideEncoder = encoder
        wideEncoder.add(far)
        let bytes = encoder.finish()
        let section = CheckpointSection.section(.pageHashes)
        let narrow = try PageRunTable.decode(bytes, offset: 0, runCount: encoder.runCount, pageLimit: at + 10, section: section)
        let wide = try PageRunTable.decode(
            bytes, offset: 0, runCount: encoder.runCount, pageLimit: UInt64(UInt32.max) + 10, section: section)
        XCTAssertEqual(narrow.ranges, runs)
        XCTAssertEqual(wide.ranges, runs)
        XCTAssertEqual(narrow.pageCount, wide.pageCount)
        var hint = 0
        for _ in 0..<2000 {
            let p = rng.next() % (at + 2)
            let range = FileRange(start: p * page, end: (p + 1 + rng.next() % 3) * page)
            XCTAssertEqual(narrow.ordinal(of: p * page), wide.ordinal(of: p * page), "page \(p), seed \(seed)")
            XCTAssertEqual(narrow.contains(range), wide.contains(range), "\(range), seed \(seed)")
            XCTAssertEqual(narrow.contains(range, hint: &hint), wide.contains(range), "\(range), seed \(seed)")
            XCTAssertEqual(narrow.overlaps(range), wide.overlaps(range), "\(range), seed \(seed)")
            XCTAssertEqual(
                narrow.stretches(in: range).map { [$0.address, $0.ordinal, $0.pages] },
                wide.stretches(in: range).map { [$0.address, $0.ordinal, $0.pages] }, "\(range), seed \(seed)")
        }

        let farBytes = wideEncoder.finish()
        let withFar = try PageRunTable.decode(
            farBytes, offset: 0, runCount: wideEncoder.runCount, pageLimit: (1 << 34), section: section)
        XCTAssertEqual(withFar.ranges, runs + [far])
        XCTAssertEqual(withFar.ordinal(of: far.start + page), narrow.pageCount + 1)
        XCTAssertThrowsError(
            try PageRunTable.decode(farBytes, offset: 0, runCount: wideEncoder.runCount, pageLimit: at + 10, section: section),
            "a run past the page limit")
    }
}
