import Foundation
@testable import Checkpoint
@testable import PGAlloc
import Workloads

// The fixtures of fixtures/v1 and how each is made. See fixtures/README.md.
//
// Every maker is deterministic: fixed addresses (bottom-up allocations in a
// new file), fixed contents (WSave.fillPage, craftedPage), fixed save
// options. The committed files are the reference; the generator only adds
// missing ones and reports any that it would make differently.

/// A fixture that must restore.
struct GoodFixture {
    enum Source {
        /// A MemoryFile, saved with `options`.
        case memoryFile(make: () throws -> MemoryFile, options: SaveOptions)
        /// A raw image, made into `path` by `make`, saved with `RawImage.save`.
        case rawImage(make: (_ path: String) throws -> Void, kind: MemoryKind, options: SaveOptions)
        /// Crafted through the encoders (`crafted` gives the checkpoint the
        /// bytes come from, for the expected contents).
        case crafted(() throws -> [UInt8], crafted: () -> CraftedCheckpoint)
        /// An incremental checkpoint: the MemoryFile `make` gives is saved as
        /// the fixture `parent` (with the same options, so the same bytes),
        /// changed by `change`, and saved against it.
        case incremental(parent: String, make: () throws -> MemoryFile, change: (MemoryFile) throws -> Void, options: SaveOptions)
    }

    var name: String
    var summary: String
    var source: Source
    /// Written by an earlier writer: kept as committed, never made again
    /// (the writer now writes other bytes for the same memory).
    var madeByOlderWriter: Bool

    init(name: String, summary: String, source: Source, madeByOlderWriter: Bool = false) {
        self.name = name
        self.summary = summary
        self.source = source
        self.madeByOlderWriter = madeByOlderWriter
    }
    /// For a raw image: the image it restores to.
    var imageName: String? {
        if case .rawImage = source { return "\(name).image" }
        return nil
    }

    /// Whether it is made by the writer (rather than crafted).
    var isWritten: Bool {
        if case .crafted = source { return false }
        return true
    }

    /// Makes the checkpoint's bytes.
    func make() throws -> [UInt8] {
        let directory = try makeTemporaryDirectory("fixture-make")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let out = directory + "/\(name).pgsnap"
        switch source {
        case .memoryFile(let makeFile, let options):
            let file = try makeFile()
            defer { file.destroy() }
            _ = try file.save(to: .path(out), options: options)
        case .rawImage(let makeImage, let kind, let options):
            let image = directory + "/source.image"
            try makeImage(image)
            _ = try RawImage.save(source: image, kind: kind, to: .path(out), options: options)
        case .crafted(let bytes, _):
            return try bytes()
        case .incremental(let parent, let makeFile, let change, let options):
            let file = try makeFile()
            defer { file.destroy() }
            _ = try file.save(to: .path(directory + "/\(parent).pgsnap"), options: options)
            try change(file)
            _ = try file.save(to: .path(out), parent: .path(directory + "/\(parent).pgsnap"), options: options)
        }
        return try readFile(out)
    }

    /// For a raw image: the image itself (what a restore must give back).
    func makeImage() throws -> [UInt8]? {
        guard case .rawImage(let makeImage, _, _) = source else { return nil }
        let directory = try makeTemporaryDirectory("fixture-image")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try makeImage(directory + "/source.image")
        return try readFile(directory + "/source.image")
    }
}

/// Save options pinned for fixtures: the default ones but for the thread
/// count (which does not change the bytes, but is pinned anyway) and the
/// frame size where a fixture wants several frames.
func fixtureSaveOptions(frameSize: Int = 4 << 20, level: Int32 = 1) -> SaveOptions {
    var o = SaveOptions()
    o.threads = 2
    o.frameSize = frameSize
    o.level = level
    return o
}

/// Fills the pages of `range` of `file` with WSave pages numbered from
/// `firstPage`.
func fillWSave(_ file: MemoryFile, _ range: FileRange, firstPage: UInt64) throws {
    var page = firstPage
    try file.forEachMappedSlice(range) { slice in
        for off in stride(from: 0, to: slice.count, by: 4096) {
            WSave.fillPage(slice.baseAddress! + off, page)
            page += 1
        }
    }
}

