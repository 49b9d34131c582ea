// Where allocations go: top-down (the seed's default) and bottom-up
// placement, huge-page alignment, growth of the file in chunks and by
// doubling, and ENOMEM at the limits of the offset space.

import XCTest

@testable import PGAlloc

final class MemoryFileAllocationTests: XCTestCase {
    func testNewFileIsEmpty() throws {
        let file = try mfMakeFile()
        XCTAssertEqual(file.totalSize, 0)
        XCTAssertEqual(try file.totalUsage(), 0)
        XCTAssertEqual(file.accounting.snapshot(), MemoryStats())
        XCTAssertTrue(file.usageSnapshot.isEmpty)
        mfAssertInvariants(file)
    }

    func testTopDownAllocatesFromTheEndOfTheFile() throws {
        let file = try mfMakeFile()
        let a = try file.allocate(mfPage, kind: .anonymous)
        XCTAssertEqual(a, mfRange(mfGiB - mfPage, mfGiB))
        XCTAssertEqual(file.totalSize, mfGiB, "the first allocation grows the file to one chunk")
        mfAssertInvariants(file)

        // The next one goes right below, and merges with it: same kind, one
        // reference, not known committed.
        let b = try file.allocate(mfPages(2), kind: .anonymous)
        XCTAssertEqual(b, mfRange(mfGiB - mfPages(3), mfGiB - mfPage))
        mfAssertSegments(file, [MFSegment(mfGiB - mfPages(3), mfGiB, .anonymous)])
        mfAssertInvariants(file)

        // Another kind: a segment of its own.
        let c = try file.allocate(mfPage, kind: .pageCache)
        XCTAssertEqual(c, mfRange(mfGiB - mfPages(4), mfGiB - mfPages(3)))
        mfAssertSegments(file, [
            MFSegment(mfGiB - mfPages(4), mfGiB - mfPages(3), .pageCache),
            MFSegment(mfGiB - mfPages(3), mfGiB, .anonymous),
        ])
        XCTAssertEqual(file.totalSize, mfGiB)
        // Nothing was touched: nothing is committed or accounted.
        XCTAssertEqual(try file.totalUsage(), 0)
        XCTAssertEqual(file.accounting.total, 0)
        mfAssertInvariants(file)
    }

    func testTopDownIsTheDefaultDirection() throws {
        let file = try mfMakeFile()
        XCTAssertEqual(try file.allocate(mfPage, kind: .anonymous), mfRange(mfGiB - mfPage, mfGiB))
        XCTAssertEqual(try file.allocate(mfPage, kind: .anonymous, direction: .topDown), mfRange(mfGiB - mfPages(2), mfGiB - mfPage))
    }

    func testBottomUpAllocatesFromTheStartOfTheFile() throws {
        let file = try mfMakeFile()
        XCTAssertEqual(try file.allocate(mfPage, kind: .tmpfs, direction: .bottomUp), mfRange(0, mfPage))
        XCTAssertEqual(file.totalSize, mfGiB)
        XCTAssertEqual(try file.allocate(mfPages(2), kind: .tmpfs, direction: .bottomUp), mfRange(mfPage, mfPages(3)))
        mfAssertSegments(file, [MFSegment(0, mfPages(3), .tmpfs)])

        // Top-down still takes the end of the file.
        XCTAssertEqual(try file.allocate(mfPage, kind: .tmpfs), mfRange(mfGiB - mfPage, mfGiB))
        mfAssertSegments(file, [
            MFSegment(0, mfPages(3), .tmpfs),
            MFSegment(mfGiB - mfPage, mfGiB, .tmpfs),
        ])
        XCTAssertEqual(AllocationDirection.bottomUp.description, "up")
        XCTAssertEqual(AllocationDirection.topDown.description, "down")
        mfAssertInvariants(file)
    }

