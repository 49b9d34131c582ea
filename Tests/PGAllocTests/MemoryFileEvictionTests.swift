// Eviction: every DelayedEviction mode, the bookkeeping of evictable
// ranges (markEvictable, markUnevictable, markAllUnevictable),
// shouldCacheEvictable, and the race the seed documents: evict called for
// a range the user has marked unevictable meanwhile.
//
// Host memory-pressure notification is in MemoryFilePressureTests.swift.

import XCTest

@testable import PGAlloc

/// Makes chosen evict calls block: the call announces itself on `entered`
/// and waits for `release`.
final class MFEvictBlocker: @unchecked Sendable {
    private let targets = MFLocked<[FileRange: (entered: MFLatch, release: MFLatch)]>([:])

    /// Blocks the next evict of `range`; returns its latches.
    func block(_ range: FileRange) -> (entered: MFLatch, release: MFLatch) {
        let latches = (entered: MFLatch(), release: MFLatch())
        targets.withLock { $0[range] = latches }
        return latches
    }

    func evicting(_ range: FileRange) {
        guard let latches = targets.withLock({ $0.removeValue(forKey: range) }) else { return }
        latches.entered.open()
        _ = latches.release.wait()
    }
}

final class MemoryFileEvictionTests: XCTestCase {
    func testOptionsResolveDelayedEviction() throws {
        let cases: [(DelayedEviction, Bool, DelayedEviction, Bool)] = [
            (.default, false, .enabled, false),
            (.enabled, false, .enabled, false),
            (.disabled, false, .disabled, false),
            (.disabled, true, .disabled, false),
            (.manual, false, .manual, true),
            (.manual, true, .manual, true),
        ]
        for (requested, pressure, resolved, shouldCache) in cases {
            let file = try mfMakeFile {
                $0.delayedEviction = requested
                $0.useHostMemcgPressure = pressure
                // Never consulted: pressure is dropped for these modes.
                $0.memoryCgroupDirectory = "/nonexistent"
            }
            XCTAssertEqual(file.options.delayedEviction, resolved, "\(requested)")
            XCTAssertFalse(file.options.useHostMemcgPressure, "\(requested), pressure \(pressure)")
            XCTAssertEqual(file.shouldCacheEvictable, shouldCache, "\(requested), pressure \(pressure)")
        }
    }

    func testDisabledEvictsAsSoonAsMarked() throws {
        let file = try mfMakeFile { $0.delayedEviction = .disabled }
        let user = MFEvictionRecorder()
        user.markEvictable(mfRange(0, 10), in: file)
        XCTAssertTrue(user.waitForCalls(1))
        file.waitForEvictions()
        XCTAssertEqual(user.calls, [mfRange(0, 10)])
        XCTAssertEqual(file.evictableUserCount, 0)
        XCTAssertEqual(file.mfEvictionsRunning, 0)
        mfAssertInvariants(file)

        // Again, with a new thread.
        user.markEvictable(mfRange(100, 200), in: file)
        XCTAssertTrue(user.waitForCalls(2))
        file.waitForEvictions()
        XCTAssertEqual(user.calls, [mfRange(0, 10), mfRange(100, 200)])
        XCTAssertEqual(user.staleCalls, [])
        XCTAssertEqual(file.evictableUserCount, 0)
        mfAssertInvariants(file)
    }

    func testManualEvictsOnlyWhenStartedFromTheEnd() throws {
        let file = try mfMakeFile { $0.delayedEviction = .manual }
        XCTAssertTrue(file.shouldCacheEvictable)
        let user = MFEvictionRecorder()
        user.markEvictable(mfRange(0, 10), in: file)
        user.markEvictable(mfRange(20, 30), in: file)
        user.markEvictable(mfRange(10, 15), in: file)
        // Touching ranges merge.
        XCTAssertEqual(file.mfEvictable(user)?.ranges, [mfRange(0, 15), mfRange(20, 30)])
        XCTAssertEqual(file.mfEvictable(user)?.evicting, false)
        // Manual: nothing started.
        XCTAssertEqual(file.mfEvictionsRunning, 0)
        XCTAssertEqual(user.calls, [])
        mfAssertInvariants(file)

        file.startEvictions()
        file.waitForEvictions()
        XCTAssertEqual(user.calls, [mfRange(20, 30), mfRange(0, 15)], "evicted from the last range back")
        XCTAssertEqual(file.evictableUserCount, 0)
        mfAssertInvariants(file)

        // Nothing left: starting again evicts nothing.
        file.startEvictions()
        file.waitForEvictions()
        XCTAssertEqual(user.calls.count, 2)
    }

