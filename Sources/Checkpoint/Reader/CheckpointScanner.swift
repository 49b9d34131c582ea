import PGAlloc

/// Reads a checkpoint from start to end, checking every rule of
/// docs/FORMAT.md, and hands what it finds to a sink.
///
/// The phases, in the order they run:
/// 1. `readHeader`.
/// 2. `readEnds`, from a file only: the trailer, the index and (version 2)
///    the tail sections, so that a damaged or truncated end is found
///    before memory is created.
/// 3. `readHead`: version 1's segment table, or version 2's head section
///    table and sections (the segment table among them).
/// 4. `readFrames`: each frame's header, then its payload, skipped or
///    decompressed on worker threads for the sink.
/// 5. `readEndsInOrder`, from a stream only: index, tail sections,
///    trailer, and the end of the input.
/// 6. `checkTally`: the index and the totals describe the frames read.
struct CheckpointScanner {
    let input: SequentialReader
    var threads: Int = defaultThreadCount()
    var collectFrames = false
    var progress: ProgressHandler? = nil
    /// The largest `fileSize` accepted.
    var memoryLimit = RestoreOptions.defaultMemoryLimit

    init(input: SequentialReader) {
        self.input = input
    }

    /// A scanner of the checkpoint at `location`, as `options` ask.
    static func opening(_ location: CheckpointLocation, options: RestoreOptions) throws -> CheckpointScanner {
        try checkThreadCount(options.threads)
        // Everything is read, in order: an object is fetched ahead.
        var scanner = CheckpointScanner(input: SequentialReader(try OpenedInput.open(location), readAhead: true))
        scanner.threads = options.threads
        scanner.progress = options.progress
        scanner.memoryLimit = options.memoryLimit
        return scanner
    }

    func scan(_ mode: PayloadMode) throws -> CheckpointMetadata {
        let header = try readHeader()
        let knownEnds = try input.randomAccess.map { try readEnds(header: header, from: $0) }
        if case .skip = mode, let knownEnds {
            // Only the frame headers are read: an object fetches them ahead.
            input.willRead(at: knownEnds.index.entries.map(\.offset))
        }
        let head = try readHead(header: header, ends: knownEnds)
        try knownEnds?.checkFramesOffset(head.framesOffset)

        if case .decompress(let sink) = mode {
            try sink.begin(header: header, segments: head.segments)
        }
        let tally = try readFrames(header: header, head: head, ends: knownEnds, mode: mode)
        let ends: CheckpointEnds
        if let knownEnds {
            ends = knownEnds
            try input.skip(knownEnds.trailer.checkpointLength - input.offset, section: .index)
        } else {
            ends = try readEndsInOrder(header: header, head: head)
        }
        try checkTally(tally, ends: ends)
        return CheckpointMetadata(
            header: header, segments: head.segments, totals: ends.totals, checkpointLength: ends.trailer.checkpointLength,
            frames: tally.frames, index: ends.index.entries, sections: head.sections + ends.tail,
            annotations: head.annotations, framesOffset: head.framesOffset, prefetchOrder: ends.prefetchOrder)
    }

    /// Phase 1: the header. Reads what there is of it, so that a short file
    /// that is not a checkpoint says so.
    func readHeader() throws -> CheckpointHeader {
        let header = try CheckpointHeader.decode(input.read(upTo: HeaderLayout.recordLength))
        if header.fileSize > memoryLimit {
            throw CheckpointError(
                .limitExceeded, .header, offset: UInt64(HeaderLayout.fileSize.offset),
                "fileSize: the checkpoint asks for a memory file of \(header.fileSize) bytes, more than the limit of \(memoryLimit)")
        }
        return header
    }

    /// Phase 6: the index must describe the frames that were read, and the
    /// totals must be theirs.
    func checkTally(_ tally: FrameTally, ends: CheckpointEnds) throws {
        let index = ends.index
        let totals = ends.totals
        if totals.frameCount != tally.count {
            throw CheckpointError.field(
                .index, index.indexOffset + UInt64(IndexLayout.frameCount.offset), "frameCount", expected: "\(tally.count) (frames read)",
                found: totals.frameCount)
        }
        if totals.storedBytes != tally.storedBytes {
            throw CheckpointError.field(
                .index, index.indexOffset + UInt64(IndexLayout.storedBytes.offset), "storedBytes",
                expected: "\(tally.storedBytes) (the frames' runs)", found: totals.storedBytes)
        }
        if totals.storedPerKind != tally.storedPerKind {
            let (section, offset) = ends.perKindLocation
            throw CheckpointError.field(
                section, offset, "storedPerKind", expected: "\(tally.storedPerKind) (the frames' runs)", found: totals.storedPerKind)
        }
        if index.entriesCRC != tally.entriesCRC {
            throw CheckpointError(
                .invalidField("entries"), .index, offset: index.indexOffset + UInt64(index.shape.fixedLength),
                "the entries do not describe the frames read (entries CRC \(hex(UInt64(index.entriesCRC))), frames give \(hex(UInt64(tally.entriesCRC))))")
        }
    }
}

/// What the frames of a checkpoint said, as they were read.
struct FrameTally {
    var count: UInt64 = 0
    var storedBytes: UInt64 = 0
    var storedPerKind = MemoryStats()
    /// CRC-32C of the index entries the frames call for.
    var entriesCRC: UInt32 = 0
    /// Every frame's header, if collected.
    var frames: [FrameHeader] = []
}
