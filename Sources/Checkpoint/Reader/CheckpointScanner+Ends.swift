import PGAlloc

/// What a checkpoint's end says: the trailer, the index and, in version 2,
/// the tail sections.
struct CheckpointEnds {
    var trailer: CheckpointTrailer
    var index: IndexDecoder
    /// Version 2: the tail sections, in file order.
    var tail: [SectionEntry] = []
    /// The index's totals, with version 2's per-kind figures from `ACCT`.
    var totals: IndexTotals
    /// Where the stored bytes per kind were read, for messages.
    var perKindLocation: (CheckpointSection, UInt64)
    /// Version 2: the `PREF` section's frames, in order (empty without
    /// one).
    var prefetchOrder: [UInt64] = []
    /// Version 2: `PHSH`'s stored pages and where its hashes are.
    var pageHashes: PageHashes?
    /// Version 2: `REFS`'s references (their links checked against the
    /// depth once the head is read).
    var references = SpillArray<PageReference>()

    /// Where the index says the frames start: its first entry, or the
    /// index itself when there are no frames.
    var framesOffset: UInt64 {
        index.entries.first?.offset ?? trailer.indexOffset
    }

    /// Version 2 reads the head after the end: the frames must start where
    /// the head sections end.
    func checkFramesOffset(_ headEnd: UInt64) throws {
        if framesOffset != headEnd {
            throw CheckpointError.field(
                .index, index.indexOffset + UInt64(index.shape.fixedLength), "entry 0 offset",
                expected: "\(hex(headEnd)) (right after the head sections)", found: hex(framesOffset))
        }
    }
}

extension CheckpointScanner {
    /// Phase 2, from a file: its length, the trailer, the index and the tail
    /// sections, read before anything else so that a truncated or damaged
    /// end is found before memory is created.
    func readEnds(header: CheckpointHeader, from file: RandomAccessInput) throws -> CheckpointEnds {
        let length = file.length
        // Version 1 knows where its frames start from the header alone.
        let framesOffset: UInt64? = header.version == 1 ? UInt64(HeaderLayout.recordLength) + header.metadataLength : nil
        let emptyIndex = IndexShape(version: header.version, entryLength: IndexEntryLayout.recordLength).length(frameCount: 0)!
        let minimum = (framesOffset ?? CheckpointFormat.minFramesOffsetV2) + emptyIndex
            + (header.version == 1 ? 0 : CheckpointFormat.minTailLength) + UInt64(TrailerLayout.recordLength)
        if length < minimum {
            throw CheckpointError(
                .truncated, .file, offset: length,
                "a checkpoint with \(header.segmentCount) segments is at least \(minimum) bytes, this one is \(length)")
        }
        let trailerAt = length - UInt64(TrailerLayout.recordLength)
        let trailer: CheckpointTrailer
        do {
            trailer = try CheckpointTrailer.decode(
                file.read(at: trailerAt, count: TrailerLayout.recordLength, section: .trailer),
                offset: trailerAt, header: header, framesOffset: framesOffset)
        } catch var error as CheckpointError where error.reason == .invalidField("magic") {
            // The last 64 bytes are not a trailer: most likely the file
            // was cut short, or something was appended to it.
            error.detail += "; the file may be truncated or have data after its trailer"
            throw error
        }
        if trailer.checkpointLength != length {
            throw CheckpointError.field(
                .trailer, trailerAt + UInt64(TrailerLayout.checkpointLength.offset), "checkpointLength",
                expected: "\(length) (the file's length)", found: trailer.checkpointLength)
        }
        let index = try readIndex(
            header: header, at: trailer.indexOffset, framesOffset: framesOffset, frameCount: trailer.frameCount,
            from: .random(file, indexLength: trailer.indexLength))
        // The trailer repeats the index's storedBytes: a stream compares
        // every trailer field at the end, a file must too.
        if trailer.storedBytes != index.totals.storedBytes {
            throw CheckpointError.field(
                .trailer, trailerAt + UInt64(TrailerLayout.storedBytes.offset), "storedBytes",
                expected: "\(index.totals.storedBytes) (the index's)", found: trailer.storedBytes)
        }
        var ends = CheckpointEnds(
            trailer: trailer, index: index, totals: index.totals,
            perKindLocation: (.index, trailer.indexOffset + UInt64(IndexLayout.storedPerKind)))
        if header.version >= 2 {
            let reader = sectionReader(header, .random(file))
            try readTail(&ends, header: header, reader: reader, regionEnd: trailerAt, seen: [])
        }
        return ends
    }

