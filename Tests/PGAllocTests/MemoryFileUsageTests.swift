// Usage: updateUsage finds the pages touched through the mappings and
// accounts them per kind; its heuristics skip a scan when the block count
// says nothing changed, within 10 ms of the last scan, and, while some usage
// is unexplained (swapped), within a second; pages the reclaimer takes back
// during a scan are not taken for swap; totalUsage and totalSize; per-kind
// totals as pages move between kinds; mapInternal.
//
// Time-based skips are checked without depending on timing: a skip is
// asserted only when the call provably fell inside the window (measured
// around it), a scan only when it provably fell outside; attempts repeat
// until one lands inside.

import XCTest

@testable import PGAlloc

#if canImport(Glibc)
import Glibc
#endif

final class MemoryFileUsageTests: XCTestCase {
    func testUpdateUsageAccountsTouchedPagesPerKind() throws {
        let file = try mfMakeFile()
        let anon = try file.allocate(mfPages(16), kind: .anonymous)
        let cache = try file.allocate(mfPages(8), kind: .pageCache)
        let tmpfs = try file.allocate(mfHuge, kind: .tmpfs)
        let ramdisk = try file.allocate(mfPages(4), kind: .ramdiskfs)

        // Through forEachMappedSlice: 5 pages of anon, in two runs.
        try file.mfTouch(mfRange(anon.start, anon.start + mfPages(3)))
        try file.mfTouch(mfRange(anon.start + mfPages(10), anon.start + mfPages(12)))
        // Through mapInternal: all of the page cache, reading only.
        try file.mapInternal(cache, access: .read) { blocks in
            var sum = 0
            for block in blocks {
                for i in stride(from: 0, to: block.count, by: Int(mfPage)) {
                    sum &+= Int(block[i])
                }
            }
            XCTAssertEqual(sum, 0)
        }
        // Writing 100 pages of tmpfs through mapInternal.
        try file.mapInternal(tmpfs, access: .write) { blocks in
            XCTAssertEqual(blocks.count, 1)
            memset(blocks[0].baseAddress!, 0xEE, Int(mfPages(100)))
        }
        // Nothing of the ramdisk.

        XCTAssertEqual(file.accounting.snapshot(), MemoryStats(), "nothing is accounted before a scan")
        XCTAssertEqual(file.mfUsageLast, 0)
        // The first scan is never skipped for time.
        try file.updateUsage()
        XCTAssertNotEqual(file.mfUsageLast, 0)
        XCTAssertEqual(file.accounting.snapshot(), mfStats([
            .anonymous: mfPages(5), .pageCache: mfPages(8), .tmpfs: mfPages(100),
        ]))
        XCTAssertEqual(file.mfUsageExpected, mfPages(113))
        XCTAssertEqual(file.mfUsageSwapped, 0)
        if MFEnvironment.exactBlockCounts {
            XCTAssertEqual(try file.totalUsage(), mfPages(113))
        }
        XCTAssertEqual(file.totalSize, mfGiB)
        XCTAssertLessThan(tmpfs.end, ramdisk.start)
        mfAssertSegments(file, [
            MFSegment(tmpfs.start, tmpfs.start + mfPages(100), .tmpfs, committed: true),
            MFSegment(tmpfs.start + mfPages(100), tmpfs.end, .tmpfs),
            MFSegment(ramdisk, UsageInfo(kind: .ramdiskfs)),
            MFSegment(cache, UsageInfo(kind: .pageCache, knownCommitted: true)),
            MFSegment(anon.start, anon.start + mfPages(3), .anonymous, committed: true),
            MFSegment(anon.start + mfPages(3), anon.start + mfPages(10), .anonymous),
            MFSegment(anon.start + mfPages(10), anon.start + mfPages(12), .anonymous, committed: true),
            MFSegment(anon.start + mfPages(12), anon.end, .anonymous),
        ])
        mfAssertInvariants(file)

        // Touching the rest of the anonymous pages: the segments merge back.
        try file.mfTouch(anon)
        try file.mfScan()
        XCTAssertEqual(file.accounting.snapshot()[.anonymous], mfPages(16))
        XCTAssertTrue(file.mfSegments.contains(MFSegment(anon, UsageInfo(kind: .anonymous, knownCommitted: true))), file.description)
        mfAssertInvariants(file)
    }

