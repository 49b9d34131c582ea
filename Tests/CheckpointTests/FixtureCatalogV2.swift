import Foundation
@testable import Checkpoint
@testable import PGAlloc

// The fixtures of fixtures/v2: checkpoints of format version 2, written by
// the writer and crafted through the encoders, with sections; and broken
// ones, each the crafted base with one thing wrong about its sections (or
// a rule version 2 added). Expectations are written by hand from
// docs/FORMAT.md and the reader's order: from a file, header, trailer,
// index, tail sections, head sections, frames; from a stream, header,
// head sections, frames, index, tail sections, trailer.

enum FixtureCatalogV2 {
    typealias E = ExpectedFailure

    /// Annotations the writer-made fixtures carry.
    static let annotations = ["created": "2026-11-30T12:00:00Z", "source": "fixture", "note": "fixtures/v2"]

    static func options(frameSize: Int = 4 << 20, level: Int32 = 1) -> SaveOptions {
        var o = fixtureSaveOptions(frameSize: frameSize, level: level)
        o.annotations = annotations
        return o
    }

    // empty, mixed and raw-image were written before page hashes and
    // references (no PHSH): they stay as an earlier release wrote them.
    static var good: [GoodFixture] { [
        GoodFixture(
            name: "empty",
            summary: "a new MemoryFile: size 0, no segment, no frame; SEGT (empty), ANNO and ACCT",
            source: .memoryFile(make: { try MemoryFile() }, options: options()), madeByOlderWriter: true),
        GoodFixture(
            name: "mixed",
            summary: "the v1 mixed workload (48 allocations of all six kinds, refs 1 to 4, holes, zero and data pages) saved as version 2 with annotations; 16 KiB frames",
            source: .memoryFile(make: FixtureCatalog.makeMixed, options: options(frameSize: 16 << 10)), madeByOlderWriter: true),
        GoodFixture(
            name: "raw-image",
            summary: "the v1 raw image (300 KiB + 1234 bytes, holes, a zero page, a last partial page) saved as version 2; 8 KiB frames",
            source: .rawImage(make: FixtureCatalog.makeRawImage, kind: .anonymous, options: options(frameSize: 8 << 10)),
            madeByOlderWriter: true),
        GoodFixture(
            name: "dedup-image",
            summary: "a raw image whose pages repeat (a page four times, two pages twice, across 8 KiB frames): each stored once, the copies in REFS (link 0); PHSH",
            source: .rawImage(make: makeRepeatingImage, kind: .tmpfs, options: options(frameSize: 8 << 10))),
        GoodFixture(
            name: "chain-parent",
            summary: "a MemoryFile of 40 pages in two kinds, saved in full with page hashes (PHSH): the parent of chain-child; 16 KiB frames",
            source: .memoryFile(make: makeChainFile, options: options(frameSize: 16 << 10))),
        GoodFixture(
            name: "chain-child",
            summary: "chain-parent's memory with 2 pages rewritten, a copy of one of them, a copy of an unchanged page and a page zeroed, saved against chain-parent.pgsnap: PRNT, PHSH, REFS (link 1 and link 0)",
            source: .incremental(parent: "chain-parent", make: makeChainFile, change: changeChainFile, options: options(frameSize: 16 << 10))),
        GoodFixture(
            name: "crafted",
            summary: "the v1 crafted base (a refs-0 segment, frames of several runs, a run at the end of the file) as version 2 with an ANNO section; the base of the broken fixtures and of the sweeps",
            source: .crafted({ try craftedBase().bytes }, crafted: craftedBase)),
        GoodFixture(
            name: "prefetch",
            summary: "the crafted base with a PREF section: frames 2, 0 (frame 1 last, in address order)",
            source: .crafted({ try withPrefetch().bytes }, crafted: withPrefetch)),
        GoodFixture(
            name: "unknown-ancillary",
            summary: "the crafted base with an unknown ancillary head section (XHDR) and tail section (XTLR), which readers skip",
            source: .crafted({ try withUnknownAncillary().bytes }, crafted: withUnknownAncillary)),
    ] }

    static func craftedBase() -> CraftedCheckpoint {
        var c = FixtureCatalog.craftedBase()
        c.version = 2
        c.headSections = [
            CraftedSection(type: .annotations, flags: [], payload: AnnotationsSection.encode(["note": "crafted", "source": "FixtureCatalogV2"]))
        ]
        return c
    }

    /// 24 pages of 4 KiB with holes; page 1 appears at 1, 5, 9 and 20,
    /// pages 2 and 3 again at 12 and 13.
    static func makeRepeatingImage(_ path: String) throws {
        let fd = try OwnedFileDescriptor.open(path, flags: O_RDWR | O_CREAT | O_TRUNC, mode: 0o644)
        try fd.truncate(to: 24 * 4096 + 100)
        func write(_ bytes: [UInt8], page: UInt64) throws {
            try bytes.withUnsafeBytes { try fd.descriptor.writeAll($0, atAbsoluteOffset: page * 4096) }
        }
        for p: UInt64 in [0, 2, 3, 6, 7, 14, 22] {
            try write(craftedPage(address: p * 4096, seed: 500), page: p)
        }
        for p: UInt64 in [1, 5, 9, 20] {
            try write(craftedPage(address: 4096, seed: 501), page: p)
        }
        try write(craftedPage(address: 2 * 4096, seed: 500) + craftedPage(address: 3 * 4096, seed: 500), page: 12)
        try write(Array(craftedPage(address: 24 * 4096, seed: 500).prefix(100)), page: 24)
    }