enum FixtureCatalog {
    static var good: [GoodFixture] { [
        GoodFixture(
            name: "empty",
            summary: "a new MemoryFile: size 0, no segment, no frame",
            source: .memoryFile(make: { try MemoryFile() }, options: fixtureSaveOptions())),
        GoodFixture(
            name: "nothing-stored",
            summary: "allocated ranges of four kinds, refs 1 to 3, never written or written with zeros only: segments, no frame",
            source: .memoryFile(make: makeNothingStored, options: fixtureSaveOptions())),
        GoodFixture(
            name: "mixed",
            summary: "48 allocations of all six kinds, refs 1 to 4, holes where some were freed, untouched, zero, data and data-then-zeroed pages; 16 KiB frames",
            source: .memoryFile(make: makeMixed, options: fixtureSaveOptions(frameSize: 16 << 10))),
        GoodFixture(
            name: "many-segments",
            summary: "600 one-page segments alternating kind and refs, data on every third page; 32 KiB frames",
            source: .memoryFile(make: makeManySegments, options: fixtureSaveOptions(frameSize: 32 << 10, level: 3))),
        GoodFixture(
            name: "chunk-boundary",
            summary: "a 2 GiB file whose 64 KiB tmpfs range spans the 1 GiB chunk boundary; a frame whose run crosses it; 32 KiB frames",
            source: .memoryFile(make: makeChunkBoundary, options: fixtureSaveOptions(frameSize: 32 << 10))),
        GoodFixture(
            name: "wsave-6mib",
            summary: "6 MiB of W-save pages (zero, incompressible, text, mostly zero) in one anonymous range; 4 MiB frames",
            source: .memoryFile(make: makeWSave, options: fixtureSaveOptions())),
        GoodFixture(
            name: "crafted",
            summary: "crafted through the encoders: a refs-0 system segment (freed, not reclaimed), frames of several runs across segments, a run at the end of the file; the base of the broken fixtures",
            source: .crafted({ try craftedBase().bytes }, crafted: craftedBase)),
        GoodFixture(
            name: "raw-image",
            summary: "RawImage.save of a sparse 300 KiB + 1234 byte image: holes, a zero data page, data up to its last partial page; 8 KiB frames",
            source: .rawImage(make: makeRawImage, kind: .anonymous, options: fixtureSaveOptions(frameSize: 8 << 10))),
        GoodFixture(
            name: "raw-image-holes",
            summary: "RawImage.save of a 5000-byte image that is one hole: no segment, no frame, restores to 5000 zero bytes",
            source: .rawImage(make: { path in
                let fd = try OwnedFileDescriptor.open(path, flags: O_RDWR | O_CREAT | O_TRUNC, mode: 0o644)
                try fd.truncate(to: 5000)
            }, kind: .tmpfs, options: fixtureSaveOptions())),
    ] }

    static func makeNothingStored() throws -> MemoryFile {
        let f = try MemoryFile()
        let kinds: [MemoryKind] = [.anonymous, .pageCache, .tmpfs, .mapped]
        for (i, kind) in kinds.enumerated() {
            let fr = try f.allocate(UInt64(i + 1) * 4096, kind: kind, direction: .bottomUp)
            for _ in 0..<i % 3 {
                f.incRef(fr)
            }
            if i % 2 == 1 {
                try writeThroughMapping(f, at: fr.start, [UInt8](repeating: 0, count: Int(fr.length)))
            }
        }
        return f
    }

    static func makeMixed() throws -> MemoryFile {
        let f = try MemoryFile()
        var freed: [FileRange] = []
        for i in 0..<48 {
            let kind = MemoryKind.allCases[i % 6]
            let pages = UInt64(1 + i % 5)
            let fr = try f.allocate(pages * 4096, kind: kind, direction: .bottomUp)
            switch i % 4 {
            case 0:
                break  // never touched
            case 1:
                try writeThroughMapping(f, at: fr.start, [UInt8](repeating: 0, count: Int(fr.length)))
            case 2:
                try fillWSave(f, fr, firstPage: 1000 + UInt64(i) * 8)
            default:
                // Data on every page, then the first page zeroed again.
                var data: [UInt8] = []
                for p in 0..<pages {
                    data += craftedPage(address: fr.start + p * 4096, seed: 7)
                }
                try writeThroughMapping(f, at: fr.start, data)
                try writeThroughMapping(f, at: fr.start, [UInt8](repeating: 0, count: 4096))
            }
            if i % 3 == 0 {
                f.incRef(fr)
            }
            if i % 7 == 0 {
                f.incRef(fr)
                f.incRef(fr)
            }
            if i % 5 == 4 {
                freed.append(fr)
            }
        }
        for fr in freed {
            f.decRef(fr)
        }
        f.waitForReclaim()
        return f
    }

