import PGAlloc
import Workloads

let pageSize: UInt64 = 4096

/// Where the segments of a benchmark set lie: `count` segments of 1 to 16
/// pages, separated by small gaps of at most 8 pages. The first segment
/// starts at 0 and the last one ends at the key space's end, so the set's
/// outer gaps are empty and no gap is `searchSize` long: the gap searches
/// only find the large gap that `SegmentSetFixture.openLargeGap()` makes.
struct SegmentLayout {
    /// What the gap searches ask for: more than any small gap.
    static let searchSize: UInt64 = 64 * pageSize

    /// The segments, ascending.
    var segments: [FileRange]
    /// A page strictly inside each small gap of 3 pages or more: adding it
    /// touches no segment, so it never merges.
    var freeSlots: [FileRange]

    /// - Parameters:
    ///   - touching: whether small gaps may be empty (neighbouring segments
    ///     touch); only for sets whose values keep them apart.
    init(count: Int, seed: UInt64, touching: Bool, maxKey: UInt64) {
        precondition(count >= 1000, "SegmentLayout: \(count) segments is too few")
        var rng = SplitMix64(seed: seed)
        segments = []
        segments.reserveCapacity(count)
        freeSlots = []
        var cursor: UInt64 = 0
        for i in 0..<count {
            if i > 0 {
                // The last gap is never empty: the segment after it is the
                // one that reaches maxKey.
                let smallest: UInt64 = touching && i < count - 1 ? 0 : 1
                let gap = (smallest + rng.next() % (9 - smallest)) * pageSize
                if gap >= 3 * pageSize {
                    freeSlots.append(FileRange(start: cursor + pageSize, end: cursor + 2 * pageSize))
                }
                cursor += gap
            }
            let end = i == count - 1 ? maxKey : cursor + (1 + rng.next() % 16) * pageSize
            segments.append(FileRange(start: cursor, end: end))
            cursor = end
        }
    }

    /// Where the last segment, which reaches maxKey, starts: random keys are
    /// drawn below it.
    var keySpan: UInt64 { segments[segments.count - 1].start }
}
