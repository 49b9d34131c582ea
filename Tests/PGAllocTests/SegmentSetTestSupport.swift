// Shared pieces of the SegmentSet tests: a seeded PRNG, the set instances
// under test, and a naive model of a segment set (a sorted array of
// segments) that every test compares the tree against.

import Foundation
import XCTest

@testable import PGAlloc
import Workloads

// MARK: - Random numbers

/// splitmix64: tiny, and the same sequence on every platform and toolchain,
/// so a printed seed replays a run exactly. The helpers below avoid the
/// standard library's `random(in:using:)`, whose algorithm is not promised
/// to stay fixed.
struct SegmentTestRandom {
    private var generator: SplitMix64

    init(seed: UInt64) {
        generator = SplitMix64(seed: seed)
    }

    mutating func next() -> UInt64 {
        generator.next()
    }

    /// A number in `[0, bound)`; `bound` must be positive.
    mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        return next().multipliedFullWidth(by: bound).high
    }

    /// An index in `[0, count)`.
    mutating func index(_ count: Int) -> Int {
        Int(below(UInt64(count)))
    }

    /// A number in `[lower, upper]`.
    mutating func inClosedRange(_ lower: UInt64, _ upper: UInt64) -> UInt64 {
        precondition(lower <= upper)
        let width = upper - lower
        return width == .max ? next() : lower + below(width + 1)
    }

    /// True with probability `numerator / denominator`.
    mutating func chance(_ numerator: UInt64, _ denominator: UInt64) -> Bool {
        below(denominator) < numerator
    }
}

// MARK: - Environment

/// Knobs read from the environment, so a failing run can be replayed
/// (`PGALLOC_TEST_SEED`) or a longer soak run (`PGALLOC_TEST_OPS`).
enum SegmentTestEnvironment {
    /// The seed of the randomized tests: `PGALLOC_TEST_SEED` (decimal or
    /// 0x-prefixed hex) if set, else a fixed default so CI is repeatable.
    static var seed: UInt64 {
        guard let text = ProcessInfo.processInfo.environment["PGALLOC_TEST_SEED"] else {
            return 0x5E6_5E75
        }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let parsed = trimmed.hasPrefix("0x") ? UInt64(trimmed.dropFirst(2), radix: 16) : UInt64(trimmed)
        guard let parsed else {
            fatalError("PGALLOC_TEST_SEED=\(text) is not a decimal or 0x-prefixed hex UInt64")
        }
        return parsed
    }

    /// The total number of random operations the model tests share out:
    /// `PGALLOC_TEST_OPS` if set, else `defaultOps`.
    static var totalOps: Int {
        guard let text = ProcessInfo.processInfo.environment["PGALLOC_TEST_OPS"] else {
            return defaultOps
        }
        guard let parsed = Int(text), parsed > 0 else {
            fatalError("PGALLOC_TEST_OPS=\(text) is not a positive integer")
        }
        return parsed
    }

    static let defaultOps = 120_000

    /// Whether to print every operation as it runs (`PGALLOC_TEST_TRACE=1`):
    /// the way to see what led up to a precondition trap, which kills the
    /// process before any assertion message can be printed.
    static var trace: Bool {
        ProcessInfo.processInfo.environment["PGALLOC_TEST_TRACE"] == "1"
    }
}

// MARK: - Set instances under test

/// What the model tests need from a set instance besides the set's own
/// functions: value comparison and random values.
protocol SegmentModelFunctions: SegmentSetFunctions {
    static func same(_ a: Value, _ b: Value) -> Bool
    /// A random value for a new segment at `range`.
    static func randomValue(for range: FileRange, _ rng: inout SegmentTestRandom) -> Value
    /// A value derived from `value`, for `applyContiguous` and the subscript.
    static func changed(_ value: Value, salt: UInt64) -> Value
    static func describe(_ value: Value) -> String
    /// Whether two values can never merge, so every state is maximally merged.
    static var neverMerges: Bool { get }
}

