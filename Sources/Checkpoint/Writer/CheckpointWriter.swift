import PGAlloc

/// Writes one checkpoint of one source, in order, never seeking back.
///
/// The phases, each a function:
/// 1. `writeHead`: the header, the head section table and the head
///    sections (the segment table, annotations): everything known before
///    any page is read.
/// 2. `writeFrames`: units of committed runs compressed by the workers,
///    written in order as frames.
/// 3. `writeIndex`: one entry per frame.
/// 4. `writeTail`: the tail section table and sections (the accounting).
/// 5. `writeTrailer`.
struct CheckpointWriter {
    let source: SaveSource
    let options: SaveOptions
    /// The checkpoint's identity, encryption and signature.
    let security: WriteSecurity
    /// The parent chain an incremental save references.
    var parent: ParentPages? = nil

    init(source: SaveSource, options: SaveOptions, parent: ParentPages? = nil) throws {
        self.source = source
        self.options = options
        self.parent = parent
        security = try WriteSecurity(options: options)
    }

    func write(to output: CheckpointOutput) throws -> SaveReport {
        let layout = try source.prepare()
        var header = CheckpointHeader(
            frameLimit: UInt32(options.frameSize), fileSize: layout.fileSize, dataSize: layout.dataSize,
            segmentCount: UInt64(layout.segments.count))
        try writeHead(&header, layout: layout, to: output)
        var frames = try writeFrames(layout: layout, to: output)
        let indexOffset = output.bytesWritten
        try writeIndex(frames, to: output)
        let indexLength = output.bytesWritten - indexOffset
        try writeTail(&frames, to: output)
        try writeTrailer(header: header, frames: frames, indexOffset: indexOffset, indexLength: indexLength, to: output)
        return SaveReport(
            fileSize: layout.fileSize, dataSize: layout.dataSize, segments: layout.segments.count, storedBytes: frames.storedBytes,
            zeroBytesDropped: frames.zeroBytes, zeroBytesDecommitted: frames.zeroBytesDecommitted, frames: UInt64(frames.entries.count), checkpointBytes: output.bytesWritten,
            scan: layout.scan, identity: security.identity!, referencedBytes: frames.referencedBytes,
            duplicateBytes: frames.duplicateBytes, parent: parent?.record)
    }

    /// A section to write: its table entry's fields, and how to write its
    /// payload.
    struct OutgoingSection {
        var type: SectionType
        var flags: SectionFlags
        var length: UInt64
        var crc: UInt32
        /// Hands the payload, in one or more pieces, to its argument.
        let pieces: (([UInt8]) throws -> Void) throws -> Void

        /// A section whose payload is `bytes`.
        init(_ type: SectionType, flags: SectionFlags, bytes: [UInt8]) {
            self.type = type
            self.flags = flags
            length = UInt64(bytes.count)
            crc = CRC32C.checksum(bytes)
            pieces = { try $0(bytes) }
        }

        /// A section whose payload is written in pieces by `pieces` (called
        /// once to checksum, and again to write), `length` bytes in all.
        init(_ type: SectionType, flags: SectionFlags, length: UInt64, pieces: @escaping (([UInt8]) throws -> Void) throws -> Void) rethrows {
            self.type = type
            self.flags = flags
            self.length = length
            var crc: UInt32 = 0
            try pieces { crc = CRC32C.checksum($0, continuing: crc) }
            self.crc = crc
            self.pieces = pieces
        }

        func write(_ output: CheckpointOutput) throws {
            try pieces { try output.write($0) }
        }

        /// The payload as a part of the manifest.
        func manifestPart() throws -> ManifestPart {
            var part = PartHasher()
            try pieces { part.add($0) }
            return part.finish()
        }

        /// The section sealed with `keys` (`PayloadCipher.section`), for
        /// the checkpoint whose header is `header`.
        func sealed(header: [UInt8], keys: ContentKeys) throws -> OutgoingSection {
            let flags = flags.union(.sealed)
            let cipher = PayloadCipher.section(type, flags: flags, plainLength: length, header: header, keys: keys)
            let plain = pieces
            return try OutgoingSection(type, flags: flags, length: cipher.sealedLength) { emit in
                var stream = SealingStream(cipher)
                try plain { try stream.add($0, emit: emit) }
                try stream.finish(emit: emit)
            }
        }
    }

    /// Writes a section table at the output's position, then the payloads,
    /// each padded to 8 bytes.
    func writeSections(_ sections: [OutgoingSection], placement: SectionPlacement, to output: CheckpointOutput) throws {
        let table = encodeSectionTable(
            sections.map { ($0.type, $0.flags, $0.length, $0.crc) }, tableOffset: output.bytesWritten, placement: placement)
        try output.write(table.bytes)
        for (section, entry) in zip(sections, table.entries) {
            precondition(output.bytesWritten == entry.offset, "CheckpointWriter: \(section.type) written at \(output.bytesWritten), not \(entry.offset)")
            try section.write(output)
            try output.zeros(CheckpointFormat.padding(after: entry.end))
        }
    }

