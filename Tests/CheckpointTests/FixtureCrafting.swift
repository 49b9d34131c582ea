import Foundation
@testable import Checkpoint
@testable import PGAlloc
import Workloads

// Checkpoints crafted through the format's own encoders, with a knob for
// each rule a broken fixture breaks. Every checksum is computed after the
// knobs are applied, so that a crafted file has exactly one thing wrong:
// the one the knob sets.

/// A frame of a crafted checkpoint.
struct CraftedFrame {
    /// The runs the frame header lists.
    var runs: [FileRange]
    /// The uncompressed bytes of the runs, end to end.
    var data: [UInt8]
    /// The payload, if not `data` compressed (a bomb, garbage, ...).
    var payload: [UInt8]? = nil
    /// The header's uncompressedLength, if not `data.count`.
    var uncompressedLength: UInt32? = nil
    /// The header's sequence, if not the frame's position.
    var sequence: UInt64? = nil
    /// The runs the index entry describes, if not `runs` (to make the frame
    /// lie while the index tells the truth).
    var indexRuns: [FileRange]? = nil
    /// The value of the padding bytes after the payload.
    var paddingByte: UInt8 = 0
    /// Changes to the encoded header (tag to headerCRC) before its CRC, the
    /// last 4 bytes, is computed again.
    var headerPatch: ((inout [UInt8]) -> Void)? = nil

    init(runs: [FileRange], data: [UInt8]) {
        self.runs = runs
        self.data = data
    }

    /// A frame of `runs` filled with `craftedPage` contents.
    init(runs: [FileRange], seed: UInt64) {
        var data: [UInt8] = []
        for run in runs {
            for address in stride(from: run.start, to: run.end, by: 4096) {
                data += craftedPage(address: address, seed: seed)
            }
        }
        self.init(runs: runs, data: data)
    }
}

/// Where the sections of a crafted checkpoint lie.
struct CraftedLayout {
    var header = 0..<64
    var metadata = 64..<64
    /// Each frame's header (runs, CRC and reserved word included) and
    /// payload (padding excluded).
    var frameHeaders: [Range<Int>] = []
    var framePayloads: [Range<Int>] = []
    var index = 0..<0
    var trailer = 0..<0
    /// Version 2: the section tables and every section's payload.
    var headTable = 0..<0
    var tailTable = 0..<0
    var sections: [Range<Int>] = []
}

/// A section of a crafted version-2 checkpoint.
struct CraftedSection {
    var type: SectionType
    var flags: SectionFlags
    var payload: [UInt8]

    init(_ name: String, flags: SectionFlags = [], payload: [UInt8]) {
        var v: UInt32 = 0
        for (i, b) in name.utf8.prefix(4).enumerated() {
            v |= UInt32(b) << (8 * i)
        }
        type = SectionType(rawValue: v)
        self.flags = flags
        self.payload = payload
    }

    init(type: SectionType, flags: SectionFlags, payload: [UInt8]) {
        self.type = type
        self.flags = flags
        self.payload = payload
    }
}

/// An entry of a crafted section table, as it will be encoded.
struct CraftedSectionEntry {
    var type: SectionType
    var flags: SectionFlags
    var offset: UInt64
    var length: UInt64
    var crc: UInt32
    var reserved: UInt32 = 0
}

/// A checkpoint written by hand: header, segment table, frames, index and
/// trailer, each through the format's encoder, with knobs.
struct CraftedCheckpoint {
    /// 1 (as in fixtures/v1) or 2.
    var version: UInt32 = 1
    var frameLimit: UInt32 = 16 << 10
    var fileSize: UInt64 = 1 << 30
    var dataSize: UInt64? = nil
    var segments: [SegmentRecord] = []
    /// The segments the index's storedPerKind is counted over, if not
    /// `segments` (to break the table while the index stays right).
    var indexSegments: [SegmentRecord]? = nil
    var frames: [CraftedFrame] = []
    var level: Int32 = 1

