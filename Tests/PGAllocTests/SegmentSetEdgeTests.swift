// Edges of SegmentSet: the empty set, segments reaching 0 and UInt64.max,
// gaps near 2^64 long, a custom key space, rejected imports, export and
// import, copy-on-write, positions that must survive, and the invariant
// checker itself.

import XCTest

@testable import PGAlloc

/// The largest key, and so the end of the default key space.
private let max = UInt64.max

private func range(_ start: UInt64, _ end: UInt64) -> FileRange {
    FileRange(start: start, end: end)
}

final class SegmentSetEdgeTests: XCTestCase {
    typealias IntSet = SegmentSet<EqualIntFunctions>
    typealias IntModel = SegmentModel<EqualIntFunctions>

    /// Compares a set with a model: invariants, contents, walks, every
    /// navigation, point queries at the given keys and at both ends of the
    /// key space, and the gap searches for sizes near each gap's length.
    @discardableResult
    func verify<F: SegmentModelFunctions>(
        _ set: SegmentSet<F>, _ model: SegmentModel<F>, merged: Bool = false, keys: [UInt64] = [],
        file: StaticString = #filePath, line: UInt = #line
    ) -> Bool {
        let c = SegmentSetChecker(set: set, model: model)
        do {
            try c.checkInvariants(requireMaximallyMerged: merged)
            try c.expectContents()
            try c.expectFullWalk()
            for i in 0..<model.count {
                try c.expectSegmentNavigation(i)
            }
            for j in 0..<model.gapCount {
                for way in 0..<4 {
                    try c.expectGapNavigation(j, way: way)
                }
            }
            var probes = keys + [F.minKey, F.minKey + 1, F.maxKey - 1, F.maxKey - 2]
            for s in model.segments {
                probes += [s.range.start, s.range.end - 1, s.range.end]
            }
            for key in probes where key >= F.minKey && key < F.maxKey {
                try c.expectPointQueries(key)
            }
            if F.tracksGaps {
                // Sizes around the shortest and longest gap and around a
                // dozen lengths in between.
                let lengths = Set(c.gapLengths).sorted()
                var sizes: Set<UInt64> = [0, 1, 2, max - 1, max]
                for k in 0..<Swift.min(lengths.count, 12) {
                    let length = lengths[k * (lengths.count - 1) / Swift.max(1, Swift.min(lengths.count, 12) - 1)]
                    sizes.formUnion([length &- 1, length, length &+ 1])
                }
                try c.expectLargeEnoughGaps(minSizes: sizes.sorted(), from: nil)
            }
        } catch {
            XCTFail("\(error)", file: file, line: line)
            return false
        }
        return true
    }

    // MARK: The empty set

    func checkEmptySet<F: SegmentModelFunctions>(_: F.Type, file: StaticString = #filePath, line: UInt = #line) {
        var set = SegmentSet<F>()
        let whole = range(F.minKey, F.maxKey)
        XCTAssertTrue(set.isEmpty, file: file, line: line)
        XCTAssertEqual(set.segmentCount, 0, file: file, line: line)
        XCTAssertEqual(set.span, 0, file: file, line: line)
        XCTAssertNil(set.firstSegment, file: file, line: line)
        XCTAssertNil(set.lastSegment, file: file, line: line)
        XCTAssertEqual(set.firstGap, set.lastGap, "one gap", file: file, line: line)
        XCTAssertEqual(set.range(of: set.firstGap), whole, file: file, line: line)
        XCTAssertFalse(set.isEmpty(set.firstGap), file: file, line: line)
        XCTAssertNil(set.nextGap(after: set.firstGap), file: file, line: line)
        XCTAssertNil(set.previousGap(before: set.firstGap), file: file, line: line)
        XCTAssertNil(set.nextSegment(after: set.firstGap), file: file, line: line)
        XCTAssertNil(set.previousSegment(before: set.firstGap), file: file, line: line)
        for key in [F.minKey, F.minKey + 1, F.maxKey / 2 + F.minKey / 2, F.maxKey - 1] {
            XCTAssertEqual(set.find(key), .gap(set.firstGap), file: file, line: line)
            XCTAssertEqual(set.findGap(containing: key), set.firstGap, file: file, line: line)
            XCTAssertNil(set.findSegment(containing: key), file: file, line: line)
            XCTAssertNil(set.lowerBoundSegment(key), file: file, line: line)
            XCTAssertNil(set.upperBoundSegment(key), file: file, line: line)
            XCTAssertEqual(set.lowerBoundGap(key), set.firstGap, file: file, line: line)
            XCTAssertEqual(set.upperBoundGap(key), set.firstGap, file: file, line: line)
        }
        XCTAssertTrue(set.isEmptyRange(whole), file: file, line: line)
        XCTAssertEqual(set.spanRange(whole), 0, file: file, line: line)
        if F.tracksGaps {
            let length = F.maxKey - F.minKey
            XCTAssertEqual(set.firstLargeEnoughGap(minSize: length), set.firstGap, file: file, line: line)
            XCTAssertEqual(set.lastLargeEnoughGap(minSize: length), set.firstGap, file: file, line: line)
            XCTAssertEqual(set.firstLargeEnoughGap(minSize: 0), set.firstGap, file: file, line: line)
            if length < max {
                XCTAssertNil(set.firstLargeEnoughGap(minSize: length + 1), file: file, line: line)
                XCTAssertNil(set.lastLargeEnoughGap(minSize: length + 1), file: file, line: line)
            }
            XCTAssertNil(set.nextLargeEnoughGap(after: set.firstGap, minSize: 0), file: file, line: line)
            XCTAssertNil(set.previousLargeEnoughGap(before: set.firstGap, minSize: 0), file: file, line: line)
        }
        XCTAssertEqual(set.exportSortedSlices().count, 0, file: file, line: line)
        var called = false
        let gap = set.applyContiguous(whole) { _, _ in called = true }
        XCTAssertFalse(called, "applyContiguous on an empty set called its body", file: file, line: line)
        XCTAssertEqual(gap.map { set.range(of: $0) }, whole, file: file, line: line)
        let left = set.removeRange(whole)
        XCTAssertEqual(set.range(of: left), whole, file: file, line: line)
        set.mergeAll()
        set.mergeRange(whole)
        set.mergeAdjacent(whole)
        XCTAssertFalse(set.splitAt(F.minKey + 1), file: file, line: line)
        XCTAssertEqual(set.description, "(empty set)", file: file, line: line)
        verify(set, SegmentModel<F>(), merged: true, file: file, line: line)
        do {
            let imported = try SegmentSet<F>(importing: SegmentDataSlices())
            verify(imported, SegmentModel<F>(), merged: true, file: file, line: line)
        } catch {
            XCTFail("importing nothing threw \(error)", file: file, line: line)
        }
    }

