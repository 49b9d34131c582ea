import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import TestSupport
import Workloads

/// The source's accounting after a save, against a model of what its pages
/// hold. Saves come at random moments of a random life: right after frees
/// the reclaimer is still taking back, right after usage scans that raced
/// it, around allocations that cross the 1 GiB chunk boundary. However the
/// file got there, once a save has returned every kind must hold exactly
/// the live pages of that kind that were written (those holding data only,
/// after a save that decommits zero pages), and System nothing beyond the
/// System allocations' own.
/// Only on hosts where block counts follow the pages written (`exactHost`).
final class SaveAccountingTests: XCTestCase {
    func testAccountingAfterSavesAtRandomMoments() throws {
        try XCTSkipUnless(Self.exactHost, "the host has swap or shmem huge pages: block counts are not exact")
        let seed = testSeed(0x5A7E_ACC7, "save accounting")
        let scratch = try ScratchDirectory(for: self, onTmpfs: true)
        var rng = SplitMix64(seed: seed)
        for round in 0..<6 {
            let roundSeed = rng.next()
            var run = try SaveAccountingRun(seed: roundSeed, checkpoint: scratch.path("round\(round).ckpt"))
            if let failure = try run.play(operations: 400) {
                XCTFail("seed \(seed), round \(round) (round seed \(roundSeed)): \(failure)")
                return
            }
        }
    }

    /// Whether block counts follow the pages written exactly: no swap (a
    /// swapped page is not where mincore looks) and no shmem huge pages (a
    /// write may commit 2 MiB).
    static let exactHost: Bool = {
        let swaps = (try? String(contentsOfFile: "/proc/swaps", encoding: .utf8)) ?? ""
        let shmem = (try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/shmem_enabled", encoding: .utf8)) ?? "[never]"
        let hugeOff = shmem.contains("[never]") || shmem.contains("[deny]")
        return swaps.split(separator: "\n").count <= 1 && hugeOff
    }()
}

/// One MemoryFile's random life, its model, and the log to print on failure.
private struct SaveAccountingRun {
    /// A live allocation: its pages, with one reference, and its kind.
    struct Live {
        var range: FileRange
        var kind: MemoryKind
    }

    let file: MemoryFile
    let checkpoint: String
    var rng: SplitMix64
    var live: [Live] = []
    /// What each written page of a live allocation holds: true for data,
    /// false for zeros. Pages not here were never written (or were freed).
    var written: [UInt64: Bool] = [:]
    var log: [String] = []

    init(seed: UInt64, checkpoint: String) throws {
        file = try MemoryFile()
        self.checkpoint = checkpoint
        rng = SplitMix64(seed: seed)
    }

    /// What the file must account: the pages written, per kind of the
    /// allocation they lie in; only those holding data unless `zeros`.
    func expected(zeros: Bool) -> MemoryStats {
        var stats = MemoryStats()
        for allocation in live {
            var page = allocation.range.start
            while page < allocation.range.end {
                if let data = written[page], data || zeros {
                    stats[allocation.kind] += 4096
                }
                page += 4096
            }
        }
        return stats
    }

    /// Runs `operations` random steps, saving now and then and checking
    /// after each save; returns what went wrong, if anything.
    mutating func play(operations: Int) throws -> String? {
        if rng.next() % 4 != 0 {
            // Most lives start with an untouched allocation that ends a few
            // pages short of the chunk boundary, so that the next bottom-up
            // allocations cross it.
            let short = 1 + rng.next() % 32
            try allocate(bytes: (1 << 30) - short * 4096, kind: .anonymous, direction: .bottomUp)
        }
        for _ in 0..<operations {
            switch rng.next() % 100 {
            case 0..<30:
                let kind = MemoryKind.allCases[Int(rng.next() % UInt64(MemoryKind.allCases.count))]
                let direction: AllocationDirection = rng.next() % 2 == 0 ? .bottomUp : .topDown
                try allocate(bytes: (1 + rng.next() % 16) * 4096, kind: kind, direction: direction)
            case 30..<60:
                try write()
            case 60..<80:
                try free()
            case 80..<90:
                try scan()
            default:
                if let failure = try saveAndCheck() {
                    return failure
                }
            }
        }
        return try saveAndCheck()
    }

