import PGAlloc

/// Runs of pages encoded as unsigned LEB128 pairs (pages skipped since the
/// previous run's end, or since address 0 for the first; pages in the run):
/// how `PHSH` lists the pages it hashes.
struct PageRunEncoder {
    /// The runs encoded since the last move into `table`.
    private var writer = ByteWriter()
    /// The runs encoded before (a save may store a run every other page).
    private var table = SpillArray<UInt8>()
    private(set) var runCount: UInt64 = 0
    private(set) var pageCount: UInt64 = 0
    /// The run being extended, in pages.
    private var current: (start: UInt64, count: UInt64)?
    /// The end of the last run written, in pages.
    private var lastEnd: UInt64 = 0

    /// Adds the pages of `range` (page-aligned, after every range added
    /// so far).
    mutating func add(_ range: FileRange) {
        let start = range.start / CheckpointFormat.pageSize
        let count = range.length / CheckpointFormat.pageSize
        precondition(range.start % CheckpointFormat.pageSize == 0 && count > 0, "PageRunEncoder: \(range) is not whole pages")
        pageCount += count
        if let c = current, c.start + c.count == start {
            current = (c.start, c.count + count)
            return
        }
        flushRun()
        precondition(start >= lastEnd, "PageRunEncoder: \(range) comes before the runs added")
        current = (start, count)
    }

    /// The encoded table, every run included.
    mutating func finish() -> SpillArray<UInt8> {
        flushRun()
        moveEncoded()
        return table
    }

    private mutating func moveEncoded() {
        table.append(contentsOf: writer.bytes)
        writer.bytes.removeAll(keepingCapacity: true)
    }

    private mutating func flushRun() {
        guard let c = current else { return }
        writer.leb128(c.start - lastEnd)
        writer.leb128(c.count)
        runCount += 1
        lastEnd = c.start + c.count
        current = nil
        if writer.bytes.count >= 1 << 16 {
            moveEncoded()
        }
    }
}

/// Decoded runs of pages, each with the ordinal of its first page among
/// all the pages listed: which pages a link stores, and where each one's
/// hash is.
struct PageRunTable: Sendable {
    /// First page of each run (an address divided by the page size).
    private(set) var starts: PageNumbers
    /// Ordinal of each run's first page; one more entry: the page count.
    private(set) var ordinals: PageNumbers

    /// An empty table for pages below `pageLimit`.
    init(pageLimit: UInt64) {
        starts = PageNumbers(limit: pageLimit)
        ordinals = PageNumbers(limit: pageLimit)
        ordinals.append(0)
    }

    var runCount: Int { starts.count }
    var pageCount: UInt64 { ordinals[ordinals.count - 1] }

    /// Decodes `runCount` runs from `bytes` (found at `offset`), which they
    /// must fill exactly; every page lies below `pageLimit`.
    static func decode(
        _ bytes: [UInt8], offset: UInt64, runCount: UInt64, pageLimit: UInt64, section: CheckpointSection
    ) throws(CheckpointError) -> PageRunTable {
        var decoder = try Decoder(offset: offset, length: UInt64(bytes.count), runCount: runCount, pageLimit: pageLimit, section: section)
        try decoder.feed(bytes)
        return try decoder.finish()
    }

    /// Decodes a run table piece by piece as it is read: what it holds is
    /// the table and at most one piece and a run.
    struct Decoder {
        private let offset: UInt64
        private let length: UInt64
        private let runCount: UInt64
        private let pageLimit: UInt64
        private let section: CheckpointSection
        private var table: PageRunTable
        /// Bytes fed and not yet decoded: the start of a run onwards.
        private var pending: [UInt8] = []
        /// Table bytes before `pending`.
        private var consumed: UInt64 = 0
        /// The last run's end, in pages.
        private var end: UInt64 = 0

        /// Bytes a run takes at most: two LEB128 numbers of 64 bits.
        private static let maxRunLength = 20

        /// For a table of `length` bytes found at `offset`.
        init(offset: UInt64, length: UInt64, runCount: UInt64, pageLimit: UInt64, section: CheckpointSection) throws(CheckpointError) {
            // At least two bytes a run: a huge count costs nothing up front.
            guard runCount <= length / 2 else {
                throw .field(section, offset, "runCount", expected: "at most \(length / 2) runs in \(length) bytes", found: runCount)
            }
            self.offset = offset
            self.length = length
            self.runCount = runCount
            self.pageLimit = pageLimit
            self.section = section
            table = PageRunTable(pageLimit: pageLimit)
        }

        /// Decodes the runs `piece` completes.
        mutating func feed(_ piece: [UInt8]) throws(CheckpointError) {
            pending += piece
            try decode(final: false)
        }

        /// The table, once every piece was fed.
        mutating func finish() throws(CheckpointError) -> PageRunTable {
            try decode(final: true)
            return table
        }

        /// Decodes whole runs; with `final`, everything fed must be exactly
        /// the rest of the table.
        private mutating func decode(final: Bool) throws(CheckpointError) {
            var r = ByteReader(pending, base: offset + consumed, section: section)
            let limit = pending.count
            while UInt64(table.runCount) < runCount && (final || limit - r.position >= Self.maxRunLength) {
                let i = table.runCount
                let at = r.offset
                let gap = try r.leb128(field: "run \(i) gap", limit: limit)
                let count = try r.leb128(field: "run \(i) length", limit: limit)
                let (start, o1) = end.addingReportingOverflow(gap)
                let (runEnd, o2) = start.addingReportingOverflow(count)
                if (i > 0 && gap == 0) || count == 0 || o1 || o2 || runEnd > pageLimit {
                    throw .field(
                        section, at, "run \(i)", expected: "a run of at least one page after a gap of at least one, below page \(pageLimit)",
                        found: "gap \(gap), length \(count)")
                }
                table.starts.append(start)
                table.ordinals.append(table.ordinals[i] + count)
                end = runEnd
            }
            let used = consumed + UInt64(r.position)
            if (UInt64(table.runCount) == runCount && r.position < limit) || (final && used != length) {
                throw .field(section, r.offset, "run table", expected: "\(runCount) runs filling \(length) bytes", found: "\(used) bytes used")
            }
            consumed = used
            pending.removeFirst(r.position)
        }
    }

