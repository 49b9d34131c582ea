// Model-based randomized tests of MemoryFile: long seeded runs of
// allocate (both directions, every size class), incRef, decRef, touching
// pages, usage scans, decommit and reclaim, against a naive model (a sorted
// array of segments, the set of resident pages, the expected contents of
// written pages). After every operation the usage set, the per-kind
// accounting, the file's block count and size are compared with the model,
// and checkInvariants() runs.
//
// The reclaimer runs for real. After a free the test either waits for it
// (then the model drops the freed pages), or holds it at a closed
// MFReclaimGate (then freed pages stay in the usage set as System, and the
// model keeps them) until the test lets it go.
//
// Replay with PGALLOC_TEST_SEED=<seed>; run longer with
// PGALLOC_TEST_OPS=<operations>.

import XCTest

@testable import PGAlloc

/// The naive model of a MemoryFile.
struct MFModel {
    /// Sorted, disjoint, maximally merged.
    var segments: [MFSegment] = []
    var fileSize: UInt64 = 0
    /// Pages (offsets) the host holds memory for.
    var resident = Set<UInt64>()
    /// The word written at the start of some resident pages.
    var tags: [UInt64: UInt64] = [:]
    /// Bytes the last scan could not explain (accounted as System).
    var swapped: UInt64 = 0
    var manualZeroing = false

    // MARK: Updating

    /// Splits the segment containing `key` there, if any.
    mutating func split(at key: UInt64) {
        guard let i = segments.firstIndex(where: { $0.range.start < key && key < $0.range.end }) else { return }
        var high = segments[i]
        high.range.start = key
        segments[i].range.end = key
        segments.insert(high, at: i + 1)
    }

    mutating func merge() {
        var out: [MFSegment] = []
        for s in segments {
            if let last = out.last, last.range.end == s.range.start, last.info == s.info {
                out[out.count - 1].range.end = s.range.end
            } else {
                out.append(s)
            }
        }
        segments = out
    }

    /// Applies `f` to every segment piece inside `fr`, which must be all
    /// allocated.
    mutating func update(_ fr: FileRange, _ f: (FileRange, inout UsageInfo) -> Void) {
        split(at: fr.start)
        split(at: fr.end)
        var covered: UInt64 = 0
        for i in segments.indices where fr.isSuperset(of: segments[i].range) {
            f(segments[i].range, &segments[i].info)
            covered += segments[i].range.length
        }
        precondition(covered == fr.length, "model: \(fr) is not all allocated")
        merge()
    }

    func placement(_ length: UInt64, _ direction: AllocationDirection) -> FileRange? {
        let alignment = length >= mfHuge ? mfHuge : mfPage
        let ranges = segments.map(\.range)
        switch direction {
        case .topDown: return mfBruteForceTopDown(ranges, fileSize: fileSize, length: length, alignment: alignment)
        case .bottomUp: return mfBruteForceBottomUp(ranges, length: length, alignment: alignment)
        }
    }

    mutating func allocate(_ fr: FileRange, _ kind: MemoryKind) {
        segments.append(MFSegment(fr, UsageInfo(kind: kind)))
        segments.sort { $0.range.start < $1.range.start }
        merge()
        if fr.end > fileSize {
            fileSize = (fr.end + mfGiB - 1) & ~(mfGiB - 1)
        }
        if manualZeroing {
            forEachPage(fr) { page in
                resident.insert(page)
                tags[page] = nil
            }
        }
    }

    /// Returns the freed ranges (maximal runs).
    mutating func decRef(_ fr: FileRange) -> [FileRange] {
        var freed: [FileRange] = []
        update(fr) { range, info in
            info.refs -= 1
            if info.refs == 0 {
                info.kind = .system
                if let last = freed.last, last.end == range.start {
                    freed[freed.count - 1].end = range.end
                } else {
                    freed.append(range)
                }
            }
        }
        return freed
    }

    /// The reclaimer has decommitted and freed `fr`.
    mutating func reclaim(_ fr: FileRange) {
        split(at: fr.start)
        split(at: fr.end)
        segments.removeAll { seg in
            guard fr.isSuperset(of: seg.range) else { return false }
            precondition(seg.info.refs == 0 && seg.info.kind == .system)
            return true
        }
        merge()
        var punched = fr
        if manualZeroing {
            // Only whole huge pages are punched; the rest keeps its memory.
            punched = mfRange((fr.start + mfHuge - 1) & ~(mfHuge - 1), fr.end & ~(mfHuge - 1))
        }
        tags = tags.filter { !fr.contains($0.key) }
        if punched.start < punched.end {
            resident = resident.filter { !punched.contains($0) }
        }
    }

