// Comparing a SegmentSet with the naive model: every query, navigation
// and gap search of the set against the model's answer, each difference
// thrown as a SegmentModelMismatch that says what differed.

@testable import PGAlloc

/// A difference between the tree and the model.
struct SegmentModelMismatch: Error, CustomStringConvertible {
    var description: String
}

/// Comparisons of a set with a model, each throwing a `SegmentModelMismatch` that
/// says what differed. The caller adds the context (seed, step, log).
final class SegmentSetChecker<F: SegmentModelFunctions> {
    let set: SegmentSet<F>
    let model: SegmentModel<F>
    private(set) lazy var gapLengths = model.gapLengths()

    init(set: SegmentSet<F>, model: SegmentModel<F>) {
        self.set = set
        self.model = model
    }

    func mismatch(_ what: String) -> SegmentModelMismatch {
        SegmentModelMismatch(description: what)
    }

    func expect(_ condition: Bool, _ what: @autoclosure () -> String) throws(SegmentModelMismatch) {
        if !condition {
            throw mismatch(what())
        }
    }

    func describe(_ seg: SegmentSet<F>.Segment?) -> String {
        seg.map { "\(set.range(of: $0)) => \(F.describe(set[$0]))" } ?? "nil"
    }

    func describe(_ gap: SegmentSet<F>.Gap?) -> String {
        gap.map { "gap \(set.range(of: $0))" } ?? "nil"
    }

    func describeModelSegment(_ i: Int?) -> String {
        i.map { "\(model.range($0)) => \(F.describe(model.segments[$0].value))" } ?? "nil"
    }

    func describeModelGap(_ j: Int?) -> String {
        j.map { "gap \(model.gap($0))" } ?? "nil"
    }

    /// That the tree's segment is the model's segment `i` (nil for none).
    func expectSegment(_ seg: SegmentSet<F>.Segment?, _ i: Int?, _ what: @autoclosure () -> String)
        throws(SegmentModelMismatch)
    {
        switch (seg, i) {
        case (nil, nil):
            return
        case let (seg?, i?):
            let r = set.range(of: seg)
            try expect(
                r == model.range(i) && F.same(set[seg], model.segments[i].value)
                    && set.start(of: seg) == r.start && set.end(of: seg) == r.end,
                "\(what()): set gives \(describe(seg)), model \(describeModelSegment(i))")
        default:
            throw mismatch("\(what()): set gives \(describe(seg)), model \(describeModelSegment(i))")
        }
    }

    /// That the tree's gap is the model's gap `j` (nil for none).
    func expectGap(_ gap: SegmentSet<F>.Gap?, _ j: Int?, _ what: @autoclosure () -> String) throws(SegmentModelMismatch) {
        switch (gap, j) {
        case (nil, nil):
            return
        case let (gap?, j?):
            let r = set.range(of: gap)
            let m = model.gap(j)
            try expect(
                r == m && set.start(of: gap) == m.start && set.end(of: gap) == m.end
                    && set.isEmpty(gap) == (m.start == m.end),
                "\(what()): set gives \(describe(gap)), model \(describeModelGap(j))")
        default:
            throw mismatch("\(what()): set gives \(describe(gap)), model \(describeModelGap(j))")
        }
    }

    func expectPosition(_ p: SegmentSet<F>.Position, key: UInt64) throws(SegmentModelMismatch) {
        switch p {
        case .segment(let seg):
            try expectSegment(seg, model.segmentIndex(containing: key), "find(0x\(String(key, radix: 16)))")
        case .gap(let gap):
            try expect(
                model.segmentIndex(containing: key) == nil,
                "find(0x\(String(key, radix: 16))) gives \(describe(gap)), model has segment \(describeModelSegment(model.segmentIndex(containing: key)))"
            )
            try expectGap(gap, model.gapIndex(containing: key), "find(0x\(String(key, radix: 16)))")
        }
    }