    /// The header's segmentCount, if not `segments.count`.
    var segmentCount: UInt64? = nil
    /// Changes to the 64 header bytes before headerCRC is computed.
    var headerPatch: ((inout [UInt8]) -> Void)? = nil
    /// Changes to the segment records' bytes before metadataCRC.
    var metadataPatch: ((inout [UInt8]) -> Void)? = nil
    /// The 4 bytes after metadataCRC.
    var metadataReserved: UInt32 = 0
    /// Changes to the index totals before they are encoded.
    var totalsPatch: ((inout IndexTotals) -> Void)? = nil
    /// Changes to the index entries before they are encoded.
    var entriesPatch: ((inout [IndexEntry]) -> Void)? = nil
    /// Changes to the encoded index (before indexCRC is computed).
    var indexPatch: ((inout [UInt8]) -> Void)? = nil
    /// The 4 bytes after indexCRC.
    var indexReserved: UInt32 = 0
    /// Changes to the trailer before it is encoded (its CRC follows).
    var trailerPatch: ((inout CheckpointTrailer) -> Void)? = nil
    /// Changes to the encoded trailer after its CRC (to break the CRC).
    var trailerBytesPatch: ((inout [UInt8]) -> Void)? = nil

    // Version 2.

    /// Head sections after `SEGT`, and tail sections after `ACCT`.
    var headSections: [CraftedSection] = []
    var tailSections: [CraftedSection] = []
    /// Whether `SEGT` and `ACCT` are written.
    var writeSegmentSection = true
    var writeAccountingSection = true
    /// Changes to a table's entries before it is encoded (payloads are laid
    /// out as the unchanged entries say), and to its bytes before its CRC.
    var headTablePatch: ((inout [CraftedSectionEntry]) -> Void)? = nil
    var tailTablePatch: ((inout [CraftedSectionEntry]) -> Void)? = nil
    var headTableBytesPatch: ((inout [UInt8]) -> Void)? = nil
    /// Changes to a section's payload after its CRC is computed (to break
    /// the CRC).
    var sectionBytesPatch: ((SectionType, inout [UInt8]) -> Void)? = nil
    /// The index's entryLength (version 2).
    var indexEntryLength: UInt32 = 40

    func encoded() throws -> (bytes: [UInt8], layout: CraftedLayout) {
        var layout = CraftedLayout()
        var out: [UInt8] = []

        // Header.
        var header = CheckpointHeader(
            version: version, frameLimit: frameLimit, fileSize: fileSize, dataSize: dataSize ?? fileSize,
            segmentCount: segmentCount ?? UInt64(segments.count))
        var headerBytes = header.encoded()
        if let headerPatch {
            headerPatch(&headerBytes)
            resealCRC(&headerBytes, over: 0..<60, at: 60)
        }
        let headerCRC = u32(headerBytes, at: 60)
        out += headerBytes

        if version == 1 {
            // Metadata.
            var w = ByteWriter()
            for s in segments {
                s.encode(into: &w)
            }
            var records = w.bytes
            metadataPatch?(&records)
            let metaStart = out.count
            out += records
            appendU32(&out, CRC32C.checksum(records))
            appendU32(&out, metadataReserved)
            layout.metadata = metaStart..<out.count
        } else {
            var w = ByteWriter()
            for s in segments {
                s.encode(into: &w)
            }
            var records = w.bytes
            metadataPatch?(&records)
            var sections = headSections
            if writeSegmentSection {
                sections.insert(CraftedSection(type: .segments, flags: .critical, payload: records), at: 0)
            }
            layout.headTable = writeSectionTable(sections, at: &out, patch: headTablePatch, bytesPatch: headTableBytesPatch, layout: &layout)
            layout.metadata = layout.sections.first ?? layout.headTable
        }

        // Frames.
        var compressor = try ZstdCompressor(level: level)
        var entries: [IndexEntry] = []
        var totals = IndexTotals()
        var kinds = KindCursor(segments: (indexSegments ?? segments))
        for (i, f) in frames.enumerated() {
            let payload = try f.payload ?? compress(f.data, with: &compressor)
            var frame = FrameHeader(
                sequence: f.sequence ?? UInt64(i), uncompressedLength: f.uncompressedLength ?? UInt32(f.data.count),
                compressedLength: UInt32(payload.count), payloadCRC: CRC32C.checksum(payload), runs: f.runs)
            let offset = out.count
            var bytes = frame.encoded()
            var headerCRCValue = frame.headerCRC
            if let patch = f.headerPatch {
                patch(&bytes)
                let crcAt = bytes.count - 4
                resealCRC(&bytes, over: 0..<crcAt, at: crcAt)
                headerCRCValue = u32(bytes, at: crcAt)
            }
            out += bytes
            layout.frameHeaders.append(offset..<out.count)
            out += payload
            layout.framePayloads.append(out.count - payload.count..<out.count)
            let padding = CheckpointFormat.padding(after: UInt64(bytes.count + payload.count))
            out += [UInt8](repeating: f.paddingByte, count: padding)
            let described = f.indexRuns ?? f.runs
            entries.append(IndexEntry(
                offset: UInt64(offset), uncompressedLength: frame.uncompressedLength, compressedLength: frame.compressedLength,
                firstAddress: described.first!.start, endAddress: described.last!.end,
                headerCRC: headerCRCValue, payloadCRC: frame.payloadCRC))
            for run in described {
                kinds.account(run, into: &totals.storedPerKind)
                totals.storedBytes += run.length
            }
        }

        // Index.
        totals.frameCount = UInt64(frames.count)
        totals.accounting = totals.storedPerKind
        totalsPatch?(&totals)
        entriesPatch?(&entries)
        let indexOffset = out.count
        var iw = ByteWriter()
        if version == 1 {
            totals.encodeVersion1(into: &iw)
        } else {
            iw.u32(CheckpointFormat.indexTagV2)
            iw.u32(indexEntryLength)
            iw.u64(totals.frameCount)
            iw.u64(totals.storedBytes)
        }
        for e in entries {
            e.encode(into: &iw)
        }
        var indexBytes = iw.bytes
        indexPatch?(&indexBytes)
        appendU32(&indexBytes, CRC32C.checksum(indexBytes))
        appendU32(&indexBytes, indexReserved)
        out += indexBytes
        layout.index = indexOffset..<out.count
        if version >= 2 {
            var sections = tailSections
            if writeAccountingSection {
                sections.insert(
                    CraftedSection(
                        type: .accounting, flags: .critical,
                        payload: AccountingSection.encode(storedPerKind: totals.storedPerKind, accounting: totals.accounting)),
                    at: 0)
            }
            layout.tailTable = writeSectionTable(sections, at: &out, patch: tailTablePatch, bytesPatch: nil, layout: &layout)
        }

        // Trailer.
        var trailer = CheckpointTrailer(
            version: version, indexOffset: UInt64(indexOffset), indexLength: UInt64(indexBytes.count),
            checkpointLength: UInt64(out.count + 64), frameCount: totals.frameCount,
            storedBytes: totals.storedBytes, headerCRC: headerCRC)
        trailerPatch?(&trailer)
        var trailerBytes = trailer.encoded()
        trailerBytesPatch?(&trailerBytes)
        layout.trailer = out.count..<out.count + 64
        out += trailerBytes
        return (out, layout)
    }

