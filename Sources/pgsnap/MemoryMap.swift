import Checkpoint
import PGAlloc

/// A map of a checkpoint's memory that a person reads at a glance: 64
/// cells a line, at most 16 lines, each cell a slice of the saved memory
/// (its `dataSize`, rounded up to a page) of a power-of-two number of
/// pages, shown by what its bytes are:
///
///     #  all stored (every byte of the cell is in a frame's run)
///     =  all referenced (taken from a parent, or from an equal page stored
///        elsewhere; shown only for checkpoints with references)
///     +  partly stored or referenced
///     -  allocated (in a segment with references), nothing stored
///     .  free
///
/// Each line is labelled with the byte range it covers.
struct MemoryMap {
    static let columns = 64
    static let maxLines = 16

    /// Bytes mapped.
    let size: UInt64
    /// Bytes per cell.
    let cellBytes: UInt64
    private(set) var allocated: [UInt64]
    private(set) var stored: [UInt64]
    private(set) var referenced: [UInt64]
    let hasReferences: Bool

    init(_ metadata: CheckpointMetadata) {
        let page = CheckpointFormat.pageSize
        size = (metadata.header.dataSize + page - 1) / page * page
        var cell = page
        while (size + cell * UInt64(MemoryMap.columns) - 1) / (cell * UInt64(MemoryMap.columns)) > UInt64(MemoryMap.maxLines) {
            cell *= 2
        }
        cellBytes = cell
        let cells = Int((size + cell - 1) / cell)
        allocated = Array(repeating: 0, count: cells)
        stored = Array(repeating: 0, count: cells)
        referenced = Array(repeating: 0, count: cells)
        hasReferences = !metadata.references.isEmpty
        for s in metadata.segments where s.refs > 0 {
            add(s.range, to: &allocated)
        }
        for frame in metadata.frames {
            for run in frame.runs {
                add(run, to: &stored)
            }
        }
        for r in metadata.references {
            add(r.destination, to: &referenced)
        }
    }

    /// Adds the bytes of `range` to the cells it covers.
    private func add(_ range: FileRange, to counts: inout [UInt64]) {
        var at = range.start
        let end = min(range.end, size)
        while at < end {
            let cell = at / cellBytes
            let cellEnd = min((cell + 1) * cellBytes, end)
            counts[Int(cell)] += cellEnd - at
            at = cellEnd
        }
    }

    /// The character of cell `i`.
    func symbol(_ i: Int) -> Character {
        let length = min(cellBytes, size - UInt64(i) * cellBytes)
        if stored[i] + referenced[i] >= length {
            return stored[i] >= referenced[i] ? "#" : "="
        }
        if stored[i] + referenced[i] > 0 {
            return "+"
        }
        return allocated[i] > 0 ? "-" : "."
    }

    /// The map: a title, a legend, and the lines.
    func lines() -> [String] {
        guard size > 0 else {
            return ["map: the saved memory is empty"]
        }
        let lineBytes = cellBytes * UInt64(MemoryMap.columns)
        // Offsets in the largest unit that divides every label.
        let units: [(String, UInt64)] = [("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10), ("bytes", 0)]
        let (unitName, shift) = units.first { lineBytes % (1 << $0.1) == 0 && size % (1 << $0.1) == 0 }!
        var labels: [String] = []
        var start: UInt64 = 0
        while start < size {
            let end = min(start + lineBytes, size)
            labels.append("\(start >> shift)-\(end >> shift)")
            start = end
        }
        let width = labels.map(\.count).max()!
        var out = [
            "map of \(humanBytes(size)): one line = \(humanBytes(lineBytes)), one cell = \(humanBytes(cellBytes)); offsets in \(unitName)",
            hasReferences
                ? "  # all stored   = all referenced   + partly stored or referenced   - allocated, not stored   . free"
                : "  # all stored   + partly stored   - allocated, not stored   . free",
        ]
        for (row, label) in labels.enumerated() {
            let first = row * MemoryMap.columns
            let last = min(first + MemoryMap.columns, allocated.count)
            out.append("  " + leftPad(label, width) + "  " + String((first..<last).map(symbol)))
        }
        return out
    }
}
