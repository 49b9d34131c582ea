import Foundation
@testable import Checkpoint
@testable import PGAlloc

// The broken fixtures of fixtures/v1/broken: each is the crafted base (or,
// for a few, a checkpoint of its own) with one thing wrong, and the error
// each reader must give. The expectations are written by hand from
// docs/FORMAT.md and the reader's order of checks, not taken from the
// reader's output: the generator copies them into manifest.json, and the
// tests compare the library's errors with the manifest.
//
// Outcomes are given for a file (seekable: trailer and index are read
// first) and for a stream (a pipe: frames, then index, trailer and end of
// input), where they differ.

/// An error a reader must throw: the CheckpointError's reason, section and,
/// for `invalidField`, the field.
struct ExpectedFailure: Hashable, CustomStringConvertible {
    var reason: String
    var section: String
    var field: String?

    init(_ reason: String, _ section: String, _ field: String? = nil) {
        self.reason = reason
        self.section = section
        self.field = field
    }

    init(_ error: CheckpointError) {
        section = error.section.description
        switch error.reason {
        case .notACheckpoint: reason = "notACheckpoint"
        case .unsupportedVersion(let v): reason = "unsupportedVersion(\(v))"
        case .truncated: reason = "truncated"
        case .checksumMismatch: reason = "checksumMismatch"
        case .invalidField(let f):
            reason = "invalidField"
            field = f
        case .badPayload: reason = "badPayload"
        case .trailingData: reason = "trailingData"
        case .unknownCriticalSection(let type):
            reason = "unknownCriticalSection"
            field = type.description
        case .limitExceeded: reason = "limitExceeded"
        case .authenticationFailed: reason = "authenticationFailed"
        }
    }

    var description: String {
        "\(reason) in \(section)" + (field.map { " (field \($0))" } ?? "")
    }

    var json: StableJSON {
        var members: [(String, StableJSON)] = [("reason", .string(reason)), ("section", .string(section))]
        if let field {
            members.append(("field", .string(field)))
        }
        return .object(members)
    }
}

/// A checkpoint that every reader must reject (or, for payload damage,
/// that readMetadata, which skips payloads, accepts).
struct BrokenFixture {
    var name: String
    var summary: String
    var make: () throws -> [UInt8]
    /// `readMetadata` on the file; nil: it succeeds.
    var readMetadata: ExpectedFailure?
    /// `verify` and `restore` (MemoryFile and RawImage) on the file.
    var restore: ExpectedFailure
    /// `restore` from a pipe.
    var stream: ExpectedFailure


    /// Found by every reader, the same way from a file and a stream.
    init(_ name: String, _ summary: String, everywhere e: ExpectedFailure, stream: ExpectedFailure? = nil, make: @escaping () throws -> [UInt8]) {
        self.name = name
        self.summary = summary
        self.make = make
        readMetadata = e
        restore = e
        self.stream = stream ?? e
    }

    /// Damage in a payload: found by verify and restore only.
    init(_ name: String, _ summary: String, payload e: ExpectedFailure, make: @escaping () throws -> [UInt8]) {
        self.name = name
        self.summary = summary
        self.make = make
        readMetadata = nil
        restore = e
        stream = e
    }
}

extension FixtureCatalog {
    typealias E = ExpectedFailure

    static func base() throws -> (bytes: [UInt8], layout: CraftedLayout) {
        try craftedBase().encoded()
    }

    /// The crafted base changed by `change`.
    static func variant(_ change: @escaping (inout CraftedCheckpoint) -> Void) -> () throws -> [UInt8] {
        {
            var c = craftedBase()
            change(&c)
            return try c.bytes
        }
    }

    /// The crafted base with the bits of `mask` flipped at the offset
    /// `offset` picks from the layout.
    static func flip(_ offset: @escaping (CraftedLayout) -> Int, _ mask: UInt8 = 0x01) -> () throws -> [UInt8] {
        {
            var (bytes, layout) = try base()
            bytes[offset(layout)] ^= mask
            return bytes
        }
    }

    /// The crafted base cut to the length `length` picks.
    static func cut(_ length: @escaping (CraftedLayout, Int) -> Int) -> () throws -> [UInt8] {
        {
            let (bytes, layout) = try base()
            return Array(bytes.prefix(length(layout, bytes.count)))
        }
    }