    /// Phase 5, from a stream: the index (its tag was just read), the tail
    /// sections, the trailer, and nothing after it.
    func readEndsInOrder(header: CheckpointHeader, head: CheckpointHead) throws -> CheckpointEnds {
        let indexOffset = input.offset - UInt64(IndexLayout.tag.size)
        let index = try readIndex(
            header: header, at: indexOffset, framesOffset: head.framesOffset, frameCount: nil, from: .stream(input))
        let tailOffset = input.offset
        var ends = CheckpointEnds(
            trailer: CheckpointTrailer(
                version: header.version, indexOffset: indexOffset, indexLength: tailOffset - indexOffset,
                checkpointLength: 0, frameCount: 0, storedBytes: 0, headerCRC: 0),
            index: index, totals: index.totals, perKindLocation: (.index, indexOffset + UInt64(IndexLayout.storedPerKind)))
        if header.version >= 2 {
            try readTail(
                &ends, header: header, reader: sectionReader(header, .stream(input)), regionEnd: nil,
                seen: Set(head.sections.map(\.type)))
        }
        let trailerAt = input.offset
        let trailer = try CheckpointTrailer.decode(
            input.read(TrailerLayout.recordLength, section: .trailer), offset: trailerAt, header: header,
            framesOffset: head.framesOffset)
        if trailer.indexOffset != indexOffset || trailer.frameCount != index.totals.frameCount
            || trailer.storedBytes != index.totals.storedBytes || trailer.checkpointLength != input.offset
            || trailer.tailOffset != tailOffset
        {
            throw CheckpointError.field(
                .trailer, trailerAt, "fields",
                expected: "index at \(hex(indexOffset)), \(index.totals.frameCount) frames, \(index.totals.storedBytes) bytes stored, length \(input.offset)",
                found: "index at \(hex(trailer.indexOffset)), \(trailer.frameCount) frames, \(trailer.storedBytes) bytes stored, length \(trailer.checkpointLength)")
        }
        if !(try input.isAtEnd()) {
            throw CheckpointError(.trailingData, .file, offset: input.offset, "the checkpoint ends at \(input.offset) but the input goes on")
        }
        ends.trailer = trailer
        return ends
    }

    /// Where the index is read from.
    enum IndexSource {
        /// A file: read at its offset, its length known from the trailer.
        case random(RandomAccessInput, indexLength: UInt64)
        /// A stream, right after the index's tag.
        case stream(SequentialReader)
    }

    /// Reads and checks the index at `indexOffset`.
    func readIndex(
        header: CheckpointHeader, at indexOffset: UInt64, framesOffset: UInt64?, frameCount: UInt64?, from source: IndexSource
    ) throws -> IndexDecoder {
        var decoder = IndexDecoder(header: header, indexOffset: indexOffset, framesOffset: framesOffset)
        let fixed = IndexDecoder.fixedLength(version: header.version)
        var position = indexOffset
        func next(_ count: Int) throws -> [UInt8] {
            defer { position += UInt64(count) }
            switch source {
            case .random(let file, _):
                return try file.read(at: position, count: count, section: .index)
            case .stream(let reader):
                return try reader.read(count, section: .index)
            }
        }
        switch source {
        case .random:
            try decoder.decodeFixed(try next(fixed))
        case .stream:
            let tag = header.version == 1 ? CheckpointFormat.indexTagV1 : CheckpointFormat.indexTagV2
            position += UInt64(IndexLayout.tag.size)
            try decoder.decodeFixed((0..<4).map { UInt8(truncatingIfNeeded: tag >> (8 * $0)) } + (try next(fixed - IndexLayout.tag.size)))
        }
        if let frameCount, decoder.totals.frameCount != frameCount {
            throw CheckpointError.field(
                .index, indexOffset + UInt64(IndexLayout.frameCount.offset), "frameCount", expected: "\(frameCount) (the trailer's)",
                found: decoder.totals.frameCount)
        }
        if case .random(_, let indexLength) = source {
            // The trailer bounded frameCount by the space before the index;
            // the entries must also fill the index it gives.
            if decoder.shape.length(frameCount: decoder.totals.frameCount) != indexLength {
                throw CheckpointError.field(
                    .index, indexOffset + UInt64(IndexLayout.frameCount.offset), "frameCount",
                    expected: "a count whose entries fill the index", found: decoder.totals.frameCount)
            }
        }
        while decoder.remaining > 0 {
            let count = Int(min(decoder.remaining, 65536))
            try decoder.decodeEntries(try next(count * decoder.shape.entryLength))
        }
        try decoder.finish(try next(ClosingLayout.recordLength))
        return decoder
    }