extension SegmentModelFunctions {
    static var neverMerges: Bool { false }
}

/// Int values that merge when equal, drawn from a tiny set so that merges
/// are frequent: the policy of several instances that differ only in their
/// key space or gap tracking.
protocol EqualIntPolicy: SegmentModelFunctions where Value == Int {}

extension EqualIntPolicy {
    static func merge(_: FileRange, _ v1: Int, _: FileRange, _ v2: Int) -> Int? { v1 == v2 ? v1 : nil }
    static func split(_: FileRange, _ value: Int, at _: UInt64) -> (Int, Int) { (value, value) }

    static func same(_ a: Int, _ b: Int) -> Bool { a == b }
    static func randomValue(for _: FileRange, _ rng: inout SegmentTestRandom) -> Int { Int(rng.below(3)) }
    static func changed(_ value: Int, salt: UInt64) -> Int { Int(salt % 3) }
    static func describe(_ value: Int) -> String { "\(value)" }
}

/// Equal Int values merge, over the full 64-bit key space.
enum EqualIntFunctions: EqualIntPolicy {
    typealias Value = Int
}

/// A value with a tag and the file offset of the segment's first key; two
/// such values never merge. Splitting carries the offset across, so a wrong
/// split key or range shows up as a wrong offset. Its stride (16) differs
/// from the other values', which exercises the value moves.
struct TaggedOffset: Equatable, BitwiseCopyable, CustomStringConvertible {
    var tag: UInt32
    var offset: UInt64

    var description: String { "#\(tag)@0x\(String(offset, radix: 16))" }
}

enum NeverMergeFunctions: SegmentModelFunctions {
    typealias Value = TaggedOffset

    static func merge(_: FileRange, _: TaggedOffset, _: FileRange, _: TaggedOffset) -> TaggedOffset? { nil }
    static func split(_ range: FileRange, _ value: TaggedOffset, at key: UInt64) -> (TaggedOffset, TaggedOffset) {
        (value, TaggedOffset(tag: value.tag, offset: value.offset &+ (key - range.start)))
    }

    static var neverMerges: Bool { true }
    static func same(_ a: TaggedOffset, _ b: TaggedOffset) -> Bool { a == b }
    static func randomValue(for _: FileRange, _ rng: inout SegmentTestRandom) -> TaggedOffset {
        TaggedOffset(tag: UInt32(truncatingIfNeeded: rng.below(1000)), offset: rng.next())
    }
    static func changed(_ value: TaggedOffset, salt: UInt64) -> TaggedOffset {
        TaggedOffset(tag: UInt32(truncatingIfNeeded: salt), offset: value.offset)
    }
    static func describe(_ value: TaggedOffset) -> String { value.description }
}

/// gVisor's file-offset rule: a value is the offset of the segment's first
/// key, and neighbours merge when the second continues the first. The merge
/// therefore depends on the ranges passed to it, not just the values.
enum OffsetFunctions: SegmentModelFunctions {
    typealias Value = UInt64

    static func merge(_ r1: FileRange, _ v1: UInt64, _: FileRange, _ v2: UInt64) -> UInt64? {
        v1 &+ (r1.end - r1.start) == v2 ? v1 : nil
    }
    static func split(_ range: FileRange, _ value: UInt64, at key: UInt64) -> (UInt64, UInt64) {
        (value, value &+ (key - range.start))
    }

    static func same(_ a: UInt64, _ b: UInt64) -> Bool { a == b }
    /// Mostly the identity mapping (so touching segments continue each
    /// other), sometimes shifted by one key.
    static func randomValue(for range: FileRange, _ rng: inout SegmentTestRandom) -> UInt64 {
        range.start &+ (rng.chance(3, 4) ? 0 : 1)
    }
    static func changed(_ value: UInt64, salt: UInt64) -> UInt64 { value &+ salt % 2 }
    static func describe(_ value: UInt64) -> String { "@0x\(String(value, radix: 16))" }
}

