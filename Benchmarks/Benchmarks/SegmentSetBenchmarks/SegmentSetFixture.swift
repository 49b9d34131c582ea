import Benchmark
import PGAlloc
import Workloads

/// The large-enough-gap searches, all asked for the large gap from as far
/// away as possible: `next` starts at the first gap, `previous` at the last.
enum GapSearch: String, CaseIterable, CustomStringConvertible {
    case first, last, next, previous

    var description: String { rawValue }
}

/// What one benchmark works on, built in its setup, outside the measured
/// region: a set laid out by `SegmentLayout`, filled in random order with
/// `add`, and the inputs of its operations.
///
/// A class: the benchmark closure mutates `set` in place, and a struct held
/// by the runner would be copied (and its tree with it) on every iteration.
final class SegmentSetFixture<Functions: SegmentSetFunctions> {
    /// Operations timed per iteration.
    static var batch: Int { 100 }

    var set: SegmentSet<Functions>
    let layout: SegmentLayout
    let value: (Int) -> Functions.Value

    /// Segment indices to remove, in random order, without the first and
    /// last segments.
    let removalOrder: [Int]
    /// `layout.freeSlots` in random order.
    let insertionOrder: [FileRange]
    /// Random keys below `layout.keySpan`.
    let findKeys: [UInt64]

    /// The segments `openLargeGap()` removed, to put back on its next call.
    private var largeGapRun: [Int] = []
    /// The only gap of at least `SegmentLayout.searchSize`, once
    /// `openLargeGap()` has made it.
    private(set) var largeGap = FileRange(start: 0, end: 0)

    private var rng: SplitMix64
    private var cursor = 0

    init(count: Int, seed: UInt64, touching: Bool, value: @escaping (Int) -> Functions.Value) {
        SplitMix64.selfCheck()
        let layout = SegmentLayout(count: count, seed: seed, touching: touching, maxKey: Functions.maxKey)
        self.layout = layout
        self.value = value
        var rng = SplitMix64(seed: seed ^ 0xB5AD_4ECE_DA1C_E2A9)

        var order = Array(layout.segments.indices)
        rng.shuffle(&order)
        var set = SegmentSet<Functions>()
        for i in order {
            precondition(set.add(layout.segments[i], value(i)), "setup: add \(layout.segments[i]) failed")
        }

        var removals = Array(1..<(count - 1))
        rng.shuffle(&removals)
        removalOrder = removals
        var slots = layout.freeSlots
        rng.shuffle(&slots)
        insertionOrder = slots
        let span = layout.keySpan
        findKeys = (0..<4096).map { _ in rng.next() % span }
        precondition(removals.count >= Self.batch && slots.count >= Self.batch, "setup: set too small")

        self.set = set
        self.rng = rng
        check()
    }

    /// Stops the run if the set is not what the benchmarks assume, and checks
    /// that each change the benchmarks make, undone as they undo it, leaves
    /// it as it was.
    private func check() {
        func checkInvariants(_ when: String) {
            do {
                try set.checkInvariants()
            } catch {
                preconditionFailure("setup: \(when): \(error)")
            }
            precondition(
                set.segmentCount == layout.segments.count - largeGapRun.count,
                "setup: \(when): \(set.segmentCount) segments, expected \(layout.segments.count - largeGapRun.count)")
        }
        checkInvariants("after filling")
        precondition(set.firstLargeEnoughGap(minSize: SegmentLayout.searchSize) == nil, "setup: a gap is already large")

        let slot = insertionOrder[0]
        precondition(set.add(slot, value(-1)), "setup: add \(slot)")
        precondition(set.segmentCount == layout.segments.count + 1, "setup: add \(slot) merged")
        set.remove(set.findSegment(containing: slot.start)!)
        let i = removalOrder[0]
        set.remove(set.findSegment(containing: layout.segments[i].start)!)
        precondition(set.add(layout.segments[i], value(i)), "setup: re-add \(layout.segments[i])")
        checkInvariants("after one insertion and one removal")

        for _ in 0..<16 {
            openLargeGap()
            checkInvariants("after openLargeGap")
            checkGapSearches()
        }
        closeLargeGap()
        checkInvariants("after closeLargeGap")
    }

    /// Checks that each large-enough-gap search finds `largeGap`.
    func checkGapSearches() {
        for kind in GapSearch.allCases {
            precondition(search(kind, times: 1).map(set.range(of:)) == largeGap, "setup: gap \(kind): wrong gap")
        }
    }

    /// Runs one of the large-enough-gap searches `times` times for
    /// `SegmentLayout.searchSize`; returns the last answer.
    func search(_ kind: GapSearch, times: Int) -> SegmentSet<Functions>.Gap? {
        let size = SegmentLayout.searchSize
        var found: SegmentSet<Functions>.Gap?
        switch kind {
        case .first:
            for _ in 0..<times {
                found = set.firstLargeEnoughGap(minSize: size)
                blackHole(found)
            }
        case .last:
            for _ in 0..<times {
                found = set.lastLargeEnoughGap(minSize: size)
                blackHole(found)
            }
        case .next:
            let start = set.firstGap
            for _ in 0..<times {
                found = set.nextLargeEnoughGap(after: start, minSize: size)
                blackHole(found)
            }
        case .previous:
            let start = set.lastGap
            for _ in 0..<times {
                found = set.previousLargeEnoughGap(before: start, minSize: size)
                blackHole(found)
            }
        }
        return found
    }

    /// Moves the one large gap to a new random place in the middle half of
    /// the set (so that it is at least count / 4 gaps from either end): puts
    /// back the segments removed last time, then removes consecutive
    /// segments from a random one on until the gap they leave is at least
    /// `SegmentLayout.searchSize`.
    func openLargeGap() {
        closeLargeGap()
        let count = layout.segments.count
        var i = count / 4 + rng.next(below: count / 2)
        while true {
            let gap = set.remove(set.findSegment(containing: layout.segments[i].start)!)
            largeGapRun.append(i)
            let r = set.range(of: gap)
            if r.length >= SegmentLayout.searchSize {
                largeGap = r
                return
            }
            i += 1
        }
    }

    /// Puts back what `openLargeGap()` removed.
    func closeLargeGap() {
        for i in largeGapRun {
            precondition(set.add(layout.segments[i], value(i)), "closeLargeGap: add \(layout.segments[i])")
        }
        largeGapRun.removeAll(keepingCapacity: true)
        largeGap = FileRange(start: 0, end: 0)
    }

    /// The next `batch` elements of `array`, cycling: distinct as long as
    /// `array` holds at least `batch`.
    func window<T>(_ array: [T]) -> ArraySlice<T> {
        if cursor + Self.batch > array.count {
            cursor = 0
        }
        defer { cursor += Self.batch }
        return array[cursor..<(cursor + Self.batch)]
    }
}
