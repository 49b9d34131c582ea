import PGAlloc

/// A checkpoint's references grouped by the frame that stores their pages:
/// for each frame of each link, which of its pages go where. A restore
/// decompresses each such frame once.
///
/// The pieces are kept in `SpillArray`s (a checkpoint may hold a reference
/// per page): the units are slices of one array.
struct ReferencePlan: Sendable {
    /// Pages of a frame's memory (`source`) and where the first goes.
    struct Piece: Sendable, BitwiseCopyable {
        var source: FileRange
        var destination: UInt64

        var destinationRange: FileRange { FileRange(start: destination, end: destination + source.length) }
    }

    /// A frame of a link and the pieces taken from it, in the references'
    /// order (by destination).
    struct Unit: Sendable {
        var link: Int
        var frame: Int
        var pieces: Slice<SpillArray<Piece>>
    }

    /// A piece's destination and its unit.
    struct Destination: Sendable, BitwiseCopyable {
        var range: FileRange
        var unit: Int
    }

    /// By link, then frame.
    private(set) var units: [Unit] = []
    /// Every piece's destination and its unit, by destination (the
    /// references' own order); kept only with a `window` (a lazy restore
    /// looks pieces up by destination, an eager one never does).
    private(set) var destinations = SpillArray<Destination>()

    /// Groups `references` (by ascending destination, as `REFS` gives them)
    /// by the frames holding their sources: `index(l)` gives link `l`'s
    /// index. A source outside every frame is an error of the checkpoint
    /// holding the references. Linear in the references but for the frame
    /// lookups: a checkpoint may hold one reference per page.
    ///
    /// With a `window`, a frame's pieces are split further by the window
    /// of address space their destinations start in: a lazy restore
    /// waiting for a page then writes the pieces of one window, not every
    /// page the frame gives anywhere (one frame of distinct pages may give
    /// a copy to every page of the file).
    init<References: Sequence<PageReference>>(references: References, window: UInt64? = nil, index: (Int) -> [IndexEntry]) throws {
        // Each link's index, and the unit of each of its frames in the
        // current window (-1: none yet), by link number.
        var entriesOf: [[IndexEntry]?] = []
        var unitOf: [[Int]] = []
        // The slots set in the current window, to clear when it ends.
        var used: [(link: Int, frame: Int)] = []
        var found: [(link: Int, frame: Int, pieces: Int)] = []
        // Each piece with the unit (in the order found) it belongs to.
        var met = SpillArray<Destination>()
        var sources = SpillArray<FileRange>()
        var currentWindow: UInt64 = 0
        for r in references {
            if let window, r.destination.start / window != currentWindow {
                // Destinations ascend: the units met so far are complete.
                currentWindow = r.destination.start / window
                for u in used {
                    unitOf[u.link][u.frame] = -1
                }
                used.removeAll(keepingCapacity: true)
            }
            if r.link >= entriesOf.count {
                entriesOf += [[IndexEntry]?](repeating: nil, count: r.link + 1 - entriesOf.count)
                unitOf += [[Int]](repeating: [], count: r.link + 1 - unitOf.count)
            }
            if entriesOf[r.link] == nil {
                let entries = index(r.link)
                entriesOf[r.link] = entries
                unitOf[r.link] = [Int](repeating: -1, count: entries.count)
            }
            // A piece may span frames: each part goes to its frame.
            var source = r.sourceRange
            var destination = r.destination.start
            while !source.isEmpty {
                guard let f = entriesOf[r.link]!.frame(holding: source.start) else {
                    throw CheckpointError.field(
                        .section(.references), 0, "references", expected: "pages stored by link \(r.link)",
                        found: "page \(hex(source.start)), outside its frames")
                }
                let end = min(source.end, entriesOf[r.link]![f].endAddress)
                if unitOf[r.link][f] < 0 {
                    unitOf[r.link][f] = found.count
                    used.append((r.link, f))
                    found.append((r.link, f, 0))
                }
                let unit = unitOf[r.link][f]
                let part = FileRange(start: source.start, end: end)
                met.append(Destination(range: FileRange(start: destination, end: destination + part.length), unit: unit))
                sources.append(part)
                found[unit].pieces += 1
                destination += part.length
                source.start = end
            }
        }
        // Units by link, then frame; their pieces laid out in that order
        // (a counting sort, which keeps each unit's in the order met).
        let order = found.indices.sorted { (found[$0].link, found[$0].frame) < (found[$1].link, found[$1].frame) }
        var renumbered = [Int](repeating: 0, count: found.count)
        var firstPiece = [Int](repeating: 0, count: found.count + 1)
        for (new, old) in order.enumerated() {
            renumbered[old] = new
            firstPiece[new + 1] = firstPiece[new] + found[old].pieces
        }
        var next = firstPiece
        var pieces = SpillArray<Piece>(repeating: Piece(source: FileRange(start: 0, end: 0), destination: 0), count: met.count)
        for i in met.indices {
            let unit = renumbered[met[i].unit]
            pieces[next[unit]] = Piece(source: sources[i], destination: met[i].range.start)
            next[unit] += 1
            if window != nil {
                met[i].unit = unit
            }
        }
        units = order.enumerated().map { new, old in
            Unit(link: found[old].link, frame: found[old].frame, pieces: pieces[firstPiece[new]..<firstPiece[new + 1]])
        }
        if window != nil {
            destinations = met
        }
    }
}

