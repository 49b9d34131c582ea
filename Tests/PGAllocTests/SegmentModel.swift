// The naive model every SegmentSet test compares the tree against: the
// segments in a sorted array, queried by binary and linear search. Its
// mutations are in SegmentModel+Mutation.swift.

import XCTest

@testable import PGAlloc

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