extension RangeSetFunctions: SegmentModelFunctions {
    static func same(_: Void, _: Void) -> Bool { true }
    static func randomValue(for _: FileRange, _: inout SegmentTestRandom) {}
    static func changed(_: Void, salt _: UInt64) {}
    static func describe(_: Void) -> String { "()" }
}

extension UntrackedRangeSetFunctions: SegmentModelFunctions {
    static func same(_: Void, _: Void) -> Bool { true }
    static func randomValue(for _: FileRange, _: inout SegmentTestRandom) {}
    static func changed(_: Void, salt _: UInt64) {}
    static func describe(_: Void) -> String { "()" }
}

/// A key space that is not the default: `[0x1000, 0x3000)`.
enum WindowIntFunctions: EqualIntPolicy {
    typealias Value = Int

    static var minKey: UInt64 { 0x1000 }
    static var maxKey: UInt64 { 0x3000 }
}

/// A set that does not track gaps (so the large-enough-gap searches are
/// off limits), over a shifted key space `[16, UInt64.max)`.
enum UntrackedIntFunctions: EqualIntPolicy {
    typealias Value = Int

    static var minKey: UInt64 { 16 }
    static var tracksGaps: Bool { false }
}

/// Sixteen pages `[0, 16)` as the whole key space, Int values that merge
/// when equal: the exhaustive tests' instance.
enum SixteenPageFunctions: EqualIntPolicy {
    typealias Value = Int

    static var maxKey: UInt64 { 16 }
}

/// Sixteen pages `[0, 16)` of plain ranges.
enum SixteenPageRangeFunctions: SegmentModelFunctions {
    typealias Value = Void

    static var maxKey: UInt64 { 16 }

    static func merge(_: FileRange, _: Void, _: FileRange, _: Void) -> Void? { () }
    static func split(_: FileRange, _: Void, at _: UInt64) -> (Void, Void) { ((), ()) }

    static func same(_: Void, _: Void) -> Bool { true }
    static func randomValue(for _: FileRange, _: inout SegmentTestRandom) {}
    static func changed(_: Void, salt _: UInt64) {}
    static func describe(_: Void) -> String { "()" }
}

// MARK: - The model

struct SegmentModelEntry<Value> {
    var range: FileRange
    var value: Value
}

/// A segment set as a sorted array of non-overlapping segments, with every
/// operation done the obvious way. Gap `j` is the gap before segment `j`;
/// there are `count + 1` gaps, some possibly empty, as in the tree.
///
/// Keys and lengths are plain `UInt64`, so the model covers the whole key
/// space, including a gap of length `UInt64.max`.
struct SegmentModel<F: SegmentModelFunctions> {
    typealias Value = F.Value

    var segments: [SegmentModelEntry<Value>] = []

    init() {}

    init(_ segments: [SegmentModelEntry<Value>]) {
        self.segments = segments
    }

    var count: Int { segments.count }
    var gapCount: Int { segments.count + 1 }

    func range(_ i: Int) -> FileRange { segments[i].range }

    /// Gap `j`: from the end of segment `j - 1` (or `minKey`) to the start
    /// of segment `j` (or `maxKey`).
    func gap(_ j: Int) -> FileRange {
        let start = j == 0 ? F.minKey : segments[j - 1].range.end
        let end = j == segments.count ? F.maxKey : segments[j].range.start
        return FileRange(start: start, end: end)
    }

    func gapLength(_ j: Int) -> UInt64 {
        let g = gap(j)
        return g.end - g.start
    }

    /// The index of the first segment that ends after `key` (`count` if none).
    func lowerBound(_ key: UInt64) -> Int {
        var lower = 0
        var upper = segments.count
        while lower < upper {
            let mid = (lower + upper) / 2
            if segments[mid].range.end <= key {
                lower = mid + 1
            } else {
                upper = mid
            }
        }
        return lower
    }