    func testGapsBetweenAllocationsAreReused() throws {
        let file = try mfMakeFile()
        let low = try file.allocate(mfPages(4), kind: .anonymous, direction: .bottomUp)
        let middle = try file.allocate(mfPages(4), kind: .pageCache, direction: .bottomUp)
        let high = try file.allocate(mfPages(4), kind: .anonymous, direction: .bottomUp)
        XCTAssertEqual([low, middle, high], [mfRange(0, mfPages(4)), mfRange(mfPages(4), mfPages(8)), mfRange(mfPages(8), mfPages(12))])
        file.decRef(middle)
        file.waitForReclaim()
        mfAssertSegments(file, [MFSegment(0, mfPages(4), .anonymous), MFSegment(mfPages(8), mfPages(12), .anonymous)])

        // Bottom-up fills the hole first.
        XCTAssertEqual(try file.allocate(mfPages(3), kind: .anonymous, direction: .bottomUp), mfRange(mfPages(4), mfPages(7)))
        // Top-down takes the end of the file, then the rest of the hole only
        // once nothing above fits: here the file's end is free.
        XCTAssertEqual(try file.allocate(mfPage, kind: .anonymous), mfRange(mfGiB - mfPage, mfGiB))
        // A page-sized allocation bottom-up takes the last page of the hole.
        XCTAssertEqual(try file.allocate(mfPage, kind: .anonymous, direction: .bottomUp), mfRange(mfPages(7), mfPages(8)))
        mfAssertSegments(file, [MFSegment(0, mfPages(12), .anonymous), MFSegment(mfGiB - mfPage, mfGiB, .anonymous)])
        mfAssertInvariants(file)
    }

    func testHugeAllocationsAreHugePageAlignedTopDown() throws {
        let file = try mfMakeFile()
        XCTAssertEqual(try file.allocate(mfPage, kind: .anonymous), mfRange(mfGiB - mfPage, mfGiB))
        // 2 MiB cannot take [1G - 2M - 4K, 1G - 4K): its start is aligned down.
        let huge = try file.allocate(mfHuge, kind: .anonymous)
        XCTAssertEqual(huge, mfRange(mfGiB - 2 * mfHuge, mfGiB - mfHuge))
        mfAssertInvariants(file)

        // Below 2 MiB, page alignment: the 2 MiB - 4 KiB hole left above the
        // huge allocation fits exactly.
        let belowHuge = try file.allocate(mfHuge - mfPage, kind: .anonymous)
        XCTAssertEqual(belowHuge, mfRange(mfGiB - mfHuge, mfGiB - mfPage))
        mfAssertSegments(file, [MFSegment(mfGiB - 2 * mfHuge, mfGiB, .anonymous)])

        // Over 2 MiB but not a multiple of it: still huge-aligned.
        let odd = try file.allocate(mfHuge + mfPage, kind: .anonymous)
        XCTAssertEqual(odd, mfRange(mfGiB - 4 * mfHuge, mfGiB - 3 * mfHuge + mfPage))
        XCTAssertEqual(odd.start % mfHuge, 0)
        mfAssertSegments(file, [
            MFSegment(mfGiB - 4 * mfHuge, mfGiB - 3 * mfHuge + mfPage, .anonymous),
            MFSegment(mfGiB - 2 * mfHuge, mfGiB, .anonymous),
        ])
        mfAssertInvariants(file)
    }

    func testHugeAllocationsAreHugePageAlignedBottomUp() throws {
        let file = try mfMakeFile()
        XCTAssertEqual(try file.allocate(mfPage, kind: .anonymous, direction: .bottomUp), mfRange(0, mfPage))
        XCTAssertEqual(try file.allocate(mfHuge, kind: .anonymous, direction: .bottomUp), mfRange(mfHuge, 2 * mfHuge))
        XCTAssertEqual(try file.allocate(3 << 20, kind: .anonymous, direction: .bottomUp), mfRange(2 * mfHuge, 2 * mfHuge + (3 << 20)))
        // A small one fills the first gap.
        XCTAssertEqual(try file.allocate(mfPage, kind: .anonymous, direction: .bottomUp), mfRange(mfPage, mfPages(2)))
        // 2 MiB - 4 KiB does not fit in [8K, 2M): it goes after 7 MiB, page
        // aligned.
        XCTAssertEqual(try file.allocate(mfHuge - mfPage, kind: .anonymous, direction: .bottomUp),
                       mfRange(7 << 20, (7 << 20) + mfHuge - mfPage))
        // 2 MiB after 9 MiB - 4 KiB: aligned up to 10 MiB.
        XCTAssertEqual(try file.allocate(mfHuge, kind: .anonymous, direction: .bottomUp), mfRange(10 << 20, 12 << 20))
        mfAssertInvariants(file)
    }