    var bytes: [UInt8] {
        get throws { try encoded().bytes }
    }

    /// Appends a section table and its payloads (version 2); returns the
    /// table's range.
    private func writeSectionTable(
        _ sections: [CraftedSection], at out: inout [UInt8], patch: ((inout [CraftedSectionEntry]) -> Void)?,
        bytesPatch: ((inout [UInt8]) -> Void)?, layout: inout CraftedLayout
    ) -> Range<Int> {
        let tableStart = out.count
        var at = UInt64(tableStart) + sectionTableLength(count: sections.count)
        var entries: [CraftedSectionEntry] = []
        for section in sections {
            entries.append(CraftedSectionEntry(
                type: section.type, flags: section.flags, offset: at, length: UInt64(section.payload.count),
                crc: CRC32C.checksum(section.payload)))
            at = CheckpointFormat.padded(at + UInt64(section.payload.count))
        }
        patch?(&entries)
        var table: [UInt8] = []
        appendU32(&table, CheckpointFormat.sectionTableTag)
        appendU32(&table, UInt32(entries.count))
        for e in entries {
            appendU32(&table, e.type.rawValue)
            appendU32(&table, e.flags.rawValue)
            appendU64(&table, e.offset)
            appendU64(&table, e.length)
            appendU32(&table, e.crc)
            appendU32(&table, e.reserved)
        }
        bytesPatch?(&table)
        appendU32(&table, CRC32C.checksum(table))
        appendU32(&table, 0)
        out += table
        let tableRange = tableStart..<out.count
        for section in sections {
            var payload = section.payload
            sectionBytesPatch?(section.type, &payload)
            let start = out.count
            out += payload
            layout.sections.append(start..<out.count)
            out += [UInt8](repeating: 0, count: CheckpointFormat.padding(after: UInt64(out.count)))
        }
        return tableRange
    }
}

func appendU64(_ bytes: inout [UInt8], _ v: UInt64) {
    for i in 0..<8 {
        bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))))
    }
}

/// Compresses `data` as the writer does: one frame with its content size.
func compress(_ data: [UInt8], with compressor: inout ZstdCompressor) throws -> [UInt8] {
    var payload = [UInt8](repeating: 0, count: ZstdCompressor.compressBound(data.count))
    let n = try data.withUnsafeBytes { src in
        try payload.withUnsafeMutableBytes { dst in try compressor.compress(src, into: dst) }
    }
    payload.removeLast(payload.count - n)
    return payload
}

