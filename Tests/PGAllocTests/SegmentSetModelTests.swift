// Model-based randomized tests of SegmentSet: long seeded runs of every
// public operation, each result and the whole set compared with the naive
// model in SegmentModel.swift after every step.
//
// Replay a failure with PGALLOC_TEST_SEED=<seed from the message>; run
// longer with PGALLOC_TEST_OPS=<total operations>; print every operation
// as it runs with PGALLOC_TEST_TRACE=1 (for a precondition trap).

import XCTest

@testable import PGAlloc

/// How a randomized run picks keys and sizes.
struct SegmentModelRunPlan {
    var name: String
    /// Operations to run.
    var ops: Int
    /// The set size the run hovers around; adds are favoured below it and
    /// removals above it.
    var targetCount: Int
    /// Width of the dense window of keys at the bottom of the key space
    /// (and at the top, with `highWindow`). Small windows make touching
    /// segments, merges and overlaps frequent.
    var window: UInt64
    var highWindow: Bool
    /// The longest of the usual random ranges.
    var maxLength: UInt64
    /// Alternate between growing to `targetCount` and shrinking to a
    /// handful of segments, so that the root splits and collapses.
    var growAndShrink = false
    /// One range in this many spans two independent random keys (and so
    /// is often huge); the others are short.
    var wideRangeOneIn: UInt64 = 4
    /// Sets no larger than this get the full walks after every step.
    var fullCheckLimit = 12
    /// Larger sets get them every this many steps.
    var fullCheckEvery = 10
    /// One step in this many keeps a copy of the set across the operation
    /// and checks that the copy did not change.
    var copyCheckEvery: UInt64 = 8
}

/// The operations a run draws from. Queries are not listed: all of them
/// run after every step.
enum SegmentModelOp: CaseIterable {
    case add, addWithoutMerging, insert, insertWithoutMerging, insertWithoutMergingUnchecked
    case remove, removeRange, removeAll
    case split, splitUnchecked, splitAt, isolate
    case merge, mergeUnchecked, mergeAll, mergeRange, mergeAdjacent, mergeWithNeighbours
    case applyContiguous, setValue, setRange, setStart, setEnd, setRangeUnchecked
    case reimport, importModel

    /// Whether the operation keeps a maximally merged set maximally merged
    /// (for values whose merge is associative, as all those here are).
    var keepsMaximallyMerged: Bool {
        switch self {
        case .add, .insert, .remove, .removeRange, .removeAll, .merge, .mergeUnchecked, .mergeAll, .mergeRange,
            .mergeAdjacent, .mergeWithNeighbours, .reimport, .importModel:
            return true
        default:
            return false
        }
    }

    var adds: Bool {
        [.add, .addWithoutMerging, .insert, .insertWithoutMerging, .insertWithoutMergingUnchecked].contains(self)
    }

    var removes: Bool { self == .remove || self == .removeRange }

    var weight: Int {
        switch self {
        case .add: return 12
        case .addWithoutMerging, .insert, .remove: return 5
        case .removeRange: return 4
        case .insertWithoutMerging, .split, .splitAt, .isolate, .merge, .mergeRange, .mergeAdjacent,
            .mergeWithNeighbours, .applyContiguous, .setValue:
            return 3
        case .insertWithoutMergingUnchecked, .splitUnchecked, .mergeUnchecked, .setRange, .setStart, .setEnd,
            .setRangeUnchecked, .mergeAll:
            return 2
        case .reimport, .importModel:
            return 1
        case .removeAll:
            return 0  // drawn separately, rarely
        }
    }
}

/// One randomized run: a set, its model, the random source and the log.
final class SegmentModelRun<F: SegmentModelFunctions> {
    let plan: SegmentModelRunPlan
    let seed: UInt64
    var rng: SegmentTestRandom
    var set = SegmentSet<F>()
    var model = SegmentModel<F>()
    var step = 0
    /// The last operations, oldest first.
    var log: [String] = []
    let logLimit = 20
    let trace = SegmentTestEnvironment.trace
    /// Whether the operations since the last `mergeAll` guarantee that no
    /// two touching segments could merge.
    var guaranteedMerged = true
    /// In a merged phase only operations that keep the set maximally merged
    /// run, so that `requireMaximallyMerged: true` gets checked often.
    var mergedPhase = false
    var growing = true
    var opCounts: [SegmentModelOp: Int] = [:]
    var maxHeight = 1
    var heightRises = 0
    var heightDrops = 0
    var maxCount = 0

