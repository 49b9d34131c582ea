// Reference counts: incRef and decRef split segments and merge them back,
// freed pages become System (refs 0) until the reclaimer takes them, and
// committed bytes move between kinds with them.
//
// The reclaimer is held at a closed MFReclaimGate wherever a test looks at
// freed pages, so that what it sees does not depend on timing.

import XCTest

@testable import PGAlloc

final class MemoryFileRefCountTests: XCTestCase {
    func testIncRefAndDecRefSplitAndMergeBack() throws {
        let file = try mfMakeFile()
        let fr = try file.allocate(mfPages(8), kind: .anonymous)
        let b = fr.start
        mfAssertSegments(file, [MFSegment(fr, UsageInfo(kind: .anonymous))])

        file.incRef(mfRange(b + mfPages(2), b + mfPages(5)))
        mfAssertSegments(file, [
            MFSegment(b, b + mfPages(2), .anonymous),
            MFSegment(b + mfPages(2), b + mfPages(5), .anonymous, refs: 2),
            MFSegment(b + mfPages(5), b + mfPages(8), .anonymous),
        ])
        mfAssertInvariants(file)

        // Overlapping the refs-2 part and the tail.
        file.incRef(mfRange(b + mfPages(4), b + mfPages(8)))
        mfAssertSegments(file, [
            MFSegment(b, b + mfPages(2), .anonymous),
            MFSegment(b + mfPages(2), b + mfPages(4), .anonymous, refs: 2),
            MFSegment(b + mfPages(4), b + mfPages(5), .anonymous, refs: 3),
            MFSegment(b + mfPages(5), b + mfPages(8), .anonymous, refs: 2),
        ])
        mfAssertInvariants(file)

        file.decRef(mfRange(b + mfPages(4), b + mfPages(8)))
        mfAssertSegments(file, [
            MFSegment(b, b + mfPages(2), .anonymous),
            MFSegment(b + mfPages(2), b + mfPages(5), .anonymous, refs: 2),
            MFSegment(b + mfPages(5), b + mfPages(8), .anonymous),
        ])
        mfAssertInvariants(file)

        // Back to one maximally merged segment.
        file.decRef(mfRange(b + mfPages(2), b + mfPages(5)))
        mfAssertSegments(file, [MFSegment(fr, UsageInfo(kind: .anonymous))])
        mfAssertInvariants(file)
    }

    func testIncRefAcrossAdjacentAllocationsMergesThem() throws {
        let file = try mfMakeFile()
        let high = try file.allocate(mfPages(4), kind: .tmpfs)
        let low = try file.allocate(mfPages(4), kind: .tmpfs)
        XCTAssertEqual(low.end, high.start)
        // Two allocations, one segment.
        mfAssertSegments(file, [MFSegment(low.start, high.end, .tmpfs)])

        file.incRef(low)
        mfAssertSegments(file, [MFSegment(low, UsageInfo(kind: .tmpfs, refs: 2)), MFSegment(high, UsageInfo(kind: .tmpfs))])
        file.incRef(high)
        mfAssertSegments(file, [MFSegment(low.start, high.end, .tmpfs, refs: 2)])
        mfAssertInvariants(file)

        // decRef over both at once.
        file.decRef(mfRange(low.start, high.end))
        mfAssertSegments(file, [MFSegment(low.start, high.end, .tmpfs)])
        mfAssertInvariants(file)
    }

