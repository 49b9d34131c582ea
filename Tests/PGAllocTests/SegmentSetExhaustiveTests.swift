// Exhaustive small cases: every range over a 16-page key space, applied to
// a handful of fixed starting sets, each result compared with the model.

import XCTest

@testable import PGAlloc

/// A set instance the exhaustive tests can build starting sets for.
protocol SegmentExhaustiveFunctions: SegmentModelFunctions {
    /// The value written `v` in a starting set, for a segment at `start`.
    static func value(_ v: Int, at start: UInt64) -> Value
}

extension SixteenPageFunctions: SegmentExhaustiveFunctions {
    static func value(_ v: Int, at _: UInt64) -> Int { v }
}

extension SixteenPageRangeFunctions: SegmentExhaustiveFunctions {
    static func value(_: Int, at _: UInt64) {}
}

extension EqualIntFunctions: SegmentExhaustiveFunctions {
    static func value(_ v: Int, at _: UInt64) -> Int { v }
}

extension NeverMergeFunctions: SegmentExhaustiveFunctions {
    static func value(_ v: Int, at start: UInt64) -> TaggedOffset { TaggedOffset(tag: UInt32(v), offset: start << 12) }
}

extension OffsetFunctions: SegmentExhaustiveFunctions {
    /// Value 1 maps each key to itself, so touching 1-segments continue
    /// each other; value 2 is shifted and continues nothing.
    static func value(_ v: Int, at start: UInt64) -> UInt64 { v == 1 ? start : start &+ 0x100 }
}

final class SegmentSetExhaustiveTests: XCTestCase {
    /// Starting sets over pages `[0, 16)`: (start, end, value) triples, in
    /// order, imported as they are (so touching equal values stay apart).
    static let startingSets: [(name: String, segments: [(UInt64, UInt64, Int)])] = [
        ("empty", []),
        ("full", [(0, 16, 1)]),
        ("even pages", stride(from: 0, to: 16, by: 2).map { ($0, $0 + 1, 1) }),
        ("odd pages", stride(from: 1, to: 16, by: 2).map { ($0, $0 + 1, 1) }),
        ("every page, values alternating", (0..<16).map { ($0, $0 + 1, Int($0 % 2) + 1) }),
        ("every page, equal values unmerged", (0..<16).map { ($0, $0 + 1, 1) }),
        ("pairs", stride(from: 0, to: 16, by: 4).map { ($0, $0 + 2, 1) }),
        ("both ends", [(0, 3, 1), (13, 16, 2)]),
        ("middle", [(5, 11, 2)]),
        ("mixed", [(1, 4, 1), (4, 6, 2), (6, 7, 2), (9, 10, 1), (11, 15, 1)]),
    ]

    /// Builds a starting set's model, shifted to `base`, with `padding`
    /// segments around it.
    func startingModel<F: SegmentExhaustiveFunctions>(
        _: F.Type, _ spec: [(UInt64, UInt64, Int)], base: UInt64, padding: [(UInt64, UInt64)]
    ) -> SegmentModel<F> {
        var segments = spec.map { SegmentModelEntry(range: FileRange(start: base + $0.0, end: base + $0.1), value: F.value($0.2, at: base + $0.0)) }
        segments += padding.map { SegmentModelEntry(range: FileRange(start: $0.0, end: $0.1), value: F.value(3, at: $0.0)) }
        segments.sort { $0.range.start < $1.range.start }
        return SegmentModel(segments)
    }

    /// The failures reported so far in one test; after a few, the rest are
    /// counted but not reported.
    var failures = 0

    func report(_ message: String, file: StaticString, line: UInt) {
        failures += 1
        if failures <= 5 {
            XCTFail(message, file: file, line: line)
        }
    }