    init(plan: SegmentModelRunPlan, seed: UInt64) {
        self.plan = plan
        self.seed = seed
        // Each run gets its own stream, derived from the seed and its name.
        var mix = seed
        for byte in plan.name.utf8 {
            mix = (mix ^ UInt64(byte)) &* 0x100_0000_01B3
        }
        rng = SegmentTestRandom(seed: mix)
    }

    var checker: SegmentSetChecker<F> { SegmentSetChecker(set: set, model: model) }

    // MARK: Running

    func run() throws(SegmentModelMismatch) {
        do {
            try checker.expectContents()
            while step < plan.ops {
                step += 1
                try runStep()
            }
        } catch {
            throw SegmentModelMismatch(
                description: """
                    SegmentSet model run '\(plan.name)' failed at step \(step) of \(plan.ops) \
                    (seed \(seed); replay with PGALLOC_TEST_SEED=\(seed)):
                    \(error.description)
                    last operations, oldest first:
                    \(log.joined(separator: "\n"))
                    """)
        }
    }

    func record(_ entry: String) {
        if trace {
            print("[\(plan.name) \(step)] \(entry)")
        }
        if log.count == logLimit {
            log.removeFirst()
        }
        log.append("\(step): \(entry)")
    }

    func noteResult(_ result: String) {
        if trace {
            print("    -> \(result)")
        }
        log[log.count - 1] += " -> \(result)"
    }

    func runStep() throws(SegmentModelMismatch) {
        if step % 300 == 1 {
            mergedPhase = !F.neverMerges && rng.chance(1, 2)
        }
        let op: SegmentModelOp
        if mergedPhase && !guaranteedMerged {
            op = .mergeAll
        } else if rng.chance(1, plan.growAndShrink ? 30000 : 3000) {
            op = .removeAll
        } else {
            op = pickOperation()
        }
        opCounts[op, default: 0] += 1

        // Sometimes keep a copy across the operation: it must not change.
        let keepCopy = rng.chance(1, plan.copyCheckEvery)
        let copy = keepCopy ? set : nil
        let copyModel = keepCopy ? model : nil

        try perform(op)
        if !op.keepsMaximallyMerged && !F.neverMerges {
            guaranteedMerged = false
        }

        if let copy, let copyModel {
            let c = SegmentSetChecker(set: copy, model: copyModel)
            do {
                try c.checkInvariants(requireMaximallyMerged: false)
                try c.expectContents()
            } catch {
                throw SegmentModelMismatch(description: "a copy taken before the operation changed: \(error)")
            }
        }
        try verifyAfterMutation()
        try verifyQueries()
    }

    func pickOperation() -> SegmentModelOp {
        let count = model.count
        var weights: [(SegmentModelOp, Int)] = []
        for op in SegmentModelOp.allCases where !mergedPhase || op.keepsMaximallyMerged {
            var w = op.weight
            if plan.growAndShrink {
                if op.adds {
                    w *= growing ? 6 : 1
                } else if op.removes {
                    w *= growing ? 1 : 8
                }
            } else if op.adds && count < plan.targetCount {
                w *= 3
            } else if op.removes && count > plan.targetCount {
                w *= 3
            }
            if (op == .reimport || op == .importModel) && count > 200 {
                w = rng.chance(1, 20) ? w : 0
            }
            weights.append((op, w))
        }
        var pick = rng.below(UInt64(weights.reduce(0) { $0 + $1.1 }))
        for (op, w) in weights {
            if pick < UInt64(w) {
                return op
            }
            pick -= UInt64(w)
        }
        fatalError("unreachable")
    }

    // MARK: Random arguments

    func hex(_ k: UInt64) -> String { "0x\(String(k, radix: 16))" }

