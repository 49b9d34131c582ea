import PGAlloc

/// What a scan does with the frames' payloads.
enum PayloadMode {
    /// Skip them (seek over them in a file): for reading the metadata.
    case skip
    /// Check their checksums, decompress them on worker threads, and hand
    /// the data to a sink.
    case decompress(FrameSink)
}

/// Receives the checkpoint's parts as a scan validates them.
protocol FrameSink: AnyObject, Sendable {
    /// Called once the header and segment table are read and checked,
    /// before any frame.
    func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws
    /// Called on a worker thread with the decompressed data of a checked
    /// frame, `data.count == frame.uncompressedLength`.
    func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws
}

/// Everything a checkpoint says about itself, apart from page data.
public struct CheckpointMetadata: Sendable {
    public var header: CheckpointHeader
    public var segments: [SegmentRecord]
    public var totals: IndexTotals
    /// Bytes of the checkpoint.
    public var checkpointLength: UInt64
    /// Every frame's header (runs included), in order, if asked for.
    public var frames: [FrameHeader]
}

/// A decompression worker's context.
final class DecodeContext {
    var decompressor: ZstdDecompressor
    let scratchBuffer: PageBuffer

    var scratch: UnsafeMutableRawBufferPointer { scratchBuffer.bytes }

    init(frameLimit: Int) throws {
        decompressor = try ZstdDecompressor(windowLogMax: CheckpointFormat.windowLogMax)
        scratchBuffer = try PageBuffer(capacity: frameLimit)
    }
}

/// Reads a checkpoint from start to end, checking every rule of
/// docs/FORMAT.md, and hands what it finds to a sink.
struct CheckpointScanner {
    let input: CheckpointInput
    var threads: Int = defaultThreadCount()
    var collectFrames = false
    var progress: (@Sendable (CheckpointProgress) -> Void)? = nil

    init(input: CheckpointInput) {
        self.input = input
    }