    func testEvictableRangeBookkeeping() throws {
        let file = try mfMakeFile { $0.delayedEviction = .manual }
        let u1 = MFEvictionRecorder()
        let u2 = MFEvictionRecorder()
        XCTAssertNil(file.mfEvictable(u1))

        file.markEvictable(u1, mfRange(0, 100))
        file.markEvictable(u1, mfRange(50, 150))
        XCTAssertEqual(file.mfEvictable(u1)?.ranges, [mfRange(0, 150)])
        // Marking an evictable range again changes nothing.
        file.markEvictable(u1, mfRange(10, 20))
        XCTAssertEqual(file.mfEvictable(u1)?.ranges, [mfRange(0, 150)])
        mfAssertInvariants(file)

        file.markUnevictable(u1, mfRange(10, 20))
        file.markUnevictable(u1, mfRange(50, 60))
        XCTAssertEqual(file.mfEvictable(u1)?.ranges, [mfRange(0, 10), mfRange(20, 50), mfRange(60, 150)])
        file.markUnevictable(u1, mfRange(140, 300))
        XCTAssertEqual(file.mfEvictable(u1)?.ranges, [mfRange(0, 10), mfRange(20, 50), mfRange(60, 140)])
        // Unevictable already, or empty: no effect.
        file.markUnevictable(u1, mfRange(10, 20))
        file.markUnevictable(u1, mfRange(30, 30))
        XCTAssertEqual(file.mfEvictable(u1)?.ranges, [mfRange(0, 10), mfRange(20, 50), mfRange(60, 140)])
        // Filling a hole merges.
        file.markEvictable(u1, mfRange(10, 20))
        XCTAssertEqual(file.mfEvictable(u1)?.ranges, [mfRange(0, 50), mfRange(60, 140)])
        mfAssertInvariants(file)

        // A user the file does not know: no effect.
        file.markUnevictable(u2, mfRange(0, 10))
        file.markAllUnevictable(u2)
        XCTAssertEqual(file.evictableUserCount, 1)

        // Users are independent; one with nothing evictable left is dropped.
        file.markEvictable(u2, mfRange(0, 5))
        XCTAssertEqual(file.evictableUserCount, 2)
        XCTAssertEqual(file.mfEvictable(u2)?.ranges, [mfRange(0, 5)])
        file.markUnevictable(u2, mfRange(0, 5))
        XCTAssertNil(file.mfEvictable(u2))
        XCTAssertEqual(file.evictableUserCount, 1)
        XCTAssertEqual(file.mfEvictable(u1)?.ranges, [mfRange(0, 50), mfRange(60, 140)])
        mfAssertInvariants(file)

        file.markAllUnevictable(u1)
        XCTAssertNil(file.mfEvictable(u1))
        XCTAssertEqual(file.evictableUserCount, 0)
        file.startEvictions()
        file.waitForEvictions()
        XCTAssertEqual(u1.calls, [])
        XCTAssertEqual(u2.calls, [])

        // Both users evicted, each from its own last range back.
        file.markEvictable(u1, mfRange(0, 10))
        file.markEvictable(u1, mfRange(20, 30))
        file.markEvictable(u2, mfRange(5, 6))
        file.startEvictions()
        file.waitForEvictions()
        XCTAssertEqual(u1.calls, [mfRange(20, 30), mfRange(0, 10)])
        XCTAssertEqual(u2.calls, [mfRange(5, 6)])
        XCTAssertEqual(file.evictableUserCount, 0)
        mfAssertInvariants(file)
    }

    func testEnabledWithoutPressureEvictsWhenTheReclaimerIsIdle() throws {
        let gate = MFReclaimGate()
        let file = try mfMakeFile {
            $0.delayedEviction = .enabled
            $0.fallocateFailure = gate.hook
        }
        defer { gate.open() }
        XCTAssertFalse(file.shouldCacheEvictable)
        // Keep the reclaimer busy (held at the gate with a freed page).
        let fr = try file.allocate(mfPage, kind: .anonymous)
        gate.close()
        file.decRef(fr)
        XCTAssertTrue(gate.waitForHeldCaller())

        let user = MFEvictionRecorder()
        user.markEvictable(mfRange(0, 4096), in: file)
        // Only an idle reclaimer starts evictions: none while it works.
        XCTAssertEqual(file.mfEvictionsRunning, 0)
        XCTAssertEqual(user.calls, [])
        XCTAssertEqual(file.mfEvictable(user)?.ranges, [mfRange(0, 4096)])

        // Out of work, it evicts.
        gate.open()
        XCTAssertTrue(user.waitForCalls(1), "the idle reclaimer did not start evictions")
        file.waitForEvictions()
        XCTAssertEqual(user.calls, [mfRange(0, 4096)])
        XCTAssertEqual(file.evictableUserCount, 0)

        // Marked while the reclaimer sleeps: marking wakes it.
        file.waitForReclaim()
        user.markEvictable(mfRange(8192, 12288), in: file)
        XCTAssertTrue(user.waitForCalls(2))
        file.waitForEvictions()
        XCTAssertEqual(user.calls, [mfRange(0, 4096), mfRange(8192, 12288)])
        mfAssertInvariants(file)
    }