    func testScanAcrossChunks() throws {
        let file = try mfMakeFile()
        let fr = try file.allocate(mfGiB + mfHuge, kind: .anonymous, direction: .bottomUp)
        XCTAssertEqual(fr, mfRange(0, mfGiB + mfHuge))
        // One page on each side of the chunk boundary, and the last page.
        try file.mfTouch(mfRange(mfGiB - mfPage, mfGiB + mfPage))
        try file.mfTouch(mfRange(fr.end - mfPage, fr.end))
        try file.mapInternal(fr, access: .read) { blocks in
            XCTAssertEqual(blocks.map(\.count), [Int(mfGiB), Int(mfHuge)])
        }
        try file.updateUsage()
        XCTAssertEqual(file.accounting.snapshot()[.anonymous], mfPages(3))
        mfAssertSegments(file, [
            MFSegment(0, mfGiB - mfPage, .anonymous),
            MFSegment(mfGiB - mfPage, mfGiB + mfPage, .anonymous, committed: true),
            MFSegment(mfGiB + mfPage, fr.end - mfPage, .anonymous),
            MFSegment(fr.end - mfPage, fr.end, .anonymous, committed: true),
        ])
        mfAssertInvariants(file)
    }

    func testUpdateUsageSkipsWhenTheBlockCountMatches() throws {
        let file = try mfMakeFile()
        let fr = try file.allocate(mfPages(4), kind: .anonymous)
        try file.mfTouch(fr)
        try file.updateUsage()
        let last = file.mfUsageLast
        XCTAssertEqual(file.accounting.snapshot()[.anonymous], mfPages(4))
        // Everything committed is known: no scan, whatever the time.
        try file.updateUsage()
        XCTAssertEqual(file.mfUsageLast, last)
        file.mfAllowNextScan()
        let movedBack = file.mfUsageLast
        try file.updateUsage()
        XCTAssertEqual(file.mfUsageLast, movedBack, "skipped: the block count equals the known-committed bytes")
        XCTAssertEqual(file.accounting.snapshot()[.anonymous], mfPages(4))
    }

    func testUpdateUsageSkipsWithinTenMillisecondsOfTheLastScan() throws {
        let file = try mfMakeFile()
        var sawSkip = false
        for attempt in 0..<50 where !sawSkip {
            let fr = try file.allocate(mfPages(2), kind: .anonymous)
            try file.mfTouch(mfRange(fr.start, fr.start + mfPage))
            try file.mfScan()
            let last = file.mfUsageLast
            let accounted = file.accounting.snapshot()[.anonymous]
            // A new committed page: only the time rule can skip the scan.
            try file.mfTouch(mfRange(fr.start + mfPage, fr.end))
            let before = monotonicNanoseconds()
            try file.updateUsage()
            let after = monotonicNanoseconds()
            if after - last < 10_000_000 {
                XCTAssertEqual(file.mfUsageLast, last, "attempt \(attempt): a call within 10 ms of the last scan scans")
                XCTAssertEqual(file.accounting.snapshot()[.anonymous], accounted)
                sawSkip = true
            } else if before - last >= 10_000_000 {
                XCTAssertNotEqual(file.mfUsageLast, last)
                XCTAssertEqual(file.accounting.snapshot()[.anonymous], accounted + mfPage)
            }
        }
        XCTAssertTrue(sawSkip, "no call landed within 10 ms of a scan in 50 attempts")

        // Once 10 ms have passed, the same call scans.
        let last = file.mfUsageLast
        let accounted = file.accounting.snapshot()[.anonymous]
        usleep(15_000)
        try file.updateUsage()
        XCTAssertNotEqual(file.mfUsageLast, last)
        XCTAssertEqual(file.accounting.snapshot()[.anonymous], accounted + mfPage)
        mfAssertInvariants(file)
    }

