// allocateAndFill: a reader that fills everything, one that ends early
// (the result is cut to whole pages, the rest freed), one that throws
// part-way (PartialFillError, the filled pages stay allocated), and
// populate.

import XCTest

@testable import PGAlloc

/// A reader over a byte source `(offset) -> byte`, handing out at most
/// `chunk` bytes a call, ending after `total` bytes, optionally throwing
/// once `throwAfter` bytes were read.
private final class MFPatternReader {
    struct Failure: Error, Equatable {}

    let total: Int
    let chunk: Int
    let throwAfter: Int?
    private(set) var offset = 0
    private(set) var bufferSizes: [Int] = []

    init(total: Int, chunk: Int, throwAfter: Int? = nil) {
        self.total = total
        self.chunk = chunk
        self.throwAfter = throwAfter
    }

    static func byte(at offset: Int) -> UInt8 { UInt8(truncatingIfNeeded: offset &* 31 &+ offset >> 12 &+ 7) }

    func read(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        bufferSizes.append(buffer.count)
        if let throwAfter, offset >= throwAfter {
            throw Failure()
        }
        var n = min(buffer.count, chunk, total - offset)
        if let throwAfter {
            n = min(n, throwAfter - offset)
        }
        for i in 0..<n {
            buffer[i] = MFPatternReader.byte(at: offset + i)
        }
        offset += n
        return n
    }

    /// Whether `fr` holds the pattern from offset 0.
    static func matches(_ file: MemoryFile, _ fr: FileRange) throws -> Bool {
        var offset = 0
        var ok = true
        try file.forEachMappedSlice(fr) { buffer in
            for b in buffer {
                if b != byte(at: offset) {
                    ok = false
                }
                offset += 1
            }
        }
        return ok
    }
}