    /// The memory of chain-parent: 24 anonymous and 16 tmpfs pages of
    /// data.
    static func makeChainFile() throws -> MemoryFile {
        let f = try MemoryFile()
        let a = try f.allocate(24 * 4096, kind: .anonymous)
        let b = try f.allocate(16 * 4096, kind: .tmpfs)
        for range in [a, b] {
            var data: [UInt8] = []
            for p in 0..<(range.length / 4096) {
                data += craftedPage(address: range.start + p * 4096, seed: 600)
            }
            try writeThroughMapping(f, at: range.start, data)
        }
        return f
    }

    /// What changes between chain-parent and chain-child: pages 3 and 17
    /// rewritten, page 30 a copy of the new page 3 (stored once), page 8 a
    /// copy of page 20 (stored: only pages before it in address order are
    /// looked up), page 25 zeroed.
    static func changeChainFile(_ f: MemoryFile) throws {
        let base = f.usageSnapshot.segments.first!.0.start
        for p: UInt64 in [3, 17] {
            try writeThroughMapping(f, at: base + p * 4096, craftedPage(address: base + p * 4096, seed: 601))
        }
        try writeThroughMapping(f, at: base + 30 * 4096, craftedPage(address: base + 3 * 4096, seed: 601))
        try writeThroughMapping(f, at: base + 8 * 4096, craftedPage(address: base + 20 * 4096, seed: 600))
        try writeThroughMapping(f, at: base + 25 * 4096, [UInt8](repeating: 0, count: 4096))
    }

    static func withPrefetch() -> CraftedCheckpoint {
        var c = craftedBase()
        c.tailSections.append(CraftedSection(type: .prefetch, flags: [], payload: PrefetchSection.encode([2, 0])))
        return c
    }

    static func withUnknownAncillary() -> CraftedCheckpoint {
        var c = craftedBase()
        c.headSections.append(CraftedSection("XHDR", payload: Array("an extension this reader does not know".utf8)))
        c.tailSections.append(CraftedSection("XTLR", payload: [UInt8](repeating: 0x5A, count: 13)))
        return c
    }

    static func variant(_ change: @escaping (inout CraftedCheckpoint) -> Void) -> () throws -> [UInt8] {
        {
            var c = craftedBase()
            change(&c)
            return try c.bytes
        }
    }