    func testEmptySetHasOneGapSpanningTheKeySpace() {
        checkEmptySet(EqualIntFunctions.self)
        checkEmptySet(RangeSetFunctions.self)
        checkEmptySet(UntrackedRangeSetFunctions.self)
        checkEmptySet(WindowIntFunctions.self)
        checkEmptySet(UntrackedIntFunctions.self)
        checkEmptySet(SixteenPageFunctions.self)
    }

    // MARK: The whole key space

    func testSegmentCoveringTheWholeKeySpace() throws {
        var set = IntSet()
        var model = IntModel()
        let whole = range(0, max)
        XCTAssertTrue(set.add(whole, 5))
        XCTAssertTrue(model.add(whole, 5, merging: true))
        verify(set, model, merged: true)

        XCTAssertEqual(set.span, max)
        XCTAssertEqual(set.spanRange(whole), max)
        XCTAssertEqual(set.spanRange(range(5, 10)), 5)
        XCTAssertFalse(set.isEmptyRange(whole))
        XCTAssertFalse(set.isEmptyRange(range(max - 1, max)))
        XCTAssertEqual(set.range(of: set.firstGap), range(0, 0))
        XCTAssertEqual(set.range(of: set.lastGap), range(max, max))
        XCTAssertTrue(set.isEmpty(set.firstGap))
        XCTAssertTrue(set.isEmpty(set.lastGap))
        XCTAssertEqual(set.nextGap(after: set.firstGap), set.lastGap)
        let seg = try XCTUnwrap(set.firstSegment)
        XCTAssertEqual(set.findSegment(containing: 0), seg)
        XCTAssertEqual(set.findSegment(containing: max - 1), seg)
        XCTAssertNil(set.findGap(containing: 0))
        XCTAssertNil(set.findGap(containing: max - 1))
        XCTAssertNil(set.nextNonEmpty(after: seg))
        XCTAssertNil(set.previousNonEmpty(before: seg))
        XCTAssertNil(set.firstLargeEnoughGap(minSize: 1))
        XCTAssertNil(set.lastLargeEnoughGap(minSize: 1))
        XCTAssertEqual(set.firstLargeEnoughGap(minSize: 0), set.firstGap)
        XCTAssertEqual(set.lastLargeEnoughGap(minSize: 0), set.lastGap)
        XCTAssertEqual(set.nextLargeEnoughGap(after: set.firstGap, minSize: 0), set.lastGap)
        XCTAssertEqual(set.previousLargeEnoughGap(before: set.lastGap, minSize: 0), set.firstGap)
        XCTAssertFalse(set.add(range(max - 1, max), 5))
        XCTAssertFalse(set.add(range(0, 1), 5))
        XCTAssertFalse(set.addWithoutMerging(range(7, 8), 6))

        var visited: [FileRange] = []
        XCTAssertNil(set.applyContiguous(whole) { r, _ in visited.append(r) })
        XCTAssertEqual(visited, [whole])

        // Split it at both ends.
        XCTAssertTrue(set.splitAt(max - 1))
        XCTAssertTrue(model.split(0, at: max - 1) == (0, 1))
        let (a, b) = set.split(try XCTUnwrap(set.firstSegment), at: 1)
        XCTAssertEqual(set.range(of: a), range(0, 1))
        XCTAssertEqual(set.range(of: b), range(1, max - 1))
        _ = model.split(0, at: 1)
        verify(set, model)

        // Cut out the middle: a gap of 2^64 - 3.
        let gap = set.removeRange(range(1, max - 1))
        XCTAssertEqual(set.range(of: gap), range(1, max - 1))
        XCTAssertEqual(model.removeRange(range(1, max - 1)), 1)
        verify(set, model)
        XCTAssertEqual(set.firstLargeEnoughGap(minSize: max - 2), gap)
        XCTAssertNil(set.firstLargeEnoughGap(minSize: max - 1))

        // Filling it back merges all three.
        set.insert(range(1, max - 1), 5, into: gap)
        model.insert(range(1, max - 1), 5, intoGap: 1, merging: true)
        XCTAssertEqual(model.segments.map(\.range), [whole])
        verify(set, model, merged: true)

        let left = set.removeRange(whole)
        XCTAssertEqual(set.range(of: left), whole)
        verify(set, IntModel(), merged: true)
    }

