#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import PGAlloc

/// A worker's own compression context and buffers.
final class SaveWorkerContext {
    var compressor: ZstdCompressor
    /// A unit's pages: read into it by a source that must copy them, the
    /// stored pages then moved to its front, in order, and compressed.
    let unitBuffer: PageBuffer
    /// Where each data page of the unit is: in the source's own memory
    /// (a MemoryFile's mappings) or in `unitBuffer`.
    var pages: [UnsafeRawPointer] = []
    /// The table key of each data page (`PageDecisions.key`).
    var keys: [UInt64] = []
    /// The SHA-256 of each data page, when the save has a parent (to
    /// compare with the parent's pages); else empty, and only the pages
    /// stored are hashed, once they are known.
    var digests: [PageDigest] = []
    /// Hashes pages for `digests` and for the stored pages' `PHSH` entries.
    let hasher = PageHasher()

    /// Pages read back to compare with pages of the same key.
    let compared: ComparedPages

    var unit: UnsafeMutableRawBufferPointer { unitBuffer.bytes }

    init(level: Int32, frameSize: Int) throws {
        compressor = try ZstdCompressor(level: level)
        unitBuffer = try PageBuffer(capacity: frameSize)
        compared = try ComparedPages()
        let pages = frameSize / Int(CheckpointFormat.pageSize)
        keys.reserveCapacity(pages)
        self.pages.reserveCapacity(pages)
    }
}

/// What a worker made of one unit of committed runs.
struct SaveUnitResult {
    /// Runs of pages stored: the frame's runs. Empty if no page is.
    var runs: [FileRange]
    /// The hash of each stored page, in order.
    var digests: [PageDigest]
    /// Pages with data that are not stored, in address order.
    var references: [PageReference]
    var uncompressedLength: Int
    var compressedLength: Int
    var payloadCRC: UInt32
    /// The SHA-256 of the payload as stored, for a signed checkpoint.
    var payloadDigest: [UInt8]? = nil
    var payload: PageBuffer
    var unitBytes: UInt64
    /// Runs of committed pages found all zero.
    var zeros: [FileRange]
    var zeroBytes: UInt64
}

/// What becomes of one page with data.
private enum PageFate {
    case store
    case reference(link: Int, source: UInt64)
}

/// Finds the data pages of a unit's runs and keys them for the table of
/// pages seen, decides which are stored (`decisions`), gathers and hashes
/// those (SHA-256, for `PHSH`), compresses them as one frame into `buffer`
/// (sealed and hashed by `sealer`, if any), and reports which pages were
/// zero and which are referenced. A save with a parent hashes every page
/// first, as it compares them with the parent's by hash.
func compressUnit(
    _ unit: Int, runs: [FileRange], of source: SaveSource, decisions: PageDecisions, into buffer: PageBuffer,
    context: SaveWorkerContext, sealer: FrameSealer?
) throws -> SaveUnitResult {
    do {
        return try compressUnitInTurn(unit, runs: runs, of: source, decisions: decisions, into: buffer, context: context, sealer: sealer)
    } catch {
        decisions.fail()
        throw error
    }
}

