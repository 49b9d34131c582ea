import PGAlloc

/// Pages of a checkpoint's memory that it does not store in its frames but
/// takes from a page stored by a link of its chain: link 0 is the
/// checkpoint itself (a page stored once for several addresses), link 1 its
/// parent, link 2 the parent's parent, and so on. A reference always names
/// the link that stores the page in its frames, never one that references
/// it in turn, so a restore reads each page from one place.
public struct PageReference: Hashable, Sendable {
    // 24 bytes rather than 32 (a checkpoint may hold a reference every few
    // pages, and a restore holds them all): the destination as its first
    // address and a page count of 32 bits, the link in 32 bits.
    private var start: UInt64
    private var pages: UInt32
    private var linkNumber: UInt32
    /// Address of the first page in that link's memory.
    public var source: UInt64

    /// The most pages one reference gives (16 TiB); a longer stretch takes
    /// several.
    public static let maxPages = UInt64(UInt32.max)

    /// - Precondition: `destination` is whole pages, at most `maxPages`,
    ///   and `link` is below 2^32.
    public init(destination: FileRange, link: Int, source: UInt64) {
        start = 0
        pages = 0
        linkNumber = 0
        self.source = source
        self.destination = destination
        self.link = link
    }

    /// The pages of this checkpoint's memory it gives.
    public var destination: FileRange {
        get { FileRange(start: start, end: start + UInt64(pages) * CheckpointFormat.pageSize) }
        set {
            let count = newValue.length / CheckpointFormat.pageSize
            precondition(
                newValue.start % CheckpointFormat.pageSize == 0 && newValue.length % CheckpointFormat.pageSize == 0
                    && count <= Self.maxPages,
                "PageReference: \(newValue) is not whole pages, at most \(Self.maxPages)")
            start = newValue.start
            pages = UInt32(count)
        }
    }

    /// The link storing them: 0 for this checkpoint, up to its depth.
    public var link: Int {
        get { Int(linkNumber) }
        set {
            precondition(newValue >= 0 && newValue <= Int(UInt32.max), "PageReference: link \(newValue)")
            linkNumber = UInt32(newValue)
        }
    }

    /// The pages read in the link's memory.
    public var sourceRange: FileRange { FileRange(start: source, end: source + destination.length) }
}

/// `REFS` (tail, critical): the checkpoint's references, by address.
///
/// Payload: entryCount u64, referencedPages u64, then each entry as four
/// unsigned LEB128 numbers: pages skipped since the previous entry's end
/// (since address 0 for the first), pages in the entry (at least one), the
/// link (at most the depth of `PRNT`, 0 without one), and the source page
/// minus the destination page, zigzag-encoded (0, -1, 1, -2 … as 0, 1, 2,
/// 3 …). The entries fill the payload exactly; they do not overlap, and a
/// reference of link 0 never gives a page to itself.
enum ReferencesSection {
    static let entryCount = Field(0, 8, "entryCount")
    static let referencedPages = Field(8, 8, "referencedPages")
    static let fixedLength = 16

    /// At most 40 bytes of LEB128 an entry, an entry a page at most.
    static func maxLength(pages: UInt64) -> UInt64 {
        UInt64(fixedLength) + 40 * pages
    }

    static func zigzag(_ v: Int64) -> UInt64 {
        UInt64(bitPattern: (v << 1) ^ (v >> 63))
    }