    /// The run holding `page`, if any.
    private func run(holding page: UInt64) -> Int? {
        var lo = 0
        var hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] <= page { lo = mid + 1 } else { hi = mid }
        }
        let i = lo - 1
        guard i >= 0, page < starts[i] + (ordinals[i + 1] - ordinals[i]) else { return nil }
        return i
    }

    /// The ordinal of the page at `address`, if listed.
    func ordinal(of address: UInt64) -> UInt64? {
        let page = address / CheckpointFormat.pageSize
        return run(holding: page).map { ordinals[$0] + (page - starts[$0]) }
    }

    /// Whether every page of `range` is listed.
    func contains(_ range: FileRange) -> Bool {
        let first = range.start / CheckpointFormat.pageSize
        let last = (range.end - 1) / CheckpointFormat.pageSize
        guard let i = run(holding: first) else { return false }
        return last < starts[i] + (ordinals[i + 1] - ordinals[i])
    }

    /// Whether every page of `range` is listed, trying run `hint` and the
    /// next first (set to the run found): references often repeat their
    /// sources, or take them in order.
    func contains(_ range: FileRange, hint: inout Int) -> Bool {
        let first = range.start / CheckpointFormat.pageSize
        let last = (range.end - 1) / CheckpointFormat.pageSize
        // The hinted run, then the next (sources often ascend).
        func holds(_ i: Int) -> Bool {
            i < starts.count && starts[i] <= first && last < starts[i] + (ordinals[i + 1] - ordinals[i])
        }
        if holds(hint) {
            return true
        }
        if holds(hint + 1) {
            hint += 1
            return true
        }
        guard let i = run(holding: first) else { return false }
        hint = i
        return last < starts[i] + (ordinals[i + 1] - ordinals[i])
    }

    /// Whether some page of `range` is listed, for ranges given in
    /// ascending order: `cursor` (0 at first) moves forward only.
    func overlaps(_ range: FileRange, cursor: inout Int) -> Bool {
        let first = range.start / CheckpointFormat.pageSize
        let end = (range.end + CheckpointFormat.pageSize - 1) / CheckpointFormat.pageSize
        while cursor < starts.count && starts[cursor] + (ordinals[cursor + 1] - ordinals[cursor]) <= first {
            cursor += 1
        }
        return cursor < starts.count && starts[cursor] < end
    }

    /// Whether some page of `range` is listed.
    func overlaps(_ range: FileRange) -> Bool {
        let first = range.start / CheckpointFormat.pageSize
        let end = (range.end + CheckpointFormat.pageSize - 1) / CheckpointFormat.pageSize
        // The first run ending after `first`.
        var lo = 0
        var hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] + (ordinals[mid + 1] - ordinals[mid]) <= first { lo = mid + 1 } else { hi = mid }
        }
        return lo < starts.count && starts[lo] < end
    }

    /// The runs as byte ranges, in order.
    var ranges: [FileRange] {
        (0..<starts.count).map { i in
            FileRange(
                start: starts[i] * CheckpointFormat.pageSize,
                end: (starts[i] + ordinals[i + 1] - ordinals[i]) * CheckpointFormat.pageSize)
        }
    }
}

extension PageRunTable {
    /// The listed pages inside `range`, as stretches: the address of the
    /// first page, its ordinal, and the pages in the stretch.
    func stretches(in range: FileRange) -> [(address: UInt64, ordinal: UInt64, pages: UInt64)] {
        let page = CheckpointFormat.pageSize
        let first = range.start / page
        let end = (range.end + page - 1) / page
        // The first run ending after `first`.
        var lo = 0
        var hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] + (ordinals[mid + 1] - ordinals[mid]) <= first { lo = mid + 1 } else { hi = mid }
        }
        var out: [(address: UInt64, ordinal: UInt64, pages: UInt64)] = []
        while lo < starts.count && starts[lo] < end {
            let runEnd = starts[lo] + (ordinals[lo + 1] - ordinals[lo])
            let s = max(starts[lo], first)
            let e = min(runEnd, end)
            out.append((s * page, ordinals[lo] + (s - starts[lo]), e - s))
            lo += 1
        }
        return out
    }
}

/// Page numbers (or page counts) of a file, kept in 32 bits each when every
/// one is below 2^32 (a file under 16 TiB), in 64 otherwise: a checkpoint
/// may list a run for every other page, and its reader holds the list.
struct PageNumbers: Sendable {
    private var narrow = SpillArray<UInt32>()
    private var wide = SpillArray<UInt64>()
    private let isWide: Bool

    /// Numbers up to `limit` will be appended.
    init(limit: UInt64) {
        isWide = limit > UInt64(UInt32.max)
    }

    var count: Int { isWide ? wide.count : narrow.count }

    subscript(i: Int) -> UInt64 {
        isWide ? wide[i] : UInt64(narrow[i])
    }

    mutating func reserveCapacity(_ n: Int) {
        if isWide { wide.reserveCapacity(n) } else { narrow.reserveCapacity(n) }
    }

    mutating func append(_ value: UInt64) {
        if isWide {
            wide.append(value)
        } else {
            narrow.append(UInt32(value))
        }
    }
}
