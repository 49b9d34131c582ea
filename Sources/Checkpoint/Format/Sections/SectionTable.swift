/// What version 2 says about each section type it defines: where it goes,
/// whether it is critical, and how long it may be. A reader checks every
/// entry of a section table against this before reading any payload.
struct SectionRule: Sendable {
    var placement: SectionPlacement
    var critical: Bool
    /// Whether the section must be present.
    var required: Bool
    /// Whether the section may be sealed (encrypted).
    var sealable: Bool
    /// The largest payload the section may have in this checkpoint.
    var maxLength: @Sendable (CheckpointHeader) -> UInt64

    static func rule(for type: SectionType) -> SectionRule? {
        rules[type]
    }

    /// Sixty-four KiB: the bound for sections of a few small fields.
    static let small: UInt64 = 64 << 10

    private static let rules: [SectionType: SectionRule] = [
        .segments: SectionRule(
            placement: .head, critical: true, required: true, sealable: true,
            maxLength: { sealedLength(plain: $0.segmentCount * UInt64(SegmentRecordLayout.recordLength)) }),
        .accounting: SectionRule(
            placement: .tail, critical: true, required: true, sealable: true,
            maxLength: { _ in sealedLength(plain: AccountingSection.length) }),
        .annotations: SectionRule(
            placement: .head, critical: false, required: false, sealable: true,
            maxLength: { _ in sealedLength(plain: AnnotationsSection.maxLength) }),
        .parent: SectionRule(
            placement: .head, critical: true, required: false, sealable: true,
            maxLength: { _ in sealedLength(plain: ParentSection.maxLength) }),
        .pageHashes: SectionRule(
            placement: .tail, critical: false, required: false, sealable: true,
            maxLength: { sealedLength(plain: PageHashesSection.maxLength(pages: $0.dataEnd / CheckpointFormat.pageSize)) }),
        .references: SectionRule(
            placement: .tail, critical: true, required: false, sealable: true,
            maxLength: { sealedLength(plain: ReferencesSection.maxLength(pages: $0.dataEnd / CheckpointFormat.pageSize)) }),
        .prefetch: SectionRule(
            placement: .tail, critical: false, required: false, sealable: true,
            maxLength: { sealedLength(plain: 4 + 10 * ($0.dataEnd / CheckpointFormat.pageSize)) }),
        .encryption: SectionRule(
            placement: .head, critical: true, required: false, sealable: false,
            maxLength: { _ in UInt64(EncryptionSection.maxLength) }),
        .authentication: SectionRule(
            placement: .tail, critical: true, required: false, sealable: true,
            maxLength: { _ in sealedLength(plain: UInt64(CheckpointIdentity.length)) }),
        .signature: SectionRule(
            placement: .tail, critical: false, required: false, sealable: false,
            maxLength: { _ in UInt64(SignatureSection.length) }),
    ]

    /// The most bytes a payload of `plain` bytes takes once sealed.
    static func sealedLength(plain: UInt64) -> UInt64 {
        plain + (plain / SealedChunks.chunkLength + 1) * UInt64(SealedChunks.tagLength)
    }
}

/// The layout of a sealed payload: `plain / 64 KiB + 1` chunks, each but
/// the last of exactly 64 KiB of plaintext and the last of the rest (maybe
/// none), each followed by its 16-byte AEAD tag.
enum SealedChunks {
    static let chunkLength: UInt64 = 64 << 10
    static let tagLength = 16
    /// Bytes of a whole chunk as stored.
    static let sealedChunkLength = chunkLength + UInt64(tagLength)

    /// Chunks of a payload of `plain` bytes.
    static func count(plain: UInt64) -> UInt64 {
        plain / chunkLength + 1
    }

    /// The plaintext length of a sealed payload of `sealed` bytes, or nil
    /// if no payload seals to that length.
    static func plainLength(sealed: UInt64) -> UInt64? {
        let whole = sealed / sealedChunkLength
        let rest = sealed % sealedChunkLength
        guard rest >= UInt64(tagLength) else { return nil }
        return whole * chunkLength + rest - UInt64(tagLength)
    }
}