    /// Reads the tail section table and the tail sections (version 2).
    /// `regionEnd` is the trailer's offset, for a file; `seen`, the head
    /// sections' types, when they were read first.
    func readTail(
        _ ends: inout CheckpointEnds, header: CheckpointHeader, reader: SectionReader, regionEnd: UInt64?, seen: Set<SectionType>
    ) throws {
        let tableOffset = ends.trailer.indexOffset + ends.trailer.indexLength
        let entries = try reader.readTable(at: tableOffset, placement: .tail, regionEnd: regionEnd, seen: seen)
        for entry in entries {
            switch entry.type {
            case .accounting:
                let bytes = try reader.readPayload(entry)
                (ends.totals.storedPerKind, ends.totals.accounting) = try AccountingSection.decode(
                    bytes, offset: entry.offset, storedBytes: ends.totals.storedBytes)
                ends.perKindLocation = (.section(.accounting), entry.offset + UInt64(AccountingSection.storedPerKind))
            case .prefetch:
                ends.prefetchOrder = try PrefetchSection.decode(
                    reader.readPayload(entry), offset: entry.offset, frameCount: ends.totals.frameCount)
            case .pageHashes:
                // The scan hashes every tail section for the identity when
                // it is asked for or something checks it (`AUTH`, a
                // signature): then the page hashes are read whole.
                let whole = computesIdentity || security.isEncrypted || security.keys.requiresSignature
                    || entries.contains { $0.type == .signature }
                ends.pageHashes = try readPageHashes(
                    entry, header: header, storedBytes: ends.totals.storedBytes, reader: reader, whole: whole)
            case .references where keepReferences:
                // In pieces: a checkpoint may hold a reference per page. A
                // decoding error waits for the checksum, which a damaged
                // payload fails first.
                var decoder = ReferencesSection.Decoder(
                    offset: entry.offset, length: try reader.plainLength(entry), dataEnd: header.dataEnd, depth: ParentSection.maxDepth)
                var invalid: CheckpointError?
                try reader.readPayload(entry) { piece, _ in
                    guard invalid == nil else { return }
                    do throws(CheckpointError) { try decoder.feed(piece) } catch { invalid = error }
                }
                if let invalid {
                    throw invalid
                }
                ends.references = try decoder.finish()
            default:
                try reader.skipPayload(entry)
            }
        }
        ends.tail = entries
    }