private func compressUnitInTurn(
    _ unit: Int, runs: [FileRange], of source: SaveSource, decisions: PageDecisions, into buffer: PageBuffer,
    context: SaveWorkerContext, sealer: FrameSealer?
) throws -> SaveUnitResult {
    let page = Int(CheckpointFormat.pageSize)
    var data: [FileRange] = []
    var zeros: [FileRange] = []
    var unitBytes: UInt64 = 0
    let unitBuffer = context.unit
    context.pages.removeAll(keepingCapacity: true)
    context.keys.removeAll(keepingCapacity: true)
    context.digests.removeAll(keepingCapacity: true)
    let hashAll = decisions.parent != nil

    for run in runs {
        // A source that must copy reads each run after the ones before it,
        // so that every page stays where it was read until the frame is
        // made; the unit's runs fit, as a unit holds at most a frame.
        let room = UnsafeMutableRawBufferPointer(rebasing: unitBuffer[Int(unitBytes)...])
        precondition(run.length <= UInt64(room.count), "compressUnit: a unit's runs hold more than a frame")
        unitBytes += run.length
        var address = run.start
        // Bytes of the run before the slice: where a lent slice's pages go
        // in `room` when they are copied at once.
        var sliceStart = 0
        try source.forEachSlice(of: run, buffer: room) { slice in
            guard let base = slice.baseAddress, slice.count > 0 else { return }
            defer { sliceStart += slice.count }
            // A save with a parent keeps the SHA-256 it computes here for
            // the page it stores, so it copies a lent page before hashing
            // it: the page stored is then the page hashed even if a writer
            // the caller failed to stop changes it meanwhile.
            let lent = UnsafeRawPointer(base) != UnsafeRawPointer(room.baseAddress! + sliceStart)
            let snapshot = hashAll && lent
            var off = 0
            // Each page is looked at once: the page that ends a stretch
            // starts the next one with what was found.
            var zero = pg_is_zero(base, page) != 0
            while off < slice.count {
                // A stretch of pages that are all zero or all not.
                var end = off + page
                var nextZero = zero
                while end < slice.count {
                    nextZero = pg_is_zero(base + end, page) != 0
                    if nextZero != zero {
                        break
                    }
                    end += page
                }
                let range = FileRange(start: address, end: address + UInt64(end - off))
                if zero {
                    append(range, to: &zeros)
                } else {
                    append(range, to: &data)
                    var pages = base
                    if snapshot {
                        pages = UnsafeRawPointer(room.baseAddress! + sliceStart)
                        UnsafeMutableRawPointer(mutating: pages + off).copyMemory(from: base + off, byteCount: end - off)
                    }
                    if hashAll {
                        let first = context.digests.count
                        context.hasher.appendDigests(of: UnsafeRawBufferPointer(start: pages + off, count: end - off), to: &context.digests)
                        for digest in context.digests[first...] {
                            context.keys.append(digest.prefix)
                        }
                    }
                    var p = off
                    while p < end {
                        context.pages.append(pages + p)
                        if !hashAll {
                            context.keys.append(decisions.key(of: UnsafeRawBufferPointer(start: pages + p, count: page)))
                        }
                        p += page
                    }
                }
                address += UInt64(end - off)
                off = end
                zero = nextZero
            }
        }
    }

    let fates = try decide(unit, data: data, source: source, decisions: decisions, context: context)
    var result = SaveUnitResult(
        runs: [], digests: [], references: [], uncompressedLength: 0, compressedLength: 0, payloadCRC: 0, payload: buffer,
        unitBytes: unitBytes, zeros: zeros, zeroBytes: zeros.reduce(0) { $0 + $1.length })
    // Gathers the stored pages at the front of the unit buffer, in order.
    // A page read into the buffer lies at or after its place there (pages
    // before it were read before it), so moving them in order overwrites
    // only pages already moved or not stored.
    var kept = 0
    var i = 0
    let front = unitBuffer.baseAddress!
    for run in data {
        var address = run.start
        while address < run.end {
            let pageRange = FileRange(start: address, end: address + UInt64(page))
            switch fates[i] {
            case .store:
                let place = front + kept * page
                if UnsafeRawPointer(place) != context.pages[i] {
                    place.copyMemory(from: context.pages[i], byteCount: page)
                }
                kept += 1
                append(pageRange, to: &result.runs)
                if hashAll {
                    result.digests.append(context.digests[i])
                }
            case .reference(let link, let from):
                let r = PageReference(destination: pageRange, link: link, source: from)
                if let last = result.references.last, last.link == link, last.destination.end == address,
                    last.sourceRange.end == from
                {
                    result.references[result.references.count - 1].destination.end = pageRange.end
                } else {
                    result.references.append(r)
                }
            }
            address += UInt64(page)
            i += 1
        }
    }
    if !hashAll {
        context.hasher.appendDigests(of: UnsafeRawBufferPointer(start: front, count: kept * page), to: &result.digests)
    }
    let filled = kept * page
    result.uncompressedLength = filled
    if filled > 0 {
        let compressed = try context.compressor.compress(UnsafeRawBufferPointer(rebasing: unitBuffer[..<filled]), into: buffer.bytes)
        let stored = try sealer?.seal(buffer.bytes, plainLength: compressed, runs: result.runs, uncompressedLength: filled) ?? compressed
        let payload = UnsafeRawBufferPointer(rebasing: buffer.bytes[..<stored])
        result.compressedLength = stored
        result.payloadCRC = CRC32C.checksum(payload)
        result.payloadDigest = sealer?.payloadDigest(payload)
    }
    return result
}

