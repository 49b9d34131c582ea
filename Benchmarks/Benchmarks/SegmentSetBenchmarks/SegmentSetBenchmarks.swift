// Benchmarks of SegmentSet's public API at 10^3 to 10^6 segments, for a
// set that merges (FileRangeSet) and one whose values never merge.
//
// Every benchmark iteration times `SegmentSetFixture.batch` (100) operations
// and reports the time of the whole batch; BENCHMARKS.md divides by 100.
// Sets are built in setup, outside the measured region; what an iteration
// changes it undoes after `stopMeasurement()`, so every batch sees a set of
// the stated size.

import Benchmark
import PGAlloc

let segmentCounts = [1_000, 10_000, 100_000, 1_000_000]

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        maxDuration: .seconds(1),
        maxIterations: 100_000
    )
    registerSegmentSetBenchmarks("FileRangeSet", RangeSetFunctions.self, touching: false) { _ in () }
    registerSegmentSetBenchmarks("DistinctValueSet", DistinctValueFunctions.self, touching: true) { $0 }
}

/// Registers every operation at every size for one set instance.
///
/// - Parameters:
///   - touching: whether segments may touch (only where values keep them
///     apart).
///   - value: the value of segment `i`; distinct for distinct `i` where
///     segments may touch.
func registerSegmentSetBenchmarks<Functions: SegmentSetFunctions>(
    _ name: String,
    _: Functions.Type,
    touching: Bool,
    value: @escaping (Int) -> Functions.Value
) {
    typealias Fixture = SegmentSetFixture<Functions>

    for count in segmentCounts {
        let seed = UInt64(count) &* 0x1000 &+ (touching ? 1 : 0)
        let setup: () -> Fixture = {
            Fixture(count: count, seed: seed, touching: touching, value: value)
        }
        let size = SegmentLayout.searchSize

        // add of a one-page segment into a random gap, 100 distinct gaps per
        // batch; removed again, untimed.
        Benchmark("\(name) insert n=\(count)") { benchmark, f in
            let slots = f.window(f.insertionOrder)
            benchmark.startMeasurement()
            var j = 0
            for r in slots {
                j += 1
                blackHole(f.set.add(r, value(-j)))
            }
            benchmark.stopMeasurement()
            for r in slots {
                f.set.remove(f.set.findSegment(containing: r.start)!)
            }
        } setup: { setup() }

        // The round trip: insert into a random gap, then remove it again, so
        // that the set keeps its size throughout; all timed.
        Benchmark("\(name) insert+remove n=\(count)") { benchmark, f in
            let slots = f.window(f.insertionOrder)
            benchmark.startMeasurement()
            for r in slots {
                let gap = f.set.findGap(containing: r.start)!
                let seg = f.set.insert(r, value(-1), into: gap)
                blackHole(f.set.remove(seg))
            }
        } setup: { setup() }

        // findSegment(containing:) + remove of 100 distinct random segments;
        // added back, untimed.
        Benchmark("\(name) remove n=\(count)") { benchmark, f in
            let victims = f.window(f.removalOrder)
            benchmark.startMeasurement()
            for i in victims {
                blackHole(f.set.remove(f.set.findSegment(containing: f.layout.segments[i].start)!))
            }
            benchmark.stopMeasurement()
            for i in victims {
                f.set.add(f.layout.segments[i], value(i))
            }
        } setup: { setup() }

        // findSegment(containing:) of random keys (hits and misses).
        Benchmark("\(name) find n=\(count)") { benchmark, f in
            let keys = f.window(f.findKeys)
            benchmark.startMeasurement()
            for k in keys {
                blackHole(f.set.findSegment(containing: k))
            }
        } setup: { setup() }

        // The large-enough-gap searches: each iteration first moves the one
        // large gap to a new random place (untimed), then times 100 searches
        // that find it, and checks the last answer (untimed).
        for kind in GapSearch.allCases {
            Benchmark("\(name) gap \(kind) n=\(count)") { benchmark, f in
                f.openLargeGap()
                benchmark.startMeasurement()
                let found = f.search(kind, times: Fixture.batch)
                benchmark.stopMeasurement()
                precondition(found.map(f.set.range(of:)) == f.largeGap, "gap \(kind): wrong gap")
            } setup: { setup() }
        }

        // For contrast: the same search as a walk over the gaps in order,
        // what a set without gap tracking has to do. One walk per iteration,
        // not 100.
        Benchmark(
            "\(name) gap linear-walk x1 n=\(count)",
            configuration: .init(maxIterations: count >= 100_000 ? 200 : 10_000)
        ) { benchmark, f in
            f.openLargeGap()
            let set = f.set
            benchmark.startMeasurement()
            var g = set.firstGap
            while set.range(of: g).length < size {
                g = set.nextGap(after: g)!
            }
            blackHole(g)
            benchmark.stopMeasurement()
            precondition(set.range(of: g) == f.largeGap, "gap linear-walk: wrong gap")
        } setup: { setup() }
    }
}