    func testFileGrowsByDoublingTopDown() throws {
        let file = try mfMakeFile()
        // One chunk, all taken.
        XCTAssertEqual(try file.allocate(mfGiB, kind: .anonymous), mfRange(0, mfGiB))
        XCTAssertEqual(file.totalSize, mfGiB)
        // Nothing fits: the file doubles and the page goes at its end.
        XCTAssertEqual(try file.allocate(mfPage, kind: .anonymous), mfRange(2 * mfGiB - mfPage, 2 * mfGiB))
        XCTAssertEqual(file.totalSize, 2 * mfGiB)
        // The hole [1G, 2G - 4K) cannot take 1 GiB: doubling again.
        XCTAssertEqual(try file.allocate(mfGiB, kind: .pageCache), mfRange(3 * mfGiB, 4 * mfGiB))
        XCTAssertEqual(file.totalSize, 4 * mfGiB)
        // Small ones now fill downward from the highest hole that fits.
        XCTAssertEqual(try file.allocate(mfPage, kind: .pageCache), mfRange(3 * mfGiB - mfPage, 3 * mfGiB))
        XCTAssertEqual(file.totalSize, 4 * mfGiB)
        XCTAssertEqual(try file.totalUsage(), 0, "growing the file commits nothing")
        mfAssertInvariants(file)
    }

    func testFileDoublesSeveralTimesForOneLargeAllocation() throws {
        let file = try mfMakeFile()
        // 3 GiB: 1 GiB and 2 GiB files are too small; 4 GiB fits it at its end.
        XCTAssertEqual(try file.allocate(3 * mfGiB, kind: .anonymous), mfRange(mfGiB, 4 * mfGiB))
        XCTAssertEqual(file.totalSize, 4 * mfGiB)
        // The next one takes the end of the hole below it, [0, 1G).
        XCTAssertEqual(try file.allocate(mfPage, kind: .anonymous), mfRange(mfGiB - mfPage, mfGiB))
        XCTAssertEqual(file.totalSize, 4 * mfGiB)
        mfAssertInvariants(file)
    }

    func testFileGrowsInChunksBottomUp() throws {
        let file = try mfMakeFile()
        XCTAssertEqual(try file.allocate(mfPage, kind: .anonymous, direction: .bottomUp), mfRange(0, mfPage))
        XCTAssertEqual(file.totalSize, mfGiB)
        XCTAssertEqual(try file.allocate(mfGiB, kind: .anonymous, direction: .bottomUp), mfRange(mfHuge, mfGiB + mfHuge))
        XCTAssertEqual(file.totalSize, 2 * mfGiB, "rounded up to whole chunks")
        XCTAssertEqual(try file.allocate(3 * mfGiB, kind: .anonymous, direction: .bottomUp),
                       mfRange(mfGiB + mfHuge, 4 * mfGiB + mfHuge))
        XCTAssertEqual(file.totalSize, 5 * mfGiB, "bottom-up growth rounds to chunks, it does not double")
        mfAssertInvariants(file)
    }

    func testEveryKindGetsItsOwnSegment() throws {
        let file = try mfMakeFile()
        var expected: [MFSegment] = []
        for kind in MemoryKind.allCases {
            let fr = try file.allocate(mfPages(2), kind: kind, direction: .bottomUp)
            expected.append(MFSegment(fr, UsageInfo(kind: kind)))
            mfAssertInvariants(file)
        }
        mfAssertSegments(file, expected)
        XCTAssertTrue(file.description.contains("page-cache"), file.description)
    }