    mutating func allocate(bytes: UInt64, kind: MemoryKind, direction: AllocationDirection) throws {
        let range = try file.allocate(bytes, kind: kind, direction: direction)
        live.append(Live(range: range, kind: kind))
        log.append("allocate \(range) \(kind) \(direction)")
    }

    /// Writes data or zeros over a few pages of a live allocation, which
    /// commits them.
    mutating func write() throws {
        guard !live.isEmpty else { return }
        let allocation = live[Int(rng.next() % UInt64(live.count))]
        let pages = allocation.range.length / 4096
        let first = rng.next() % pages
        let count = min(pages - first, 1 + rng.next() % 4)
        let data = rng.next() % 3 != 0
        let range = FileRange(start: allocation.range.start + first * 4096, end: allocation.range.start + (first + count) * 4096)
        let byte = data ? UInt8(truncatingIfNeeded: rng.next() | 1) : 0
        try file.forEachMappedSlice(range) { slice in
            memset(slice.baseAddress!, Int32(byte), slice.count)
        }
        var page = range.start
        while page < range.end {
            written[page] = data
            page += 4096
        }
        log.append("write \(range) \(data ? "data" : "zeros")")
    }

    /// Frees a live allocation, or a part of it, then sometimes scans at
    /// once, while the reclaimer is still taking the pages back.
    mutating func free() throws {
        guard !live.isEmpty else { return }
        let index = Int(rng.next() % UInt64(live.count))
        let allocation = live[index]
        let pages = allocation.range.length / 4096
        let first = rng.next() % 2 == 0 ? 0 : rng.next() % pages
        let last = first + 1 + rng.next() % (pages - first)
        let freed = FileRange(start: allocation.range.start + first * 4096, end: allocation.range.start + last * 4096)
        file.decRef(freed)
        live.remove(at: index)
        if freed.start > allocation.range.start {
            live.append(Live(range: FileRange(start: allocation.range.start, end: freed.start), kind: allocation.kind))
        }
        if freed.end < allocation.range.end {
            live.append(Live(range: FileRange(start: freed.end, end: allocation.range.end), kind: allocation.kind))
        }
        var page = freed.start
        while page < freed.end {
            written[page] = nil
            page += 4096
        }
        log.append("decRef \(freed) of \(allocation.range)")
        if rng.next() % 2 == 0 {
            try scan()
        }
    }

    /// `updateUsage()`, with its time-based skips out of the way.
    mutating func scan() throws {
        file.core.state.withLock { s in
            let now = monotonicNanoseconds()
            s.usageLast = now > 2_000_000_001 ? now - 2_000_000_000 : 1
        }
        try file.updateUsage()
        log.append("updateUsage")
    }

    /// Saves, decommitting zero pages or not, then compares the source's
    /// accounting, and sometimes a restored file's, with the model.
    mutating func saveAndCheck() throws -> String? {
        var options = SaveOptions()
        options.decommitZeroPages = rng.next() % 2 == 0
        let report = try file.save(to: .path(checkpoint), options: options)
        log.append("save (scan \(report.scan), \(report.zeroBytesDropped) zero bytes dropped, \(report.zeroBytesDecommitted) decommitted)")
        if options.decommitZeroPages {
            written = written.filter { $0.value }
        }
        let want = expected(zeros: true)
        let got = file.accounting.snapshot()
        do {
            try file.checkInvariants()
        } catch {
            return "invariants after save: \(error)\n\(recentLog)"
        }
        if got != want {
            let swapped = file.core.state.withLock { $0.usageSwapped }
            return "source accounting after save:\n  got      \(got)\n  expected \(want)\n  swapped  \(swapped)\n\(recentLog)"
        }
        if rng.next() % 4 == 0 {
            let restored = try MemoryFile.restore(from: .path(checkpoint))
            let restoredStats = restored.accounting.snapshot()
            restored.destroy()
            if restoredStats != expected(zeros: false) {
                return "restored accounting:\n  got      \(restoredStats)\n  expected \(expected(zeros: false))\n\(recentLog)"
            }
        }
        return nil
    }

    var recentLog: String {
        "last operations:\n" + log.suffix(40).map { "  " + $0 }.joined(separator: "\n")
    }
}