    /// Checks a set against a model: always the invariants and contents;
    /// with `everything`, also every walk, navigation, point query and gap
    /// search.
    func verify<F: SegmentModelFunctions>(
        _ set: SegmentSet<F>, _ model: SegmentModel<F>, requireMaximallyMerged: Bool, everything: Bool, base: UInt64
    ) throws(SegmentModelMismatch) {
        let c = SegmentSetChecker(set: set, model: model)
        try c.checkInvariants(requireMaximallyMerged: requireMaximallyMerged || F.neverMerges)
        try c.expectContents()
        guard everything else { return }
        try c.expectFullWalk()
        // Navigate from the segments and gaps near the 16 pages; with no
        // padding around them, that is all of them.
        let near = { (r: FileRange) in r.end >= base && r.start <= base + 16 }
        for i in 0..<model.count where near(model.range(i)) {
            try c.expectSegmentNavigation(i)
        }
        let gaps = (0..<model.gapCount).filter { near(model.gap($0)) }
        for j in gaps {
            try c.expectGapNavigation(j, way: j)
        }
        var keys = Array(base...base + 16)
        if base > F.minKey {
            keys.append(base - 1)
        }
        keys.append(F.maxKey - 1)
        for key in keys where key >= F.minKey && key < F.maxKey {
            try c.expectPointQueries(key)
        }
        var sizes = Set(0...UInt64(17))
        sizes.insert(.max)
        for length in c.gapLengths where length > 17 {
            sizes.formUnion([length - 1, length, length &+ 1])
        }
        try c.expectLargeEnoughGaps(minSizes: sizes.sorted(), from: gaps.count == model.gapCount ? nil : gaps)
    }

