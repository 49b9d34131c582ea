import PGAlloc

/// Appends `range` to `runs`, joining it to the last run if they touch.
@inline(__always)
func append(_ range: FileRange, to runs: inout [FileRange]) {
    if let last = runs.last, last.end == range.start {
        runs[runs.count - 1].end = range.end
    } else {
        runs.append(range)
    }
}

/// Walks the saved segments alongside runs in address order, to add each
/// run's bytes to the kind of the segments it lies in. Save and restore
/// both count stored bytes per kind this way, and must agree.
struct KindCursor {
    let segments: [SegmentRecord]
    var index = 0

    init(segments: [SegmentRecord]) {
        self.segments = segments
    }

    /// Adds the bytes of `run` per kind to `stats`; returns false if part of
    /// the run lies outside every segment or in one without references.
    @discardableResult
    mutating func account(_ run: FileRange, into stats: inout MemoryStats) -> Bool {
        var at = run.start
        while at < run.end {
            while index < segments.count && segments[index].range.end <= at {
                index += 1
            }
            guard index < segments.count, segments[index].range.start <= at, segments[index].refs > 0 else {
                return false
            }
            let end = min(run.end, segments[index].range.end)
            stats[segments[index].kind] += end - at
            at = end
        }
        return true
    }
}