    /// A key in `[minKey, maxKey]`: mostly from the dense windows, often a
    /// segment's bound or next to one, rarely anywhere.
    func randomKey() -> UInt64 {
        let lo = F.minKey
        let hi = F.maxKey
        let width = min(plan.window, hi - lo)
        switch rng.below(16) {
        case 0:
            return rng.inClosedRange(lo, hi)
        case 1...4 where plan.highWindow:
            return hi - rng.inClosedRange(0, width)
        case 5...8 where model.count > 0:
            let r = model.range(rng.index(model.count))
            var k = rng.chance(1, 2) ? r.start : r.end
            switch rng.below(4) {
            case 0 where k > lo: k -= 1
            case 1 where k < hi: k += 1
            default: break
            }
            return k
        default:
            return lo + rng.inClosedRange(0, width)
        }
    }

    /// A key in `[minKey, maxKey)`, for queries.
    func randomQueryKey() -> UInt64 {
        let k = randomKey()
        return k == F.maxKey ? k - 1 : k
    }

    /// A non-empty range within the key space.
    func randomRange() -> FileRange {
        var a = randomKey()
        var b: UInt64
        if rng.chance(1, plan.wideRangeOneIn) {
            b = randomKey()
        } else {
            let length = 1 + rng.below(plan.maxLength)
            b = a <= F.maxKey - length ? a + length : F.maxKey
        }
        if a > b {
            swap(&a, &b)
        }
        if a == b {
            if b < F.maxKey {
                b += 1
            } else {
                a -= 1
            }
        }
        return FileRange(start: a, end: b)
    }

    /// A non-empty part of non-empty range `g`, often touching its ends.
    func randomSubrange(of g: FileRange) -> FileRange {
        let start = rng.chance(1, 3) ? g.start : g.start + rng.below(g.end - g.start)
        let room = g.end - start
        let end = rng.chance(1, 3) ? g.end : start + 1 + rng.below(min(room, plan.maxLength))
        return FileRange(start: start, end: end)
    }

    /// A random non-empty model gap, if one turns up quickly.
    func randomNonEmptyGap() -> Int? {
        for _ in 0..<8 {
            let j = rng.index(model.gapCount)
            if model.gapLength(j) > 0 {
                return j
            }
        }
        return (0..<model.gapCount).first { model.gapLength($0) > 0 }
    }

    /// A random model segment at least `minLength` long, if one turns up.
    func randomSegment(minLength: UInt64 = 1) -> Int? {
        guard model.count > 0 else { return nil }
        for _ in 0..<8 {
            let i = rng.index(model.count)
            let r = model.range(i)
            if r.end - r.start >= minLength {
                return i
            }
        }
        return nil
    }

    /// A key in `[lower, upper]`, often one of the two ends.
    func randomKey(between lower: UInt64, _ upper: UInt64) -> UInt64 {
        switch rng.below(4) {
        case 0: return lower
        case 1: return upper
        default: return rng.inClosedRange(lower, upper)
        }
    }

    // MARK: Checking returned positions

    /// That a position returned by a mutation holds the model's segment
    /// `i`, and that navigating from it works.
    func expectReturnedSegment(_ seg: SegmentSet<F>.Segment?, _ i: Int?, _ what: String) throws(SegmentModelMismatch) {
        let c = checker
        try c.expectSegment(seg, i, what)
        if let seg, let i {
            try c.expectSegment(set.nextSegment(after: seg), i + 1 < model.count ? i + 1 : nil, "\(what), then nextSegment")
            try c.expectGap(set.previousGap(before: seg), i, "\(what), then previousGap")
        }
    }

    func expectReturnedGap(_ gap: SegmentSet<F>.Gap?, _ j: Int?, _ what: String) throws(SegmentModelMismatch) {
        let c = checker
        try c.expectGap(gap, j, what)
        if let gap, let j {
            try c.expectSegment(set.nextSegment(after: gap), j < model.count ? j : nil, "\(what), then nextSegment")
            try c.expectGap(set.previousGap(before: gap), j > 0 ? j - 1 : nil, "\(what), then previousGap")
        }
    }

    // MARK: Operations

