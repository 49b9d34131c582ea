/// Reads version 2's section tables and payloads, from a file (at their
/// offsets) or from a stream (in order), checking each payload's CRC.
struct SectionReader {
    let header: CheckpointHeader
    let source: Source

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
        if let sealed = entries.first(where: { $0.isSealed }) {
            // Sealed payloads need the keys of an `ENCR` section, which
            // this reader does not know (it rejects the critical section
            // before getting here).
            throw CheckpointError.field(
                .sectionTable(placement), sealed.offset, "\(sealed.type) flags", expected: "an ENCR section for a sealed section",
                found: "none")
        }
        return entries
    }

    /// Reads a whole payload (whose length its type's rule bounds), checks
    /// its CRC, and reads the padding after it (from a stream).
    func readPayload(_ entry: SectionEntry) throws -> [UInt8] {
        let bytes = try read(at: entry.offset, count: Int(entry.length), section: .section(entry.type))
        try checkCRC(entry, CRC32C.checksum(bytes))
        try readPadding(after: entry)
        return bytes
    }

    /// Reads a payload in pieces, handing each to `body` and checking the
    /// CRC at the end: for payloads too large to hold, and for ones this
    /// reader skips (their checksum is still checked).
    func readPayload(_ entry: SectionEntry, pieceLength: Int = pieceLength, _ body: ([UInt8], UInt64) throws -> Void) throws {
        var crc: UInt32 = 0
        var at = entry.offset
        while at < entry.end {
            let n = Int(min(UInt64(pieceLength), entry.end - at))
            let piece = try read(at: at, count: n, section: .section(entry.type))
            crc = CRC32C.checksum(piece, continuing: crc)
            try body(piece, at)
            at += UInt64(n)
        }
        try checkCRC(entry, crc)
        try readPadding(after: entry)
    }

    /// Reads a payload this reader does not use, checking its CRC.
    func skipPayload(_ entry: SectionEntry) throws {
        try readPayload(entry) { _, _ in }
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
        switch source {
        case .stream(let reader):
            try readZeroPadding(reader, count, section: .section(entry.type))
        case .random(let file):
            let bytes = try file.read(at: entry.end, count: count, section: .section(entry.type))
            if bytes.contains(where: { $0 != 0 }) {
                throw CheckpointError.field(.section(entry.type), entry.end, "padding", expected: "zero", found: hexBytes(bytes))
            }
        }
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