    func testFreedPagesAreSystemUntilReclaimed() throws {
        let gate = MFReclaimGate()
        gate.close()
        let file = try mfMakeFile { $0.fallocateFailure = gate.hook }
        defer { gate.open() }
        let fr = try file.allocate(mfPages(8), kind: .anonymous)
        let b = fr.start
        // Commit the first half and account it.
        try file.mfTouch(mfRange(b, b + mfPages(4)))
        try file.mfScan()
        mfAssertSegments(file, [
            MFSegment(b, b + mfPages(4), .anonymous, committed: true),
            MFSegment(b + mfPages(4), b + mfPages(8), .anonymous),
        ])
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(4)]))

        // Free the middle: committed freed bytes move to System, and the
        // freed pages become System with no references.
        file.decRef(mfRange(b + mfPages(2), b + mfPages(6)))
        mfAssertSegments(file, [
            MFSegment(b, b + mfPages(2), .anonymous, committed: true),
            MFSegment(b + mfPages(2), b + mfPages(4), .system, committed: true, refs: 0),
            MFSegment(b + mfPages(4), b + mfPages(6), .system, refs: 0),
            MFSegment(b + mfPages(6), b + mfPages(8), .anonymous),
        ])
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(2), .system: mfPages(2)]))
        mfAssertInvariants(file)

        // The reclaimer takes the freed range as one piece.
        XCTAssertTrue(gate.waitForHeldCaller())
        XCTAssertEqual(gate.ranges, [mfRange(b + mfPages(2), b + mfPages(6))])
        XCTAssertFalse(file.waitForReclaim(timeoutNanoseconds: 1_000_000), "the reclaimer is held at the gate")
        mfAssertInvariants(file)

        gate.open()
        file.waitForReclaim()
        mfAssertSegments(file, [
            MFSegment(b, b + mfPages(2), .anonymous, committed: true),
            MFSegment(b + mfPages(6), b + mfPages(8), .anonymous),
        ])
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(2)]))
        if MFEnvironment.exactBlockCounts {
            XCTAssertEqual(try file.totalUsage(), mfPages(2), "the reclaimer punched the freed committed pages")
        }
        mfAssertInvariants(file)
    }

    func testFreedPagesOfDifferentKindsMergeAsSystem() throws {
        let gate = MFReclaimGate()
        let file = try mfMakeFile { $0.fallocateFailure = gate.hook }
        defer { gate.open() }
        // Hold the reclaimer on a range of its own first, so that it sees
        // the next frees only once the test has looked at them.
        let decoy = try file.allocate(mfPage, kind: .anonymous, direction: .bottomUp)
        gate.close()
        file.decRef(decoy)
        XCTAssertTrue(gate.waitForHeldCaller())

        let high = try file.allocate(mfPages(4), kind: .anonymous)
        let low = try file.allocate(mfPages(4), kind: .pageCache)
        XCTAssertEqual(low.end, high.start)
        try file.mfTouch(high)
        try file.mfScan()
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(4)]))

        // One decRef across both kinds.
        file.decRef(mfRange(low.start + mfPages(2), high.start + mfPages(2)))
        mfAssertSegments(file, [
            MFSegment(decoy, UsageInfo(kind: .system, refs: 0)),
            MFSegment(low.start, low.start + mfPages(2), .pageCache),
            MFSegment(low.start + mfPages(2), low.end, .system, refs: 0),
            MFSegment(high.start, high.start + mfPages(2), .system, committed: true, refs: 0),
            MFSegment(high.start + mfPages(2), high.end, .anonymous, committed: true),
        ])
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(2), .system: mfPages(2)]))
        mfAssertInvariants(file)

        // Free the rest of the page-cache allocation: its uncommitted freed
        // pages merge into one System segment.
        file.decRef(mfRange(low.start, low.start + mfPages(2)))
        mfAssertSegments(file, [
            MFSegment(decoy, UsageInfo(kind: .system, refs: 0)),
            MFSegment(low.start, low.end, .system, refs: 0),
            MFSegment(high.start, high.start + mfPages(2), .system, committed: true, refs: 0),
            MFSegment(high.start + mfPages(2), high.end, .anonymous, committed: true),
        ])
        mfAssertInvariants(file)

        gate.open()
        file.waitForReclaim()
        mfAssertSegments(file, [MFSegment(high.start + mfPages(2), high.end, .anonymous, committed: true)])
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(2)]))
        // The decoy first, then the newer frees as one range.
        XCTAssertEqual(gate.ranges, [decoy, mfRange(low.start, high.start + mfPages(2))])
        mfAssertInvariants(file)
    }

    func testDecRefOfAReferenceHeldTwiceFreesNothing() throws {
        let gate = MFReclaimGate()
        let file = try mfMakeFile { $0.fallocateFailure = gate.hook }
        let fr = try file.allocate(mfPages(4), kind: .mapped)
        file.incRef(fr)
        try file.mfTouch(fr)
        try file.mfScan()
        file.decRef(fr)
        mfAssertSegments(file, [MFSegment(fr, UsageInfo(kind: .mapped, knownCommitted: true, refs: 1))])
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.mapped: mfPages(4)]))
        file.waitForReclaim()
        XCTAssertEqual(gate.ranges, [], "nothing was freed, nothing reclaimed")
        file.decRef(fr)
        file.waitForReclaim()
        XCTAssertEqual(gate.ranges, [fr])
        XCTAssertTrue(file.usageSnapshot.isEmpty)
        XCTAssertEqual(file.accounting.snapshot(), MemoryStats())
        mfAssertInvariants(file)
    }

    func testReclaimerTakesRangesFromTheEndOfTheFile() throws {
        let gate = MFReclaimGate()
        let file = try mfMakeFile { $0.fallocateFailure = gate.hook }
        defer { gate.open() }
        var ranges: [FileRange] = []
        for _ in 0..<7 {
            ranges.append(try file.allocate(mfPages(2), kind: .anonymous, direction: .bottomUp))
        }
        // Hold the reclaimer on the first range.
        gate.close()
        file.decRef(ranges[0])
        XCTAssertTrue(gate.waitForHeldCaller())
        // Free three ranges that do not touch, lowest first.
        file.decRef(ranges[2])
        file.decRef(ranges[4])
        file.decRef(ranges[6])
        gate.open()
        file.waitForReclaim()
        XCTAssertEqual(gate.ranges, [ranges[0], ranges[6], ranges[4], ranges[2]])
        mfAssertSegments(file, [1, 3, 5].map { MFSegment(ranges[$0], UsageInfo(kind: .anonymous)) })
        mfAssertInvariants(file)
    }
}