    /// The base's frame 1 (runs [64 KiB, 72 KiB), 8 KiB) with this payload.
    static func payload(_ make: @escaping ([UInt8]) throws -> [UInt8]) -> () throws -> [UInt8] {
        {
            var c = craftedBase()
            c.frames[1].payload = try make(c.frames[1].data)
            return try c.bytes
        }
    }

    static func craftedPages(_ pages: Int, seed: UInt64) -> [UInt8] {
        (0..<pages).flatMap { craftedPage(address: UInt64($0) * 4096, seed: seed) }
    }

    /// The first frame of the base whose record has padding.
    static func paddedFrame() throws -> Int {
        let (_, layout) = try base()
        for (i, p) in layout.framePayloads.enumerated() where (p.upperBound - layout.frameHeaders[i].lowerBound) % 8 != 0 {
            return i
        }
        throw FixtureError("no frame of the crafted base has padding")
    }

    static let maxCompressed16K = UInt32(CheckpointFormat.maxCompressedLength(frameLimit: 16 << 10))

    static var broken: [BrokenFixture] {
        let trailerMagic = E("invalidField", "trailer", "magic")
        let padded = (try? paddedFrame()) ?? 0
        return [
            // MARK: Header
            BrokenFixture("empty-file", "zero bytes", everywhere: E("truncated", "header")) { [] },
            BrokenFixture("not-a-checkpoint", "a line of text", everywhere: E("notACheckpoint", "header")) {
                Array("This is not a pgsnap checkpoint, just some text.\n".utf8)
            },
            BrokenFixture("magic-wrong", "the header magic's P changed to p", everywhere: E("notACheckpoint", "header")) {
                var (b, _) = try base()
                b[1] = 0x70
                return b
            },
            // Written when version 2 was a future version. Version 2 now
            // exists: the file is a version-1 body under a version-2
            // header, which a file reader finds at the trailer (version 1)
            // and a stream reader where version 2's section table should
            // be.
            BrokenFixture("version-2", "version 2 in the header, the rest version 1, headerCRC correct",
                          everywhere: E("invalidField", "trailer", "version"), stream: E("invalidField", "head section table", "tag"),
                          make: variant { $0.headerPatch = { putU32(&$0, at: 8, 2) } }),
            BrokenFixture("version-3", "a future version (3), headerCRC correct", everywhere: E("unsupportedVersion(3)", "header"),
                          make: variant { $0.headerPatch = { putU32(&$0, at: 8, 3) } }),
            BrokenFixture("data-beyond-data-size", "dataSize is 8 KiB short of the file: the last frame's last run lies beyond it",
                          everywhere: E("invalidField", "index", "entry 2 addresses"), stream: E("invalidField", "frame 2", "run 1"),
                          make: variant { $0.dataSize = (1 << 30) - 8192 }),
            BrokenFixture("truncated-in-header", "cut after 40 bytes, inside the header", everywhere: E("truncated", "header"),
                          make: cut { _, _ in 40 }),
            BrokenFixture("header-bit-flip", "one bit of fileSize flipped", everywhere: E("checksumMismatch", "header"),
                          make: flip { _ in 33 }),
            BrokenFixture("header-length", "headerLength 128", everywhere: E("invalidField", "header", "headerLength"),
                          make: variant { $0.headerPatch = { putU32(&$0, at: 12, 128) } }),
            BrokenFixture("header-flags", "flags 1", everywhere: E("invalidField", "header", "flags"),
                          make: variant { $0.headerPatch = { putU32(&$0, at: 16, 1) } }),
            BrokenFixture("header-page-size", "pageSize 8192", everywhere: E("invalidField", "header", "pageSize"),
                          make: variant { $0.headerPatch = { putU32(&$0, at: 20, 8192) } }),
            BrokenFixture("header-frame-limit-zero", "frameLimit 0", everywhere: E("invalidField", "header", "frameLimit"),
                          make: variant { $0.headerPatch = { putU32(&$0, at: 24, 0) } }),
            BrokenFixture("header-frame-limit-unaligned", "frameLimit 16484", everywhere: E("invalidField", "header", "frameLimit"),
                          make: variant { $0.headerPatch = { putU32(&$0, at: 24, 16484) } }),
            BrokenFixture("header-frame-limit-too-large", "frameLimit 128 MiB", everywhere: E("invalidField", "header", "frameLimit"),
                          make: variant { $0.headerPatch = { putU32(&$0, at: 24, 128 << 20) } }),
            BrokenFixture("header-frame-limit-below-frames", "frameLimit 8 KiB with a 16 KiB frame: the index says so first in a file, the frame in a stream",
                          everywhere: E("invalidField", "index", "entry 0 uncompressedLength"),
                          stream: E("invalidField", "frame 0", "uncompressedLength"),
                          make: variant { $0.frameLimit = 8 << 10 }),
            BrokenFixture("header-kind-count", "kindCount 7", everywhere: E("invalidField", "header", "kindCount"),
                          make: variant { $0.headerPatch = { putU32(&$0, at: 28, 7) } }),
            BrokenFixture("header-file-size-unaligned", "fileSize 1 GiB + 4 KiB", everywhere: E("invalidField", "header", "fileSize"),
                          make: variant { $0.fileSize = (1 << 30) + 4096 }),
            BrokenFixture("header-file-size-too-large", "fileSize 2^63", everywhere: E("invalidField", "header", "fileSize"),
                          make: variant { $0.headerPatch = { putU64(&$0, at: 32, 1 << 63) } }),
            BrokenFixture("header-data-size", "dataSize 2 GiB, larger than fileSize", everywhere: E("invalidField", "header", "dataSize"),
                          make: variant { $0.dataSize = 2 << 30 }),
            BrokenFixture("header-segment-count-over-limit", "segmentCount 2^40, more than one per page", everywhere: E("invalidField", "header", "segmentCount"),
                          make: variant { $0.segmentCount = 1 << 40 }),
            BrokenFixture("header-reserved", "the reserved word 1", everywhere: E("invalidField", "header", "reserved"),
                          make: variant { $0.headerPatch = { putU32(&$0, at: 56, 1) } }),

            // MARK: Metadata
            BrokenFixture("truncated-after-header", "cut right after the header", everywhere: E("truncated", "file"),
                          stream: E("truncated", "metadata"), make: cut { _, _ in 64 }),
            BrokenFixture("truncated-in-metadata", "cut inside the second segment record", everywhere: E("truncated", "file"),
                          stream: E("truncated", "metadata"), make: cut { _, _ in 64 + 32 + 5 }),
            BrokenFixture("segment-count-beyond-file", "segmentCount 262144 (allowed for 1 GiB) in a 4 KiB file",
                          everywhere: E("truncated", "file"), stream: E("truncated", "metadata"),
                          make: variant { $0.segmentCount = 262144 }),
            BrokenFixture("metadata-bit-flip", "the top bit of segment 1's refs flipped (still a valid value)", everywhere: E("checksumMismatch", "metadata"),
                          make: flip({ _ in 64 + 32 + 16 + 7 }, 0x80)),
            BrokenFixture("metadata-crc-flip", "a bit of metadataCRC flipped", everywhere: E("checksumMismatch", "metadata"),
                          make: flip { $0.metadata.upperBound - 8 }),
            BrokenFixture("metadata-reserved", "the word after metadataCRC 1", everywhere: E("invalidField", "metadata", "reserved"),
                          make: variant { $0.metadataReserved = 1 }),
            BrokenFixture("segment-reserved", "a reserved byte of segment 0 set", everywhere: E("invalidField", "metadata", "segment 0 reserved"),
                          make: variant { $0.metadataPatch = { $0[25] = 1 } }),
            BrokenFixture("segments-overlap", "segment 1 starts inside segment 0", everywhere: E("invalidField", "metadata", "segment 1 order"),
                          make: variant { $0.segments[1].range.start = 8 << 10 }),
            BrokenFixture("segments-unsorted", "segments 3 and 4 swapped", everywhere: E("invalidField", "metadata", "segment 4 order"),
                          make: variant {
                              $0.indexSegments = $0.segments
                              $0.segments.swapAt(3, 4)
                          }),
            BrokenFixture("segments-not-canonical", "segments 0 and 1 touch with the same kind and refs", everywhere: E("invalidField", "metadata", "segment 1"),
                          make: variant {
                              $0.segments[1].kind = .anonymous
                              $0.segments[1].refs = 1
                          }),
            BrokenFixture("segment-freed-not-system", "a refs-0 segment of kind tmpfs", everywhere: E("invalidField", "metadata", "segment 2 kind"),
                          make: variant { $0.segments[2].kind = .tmpfs }),
            BrokenFixture("segment-beyond-file", "the last segment ends 4 KiB past fileSize", everywhere: E("invalidField", "metadata", "segment 4 range"),
                          make: variant { $0.segments[4].range.end = (1 << 30) + 4096 }),
            BrokenFixture("segment-empty", "segment 3 with start == end", everywhere: E("invalidField", "metadata", "segment 3 range"),
                          make: variant {
                              $0.indexSegments = $0.segments
                              $0.segments[3].range.end = $0.segments[3].range.start
                          }),
            BrokenFixture("segment-unaligned", "segment 0 ends at 16 KiB + 100", everywhere: E("invalidField", "metadata", "segment 0 range"),
                          make: variant { $0.segments[0].range.end = (16 << 10) + 100 }),
            BrokenFixture("segment-kind-unknown", "segment 1 of kind 6", everywhere: E("invalidField", "metadata", "segment 1 kind"),
                          make: variant { $0.metadataPatch = { $0[32 + 24] = 6 } }),

            // MARK: Frames
            BrokenFixture("truncated-in-frame-header", "cut 20 bytes into frame 1's header: a file's last 64 bytes are then no trailer",
                          everywhere: trailerMagic, stream: E("truncated", "frame 1"),
                          make: cut { l, _ in l.frameHeaders[1].lowerBound + 20 }),
            BrokenFixture("truncated-in-payload", "cut in the middle of frame 1's payload",
                          everywhere: trailerMagic, stream: E("truncated", "frame 1"),
                          make: cut { l, _ in (l.framePayloads[1].lowerBound + l.framePayloads[1].upperBound) / 2 }),
            BrokenFixture("frame-header-bit-flip", "a bit of frame 1's payloadCRC field flipped", everywhere: E("checksumMismatch", "frame 1"),
                          make: flip { $0.frameHeaders[1].lowerBound + 32 }),
            BrokenFixture("frame-run-bit-flip", "the high bit of the last byte of frame 0's run table set: its last number runs past the table",
                          everywhere: E("invalidField", "frame 0", "run 1 length"),
                          make: flip({ $0.frameHeaders[0].lowerBound + 40 + 3 }, 0x80)),
            BrokenFixture("frame-payload-bit-flip", "a bit of frame 1's payload flipped", payload: E("checksumMismatch", "frame 1"),
                          make: flip { $0.framePayloads[1].lowerBound + 10 }),
            BrokenFixture("frame-tag", "frame 1's tag XRM1", everywhere: E("invalidField", "frame 1", "tag"),
                          make: variant { $0.frames[1].headerPatch = { $0[0] = 0x58 } }),
            BrokenFixture("frame-sequence", "frame 1's sequence 5", everywhere: E("invalidField", "frame 1", "sequence"),
                          make: variant { $0.frames[1].sequence = 5 }),
            BrokenFixture("frame-first-address-unaligned", "frame 1's firstAddress 64 KiB + 512", everywhere: E("invalidField", "frame 1", "firstAddress"),
                          make: variant { $0.frames[1].headerPatch = { putU64(&$0, at: 16, (64 << 10) + 512) } }),
            BrokenFixture("frame-first-address-beyond-file", "frame 2's firstAddress 1 GiB, the file's end", everywhere: E("invalidField", "frame 2", "firstAddress"),
                          make: variant { $0.frames[2].headerPatch = { putU64(&$0, at: 16, 1 << 30) } }),
            BrokenFixture("frame-overlaps-previous-frame", "frame 1's run starts at 16 KiB, before frame 0's last run ends (20 KiB)",
                          everywhere: E("invalidField", "frame 1", "firstAddress"),
                          make: variant {
                              $0.frames[1].indexRuns = $0.frames[1].runs
                              $0.frames[1].runs = [FileRange(start: 16 << 10, end: 24 << 10)]
                          }),
            BrokenFixture("frame-padding", "a padding byte after a payload 1 (no checksum covers padding)",
                          everywhere: E("invalidField", "frame \(padded)", "padding"),
                          make: variant { $0.frames[padded].paddingByte = 1 }),
            BrokenFixture("frame-uncompressed-length", "frame 0 says 12 KiB for 16 KiB of runs", everywhere: E("invalidField", "frame 0", "uncompressedLength"),
                          make: variant { $0.frames[0].uncompressedLength = 12 << 10 }),
            BrokenFixture("frame-run-count-zero", "frame 1's runCount 0", everywhere: E("invalidField", "frame 1", "runCount"),
                          make: variant { $0.frames[1].headerPatch = { putU32(&$0, at: 4, 0) } }),
            BrokenFixture("frame-run-count-too-many", "frame 1's runCount 3 for 8 KiB", everywhere: E("invalidField", "frame 1", "runCount"),
                          make: variant { $0.frames[1].headerPatch = { putU32(&$0, at: 4, 3) } }),
            BrokenFixture("frame-run-table-beyond-file", "frameLimit 64 MiB and frame 2 claiming 64 MiB in 16384 runs with a 320 KiB run table, in a 4 KiB file",
                          everywhere: E("truncated", "frame 2"),
                          make: variant {
                              $0.frameLimit = 64 << 20
                              $0.frames[2].headerPatch = {
                                  putU32(&$0, at: 4, 16384)
                                  putU32(&$0, at: 24, 64 << 20)
                                  putU32(&$0, at: 36, 20 * 16384)
                              }
                          }),
            BrokenFixture("frame-run-table-length-short", "frame 1's runTableLength 1 for one run (at least 2)",
                          everywhere: E("invalidField", "frame 1", "runTableLength"),
                          make: variant { $0.frames[1].headerPatch = { putU32(&$0, at: 36, 1) } }),
            BrokenFixture("frame-run-table-length-long", "frame 0's run table with a stray fifth byte after its two runs",
                          everywhere: E("invalidField", "frame 0", "runTableLength"),
                          make: variant { $0.frames[0].headerPatch = { replaceRunTable(&$0, with: [0, 2, 1, 2, 0]) } }),
            BrokenFixture("frame-run-leb128-not-shortest", "frame 1's gap 0 written as 80 00", everywhere: E("invalidField", "frame 1", "run 0 gap"),
                          make: variant { $0.frames[1].headerPatch = { replaceRunTable(&$0, with: [0x80, 0x00, 2]) } }),
            BrokenFixture("frame-run-leb128-too-large", "frame 1's gap a 10-byte number of 65 bits", everywhere: E("invalidField", "frame 1", "run 0 gap"),
                          make: variant {
                              $0.frames[1].headerPatch = { replaceRunTable(&$0, with: [UInt8](repeating: 0xFF, count: 9) + [0x02, 2]) }
                          }),
            BrokenFixture("frame-run-gap-overflow", "frame 1's gap 2^62 pages", everywhere: E("invalidField", "frame 1", "run 0"),
                          make: variant {
                              $0.frames[1].headerPatch = { replaceRunTable(&$0, with: [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 2]) }
                          }),
            BrokenFixture("frame-compressed-length-beyond-file", "frame 2's compressedLength the largest allowed, past the end of the file",
                          everywhere: E("truncated", "frame 2"),
                          make: variant { $0.frames[2].headerPatch = { putU32(&$0, at: 28, maxCompressed16K) } }),
            BrokenFixture("frame-compressed-length-over-limit", "frame 2's compressedLength one more than ZSTD_compressBound(frameLimit)",
                          everywhere: E("invalidField", "frame 2", "compressedLength"),
                          make: variant { $0.frames[2].headerPatch = { putU32(&$0, at: 28, maxCompressed16K + 1) } }),
            BrokenFixture("frame-compressed-length-zero", "frame 2's compressedLength 0", everywhere: E("invalidField", "frame 2", "compressedLength"),
                          make: variant { $0.frames[2].headerPatch = { putU32(&$0, at: 28, 0) } }),
            BrokenFixture("run-beyond-file", "frame 2's second run [1 GiB, 1 GiB + 4 KiB) past fileSize (the index tells the truth)",
                          everywhere: E("invalidField", "frame 2", "run 1"),
                          make: variant {
                              $0.frames[2].indexRuns = $0.frames[2].runs
                              $0.frames[2].runs[1] = FileRange(start: 1 << 30, end: (1 << 30) + 4096)
                          }),
            BrokenFixture("run-outside-segments", "frame 1's run in the gap [36 KiB, 44 KiB) between segments",
                          everywhere: E("invalidField", "frame 1", "run 0"),
                          make: variant {
                              $0.frames[1].indexRuns = $0.frames[1].runs
                              $0.frames[1].runs = [FileRange(start: 36 << 10, end: 44 << 10)]
                          }),
            BrokenFixture("run-in-freed-segment", "frame 1's run in the refs-0 segment [48 KiB, 64 KiB)",
                          everywhere: E("invalidField", "frame 1", "run 0"),
                          make: variant {
                              $0.frames[1].indexRuns = $0.frames[1].runs
                              $0.frames[1].runs = [FileRange(start: 48 << 10, end: 56 << 10)]
                          }),
            BrokenFixture("run-partly-outside", "frame 1's run [92 KiB, 100 KiB) running past segment 3",
                          everywhere: E("invalidField", "frame 1", "run 0"),
                          make: variant {
                              $0.frames[1].indexRuns = $0.frames[1].runs
                              $0.frames[1].runs = [FileRange(start: 92 << 10, end: 100 << 10)]
                          }),
            BrokenFixture("run-empty", "frame 0's second run 0 pages long", everywhere: E("invalidField", "frame 0", "run 1"),
                          make: variant { $0.frames[0].headerPatch = { replaceRunTable(&$0, with: [0, 2, 1, 0]) } }),

            // MARK: Payloads (readMetadata skips them)
            BrokenFixture("bomb-content-larger", "frame 1 (8 KiB) holds a valid zstd frame of 16 KiB: a decompression bomb, every CRC correct",
                          payload: E("badPayload", "frame 1"), make: payload { _ in try compress(craftedPages(4, seed: 9)) }),
            BrokenFixture("bomb-content-size-lies", "frame 1's zstd frame declares 8 KiB and holds 16 KiB of raw blocks",
                          payload: E("badPayload", "frame 1"),
                          make: payload { _ in HandmadeZstd.frame(declaring: 8192, content: craftedPages(4, seed: 9)) }),
            BrokenFixture("bomb-no-content-size", "frame 1's zstd frame declares no content size and holds 16 KiB",
                          payload: E("badPayload", "frame 1"),
                          make: payload { _ in HandmadeZstd.frameWithoutContentSize(craftedPages(4, seed: 9)) }),
            BrokenFixture("bomb-huge-content-size", "frame 1's zstd frame declares 4 GiB - 1",
                          payload: E("badPayload", "frame 1"),
                          make: payload { d in HandmadeZstd.frame(windowLog: 20, declaring: .max, content: d) }),
            BrokenFixture("payload-window-too-large", "frame 1's zstd frame asks for a 256 MiB window",
                          payload: E("badPayload", "frame 1"),
                          make: payload { d in HandmadeZstd.frame(windowLog: 28, declaring: 8192, content: d) }),
            BrokenFixture("payload-skippable", "frame 1's payload a skippable zstd frame", payload: E("badPayload", "frame 1"),
                          make: payload { _ in HandmadeZstd.skippable(16) }),
            BrokenFixture("payload-two-frames", "frame 1's payload its zstd frame followed by an empty one", payload: E("badPayload", "frame 1"),
                          make: payload { d in try compress(d) + compress([]) }),
            BrokenFixture("payload-garbage", "frame 1's payload 64 bytes of 0xab", payload: E("badPayload", "frame 1"),
                          make: payload { _ in [UInt8](repeating: 0xAB, count: 64) }),
            BrokenFixture("payload-short", "frame 1's zstd frame holds 4 KiB of its 8 KiB", payload: E("badPayload", "frame 1"),
                          make: payload { d in try compress(Array(d.prefix(4096))) }),
            BrokenFixture("bomb-after-rle-frames", "frameLimit 64 MiB: seven valid 64 MiB frames of one byte each (a few hundred bytes of payload), then a frame whose zstd frame holds 64 MiB + 4 KiB",
                          payload: E("badPayload", "frame 7"), make: makeRLEBombChain),

            // MARK: Index
            BrokenFixture("truncated-in-index", "cut 50 bytes into the index", everywhere: trailerMagic,
                          stream: E("truncated", "index"), make: cut { l, _ in l.index.lowerBound + 50 }),
            BrokenFixture("index-bit-flip", "a bit of the index's accounting (informative, but checksummed) flipped",
                          everywhere: E("checksumMismatch", "index"), make: flip { $0.index.lowerBound + 80 }),
            BrokenFixture("index-entry-bit-flip", "a bit of entry 0's compressedLength flipped", everywhere: E("checksumMismatch", "index"),
                          make: flip { $0.index.lowerBound + 120 + 12 }),
            BrokenFixture("index-crc-flip", "a bit of indexCRC flipped", everywhere: E("checksumMismatch", "index"),
                          make: flip { $0.index.upperBound - 8 }),
            BrokenFixture("index-tag", "the index tag XDX1: a stream takes it for a fourth frame",
                          everywhere: E("invalidField", "index", "tag"), stream: E("invalidField", "frame 3", "tag"),
                          make: variant { $0.indexPatch = { $0[0] = 0x58 } }),
            BrokenFixture("index-kind-count", "the index's kindCount 7", everywhere: E("invalidField", "index", "kindCount"),
                          make: variant { $0.indexPatch = { putU32(&$0, at: 4, 7) } }),
            BrokenFixture("index-reserved", "the word after indexCRC 1", everywhere: E("invalidField", "index", "reserved"),
                          make: variant { $0.indexReserved = 1 }),
            BrokenFixture("index-frame-count-more", "the index says 4 frames, the trailer 3; a stream reads a fourth entry from the CRC and trailer",
                          everywhere: E("invalidField", "index", "frameCount"), stream: E("invalidField", "index", "entry 3 offset"),
                          make: variant { $0.indexPatch = { putU64(&$0, at: 8, 4) } }),
            BrokenFixture("index-frame-count-fewer", "index and trailer say 2 frames (2 entries) for 3",
                          everywhere: E("invalidField", "frame 2", "offset"), stream: E("invalidField", "index", "frameCount"),
                          make: variant {
                              $0.totalsPatch = { $0.frameCount = 2 }
                              $0.entriesPatch = { $0.removeLast() }
                          }),
            BrokenFixture("index-stored-per-kind", "4 KiB of storedPerKind moved from anonymous to tmpfs (the sum unchanged)",
                          everywhere: E("invalidField", "index", "storedPerKind"),
                          make: variant {
                              $0.totalsPatch = { t in
                                  t.storedPerKind[.anonymous] -= 4096
                                  t.storedPerKind[.tmpfs] += 4096
                              }
                          }),
            BrokenFixture("index-stored-per-kind-sum", "storedPerKind adds up to more than storedBytes",
                          everywhere: E("invalidField", "index", "storedPerKind"),
                          make: variant { $0.totalsPatch = { $0.storedPerKind[.anonymous] += 4096 } }),
            BrokenFixture("index-stored-bytes", "index and trailer claim 4 KiB more stored than the frames hold",
                          everywhere: E("invalidField", "index", "storedBytes"),
                          make: variant {
                              $0.totalsPatch = { t in
                                  t.storedBytes += 4096
                                  t.storedPerKind[.anonymous] += 4096
                              }
                          }),
            BrokenFixture("index-entry-outside-file", "entry 1's offset 1 TiB", everywhere: E("invalidField", "index", "entry 1 offset"),
                          make: variant { $0.entriesPatch = { $0[1].offset = 1 << 40 } }),
            BrokenFixture("index-entry-misplaced", "entry 1's offset 8 bytes off (inside the file, aligned)",
                          everywhere: E("invalidField", "index", "entries"),
                          make: variant { $0.entriesPatch = { $0[1].offset += 8 } }),
            BrokenFixture("index-entry-first-offset", "entry 0's offset not right after the metadata",
                          everywhere: E("invalidField", "index", "entry 0 offset"),
                          make: variant { $0.entriesPatch = { $0[0].offset += 8 } }),
            BrokenFixture("index-entry-addresses", "entry 0's endAddress 2 GiB, past fileSize",
                          everywhere: E("invalidField", "index", "entry 0 addresses"),
                          make: variant { $0.entriesPatch = { $0[0].endAddress = 2 << 30 } }),

            // MARK: Trailer and end of file
            BrokenFixture("truncated-before-trailer", "cut where the trailer starts", everywhere: trailerMagic,
                          stream: E("truncated", "trailer"), make: cut { l, _ in l.trailer.lowerBound }),
            BrokenFixture("truncated-in-trailer", "the last 10 bytes cut", everywhere: trailerMagic,
                          stream: E("truncated", "trailer"), make: cut { _, n in n - 10 }),
            BrokenFixture("trailer-bit-flip", "a bit of the trailer's storedBytes flipped", everywhere: E("checksumMismatch", "trailer"),
                          make: flip { $0.trailer.lowerBound + 50 }),
            BrokenFixture("trailer-magic", "the trailer magic's P changed", everywhere: trailerMagic,
                          make: variant { $0.trailerBytesPatch = { $0[1] ^= 0x01 } }),
            BrokenFixture("trailer-version-2", "the trailer's version 2, trailerCRC correct", everywhere: E("invalidField", "trailer", "version"),
                          make: variant {
                              $0.trailerBytesPatch = {
                                  putU32(&$0, at: 8, 2)
                                  resealCRC(&$0, over: 0..<60, at: 60)
                              }
                          }),
            BrokenFixture("trailer-length", "trailerLength 128", everywhere: E("invalidField", "trailer", "trailerLength"),
                          make: variant {
                              $0.trailerBytesPatch = {
                                  putU32(&$0, at: 12, 128)
                                  resealCRC(&$0, over: 0..<60, at: 60)
                              }
                          }),
            BrokenFixture("trailer-header-crc", "the trailer's copy of headerCRC off by one bit", everywhere: E("invalidField", "trailer", "headerCRC"),
                          make: variant { $0.trailerPatch = { $0.headerCRC ^= 1 } }),
            BrokenFixture("trailer-index-offset-outside", "indexOffset 1 TiB", everywhere: E("invalidField", "trailer", "checkpointLength"),
                          make: variant { $0.trailerPatch = { $0.indexOffset = 1 << 40 } }),
            BrokenFixture("trailer-index-offset-unaligned", "indexOffset 4 bytes off", everywhere: E("invalidField", "trailer", "indexOffset"),
                          make: variant { $0.trailerPatch = { $0.indexOffset += 4 } }),
            BrokenFixture("trailer-index-length-huge", "indexLength 2^62", everywhere: E("invalidField", "trailer", "indexLength"),
                          make: variant { $0.trailerPatch = { $0.indexLength = 1 << 62 } }),
            BrokenFixture("trailer-frame-count-huge", "frameCount 2^32 (indexLength to match): no room for so many frames",
                          everywhere: E("invalidField", "trailer", "indexOffset"),
                          make: variant {
                              $0.trailerPatch = { t in
                                  t.frameCount = 1 << 32
                                  t.indexLength = IndexShape(version: 1, entryLength: IndexEntryLayout.recordLength).length(frameCount: 1 << 32)!
                              }
                          }),
            BrokenFixture("trailer-checkpoint-length", "checkpointLength 8 more", everywhere: E("invalidField", "trailer", "checkpointLength"),
                          make: variant { $0.trailerPatch = { $0.checkpointLength += 8 } }),
            BrokenFixture("trailer-stored-bytes", "the trailer's storedBytes 4 KiB more than the index's",
                          everywhere: E("invalidField", "trailer", "storedBytes"), stream: E("invalidField", "trailer", "fields"),
                          make: variant { $0.trailerPatch = { $0.storedBytes += 4096 } }),
            BrokenFixture("trailing-zeros", "8 zero bytes after the trailer: a file's last 64 bytes are then no trailer",
                          everywhere: trailerMagic, stream: E("trailingData", "file")) {
                try base().bytes + [UInt8](repeating: 0, count: 8)
            },
            BrokenFixture("trailing-byte", "one byte after the trailer", everywhere: trailerMagic, stream: E("trailingData", "file")) {
                try base().bytes + [0x0A]
            },
            BrokenFixture("trailing-trailer-copy", "a second copy of the trailer after the trailer",
                          everywhere: E("invalidField", "trailer", "checkpointLength"), stream: E("trailingData", "file")) {
                let (b, l) = try base()
                return b + b[l.trailer]
            },
        ]
    }

    /// Seven 64 MiB frames of one repeated byte, then a bomb: what a
    /// restore of a few hundred bytes can make a reader decompress.
    static func makeRLEBombChain() throws -> [UInt8] {
        let size = 64 << 20
        var c = CraftedCheckpoint()
        c.frameLimit = UInt32(size)
        c.segments = [SegmentRecord(range: FileRange(start: 0, end: 512 << 20), refs: 1, kind: .anonymous)]
        var compressor = try ZstdCompressor(level: 1)
        for i in 0..<8 {
            let run = FileRange(start: UInt64(i * size), end: UInt64((i + 1) * size))
            var f = CraftedFrame(runs: [run], data: [])
            let content = [UInt8](repeating: UInt8(i + 1), count: i == 7 ? size + 4096 : size)
            f.payload = try compress(content, with: &compressor)
            f.uncompressedLength = UInt32(size)
            c.frames.append(f)
        }
        return try c.bytes
    }
}