    func testSegmentsTouchingBothEnds() throws {
        var set = IntSet()
        var model = IntModel()
        for (r, v) in [(range(0, 10), 1), (range(max - 10, max), 1)] {
            XCTAssertTrue(set.add(r, v))
            XCTAssertTrue(model.add(r, v, merging: true))
        }
        verify(set, model, merged: true, keys: [9, 10, max - 11, max - 10])
        let first = try XCTUnwrap(set.firstSegment)
        let last = try XCTUnwrap(set.lastSegment)
        XCTAssertEqual(set.range(of: set.nextGap(after: first)), range(10, max - 10))
        XCTAssertNil(set.previousNonEmpty(before: first))
        XCTAssertNil(set.nextNonEmpty(after: last))
        XCTAssertEqual(set.nextNonEmpty(after: first), .gap(set.nextGap(after: first)))
        XCTAssertEqual(set.previousNonEmpty(before: last), .gap(set.nextGap(after: first)))
        XCTAssertEqual(set.lowerBoundGap(max - 1), set.lastGap)
        XCTAssertEqual(set.upperBoundGap(0), set.firstGap)
        XCTAssertEqual(set.firstLargeEnoughGap(minSize: max - 20), set.nextGap(after: first))
        XCTAssertNil(set.firstLargeEnoughGap(minSize: max - 19))

        // A different value in the middle touches both and merges with neither.
        var other = set
        var otherModel = model
        XCTAssertTrue(other.add(range(10, max - 10), 2))
        XCTAssertTrue(otherModel.add(range(10, max - 10), 2, merging: true))
        XCTAssertEqual(other.segmentCount, 3)
        verify(other, otherModel, merged: true)
        let middle = try XCTUnwrap(other.findSegment(containing: 10))
        XCTAssertEqual(other.nextNonEmpty(after: middle), .segment(try XCTUnwrap(other.lastSegment)))
        XCTAssertEqual(other.previousNonEmpty(before: middle), .segment(try XCTUnwrap(other.firstSegment)))
        XCTAssertNil(other.firstLargeEnoughGap(minSize: 1))

        // The same value merges all three into the whole key space.
        XCTAssertTrue(set.add(range(10, max - 10), 1))
        XCTAssertTrue(model.add(range(10, max - 10), 1, merging: true))
        XCTAssertEqual(set.segmentCount, 1)
        XCTAssertEqual(set.span, max)
        verify(set, model, merged: true)
    }

    func testGapLengthsNearTwoToThe64() throws {
        var set = IntSet()
        var model = IntModel()
        XCTAssertEqual(set.firstLargeEnoughGap(minSize: max), set.firstGap)

        XCTAssertTrue(set.add(range(0, 1), 1))
        XCTAssertTrue(model.add(range(0, 1), 1, merging: true))
        verify(set, model, merged: true)
        XCTAssertNil(set.firstLargeEnoughGap(minSize: max))
        XCTAssertEqual(set.firstLargeEnoughGap(minSize: max - 1), set.lastGap)
        XCTAssertEqual(set.findGap(containing: max - 1), set.lastGap)

        XCTAssertTrue(set.add(range(max - 1, max), 2))
        XCTAssertTrue(model.add(range(max - 1, max), 2, merging: true))
        verify(set, model, merged: true)
        let middle = set.nextGap(after: try XCTUnwrap(set.firstSegment))
        XCTAssertEqual(set.range(of: middle).length, max - 2)
        XCTAssertEqual(set.nextLargeEnoughGap(after: set.firstGap, minSize: max - 2), middle)
        XCTAssertEqual(set.previousLargeEnoughGap(before: set.lastGap, minSize: max - 2), middle)
        XCTAssertNil(set.nextLargeEnoughGap(after: set.firstGap, minSize: max - 1))
        XCTAssertEqual(set.span, 2)

        // Segments whose lengths sum to exactly 2^64 - 1.
        XCTAssertTrue(set.add(range(1, max - 1), 3))
        XCTAssertTrue(model.add(range(1, max - 1), 3, merging: true))
        XCTAssertEqual(set.span, max)
        XCTAssertEqual(set.spanRange(range(0, max)), max)
        XCTAssertEqual(set.spanRange(range(1, max)), max - 1)
        verify(set, model, merged: true)

        // A segment of length 2^64 - 2 split one key from each end.
        set.removeAll()
        model = IntModel()
        XCTAssertTrue(set.add(range(1, max - 1), 4))
        XCTAssertTrue(model.add(range(1, max - 1), 4, merging: true))
        XCTAssertTrue(set.splitAt(2))
        XCTAssertTrue(set.splitAt(max - 2))
        _ = model.split(0, at: 2)
        _ = model.split(1, at: max - 2)
        verify(set, model)
        set.mergeAll()
        model.mergeAll()
        verify(set, model, merged: true)
    }

