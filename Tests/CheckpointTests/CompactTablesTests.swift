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
        let again = try ReferencesSection.decode(Array(encoder.finish()), offset: 0, dataEnd: 1 << 60, depth: 1)
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
        let bytes = Array(encoder.finish())
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

        let farBytes = Array(wideEncoder.finish())
        let withFar = try PageRunTable.decode(
            farBytes, offset: 0, runCount: wideEncoder.runCount, pageLimit: (1 << 34), section: section)
        XCTAssertEqual(withFar.ranges, runs + [far])
        XCTAssertEqual(withFar.ordinal(of: far.start + page), narrow.pageCount + 1)
        XCTAssertThrowsError(
            try PageRunTable.decode(farBytes, offset: 0, runCount: wideEncoder.runCount, pageLimit: at + 10, section: section),
            "a run past the page limit")
    }

    /// The reader decodes `REFS` and `PHSH`'s run table piece by piece as
    /// it reads them: any cut into pieces gives what the whole payload
    /// gives, and a damaged payload (cut short, a byte changed, a byte
    /// too many) the same error.
    func testTablesDecodedInPiecesMatchTheWhole() throws {
        let seed = testSeed(0x9A6E_0002, "tables in pieces")
        var rng = SplitMix64(seed: seed)
        var references = ReferencesSection.Encoder()
        var runs = PageRunEncoder()
        var at: UInt64 = 0
        for _ in 0..<3000 {
            at += 1 + rng.next() % 300
            let n = 1 + rng.next() % 9
            let link = Int(rng.next() % 3)
            // A source of link 0 well before its destination.
            let source = link == 0 ? rng.next() % (at / 2 + 1) : rng.next() % (1 << 30)
            references.add(PageReference(destination: FileRange(start: at * page, end: (at + n) * page), link: link, source: source * page))
            runs.add(FileRange(start: at * page, end: (at + n) * page))
            at += n + (rng.next() % 2)
        }
        let refsBytes = Array(references.finish())
        let runBytes = Array(runs.finish())
        let runCount = runs.runCount
        let dataEnd = (at + 1) * page
        let section = CheckpointSection.section(.pageHashes)

        func wholeRefs(_ bytes: [UInt8]) -> Result<[PageReference], CheckpointError> {
            Result { () throws(CheckpointError) in Array(try ReferencesSection.decode(bytes, offset: 100, dataEnd: dataEnd, depth: 2)) }
        }
        func piecesRefs(_ bytes: [UInt8], _ rng: inout SplitMix64) -> Result<[PageReference], CheckpointError> {
            var decoder = ReferencesSection.Decoder(offset: 100, length: UInt64(bytes.count), dataEnd: dataEnd, depth: 2)
            var i = 0
            return Result { () throws(CheckpointError) in
                while i < bytes.count {
                    let n = min(bytes.count - i, 1 + Int(rng.next() % 97))
                    try decoder.feed(Array(bytes[i..<i + n]))
                    i += n
                }
                return Array(try decoder.finish())
            }
        }
        func wholeRuns(_ bytes: [UInt8]) -> Result<[FileRange], CheckpointError> {
            Result { () throws(CheckpointError) in
                try PageRunTable.decode(bytes, offset: 100, runCount: runCount, pageLimit: at + 1, section: section).ranges
            }
        }
        func piecesRuns(_ bytes: [UInt8], _ rng: inout SplitMix64) -> Result<[FileRange], CheckpointError> {
            var i = 0
            return Result { () throws(CheckpointError) in
                var decoder = try PageRunTable.Decoder(
                    offset: 100, length: UInt64(bytes.count), runCount: runCount, pageLimit: at + 1, section: section)
                while i < bytes.count {
                    let n = min(bytes.count - i, 1 + Int(rng.next() % 97))
                    try decoder.feed(Array(bytes[i..<i + n]))
                    i += n
                }
                return try decoder.finish().ranges
            }
        }
        func same<T: Equatable & Collection>(_ a: Result<T, CheckpointError>, _ b: Result<T, CheckpointError>, _ what: String) {
            func describe(_ r: Result<T, CheckpointError>) -> String {
                switch r {
                case .success(let x): "\(x.count) entries"
                case .failure(let e): "\(e)"
                }
            }
            switch (a, b) {
            case (.success(let x), .success(let y)):
                XCTAssertTrue(x == y, "\(what): \(x.count) entries against \(y.count), seed \(seed)")
            case (.failure(let x), .failure(let y)):
                XCTAssertEqual("\(x)", "\(y)", "\(what), seed \(seed)")
            default:
                XCTFail("\(what): whole \(describe(a)), in pieces \(describe(b)), seed \(seed)")
            }
        }
        guard case .success(let decoded) = wholeRefs(refsBytes), case .success(let decodedRuns) = wholeRuns(runBytes) else {
            return XCTFail("the encoded tables do not decode, seed \(seed)")
        }
        XCTAssertEqual(decoded.count, 3000)
        XCTAssertEqual(decodedRuns.reduce(0) { $0 + $1.length }, runs.pageCount * page)
        for round in 0..<40 {
            var refs = refsBytes
            var table = runBytes
            switch round % 4 {
            case 0:
                break
            case 1:
                refs.removeLast(1 + Int(rng.next() % UInt64(refs.count - 16)))
                table.removeLast(1 + Int(rng.next() % UInt64(table.count - 1)))
            case 2:
                refs[16 + Int(rng.next() % UInt64(refs.count - 16))] ^= UInt8(1 << (rng.next() % 8))
                table[Int(rng.next() % UInt64(table.count))] ^= UInt8(1 << (rng.next() % 8))
            default:
                refs.append(0)
                table.append(0)
            }
            same(wholeRefs(refs), piecesRefs(refs, &rng), "REFS, round \(round)")
            same(wholeRuns(table), piecesRuns(table, &rng), "run table, round \(round)")
            if round % 4 == 0 {
                same(wholeRefs(refs), .success(decoded), "REFS, round \(round)")
            } else if round % 4 != 2 {
                XCTAssertThrowsError(try wholeRefs(refs).get(), "REFS, round \(round), seed \(seed)")
                XCTAssertThrowsError(try wholeRuns(table).get(), "run table, round \(round), seed \(seed)")
            }
        }
    }
}
