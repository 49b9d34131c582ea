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
    /// The identity, encryption and signature of what is read, checked
    /// with the reader's keys.
    let security: ReadSecurity
    /// Whether the segment table is kept (else only checked): a chain's
    /// parents need only their index and sections.
    var keepSegments = true
    /// Whether the page hashes' whole payload is read and its CRC checked,
    /// from a file (else only its fields and run table are read: what a
    /// restore needs of them).
    var checkPageHashes = false
    /// Whether `REFS` is decoded and checked (else skipped: a restored
    /// chain's parents need only the pages they store; their references
    /// are covered by their identity, which the child records).
    var keepReferences = true
    /// Whether the scan computes the identity (`CheckpointSecurity.identity`),
    /// reading the page hashes whole to hash them. A lazy restore, which
    /// needs only their run table, turns it off (the identity is still
    /// computed, and checked, for an encrypted or signed checkpoint).
    var computesIdentity = true
    /// Called once the head is read (and, from a file, the ends), before
    /// any memory is created: a chain's parents are resolved there.
    /// The ends are nil from a stream.
    var beforeFrames: ((CheckpointHead, CheckpointEnds?) throws -> Void)? = nil

    init(input: SequentialReader, keys: CheckpointKeys = CheckpointKeys()) {
        self.input = input
        security = ReadSecurity(keys: keys)
    }

    /// A scanner of the checkpoint at `location`, as `options` ask.
    static func opening(_ location: CheckpointLocation, options: RestoreOptions) throws -> CheckpointScanner {
        try checkThreadCount(options.threads)
        // Everything is read, in order: an object is fetched ahead.
        var scanner = CheckpointScanner(input: SequentialReader(try OpenedInput.open(location), readAhead: true), keys: options.keys)
        scanner.threads = options.threads
        scanner.progress = options.progress
        scanner.memoryLimit = options.memoryLimit
        // An eager restore reads every byte it is given: the page hashes'
        // too, whose CRC it checks (a lazy restore does not read them).
        scanner.checkPageHashes = true
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
        if let knownEnds {
            try knownEnds.checkFramesOffset(head.framesOffset)
            try security.authenticate(index: knownEnds.index, framesRead: false)
            try checkReferences(header: header, head: head, ends: knownEnds)
        }
        try beforeFrames?(head, knownEnds)

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
            try security.authenticate(index: ends.index, framesRead: tally.count == ends.totals.frameCount && mode.readsPayloads)
        }
        try checkTally(tally, ends: ends)
        if knownEnds == nil {
            try checkReferences(header: header, head: head, ends: ends)
        }
        return metadata(header: header, head: head, ends: ends, frames: tally.frames)
    }

    /// What the phases found, as the caller sees it.
    func metadata(header: CheckpointHeader, head: CheckpointHead, ends: CheckpointEnds, frames: [FrameHeader]) -> CheckpointMetadata {
        var m = CheckpointMetadata(
            header: header, segments: head.segments, totals: ends.totals, checkpointLength: ends.trailer.checkpointLength,
            frames: frames, index: ends.index.entries, sections: head.sections + ends.tail,
            annotations: head.annotations, framesOffset: head.framesOffset, indexOffset: ends.trailer.indexOffset,
            indexLength: ends.trailer.indexLength, prefetchOrder: ends.prefetchOrder, security: security.summary)
        m.parent = head.parent
        m.references = ends.references
        m.pageHashes = ends.pageHashes
        // From a file, once authenticated: for whoever reads its frames
        // later (a lazy loader, a child taking pages from this parent).
        // A stream's opener served its one read.
        if input.randomAccess != nil {
            m.frameOpener = security.frameOpener(ends.index)
        }
        return m
    }

    /// Everything but the frames, from a file: header, ends (trailer, index,
    /// tail sections) and head (sections, segment table). The frames are
    /// neither read nor checked: a lazy loader checks each when it needs
    /// it. `frames` is empty.
    func scanWithoutFrames() throws -> CheckpointMetadata {
        guard let file = input.randomAccess else {
            preconditionFailure("CheckpointScanner.scanWithoutFrames: \(input.name) is not a file")
        }
        let header = try readHeader()
        let ends = try readEnds(header: header, from: file)
        let head = try readHead(header: header, ends: ends)
        try ends.checkFramesOffset(head.framesOffset)
        try security.authenticate(index: ends.index, framesRead: false)
        try checkReferences(header: header, head: head, ends: ends)
        return metadata(header: header, head: head, ends: ends, frames: [])
    }

    /// The references must name links of the chain, give pages inside
    /// segments with references that this checkpoint does not store, and
    /// (link 0) take them from pages it does store: its page hashes say
    /// which.
    func checkReferences(header: CheckpointHeader, head: CheckpointHead, ends: CheckpointEnds) throws {
        guard !ends.references.isEmpty else { return }
        let section = CheckpointSection.section(.references)
        guard let entry = ends.tail.first(where: { $0.type == .references }) else { return }
        guard let stored = ends.pageHashes?.runs else {
            throw CheckpointError.field(section, entry.offset, "sections", expected: "a PHSH section beside REFS (its runs check the references)", found: "none")
        }
        let depth = head.parent?.depth ?? 0
        let segments = keepSegments ? SegmentLookup(head.segments) : nil
        // Destinations ascend (REFS encodes gaps): one walk over the runs.
        var cursor = 0
        var hint = 0
        for (i, r) in ends.references.enumerated() {
            if r.link > depth {
                throw CheckpointError.field(section, entry.offset, "entry \(i) link", expected: "at most the chain depth \(depth)", found: r.link)
            }
            if stored.overlaps(r.destination, cursor: &cursor) {
                throw CheckpointError.field(section, entry.offset, "entry \(i)", expected: "pages the frames do not store", found: r.destination)
            }
            if r.link == 0 && !stored.contains(r.sourceRange, hint: &hint) {
                throw CheckpointError.field(section, entry.offset, "entry \(i) source", expected: "pages this checkpoint stores", found: r.sourceRange)
            }
            if let segments, !segments.isReferenced(r.destination) {
                throw CheckpointError.field(section, entry.offset, "entry \(i)", expected: "pages inside segments with references", found: r.destination)
            }
        }
    }

    /// Phase 1: the header. Reads what there is of it, so that a short file
    /// that is not a checkpoint says so.
    func readHeader() throws -> CheckpointHeader {
        let bytes = try input.read(upTo: HeaderLayout.recordLength)
        let header = try CheckpointHeader.decode(bytes)
        if header.fileSize > memoryLimit {
            throw CheckpointError(
                .limitExceeded, .header, offset: UInt64(HeaderLayout.fileSize.offset),
                "fileSize: the checkpoint asks for a memory file of \(header.fileSize) bytes, more than the limit of \(memoryLimit)")
        }
        try security.headerRead(header, bytes: bytes, file: input.randomAccess)
        return header
    }

    /// A reader of version 2's sections from `source`, for this scan.
    func sectionReader(_ header: CheckpointHeader, _ source: SectionReader.Source) -> SectionReader {
        SectionReader(header: header, source: source, security: security)
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