/// The fate of each data page: first against the parent's page at the
/// same address (on this worker), then, in the unit's turn, against the
/// pages seen before.
private func decide(
    _ unit: Int, data: [FileRange], source: SaveSource, decisions: PageDecisions, context: SaveWorkerContext
) throws -> [PageFate] {
    let page = CheckpointFormat.pageSize
    let keys = context.keys
    let digests = context.digests
    var fates = [PageFate](repeating: .store, count: keys.count)
    // The parent's pages here that differ: candidates for pages that moved.
    var replaced: [ParentPage] = []
    if let parent = decisions.parent {
        let pages = try parent.pages(in: data)
        var p = 0
        var i = 0
        for run in data {
            var address = run.start
            while address < run.end {
                while p < pages.count && pages[p].address < address {
                    p += 1
                }
                if p < pages.count && pages[p].address == address {
                    if pages[p].digest == digests[i] {
                        fates[i] = .reference(link: pages[p].link, source: pages[p].source)
                    } else {
                        replaced.append(pages[p])
                    }
                }
                address += page
                i += 1
            }
        }
    }
    let pages = context.pages
    return try decisions.inTurn(unit) { seen in
        for old in replaced {
            seen.insert(key: old.digest.prefix, link: old.link, source: old.source)
        }
        var i = 0
        for run in data {
            var address = run.start
            while address < run.end {
                defer {
                    address += page
                    i += 1
                }
                guard case .store = fates[i] else { continue }
                let mine = UnsafeRawBufferPointer(start: pages[i], count: Int(page))
                let found = try seen.find(key: keys[i]) { link, from in
                    if link == 0 {
                        // The same bytes, not only the same key.
                        let theirs = try context.compared.page(at: from, of: source)
                        return memcmp(theirs.baseAddress!, mine.baseAddress!, mine.count) == 0
                    }
                    // Only a save with a parent records the parent's pages,
                    // and it has every page's SHA-256.
                    return try decisions.parent?.digest(link: link, source: from) == digests[i]
                }
                if let found {
                    fates[i] = .reference(link: found.link, source: found.source)
                } else {
                    seen.insert(key: keys[i], link: 0, source: address)
                }
            }
        }
        return fates
    }
}

/// The pages a worker read back from the source to compare with pages of
/// the same key, kept by address: duplicates tend to be copies of a few
/// common pages, which are then compared from here rather than read again
/// (a `pread` each from a raw source). A source that changes during a save
/// gives a checkpoint of no single moment whether its pages are read once
/// or twice.
final class ComparedPages {
    /// Sets of two pages each: the page read last in a set replaces the one
    /// compared longer ago, so two common pages that fall in one set do not
    /// keep pushing each other out.
    private static let sets = 64
    private let buffer: PageBuffer
    /// The address each slot holds, or `UInt64.max`.
    private var addresses = [UInt64](repeating: .max, count: 2 * ComparedPages.sets)
    /// Per set: the slot (0 or 1) compared longer ago.
    private var older = [Int](repeating: 0, count: ComparedPages.sets)

    init() throws {
        buffer = try PageBuffer(capacity: 2 * Self.sets * Int(CheckpointFormat.pageSize))
    }

    /// The bytes of the page at `address` (page-aligned) in `source`.
    func page(at address: UInt64, of source: SaveSource) throws -> UnsafeRawBufferPointer {
        let page = Int(CheckpointFormat.pageSize)
        // Fibonacci hashing of the page number: nearby pages spread out.
        let set = Int(truncatingIfNeeded: (address / UInt64(page) &* 0x9E37_79B9_7F4A_7C15) >> 58)
        var way = addresses[2 * set] == address ? 0 : addresses[2 * set + 1] == address ? 1 : -1
        if way < 0 {
            way = older[set]
            let slot = 2 * set + way
            addresses[slot] = .max
            let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[slot * page..<(slot + 1) * page])
            var filled = 0
            try source.forEachSlice(of: FileRange(start: address, end: address + UInt64(page)), buffer: bytes) { slice in
                if slice.baseAddress != UnsafeRawPointer(bytes.baseAddress! + filled) {
                    (bytes.baseAddress! + filled).copyMemory(from: slice.baseAddress!, byteCount: slice.count)
                }
                filled += slice.count
            }
            precondition(filled == page, "ComparedPages: \(filled) bytes read for one page")
            addresses[slot] = address
        }
        older[set] = 1 - way
        let slot = 2 * set + way
        return UnsafeRawBufferPointer(rebasing: buffer.bytes[slot * page..<(slot + 1) * page])
    }
}

/// Zero pages a save found, given back to the source in batches by the
/// writer rather than by each worker as it finds them: on this 2-core
/// machine, punching tens of thousands of single pages while the workers
/// compress costs a TLB-flush IPI and inode-lock contention each, and
/// doubled the time of a dense 1 GiB save; punched by one thread after
/// the workers are done, the same pages cost about a third of that (see
/// BENCHMARKS.md). The batch is bounded so that memory stays small for any
/// file size. With `SaveOptions.decommitZeroPages` off it keeps nothing.
struct ZeroPageBatch {
    let enabled: Bool
    let limit: Int
    var runs: [FileRange] = []
    var decommittedBytes: UInt64 = 0

    mutating func add(_ found: [FileRange], source: SaveSource) throws {
        guard enabled else { return }
        runs += found
        if runs.count >= limit {
            try flush(source)
        }
    }

    mutating func flush(_ source: SaveSource) throws {
        guard !runs.isEmpty else { return }
        decommittedBytes += try source.decommitZeroPages(runs)
        runs.removeAll(keepingCapacity: true)
    }
}