    func scan(_ mode: PayloadMode) throws -> CheckpointMetadata {
        // Header. Read what there is of it, so that a short file that is
        // not a checkpoint says so.
        let headerBytes = try input.read(upTo: CheckpointFormat.headerLength)
        let header = try CheckpointHeader.decode(headerBytes)

        // A file: check its length, the trailer and the index before
        // anything else, so that a truncated or damaged end is found before
        // memory is created.
        var knownTrailer: CheckpointTrailer?
        var knownIndex: IndexDecoder?
        if let length = input.seekableLength {
            let minimum = header.framesOffset + CheckpointFormat.indexLength(frameCount: 0) + UInt64(CheckpointFormat.trailerLength)
            if length < minimum {
                throw CheckpointError(.truncated, .file, offset: length, "a checkpoint with \(header.segmentCount) segments is at least \(minimum) bytes, this one is \(length)")
            }
            let trailerAt = length - UInt64(CheckpointFormat.trailerLength)
            let trailer: CheckpointTrailer
            do {
                trailer = try CheckpointTrailer.decode(
                    input.read(at: trailerAt, count: CheckpointFormat.trailerLength, section: .trailer),
                    offset: trailerAt, header: header)
            } catch var error as CheckpointError where error.reason == .invalidField("magic") {
                // The last 64 bytes are not a trailer: most likely the file
                // was cut short, or something was appended to it.
                error.detail += "; the file may be truncated or have data after its trailer"
                throw error
            }
            if trailer.checkpointLength != length {
                throw CheckpointError.field(.trailer, trailerAt + 32, "checkpointLength", expected: "\(length) (the file's length)", found: trailer.checkpointLength)
            }
            let index = try readIndex(header: header, at: trailer.indexOffset, frameCount: trailer.frameCount, sequentially: false)
            // The trailer repeats the index's storedBytes: a stream compares
            // every trailer field at the end, a file must too.
            if trailer.storedBytes != index.totals.storedBytes {
                throw CheckpointError.field(
                    .trailer, trailerAt + 48, "storedBytes", expected: "\(index.totals.storedBytes) (the index's)", found: trailer.storedBytes)
            }
            knownIndex = index
            knownTrailer = trailer
        }

        // Metadata, in pieces.
        var table = SegmentTableDecoder(header: header)
        var records: [SegmentRecord] = []
        while table.remaining > 0 {
            let count = Int(min(table.remaining, 65536))
            let bytes = try input.read(count * Int(CheckpointFormat.segmentRecordLength), section: .metadata)
            records += try table.decode(bytes)
        }
        try table.finish(try input.read(8, section: .metadata))
        let segments = records

        var queue: WorkQueue<DecodeContext, PageBuffer>?
        var sink: FrameSink?
        // Compressed frames in flight, each in a buffer of its own, reused:
        // allocated as needed up to the queue's limit, large enough for the
        // largest frame the header allows.
        var freePayloads: [PageBuffer] = []
        let payloadCapacity = Int(CheckpointFormat.maxCompressedLength(frameLimit: header.frameLimit))
        if case .decompress(let s) = mode {
            try s.begin(header: header, segments: segments)
            sink = s
            let frameLimit = Int(header.frameLimit)
            queue = try WorkQueue(threads: threads, maxInFlight: threads + 2, name: "pgsnap-restore") {
                try DecodeContext(frameLimit: frameLimit)
            }
        }
        defer { queue?.shutDown() }

        // Frames.
        var kinds = KindCursor(segments: segments)
        var stored = MemoryStats()
        var storedBytes: UInt64 = 0
        var sequence: UInt64 = 0
        var previousEnd: UInt64 = 0
        var entriesCRC: UInt32 = 0
        var frames: [FrameHeader] = []
        let totalBytes = knownTrailer?.storedBytes ?? 0
        do {
            while true {
                let at = input.offset
                if let t = knownTrailer, sequence == t.frameCount {
                    if at != t.indexOffset {
                        throw CheckpointError.field(.frame(sequence), at, "offset", expected: "the index at \(hex(t.indexOffset)) after \(t.frameCount) frames", found: hex(at))
                    }
                    break
                }
                let tagBytes = try input.read(4, section: .frame(sequence))
                let tag = UInt32(tagBytes[0]) | UInt32(tagBytes[1]) << 8 | UInt32(tagBytes[2]) << 16 | UInt32(tagBytes[3]) << 24
                if tag == CheckpointFormat.indexTag && knownTrailer == nil {
                    break
                }
                let prefixBytes = tagBytes + (try input.read(CheckpointFormat.frameFixedLength - 4, section: .frame(sequence)))
                let prefix = try FrameHeaderPrefix.decode(
                    prefixBytes, offset: at, expectedSequence: sequence, previousEnd: previousEnd, header: header)
                let rest = try input.read(prefix.restLength, section: .frame(sequence))
                let frame = try prefix.complete(rest, offset: at, header: header)
                for (i, run) in frame.runs.enumerated() where !kinds.account(run, into: &stored) {
                    throw CheckpointError.field(
                        .frame(sequence), at + UInt64(CheckpointFormat.frameFixedLength), "run \(i)",
                        expected: "pages inside segments with references", found: run)
                }
                let payloadAt = at + UInt64(frame.headerLength)
                let padding = CheckpointFormat.padding(after: payloadAt + UInt64(frame.compressedLength) - at)
                if let queue, let sink {
                    while queue.isFull {
                        freePayloads.append(try queue.nextResult()!)
                    }
                    let payload: PageBuffer
                    if let reused = freePayloads.popLast() {
                        payload = reused
                    } else {
                        payload = try PageBuffer(capacity: payloadCapacity)
                    }
                    let compressed = UnsafeMutableRawBufferPointer(rebasing: payload.bytes[..<Int(frame.compressedLength)])
                    try input.read(into: compressed, section: .frame(sequence))
                    try readPadding(padding, section: .frame(sequence))
                    queue.submit { context in
                        try decodeFrame(frame, payload: UnsafeRawBufferPointer(compressed), payloadOffset: payloadAt, context: context, sink: sink)
                        return payload
                    }
                } else {
                    try input.skip(UInt64(frame.compressedLength), section: .frame(sequence))
                    try readPadding(padding, section: .frame(sequence))
                }
                entriesCRC = frame.indexEntry(offset: at).checksum(continuing: entriesCRC)
                previousEnd = frame.runs.last!.end
                storedBytes += UInt64(frame.uncompressedLength)
                sequence += 1
                if collectFrames {
                    frames.append(frame)
                }
                progress?(CheckpointProgress(bytesDone: storedBytes, bytesTotal: totalBytes))
            }

            // Index and trailer: read them now from a stream; a file's were
            // checked first.
            let index: IndexDecoder
            if let known = knownIndex {
                index = known
                try input.skip(knownTrailer!.indexLength + UInt64(CheckpointFormat.trailerLength), section: .index)
            } else {
                let indexOffset = input.offset - 4
                index = try readIndex(header: header, at: indexOffset, frameCount: nil, sequentially: true)
                let trailerAt = input.offset
                let trailer = try CheckpointTrailer.decode(
                    input.read(CheckpointFormat.trailerLength, section: .trailer), offset: trailerAt, header: header)
                if trailer.indexOffset != indexOffset || trailer.frameCount != index.totals.frameCount
                    || trailer.storedBytes != index.totals.storedBytes || trailer.checkpointLength != input.offset
                {
                    throw CheckpointError.field(
                        .trailer, trailerAt, "fields",
                        expected: "index at \(hex(indexOffset)), \(index.totals.frameCount) frames, \(index.totals.storedBytes) bytes stored, length \(input.offset)",
                        found: "index at \(hex(trailer.indexOffset)), \(trailer.frameCount) frames, \(trailer.storedBytes) bytes stored, length \(trailer.checkpointLength)")
                }
                if !(try input.isAtEnd()) {
                    throw CheckpointError(.trailingData, .file, offset: input.offset, "the checkpoint ends at \(input.offset) but the input goes on")
                }
                knownTrailer = trailer
            }

            // The index must describe the frames that were read.
            let totals = index.totals
            if totals.frameCount != sequence {
                throw CheckpointError.field(.index, index.indexOffset + 8, "frameCount", expected: "\(sequence) (frames read)", found: totals.frameCount)
            }
            if totals.storedBytes != storedBytes {
                throw CheckpointError.field(.index, index.indexOffset + 16, "storedBytes", expected: "\(storedBytes) (the frames' runs)", found: totals.storedBytes)
            }
            if totals.storedPerKind != stored {
                throw CheckpointError.field(.index, index.indexOffset + 24, "storedPerKind", expected: "\(stored) (the frames' runs)", found: totals.storedPerKind)
            }
            if index.entriesCRC != entriesCRC {
                throw CheckpointError(
                    .invalidField("entries"), .index, offset: index.indexOffset + UInt64(IndexTotals.encodedLength),
                    "the entries do not describe the frames read (entries CRC \(hex(UInt64(index.entriesCRC))), frames give \(hex(UInt64(entriesCRC))))")
            }

            if let queue, let error = queue.drain() {
                throw error
            }
            return CheckpointMetadata(
                header: header, segments: records, totals: totals,
                checkpointLength: knownTrailer!.checkpointLength, frames: frames)
        } catch {
            // An earlier frame's failure on a worker comes first.
            if let queue, let earlier = queue.drain() {
                throw earlier
            }
            throw error
        }
    }