    /// Runs every operation on every range of the 16 pages from `base`,
    /// against every starting set.
    func runEveryRange<F: SegmentExhaustiveFunctions>(
        _ type: F.Type, base: UInt64 = 0, padding: [(UInt64, UInt64)] = [], minimumHeight: Int = 1,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        var states = 0
        for (name, spec) in Self.startingSets {
            let start = startingModel(type, spec, base: base, padding: padding)
            let startMerged = start.isMaximallyMerged
            let original = makeSegmentSet(start)
            XCTAssertGreaterThanOrEqual(
                original.treeHeight, minimumHeight, "starting set '\(name)' is too shallow", file: file, line: line)

            func check(
                _ what: @autoclosure () -> String, _ set: SegmentSet<F>, _ model: SegmentModel<F>, keepsMerged: Bool,
                everything: Bool = false, _ extra: () throws(SegmentModelMismatch) -> Void = {}
            ) {
                states += 1
                do {
                    try extra()
                    try verify(
                        set, model, requireMaximallyMerged: startMerged && keepsMerged, everything: everything,
                        base: base)
                } catch {
                    report("starting set '\(name)': \(what()): \(error)", file: file, line: line)
                }
            }

            check("as imported", original, start, keepsMerged: true, everything: true)

            for s in 0...UInt64(16) {
                // Empty ranges: nothing in them.
                let empty = FileRange(start: base + s, end: base + s)
                check("empty range \(empty)", original, start, keepsMerged: true) { () throws(SegmentModelMismatch) in
                    let c = SegmentSetChecker(set: original, model: start)
                    try c.expect(original.isEmptyRange(empty), "isEmptyRange(\(empty)) is false")
                    try c.expect(original.spanRange(empty) == 0, "spanRange(\(empty)) is not 0")
                }
                if s < 16 {
                    let key = base + s
                    var set = original
                    var model = start
                    var expected = false
                    if let i = model.segmentIndex(containing: key), model.range(i).start < key {
                        _ = model.split(i, at: key)
                        expected = true
                    }
                    let got = set.splitAt(key)
                    check("splitAt(0x\(String(key, radix: 16)))", set, model, keepsMerged: false) { () throws(SegmentModelMismatch) in
                        try SegmentSetChecker(set: set, model: model).expect(got == expected, "splitAt returned \(got)")
                    }
                }
            }

            for s in 0..<UInt64(16) {
                for e in s + 1...16 {
                    let r = FileRange(start: base + s, end: base + e)

                    check("isEmptyRange/spanRange(\(r))", original, start, keepsMerged: true) { () throws(SegmentModelMismatch) in
                        let c = SegmentSetChecker(set: original, model: start)
                        try c.expect(
                            original.isEmptyRange(r) == start.isEmptyRange(r),
                            "isEmptyRange(\(r)) is \(original.isEmptyRange(r))")
                        try c.expect(
                            original.spanRange(r) == start.spanRange(r),
                            "spanRange(\(r)) is \(original.spanRange(r)), model \(start.spanRange(r))")
                    }

                    for v in [1, 2] {
                        let value = F.value(v, at: r.start)
                        var set = original
                        var model = start
                        let got = set.add(r, value)
                        let expected = model.add(r, value, merging: true)
                        check("add(\(r), \(F.describe(value)))", set, model, keepsMerged: true, everything: true) {
                            () throws(SegmentModelMismatch) in
                            try SegmentSetChecker(set: set, model: model).expect(got == expected, "add returned \(got)")
                        }

                        set = original
                        model = start
                        let gotUnmerged = set.addWithoutMerging(r, value)
                        let expectedUnmerged = model.add(r, value, merging: false)
                        check("addWithoutMerging(\(r), \(F.describe(value)))", set, model, keepsMerged: false) {
                            () throws(SegmentModelMismatch) in
                            try SegmentSetChecker(set: set, model: model).expect(
                                gotUnmerged == expectedUnmerged, "addWithoutMerging returned \(gotUnmerged)")
                        }

                        if let j = start.fitsGap(r) {
                            set = original
                            model = start
                            let gap = set.findGap(containing: r.start)!
                            let seg = set.insert(r, value, into: gap)
                            let i = model.insert(r, value, intoGap: j, merging: true)
                            check("insert(\(r), \(F.describe(value)), into: gap \(j))", set, model, keepsMerged: true) {
                                () throws(SegmentModelMismatch) in
                                try SegmentSetChecker(set: set, model: model).expectSegment(seg, i, "insert result")
                            }
                        }
                    }

                    do {
                        var set = original
                        var model = start
                        let gap = set.removeRange(r)
                        let j = model.removeRange(r)
                        check("removeRange(\(r))", set, model, keepsMerged: true, everything: true) {
                            () throws(SegmentModelMismatch) in
                            try SegmentSetChecker(set: set, model: model).expectGap(gap, j, "removeRange result")
                        }
                    }

                    for i in 0..<start.count {
                        var set = original
                        var model = start
                        let seg = set.findSegment(containing: start.range(i).start)!
                        let got = set.isolate(seg, to: r)
                        let expected = model.isolate(i, r)
                        check("isolate(segment \(start.range(i)), to: \(r))", set, model, keepsMerged: false) {
                            () throws(SegmentModelMismatch) in
                            try SegmentSetChecker(set: set, model: model).expectSegment(got, expected, "isolate result")
                        }
                    }

                    do {
                        var set = original
                        var model = start
                        var seen: [FileRange] = []
                        let gap = set.applyContiguous(r) { range, value in
                            seen.append(range)
                            value = F.changed(value, salt: 7)
                        }
                        var expectedSeen: [FileRange] = []
                        let j = model.applyContiguous(r) { range, value in
                            expectedSeen.append(range)
                            value = F.changed(value, salt: 7)
                        }
                        check("applyContiguous(\(r))", set, model, keepsMerged: false) { () throws(SegmentModelMismatch) in
                            let c = SegmentSetChecker(set: set, model: model)
                            try c.expect(seen == expectedSeen, "applyContiguous passed \(seen), model \(expectedSeen)")
                            try c.expectGap(gap, j, "applyContiguous result")
                        }
                    }

                    do {
                        var set = original
                        var model = start
                        set.mergeRange(r)
                        model.mergeRange(r)
                        check("mergeRange(\(r))", set, model, keepsMerged: true)

                        set = original
                        model = start
                        set.mergeAdjacent(r)
                        model.mergeAdjacent(r)
                        check("mergeAdjacent(\(r))", set, model, keepsMerged: true)
                    }
                }
            }

            for i in 0..<start.count {
                var set = original
                var model = start
                let got = set.mergeWithNeighbours(set.findSegment(containing: start.range(i).start)!)
                let expected = model.mergeWithNeighbours(i)
                check("mergeWithNeighbours(segment \(start.range(i)))", set, model, keepsMerged: true) {
                    () throws(SegmentModelMismatch) in
                    try SegmentSetChecker(set: set, model: model).expectSegment(got, expected, "mergeWithNeighbours result")
                }
            }

            // Every legal new range for every segment.
            for i in 0..<start.count {
                let lower = start.gap(i).start
                let upper = start.gap(i + 1).end
                guard upper - lower <= 64 else { continue }
                for a in lower..<upper {
                    for b in a + 1...upper {
                        var set = original
                        var model = start
                        let seg = set.findSegment(containing: start.range(i).start)!
                        set.setRange(of: seg, to: FileRange(start: a, end: b))
                        model.segments[i].range = FileRange(start: a, end: b)
                        check("setRange(of: \(start.range(i)), to: [\(a), \(b)))", set, model, keepsMerged: false) {
                            () throws(SegmentModelMismatch) in
                            try SegmentSetChecker(set: set, model: model).expectSegment(seg, i, "segment after setRange")
                        }
                    }
                }
            }

            do {
                var set = original
                var model = start
                set.mergeAll()
                model.mergeAll()
                check("mergeAll()", set, model, keepsMerged: true, everything: true) { () throws(SegmentModelMismatch) in
                    try SegmentSetChecker(set: set, model: model).checkInvariants(requireMaximallyMerged: true)
                }
            }
            // The original was copied into every case above and must not
            // have changed.
            check("the original after every case", original, start, keepsMerged: true, everything: true)
        }
        XCTAssertEqual(failures, 0, "\(failures) of \(states) checked states failed", file: file, line: line)
        XCTAssertGreaterThan(states, 10_000, "too few cases ran", file: file, line: line)
    }

