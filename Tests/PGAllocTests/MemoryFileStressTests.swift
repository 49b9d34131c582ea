// Several threads allocate (both directions, small and huge), incRef,
// decRef, decommit and write pages of one MemoryFile at once, with usage
// scans and invariant checks mixed in, while the reclaimer runs. Each
// thread keeps a model of its own allocations (per-page reference counts,
// the tags it wrote, the pages it touched); at the end the models are
// merged and compared with the usage set and the accounting.
//
// Every page a thread writes carries a tag naming the thread; reading
// back a tag other than the last one written (or non-zero data in a page
// that should be fresh) means two threads were handed the same page, or a
// page was not zeroed.
//
// Replay with PGALLOC_TEST_SEED=<seed>; scale with PGALLOC_TEST_OPS=<ops
// per thread>.

import Foundation
import XCTest

@testable import PGAlloc

/// One thread's allocations and what it did to them.
final class MFStressWorker: @unchecked Sendable {
    struct Allocation {
        var range: FileRange
        var kind: MemoryKind
        /// References per page; pages at 0 were freed.
        var refs: [UInt8]
        /// Tags written, by page index.
        var tags: [Int: UInt64] = [:]
        /// Pages read or written since allocation or decommit.
        var touched = Set<Int>()
        /// Pages decommitted at some point.
        var decommitted = Set<Int>()

        var isLive: Bool { refs.contains { $0 > 0 } }
        func page(_ i: Int) -> UInt64 { range.start + UInt64(i) * mfPage }

        /// Drops one reference on `pages`; those left with none were freed
        /// and are no longer ours to read or write.
        mutating func dropRef(_ pages: Range<Int>) {
            for p in pages {
                refs[p] -= 1
                if refs[p] == 0 {
                    tags[p] = nil
                    touched.remove(p)
                    decommitted.remove(p)
                }
            }
        }
    }

    let index: Int
    let file: MemoryFile
    let ops: Int
    var rng: MFRandom
    var allocations: [Allocation] = []
    var failures: [String] = []
    var log: [String] = []
    private var tagCounter: UInt64 = 0

    static let kinds: [MemoryKind] = [.anonymous, .pageCache, .tmpfs, .ramdiskfs, .mapped]

    init(index: Int, seed: UInt64, file: MemoryFile, ops: Int) {
        self.index = index
        self.file = file
        self.ops = ops
        rng = MFRandom(seed: seed)
    }

    private func fail(_ message: String) {
        failures.append("thread \(index): \(message)\n  last operations: \(log.suffix(12).joined(separator: "; "))")
    }

    private func nextTag() -> UInt64 {
        tagCounter += 1
        return UInt64(index + 1) << 48 | tagCounter
    }

    /// A random run of live pages of allocation `a`, as page indices.
    private func liveRun(_ a: Allocation) -> Range<Int>? {
        let live = a.refs.indices.filter { a.refs[$0] > 0 }
        guard !live.isEmpty else { return nil }
        let p = live[rng.index(live.count)]
        var lo = p
        var hi = p + 1
        while lo > 0 && a.refs[lo - 1] > 0 { lo -= 1 }
        while hi < a.refs.count && a.refs[hi] > 0 { hi += 1 }
        if rng.chance(1, 3) {
            return lo..<hi
        }
        let start = lo + rng.index(hi - lo)
        let count = 1 + rng.index(min(hi - start, 16))
        return start..<(start + count)
    }

    private func range(_ a: Allocation, _ pages: Range<Int>) -> FileRange {
        mfRange(a.page(pages.lowerBound), a.page(pages.upperBound))
    }

    func run() {
        do {
            for _ in 0..<ops where failures.isEmpty {
                try step()
            }
            if failures.isEmpty {
                try verifyTags()
            }
        } catch {
            fail("threw \(error)")
        }
    }