    /// Memory the file holds outside every allocated range (here: freed
    /// pages the reclaimer could only zero) is accounted as swapped System
    /// memory, rescanned at most once a second while nothing changes, and
    /// dropped once the pages are allocated and found again.
    func testUnexplainedUsageIsAccountedAsSwapped() throws {
        let gate = MFReclaimGate()
        gate.fail(with: EOPNOTSUPP)
        let file = try mfMakeFile { $0.fallocateFailure = gate.hook }
        let fr = try file.allocate(mfPages(16), kind: .anonymous)
        try file.mfFill(fr, 1)
        file.decRef(fr)
        file.waitForReclaim()
        XCTAssertTrue(file.usageSnapshot.isEmpty)
        gate.fail(with: nil)
        let held = try file.totalUsage()
        XCTAssertGreaterThanOrEqual(held, fr.length)

        try file.mfScan()
        XCTAssertEqual(file.mfUsageSwapped, held)
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.system: held]))
        mfAssertInvariants(file)

        // Nothing changed: within a second, no scan.
        var sawSkip = false
        for _ in 0..<20 where !sawSkip {
            file.mfAllowNextScan()
            try file.updateUsage()
            let last = file.mfUsageLast
            let before = monotonicNanoseconds()
            try file.updateUsage()
            let after = monotonicNanoseconds()
            if after - last < 1_000_000_000 {
                XCTAssertEqual(file.mfUsageLast, last, "a call within a second of the last scan scans")
                sawSkip = true
            } else if before - last >= 1_000_000_000 {
                XCTAssertNotEqual(file.mfUsageLast, last)
            }
        }
        XCTAssertTrue(sawSkip)
        // After a second (moved back), it scans again: same result.
        file.mfAllowNextScan()
        let movedBack = file.mfUsageLast
        try file.updateUsage()
        XCTAssertNotEqual(file.mfUsageLast, movedBack)
        XCTAssertEqual(file.mfUsageSwapped, held)
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.system: held]))

        // Allocated again and found committed: no longer swapped.
        let again = try file.allocate(mfPages(16), kind: .pageCache)
        XCTAssertEqual(again, fr)
        XCTAssertTrue(try file.mfAllBytes(again, equal: 0))
        try file.mfScan()
        XCTAssertEqual(file.mfUsageSwapped, held - fr.length)
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.pageCache: fr.length, .system: held - fr.length]))
        mfAssertInvariants(file)
    }

    /// Known-committed pages the reclaimer takes back while a scan runs
    /// leave the block count and the known-committed bytes together: the
    /// scan must not account them as swapped System memory afterwards.
    func testPagesReclaimedDuringAScanAreNotSwap() throws {
        let gate = MFReclaimGate()
        let file = try mfMakeFile { $0.fallocateFailure = gate.hook }
        defer { gate.open() }
        let kept = try file.allocate(mfPages(8), kind: .anonymous)
        let freed = try file.allocate(mfPages(8), kind: .anonymous)
        try file.mfTouch(kept)
        try file.mfTouch(freed)
        try file.mfScan()
        // Untouched: gives the next scan a slice to look at.
        _ = try file.allocate(mfPages(4), kind: .pageCache)
        gate.close()
        file.decRef(freed)
        XCTAssertTrue(gate.waitForHeldCaller())
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(8), .system: mfPages(8)]))

        // The block count is taken with the freed pages still committed;
        // they are reclaimed between it and the end of the scan.
        let before = try file.totalUsage()
        XCTAssertEqual(before, mfPages(16))
        try file.core.updateUsageByScanning(currentUsage: before) { slice, vector in
            gate.open()
            file.waitForReclaim()
            try file.core.residency(slice, vector)
        }
        XCTAssertEqual(try file.totalUsage(), mfPages(8))
        XCTAssertEqual(file.mfUsageSwapped, 0)
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(8)]))
        mfAssertInvariants(file)
    }

    func testPerKindTotalsFollowMovesAndReclaim() throws {
        let gate = MFReclaimGate()
        let file = try mfMakeFile { $0.fallocateFailure = gate.hook }
        defer { gate.open() }
        let anon = try file.allocate(mfPages(8), kind: .anonymous)
        let cache = try file.allocate(mfPages(8), kind: .pageCache)
        let tmpfs = try file.allocate(mfPages(8), kind: .tmpfs)
        for fr in [anon, cache, tmpfs] {
            try file.mfTouch(fr)
        }
        try file.mfScan()
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(8), .pageCache: mfPages(8), .tmpfs: mfPages(8)]))
        XCTAssertEqual(file.accounting.total, mfPages(24))

        // Decommit drops bytes of their own kind.
        try file.decommit(mfRange(tmpfs.start, tmpfs.start + mfPages(2)))
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(8), .pageCache: mfPages(8), .tmpfs: mfPages(6)]))

        // Hold the reclaimer on a decoy to see the moved bytes.
        let decoy = try file.allocate(mfPage, kind: .anonymous, direction: .bottomUp)
        gate.close()
        file.decRef(decoy)
        XCTAssertTrue(gate.waitForHeldCaller())

        // Freeing half the page cache moves it to System.
        file.decRef(mfRange(cache.start, cache.start + mfPages(4)))
        XCTAssertEqual(file.accounting.snapshot(), mfStats([
            .anonymous: mfPages(8), .pageCache: mfPages(4), .tmpfs: mfPages(6), .system: mfPages(4),
        ]))
        // A reference held twice: dropping one moves nothing.
        file.incRef(anon)
        file.decRef(anon)
        XCTAssertEqual(file.accounting.snapshot()[.anonymous], mfPages(8))
        XCTAssertEqual(file.accounting.snapshot(), mfStats([
            .anonymous: mfPages(8), .pageCache: mfPages(4), .tmpfs: mfPages(6), .system: mfPages(4),
        ]))
        mfAssertInvariants(file)

        gate.open()
        file.waitForReclaim()
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.anonymous: mfPages(8), .pageCache: mfPages(4), .tmpfs: mfPages(6)]))
        mfAssertInvariants(file)

        for fr in [anon, mfRange(cache.start + mfPages(4), cache.end), tmpfs] {
            file.decRef(fr)
        }
        file.waitForReclaim()
        XCTAssertEqual(file.accounting.snapshot(), MemoryStats())
        XCTAssertEqual(try file.totalUsage(), 0)
        mfAssertInvariants(file)
    }

    func testFilesCanShareOneAccounting() throws {
        let shared = MemoryAccounting()
        let a = try mfMakeFile { $0.accounting = shared }
        let b = try mfMakeFile { $0.accounting = shared }
        XCTAssertTrue(a.accounting === shared)
        let fa = try a.allocate(mfPages(3), kind: .anonymous)
        let fb = try b.allocate(mfPages(5), kind: .anonymous)
        try a.mfTouch(fa)
        try b.mfTouch(fb)
        try a.mfScan()
        try b.mfScan()
        XCTAssertEqual(shared.snapshot(), mfStats([.anonymous: mfPages(8)]))
        mfAssertInvariants(a)
        mfAssertInvariants(b)
        a.decRef(fa)
        a.waitForReclaim()
        XCTAssertEqual(shared.snapshot(), mfStats([.anonymous: mfPages(5)]))
        b.decRef(fb)
        b.waitForReclaim()
        XCTAssertEqual(shared.snapshot(), MemoryStats())
    }

    func testMemoryAccountingIncDecMove() {
        let accounting = MemoryAccounting()
        accounting.inc(100, .anonymous)
        accounting.inc(50, .tmpfs)
        accounting.move(30, to: .system, from: .anonymous)
        accounting.dec(20, .tmpfs)
        XCTAssertEqual(accounting.snapshot(), mfStats([.anonymous: 70, .system: 30, .tmpfs: 30]))
        XCTAssertEqual(accounting.total, 130)
        XCTAssertEqual(accounting.snapshot().description, "system=30 anonymous=70 page-cache=0 tmpfs=30 ramdiskfs=0 mapped=0")
        for kind in MemoryKind.allCases {
            XCTAssertEqual(MemoryKind(name: kind.description), kind)
        }
        XCTAssertNil(MemoryKind(name: "swap"))
    }

    // MARK: Mappings

    func testMapInternalLendsOneBufferPerChunk() throws {
        let file = try mfMakeFile()
        let fr = try file.allocate(mfPages(3), kind: .anonymous)
        let result = try file.mapInternal(fr) { blocks -> Int in
            XCTAssertEqual(blocks.count, 1)
            XCTAssertEqual(blocks[0].count, Int(fr.length))
            blocks[0].storeBytes(of: 0xABCD, toByteOffset: Int(mfPage), as: UInt32.self)
            return 7
        }
        XCTAssertEqual(result, 7)
        XCTAssertEqual(try file.mfLoadWord(fr.start + mfPage) & 0xFFFF_FFFF, 0xABCD)

        // Errors of the body come through.
        struct BodyError: Error {}
        XCTAssertThrowsError(try file.mapInternal(fr) { _ in throw BodyError() }) { error in
            XCTAssertTrue(error is BodyError)
        }
        // Internal mappings are never executable.
        XCTAssertThrowsError(try file.mapInternal(fr, access: [.read, .execute]) { _ in }) { error in
            XCTAssertEqual(error as? MemoryFileError, .executeAccessDenied(fr))
            XCTAssertTrue("\(error)".contains("EACCES"))
        }
        // The same memory through two calls: the chunk is mapped once.
        var addresses: [UnsafeMutableRawPointer] = []
        for _ in 0..<2 {
            try file.forEachMappedSlice(fr) { addresses.append($0.baseAddress!) }
        }
        XCTAssertEqual(addresses[0], addresses[1])
        XCTAssertGreaterThanOrEqual(MFProc.mapLines(containing: "memfd:pgalloc-mftest").count, 1)
    }
}