    func segmentIndex(containing key: UInt64) -> Int? {
        let i = lowerBound(key)
        return i < segments.count && segments[i].range.start <= key ? i : nil
    }

    /// The gap holding `key`, which must lie in `[minKey, maxKey)`.
    func gapIndex(containing key: UInt64) -> Int? {
        segmentIndex(containing: key) == nil ? lowerBound(key) : nil
    }

    /// The first segment holding a key `>= key`.
    func lowerBoundSegment(_ key: UInt64) -> Int? {
        let i = lowerBound(key)
        return i < segments.count ? i : nil
    }

    /// The last segment holding a key `<= key`.
    func upperBoundSegment(_ key: UInt64) -> Int? {
        if let i = segmentIndex(containing: key) {
            return i
        }
        let i = lowerBound(key)
        return i > 0 ? i - 1 : nil
    }

    func lowerBoundGap(_ key: UInt64) -> Int {
        segmentIndex(containing: key).map { $0 + 1 } ?? lowerBound(key)
    }

    func upperBoundGap(_ key: UInt64) -> Int {
        segmentIndex(containing: key) ?? lowerBound(key)
    }

    var span: UInt64 {
        segments.reduce(0) { $0 + ($1.range.end - $1.range.start) }
    }

    func spanRange(_ r: FileRange) -> UInt64 {
        var total: UInt64 = 0
        for s in segments {
            let lo = max(s.range.start, r.start)
            let hi = min(s.range.end, r.end)
            if lo < hi {
                total += hi - lo
            }
        }
        return total
    }

    func isEmptyRange(_ r: FileRange) -> Bool {
        !segments.contains { max($0.range.start, r.start) < min($0.range.end, r.end) }
    }

    /// The gap that holds all of `r`, if one does (so that `r` can be added).
    func fitsGap(_ r: FileRange) -> Int? {
        guard let j = gapIndex(containing: r.start), r.end <= gap(j).end else {
            return nil
        }
        return j
    }

    func canMerge(_ i: Int) -> Bool {
        let a = segments[i]
        let b = segments[i + 1]
        return a.range.end == b.range.start && F.merge(a.range, a.value, b.range, b.value) != nil
    }

    var isMaximallyMerged: Bool {
        var i = 0
        while i + 1 < segments.count {
            if canMerge(i) {
                return false
            }
            i += 1
        }
        return true
    }

    // MARK: Gap searches, by linear scan

    /// The length of every gap, in order.
    func gapLengths() -> [UInt64] {
        var lengths: [UInt64] = []
        lengths.reserveCapacity(gapCount)
        var previousEnd = F.minKey
        for s in segments {
            lengths.append(s.range.start - previousEnd)
            previousEnd = s.range.end
        }
        lengths.append(F.maxKey - previousEnd)
        return lengths
    }

    /// The first gap from `from` on at least `minSize` long.
    static func firstLargeEnough(_ lengths: [UInt64], from: Int, minSize: UInt64) -> Int? {
        var j = from
        while j < lengths.count {
            if lengths[j] >= minSize {
                return j
            }
            j += 1
        }
        return nil
    }

    /// The last gap up to `through` at least `minSize` long.
    static func lastLargeEnough(_ lengths: [UInt64], through: Int, minSize: UInt64) -> Int? {
        var j = through
        while j >= 0 {
            if lengths[j] >= minSize {
                return j
            }
            j -= 1
        }
        return nil
    }

    /// For every gap, the next and previous gap at least `minSize` long: the
    /// same linear scans, done in one sweep each way.
    static func largeEnoughNeighbours(_ lengths: [UInt64], minSize: UInt64) -> (next: [Int?], previous: [Int?]) {
        let n = lengths.count
        var next = [Int?](repeating: nil, count: n)
        var previous = [Int?](repeating: nil, count: n)
        var seen: Int? = nil
        var j = n - 1
        while j >= 0 {
            next[j] = seen
            if lengths[j] >= minSize {
                seen = j
            }
            j -= 1
        }
        seen = nil
        j = 0
        while j < n {
            previous[j] = seen
            if lengths[j] >= minSize {
                seen = j
            }
            j += 1
        }
        return (next, previous)
    }