    private func step() throws {
        // Fully freed allocations are dropped: every one listed is live.
        let liveIndices = Array(allocations.indices)
        let roll = rng.below(100)
        if roll < 22 || liveIndices.isEmpty {
            if liveIndices.count >= 24 {
                let ai = liveIndices[rng.index(liveIndices.count)]
                try freeAll(ai)
                allocations.remove(at: ai)
                return
            }
            return try allocate()
        }
        let ai = liveIndices[rng.index(liveIndices.count)]
        guard let pages = liveRun(allocations[ai]) else { return }
        let fr = range(allocations[ai], pages)
        switch roll {
        case 22..<36:
            guard !pages.contains(where: { allocations[ai].refs[$0] >= 200 }) else { return }
            log.append("incRef \(fr)")
            file.incRef(fr)
            for p in pages { allocations[ai].refs[p] += 1 }
        case 36..<60:
            log.append("decRef \(fr)")
            file.decRef(fr)
            allocations[ai].dropRef(pages)
            if !allocations[ai].isLive {
                allocations.remove(at: ai)
            }
        case 60..<85:
            let p = pages.lowerBound
            let page = allocations[ai].page(p)
            let expected = allocations[ai].tags[p] ?? 0
            let word = try file.mfLoadWord(page)
            if word != expected {
                fail("page 0x\(String(page, radix: 16)) holds 0x\(String(word, radix: 16)), expected 0x\(String(expected, radix: 16))")
                return
            }
            let tag = nextTag()
            log.append("tag 0x\(String(page, radix: 16))")
            try file.mfStoreWord(page, tag)
            allocations[ai].tags[p] = tag
            allocations[ai].touched.insert(p)
        case 85..<90:
            log.append("decommit \(fr)")
            try file.decommit(fr)
            for p in pages {
                allocations[ai].tags[p] = nil
                allocations[ai].touched.remove(p)
                allocations[ai].decommitted.insert(p)
            }
        case 90..<96:
            log.append("updateUsage")
            try file.updateUsage()
        default:
            log.append("checkInvariants")
            do {
                try file.checkInvariants()
            } catch {
                fail("invariants: \(error)")
            }
        }
    }

    private func allocate() throws {
        let length: UInt64
        switch rng.below(10) {
        case 0..<6: length = rng.inRange(1, 8) * mfPage
        case 6..<8: length = rng.inRange(9, 64) * mfPage
        default: length = rng.element([mfHuge, mfHuge + mfPage, 2 * mfHuge])
        }
        let direction: AllocationDirection = rng.chance(1, 2) ? .topDown : .bottomUp
        let kind = rng.element(MFStressWorker.kinds)
        let fr = try file.allocate(length, kind: kind, direction: direction)
        log.append("allocate \(fr) \(direction)")
        if fr.length != length || fr.start % (length >= mfHuge ? mfHuge : mfPage) != 0 {
            fail("allocate(0x\(String(length, radix: 16))) returned misaligned \(fr)")
        }
        if fr.end > file.totalSize {
            fail("allocate returned \(fr) beyond the file's 0x\(String(file.totalSize, radix: 16)) bytes")
        }
        allocations.append(Allocation(range: fr, kind: kind, refs: Array(repeating: 1, count: Int(length / mfPage))))
    }

    /// Drops every reference of allocation `ai`.
    func freeAll(_ ai: Int) throws {
        while let run = allocations[ai].refs.indices.first(where: { allocations[ai].refs[$0] > 0 }).map({ start in
            start..<(allocations[ai].refs[start...].firstIndex(where: { $0 == 0 }) ?? allocations[ai].refs.count)
        }) {
            let fr = range(allocations[ai], run)
            log.append("decRef \(fr)")
            file.decRef(fr)
            allocations[ai].dropRef(run)
        }
    }

    func verifyTags() throws {
        for a in allocations {
            for (p, tag) in a.tags {
                let word = try file.mfLoadWord(a.page(p))
                if word != tag {
                    fail("at the end, page 0x\(String(a.page(p), radix: 16)) holds 0x\(String(word, radix: 16)), expected 0x\(String(tag, radix: 16))")
                }
            }
        }
    }
}