    /// A tree position for the model's segment `i`.
    func segment(_ i: Int) throws(SegmentModelMismatch) -> SegmentSet<F>.Segment {
        guard let seg = set.findSegment(containing: model.range(i).start) else {
            throw mismatch("findSegment(containing: start of \(describeModelSegment(i))) gives nil")
        }
        try expectSegment(seg, i, "findSegment(containing: start of segment \(i))")
        return seg
    }

    /// A tree position for the model's gap `j`, reached one of several ways
    /// (chosen by `way`), each checked against the others where they apply.
    func gap(_ j: Int, way: Int = 0) throws(SegmentModelMismatch) -> SegmentSet<F>.Gap {
        let g: SegmentSet<F>.Gap
        let m = model.gap(j)
        switch way % 4 {
        case 0 where j < model.count:
            g = set.upperBoundGap(model.range(j).start)
        case 1 where j > 0:
            g = set.nextGap(after: try segment(j - 1))
        case 2 where m.start < m.end:
            guard let found = set.findGap(containing: m.start) else {
                throw mismatch("findGap(containing: start of model \(describeModelGap(j))) gives nil")
            }
            g = found
        default:
            g = j == 0 ? set.firstGap : j == model.count ? set.lastGap : set.previousGap(before: try segment(j))
        }
        try expectGap(g, j, "gap \(j) reached by way \(way % 4)")
        return g
    }

    /// Everything the set holds, and the whole-set queries.
    func expectContents() throws(SegmentModelMismatch) {
        let got = set.segments
        var first: Int? = got.count == model.count ? nil : min(got.count, model.count)
        var i = 0
        while first == nil && i < got.count {
            if got[i].range != model.segments[i].range || !F.same(got[i].value, model.segments[i].value) {
                first = i
            }
            i += 1
        }
        if let first {
            // Show the neighbourhood of the first difference, not thousands
            // of segments.
            let window = max(0, first - 5)..<min(first + 6, max(got.count, model.count))
            func lines(_ entries: [(range: FileRange, value: F.Value)]) -> String {
                window.clamped(to: 0..<entries.count)
                    .map { "  \($0): \(entries[$0].range) => \(F.describe(entries[$0].value))" }
                    .joined(separator: "\n")
            }
            throw mismatch(
                """
                contents differ (set has \(got.count) segments, model \(model.count); first difference at \
                segment \(first))
                set, segments \(window):
                \(lines(got))
                model, segments \(window):
                \(lines(model.segments.map { ($0.range, $0.value) }))
                """)
        }
        try expect(set.isEmpty == (model.count == 0), "isEmpty is \(set.isEmpty), model has \(model.count) segments")
        try expect(set.segmentCount == model.count, "segmentCount is \(set.segmentCount), model \(model.count)")
        try expect(set.span == model.span, "span is \(set.span), model \(model.span)")
        try expectGap(set.firstGap, 0, "firstGap")
        try expectGap(set.lastGap, model.count, "lastGap")
        try expectSegment(set.firstSegment, model.count > 0 ? 0 : nil, "firstSegment")
        try expectSegment(set.lastSegment, model.count > 0 ? model.count - 1 : nil, "lastSegment")
    }

    /// Every point query at `key` (in `[minKey, maxKey)`).
    func expectPointQueries(_ key: UInt64) throws(SegmentModelMismatch) {
        let k = "0x\(String(key, radix: 16))"
        try expectPosition(set.find(key), key: key)
        try expectSegment(set.findSegment(containing: key), model.segmentIndex(containing: key), "findSegment(\(k))")
        try expectGap(set.findGap(containing: key), model.gapIndex(containing: key), "findGap(\(k))")
        try expectSegment(set.lowerBoundSegment(key), model.lowerBoundSegment(key), "lowerBoundSegment(\(k))")
        try expectSegment(set.upperBoundSegment(key), model.upperBoundSegment(key), "upperBoundSegment(\(k))")
        try expectGap(set.lowerBoundGap(key), model.lowerBoundGap(key), "lowerBoundGap(\(k))")
        try expectGap(set.upperBoundGap(key), model.upperBoundGap(key), "upperBoundGap(\(k))")
    }