    /// Int values merging when equal; the key space is exactly the 16 pages.
    func testEveryRangeWithSixteenPageKeySpace() {
        runEveryRange(SixteenPageFunctions.self)
    }

    /// Plain ranges that always merge; the key space is exactly the 16 pages.
    func testEveryRangeOfPlainRanges() {
        runEveryRange(SixteenPageRangeFunctions.self)
    }

    /// Values that never merge, 16 pages at the bottom of the full 64-bit
    /// space (so the last gap is nearly 2^64 long).
    func testEveryRangeOfNeverMergingValues() {
        runEveryRange(NeverMergeFunctions.self)
    }

    /// File offsets; 16 pages at the top of the 64-bit space, so that the
    /// last segments end at UInt64.max.
    func testEveryRangeAtTheTopOfTheKeySpace() {
        runEveryRange(OffsetFunctions.self, base: UInt64.max - 16)
    }

    /// The 16 pages in the middle of a tree of several nodes, so that their
    /// segments straddle node boundaries.
    func testEveryRangeInsideALargerTree() {
        let before: [(UInt64, UInt64)] = (0..<UInt64(20)).map { k in (3 * k, 3 * k + 1) }
        let after: [(UInt64, UInt64)] = (0..<UInt64(20)).map { k in (2000 + 3 * k, 2002 + 3 * k) }
        runEveryRange(EqualIntFunctions.self, base: 1000, padding: before + after, minimumHeight: 2)
    }

    /// Every occupancy pattern of pages [4, 12) (merged), with every add and
    /// removal of a range over them.
    func testEveryPatternOfEightPages() {
        var failures = 0
        var states = 0
        for pattern in 0..<256 {
            var start = SegmentModel<SixteenPageFunctions>()
            for page in 0..<UInt64(8) where pattern & (1 << page) != 0 {
                _ = start.add(FileRange(start: 4 + page, end: 5 + page), 1, merging: true)
            }
            let original = makeSegmentSet(start)
            for s in 4..<UInt64(12) {
                for e in s + 1...12 {
                    let r = FileRange(start: s, end: e)
                    for op in 0..<3 {
                        var set = original
                        var model = start
                        var what: String
                        var extra: () throws(SegmentModelMismatch) -> Void = {}
                        if op < 2 {
                            let got = set.add(r, op + 1)
                            let expected = model.add(r, op + 1, merging: true)
                            what = "add(\(r), \(op + 1))"
                            extra = { () throws(SegmentModelMismatch) in
                                try SegmentSetChecker(set: set, model: model).expect(got == expected, "add returned \(got)")
                            }
                        } else {
                            let gap = set.removeRange(r)
                            let j = model.removeRange(r)
                            what = "removeRange(\(r))"
                            extra = { () throws(SegmentModelMismatch) in
                                try SegmentSetChecker(set: set, model: model).expectGap(gap, j, "removeRange result")
                            }
                        }
                        states += 1
                        do {
                            try extra()
                            let c = SegmentSetChecker(set: set, model: model)
                            try c.checkInvariants(requireMaximallyMerged: true)
                            try c.expectContents()
                            try c.expectFullWalk()
                            try c.expectLargeEnoughGaps(minSizes: Array(0...UInt64(17)), from: nil)
                        } catch {
                            failures += 1
                            if failures <= 5 {
                                XCTFail("pattern \(String(pattern, radix: 2)): \(what): \(error)")
                            }
                        }
                    }
                }
            }
        }
        XCTAssertEqual(failures, 0, "\(failures) of \(states) states failed")
        XCTAssertEqual(states, 256 * 36 * 3)
    }
}