/// Writes the pieces of a decompressed frame to their destinations: each
/// source page must be one of the frame's stored pages.
final class PlacementSink: FrameSink, @unchecked Sendable {
    let target: LoadTarget
    private let pieces: [Int: Slice<SpillArray<ReferencePlan.Piece>>]
    /// Only the destination pages inside these ranges are written (a lazy
    /// restore's still-wanted pages); nil for all.
    private let wanted: [FileRange]?
    private let written = StateLock<UInt64>(0)

    init(target: LoadTarget, pieces: [Int: Slice<SpillArray<ReferencePlan.Piece>>], wanted: [FileRange]? = nil) {
        self.target = target
        self.pieces = pieces
        self.wanted = wanted
    }

    var bytesWritten: UInt64 { written.withLock { $0 } }

    func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws {}

    func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws {
        guard let pieces = pieces[Int(frame.sequence)], !pieces.isEmpty else { return }
        let stored = FrameData(frame, data)
        var total: UInt64 = 0
        for piece in pieces {
            let bytes = try stored.bytes(of: piece.source)
            let destination = piece.destinationRange
            for part in wanted.map({ overlaps(of: destination, in: $0) }) ?? [destination] {
                let at = Int(part.start - destination.start)
                try target.write(UnsafeRawBufferPointer(rebasing: bytes[at..<at + Int(part.length)]), at: part.start)
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

/// A decompressed frame's pages, found by address: its runs' pages are
/// packed end to end in the data.
struct FrameData {
    let frame: FrameHeader
    let data: UnsafeRawBufferPointer
    /// Where each run's pages begin in `data`.
    private let offsets: [Int]

    init(_ frame: FrameHeader, _ data: UnsafeRawBufferPointer) {
        self.frame = frame
        self.data = data
        var offsets: [Int] = []
        offsets.reserveCapacity(frame.runs.count)
        var packed = 0
        for run in frame.runs {
            offsets.append(packed)
            packed += Int(run.length)
        }
        self.offsets = offsets
    }

    /// The bytes of `range`, which one of the frame's runs must hold.
    func bytes(of range: FileRange) throws -> UnsafeRawBufferPointer {
        let runs = frame.runs
        let lo = runs.partitionPoint { $0.end <= range.start }
        guard lo < runs.count, runs[lo].isSuperset(of: range) else {
            throw CheckpointError.field(
                .frame(frame.sequence), 0, "runs", expected: "the referenced pages \(range)", found: "other pages")
        }
        let at = offsets[lo] + Int(range.start - runs[lo].start)
        return UnsafeRawBufferPointer(rebasing: data[at..<at + Int(range.length)])
    }
}