    /// Every navigation from model segment `i`.
    func expectSegmentNavigation(_ i: Int) throws(SegmentModelMismatch) {
        let seg = try segment(i)
        let n = model.count
        try expectSegment(set.nextSegment(after: seg), i + 1 < n ? i + 1 : nil, "nextSegment(after: segment \(i))")
        try expectSegment(set.previousSegment(before: seg), i > 0 ? i - 1 : nil, "previousSegment(before: segment \(i))")
        try expectGap(set.nextGap(after: seg), i + 1, "nextGap(after: segment \(i))")
        try expectGap(set.previousGap(before: seg), i, "previousGap(before: segment \(i))")
        // Positions are canonical: the same gap reached two ways compares equal.
        try expect(
            set.previousGap(before: seg) == set.upperBoundGap(model.range(i).start),
            "previousGap(before: segment \(i)) and upperBoundGap(its start) are different positions")

        let after = model.gap(i + 1)
        switch set.nextNonEmpty(after: seg) {
        case nil:
            try expect(
                after.start == after.end && i + 1 == n,
                "nextNonEmpty(after: segment \(i)) is nil, model gap after is \(after), \(n) segments")
        case .gap(let g)?:
            try expect(after.start < after.end, "nextNonEmpty(after: segment \(i)) gives a gap, model gap after is empty")
            try expectGap(g, i + 1, "nextNonEmpty(after: segment \(i))")
        case .segment(let s)?:
            try expect(after.start == after.end && i + 1 < n, "nextNonEmpty(after: segment \(i)) gives a segment")
            try expectSegment(s, i + 1, "nextNonEmpty(after: segment \(i))")
        }
        let before = model.gap(i)
        switch set.previousNonEmpty(before: seg) {
        case nil:
            try expect(
                before.start == before.end && i == 0,
                "previousNonEmpty(before: segment \(i)) is nil, model gap before is \(before)")
        case .gap(let g)?:
            try expect(before.start < before.end, "previousNonEmpty(before: segment \(i)) gives a gap, model's is empty")
            try expectGap(g, i, "previousNonEmpty(before: segment \(i))")
        case .segment(let s)?:
            try expect(before.start == before.end && i > 0, "previousNonEmpty(before: segment \(i)) gives a segment")
            try expectSegment(s, i - 1, "previousNonEmpty(before: segment \(i))")
        }
    }

    /// Every navigation from model gap `j`.
    func expectGapNavigation(_ j: Int, way: Int) throws(SegmentModelMismatch) {
        let g = try gap(j, way: way)
        let n = model.count
        try expectSegment(set.nextSegment(after: g), j < n ? j : nil, "nextSegment(after: gap \(j))")
        try expectSegment(set.previousSegment(before: g), j > 0 ? j - 1 : nil, "previousSegment(before: gap \(j))")
        try expectGap(set.nextGap(after: g), j < n ? j + 1 : nil, "nextGap(after: gap \(j))")
        try expectGap(set.previousGap(before: g), j > 0 ? j - 1 : nil, "previousGap(before: gap \(j))")
    }

    /// Walks every segment and gap forwards and backwards.
    func expectFullWalk() throws(SegmentModelMismatch) {
        var i = 0
        var seg = set.firstSegment
        while let s = seg {
            try expect(i < model.count, "walking forwards finds more than \(model.count) segments")
            try expectSegment(s, i, "segment \(i) walking forwards")
            seg = set.nextSegment(after: s)
            i += 1
        }
        try expect(i == model.count, "walking forwards finds \(i) segments, model has \(model.count)")
        seg = set.lastSegment
        i = model.count - 1
        while let s = seg {
            try expect(i >= 0, "walking backwards finds more than \(model.count) segments")
            try expectSegment(s, i, "segment \(i) walking backwards")
            seg = set.previousSegment(before: s)
            i -= 1
        }
        try expect(i == -1, "walking backwards stops \(i + 1) segments early")

        var j = 0
        var gap: SegmentSet<F>.Gap? = set.firstGap
        while let g = gap {
            try expect(j < model.gapCount, "walking forwards finds more than \(model.gapCount) gaps")
            try expectGap(g, j, "gap \(j) walking forwards")
            gap = set.nextGap(after: g)
            j += 1
        }
        try expect(j == model.gapCount, "walking forwards finds \(j) gaps, model has \(model.gapCount)")
        gap = set.lastGap
        j = model.gapCount - 1
        while let g = gap {
            try expect(j >= 0, "walking backwards finds more than \(model.gapCount) gaps")
            try expectGap(g, j, "gap \(j) walking backwards")
            gap = set.previousGap(before: g)
            j -= 1
        }
        try expect(j == -1, "walking backwards stops \(j + 1) gaps early")
    }