    // MARK: Mutations

    /// Inserts `r` into gap `j` (which must hold it), merging with the
    /// previous segment first and then the next, as the set does; returns
    /// the index of the segment holding `r`.
    @discardableResult
    mutating func insert(_ r: FileRange, _ value: Value, intoGap j: Int, merging: Bool) -> Int {
        if merging {
            if j > 0, segments[j - 1].range.end == r.start,
                let merged = F.merge(segments[j - 1].range, segments[j - 1].value, r, value)
            {
                segments[j - 1].range.end = r.end
                segments[j - 1].value = merged
                if j < segments.count, segments[j].range.start == r.end {
                    _ = mergePair(j - 1)
                }
                return j - 1
            }
            if j < segments.count, segments[j].range.start == r.end,
                let merged = F.merge(r, value, segments[j].range, segments[j].value)
            {
                segments[j].range.start = r.start
                segments[j].value = merged
                return j
            }
        }
        segments.insert(SegmentModelEntry(range: r, value: value), at: j)
        return j
    }

    /// Adds `r` if no segment overlaps it.
    mutating func add(_ r: FileRange, _ value: Value, merging: Bool) -> Bool {
        guard let j = fitsGap(r) else {
            return false
        }
        insert(r, value, intoGap: j, merging: merging)
        return true
    }

    /// Removes segment `i`; returns the gap left, which keeps index `i`.
    mutating func remove(at i: Int) -> Int {
        segments.remove(at: i)
        return i
    }

    /// Splits segment `i` at `key`, strictly inside it.
    mutating func split(_ i: Int, at key: UInt64) -> (Int, Int) {
        let s = segments[i]
        precondition(s.range.start < key && key < s.range.end, "model: bad split")
        let (v1, v2) = F.split(s.range, s.value, at: key)
        segments[i] = SegmentModelEntry(range: FileRange(start: s.range.start, end: key), value: v1)
        segments.insert(SegmentModelEntry(range: FileRange(start: key, end: s.range.end), value: v2), at: i + 1)
        return (i, i + 1)
    }

    /// Splits segment `i` at `r`'s bounds where they fall strictly inside it;
    /// returns the part inside `r`.
    mutating func isolate(_ i: Int, _ r: FileRange) -> Int {
        var i = i
        if segments[i].range.start < r.start && r.start < segments[i].range.end {
            i = split(i, at: r.start).1
        }
        if segments[i].range.start < r.end && r.end < segments[i].range.end {
            i = split(i, at: r.end).0
        }
        return i
    }

    /// Merges segments `i` and `i + 1` if they touch and merge.
    mutating func mergePair(_ i: Int) -> Int? {
        let a = segments[i]
        let b = segments[i + 1]
        guard a.range.end == b.range.start, let merged = F.merge(a.range, a.value, b.range, b.value) else {
            return nil
        }
        segments[i] = SegmentModelEntry(range: FileRange(start: a.range.start, end: b.range.end), value: merged)
        segments.remove(at: i + 1)
        return i
    }

    /// Merges from segment `i` rightwards, each result with its successor,
    /// while the successor starts before `limit`.
    private mutating func mergeRun(from i: Int, until limit: UInt64) {
        var i = i
        while i + 1 < segments.count && segments[i + 1].range.start < limit {
            if mergePair(i) == nil {
                i += 1
            }
        }
    }

    /// Merges segment `i` with its predecessor, then whatever holds it
    /// with its successor; returns the index of the segment holding it.
    mutating func mergeWithNeighbours(_ i: Int) -> Int {
        var i = i
        if i > 0, let merged = mergePair(i - 1) {
            i = merged
        }
        if i + 1 < segments.count {
            _ = mergePair(i)
        }
        return i
    }