    func testSplitCarriesOffsets() throws {
        // NeverMergeFunctions moves a segment's offset by the split key's
        // distance from its start.
        var set = SegmentSet<NeverMergeFunctions>()
        var model = SegmentModel<NeverMergeFunctions>()
        let value = TaggedOffset(tag: 1, offset: 0x100)
        XCTAssertTrue(set.add(range(0x10, 0x20), value))
        XCTAssertTrue(model.add(range(0x10, 0x20), value, merging: true))
        let (a, b) = set.split(try XCTUnwrap(set.firstSegment), at: 0x18)
        XCTAssertEqual(set[a], TaggedOffset(tag: 1, offset: 0x100))
        XCTAssertEqual(set[b], TaggedOffset(tag: 1, offset: 0x108))
        _ = model.split(0, at: 0x18)
        verify(set, model, merged: true)
        // Isolating [0x19, 0x1c) from the second half.
        let mid = set.isolate(b, to: range(0x19, 0x1c))
        XCTAssertEqual(set.range(of: mid), range(0x19, 0x1c))
        XCTAssertEqual(set[mid], TaggedOffset(tag: 1, offset: 0x109))
        XCTAssertEqual(model.isolate(1, range(0x19, 0x1c)), 2)
        verify(set, model, merged: true)
    }

    // MARK: A custom key space

    func testCustomKeySpace() throws {
        typealias WindowSet = SegmentSet<WindowIntFunctions>
        var set = WindowSet()
        var model = SegmentModel<WindowIntFunctions>()
        XCTAssertEqual(set.range(of: set.firstGap), range(0x1000, 0x3000))
        XCTAssertEqual(set.firstLargeEnoughGap(minSize: 0x2000), set.firstGap)
        XCTAssertNil(set.firstLargeEnoughGap(minSize: 0x2001))

        for (r, v) in [(range(0x1000, 0x1001), 1), (range(0x2fff, 0x3000), 1), (range(0x2000, 0x2800), 2)] {
            XCTAssertTrue(set.add(r, v))
            XCTAssertTrue(model.add(r, v, merging: true))
        }
        verify(set, model, merged: true)
        XCTAssertEqual(set.range(of: set.firstGap), range(0x1000, 0x1000))
        XCTAssertEqual(set.range(of: set.lastGap), range(0x3000, 0x3000))
        XCTAssertNil(set.previousNonEmpty(before: try XCTUnwrap(set.firstSegment)))
        XCTAssertNil(set.nextNonEmpty(after: try XCTUnwrap(set.lastSegment)))
        // Gaps of 0xfff and 0x7ff keys: two are long enough for 0x7ff, one for 0x800.
        XCTAssertNotEqual(set.firstLargeEnoughGap(minSize: 0x7ff), set.lastLargeEnoughGap(minSize: 0x7ff))
        XCTAssertEqual(set.firstLargeEnoughGap(minSize: 0x800), set.lastLargeEnoughGap(minSize: 0x800))
        XCTAssertEqual(set.firstLargeEnoughGap(minSize: 0x800).map { set.range(of: $0) }, range(0x1001, 0x2000))
        XCTAssertEqual(set.span, 0x802)

        // Growing the first segment to reach minKey..0x2000 merges nothing
        // (values differ) but closes the gap.
        let first = try XCTUnwrap(set.firstSegment)
        set.setEnd(of: first, to: 0x2000)
        model.segments[0].range.end = 0x2000
        verify(set, model)

        let gap = set.removeRange(range(0x1000, 0x3000))
        XCTAssertEqual(set.range(of: gap), range(0x1000, 0x3000))
        verify(set, SegmentModel<WindowIntFunctions>(), merged: true)
    }

    // MARK: Import and export