    static var broken: [BrokenFixture] {
        let headTable = "head section table"
        let tailTable = "tail section table"
        return [
            BrokenFixture("version-3", "a future version (3), headerCRC correct", everywhere: E("unsupportedVersion(3)", "header"),
                          make: variant { $0.headerPatch = { putU32(&$0, at: 8, 3) } }),
            BrokenFixture("unknown-critical-head", "an unknown critical head section XCRT",
                          everywhere: E("unknownCriticalSection", headTable, "XCRT"),
                          make: variant { $0.headSections.append(CraftedSection("XCRT", flags: .critical, payload: [1, 2, 3])) }),
            BrokenFixture("unknown-critical-tail", "an unknown critical tail section ZCRT",
                          everywhere: E("unknownCriticalSection", tailTable, "ZCRT"),
                          make: variant { $0.tailSections.append(CraftedSection("ZCRT", flags: .critical, payload: [4])) }),
            BrokenFixture("section-beyond-file", "an unknown ancillary head section whose length says 2^40 bytes (it holds 8): from a stream, read until the input ends",
                          everywhere: E("invalidField", headTable, "entry 2 length"), stream: E("truncated", "section XBIG"),
                          make: variant {
                              $0.headSections.append(CraftedSection("XBIG", payload: [UInt8](repeating: 7, count: 8)))
                              $0.headTablePatch = { $0[2].length = 1 << 40 }
                          }),
            BrokenFixture("duplicate-section", "two ANNO sections", everywhere: E("invalidField", headTable, "entry 2 type"),
                          make: variant { $0.headSections.append($0.headSections[0]) }),
            BrokenFixture("duplicate-across-tables", "an ancillary XDUP in the head and in the tail: found in the second table read (the head from a file, the tail from a stream)",
                          everywhere: E("invalidField", headTable, "entry 2 type"), stream: E("invalidField", tailTable, "entry 1 type"),
                          make: variant {
                              $0.headSections.append(CraftedSection("XDUP", payload: [1]))
                              $0.tailSections.append(CraftedSection("XDUP", payload: [2]))
                          }),
            BrokenFixture("overlapping-sections", "ANNO's offset is SEGT's", everywhere: E("invalidField", headTable, "entry 1 offset"),
                          make: variant { $0.headTablePatch = { $0[1].offset = $0[0].offset } }),
            BrokenFixture("section-crc", "a byte of ANNO's payload changed after its CRC", everywhere: E("checksumMismatch", "section ANNO"),
                          make: variant { $0.sectionBytesPatch = { type, bytes in if type == .annotations { bytes[4] ^= 0x20 } } }),
            BrokenFixture("missing-segments", "no SEGT section", everywhere: E("invalidField", headTable, "sections"),
                          make: variant { $0.writeSegmentSection = false }),
            BrokenFixture("missing-accounting", "no ACCT section", everywhere: E("invalidField", tailTable, "sections"),
                          make: variant {
                              $0.writeAccountingSection = false
                              $0.tailSections = [CraftedSection("XTLR", payload: [9])]
                          }),
            BrokenFixture("sealed-without-encryption", "ANNO flagged sealed, without an ENCR section", everywhere: E("invalidField", headTable, "ANNO flags"),
                          make: variant { $0.headTablePatch = { $0[1].flags.insert(.sealed) } }),
            BrokenFixture("critical-flag-wrong", "SEGT flagged ancillary", everywhere: E("invalidField", headTable, "entry 0 flags"),
                          make: variant { $0.headTablePatch = { $0[0].flags = [] } }),
            BrokenFixture("unknown-flag", "ANNO with flag bit 2 set", everywhere: E("invalidField", headTable, "entry 1 flags"),
                          make: variant { $0.headTablePatch = { $0[1].flags = SectionFlags(rawValue: 4) } }),
            BrokenFixture("segment-count-mismatch", "the header counts 6 segments, SEGT holds 5", everywhere: E("invalidField", "section SEGT", "length"),
                          make: variant { $0.segmentCount = 6 }),
            BrokenFixture("section-table-tag", "the head table's tag is SECX", everywhere: E("invalidField", headTable, "tag"),
                          make: variant { $0.headTableBytesPatch = { $0[3] = 0x58 } }),
            BrokenFixture("section-table-empty", "the head table's count is 0", everywhere: E("invalidField", headTable, "count"),
                          make: variant { $0.headTableBytesPatch = { putU32(&$0, at: 4, 0) } }),
            BrokenFixture("annotation-bad-key", "an annotation key with a space and capitals", everywhere: E("invalidField", "section ANNO", "annotation 0 key"),
                          make: variant {
                              var w = ByteWriter()
                              w.u32(1)
                              w.u8(7)
                              w.raw(Array("Bad Key".utf8))
                              w.u8(1)
                              w.u8(0)
                              w.raw([0x41])
                              $0.headSections = [CraftedSection(type: .annotations, flags: [], payload: w.bytes)]
                          }),
            BrokenFixture("index-entry-length", "the index's entryLength is 48", everywhere: E("invalidField", "index", "entryLength"),
                          make: variant { $0.indexEntryLength = 48 }),
            BrokenFixture("trailer-version-1", "the trailer says version 1, trailerCRC correct", everywhere: E("invalidField", "trailer", "version"),
                          make: variant { $0.trailerPatch = { $0.version = 1 } }),
            BrokenFixture("accounting-per-kind", "ACCT moves 4 KiB of stored bytes from anonymous to tmpfs (same sum)",
                          everywhere: E("invalidField", "section ACCT", "storedPerKind"),
                          make: variant {
                              $0.writeAccountingSection = false
                              var stored = MemoryStats()
                              var kinds = KindCursor(segments: FixtureCatalog.baseSegments)
                              for run in FixtureCatalog.baseFrameRuns.joined() {
                                  kinds.account(run, into: &stored)
                              }
                              let accounting = stored
                              stored[.anonymous] -= 4096
                              stored[.tmpfs] += 4096
                              $0.tailSections = [
                                  CraftedSection(
                                      type: .accounting, flags: .critical,
                                      payload: AccountingSection.encode(storedPerKind: stored, accounting: accounting))
                              ]
                          }),
            BrokenFixture("prefetch-out-of-range", "a PREF section naming frame 7 of 3", everywhere: E("invalidField", "section PREF", "frame 1"),
                          make: variant { $0.tailSections = [CraftedSection(type: .prefetch, flags: [], payload: PrefetchSection.encode([2, 7]))] }),
            BrokenFixture("prefetch-twice", "a PREF section naming frame 1 twice", everywhere: E("invalidField", "section PREF", "frame 2"),
                          make: variant { $0.tailSections = [CraftedSection(type: .prefetch, flags: [], payload: PrefetchSection.encode([1, 0, 1]))] }),
            BrokenFixture("data-beyond-data-size", "dataSize is 8 KiB short of the file: the last frame's last run lies beyond it",
                          everywhere: E("invalidField", "index", "entry 2 addresses"), stream: E("invalidField", "frame 2", "run 1"),
                          make: variant { $0.dataSize = (1 << 30) - 8192 }),
        ]
    }
}