    static func makeManySegments() throws -> MemoryFile {
        let f = try MemoryFile()
        for i in 0..<600 {
            let kind = MemoryKind.allCases[i % 6]
            let fr = try f.allocate(4096, kind: kind, direction: .bottomUp)
            // Kind repeats every 6 pages, refs every 4: neighbours always
            // differ in kind, so no two segments merge.
            for _ in 0..<(i % 4) {
                f.incRef(fr)
            }
            if i % 3 == 0 {
                try writeThroughMapping(f, at: fr.start, craftedPage(address: fr.start, seed: 600))
            }
        }
        return f
    }

    static func makeChunkBoundary() throws -> MemoryFile {
        let f = try MemoryFile()
        // Fill the first chunk but its last two pages, so that the next
        // bottom-up allocation straddles the chunk boundary.
        let filler = try f.allocate((1 << 30) - 8192, kind: .anonymous, direction: .topDown)
        precondition(filler.start == 0, "chunk-boundary fixture: filler at \(filler)")
        let straddling = try f.allocate(64 << 10, kind: .tmpfs, direction: .bottomUp)
        precondition(straddling.start == (1 << 30) - 8192, "chunk-boundary fixture: range at \(straddling)")
        try fillWSave(f, straddling, firstPage: 1 << 20)
        var data: [UInt8] = []
        for p in 0..<16 {
            data += craftedPage(address: straddling.start + UInt64(p) * 4096, seed: 30)
        }
        try writeThroughMapping(f, at: straddling.start, data)
        f.decRef(filler)
        let top = try f.allocate(8192, kind: .pageCache, direction: .topDown)
        try writeThroughMapping(f, at: top.start, craftedPage(address: top.start, seed: 31) + craftedPage(address: top.start + 4096, seed: 31))
        f.incRef(top)
        f.waitForReclaim()
        precondition(f.totalSize == 2 << 30, "chunk-boundary fixture: file size \(f.totalSize)")
        return f
    }

    static func makeWSave() throws -> MemoryFile {
        let f = try MemoryFile()
        let fr = try f.allocate(6 << 20, kind: .anonymous, direction: .bottomUp)
        try fillWSave(f, fr, firstPage: 0)
        return f
    }

    static func makeRawImage(_ path: String) throws {
        let fd = try OwnedFileDescriptor.open(path, flags: O_RDWR | O_CREAT | O_TRUNC, mode: 0o644)
        let length: UInt64 = 300 * 1024 + 1234
        try fd.truncate(to: length)
        func write(_ bytes: [UInt8], at offset: UInt64) throws {
            try bytes.withUnsafeBytes { try fd.descriptor.writeAll($0, atAbsoluteOffset: offset) }
        }
        // Data at the start, a zero data page, data in the middle spanning
        // several frames, and the last, partial page.
        try write(craftedPage(address: 0, seed: 300) + craftedPage(address: 4096, seed: 300), at: 0)
        try write([UInt8](repeating: 0, count: 4096), at: 64 << 10)
        var middle: [UInt8] = []
        for p in 0..<6 {
            middle += craftedPage(address: (128 << 10) + UInt64(p) * 4096, seed: 300)
        }
        try write(middle, at: 128 << 10)
        let lastPage = length / 4096 * 4096
        try write(Array(craftedPage(address: lastPage, seed: 300).prefix(Int(length - lastPage))), at: lastPage)
    }

    /// The crafted base: five segments (one freed but not reclaimed), three
    /// frames of 16, 8 and 8 KiB, runs that cross a segment boundary and
    /// one in the file's last page.
    static let baseSegments: [SegmentRecord] = [
        SegmentRecord(range: FileRange(start: 0, end: 16 << 10), refs: 1, kind: .anonymous),
        SegmentRecord(range: FileRange(start: 16 << 10, end: 32 << 10), refs: 3, kind: .pageCache),
        SegmentRecord(range: FileRange(start: 48 << 10, end: 64 << 10), refs: 0, kind: .system),
        SegmentRecord(range: FileRange(start: 64 << 10, end: 96 << 10), refs: 2, kind: .tmpfs),
        SegmentRecord(range: FileRange(start: (1 << 30) - 8192, end: 1 << 30), refs: 1, kind: .mapped),
    ]

    static let baseFrameRuns: [[FileRange]] = [
        [FileRange(start: 0, end: 8 << 10), FileRange(start: 12 << 10, end: 20 << 10)],
        [FileRange(start: 64 << 10, end: 72 << 10)],
        [FileRange(start: 80 << 10, end: 84 << 10), FileRange(start: (1 << 30) - 4096, end: 1 << 30)],
    ]

    static func craftedBase() -> CraftedCheckpoint {
        var c = CraftedCheckpoint()
        c.segments = baseSegments
        c.frames = baseFrameRuns.map { CraftedFrame(runs: $0, seed: 1) }
        return c
    }
}
