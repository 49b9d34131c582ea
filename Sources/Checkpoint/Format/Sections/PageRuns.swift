import PGAlloc

/// Runs of pages encoded as unsigned LEB128 pairs (pages skipped since the
/// previous run's end, or since address 0 for the first; pages in the run):
/// how `PHSH` lists the pages it hashes.
struct PageRunEncoder {
    private(set) var writer = ByteWriter()
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
    mutating func finish() -> [UInt8] {
        flushRun()
        return writer.bytes
    }

    private mutating func flushRun() {
        guard let c = current else { return }
        writer.leb128(c.start - lastEnd)
        writer.leb128(c.count)
        runCount += 1
        lastEnd = c.start + c.count
        current = nil
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
        var r = ByteReader(bytes, base: offset, section: section)
        var table = PageRunTable(pageLimit: pageLimit)
        // At least two bytes a run: a huge count costs nothing up front.
        guard runCount <= UInt64(bytes.count / 2) else {
            throw .field(section, offset, "runCount", expected: "at most \(bytes.count / 2) runs in \(bytes.count) bytes", found: runCount)
        }
        table.starts.reserveCapacity(Int(runCount))
        table.ordinals.reserveCapacity(Int(runCount) + 1)
        var end: UInt64 = 0
        for i in 0..<runCount {
            let at = r.offset
            let gap = try r.leb128(field: "run \(i) gap", limit: bytes.count)
            let count = try r.leb128(field: "run \(i) length", limit: bytes.count)
            let (start, o1) = end.addingReportingOverflow(gap)
            let (runEnd, o2) = start.addingReportingOverflow(count)
            if (i > 0 && gap == 0) || count == 0 || o1 || o2 || runEnd > pageLimit {
                throw .field(
                    section, at, "run \(i)", expected: "a run of at least one page after a gap of at least one, below page \(pageLimit)",
                    found: "gap \(gap), length \(count)")
            }
            table.starts.append(start)
            table.ordinals.append(table.ordinals[Int(i)] + count)
            end = runEnd
        }
        if r.position != bytes.count {
            throw .field(section, r.offset, "run table", expected: "\(runCount) runs filling \(bytes.count) bytes", found: "\(r.position) bytes used")
        }
        return table
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
    private var narrow: [UInt32] = []
    private var wide: [UInt64] = []
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
