import PGAlloc

/// A checkpoint's references grouped by the frame that stores their pages:
/// for each frame of each link, which of its pages go where. A restore
/// decompresses each such frame once.
struct ReferencePlan: Sendable {
    /// Pages of a frame's memory (`source`) and where the first goes.
    struct Piece: Sendable {
        var source: FileRange
        var destination: UInt64

        var destinationRange: FileRange { FileRange(start: destination, end: destination + source.length) }
    }

    /// A frame of a link and the pieces taken from it, by source address.
    struct Unit: Sendable {
        var link: Int
        var frame: Int
        var pieces: [Piece]
    }

    /// By link, then frame.
    private(set) var units: [Unit] = []

    /// Groups `references` by the frames holding their sources: `index(l)`
    /// gives link `l`'s index. A source outside every frame is an error of
    /// the checkpoint holding the references.
    init(references: [PageReference], index: (Int) -> [IndexEntry]) throws {
        var byLink: [Int: [Piece]] = [:]
        for r in references {
            byLink[r.link, default: []].append(Piece(source: r.sourceRange, destination: r.destination.start))
        }
        for link in byLink.keys.sorted() {
            let entries = index(link)
            // A piece may span frames: each part goes to its frame.
            var byFrame: [Int: [Piece]] = [:]
            for piece in byLink[link]! {
                var source = piece.source
                var destination = piece.destination
                while !source.isEmpty {
                    guard let f = Self.frame(holding: source.start, in: entries) else {
                        throw CheckpointError.field(
                            .section(.references), 0, "references", expected: "pages stored by link \(link)",
                            found: "page \(hex(source.start)), outside its frames")
                    }
                    let end = min(source.end, entries[f].endAddress)
                    byFrame[f, default: []].append(Piece(source: FileRange(start: source.start, end: end), destination: destination))
                    destination += end - source.start
                    source.start = end
                }
            }
            for f in byFrame.keys.sorted() {
                units.append(Unit(link: link, frame: f, pieces: byFrame[f]!.sorted { $0.source.start < $1.source.start }))
            }
        }
    }

    /// The frame whose span holds `address`.
    static func frame(holding address: UInt64, in entries: [IndexEntry]) -> Int? {
        var lo = 0
        var hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].firstAddress <= address { lo = mid + 1 } else { hi = mid }
        }
        let f = lo - 1
        return f >= 0 && address < entries[f].endAddress ? f : nil
    }
}

/// Writes the pieces of a decompressed frame to their destinations: each
/// source page must be one of the frame's stored pages.
final class PlacementSink: FrameSink, @unchecked Sendable {
    let target: LoadTarget
    private let pieces: [Int: [ReferencePlan.Piece]]
    /// Only the destination pages inside these ranges are written (a lazy
    /// restore's still-wanted pages); nil for all.
    private let wanted: [FileRange]?
    private let written = StateLock<UInt64>(0)

    init(target: LoadTarget, pieces: [Int: [ReferencePlan.Piece]], wanted: [FileRange]? = nil) {
        self.target = target
        self.pieces = pieces
        self.wanted = wanted
    }

    var bytesWritten: UInt64 { written.withLock { $0 } }

    func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws {}

    func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws {
        var total: UInt64 = 0
        for piece in pieces[Int(frame.sequence)] ?? [] {
            // Where the piece's pages are in the data: the runs before it
            // are packed end to end.
            var off: UInt64 = 0
            var found = false
            for run in frame.runs {
                if run.isSuperset(of: piece.source) {
                    off += piece.source.start - run.start
                    found = true
                    break
                }
                off += run.length
            }
            guard found else {
                throw CheckpointError.field(
                    .frame(frame.sequence), 0, "runs", expected: "the referenced pages \(piece.source)", found: "other pages")
            }
            let destination = piece.destinationRange
            for part in wanted.map({ overlaps(of: destination, in: $0) }) ?? [destination] {
                let at = Int(off + (part.start - destination.start))
                try target.write(UnsafeRawBufferPointer(rebasing: data[at..<at + Int(part.length)]), at: part.start)
                total += part.length
            }
        }
        written.withLock { $0 += total }
    }

    /// The parts of `range` inside `ranges` (sorted, disjoint).
    private func overlaps(of range: FileRange, in ranges: [FileRange]) -> [FileRange] {
        var lo = 0
        var hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].end <= range.start { lo = mid + 1 } else { hi = mid }
        }
        var out: [FileRange] = []
        while lo < ranges.count && ranges[lo].start < range.end {
            out.append(ranges[lo].intersection(range))
            lo += 1
        }
        return out
    }
}