    func testOutOfMemoryForLengthsThatCannotFit() throws {
        let file = try mfMakeFile()
        let lengths: [UInt64] = [
            UInt64.max & ~(mfPage - 1),
            1 << 63,
            (1 << 63) - mfPage,
            (1 << 63) - mfGiB + mfPage,
            mfMaxFileSize + mfPage,
        ]
        for length in lengths {
            for direction in [AllocationDirection.topDown, .bottomUp] {
                XCTAssertThrowsError(try file.allocate(length, kind: .anonymous, direction: direction),
                                     "allocate(0x\(String(length, radix: 16)), \(direction))") { error in
                    XCTAssertEqual(error as? MemoryFileError, .outOfMemory(length: length), "\(error)")
                }
                XCTAssertEqual(file.totalSize, 0, "a failed allocation does not grow the file")
                XCTAssertTrue(file.usageSnapshot.isEmpty)
                mfAssertInvariants(file)
            }
        }
        XCTAssertTrue("\(MemoryFileError.outOfMemory(length: 1 << 63))".contains("ENOMEM"))

        // The file still works afterwards.
        XCTAssertEqual(try file.allocate(mfPage, kind: .anonymous), mfRange(mfGiB - mfPage, mfGiB))
    }

    func testLargestAllocationsThatFit() throws {
        let file = try mfMakeFile()
        // 2^62 bytes: a 2^62-byte file (the largest power-of-two multiple of
        // the chunk size that an off_t holds) fits it exactly. Sparse: it
        // costs nothing.
        let top = try file.allocate(1 << 62, kind: .anonymous)
        XCTAssertEqual(top, mfRange(0, 1 << 62))
        XCTAssertEqual(file.totalSize, 1 << 62)
        // Nothing more fits top-down: doubling would pass Int64.max.
        XCTAssertThrowsError(try file.allocate(mfPage, kind: .anonymous)) { error in
            XCTAssertEqual(error as? MemoryFileError, .outOfMemory(length: mfPage))
        }
        // Bottom-up still fits above, growing in chunks.
        let above = try file.allocate(mfPage, kind: .anonymous, direction: .bottomUp)
        XCTAssertEqual(above, mfRange(1 << 62, (1 << 62) + mfPage))
        XCTAssertEqual(file.totalSize, (1 << 62) + mfGiB)
        mfAssertInvariants(file)
        file.decRef(top)
        file.decRef(above)
        file.waitForReclaim()
        XCTAssertTrue(file.usageSnapshot.isEmpty)
        mfAssertInvariants(file)
    }

    func testBottomUpCanReachTheLargestFile() throws {
        let file = try mfMakeFile()
        // 2^63 - 1 GiB: the largest multiple of the chunk size an off_t
        // holds. One page more does not fit (testOutOfMemory...).
        let fr = try file.allocate(mfMaxFileSize, kind: .anonymous, direction: .bottomUp)
        XCTAssertEqual(fr, mfRange(0, mfMaxFileSize))
        XCTAssertEqual(file.totalSize, mfMaxFileSize)
        for direction in [AllocationDirection.topDown, .bottomUp] {
            XCTAssertThrowsError(try file.allocate(mfPage, kind: .anonymous, direction: direction)) { error in
                XCTAssertEqual(error as? MemoryFileError, .outOfMemory(length: mfPage))
            }
        }
        // Its last page works.
        try file.mfStoreWord(fr.end - mfPage, 42)
        XCTAssertEqual(try file.mfLoadWord(fr.end - mfPage), 42)
        file.decRef(fr)
        file.waitForReclaim()
        XCTAssertTrue(file.usageSnapshot.isEmpty)
        XCTAssertEqual(try file.totalUsage(), 0)
        mfAssertInvariants(file)
    }

    // MARK: findAvailableRange on hand-made usage sets