    /// Reads `PHSH`'s fields and run table. From a file, the hashes are
    /// read only when `checkPageHashes` or `whole` asks (to check the CRC,
    /// to hash them for the identity: the scan then knows no identity);
    /// from a stream they are read past, and checked. A sealed payload is
    /// opened chunk by chunk; its hashes are read later through
    /// `PageHashes.sealed`.
    func readPageHashes(
        _ entry: SectionEntry, header: CheckpointHeader, storedBytes: UInt64, reader: SectionReader, whole: Bool
    ) throws -> PageHashes {
        let section = CheckpointSection.section(.pageHashes)
        let fixed = PageHashesSection.fixedLength
        var fixedBytes: [UInt8] = []
        var head: PageHashesSection.Head?
        // The run table is decoded as it comes (a checkpoint may list a
        // run for every other page); an error in it waits for the
        // checksum, which a damaged payload fails first.
        var runsDecoder: PageRunTable.Decoder?
        var invalid: CheckpointError?
        var padding: [UInt8] = []
        // Plaintext bytes taken, up to the hashes.
        var taken: UInt64 = 0
        // The payload's plaintext length (a sealed one is longer as stored).
        let length = try reader.plainLength(entry)
        /// Takes a piece of the plaintext, at `offsetInPayload`.
        func collect(_ piece: [UInt8], at offsetInPayload: UInt64) throws {
            var rest = piece[...]
            var at = offsetInPayload
            if head == nil {
                guard at < UInt64(fixed) else { return }
                let n = min(rest.count, fixed - Int(at))
                fixedBytes += rest.prefix(n)
                rest = rest.dropFirst(n)
                at += UInt64(n)
                taken = at
                guard fixedBytes.count == fixed else { return }
                head = try PageHashesSection.decodeHead(fixedBytes, offset: entry.offset, length: length, storedBytes: storedBytes)
                do throws(CheckpointError) {
                    runsDecoder = try PageRunTable.Decoder(
                        offset: entry.offset + UInt64(fixed), length: head!.runTableLength, runCount: head!.runCount,
                        pageLimit: header.dataEnd / CheckpointFormat.pageSize, section: section)
                } catch {
                    invalid = error
                }
            }
            let tableEnd = UInt64(fixed) + head!.runTableLength
            if at < tableEnd && !rest.isEmpty {
                let n = Int(min(UInt64(rest.count), tableEnd - at))
                if invalid == nil {
                    do throws(CheckpointError) { try runsDecoder!.feed(Array(rest.prefix(n))) } catch { invalid = error }
                }
                rest = rest.dropFirst(n)
                at += UInt64(n)
            }
            if at < head!.hashesOffset && !rest.isEmpty {
                let n = Int(min(UInt64(rest.count), head!.hashesOffset - at))
                padding += rest.prefix(n)
                at += UInt64(n)
            }
            taken = max(taken, min(at, head!.hashesOffset))
        }
        if case .random(let file) = reader.source, !checkPageHashes, !whole, !entry.isSealed {
            security.payloadNotHashed(entry)
            guard entry.length >= UInt64(fixed) else {
                throw CheckpointError.field(section, entry.offset, "length", expected: "at least \(fixed)", found: entry.length)
            }
            try collect(file.read(at: entry.offset, count: fixed, section: section), at: 0)
            while let head, taken < head.hashesOffset {
                let n = Int(min(head.hashesOffset - taken, UInt64(SectionReader.pieceLength)))
                try collect(file.read(at: entry.offset + taken, count: n, section: section), at: taken)
            }
        } else {
            var plainOffset: UInt64 = 0
            try reader.readPayload(entry) { piece, _ in
                try collect(piece, at: plainOffset)
                plainOffset += UInt64(piece.count)
            }
        }
        if let invalid {
            throw invalid
        }
        guard let head, taken == head.hashesOffset else {
            throw CheckpointError.field(section, entry.offset, "length", expected: "at least \(fixed)", found: length)
        }
        let tableEnd = fixed + Int(head.runTableLength)
        if padding.contains(where: { $0 != 0 }) {
            throw CheckpointError.field(section, entry.offset + UInt64(tableEnd), "padding", expected: "zero", found: hexBytes(padding))
        }
        let runs = try runsDecoder!.finish()
        if runs.pageCount != head.pageCount {
            throw CheckpointError.field(
                section, entry.offset + UInt64(PageHashesSection.pageCount.offset), "pageCount", expected: "\(runs.pageCount) (the runs' pages)",
                found: head.pageCount)
        }
        if entry.isSealed {
            return PageHashes(runs: runs, hashesOffset: head.hashesOffset, checked: true, sealed: try security.sealedPayload(entry))
        }
        return PageHashes(runs: runs, hashesOffset: entry.offset + head.hashesOffset, checked: reader.isStream || checkPageHashes || whole)
    }
}