final class MemoryFileStressTests: XCTestCase {
    func testConcurrentAllocationReferenceCountingAndReclaim() throws {
        let seed = MFEnvironment.seed("testConcurrentAllocationReferenceCountingAndReclaim", default: 0x5157_0001)
        let ops = ProcessInfo.processInfo.environment["PGALLOC_TEST_OPS"].flatMap { Int($0) } ?? 2000
        let threadCount = 6
        let file = try mfMakeFile()
        var seeds = MFRandom(seed: seed)
        let workers = (0..<threadCount).map { MFStressWorker(index: $0, seed: seeds.next(), file: file, ops: ops) }
        let threads = try workers.map { worker in
            try HostThread(name: "mf-stress-\(worker.index)") { worker.run() }
        }
        for thread in threads {
            thread.join()
        }
        let failures = workers.flatMap(\.failures)
        XCTAssertEqual(failures, [], "seed \(seed)")
        guard failures.isEmpty else { return }

        file.waitForReclaim()
        mfAssertInvariants(file, "seed \(seed)")

        // The usage set equals the merged models. Which pages are known
        // committed depends on how the threads' scans interleaved (a scan
        // drops the lock around mincore, as the seed's does, so a page
        // decommitted or freed and reallocated meanwhile may be marked
        // committed): first compare without it.
        func merged(_ segments: [MFSegment]) -> [MFSegment] {
            var out: [MFSegment] = []
            for s in segments.sorted(by: { $0.range.start < $1.range.start }) {
                if let last = out.last, last.range.end == s.range.start, last.info == s.info {
                    out[out.count - 1].range.end = s.range.end
                } else {
                    out.append(s)
                }
            }
            return out
        }
        func withoutCommitted(_ segments: [MFSegment]) -> [MFSegment] {
            merged(segments.map { MFSegment($0.range, UsageInfo(kind: $0.info.kind, knownCommitted: false, refs: $0.info.refs)) })
        }
        var model: [MFSegment] = []
        var touchedBytes = MemoryStats()
        var touchedPages: UInt64 = 0
        for worker in workers {
            for a in worker.allocations {
                for (p, r) in a.refs.enumerated() where r > 0 {
                    let touched = a.touched.contains(p)
                    model.append(MFSegment(mfRange(a.page(p), a.page(p) + mfPage),
                                           UsageInfo(kind: a.kind, knownCommitted: touched, refs: UInt64(r))))
                    if touched {
                        touchedBytes[a.kind] += mfPage
                        touchedPages += 1
                    }
                }
            }
        }
        model = merged(model)
        XCTAssertEqual(withoutCommitted(file.mfSegments), withoutCommitted(model), "seed \(seed)")
        if MFEnvironment.exactBlockCounts {
            XCTAssertEqual(try file.totalUsage(), touchedPages * mfPage, "seed \(seed): resident pages")
        }

        // Then decommit every live page not touched (dropping any stale
        // known-committed state) and scan: known committed is now exactly
        // the touched pages, and the accounting their sum per kind.
        for worker in workers {
            for a in worker.allocations {
                var p = 0
                while p < a.refs.count {
                    guard a.refs[p] > 0 && !a.touched.contains(p) else {
                        p += 1
                        continue
                    }
                    var q = p + 1
                    while q < a.refs.count && a.refs[q] > 0 && !a.touched.contains(q) {
                        q += 1
                    }
                    try file.decommit(mfRange(a.page(p), a.page(q)))
                    p = q
                }
            }
        }
        try file.mfScan()
        XCTAssertEqual(file.mfSegments, model, "seed \(seed)")
        XCTAssertEqual(file.accounting.snapshot(), touchedBytes, "seed \(seed)")
        mfAssertInvariants(file, "seed \(seed)")

        // Free everything: the file ends empty, nothing accounted.
        for worker in workers {
            for ai in worker.allocations.indices {
                try worker.freeAll(ai)
            }
        }
        file.waitForReclaim()
        XCTAssertTrue(file.usageSnapshot.isEmpty, "seed \(seed)")
        try file.mfScan()
        XCTAssertEqual(file.accounting.snapshot(), MemoryStats(), "seed \(seed)")
        XCTAssertEqual(try file.totalUsage(), 0, "seed \(seed)")
        mfAssertInvariants(file, "seed \(seed)")
    }
}