    static func unzigzag(_ v: UInt64) -> Int64 {
        Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1)
    }

    /// Encodes entries sorted by destination, not overlapping.
    struct Encoder {
        private var entries = ByteWriter()
        private(set) var count: UInt64 = 0
        private(set) var pages: UInt64 = 0
        private var lastEnd: UInt64 = 0

        /// Adds `reference`, after every one added so far; joins it to the
        /// last one when it continues it.
        mutating func add(_ reference: PageReference) {
            let page = CheckpointFormat.pageSize
            let dest = reference.destination
            precondition(dest.start % page == 0 && dest.length % page == 0 && dest.length > 0 && dest.start >= lastEnd,
                         "ReferencesSection: \(dest) is not whole pages after \(lastEnd)")
            if let p = pending, p.link == reference.link, p.destination.end == dest.start, p.sourceRange.end == reference.source,
                (p.destination.length + dest.length) / page <= PageReference.maxPages
            {
                pending = PageReference(destination: FileRange(start: p.destination.start, end: dest.end), link: p.link, source: p.source)
            } else {
                if let p = pending {
                    flush(p)
                }
                pending = reference
            }
            lastEnd = dest.end
        }

        private var pending: PageReference?
        private var writtenEnd: UInt64 = 0

        private mutating func flush(_ r: PageReference) {
            let page = CheckpointFormat.pageSize
            entries.leb128((r.destination.start - writtenEnd) / page)
            entries.leb128(r.destination.length / page)
            entries.leb128(UInt64(r.link))
            entries.leb128(zigzag(Int64(r.source / page) - Int64(r.destination.start / page)))
            count += 1
            pages += r.destination.length / page
            writtenEnd = r.destination.end
        }

        var isEmpty: Bool { count == 0 && pending == nil }

        /// The payload.
        mutating func finish() -> [UInt8] {
            if let p = pending {
                flush(p)
                pending = nil
            }
            var w = ByteWriter(capacity: ReferencesSection.fixedLength + entries.bytes.count)
            w.u64(count, entryCount)
            w.u64(pages, referencedPages)
            w.raw(entries.bytes)
            return w.bytes
        }
    }

    /// Decodes the payload found at `offset` of a checkpoint whose pages lie
    /// below `dataEnd`, at chain depth `depth`.
    static func decode(_ bytes: [UInt8], offset: UInt64, dataEnd: UInt64, depth: Int) throws(CheckpointError) -> [PageReference] {
        let section = CheckpointSection.section(.references)
        var r = ByteReader(bytes, base: offset, section: section)
        let count = try r.u64(entryCount)
        let pages = try r.u64(referencedPages)
        // At least four bytes an entry: a huge count costs nothing up front.
        guard count <= UInt64(bytes.count / 4) else {
            throw .field(r, entryCount, expected: "at most \(bytes.count / 4) entries in \(bytes.count) bytes", found: count)
        }
        let page = CheckpointFormat.pageSize
        let pageLimit = dataEnd / page
        var out: [PageReference] = []
        out.reserveCapacity(Int(count))
        var end: UInt64 = 0
        var total: UInt64 = 0
        for i in 0..<count {
            let at = r.offset
            let gap = try r.leb128(field: "entry \(i) gap", limit: bytes.count)
            let length = try r.leb128(field: "entry \(i) length", limit: bytes.count)
            let link = try r.leb128(field: "entry \(i) link", limit: bytes.count)
            let delta = unzigzag(try r.leb128(field: "entry \(i) source", limit: bytes.count))
            let (start, o1) = end.addingReportingOverflow(gap)
            let (destEnd, o2) = start.addingReportingOverflow(length)
            if length == 0 || o1 || o2 || destEnd > pageLimit {
                throw .field(section, at, "entry \(i)", expected: "at least one page, below page \(pageLimit)", found: "gap \(gap), length \(length)")
            }
            if link > UInt64(depth) {
                throw .field(section, at, "entry \(i) link", expected: "at most the chain depth \(depth)", found: link)
            }
            let (source, o3) = Int64(start).addingReportingOverflow(delta)
            if o3 || source < 0 || UInt64(source) > CheckpointFormat.maxFileSize / page - length {
                throw .field(section, at, "entry \(i) source", expected: "a page of the file", found: delta)
            }
            if link == 0 && UInt64(source) < destEnd && start < UInt64(source) + length {
                throw .field(section, at, "entry \(i) source", expected: "pages other than the ones it gives", found: "page \(source)")
            }
            // An entry longer than one reference can give takes several.
            var from = start
            var sourcePage = UInt64(source)
            while from < destEnd {
                let n = min(destEnd - from, PageReference.maxPages)
                out.append(PageReference(
                    destination: FileRange(start: from * page, end: (from + n) * page), link: Int(link), source: sourcePage * page))
                from += n
                sourcePage += n
            }
            end = destEnd
            total += length
        }
        if r.position != bytes.count {
            throw .field(section, r.offset, "entries", expected: "\(count) entries filling \(bytes.count - fixedLength) bytes", found: "\(r.position - fixedLength) bytes used")
        }
        if total != pages {
            throw .field(section, offset + UInt64(referencedPages.offset), "referencedPages", expected: "\(total) (the entries' pages)", found: pages)
        }
        return out
    }
}