final class MemoryFileFillTests: XCTestCase {
    func testReaderThatFillsEverything() throws {
        let file = try mfMakeFile()
        let length = mfPages(10)
        let reader = MFPatternReader(total: Int(length), chunk: 5000)
        let fr = try file.allocateAndFill(length, kind: .pageCache) { try reader.read($0) }
        XCTAssertEqual(fr, mfRange(mfGiB - length, mfGiB))
        XCTAssertEqual(reader.offset, Int(length))
        XCTAssertEqual(reader.bufferSizes.first, Int(length), "the first call sees the whole block")
        XCTAssertTrue(try MFPatternReader.matches(file, fr))
        mfAssertSegments(file, [MFSegment(fr, UsageInfo(kind: .pageCache))])
        try file.mfScan()
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.pageCache: length]))
        mfAssertInvariants(file)
    }

    func testShortReaderKeepsWholePagesAndFreesTheRest() throws {
        let gate = MFReclaimGate()
        let file = try mfMakeFile { $0.fallocateFailure = gate.hook }
        let length = mfPages(8)
        // 3.5 pages, then end of input.
        let reader = MFPatternReader(total: Int(mfPages(3) + mfPage / 2), chunk: 3000)
        // Hold the reclaimer so that the freed tail stays visible.
        let decoy = try file.allocate(mfPage, kind: .anonymous, direction: .bottomUp)
        gate.close()
        file.decRef(decoy)
        XCTAssertTrue(gate.waitForHeldCaller())

        let fr = try file.allocateAndFill(length, kind: .anonymous) { try reader.read($0) }
        let start = mfGiB - length
        XCTAssertEqual(fr, mfRange(start, start + mfPages(3)), "cut down to whole pages")
        XCTAssertTrue(try MFPatternReader.matches(file, fr))
        mfAssertSegments(file, [
            MFSegment(decoy, UsageInfo(kind: .system, refs: 0)),
            MFSegment(start, start + mfPages(3), .anonymous),
            MFSegment(start + mfPages(3), mfGiB, .system, refs: 0),
        ])
        mfAssertInvariants(file)

        gate.open()
        file.waitForReclaim()
        mfAssertSegments(file, [MFSegment(fr, UsageInfo(kind: .anonymous))])
        mfAssertInvariants(file)
    }

    func testReaderAtEndOfInputFromTheStartReturnsAnEmptyRange() throws {
        let file = try mfMakeFile()
        let fr = try file.allocateAndFill(mfPages(4), kind: .anonymous) { _ in 0 }
        XCTAssertTrue(fr.isEmpty)
        file.waitForReclaim()
        XCTAssertTrue(file.usageSnapshot.isEmpty, "everything was freed")
        mfAssertInvariants(file)
    }

    func testReaderThatThrowsPartWay() throws {
        let file = try mfMakeFile()
        let length = mfPages(8)
        let reader = MFPatternReader(total: Int(length), chunk: 1000, throwAfter: Int(mfPages(5) + 100))
        var filled: FileRange?
        XCTAssertThrowsError(try file.allocateAndFill(length, kind: .tmpfs) { try reader.read($0) }) { error in
            guard let partial = error as? PartialFillError else {
                return XCTFail("expected PartialFillError, got \(error)")
            }
            XCTAssertEqual(partial.underlying as? MFPatternReader.Failure, MFPatternReader.Failure())
            XCTAssertTrue("\(partial)".contains("allocateAndFill"), "\(partial)")
            filled = partial.filled
        }
        let start = mfGiB - length
        XCTAssertEqual(filled, mfRange(start, start + mfPages(5)))
        file.waitForReclaim()
        // The filled pages stay allocated, owned by the caller.
        mfAssertSegments(file, [MFSegment(start, start + mfPages(5), .tmpfs)])
        if let filled {
            XCTAssertTrue(try MFPatternReader.matches(file, filled))
            file.decRef(filled)
            file.waitForReclaim()
        }
        XCTAssertTrue(file.usageSnapshot.isEmpty)
        mfAssertInvariants(file)
    }

    func testReaderThatThrowsAtOnce() throws {
        let file = try mfMakeFile()
        let reader = MFPatternReader(total: Int(mfPages(4)), chunk: 1000, throwAfter: 0)
        XCTAssertThrowsError(try file.allocateAndFill(mfPages(4), kind: .anonymous) { try reader.read($0) }) { error in
            XCTAssertEqual((error as? PartialFillError)?.filled.isEmpty, true, "\(error)")
        }
        file.waitForReclaim()
        XCTAssertTrue(file.usageSnapshot.isEmpty)
        mfAssertInvariants(file)
    }

    func testFillAcrossAChunkBoundary() throws {
        let file = try mfMakeFile()
        // Leave an 8 KiB hole across the 1 GiB boundary of a 2 GiB file.
        let low = try file.allocate(mfGiB - mfPage, kind: .anonymous, direction: .bottomUp)
        let hole = try file.allocate(mfPages(2), kind: .anonymous, direction: .bottomUp)
        XCTAssertEqual(hole, mfRange(mfGiB - mfPage, mfGiB + mfPage))
        // Fill the rest of the 2 GiB file, so that top-down finds the hole.
        let high1 = try file.allocate(mfHuge - mfPage, kind: .anonymous, direction: .bottomUp)
        let high2 = try file.allocate(mfGiB - mfHuge, kind: .anonymous, direction: .bottomUp)
        XCTAssertEqual(high1, mfRange(mfGiB + mfPage, mfGiB + mfHuge))
        XCTAssertEqual(high2, mfRange(mfGiB + mfHuge, 2 * mfGiB))
        XCTAssertEqual(file.totalSize, 2 * mfGiB)
        file.decRef(hole)
        file.waitForReclaim()

        let reader = MFPatternReader(total: Int(mfPages(2)), chunk: Int(mfPages(2)))
        let fr = try file.allocateAndFill(mfPages(2), kind: .pageCache) { try reader.read($0) }
        XCTAssertEqual(fr, hole)
        XCTAssertEqual(reader.bufferSizes, [Int(mfPage), Int(mfPage)], "one buffer per chunk")
        XCTAssertTrue(try MFPatternReader.matches(file, fr))
        try file.mapInternal(fr, access: .read) { blocks in
            XCTAssertEqual(blocks.map(\.count), [Int(mfPage), Int(mfPage)])
        }
        for r in [low, fr, high1, high2] {
            file.decRef(r)
        }
        file.waitForReclaim()
        XCTAssertTrue(file.usageSnapshot.isEmpty)
        mfAssertInvariants(file)
    }

    func testPopulateCommitsThePagesBeforeReading() throws {
        // Without populate, the first read sees nothing committed; with it,
        // the huge-aligned part of the block is committed already.
        for populate in [false, true] {
            let file = try mfMakeFile()
            let length = 2 * mfHuge
            var usageAtFirstRead: UInt64?
            var alignedPart: UInt64 = 0
            let reader = MFPatternReader(total: Int(length), chunk: Int(length))
            let fr = try file.allocateAndFill(length, kind: .anonymous, populate: populate) { buffer in
                if usageAtFirstRead == nil {
                    usageAtFirstRead = try file.totalUsage()
                    // Populate commits the part of the block that is
                    // huge-aligned in this process's address space.
                    let base = UInt64(UInt(bitPattern: buffer.baseAddress))
                    let start = (base + mfHuge - 1) & ~(mfHuge - 1)
                    let end = (base + UInt64(buffer.count)) & ~(mfHuge - 1)
                    alignedPart = end > start ? end - start : 0
                }
                return try reader.read(buffer)
            }
            XCTAssertEqual(fr.length, length)
            XCTAssertEqual(fr.start % mfHuge, 0)
            XCTAssertTrue(try MFPatternReader.matches(file, fr))
            if populate {
                XCTAssertGreaterThanOrEqual(alignedPart, mfHuge, "4 MiB hold at least one aligned 2 MiB")
                XCTAssertGreaterThanOrEqual(usageAtFirstRead ?? 0, alignedPart, "populate committed the pages first")
            } else {
                XCTAssertEqual(usageAtFirstRead, 0)
            }
            try file.mfScan()
            XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: length]))
            mfAssertInvariants(file)
        }
    }
}
