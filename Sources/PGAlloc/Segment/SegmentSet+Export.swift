/// The segments of a set as parallel arrays in ascending key order: the
/// form a checkpoint stores.
public struct SegmentDataSlices<Value> {
    public var starts: [UInt64]
    public var ends: [UInt64]
    public var values: [Value]

    public init(starts: [UInt64] = [], ends: [UInt64] = [], values: [Value] = []) {
        self.starts = starts
        self.ends = ends
        self.values = values
    }

    public var count: Int { starts.count }
}

extension SegmentDataSlices: Equatable where Value: Equatable {}
extension SegmentDataSlices: Sendable where Value: Sendable {}

/// Why `SegmentSet(importing:)` refused its input.
public enum SegmentImportError: Error, Equatable, CustomStringConvertible {
    /// The three arrays have different lengths.
    case mismatchedCounts(starts: Int, ends: Int, values: Int)
    /// Segment `index` is empty or has `end < start`.
    case emptyRange(index: Int, start: UInt64, end: UInt64)
    /// Segment `index` reaches outside the set's key space.
    case outsideKeySpace(index: Int, start: UInt64, end: UInt64)
    /// Segment `index` starts before segment `index - 1` ends.
    case unsortedOrOverlapping(index: Int, start: UInt64, previousEnd: UInt64)

    public var description: String {
        switch self {
        case let .mismatchedCounts(s, e, v):
            return "segment arrays differ in length: \(s) starts, \(e) ends, \(v) values"
        case let .emptyRange(i, s, e):
            return "segment \(i) [0x\(String(s, radix: 16)), 0x\(String(e, radix: 16))) is empty or inverted"
        case let .outsideKeySpace(i, s, e):
            return "segment \(i) [0x\(String(s, radix: 16)), 0x\(String(e, radix: 16))) is outside the key space"
        case let .unsortedOrOverlapping(i, s, p):
            return "segment \(i) starts at 0x\(String(s, radix: 16)), before the previous one ends at 0x\(String(p, radix: 16))"
        }
    }
}

extension SegmentSet {
    /// Every segment, in ascending order.
    public func exportSortedSlices() -> SegmentDataSlices<Value> {
        var out = SegmentDataSlices<Value>()
        var s = storage.lowerBoundSegment(Functions.minKey)
        while s.ok {
            let r = storage.key(s.n, s.i)
            out.starts.append(r.start)
            out.ends.append(r.end)
            out.values.append(storage.value(s.n, s.i))
            s = storage.nextSegment(ofSegment: s)
        }
        return out
    }

    /// A set holding exactly the given segments, not merged.
    ///
    /// The input may come from a file, so it is checked rather than
    /// trusted: every range non-empty and inside the key space, in ascending
    /// order, none overlapping.
    public init(importing slices: SegmentDataSlices<Value>) throws(SegmentImportError) {
        self.init()
        let n = slices.starts.count
        guard slices.ends.count == n, slices.values.count == n else {
            throw .mismatchedCounts(starts: n, ends: slices.ends.count, values: slices.values.count)
        }
        var previousEnd = Functions.minKey
        var gap = storage.firstGap()
        for i in 0..<n {
            let r = FileRange(start: slices.starts[i], end: slices.ends[i])
            guard r.start < r.end else {
                throw .emptyRange(index: i, start: r.start, end: r.end)
            }
            guard r.start >= Functions.minKey, r.end <= Functions.maxKey else {
                throw .outsideKeySpace(index: i, start: r.start, end: r.end)
            }
            guard i == 0 || r.start >= previousEnd else {
                throw .unsortedOrOverlapping(index: i, start: r.start, previousEnd: previousEnd)
            }
            previousEnd = r.end
            let seg = storage.insertWithoutMergingUnchecked(gap, r, slices.values[i])
            gap = storage.nextGap(ofSegment: seg)
        }
    }

    /// Every segment with its value, in ascending order.
    public var segments: [(range: FileRange, value: Value)] {
        var out: [(range: FileRange, value: Value)] = []
        forEachSegment { out.append(($0, $1)) }
        return out
    }

    /// Calls `body` on every segment and its value, in ascending order,
    /// without building an array of them (a set can hold millions).
    ///
    /// - Precondition: `body` does not change the set.
    public func forEachSegment(_ body: (FileRange, Value) throws -> Void) rethrows {
        var s = storage.lowerBoundSegment(Functions.minKey)
        while s.ok {
            try body(storage.key(s.n, s.i), storage.value(s.n, s.i))
            s = storage.nextSegment(ofSegment: s)
        }
    }
}