/// Encodes a section table whose payloads follow it: `payloads` gives each
/// section's type, flags, length and CRC, in order; the offsets follow
/// from `tableOffset`.
func encodeSectionTable(
    _ sections: [(type: SectionType, flags: SectionFlags, length: UInt64, crc: UInt32)], tableOffset: UInt64,
    placement: SectionPlacement
) -> (bytes: [UInt8], entries: [SectionEntry]) {
    let tableLength = sectionTableLength(count: sections.count)
    var w = ByteWriter(capacity: Int(tableLength))
    w.u32(CheckpointFormat.sectionTableTag, SectionTableLayout.tag)
    w.u32(UInt32(sections.count), SectionTableLayout.count)
    var at = tableOffset + tableLength
    var entries: [SectionEntry] = []
    for s in sections {
        w.startRecord()
        w.field(SectionEntryLayout.type)
        w.raw(s.type.bytes)
        w.u32(s.flags.rawValue, SectionEntryLayout.flags)
        w.u64(at, SectionEntryLayout.offset)
        w.u64(s.length, SectionEntryLayout.length)
        w.u32(s.crc, SectionEntryLayout.crc)
        w.u32(0, SectionEntryLayout.reserved)
        entries.append(SectionEntry(type: s.type, flags: s.flags, offset: at, length: s.length, crc: s.crc, placement: placement))
        at = CheckpointFormat.padded(at + s.length)
    }
    w.crc(from: 0)
    w.u32(0)
    return (w.bytes, entries)
}

/// Bytes of a section table of `count` entries.
func sectionTableLength(count: Int) -> UInt64 {
    UInt64(SectionTableLayout.fixedLength + count * SectionEntryLayout.recordLength + ClosingLayout.recordLength)
}

/// Decodes and checks a section table.
struct SectionTableDecoder {
    let header: CheckpointHeader
    let placement: SectionPlacement
    /// Checkpoint offset of the table.
    let tableOffset: UInt64
    /// Where the last payload must end (padded): the first frame is
    /// unknown for a head table read from a stream (nil), the trailer for
    /// a tail table.
    let regionEnd: UInt64?
    /// Types already seen in the other table of the same checkpoint.
    let seen: Set<SectionType>

    /// Sections a table may hold.
    static let maxCount = 64

    /// Reads the count from the table's first 8 bytes; the whole table is
    /// `sectionTableLength(count:)` bytes.
    func decodeCount(_ bytes: [UInt8]) throws(CheckpointError) -> Int {
        var r = ByteReader(bytes, base: tableOffset, section: .sectionTable(placement))
        let tag = try r.u32(SectionTableLayout.tag)
        if tag != CheckpointFormat.sectionTableTag {
            throw .field(r, SectionTableLayout.tag, expected: "SECT (53 45 43 54)", found: hexBytes(bytes.prefix(4)))
        }
        let count = try r.u32(SectionTableLayout.count)
        guard count >= 1 && count <= UInt32(SectionTableDecoder.maxCount) else {
            throw .field(r, SectionTableLayout.count, expected: "1 to \(SectionTableDecoder.maxCount)", found: count)
        }
        return Int(count)
    }