    func perform(_ op: SegmentModelOp) throws(SegmentModelMismatch) {
        switch op {
        case .add, .addWithoutMerging:
            let r = randomRange()
            let v = F.randomValue(for: r, &rng)
            let merging = op == .add
            record("\(op)(\(r), \(F.describe(v)))")
            let expected = model.add(r, v, merging: merging)
            let got = merging ? set.add(r, v) : set.addWithoutMerging(r, v)
            noteResult("\(got)")
            try checker.expect(got == expected, "\(op) returned \(got), model \(expected)")

        case .insert, .insertWithoutMerging, .insertWithoutMergingUnchecked:
            guard let j = randomNonEmptyGap() else {
                return try perform(.remove)
            }
            let r = randomSubrange(of: model.gap(j))
            let v = F.randomValue(for: r, &rng)
            let way = rng.index(4)
            record("\(op)(\(r), \(F.describe(v)), into: gap \(j) \(model.gap(j)) by way \(way))")
            let gap = try checker.gap(j, way: way)
            let seg: SegmentSet<F>.Segment
            switch op {
            case .insert: seg = set.insert(r, v, into: gap)
            case .insertWithoutMerging: seg = set.insertWithoutMerging(r, v, into: gap)
            default: seg = set.insertWithoutMergingUnchecked(r, v, into: gap)
            }
            let i = model.insert(r, v, intoGap: j, merging: op == .insert)
            noteResult("\(set.range(of: seg))")
            try expectReturnedSegment(seg, i, "\(op) result")

        case .remove:
            guard let i = randomSegment() else { return }
            record("remove(segment \(i) \(model.range(i)))")
            let seg = try checker.segment(i)
            let gap = set.remove(seg)
            let j = model.remove(at: i)
            noteResult("\(set.range(of: gap))")
            try expectReturnedGap(gap, j, "remove result")

        case .removeRange:
            let r = randomRange()
            record("removeRange(\(r))")
            let gap = set.removeRange(r)
            let j = model.removeRange(r)
            noteResult("\(set.range(of: gap))")
            try expectReturnedGap(gap, j, "removeRange result")

        case .removeAll:
            record("removeAll()")
            set.removeAll()
            model = SegmentModel()

        case .split, .splitUnchecked:
            guard let i = randomSegment(minLength: 2) else {
                return try perform(.add)
            }
            let r = model.range(i)
            let key = r.start + 1 + rng.below(r.end - r.start - 1)
            record("\(op)(segment \(i) \(r), at: \(hex(key)))")
            let seg = try checker.segment(i)
            let (a, b) = op == .split ? set.split(seg, at: key) : set.splitUnchecked(seg, at: key)
            let (ma, mb) = model.split(i, at: key)
            try expectReturnedSegment(a, ma, "\(op) first half")
            try expectReturnedSegment(b, mb, "\(op) second half")

        case .splitAt:
            let key = randomQueryKey()
            record("splitAt(\(hex(key)))")
            var expected = false
            if let i = model.segmentIndex(containing: key), model.range(i).start < key {
                _ = model.split(i, at: key)
                expected = true
            }
            let got = set.splitAt(key)
            noteResult("\(got)")
            try checker.expect(got == expected, "splitAt returned \(got), model \(expected)")

        case .isolate:
            guard let i = randomSegment() else {
                return try perform(.add)
            }
            let s = model.range(i)
            let lo = s.start >= F.minKey + 2 ? s.start - 2 : F.minKey
            let hi = s.end <= F.maxKey - 2 ? s.end + 2 : F.maxKey
            var a = randomKey(between: lo, hi)
            var b = randomKey(between: lo, hi)
            if a > b {
                swap(&a, &b)
            }
            if a == b {
                if b < hi { b += 1 } else { a -= 1 }
            }
            let r = FileRange(start: a, end: b)
            record("isolate(segment \(i) \(s), to: \(r))")
            let seg = try checker.segment(i)
            let got = set.isolate(seg, to: r)
            let expected = model.isolate(i, r)
            noteResult("\(set.range(of: got))")
            try expectReturnedSegment(got, expected, "isolate result")

        case .merge, .mergeUnchecked:
            guard model.count >= 2 else {
                return try perform(.add)
            }
            // Prefer touching pairs, which may merge.
            var i = rng.index(model.count - 1)
            for _ in 0..<4 where model.range(i).end != model.range(i + 1).start {
                i = rng.index(model.count - 1)
            }
            record("\(op)(segment \(i) \(model.range(i)), segment \(i + 1) \(model.range(i + 1)))")
            let first = try checker.segment(i)
            guard let second = set.nextSegment(after: first) else {
                throw SegmentModelMismatch(description: "nextSegment(after: segment \(i)) is nil")
            }
            let got = op == .merge ? set.merge(first, second) : set.mergeUnchecked(first, second)
            let expected = model.mergePair(i)
            noteResult(got.map { "\(set.range(of: $0))" } ?? "nil")
            try expectReturnedSegment(got, expected, "\(op) result")

        case .mergeWithNeighbours:
            guard let i = randomSegment() else {
                return try perform(.add)
            }
            record("mergeWithNeighbours(segment \(i) \(model.range(i)))")
            let seg = try checker.segment(i)
            let got = set.mergeWithNeighbours(seg)
            let expected = model.mergeWithNeighbours(i)
            noteResult("\(set.range(of: got))")
            try expectReturnedSegment(got, expected, "mergeWithNeighbours result")

        case .mergeAll:
            record("mergeAll()")
            set.mergeAll()
            model.mergeAll()
            guaranteedMerged = true

        case .mergeRange:
            var r = randomRange()
            if rng.chance(1, 10) {
                r.end = r.start
            }
            record("mergeRange(\(r))")
            set.mergeRange(r)
            model.mergeRange(r)

        case .mergeAdjacent:
            let r = randomRange()
            record("mergeAdjacent(\(r))")
            set.mergeAdjacent(r)
            model.mergeAdjacent(r)

        case .applyContiguous:
            var r = randomRange()
            if rng.chance(1, 20) {
                r.end = r.start
            }
            let salt = rng.next()
            record("applyContiguous(\(r), salt \(hex(salt)))")
            var seen: [FileRange] = []
            let gap = set.applyContiguous(r) { range, value in
                seen.append(range)
                value = F.changed(value, salt: salt &+ UInt64(seen.count))
            }
            var expectedSeen: [FileRange] = []
            let j = model.applyContiguous(r) { range, value in
                expectedSeen.append(range)
                value = F.changed(value, salt: salt &+ UInt64(expectedSeen.count))
            }
            noteResult("\(seen.count) segments, gap \(gap.map { "\(set.range(of: $0))" } ?? "nil")")
            try checker.expect(
                seen == expectedSeen, "applyContiguous passed ranges \(seen), model \(expectedSeen)")
            try expectReturnedGap(gap, j, "applyContiguous result")

        case .setValue:
            guard let i = randomSegment() else {
                return try perform(.add)
            }
            let other = rng.index(model.count)
            let salt = rng.next()
            record("subscript[segment \(i) \(model.range(i))] = changed(salt \(hex(salt)))")
            let seg = try checker.segment(i)
            let otherSeg = try checker.segment(other)
            let got = set[seg]
            try checker.expect(F.same(got, model.segments[i].value), "subscript get differs from the model")
            set[seg] = F.changed(got, salt: salt)
            model.segments[i].value = F.changed(model.segments[i].value, salt: salt)
            // Changing a value keeps every position valid.
            try checker.expectSegment(seg, i, "segment after setting its value")
            try checker.expectSegment(otherSeg, other, "another segment's position after setting a value")

        case .setRange, .setStart, .setEnd, .setRangeUnchecked:
            guard let i = randomSegment() else {
                return try perform(.add)
            }
            let s = model.range(i)
            let lower = model.gap(i).start
            let upper = model.gap(i + 1).end
            var r = s
            switch op {
            case .setStart:
                r.start = randomKey(between: lower, s.end - 1)
            case .setEnd:
                r.end = randomKey(between: s.start + 1, upper)
            default:
                r.start = randomKey(between: lower, upper - 1)
                r.end = randomKey(between: r.start + 1, upper)
            }
            let other = rng.index(model.count)
            record("\(op)(segment \(i) \(s), to: \(r))")
            let seg = try checker.segment(i)
            let otherSeg = try checker.segment(other)
            switch op {
            case .setStart: set.setStart(of: seg, to: r.start)
            case .setEnd: set.setEnd(of: seg, to: r.end)
            case .setRange: set.setRange(of: seg, to: r)
            default: set.setRangeUnchecked(of: seg, to: r)
            }
            model.segments[i].range = r
            // Changing a range keeps every position valid.
            try checker.expectSegment(seg, i, "segment after \(op)")
            try checker.expectSegment(otherSeg, other, "another segment's position after \(op)")

        case .reimport, .importModel:
            record("\(op)")
            let slices = op == .reimport ? set.exportSortedSlices() : model.slices()
            if op == .reimport {
                let expected = model.slices()
                try checker.expect(
                    slices.starts == expected.starts && slices.ends == expected.ends
                        && zip(slices.values, expected.values).allSatisfy { F.same($0, $1) }
                        && slices.values.count == expected.values.count,
                    "exportSortedSlices differs from the model")
            }
            do {
                set = try SegmentSet(importing: slices)
            } catch {
                throw SegmentModelMismatch(description: "importing \(slices.count) valid segments threw \(error)")
            }
        }
    }