    func expectImportError<F: SegmentModelFunctions>(
        _: F.Type, _ slices: SegmentDataSlices<F.Value>, _ expected: SegmentImportError,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            let set = try SegmentSet<F>(importing: slices)
            XCTFail("import succeeded with \(set.segmentCount) segments, expected \(expected)", file: file, line: line)
        } catch {
            XCTAssertEqual(error, expected, file: file, line: line)
            XCTAssertFalse(error.description.isEmpty, file: file, line: line)
        }
    }

    func testImportRejectsBadInput() {
        let intSet = EqualIntFunctions.self
        expectImportError(
            intSet, SegmentDataSlices(starts: [0, 10], ends: [5], values: [1, 1]),
            .mismatchedCounts(starts: 2, ends: 1, values: 2))
        expectImportError(
            intSet, SegmentDataSlices(starts: [0], ends: [5], values: []),
            .mismatchedCounts(starts: 1, ends: 1, values: 0))
        expectImportError(
            intSet, SegmentDataSlices(starts: [], ends: [5], values: [1]),
            .mismatchedCounts(starts: 0, ends: 1, values: 1))
        expectImportError(
            intSet, SegmentDataSlices(starts: [0, 10], ends: [5, 10], values: [1, 1]),
            .emptyRange(index: 1, start: 10, end: 10))
        expectImportError(
            intSet, SegmentDataSlices(starts: [20], ends: [10], values: [1]),
            .emptyRange(index: 0, start: 20, end: 10))
        expectImportError(
            intSet, SegmentDataSlices(starts: [10, 0], ends: [20, 5], values: [1, 1]),
            .unsortedOrOverlapping(index: 1, start: 0, previousEnd: 20))
        expectImportError(
            intSet, SegmentDataSlices(starts: [0, 30, 35], ends: [10, 40, 50], values: [1, 1, 1]),
            .unsortedOrOverlapping(index: 2, start: 35, previousEnd: 40))
        expectImportError(
            intSet, SegmentDataSlices(starts: [0, max - 2], ends: [max - 1, max], values: [1, 1]),
            .unsortedOrOverlapping(index: 1, start: max - 2, previousEnd: max - 1))
        expectImportError(
            WindowIntFunctions.self, SegmentDataSlices(starts: [0x800], ends: [0x1800], values: [1]),
            .outsideKeySpace(index: 0, start: 0x800, end: 0x1800))
        expectImportError(
            WindowIntFunctions.self, SegmentDataSlices(starts: [0x1000, 0x2000], ends: [0x2000, 0x3001], values: [1, 1]),
            .outsideKeySpace(index: 1, start: 0x2000, end: 0x3001))
        expectImportError(
            UntrackedIntFunctions.self, SegmentDataSlices(starts: [0], ends: [8], values: [1]),
            .outsideKeySpace(index: 0, start: 0, end: 8))
        expectImportError(
            SixteenPageFunctions.self, SegmentDataSlices(starts: [0, 4], ends: [2, 17], values: [1, 1]),
            .outsideKeySpace(index: 1, start: 4, end: 17))
    }

    func testImportKeepsTouchingSegmentsApart() throws {
        // Touching equal values are legal input and stay two segments; the
        // invariant checker notices that they could merge.
        let slices = SegmentDataSlices<Int>(starts: [0, 10], ends: [10, 20], values: [1, 1])
        let set = try IntSet(importing: slices)
        XCTAssertEqual(set.segmentCount, 2)
        XCTAssertNoThrow(try set.checkInvariants(requireMaximallyMerged: false))
        XCTAssertThrowsError(try set.checkInvariants(requireMaximallyMerged: true))
        verify(set, IntModel(slices.starts.indices.map { SegmentModelEntry(range: range(slices.starts[$0], slices.ends[$0]), value: 1) }))
        var merged = set
        merged.mergeAll()
        XCTAssertEqual(merged.segmentCount, 1)
        XCTAssertNoThrow(try merged.checkInvariants(requireMaximallyMerged: true))
    }

    func testExportImportRoundTrip() throws {
        print("testExportImportRoundTrip: seed \(SegmentTestEnvironment.seed) (replay with PGALLOC_TEST_SEED)")
        var rng = SegmentTestRandom(seed: SegmentTestEnvironment.seed)
        var model = IntModel()
        var key: UInt64 = 0
        // Three thousand segments: touching or not, equal values or not,
        // the last one ending at UInt64.max.
        for i in 0..<3000 {
            key += rng.below(3)
            let length = 1 + rng.below(5)
            model.segments.append(SegmentModelEntry(range: range(key, key + length), value: Int(rng.below(2))))
            key += length
            if i == 2998 {
                key = max - 10
            }
        }
        model.segments[model.count - 1].range.end = max
        let set = makeSegmentSet(model)
        XCTAssertGreaterThanOrEqual(set.treeHeight, 3)
        verify(set, model)
        let exported = set.exportSortedSlices()
        XCTAssertEqual(exported, model.slices())
        let again = try IntSet(importing: exported)
        XCTAssertEqual(again.exportSortedSlices(), exported)
        verify(again, model)

        // Plain ranges and a segment covering everything.
        let whole = SegmentDataSlices<Void>(starts: [0], ends: [max], values: [()])
        let plain = try FileRangeSet(importing: whole)
        XCTAssertEqual(plain.exportSortedSlices().starts, [0])
        XCTAssertEqual(plain.exportSortedSlices().ends, [max])
        verify(plain, SegmentModel<RangeSetFunctions>([SegmentModelEntry(range: range(0, max), value: ())]), merged: true)
    }

    // MARK: Copy-on-write

    /// A set of 100 segments over two levels: segment `i` ends at
    /// `10 * (i + 1)` and starts 2 keys later than `10 * i` unless `i` is a
    /// multiple of 3, when it touches its predecessor. Values are
    /// `(i / 2) % 2`, so some touching pairs can merge (2 and 3, 8 and 9)
    /// and others cannot (5 and 6).
    func sampleModel() -> IntModel {
        var model = IntModel()
        for i in 0..<UInt64(100) {
            let start = i * 10 + (i % 3 == 0 ? 0 : 2)
            model.segments.append(SegmentModelEntry(range: range(start, i * 10 + 10), value: Int((i / 2) % 2)))
        }
        return model
    }

    func testMutatingACopyLeavesTheOriginalAlone() {
        typealias Mutation = (name: String, set: (inout IntSet) -> Void, model: (inout IntModel) -> Void)
        func seg(_ set: IntSet, _ key: UInt64) -> IntSet.Segment { set.findSegment(containing: key)! }
        // Segment 51 is [510, 520).
        let mutations: [Mutation] = [
            ("add", { _ = $0.add(range(10, 11), 0) }, { _ = $0.add(range(10, 11), 0, merging: true) }),
            ("addWithoutMerging", { _ = $0.addWithoutMerging(range(10, 11), 0) }, { _ = $0.add(range(10, 11), 0, merging: false) }),
            ("insert", { $0.insert(range(11, 12), 1, into: $0.findGap(containing: 11)!) }, { $0.insert(range(11, 12), 1, intoGap: 1, merging: true) }),
            ("insertWithoutMerging", { $0.insertWithoutMerging(range(11, 12), 1, into: $0.findGap(containing: 11)!) }, { $0.insert(range(11, 12), 1, intoGap: 1, merging: false) }),
            ("insertWithoutMergingUnchecked", { $0.insertWithoutMergingUnchecked(range(11, 12), 1, into: $0.findGap(containing: 11)!) }, { $0.insert(range(11, 12), 1, intoGap: 1, merging: false) }),
            ("remove", { $0.remove(seg($0, 515)) }, { _ = $0.remove(at: 51) }),
            ("removeAll", { $0.removeAll() }, { $0 = IntModel() }),
            ("removeRange", { $0.removeRange(range(15, 555)) }, { _ = $0.removeRange(range(15, 555)) }),
            ("split", { $0.split(seg($0, 515), at: 515) }, { _ = $0.split(51, at: 515) }),
            ("splitUnchecked", { $0.splitUnchecked(seg($0, 515), at: 515) }, { _ = $0.split(51, at: 515) }),
            ("splitAt", { $0.splitAt(515) }, { _ = $0.split(51, at: 515) }),
            ("isolate", { $0.isolate(seg($0, 515), to: range(513, 517)) }, { _ = $0.isolate(51, range(513, 517)) }),
            ("merge", { let s = seg($0, 25); $0.merge(s, $0.nextSegment(after: s)!) }, { _ = $0.mergePair(2) }),
            ("mergeUnchecked", { let s = seg($0, 85); $0.mergeUnchecked(s, $0.nextSegment(after: s)!) }, { _ = $0.mergePair(8) }),
            ("mergeWithNeighbours", { $0.mergeWithNeighbours(seg($0, 35)) }, { _ = $0.mergeWithNeighbours(3) }),
            ("mergeAll", { $0.mergeAll() }, { $0.mergeAll() }),
            ("mergeRange", { $0.mergeRange(range(0, 500)) }, { $0.mergeRange(range(0, 500)) }),
            ("mergeAdjacent", { $0.mergeAdjacent(range(90, 100)) }, { $0.mergeAdjacent(range(90, 100)) }),
            ("applyContiguous", { $0.applyContiguous(range(295, 335)) { _, v in v = 7 } }, { _ = $0.applyContiguous(range(295, 335)) { _, v in v = 7 } }),
            ("subscript", { $0[seg($0, 515)] = 9 }, { $0.segments[51].value = 9 }),
            ("setRange", { $0.setRange(of: seg($0, 515), to: range(511, 519)) }, { $0.segments[51].range = range(511, 519) }),
            ("setRangeUnchecked", { $0.setRangeUnchecked(of: seg($0, 515), to: range(511, 519)) }, { $0.segments[51].range = range(511, 519) }),
            ("setStart", { $0.setStart(of: seg($0, 515), to: 514) }, { $0.segments[51].range.start = 514 }),
            ("setEnd", { $0.setEnd(of: seg($0, 515), to: 514) }, { $0.segments[51].range.end = 514 }),
        ]
        let model = sampleModel()
        XCTAssertEqual(model.range(51), range(510, 520))
        for mutation in mutations {
            let original = makeSegmentSet(model)
            XCTAssertGreaterThanOrEqual(original.treeHeight, 2)
            var copy = original
            var changed = model
            mutation.set(&copy)
            mutation.model(&changed)
            XCTAssertNotEqual(changed.slices(), model.slices(), "\(mutation.name) changes nothing in the model")
            // The copy changed; the original did not.
            verify(copy, changed)
            verify(original, model)

            // The other way round: mutate the original while a copy holds it.
            var second = makeSegmentSet(model)
            let held = second
            mutation.set(&second)
            verify(second, changed)
            verify(held, model)
        }
    }

    // MARK: Positions that must stay valid

    func testValueAndRangeChangesKeepPositions() {
        var model = sampleModel()
        var set = makeSegmentSet(model)
        XCTAssertGreaterThanOrEqual(set.treeHeight, 2)
        var segments: [IntSet.Segment] = []
        var seg = set.firstSegment
        while let s = seg {
            segments.append(s)
            seg = set.nextSegment(after: s)
        }
        var gaps: [IntSet.Gap] = []
        var gap: IntSet.Gap? = set.firstGap
        while let g = gap {
            gaps.append(g)
            gap = set.nextGap(after: g)
        }
        XCTAssertEqual(segments.count, model.count)
        XCTAssertEqual(gaps.count, model.gapCount)

        func checkPositions(_ when: String) {
            for (i, s) in segments.enumerated() {
                XCTAssertEqual(set.range(of: s), model.range(i), "segment \(i) \(when)")
                XCTAssertEqual(set[s], model.segments[i].value, "segment \(i) \(when)")
            }
            for (j, g) in gaps.enumerated() {
                XCTAssertEqual(set.range(of: g), model.gap(j), "gap \(j) \(when)")
            }
        }

        for (i, s) in segments.enumerated() {
            set[s] += 10
            model.segments[i].value += 10
        }
        checkPositions("after changing every value")
        verify(set, model)

        for (i, s) in segments.enumerated() {
            let r = model.range(i)
            let shrunk = range(r.start + (i % 2 == 0 ? 1 : 0), r.end - (i % 3 == 0 ? 1 : 0))
            set.setRange(of: s, to: shrunk)
            model.segments[i].range = shrunk
        }
        checkPositions("after shrinking every segment")
        verify(set, model)

        for (i, s) in segments.enumerated() {
            let grown = range(model.gap(i).start, model.range(i).end)
            set.setStart(of: s, to: grown.start)
            model.segments[i].range = grown
        }
        checkPositions("after growing every segment to its predecessor")
        verify(set, model)
    }

    /// moveBoundary hands keys from one touching segment to the other: no
    /// gap changes, positions stay valid, and a copy keeps its own ranges.
    func testMoveBoundaryBetweenTouchingSegments() {
        var model = sampleModel()
        var set = makeSegmentSet(model)
        let copy = set
        let original = model
        var moved = 0
        for i in 1..<model.count where model.range(i).start == model.range(i - 1).end {
            let first = set.findSegment(containing: model.range(i - 1).start)!
            let second = set.findSegment(containing: model.range(i).start)!
            // Alternately nearly all to the second segment, or to the first.
            let key = i % 2 == 0 ? model.range(i - 1).start + 1 : model.range(i).end - 1
            set.moveBoundary(between: first, and: second, to: key)
            model.segments[i - 1].range.end = key
            model.segments[i].range.start = key
            XCTAssertEqual(set.range(of: first), model.range(i - 1))
            XCTAssertEqual(set.range(of: second), model.range(i))
            moved += 1
        }
        XCTAssertGreaterThan(moved, 20)
        verify(set, model)
        verify(copy, original)
    }

    // MARK: Node storage

    func testRemoveAllAndRebuild() {
        print("testRemoveAllAndRebuild: seed \(SegmentTestEnvironment.seed) ^ 0xA11 (replay with PGALLOC_TEST_SEED)")
        var rng = SegmentTestRandom(seed: SegmentTestEnvironment.seed ^ 0xA11)
        var set = IntSet()
        for round in 0..<3 {
            var model = IntModel()
            for _ in 0..<1500 {
                let start = rng.below(1 << 20)
                let r = range(start, start + 1 + rng.below(8))
                let v = Int(rng.below(2))
                XCTAssertEqual(set.add(r, v), model.add(r, v, merging: true))
            }
            XCTAssertGreaterThanOrEqual(set.treeHeight, 3, "round \(round)")
            verify(set, model, merged: true)
            let shared = set
            set.removeAll()
            verify(set, IntModel(), merged: true)
            XCTAssertEqual(set.liveNodeCount, 1)
            verify(shared, model, merged: true)
        }

        // Removing one segment at a time frees every node but the root.
        var model = IntModel()
        for i in 0..<UInt64(800) {
            XCTAssertTrue(set.add(range(3 * i, 3 * i + 2), 1))
            XCTAssertTrue(model.add(range(3 * i, 3 * i + 2), 1, merging: true))
        }
        XCTAssertGreaterThan(set.liveNodeCount, 1)
        while model.count > 0 {
            let i = rng.index(model.count)
            guard let seg = set.findSegment(containing: model.range(i).start) else {
                XCTFail("segment \(model.range(i)) is missing")
                break
            }
            let gap = set.remove(seg)
            let j = model.remove(at: i)
            XCTAssertEqual(set.range(of: gap), model.gap(j))
            // Every removal gets the invariants; every 97th the whole check.
            let ok: Bool
            if model.count % 97 == 0 {
                ok = verify(set, model, merged: true)
            } else {
                do throws(SegmentModelMismatch) {
                    try SegmentSetChecker(set: set, model: model).checkInvariants(requireMaximallyMerged: true)
                    ok = true
                } catch {
                    XCTFail("after removing segment \(i): \(error)")
                    ok = false
                }
            }
            if !ok {
                break
            }
        }
        XCTAssertEqual(set.liveNodeCount, 1)
        XCTAssertEqual(set.treeHeight, 1)
    }

    /// Node arrays of a MiB or more are mappings of their own: a set grown
    /// from one node to tens of thousands crosses from malloc to a mapping
    /// and then grows the mapping; its contents survive each step, and a
    /// copy of a set in mappings is a copy.
    func testNodeArraysMovedIntoMappingsKeepTheirContents() {
        print("testNodeArraysMovedIntoMappingsKeepTheirContents: seed \(SegmentTestEnvironment.seed) ^ 0x3A9 (replay with PGALLOC_TEST_SEED)")
        var rng = SegmentTestRandom(seed: SegmentTestEnvironment.seed ^ 0x3A9)
        var set = IntSet()
        var model = IntModel()
        func check(_ set: IntSet, _ model: IntModel, _ what: String) {
            do throws(SegmentModelMismatch) {
                let c = SegmentSetChecker(set: set, model: model)
                try c.checkInvariants(requireMaximallyMerged: true)
                try c.expectContents()
            } catch {
                XCTFail("\(what): \(error)")
            }
        }
        // Segments of alternating values with gaps between them: none merge.
        // 60,000 of them take thousands of nodes, over 1 MiB of keys.
        var at: UInt64 = 0
        for i in 0..<60_000 {
            at += 1 + rng.below(4)
            let r = range(at, at + 1 + rng.below(6))
            XCTAssertTrue(set.add(r, i & 1))
            XCTAssertTrue(model.add(r, i & 1, merging: true))
            at = r.end
            if i % 7_500 == 0 {
                check(set, model, "after \(i + 1) segments")
            }
        }
        XCTAssertGreaterThan(set.storageBytes, 4 << 20)
        check(set, model, "60,000 segments")
        var copy = set
        var changed = model
        for _ in 0..<500 {
            let i = rng.index(changed.count)
            let gap = copy.remove(copy.findSegment(containing: changed.range(i).start)!)
            let j = changed.remove(at: i)
            XCTAssertEqual(copy.range(of: gap), changed.gap(j))
        }
        check(copy, changed, "the copy, 500 segments removed")
        check(set, model, "the original beside a changed copy")
    }

    // MARK: The invariant checker

    /// The checker must catch a broken tree, or passing it proves nothing.
    func testCheckInvariantsCatchesCorruption() {
        let model = sampleModel()

        var set = makeSegmentSet(model)
        XCTAssertNoThrow(try set.checkInvariants())
        set.makeUnique()
        set.storage.headers[0].maxGap &+= 1
        XCTAssertThrowsError(try set.checkInvariants(), "a wrong recorded longest gap")

        set = makeSegmentSet(model)
        set.makeUnique()
        let leaf = set.findSegment(containing: 0)!
        set.storage.setKey(Int(leaf.node), Int(leaf.index), range(5, 3))
        XCTAssertThrowsError(try set.checkInvariants(), "an inverted segment")

        set = makeSegmentSet(model)
        set.makeUnique()
        let second = set.findSegment(containing: 12)!
        set.storage.setKey(Int(second.node), Int(second.index), range(8, 20))
        XCTAssertThrowsError(try set.checkInvariants(), "overlapping segments")

        set = makeSegmentSet(model)
        set.makeUnique()
        set.storage.liveNodes += 1
        XCTAssertThrowsError(try set.checkInvariants(), "a leaked node")

        set = makeSegmentSet(model)
        set.makeUnique()
        let child = set.storage.child(0, 0)
        set.storage.headers[child].parentIndex += 1
        XCTAssertThrowsError(try set.checkInvariants(), "a broken parent link")
    }

    func testDescriptions() {
        var set = IntSet()
        XCTAssertEqual(set.description, "(empty set)")
        set.add(range(0x10, 0x20), 3)
        XCTAssertEqual(set.description, "\(range(0x10, 0x20)) => 3\n")
        XCTAssertTrue(set.debugDescription.contains("node 0"))
    }
}