func compress(_ data: [UInt8], level: Int32 = 1) throws -> [UInt8] {
    var c = try ZstdCompressor(level: level)
    return try compress(data, with: &c)
}

func u32(_ bytes: [UInt8], at i: Int) -> UInt32 {
    UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
}

func appendU32(_ bytes: inout [UInt8], _ v: UInt32) {
    for i in 0..<4 {
        bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))))
    }
}

func putU32(_ bytes: inout [UInt8], at i: Int, _ v: UInt32) {
    for k in 0..<4 {
        bytes[i + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k)))
    }
}

func putU64(_ bytes: inout [UInt8], at i: Int, _ v: UInt64) {
    for k in 0..<8 {
        bytes[i + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))
    }
}

/// Replaces the run table of an encoded frame header (its CRC is computed
/// again by the crafting code) and sets runTableLength to match.
func replaceRunTable(_ header: inout [UInt8], with table: [UInt8]) {
    var out = Array(header[0..<36])
    appendU32(&out, UInt32(table.count))
    out += table
    out += [0, 0, 0, 0]
    header = out
}

/// Writes the CRC-32C of `bytes[range]` at `at`.
func resealCRC(_ bytes: inout [UInt8], over range: Range<Int>, at: Int) {
    let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[range])) }
    putU32(&bytes, at: at, crc)
}

/// The contents of a crafted page: half noise (so that frames are not
/// tiny), half text naming the page; never all zero.
func craftedPage(address: UInt64, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed ^ address)
    var page: [UInt8] = []
    page.reserveCapacity(4096)
    for _ in 0..<(448 / 8) {
        let v = rng.next()
        for k in 0..<8 {
            page.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))))
        }
    }
    let line = Array("pgsnap crafted page at \(hex(address)), seed \(seed)\n".utf8)
    while page.count < 4096 {
        page.append(line[(page.count - 448) % line.count])
    }
    return page
}

// MARK: - Hand-made zstd frames

/// zstd frames written byte by byte, for payloads the compressor would
/// never produce (RFC 8878, section 3.1.1).
enum HandmadeZstd {
    static let magic: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]

    /// A raw (stored) block of `content`, the last one if `last`.
    static func rawBlock(_ content: [UInt8], last: Bool) -> [UInt8] {
        precondition(content.count < 1 << 17)
        let header = UInt32(content.count) << 3 | (last ? 1 : 0)
        return [UInt8(header & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header >> 16 & 0xFF)] + content
    }

    /// A frame that declares `declaredSize` (2-byte field: 256 to 65791)
    /// as a single segment, holding `content` in raw blocks.
    static func frame(declaring declaredSize: Int, content: [UInt8]) -> [UInt8] {
        precondition(declaredSize >= 256 && declaredSize < 65536 + 256)
        // Frame_Header_Descriptor: FCS field 2 bytes (01), single segment.
        var out = magic + [0x60]
        let fcs = declaredSize - 256
        out += [UInt8(fcs & 0xFF), UInt8(fcs >> 8)]
        out += blocks(content)
        return out
    }

    /// A frame with no content size: a window descriptor and raw blocks.
    static func frameWithoutContentSize(_ content: [UInt8]) -> [UInt8] {
        // Descriptor 0: no FCS, not single segment; window 2^(10+7) bytes.
        magic + [0x00, 7 << 3] + blocks(content)
    }

    /// A frame declaring `declaredSize` (4-byte field) whose window is
    /// 2^windowLog bytes.
    static func frame(windowLog: Int, declaring declaredSize: UInt32, content: [UInt8]) -> [UInt8] {
        // Descriptor: FCS field 4 bytes (10), not single segment.
        var out = magic + [0x80, UInt8((windowLog - 10) << 3)]
        appendU32(&out, declaredSize)
        return out + blocks(content)
    }

    /// A skippable frame of `count` bytes of content.
    static func skippable(_ count: Int) -> [UInt8] {
        var out: [UInt8] = [0x50, 0x2A, 0x4D, 0x18]
        appendU32(&out, UInt32(count))
        return out + [UInt8](repeating: 0xAB, count: count)
    }

    private static func blocks(_ content: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var at = 0
        repeat {
            let n = min(content.count - at, 1 << 16)
            out += rawBlock(Array(content[at..<at + n]), last: at + n == content.count)
            at += n
        } while at < content.count
        return out
    }
}