    mutating func decommit(_ fr: FileRange) {
        update(fr) { _, info in info.knownCommitted = false }
        forEachPage(fr) { page in
            tags[page] = nil
            if manualZeroing {
                resident.insert(page)
            } else {
                resident.remove(page)
            }
        }
    }

    /// A forced usage scan: resident pages of referenced segments not yet
    /// known committed become known committed; what stays unexplained is
    /// swapped.
    mutating func scan() {
        let sorted = resident.sorted()
        var out: [MFSegment] = []
        for seg in segments {
            guard seg.info.refs != 0 && !seg.info.knownCommitted else {
                out.append(seg)
                continue
            }
            var committed = seg.info
            committed.knownCommitted = true
            var cursor = seg.range.start
            var idx = mfLowerBound(sorted, seg.range.start)
            while idx < sorted.count && sorted[idx] < seg.range.end {
                let runStart = sorted[idx]
                var runEnd = runStart + mfPage
                idx += 1
                while idx < sorted.count && sorted[idx] == runEnd && runEnd < seg.range.end {
                    runEnd += mfPage
                    idx += 1
                }
                if cursor < runStart {
                    out.append(MFSegment(mfRange(cursor, runStart), seg.info))
                }
                out.append(MFSegment(mfRange(runStart, runEnd), committed))
                cursor = runEnd
            }
            if cursor < seg.range.end {
                out.append(MFSegment(mfRange(cursor, seg.range.end), seg.info))
            }
        }
        segments = out
        merge()
        let current = UInt64(resident.count) * mfPage
        let expected = knownCommittedBytes
        swapped = expected < current ? current - expected : 0
    }

    // MARK: Reading

    var knownCommittedBytes: UInt64 {
        segments.reduce(0) { $0 + ($1.info.knownCommitted ? $1.range.length : 0) }
    }

    var accounting: MemoryStats {
        var stats = MemoryStats()
        for s in segments where s.info.knownCommitted {
            stats[s.info.kind] += s.range.length
        }
        stats[.system] += swapped
        return stats
    }

    var liveBytes: UInt64 {
        segments.reduce(0) { $0 + ($1.info.refs > 0 ? $1.range.length : 0) }
    }

    /// A random subrange of a run of pages that all have references.
    func randomLiveRange(_ rng: inout MFRandom, maxPages: UInt64 = 1 << 20) -> FileRange? {
        let live = segments.indices.filter { segments[$0].info.refs > 0 }
        guard !live.isEmpty else { return nil }
        var lo = live[rng.index(live.count)]
        var hi = lo
        while lo > 0, segments[lo - 1].info.refs > 0, segments[lo - 1].range.end == segments[lo].range.start {
            lo -= 1
        }
        while hi + 1 < segments.count, segments[hi + 1].info.refs > 0, segments[hi + 1].range.start == segments[hi].range.end {
            hi += 1
        }
        let run = mfRange(segments[lo].range.start, segments[hi].range.end)
        let pages = run.length / mfPage
        if rng.chance(1, 4) && pages <= maxPages {
            return run
        }
        let first = rng.below(pages)
        let count = rng.inRange(1, min(pages - first, maxPages, rng.chance(1, 2) ? 8 : pages))
        return mfRange(run.start + first * mfPage, run.start + (first + count) * mfPage)
    }

    func forEachPage(_ fr: FileRange, _ body: (UInt64) -> Void) {
        var page = fr.start
        while page < fr.end {
            body(page)
            page += mfPage
        }
    }
}

final class MemoryFileModelTests: XCTestCase {
    func testRandomOperationsMatchTheModel() throws {
        try run(name: "testRandomOperationsMatchTheModel", defaultSeed: 0x4D46_0001, manualZeroing: false, defaultOps: 1500)
    }

    func testRandomOperationsMatchTheModelWithManualZeroing() throws {
        try run(name: "testRandomOperationsMatchTheModelWithManualZeroing", defaultSeed: 0x4D46_0002, manualZeroing: true, defaultOps: 700)
    }

