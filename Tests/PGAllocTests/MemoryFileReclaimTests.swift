// The reclaimer and decommit: freed pages are punched out of the file
// (its block count drops) and reused reading zero; when fallocate fails
// the reclaimer zeroes them instead; ManualZeroing zeroes on allocation and
// punches only whole huge pages; decommit drops accounting and zeroes.

import XCTest

@testable import PGAlloc

#if canImport(Glibc)
import Glibc
#endif

final class MemoryFileReclaimTests: XCTestCase {
    func testReclaimPunchesFreedPagesAndTheyAreReusedZeroed() throws {
        let file = try mfMakeFile()
        let fr = try file.allocate(mfPages(64), kind: .anonymous)
        try file.mfFill(fr, 0x5A)
        try file.mfScan()
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: fr.length]))
        if MFEnvironment.exactBlockCounts {
            XCTAssertEqual(try file.totalUsage(), fr.length)
        }

        file.decRef(fr)
        file.waitForReclaim()
        XCTAssertTrue(file.usageSnapshot.isEmpty, file.description)
        XCTAssertEqual(file.accounting.snapshot(), MemoryStats())
        XCTAssertEqual(try file.totalUsage(), 0, "the reclaimer punched the pages out of the file")
        mfAssertInvariants(file)

        // The same range comes back, zeroed.
        let again = try file.allocate(mfPages(64), kind: .pageCache)
        XCTAssertEqual(again, fr)
        XCTAssertTrue(try file.mfAllBytes(again, equal: 0))
        mfAssertInvariants(file)
    }

    func testWaitForReclaimReturnsAtOnceWhenIdle() throws {
        let file = try mfMakeFile()
        file.waitForReclaim()
        XCTAssertTrue(file.waitForReclaim(timeoutNanoseconds: 0))
        let fr = try file.allocate(mfPage, kind: .anonymous)
        file.waitForReclaim()
        XCTAssertEqual(file.mfSegments, [MFSegment(fr, UsageInfo(kind: .anonymous))])
    }

    func testWaitForReclaimWithTimeout() throws {
        let gate = MFReclaimGate()
        let file = try mfMakeFile { $0.fallocateFailure = gate.hook }
        let fr = try file.allocate(mfPage, kind: .anonymous)
        gate.close()
        file.decRef(fr)
        XCTAssertTrue(gate.waitForHeldCaller())
        // Held at the gate: reclaim cannot finish.
        XCTAssertFalse(file.waitForReclaim(timeoutNanoseconds: 20_000_000))
        gate.open()
        XCTAssertTrue(file.waitForReclaim(timeoutNanoseconds: 60_000_000_000))
        XCTAssertTrue(file.usageSnapshot.isEmpty)
    }

    func testFailedFallocateFallsBackToZeroing() throws {
        let gate = MFReclaimGate()
        gate.fail(with: EOPNOTSUPP)
        let file = try mfMakeFile { $0.fallocateFailure = gate.hook }
        let fr = try file.allocate(mfPages(64), kind: .anonymous)
        try file.mfFill(fr, 0x5A)
        try file.mfScan()
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: fr.length]))

        file.decRef(fr)
        file.waitForReclaim()
        XCTAssertEqual(gate.ranges, [fr], "the reclaimer tried to punch the range")
        // Reclaimed all the same: free, and no longer accounted...
        XCTAssertTrue(file.usageSnapshot.isEmpty, file.description)
        XCTAssertEqual(file.accounting.snapshot(), MemoryStats())
        mfAssertInvariants(file)
        // ...but the memory stays with the file.
        if MFEnvironment.exactBlockCounts {
            XCTAssertEqual(try file.totalUsage(), fr.length, "zeroing keeps the pages committed")
        } else {
            XCTAssertGreaterThanOrEqual(try file.totalUsage(), fr.length)
        }

        // Reused, the pages read as zero.
        let again = try file.allocate(mfPages(64), kind: .anonymous)
        XCTAssertEqual(again, fr)
        XCTAssertTrue(try file.mfAllBytes(again, equal: 0))
        // A scan finds them committed.
        try file.mfScan()
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: fr.length]))
        XCTAssertEqual(file.mfSegments, [MFSegment(fr, UsageInfo(kind: .anonymous, knownCommitted: true))])
        mfAssertInvariants(file)
    }

    func testManualZeroingZeroesOnAllocationAndPunchesOnlyHugePages() throws {
        let gate = MFReclaimGate()
        let file = try mfMakeFile {
            $0.manualZeroing = true
            $0.fallocateFailure = gate.hook
        }
        XCTAssertTrue(file.options.manualZeroing)

        // Small: the reclaimer does not punch it; the pages keep their memory
        // (and their contents) until allocated again, then read zero.
        let small = try file.allocate(mfPages(16), kind: .anonymous)
        try file.mfFill(small, 0x77)
        file.decRef(small)
        file.waitForReclaim()
        XCTAssertTrue(file.usageSnapshot.isEmpty)
        XCTAssertEqual(gate.ranges, [], "no whole huge page to punch")
        if MFEnvironment.exactBlockCounts {
            XCTAssertEqual(try file.totalUsage(), small.length)
        }
        let smallAgain = try file.allocate(mfPages(16), kind: .anonymous)
        XCTAssertEqual(smallAgain, small)
        XCTAssertTrue(try file.mfAllBytes(smallAgain, equal: 0), "zeroed when allocated")
        file.decRef(smallAgain)
        file.waitForReclaim()

        // 2 MiB + 8 KiB, huge-aligned: only the whole huge page is punched.
        let huge = try file.allocate(mfHuge + mfPages(2), kind: .anonymous)
        XCTAssertEqual(huge.start % mfHuge, 0)
        try file.mfFill(huge, 0x77)
        let before = try file.totalUsage()
        file.decRef(huge)
        file.waitForReclaim()
        XCTAssertEqual(gate.ranges, [mfRange(huge.start, huge.start + mfHuge)])
        if MFEnvironment.exactBlockCounts {
            XCTAssertEqual(try file.totalUsage(), before - mfHuge)
        }
        let hugeAgain = try file.allocate(mfHuge + mfPages(2), kind: .anonymous)
        XCTAssertEqual(hugeAgain, huge)
        XCTAssertTrue(try file.mfAllBytes(hugeAgain, equal: 0))
        mfAssertInvariants(file)
    }

    func testManualZeroingStillZeroesWhenPunchingFails() throws {
        let gate = MFReclaimGate()
        gate.fail(with: EIO)
        let file = try mfMakeFile {
            $0.manualZeroing = true
            $0.fallocateFailure = gate.hook
        }
        let fr = try file.allocate(2 * mfHuge, kind: .tmpfs)
        try file.mfFill(fr, 0x11)
        file.decRef(fr)
        file.waitForReclaim()
        XCTAssertEqual(gate.ranges, [fr])
        XCTAssertTrue(file.usageSnapshot.isEmpty)
        let again = try file.allocate(2 * mfHuge, kind: .tmpfs)
        XCTAssertEqual(again, fr)
        XCTAssertTrue(try file.mfAllBytes(again, equal: 0))
        mfAssertInvariants(file)
    }

    // MARK: Decommit

    func testDecommitDropsAccountingAndZeroes() throws {
        let file = try mfMakeFile()
        let fr = try file.allocate(mfPages(16), kind: .anonymous)
        let b = fr.start
        try file.mfFill(fr, 0x33)
        try file.mfScan()
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(16)]))

        let middle = mfRange(b + mfPages(4), b + mfPages(12))
        try file.decommit(middle)
        mfAssertSegments(file, [
            MFSegment(b, b + mfPages(4), .anonymous, committed: true),
            MFSegment(b + mfPages(4), b + mfPages(12), .anonymous),
            MFSegment(b + mfPages(12), b + mfPages(16), .anonymous, committed: true),
        ])
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(8)]))
        XCTAssertEqual(file.mfUsageExpected, mfPages(8))
        if MFEnvironment.exactBlockCounts {
            XCTAssertEqual(try file.totalUsage(), mfPages(8))
        }
        mfAssertInvariants(file)
        XCTAssertTrue(try file.mfAllBytes(mfRange(b, b + mfPages(4)), equal: 0x33))
        XCTAssertTrue(try file.mfAllBytes(middle, equal: 0))
        XCTAssertTrue(try file.mfAllBytes(mfRange(b + mfPages(12), fr.end), equal: 0x33))

        // All of it: one segment again, nothing accounted, nothing held.
        try file.decommit(fr)
        mfAssertSegments(file, [MFSegment(fr, UsageInfo(kind: .anonymous))])
        XCTAssertEqual(file.accounting.snapshot(), MemoryStats())
        XCTAssertEqual(try file.totalUsage(), 0)
        XCTAssertTrue(try file.mfAllBytes(fr, equal: 0))
        mfAssertInvariants(file)

        // Still allocated and usable.
        try file.mfFill(fr, 0x44)
        try file.mfScan()
        mfAssertSegments(file, [MFSegment(fr, UsageInfo(kind: .anonymous, knownCommitted: true))])
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: fr.length]))
        file.decRef(fr)
        file.waitForReclaim()
        mfAssertInvariants(file)
    }

    func testDecommitAcrossSegmentsMergesThem() throws {
        let file = try mfMakeFile()
        let fr = try file.allocate(mfPages(8), kind: .tmpfs)
        let b = fr.start
        try file.mfTouch(mfRange(b + mfPages(2), b + mfPages(3)))
        try file.mfTouch(mfRange(b + mfPages(5), b + mfPages(6)))
        try file.mfScan()
        XCTAssertEqual(file.mfSegments.count, 5)
        try file.decommit(mfRange(b + mfPages(1), b + mfPages(7)))
        mfAssertSegments(file, [MFSegment(fr, UsageInfo(kind: .tmpfs))])
        XCTAssertEqual(file.accounting.snapshot(), MemoryStats())
        mfAssertInvariants(file)
    }

    func testDecommitFailureThrowsAndChangesNothing() throws {
        let gate = MFReclaimGate()
        let file = try mfMakeFile { $0.fallocateFailure = gate.hook }
        let fr = try file.allocate(mfPages(4), kind: .anonymous)
        try file.mfFill(fr, 0x21)
        try file.mfScan()
        gate.fail(with: EOPNOTSUPP)
        XCTAssertThrowsError(try file.decommit(fr)) { error in
            XCTAssertEqual(error as? HostError, HostError("fallocate", errno: EOPNOTSUPP))
            XCTAssertEqual("\(error)", "fallocate: Operation not supported (errno 95)")
        }
        mfAssertSegments(file, [MFSegment(fr, UsageInfo(kind: .anonymous, knownCommitted: true))])
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: fr.length]))
        XCTAssertTrue(try file.mfAllBytes(fr, equal: 0x21))
        mfAssertInvariants(file)
        gate.fail(with: nil)
    }

    func testDecommitOfManyRangesMatchesOneByOne() throws {
        // Two files filled alike; one decommits scattered ranges one at a
        // time, the other all at once.
        let single = try mfMakeFile()
        let batch = try mfMakeFile()
        let ranges: [(UInt64, UInt64)] = [(1, 2), (3, 4), (4, 6), (9, 10), (15, 16)]
        var frs: [FileRange] = []
        for file in [single, batch] {
            let fr = try file.allocate(mfPages(16), kind: .pageCache)
            try file.mfFill(fr, 0x52)
            try file.mfScan()
            frs = ranges.map { (start: UInt64, end: UInt64) -> FileRange in
                mfRange(fr.start + mfPages(start), fr.start + mfPages(end))
            }
        }
        for fr in frs {
            try single.decommit(fr)
        }
        try batch.decommit(frs)
        XCTAssertEqual(batch.mfSegments, single.mfSegments)
        XCTAssertEqual(batch.accounting.snapshot(), single.accounting.snapshot())
        XCTAssertEqual(batch.accounting.snapshot(), mfStats([.pageCache: mfPages(10)]))
        XCTAssertEqual(batch.mfUsageExpected, single.mfUsageExpected)
        if MFEnvironment.exactBlockCounts {
            XCTAssertEqual(try batch.totalUsage(), mfPages(10))
        }
        for fr in frs {
            XCTAssertTrue(try batch.mfAllBytes(fr, equal: 0))
        }
        XCTAssertTrue(try batch.mfAllBytes(mfRange(frs[2].end, frs[3].start), equal: 0x52))
        try batch.decommit([])
        mfAssertInvariants(single)
        mfAssertInvariants(batch)
    }

    func testDecommitOfManyRangesStopsAtTheFirstFailure() throws {
        // The third punch fails: the first two ranges are decommitted and
        // accounted as such, the rest are untouched.
        let calls = MFCounter()
        let file = try mfMakeFile {
            $0.fallocateFailure = { _ in calls.next() == 3 ? EIO : nil }
        }
        let fr = try file.allocate(mfPages(8), kind: .anonymous)
        let b = fr.start
        try file.mfFill(fr, 0x21)
        try file.mfScan()
        var frs: [FileRange] = []
        for i: UInt64 in 0..<4 {
            frs.append(mfRange(b + mfPages(2 * i), b + mfPages(2 * i + 1)))
        }
        calls.reset()
        XCTAssertThrowsError(try file.decommit(frs)) { error in
            XCTAssertEqual(error as? HostError, HostError("fallocate", errno: EIO))
        }
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(6)]))
        XCTAssertTrue(try file.mfAllBytes(frs[0], equal: 0))
        XCTAssertTrue(try file.mfAllBytes(frs[1], equal: 0))
        XCTAssertTrue(try file.mfAllBytes(frs[2], equal: 0x21))
        XCTAssertTrue(try file.mfAllBytes(frs[3], equal: 0x21))
        mfAssertInvariants(file)
    }

    func testDecommitWithManualZeroingZeroesWithoutPunching() throws {
        let gate = MFReclaimGate()
        let file = try mfMakeFile {
            $0.manualZeroing = true
            $0.fallocateFailure = gate.hook
        }
        let fr = try file.allocate(mfPages(8), kind: .anonymous)
        try file.mfFill(fr, 0x66)
        try file.mfScan()
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: fr.length]))
        try file.decommit(fr)
        XCTAssertEqual(gate.ranges, [], "decommit zeroes by hand instead of punching")
        XCTAssertTrue(try file.mfAllBytes(fr, equal: 0))
        mfAssertSegments(file, [MFSegment(fr, UsageInfo(kind: .anonymous))])
        XCTAssertEqual(file.accounting.snapshot(), MemoryStats())
        if MFEnvironment.exactBlockCounts {
            XCTAssertEqual(try file.totalUsage(), fr.length, "zeroed pages keep their memory")
        }
        mfAssertInvariants(file)
    }
}