    /// Decodes the whole table and checks every entry: types, flags, order
    /// and bounds, duplicates, the rules of the types this reader knows,
    /// and the table's CRC.
    func decode(_ bytes: [UInt8], count: Int) throws(CheckpointError) -> [SectionEntry] {
        let section = CheckpointSection.sectionTable(placement)
        var r = ByteReader(bytes, base: tableOffset, section: section)
        _ = try r.raw(SectionTableLayout.fixedLength)
        // The checksum first: a flipped bit reads as corruption rather than
        // as a strange entry.
        var crcReader = ByteReader(bytes, base: tableOffset, section: section)
        _ = try crcReader.raw(SectionTableLayout.fixedLength + count * SectionEntryLayout.recordLength)
        try crcReader.checkClosingCRC(
            CRC32C.checksum(bytes.prefix(SectionTableLayout.fixedLength + count * SectionEntryLayout.recordLength)),
            what: "tableCRC")

        var entries: [SectionEntry] = []
        var types = seen
        var expectedOffset = tableOffset + sectionTableLength(count: count)
        for i in 0..<count {
            r.startRecord()
            let type = SectionType(rawValue: try r.u32(SectionEntryLayout.type))
            let flags = SectionFlags(rawValue: try r.u32(SectionEntryLayout.flags))
            let offset = try r.u64(SectionEntryLayout.offset)
            let length = try r.u64(SectionEntryLayout.length)
            let crc = try r.u32(SectionEntryLayout.crc)
            try r.zeros(SectionEntryLayout.reserved)
            let name = "entry \(i)"
            guard type.isWellFormed else {
                throw .field(section, r.offset(of: SectionEntryLayout.type), "\(name) type", expected: "four ASCII letters or digits", found: type)
            }
            guard SectionFlags.known.isSuperset(of: flags) else {
                throw .field(section, r.offset(of: SectionEntryLayout.flags), "\(name) flags", expected: "only bits 0 and 1", found: hex(UInt64(flags.rawValue)))
            }
            if types.contains(type) {
                throw .field(section, r.offset(of: SectionEntryLayout.type), "\(name) type", expected: "each section type once", found: "a second \(type)")
            }
            types.insert(type)
            if offset != expectedOffset {
                throw .field(
                    section, r.offset(of: SectionEntryLayout.offset), "\(name) offset",
                    expected: "\(hex(expectedOffset)) (sections follow the table and each other, 8-aligned, without overlap)",
                    found: hex(offset))
            }
            let (end, overflow) = offset.addingReportingOverflow(length)
            if overflow || end > CheckpointFormat.maxFileSize || (regionEnd.map { CheckpointFormat.padded(end) > $0 } ?? false) {
                throw .field(
                    section, r.offset(of: SectionEntryLayout.length), "\(name) length",
                    expected: regionEnd.map { "at most \($0 - min($0, offset)) bytes (up to the \(placement == .head ? "first frame" : "trailer"))" }
                        ?? "a length inside the file",
                    found: length)
            }
            if let rule = SectionRule.rule(for: type) {
                if rule.placement != placement {
                    throw .field(section, r.offset(of: SectionEntryLayout.type), "\(name) type", expected: "\(type) in the \(rule.placement) table", found: "it in the \(placement) table")
                }
                if rule.critical != flags.contains(.critical) {
                    throw .field(
                        section, r.offset(of: SectionEntryLayout.flags), "\(name) flags",
                        expected: "\(type) \(rule.critical ? "critical" : "ancillary")", found: hex(UInt64(flags.rawValue)))
                }
                if flags.contains(.sealed) && !rule.sealable {
                    throw .field(section, r.offset(of: SectionEntryLayout.flags), "\(name) flags", expected: "\(type) never sealed", found: "sealed")
                }
                if length > rule.maxLength(header) {
                    throw .field(section, r.offset(of: SectionEntryLayout.length), "\(name) length", expected: "at most \(rule.maxLength(header)) for \(type)", found: length)
                }
            } else if flags.contains(.critical) {
                throw CheckpointError(
                    .unknownCriticalSection(type), section, offset: r.offset(of: SectionEntryLayout.type),
                    "this reader cannot restore a checkpoint that needs it")
            }
            entries.append(SectionEntry(type: type, flags: flags, offset: offset, length: length, crc: crc, placement: placement))
            expectedOffset = CheckpointFormat.padded(end)
        }
        if let regionEnd, expectedOffset != regionEnd {
            throw .field(
                section, tableOffset + UInt64(SectionTableLayout.count.offset), "count",
                expected: "sections filling the \(placement) up to \(hex(regionEnd))", found: "\(count), ending at \(hex(expectedOffset))")
        }
        let present = Set(entries.map(\.type))
        for type in [SectionType.segments, .accounting] where SectionRule.rule(for: type)!.placement == placement && !present.contains(type) {
            throw .field(section, tableOffset, "sections", expected: "a \(type) section", found: "none")
        }
        return entries
    }

    /// Where the payloads of `entries` end, padded: the first frame for a
    /// head table.
    static func end(of entries: [SectionEntry], tableOffset: UInt64) -> UInt64 {
        entries.last.map { CheckpointFormat.padded($0.end) } ?? tableOffset + sectionTableLength(count: 0)
    }
}