    /// Phase 1: the header and the head sections.
    func writeHead(_ header: inout CheckpointHeader, layout: SaveLayout, to output: CheckpointOutput) throws {
        let headerBytes = header.encoded()
        try output.write(headerBytes)
        security.headerWritten(headerBytes)
        let segments = layout.segments
        var sections = [
            try OutgoingSection(.segments, flags: .critical, length: UInt64(segments.count * SegmentRecordLayout.recordLength)) { emit in
                var start = 0
                while start < segments.count {
                    let end = min(segments.count, start + 65536)
                    try emit(encodeSegments(segments[start..<end]))
                    start = end
                }
            }
        ]
        if let parent {
            sections.append(OutgoingSection(.parent, flags: .critical, bytes: ParentSection.encode(parent.record)))
        }
        if !options.annotations.isEmpty {
            sections.append(OutgoingSection(.annotations, flags: [], bytes: AnnotationsSection.encode(options.annotations)))
        }
        output.beginPart()
        try writeSections(try security.headSections(sections), placement: .head, to: output)
        security.headWritten(output.endPart())
    }

    /// Phase 4: the tail sections.
    func writeTail(_ frames: inout WrittenFrames, to output: CheckpointOutput) throws {
        var sections = [
            OutgoingSection(
                .accounting, flags: .critical,
                bytes: AccountingSection.encode(storedPerKind: frames.storedPerKind, accounting: source.accountingSnapshot())),
            try pageHashes(&frames),
        ]
        if !frames.references.isEmpty {
            let payload = frames.references.finish()
            sections.append(try OutgoingSection(.references, flags: .critical, length: UInt64(payload.count)) { emit in
                try payload.forEachPiece(emit)
            })
        }
        let prefetch = prefetchOrder(source.accessOrder(), entries: frames.entries)
        if !prefetch.isEmpty {
            sections.append(OutgoingSection(.prefetch, flags: [], bytes: PrefetchSection.encode(prefetch)))
        }
        try writeSections(try security.tailSections(sections), placement: .tail, to: output)
    }

    /// `PHSH`: the stored pages' runs, then their hashes from the spill.
    func pageHashes(_ frames: inout WrittenFrames) throws -> OutgoingSection {
        // The last run is counted once the table is finished.
        let table = frames.storedPages.finish()
        let head = PageHashesSection.encodeHead(
            pageCount: UInt64(frames.digests.count), runCount: frames.storedPages.runCount, runTableLength: UInt64(table.count))
        let hashesOffset = PageHashesSection.hashesOffset(runTableLength: UInt64(table.count))
        let padding = [UInt8](repeating: 0, count: Int(hashesOffset) - head.count - table.count)
        let spill = frames.digests
        return try OutgoingSection(.pageHashes, flags: [], length: hashesOffset + UInt64(spill.count * PageDigest.length)) { emit in
            try emit(head)
            try table.forEachPiece(emit)
            if !padding.isEmpty {
                try emit(padding)
            }
            try spill.forEachPiece(emit)
        }
    }

    /// The frames of this checkpoint holding `addresses`, in that order,
    /// each once: the prefetch order for the next lazy restore.
    func prefetchOrder(_ addresses: [UInt64], entries: [IndexEntry]) -> [UInt64] {
        var seen = Set<Int>()
        var order: [UInt64] = []
        for address in addresses {
            if let f = entries.frame(holding: address), seen.insert(f).inserted {
                order.append(UInt64(f))
            }
        }
        return order
    }

    /// Phase 3: the index.
    func writeIndex(_ frames: WrittenFrames, to output: CheckpointOutput) throws {
        let index = encodeIndex(
            frameCount: UInt64(frames.entries.count), storedBytes: frames.storedBytes, entries: frames.entries,
            entryLength: security.indexEntryLength)
        try output.write(index)
        security.indexWritten(index)
    }

    /// Phase 5: the trailer, which ties the end to the header.
    func writeTrailer(header: CheckpointHeader, frames: WrittenFrames, indexOffset: UInt64, indexLength: UInt64, to output: CheckpointOutput) throws {
        let trailer = CheckpointTrailer(
            version: header.version, indexOffset: indexOffset, indexLength: indexLength,
            checkpointLength: output.bytesWritten + UInt64(TrailerLayout.recordLength),
            frameCount: UInt64(frames.entries.count), storedBytes: frames.storedBytes, headerCRC: header.crc)
        try output.write(trailer.encoded())
    }
}

/// What the frames phase wrote.
struct WrittenFrames {
    var entries: [IndexEntry] = []
    var storedBytes: UInt64 = 0
    var storedPerKind = MemoryStats()
    var zeroBytes: UInt64 = 0
    var zeroBytesDecommitted: UInt64 = 0
    /// The stored pages, for `PHSH`.
    var storedPages = PageRunEncoder()
    /// Their hashes, in order.
    var digests = SpillArray<PageDigest>()
    /// Pages referenced rather than stored, for `REFS`.
    var references = ReferencesSection.Encoder()
    /// Bytes referenced from the parent chain, and from pages of this
    /// checkpoint.
    var referencedBytes: UInt64 = 0
    var duplicateBytes: UInt64 = 0

    init() {}
}