    private func readPadding(_ count: Int, section: CheckpointSection) throws {
        if count > 0 {
            let at = input.offset
            let bytes = try input.read(count, section: section)
            if bytes.contains(where: { $0 != 0 }) {
                throw CheckpointError.field(section, at, "padding", expected: "zero", found: hexBytes(bytes))
            }
        }
    }

    /// Reads and checks the index at `at`: with `pread` for a file (before
    /// the frames), or in order from a stream (right after its tag was
    /// read).
    private func readIndex(header: CheckpointHeader, at indexOffset: UInt64, frameCount: UInt64?, sequentially: Bool) throws -> IndexDecoder {
        var decoder = IndexDecoder(header: header, indexOffset: indexOffset)
        let fixed = IndexTotals.encodedLength
        let totalsBytes: [UInt8]
        if sequentially {
            totalsBytes = [0x49, 0x44, 0x58, 0x31] + (try input.read(fixed - 4, section: .index))
        } else {
            totalsBytes = try input.read(at: indexOffset, count: fixed, section: .index)
        }
        try decoder.decodeTotals(totalsBytes)
        if let frameCount, decoder.totals.frameCount != frameCount {
            throw CheckpointError.field(.index, indexOffset + 8, "frameCount", expected: "\(frameCount) (the trailer's)", found: decoder.totals.frameCount)
        }
        if !sequentially, let length = input.seekableLength {
            // The trailer bounded frameCount by the space before the index;
            // the entries must also fit before the trailer.
            let needed = CheckpointFormat.indexLength(frameCount: decoder.totals.frameCount)
            if indexOffset + needed + UInt64(CheckpointFormat.trailerLength) != length {
                throw CheckpointError.field(.index, indexOffset + 8, "frameCount", expected: "a count whose entries fill the index", found: decoder.totals.frameCount)
            }
        }
        while decoder.remaining > 0 {
            let count = Int(min(decoder.remaining, 65536))
            let bytes: [UInt8]
            if sequentially {
                bytes = try input.read(count * CheckpointFormat.indexEntryLength, section: .index)
            } else {
                bytes = try input.read(at: decoder.offset, count: count * CheckpointFormat.indexEntryLength, section: .index)
            }
            try decoder.decodeEntries(bytes)
        }
        let tail = sequentially ? try input.read(8, section: .index) : try input.read(at: decoder.offset, count: 8, section: .index)
        try decoder.finish(tail)
        return decoder
    }
}

/// Checks a frame's payload and decompresses it for the sink (on a worker).
private func decodeFrame(
    _ frame: FrameHeader, payload: UnsafeRawBufferPointer, payloadOffset: UInt64, context: DecodeContext, sink: FrameSink
) throws {
    let section = CheckpointSection.frame(frame.sequence)
    let crc = CRC32C.checksum(payload)
    if crc != frame.payloadCRC {
        throw CheckpointError(
            .checksumMismatch, section, offset: payloadOffset,
            "payloadCRC: stored \(hex(UInt64(frame.payloadCRC))), computed \(hex(UInt64(crc)))")
    }
    let out = UnsafeMutableRawBufferPointer(rebasing: context.scratch[..<Int(frame.uncompressedLength)])
    do {
        try context.decompressor.decompress(payload, into: out)
    } catch {
        throw CheckpointError(.badPayload, section, offset: payloadOffset, "\(error)")
    }
    try sink.consume(frame, data: UnsafeRawBufferPointer(out))
}