    /// The four large-enough-gap searches for each of `minSizes`; `from`
    /// lists the gaps to search from (every gap if nil).
    func expectLargeEnoughGaps(minSizes: [UInt64], from starts: [Int]?) throws(SegmentModelMismatch) {
        let lengths = gapLengths
        for minSize in minSizes {
            let m = "minSize: 0x\(String(minSize, radix: 16))"
            try expectGap(
                set.firstLargeEnoughGap(minSize: minSize),
                SegmentModel<F>.firstLargeEnough(lengths, from: 0, minSize: minSize), "firstLargeEnoughGap(\(m))")
            try expectGap(
                set.lastLargeEnoughGap(minSize: minSize),
                SegmentModel<F>.lastLargeEnough(lengths, through: lengths.count - 1, minSize: minSize),
                "lastLargeEnoughGap(\(m))")
            if let starts {
                for j in starts {
                    let g = try gap(j, way: j)
                    try expectGap(
                        set.nextLargeEnoughGap(after: g, minSize: minSize),
                        SegmentModel<F>.firstLargeEnough(lengths, from: j + 1, minSize: minSize),
                        "nextLargeEnoughGap(after: gap \(j), \(m))")
                    try expectGap(
                        set.previousLargeEnoughGap(before: g, minSize: minSize),
                        SegmentModel<F>.lastLargeEnough(lengths, through: j - 1, minSize: minSize),
                        "previousLargeEnoughGap(before: gap \(j), \(m))")
                }
            } else {
                let (next, previous) = SegmentModel<F>.largeEnoughNeighbours(lengths, minSize: minSize)
                var g: SegmentSet<F>.Gap? = set.firstGap
                var j = 0
                while let gap = g {
                    try expect(j < lengths.count, "more gaps than the model's \(lengths.count)")
                    try expectGap(gap, j, "gap \(j)")
                    try expectGap(
                        set.nextLargeEnoughGap(after: gap, minSize: minSize), next[j],
                        "nextLargeEnoughGap(after: gap \(j), \(m))")
                    try expectGap(
                        set.previousLargeEnoughGap(before: gap, minSize: minSize), previous[j],
                        "previousLargeEnoughGap(before: gap \(j), \(m))")
                    g = set.nextGap(after: gap)
                    j += 1
                }
            }
        }
    }

    /// Interesting minimum sizes for the gap searches: 0, 1, 2, the length
    /// of some gaps and one more, the longest gap and one more, and the
    /// largest possible.
    func interestingMinSizes(_ rng: inout SegmentTestRandom) -> [UInt64] {
        let lengths = gapLengths
        var longest: UInt64 = 0
        for length in lengths where length > longest {
            longest = length
        }
        let some = lengths[rng.index(lengths.count)]
        return [0, 1, 2, some, some &+ 1, longest, longest &+ 1, .max]
    }

    func checkInvariants(requireMaximallyMerged: Bool) throws(SegmentModelMismatch) {
        do {
            try set.checkInvariants(requireMaximallyMerged: requireMaximallyMerged)
        } catch {
            // The dump of a large tree runs to thousands of lines: keep the start.
            let dump = error.dump.split(separator: "\n", omittingEmptySubsequences: false)
            let shown = dump.prefix(150).joined(separator: "\n") + (dump.count > 150 ? "\n..." : "")
            throw mismatch(
                "checkInvariants(requireMaximallyMerged: \(requireMaximallyMerged)) failed: \(error.problem)\n\(shown)")
        }
    }
}
