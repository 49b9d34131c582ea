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
        /// The entries encoded since the last move into `body`.
        private var entries = ByteWriter()
        /// The entries encoded before (a save may reference every other
        /// page).
        private var body = SpillArray<UInt8>()
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
            if entries.bytes.count >= 1 << 16 {
                moveEncoded()
            }
        }

        private mutating func moveEncoded() {
            body.append(contentsOf: entries.bytes)
            entries.bytes.removeAll(keepingCapacity: true)
        }

        var isEmpty: Bool { count == 0 && pending == nil }

        /// The payload.
        mutating func finish() -> SpillArray<UInt8> {
            if let p = pending {
                flush(p)
                pending = nil
            }
            moveEncoded()
            var w = ByteWriter(capacity: ReferencesSection.fixedLength)
            w.u64(count, entryCount)
            w.u64(pages, referencedPages)
            var payload = SpillArray<UInt8>()
            payload.reserveCapacity(w.bytes.count + body.count)
            payload.append(contentsOf: w.bytes)
            payload.append(contentsOf: body)
            return payload
        }
    }

    /// Decodes the payload found at `offset` of a checkpoint whose pages lie
    /// below `dataEnd`, at chain depth `depth`, held whole.
    static func decode(_ bytes: [UInt8], offset: UInt64, dataEnd: UInt64, depth: Int) throws(CheckpointError) -> SpillArray<PageReference> {
        var decoder = Decoder(offset: offset, length: UInt64(bytes.count), dataEnd: dataEnd, depth: depth)
        try decoder.feed(bytes)
        return try decoder.finish()
    }

    /// Decodes the payload piece by piece as it is read: what it holds is
    /// the references (a `SpillArray`) and at most one piece and an entry.
    struct Decoder {
        private let offset: UInt64
        private let length: UInt64
        private let pageLimit: UInt64
        private let depth: Int
        /// Bytes fed and not yet decoded: the start of an entry onwards.
        private var pending: [UInt8] = []
        /// Payload bytes before `pending`.
        private var consumed: UInt64 = 0
        private var count: UInt64?
        private var pages: UInt64 = 0
        private var decoded: UInt64 = 0
        /// The last entry's end and the entries' pages, in pages.
        private var end: UInt64 = 0
        private var total: UInt64 = 0
        private var references = SpillArray<PageReference>()

        /// Bytes an entry takes at most: four LEB128 numbers of 64 bits.
        private static let maxEntryLength = 40

        /// For a payload of `length` bytes found at `offset`.
        init(offset: UInt64, length: UInt64, dataEnd: UInt64, depth: Int) {
            self.offset = offset
            self.length = length
            pageLimit = dataEnd / CheckpointFormat.pageSize
            self.depth = depth
        }

        /// Decodes the entries `piece` completes.
        mutating func feed(_ piece: [UInt8]) throws(CheckpointError) {
            pending += piece
            try decode(final: false)
        }

        /// The references, once every piece was fed.
        mutating func finish() throws(CheckpointError) -> SpillArray<PageReference> {
            try decode(final: true)
            if total != pages {
                throw .field(
                    section, offset + UInt64(referencedPages.offset), "referencedPages", expected: "\(total) (the entries' pages)",
                    found: pages)
            }
            return references
        }

        private var section: CheckpointSection { .section(.references) }

        /// Decodes whole entries; with `final`, everything fed must be
        /// exactly the rest of the payload.
        private mutating func decode(final: Bool) throws(CheckpointError) {
            var r = ByteReader(pending, base: offset + consumed, section: section)
            let limit = pending.count
            if count == nil {
                guard final || limit >= fixedLength else { return }
                let count = try r.u64(entryCount)
                pages = try r.u64(referencedPages)
                // At least four bytes an entry: a huge count costs nothing up front.
                guard count <= length / 4 else {
                    throw .field(r, entryCount, expected: "at most \(length / 4) entries in \(length) bytes", found: count)
                }
                self.count = count
            }
            let count = self.count!
            let page = CheckpointFormat.pageSize
            while decoded < count && (final || limit - r.position >= Self.maxEntryLength) {
                let i = decoded
                let at = r.offset
                let gap = try r.leb128(field: "entry \(i) gap", limit: limit)
                let length = try r.leb128(field: "entry \(i) length", limit: limit)
                let link = try r.leb128(field: "entry \(i) link", limit: limit)
                let delta = unzigzag(try r.leb128(field: "entry \(i) source", limit: limit))
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
                    references.append(PageReference(
                        destination: FileRange(start: from * page, end: (from + n) * page), link: Int(link), source: sourcePage * page))
                    from += n
                    sourcePage += n
                }
                end = destEnd
                total += length
                decoded += 1
            }
            if (decoded == count && r.position < limit) || (final && consumed + UInt64(r.position) != length) {
                throw .field(
                    section, r.offset, "entries", expected: "\(count) entries filling \(length - UInt64(fixedLength)) bytes",
                    found: "\(consumed + UInt64(r.position) - UInt64(fixedLength)) bytes used")
            }
            consumed += UInt64(r.position)
            pending.removeFirst(r.position)
        }
    }
}

extension PageReference: BitwiseCopyable {}