    /// The overflow exits of the searches, which a real file cannot reach
    /// without allocating near 2^64.
    func testFindAvailableRangeOverflowExits() {
        let info = UsageInfo(kind: .anonymous)
        // A segment near the top of the key space, nothing in the file.
        let top = UInt64.max - mfPage + 1
        var high = UsageSet()
        XCTAssertTrue(high.add(mfRange(top - mfPage, top), info))
        // Top-down: no room in a file of size 0; past the last segment, the
        // allocation would pass 2^64.
        XCTAssertNil(findAvailableRangeTopDown(high, fileSize: 0, length: mfPages(2), alignment: mfPage))
        // Bottom-up: the first gap takes it.
        XCTAssertEqual(findAvailableRangeBottomUp(high, length: mfPages(2), alignment: mfPage)?.0, mfRange(0, mfPages(2)))

        // Everything below the last chunk allocated: bottom-up past it would
        // need a file larger than an off_t holds.
        var full = UsageSet()
        XCTAssertTrue(full.add(mfRange(0, mfMaxFileSize), info))
        XCTAssertNil(findAvailableRangeBottomUp(full, length: mfPage, alignment: mfPage))
        // One page less allocated: the last page fits.
        var almost = UsageSet()
        XCTAssertTrue(almost.add(mfRange(0, mfMaxFileSize - mfPage), info))
        XCTAssertEqual(findAvailableRangeBottomUp(almost, length: mfPage, alignment: mfPage)?.0,
                       mfRange(mfMaxFileSize - mfPage, mfMaxFileSize))

        // A full 2^62-byte file: doubling would pass Int64.max.
        var quarter = UsageSet()
        XCTAssertTrue(quarter.add(mfRange(0, 1 << 62), info))
        XCTAssertNil(findAvailableRangeTopDown(quarter, fileSize: 1 << 62, length: mfPage, alignment: mfPage))
        // Half of it free at the top: found without growing.
        var half = UsageSet()
        XCTAssertTrue(half.add(mfRange(0, 1 << 61), info))
        XCTAssertEqual(findAvailableRangeTopDown(half, fileSize: 1 << 62, length: mfHuge, alignment: mfHuge)?.0,
                       mfRange((1 << 62) - mfHuge, 1 << 62))
    }

    /// Placement on random usage sets against a brute-force statement of
    /// the seed's rule: top-down takes the highest aligned start whose range
    /// lies in a gap inside the file, else the end of the smallest doubling
    /// of the file that fits it above the last segment; bottom-up takes the
    /// lowest aligned start that fits in a gap.
    func testFindAvailableRangeAgainstBruteForce() {
        let seed = MFEnvironment.seed("testFindAvailableRangeAgainstBruteForce", default: 0x5EED_0001)
        var rng = MFRandom(seed: seed)
        let unit: UInt64 = 1 << 20  // keys in MiB, so that huge alignment matters
        for round in 0..<400 {
            var set = UsageSet()
            var segments: [FileRange] = []
            let fileSize: UInt64 = rng.chance(1, 5) ? 0 : mfGiB << rng.below(3)
            var cursor = rng.below(3) * unit / 2
            while fileSize > 0 && rng.chance(15, 16) {
                cursor += rng.chance(1, 3) ? rng.below(4) * mfPage : 0
                let end = cursor + rng.inRange(1, 6) * unit / 4 + (rng.chance(1, 4) ? mfPage : 0)
                guard end <= fileSize else { break }
                XCTAssertTrue(set.add(mfRange(cursor, end), UsageInfo(kind: .anonymous, refs: rng.inRange(1, 2))))
                segments.append(mfRange(cursor, end))
                cursor = end + rng.below(5) * unit / 2 + (rng.chance(1, 3) ? mfPage : 0)
                if rng.chance(1, 10) {
                    cursor += rng.below(256) * unit
                }
            }
            let length: UInt64
            switch rng.below(10) {
            case 0..<4: length = rng.inRange(1, 8) * mfPage
            case 4..<9: length = rng.inRange(1, 5) * unit / 2 + (rng.chance(1, 2) ? mfPage : 0)
            default: length = rng.inRange(1, 3) * mfGiB / 2
            }
            let alignment = length >= mfHuge ? mfHuge : mfPage
            let context = "round \(round), seed \(seed): file 0x\(String(fileSize, radix: 16)), length 0x\(String(length, radix: 16)), segments \(segments)"

            let topDown = findAvailableRangeTopDown(set, fileSize: fileSize, length: length, alignment: alignment)
            XCTAssertEqual(topDown?.0, mfBruteForceTopDown(segments, fileSize: fileSize, length: length, alignment: alignment), context)
            let bottomUp = findAvailableRangeBottomUp(set, length: length, alignment: alignment)
            XCTAssertEqual(bottomUp?.0, mfBruteForceBottomUp(segments, length: length, alignment: alignment), context)
            // The gap handed back holds the range, and its range (which
            // allocation inserts by) is the gap's own.
            for (fr, gap, gapRange) in [topDown, bottomUp].compactMap({ $0 }) {
                XCTAssertEqual(gapRange, set.range(of: gap), context)
                XCTAssertTrue(gapRange.isSuperset(of: fr), context)
            }
        }
    }
}