    // MARK: Verifying

    func verifyAfterMutation() throws(SegmentModelMismatch) {
        if guaranteedMerged && !model.isMaximallyMerged {
            throw SegmentModelMismatch(description: "test bug: the model should be maximally merged but is not")
        }
        let c = checker
        try c.checkInvariants(requireMaximallyMerged: F.neverMerges || guaranteedMerged)
        try c.expectContents()

        let height = set.treeHeight
        if height > maxHeight {
            maxHeight = height
        }
        maxCount = max(maxCount, model.count)
        if plan.growAndShrink {
            if growing && model.count >= plan.targetCount {
                growing = false
            } else if !growing && model.count <= 8 {
                growing = true
            }
        }
    }

    var lastHeight = 1

    func verifyQueries() throws(SegmentModelMismatch) {
        let height = set.treeHeight
        if height > lastHeight {
            heightRises += 1
        } else if height < lastHeight {
            heightDrops += 1
        }
        lastHeight = height

        let c = checker
        for _ in 0..<3 {
            try c.expectPointQueries(randomQueryKey())
        }
        if model.count > 0 {
            try c.expectSegmentNavigation(rng.index(model.count))
        }
        try c.expectGapNavigation(rng.index(model.gapCount), way: rng.index(4))

        let r = randomRange()
        try c.expect(set.isEmptyRange(r) == model.isEmptyRange(r), "isEmptyRange(\(r)) is \(set.isEmptyRange(r))")
        try c.expect(set.spanRange(r) == model.spanRange(r), "spanRange(\(r)) is \(set.spanRange(r)), model \(model.spanRange(r))")
        let k = randomKey()
        let empty = FileRange(start: k, end: k)
        try c.expect(set.isEmptyRange(empty), "isEmptyRange(\(empty)) is false")
        try c.expect(set.spanRange(empty) == 0, "spanRange(\(empty)) is not 0")

        let full = model.count <= plan.fullCheckLimit || step % plan.fullCheckEvery == 0
        if F.tracksGaps {
            let starts = [0, model.gapCount - 1, rng.index(model.gapCount)]
            try c.expectLargeEnoughGaps(minSizes: c.interestingMinSizes(&rng), from: full ? nil : starts)
        }
        if full {
            try c.expectFullWalk()
            for i in 0..<model.count {
                try c.expectSegmentNavigation(i)
            }
            for j in 0..<model.gapCount {
                try c.expectGapNavigation(j, way: j &+ step)
            }
        }
    }