    mutating func mergeAll() {
        mergeRun(from: 0, until: .max)
    }

    mutating func mergeRange(_ r: FileRange) {
        mergeRun(from: lowerBound(r.start), until: r.end)
    }

    mutating func mergeAdjacent(_ r: FileRange) {
        // An empty range has no first or last key: nothing to merge.
        guard !r.isEmpty else { return }
        if let first = segmentIndex(containing: r.start), first > 0 {
            _ = mergePair(first - 1)
        }
        if let last = segmentIndex(containing: r.end &- 1), last + 1 < segments.count {
            _ = mergePair(last)
        }
    }

    /// Removes every key of `r` from every segment; returns the gap that
    /// now holds `r.start`.
    mutating func removeRange(_ r: FileRange) -> Int {
        var kept: [SegmentModelEntry<Value>] = []
        for s in segments {
            guard s.range.start < r.end && r.start < s.range.end else {
                kept.append(s)
                continue
            }
            // Split the way the set does: at r.start, then the right part
            // at r.end.
            var rest = s
            if rest.range.start < r.start {
                let (v1, v2) = F.split(rest.range, rest.value, at: r.start)
                kept.append(SegmentModelEntry(range: FileRange(start: rest.range.start, end: r.start), value: v1))
                rest = SegmentModelEntry(range: FileRange(start: r.start, end: rest.range.end), value: v2)
            }
            if r.end < rest.range.end {
                let (_, v2) = F.split(rest.range, rest.value, at: r.end)
                kept.append(SegmentModelEntry(range: FileRange(start: r.end, end: rest.range.end), value: v2))
            }
        }
        segments = kept
        return gapIndex(containing: r.start)!
    }

    /// The contiguous run from `r.start`, each segment isolated to `r` and
    /// passed to `body`; returns the gap that stopped the run (or the gap
    /// holding `r.start`), nil if the run covered `r` (an empty `r` is
    /// covered by nothing and changes nothing).
    mutating func applyContiguous(_ r: FileRange, _ body: (FileRange, inout Value) -> Void) -> Int? {
        guard !r.isEmpty else { return nil }
        guard var i = segmentIndex(containing: r.start) else {
            return gapIndex(containing: r.start)
        }
        while true {
            i = isolate(i, r)
            body(segments[i].range, &segments[i].value)
            if segments[i].range.end >= r.end {
                return nil
            }
            if gapLength(i + 1) != 0 {
                return i + 1
            }
            if i + 1 == segments.count {
                return nil
            }
            i += 1
        }
    }

    func slices() -> SegmentDataSlices<Value> {
        SegmentDataSlices(
            starts: segments.map(\.range.start), ends: segments.map(\.range.end), values: segments.map(\.value))
    }

    var description: String {
        segments.isEmpty
            ? "(empty)"
            : segments.map { "\($0.range) => \(F.describe($0.value))" }.joined(separator: "\n")
    }
}

// MARK: - Comparing a set with the model

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

// MARK: - Tree shape

extension SegmentSet {
    /// Levels in the tree: 1 for a lone root. Reads the node storage.
    var treeHeight: Int {
        var n = 0
        var height = 1
        while storage.hasChildren(n) {
            n = storage.child(n, 0)
            height += 1
        }
        return height
    }

    /// Nodes in the tree.
    var liveNodeCount: Int { storage.liveNodes }
}

/// Builds a set holding exactly `model`'s segments, through import.
func makeSegmentSet<F: SegmentModelFunctions>(_ model: SegmentModel<F>, file: StaticString = #filePath, line: UInt = #line)
    -> SegmentSet<F>
{
    do {
        return try SegmentSet<F>(importing: model.slices())
    } catch {
        XCTFail("importing \(model.description) failed: \(error)", file: file, line: line)
        return SegmentSet<F>()
    }
}