    private func run(name: String, defaultSeed: UInt64, manualZeroing: Bool, defaultOps: Int) throws {
        let seed = MFEnvironment.seed(name, default: defaultSeed)
        let ops = ProcessInfo.processInfo.environment["PGALLOC_TEST_OPS"].flatMap { Int($0) } ?? defaultOps
        var rng = MFRandom(seed: seed)
        let gate = MFReclaimGate()
        let file = try mfMakeFile {
            $0.fallocateFailure = gate.hook
            $0.manualZeroing = manualZeroing
        }
        var model = MFModel()
        model.manualZeroing = manualZeroing
        // Whether the reclaimer is held at the gate, on `decoy`; frees since
        // then wait in `pending`.
        var held = false
        var decoy = FileRange(start: 0, end: 0)
        var pending = FileRangeSet()
        var log: [String] = []
        var nextTag: UInt64 = 1
        let exact = MFEnvironment.exactBlockCounts

        func fail(_ message: String) {
            XCTFail("\(name), seed \(seed), after \(log.count) operations: \(message)\nlast operations:\n  "
                    + log.suffix(25).joined(separator: "\n  "))
        }

        /// Compares everything with the model; false on a mismatch.
        func check() throws -> Bool {
            let actual = file.mfSegments
            if actual != model.segments {
                fail("usage set differs:\n  got      \(actual)\n  expected \(model.segments)")
                return false
            }
            do {
                try file.checkInvariants()
            } catch {
                fail("invariants: \(error)")
                return false
            }
            if file.totalSize != model.fileSize {
                fail("file size 0x\(String(file.totalSize, radix: 16)), expected 0x\(String(model.fileSize, radix: 16))")
                return false
            }
            if exact {
                let usage = try file.totalUsage()
                if usage != UInt64(model.resident.count) * mfPage {
                    fail("totalUsage \(usage), expected \(UInt64(model.resident.count) * mfPage) (resident pages)")
                    return false
                }
                if file.accounting.snapshot() != model.accounting {
                    fail("accounting \(file.accounting.snapshot()), expected \(model.accounting)")
                    return false
                }
            }
            return true
        }

        func freed(_ ranges: [FileRange]) {
            guard !ranges.isEmpty else { return }
            if held {
                for r in ranges {
                    pending.removeRange(r)
                    pending.add(r, ())
                }
            } else {
                file.waitForReclaim()
                for r in ranges {
                    model.reclaim(r)
                }
            }
        }

        func release() {
            gate.open()
            file.waitForReclaim()
            model.reclaim(decoy)
            for (r, _) in pending.segments {
                model.reclaim(r)
            }
            pending.removeAll()
            held = false
        }

        /// Writes a fresh tag at the start of `page`.
        func tag(_ page: UInt64) throws {
            try file.mfStoreWord(page, nextTag)
            model.tags[page] = nextTag
            model.resident.insert(page)
            nextTag += 1
        }

        for step in 0..<ops {
            // Keep the file from filling up: favour frees when much is live.
            let crowded = model.liveBytes > 64 << 20
            let roll = rng.below(100)
            switch roll {
            case 0..<28 where !crowded || roll < 8:
                let length: UInt64
                switch rng.below(100) {
                case 0..<70: length = rng.inRange(1, 16) * mfPage
                case 70..<88: length = rng.element([mfHuge, mfHuge + mfPage, 3 << 20, 2 * mfHuge, mfHuge - mfPage])
                case 88..<98: length = rng.inRange(17, 600) * mfPage
                default: length = manualZeroing ? 4 * mfHuge : rng.element([256 << 20, mfGiB, 3 * mfGiB / 2])
                }
                let direction: AllocationDirection = rng.chance(1, 2) ? .topDown : .bottomUp
                let kind = rng.element(MemoryKind.allCases)
                log.append("allocate(0x\(String(length, radix: 16)), \(kind), \(direction))")
                var expected = model.placement(length, direction)
                if let e = expected, e.end > model.fileSize, !pending.isEmpty {
                    // Rather than grow the file, allocation reclaims the
                    // freed ranges waiting for the (held) reclaimer itself.
                    for (r, _) in pending.segments {
                        model.reclaim(r)
                    }
                    pending.removeAll()
                    expected = model.placement(length, direction)
                }
                let fr = try file.allocate(length, kind: kind, direction: direction)
                log[log.count - 1] += " -> \(fr)"
                if fr != expected {
                    fail("allocate placed \(fr), expected \(String(describing: expected))")
                    return
                }
                model.allocate(fr, kind)
                // New pages read as zero, reused or not.
                let page = fr.start + rng.below(fr.length / mfPage) * mfPage
                if rng.chance(1, 2) {
                    if try !file.mfAllBytes(mfRange(page, page + mfPage), equal: 0) {
                        fail("page 0x\(String(page, radix: 16)) of new allocation \(fr) is not zero")
                        return
                    }
                    model.resident.insert(page)
                } else if rng.chance(1, 2) {
                    if try file.mfLoadWord(page) != 0 {
                        fail("page 0x\(String(page, radix: 16)) of new allocation \(fr) is not zero")
                        return
                    }
                    try tag(page)
                }

            case 28..<42:
                guard let fr = model.randomLiveRange(&rng) else { continue }
                log.append("incRef(\(fr))")
                file.incRef(fr)
                model.update(fr) { _, info in info.refs += 1 }

            case 0..<70:
                guard let fr = model.randomLiveRange(&rng) else { continue }
                log.append("decRef(\(fr))")
                file.decRef(fr)
                freed(model.decRef(fr))

            case 70..<82:
                // Write a tag to a live page, or check one written before.
                guard let fr = model.randomLiveRange(&rng, maxPages: 1) else { continue }
                if let old = model.tags[fr.start], rng.chance(1, 2) {
                    log.append("check tag at 0x\(String(fr.start, radix: 16))")
                    let word = try file.mfLoadWord(fr.start)
                    if word != old {
                        fail("page 0x\(String(fr.start, radix: 16)) holds tag \(word), expected \(old)")
                        return
                    }
                } else {
                    log.append("tag 0x\(String(fr.start, radix: 16))")
                    try tag(fr.start)
                }

            case 82..<90:
                log.append("scan")
                try file.mfScan()
                model.scan()

            case 90..<96 where !held:
                guard let fr = model.randomLiveRange(&rng, maxPages: 64) else { continue }
                log.append("decommit(\(fr))")
                try file.decommit(fr)
                model.decommit(fr)
                let page = fr.start + rng.below(fr.length / mfPage) * mfPage
                if try file.mfLoadWord(page) != 0 {
                    fail("decommitted page 0x\(String(page, radix: 16)) is not zero")
                    return
                }
                model.resident.insert(page)

            default:
                if held {
                    log.append("release the reclaimer")
                    release()
                } else {
                    // Hold the reclaimer on a range of its own. With manual
                    // zeroing, it only punches (and passes the gate for)
                    // whole huge pages.
                    gate.close()
                    let length = manualZeroing ? mfHuge : mfPage
                    let direction: AllocationDirection = rng.chance(1, 2) ? .topDown : .bottomUp
                    let expected = model.placement(length, direction)
                    decoy = try file.allocate(length, kind: .system, direction: direction)
                    log.append("hold the reclaimer on \(decoy)")
                    if decoy != expected {
                        fail("allocate placed the decoy at \(decoy), expected \(String(describing: expected))")
                        gate.open()
                        return
                    }
                    model.allocate(decoy, .system)
                    file.decRef(decoy)
                    _ = model.decRef(decoy)
                    held = true
                    guard gate.waitForHeldCaller(), gate.ranges.last == decoy else {
                        fail("the reclaimer did not take the decoy \(decoy): \(gate.ranges.suffix(3))")
                        gate.open()
                        return
                    }
                }
            }
            if try !check() {
                gate.open()
                return
            }
            _ = step
        }

        // Every kind of operation ran.
        var counts: [String: Int] = [:]
        for entry in log {
            counts[String(entry.prefix { $0 != "(" && $0 != " " }), default: 0] += 1
        }
        print("\(name): \(counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        for op in ["allocate", "incRef", "decRef", "tag", "check", "scan", "decommit", "hold", "release"] {
            XCTAssertGreaterThan(counts[op] ?? 0, 0, "\(name), seed \(seed): no \(op) operation ran")
        }

        // Free everything: the file ends empty, with nothing accounted but
        // memory the last scan could not explain.
        if held {
            release()
        }
        while let fr = model.randomLiveRange(&rng) {
            file.decRef(fr)
            freed(model.decRef(fr))
        }
        XCTAssertTrue(try check())
        XCTAssertTrue(file.usageSnapshot.isEmpty)
        try file.mfScan()
        model.scan()
        XCTAssertTrue(try check())
        if !manualZeroing && exact {
            XCTAssertEqual(try file.totalUsage(), 0)
            XCTAssertEqual(file.accounting.snapshot(), MemoryStats())
        }
    }
}