    var summary: String {
        let ops = SegmentModelOp.allCases.map { "\($0): \(opCounts[$0, default: 0])" }.joined(separator: ", ")
        return """
            '\(plan.name)': \(step) steps, largest set \(maxCount) segments, tallest tree \(maxHeight) levels \
            (\(heightRises) rises, \(heightDrops) drops); \(ops)
            """
    }
}

final class SegmentSetModelTests: XCTestCase {
    /// The share of `PGALLOC_TEST_OPS` each run gets, out of 100.
    static func ops(percent: Int) -> Int {
        max(1, SegmentTestEnvironment.totalOps * percent / 100)
    }

    @discardableResult
    func runModel<F: SegmentModelFunctions>(_: F.Type, _ plan: SegmentModelRunPlan, file: StaticString = #filePath, line: UInt = #line)
        -> SegmentModelRun<F>
    {
        let seed = SegmentTestEnvironment.seed
        print("SegmentSet model seed: \(seed)")
        let run = SegmentModelRun<F>(plan: plan, seed: seed)
        do {
            try run.run()
        } catch {
            XCTFail(error.description, file: file, line: line)
        }
        print(run.summary)
        // Every operation must have been drawn, or the run proves nothing
        // about it.
        if plan.ops >= 5000 {
            for op in SegmentModelOp.allCases where run.opCounts[op, default: 0] == 0 && op != .removeAll {
                XCTFail("'\(plan.name)' never ran \(op) (seed \(seed))", file: file, line: line)
            }
        }
        return run
    }

    /// Int values merging when equal, keys crowded at both ends of the
    /// 64-bit space: touching, merging and overlapping all the time.
    func testEqualIntValuesInCrowdedWindows() {
        runModel(
            EqualIntFunctions.self,
            SegmentModelRunPlan(
                name: "equal-int", ops: Self.ops(percent: 20), targetCount: 30, window: 64, highWindow: true,
                maxLength: 8))
    }

    /// Values that never merge, with offsets that splitting must carry.
    func testNeverMergingValues() {
        runModel(
            NeverMergeFunctions.self,
            SegmentModelRunPlan(
                name: "never-merge", ops: Self.ops(percent: 16), targetCount: 40, window: 256, highWindow: true,
                maxLength: 16))
    }

    /// The library's own range set: Void values that always merge.
    func testRangeSetFunctions() {
        runModel(
            RangeSetFunctions.self,
            SegmentModelRunPlan(
                name: "range-set", ops: Self.ops(percent: 14), targetCount: 16, window: 64, highWindow: true,
                maxLength: 6))
    }

    /// File offsets that merge when the second continues the first.
    func testOffsetValues() {
        runModel(
            OffsetFunctions.self,
            SegmentModelRunPlan(
                name: "offset", ops: Self.ops(percent: 12), targetCount: 30, window: 128, highWindow: true,
                maxLength: 8))
    }

    /// A key space of [0x1000, 0x3000): keys anywhere in it.
    func testCustomKeySpace() {
        runModel(
            WindowIntFunctions.self,
            SegmentModelRunPlan(
                name: "custom-key-space", ops: Self.ops(percent: 12), targetCount: 60, window: 0x2000,
                highWindow: false, maxLength: 96))
    }

    /// A set that does not track gaps, over [16, UInt64.max).
    func testUntrackedGaps() {
        runModel(
            UntrackedIntFunctions.self,
            SegmentModelRunPlan(
                name: "untracked", ops: Self.ops(percent: 5), targetCount: 30, window: 64, highWindow: true,
                maxLength: 8))
    }

    /// The library's range set without gap tracking.
    func testUntrackedRangeSetFunctions() {
        runModel(
            UntrackedRangeSetFunctions.self,
            SegmentModelRunPlan(
                name: "untracked-range-set", ops: Self.ops(percent: 5), targetCount: 16, window: 64,
                highWindow: true, maxLength: 6))
    }

    /// Thousands of segments: the tree grows to several levels, the root
    /// splits, and shrinking collapses it again.
    func testLargeSetGrowsAndShrinks() {
        let plan = SegmentModelRunPlan(
            name: "large", ops: Self.ops(percent: 14), targetCount: 2000, window: 1 << 26, highWindow: false,
            maxLength: 64, growAndShrink: true, wideRangeOneIn: 500, fullCheckEvery: 500, copyCheckEvery: 200)
        let run = runModel(EqualIntFunctions.self, plan)
        if SegmentTestEnvironment.totalOps >= SegmentTestEnvironment.defaultOps {
            XCTAssertGreaterThanOrEqual(run.maxHeight, 3, "the tree never reached 3 levels: \(run.summary)")
            XCTAssertGreaterThan(run.heightDrops, 0, "the root never collapsed: \(run.summary)")
        }
    }
}