    /// The seed's documented race: the eviction thread takes a range, drops
    /// the lock and calls evict; meanwhile the user marks the range
    /// unevictable. The user sees an evict for a range it no longer
    /// considers evictable, and the file never calls evict for it again.
    func testEvictCalledAfterMarkUnevictable() throws {
        let blocker = MFEvictBlocker()
        let file = try mfMakeFile { $0.delayedEviction = .manual }
        let user = MFEvictionRecorder { _, range in blocker.evicting(range) }
        let first = blocker.block(mfRange(20, 30))

        user.markEvictable(mfRange(0, 10), in: file)
        user.markEvictable(mfRange(20, 30), in: file)
        file.startEvictions()
        XCTAssertTrue(first.entered.wait(), "evict was not called")

        // The eviction thread is inside evict([20, 30)): the file no longer
        // lists that range.
        XCTAssertEqual(file.mfEvictable(user)?.ranges, [mfRange(0, 10)])
        XCTAssertEqual(file.mfEvictable(user)?.evicting, true)
        XCTAssertEqual(file.mfEvictionsRunning, 1)
        mfAssertInvariants(file)

        // The user now marks [20, 30) unevictable (the race), drops [0, 10)
        // too, and marks [40, 50) evictable: the running thread takes that
        // one, without a second thread.
        user.markUnevictable(mfRange(20, 30), in: file)
        user.markUnevictable(mfRange(0, 10), in: file)
        user.markEvictable(mfRange(40, 50), in: file)
        XCTAssertEqual(file.mfEvictable(user)?.ranges, [mfRange(40, 50)])
        file.startEvictions()
        XCTAssertEqual(file.mfEvictionsRunning, 1)

        first.release.open()
        file.waitForEvictions()
        XCTAssertEqual(user.calls, [mfRange(20, 30), mfRange(40, 50)])
        XCTAssertEqual(user.staleCalls, [mfRange(20, 30)], "the user saw evict for a range it had marked unevictable")
        XCTAssertEqual(file.evictableUserCount, 0)
        mfAssertInvariants(file)

        // The file does not call evict for it again.
        file.startEvictions()
        file.waitForEvictions()
        XCTAssertEqual(user.calls, [mfRange(20, 30), mfRange(40, 50)])

        // markAllUnevictable during an eviction: the entry stays (empty)
        // until the thread ends.
        let second = blocker.block(mfRange(80, 90))
        user.markEvictable(mfRange(60, 70), in: file)
        user.markEvictable(mfRange(80, 90), in: file)
        file.startEvictions()
        XCTAssertTrue(second.entered.wait())
        file.markAllUnevictable(user)
        XCTAssertEqual(file.mfEvictable(user)?.ranges, [])
        XCTAssertEqual(file.mfEvictable(user)?.evicting, true)
        XCTAssertEqual(file.evictableUserCount, 1)
        mfAssertInvariants(file)
        second.release.open()
        file.waitForEvictions()
        XCTAssertEqual(user.calls, [mfRange(20, 30), mfRange(40, 50), mfRange(80, 90)], "[60, 70) was never evicted")
        XCTAssertEqual(file.evictableUserCount, 0)
        mfAssertInvariants(file)
    }

    /// evict is called without the file's locks: a user may free its
    /// memory from inside it.
    func testEvictCanCallBackIntoTheFile() throws {
        let backing = MFLocked<[FileRange: FileRange]>([:])
        let file = try mfMakeFile { $0.delayedEviction = .manual }
        let user = MFEvictionRecorder { [weak file] user, range in
            guard let file, let fr = backing.withLock({ $0.removeValue(forKey: range) }) else { return }
            file.markUnevictable(user, range)
            file.decRef(fr)
        }
        for i in 0..<3 as Range<UInt64> {
            let fr = try file.allocate(mfPages(4), kind: .pageCache, direction: .bottomUp)
            try file.mfTouch(fr)
            let range = mfRange(i * 100, i * 100 + 10)
            backing.withLock { $0[range] = fr }
            user.markEvictable(range, in: file)
        }
        try file.mfScan()
        XCTAssertEqual(file.accounting.snapshot(), mfStats([.pageCache: mfPages(12)]))

        file.startEvictions()
        file.waitForEvictions()
        XCTAssertEqual(user.calls, [mfRange(200, 210), mfRange(100, 110), mfRange(0, 10)])
        file.waitForReclaim()
        XCTAssertTrue(file.usageSnapshot.isEmpty, file.description)
        XCTAssertEqual(file.accounting.snapshot(), MemoryStats())
        XCTAssertEqual(file.evictableUserCount, 0)
        mfAssertInvariants(file)
    }
}
