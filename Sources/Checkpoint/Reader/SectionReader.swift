/// Reads version 2's section tables and payloads, from a file (at their
/// offsets) or from a stream (in order), checking each payload's CRC, and
/// opening sealed payloads.
struct SectionReader {
    let header: CheckpointHeader
    let source: Source
    /// The scan's: sees every byte read (for the manifest), checks the
    /// tables' rules of encryption, opens sealed payloads. Nil only for a
    /// read on the side, outside the scan's order (`ENCR` read early).
    let security: ReadSecurity?

    enum Source {
        case random(RandomAccessInput)
        case stream(SequentialReader)
    }

    var isStream: Bool {
        if case .stream = source { return true }
        return false
    }

    /// Pieces of this size are read from a large payload.
    static let pieceLength = 1 << 20

    /// Reads `count` bytes at `offset`; from a stream, `offset` must be
    /// where the stream is.
    private func read(at offset: UInt64, count: Int, section: CheckpointSection) throws -> [UInt8] {
        switch source {
        case .random(let file):
            return try file.read(at: offset, count: count, section: section)
        case .stream(let reader):
            precondition(reader.offset == offset, "SectionReader: the stream is at \(reader.offset), not \(offset)")
            return try reader.read(count, section: section)
        }
    }

    /// Reads and checks the section table at `tableOffset`. `regionEnd` is
    /// where the last section must end, when known; `seen` the types of
    /// the other table.
    func readTable(at tableOffset: UInt64, placement: SectionPlacement, regionEnd: UInt64?, seen: Set<SectionType>) throws -> [SectionEntry] {
        let decoder = SectionTableDecoder(
            header: header, placement: placement, tableOffset: tableOffset, regionEnd: regionEnd, seen: seen)
        let fixed = try read(at: tableOffset, count: SectionTableLayout.fixedLength, section: .sectionTable(placement))
        let count = try decoder.decodeCount(fixed)
        let rest = try read(
            at: tableOffset + UInt64(fixed.count), count: Int(sectionTableLength(count: count)) - fixed.count,
            section: .sectionTable(placement))
        let entries = try decoder.decode(fixed + rest, count: count)
        security?.regionRead(fixed + rest, placement: placement)
        try security?.checkTable(entries, placement: placement, tableOffset: tableOffset)
        return entries
    }

    /// Reads a whole payload (whose length its type's rule bounds), checks
    /// its CRC, reads the padding after it (from a stream), and returns it
    /// opened if it is sealed.
    func readPayload(_ entry: SectionEntry) throws -> [UInt8] {
        let bytes = try read(at: entry.offset, count: Int(entry.length), section: .section(entry.type))
        security?.payloadRead(entry, bytes)
        try checkCRC(entry, CRC32C.checksum(bytes))
        try readPadding(after: entry)
        try security?.payloadEnded(entry, bytes)
        return entry.isSealed ? try opened(entry).open(entry, bytes) : bytes
    }

    /// Reads a payload in pieces, handing each to `body` (opened, if it is
    /// sealed and `opening`) and checking the CRC at the end: for payloads
    /// too large to hold, and for ones this reader skips (their checksum is
    /// still checked). A sealed payload is read in whole chunks.
    func readPayload(
        _ entry: SectionEntry, pieceLength: Int = pieceLength, opening: Bool = true, _ body: ([UInt8], UInt64) throws -> Void
    ) throws {
        let opener = entry.isSealed && opening ? try opened(entry) : nil
        let chunks = max(1, UInt64(pieceLength) / SealedChunks.chunkLength)
        let step = opener == nil ? UInt64(pieceLength) : chunks * SealedChunks.sealedChunkLength
        // Kept for `payloadEnded`: bounded by the rules of the types that
        // want it.
        var whole: [UInt8]? = security?.wantsPayload(entry) == true ? [] : nil
        var crc: UInt32 = 0
        var at = entry.offset
        var chunk: UInt64 = 0
        while at < entry.end {
            let n = Int(min(step, entry.end - at))
            let piece = try read(at: at, count: n, section: .section(entry.type))
            crc = CRC32C.checksum(piece, continuing: crc)
            security?.payloadRead(entry, piece)
            whole? += piece
            if let opener {
                try body(try opener.open(entry, piece, firstChunk: chunk), at)
                chunk += chunks
            } else {
                try body(piece, at)
            }
            at += UInt64(n)
        }
        try checkCRC(entry, crc)
        try readPadding(after: entry)
        try security?.payloadEnded(entry, whole)
    }

    /// Reads a payload this reader does not use (a sealed one is not
    /// opened), checking its CRC.
    func skipPayload(_ entry: SectionEntry) throws {
        try readPayload(entry, opening: false) { _, _ in }
    }

    /// The plaintext length of `entry`'s payload.
    func plainLength(_ entry: SectionEntry) throws -> UInt64 {
        guard entry.isSealed else { return entry.length }
        guard let plain = SealedChunks.plainLength(sealed: entry.length) else {
            throw CheckpointError.field(
                .section(entry.type), entry.offset, "length", expected: "the length of a sealed payload (a multiple of 65552 plus 16 to 65551)",
                found: entry.length)
        }
        return plain
    }

    /// The security that opens sealed `entry`.
    private func opened(_ entry: SectionEntry) throws -> ReadSecurity {
        guard let security else {
            preconditionFailure("SectionReader: sealed \(entry.type) read outside a scan")
        }
        return security
    }

    private func checkCRC(_ entry: SectionEntry, _ computed: UInt32) throws {
        if computed != entry.crc {
            throw CheckpointError(
                .checksumMismatch, .section(entry.type), offset: entry.offset,
                "crc: stored \(hex(UInt64(entry.crc))), computed \(hex(UInt64(computed)))")
        }
    }

    /// Reads the zeros between the payload and the next 8-aligned offset.
    private func readPadding(after entry: SectionEntry) throws {
        let count = CheckpointFormat.padding(after: entry.end)
        guard count > 0 else { return }
        let bytes = try read(at: entry.end, count: count, section: .section(entry.type))
        if bytes.contains(where: { $0 != 0 }) {
            throw CheckpointError.field(.section(entry.type), entry.end, "padding", expected: "zero", found: hexBytes(bytes))
        }
        security?.regionRead(bytes, placement: entry.placement)
    }
}

/// Reads `count` bytes of padding that must be zero.
func readZeroPadding(_ reader: SequentialReader, _ count: Int, section: CheckpointSection) throws {
    if count > 0 {
        let at = reader.offset
        let bytes = try reader.read(count, section: section)
        if bytes.contains(where: { $0 != 0 }) {
            throw CheckpointError.field(section, at, "padding", expected: "zero", found: hexBytes(bytes))
        }
    }
}
