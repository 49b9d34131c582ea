import PGAlloc

extension CheckpointScanner {
    /// Phase 4: every frame, in sequence. Each header is checked (runs in
    /// order, inside referenced segments) before its payload is read; the
    /// payload is skipped, or handed to a worker that checks its CRC,
    /// decompresses it and gives the data to the sink. From a stream, the
    /// frames end where the index's tag is found; from a file, where the
    /// trailer says the index is.
    func readFrames(header: CheckpointHeader, head: CheckpointHead, ends: CheckpointEnds?, mode: PayloadMode) throws -> FrameTally {
        var pipeline: FramePipeline?
        if case .decompress(let sink) = mode {
            pipeline = try FramePipeline(header: header, threads: threads, sink: sink, opener: security.frameOpener(ends?.index))
        }
        let sealOverhead = security.sealOverhead(header)
        defer { pipeline?.shutDown() }

        var tally = FrameTally()
        var kinds = KindCursor(segments: head.segments)
        var previousEnd: UInt64 = 0
        let indexTag = header.version == 1 ? CheckpointFormat.indexTagV1 : CheckpointFormat.indexTagV2
        let totalBytes = ends?.trailer.storedBytes ?? 0
        do {
            while true {
                let sequence = tally.count
                let at = input.offset
                if let t = ends?.trailer, sequence == t.frameCount {
                    if at != t.indexOffset {
                        throw CheckpointError.field(
                            .frame(sequence), at, "offset", expected: "the index at \(hex(t.indexOffset)) after \(t.frameCount) frames",
                            found: hex(at))
                    }
                    break
                }
                let tagBytes = try input.read(FrameLayout.tag.size, section: .frame(sequence))
                let tag = UInt32(tagBytes[0]) | UInt32(tagBytes[1]) << 8 | UInt32(tagBytes[2]) << 16 | UInt32(tagBytes[3]) << 24
                if tag == indexTag && ends == nil {
                    break
                }
                let prefixBytes = tagBytes + (try input.read(FrameLayout.fixedLength - FrameLayout.tag.size, section: .frame(sequence)))
                let prefix = try FrameHeaderPrefix.decode(
                    prefixBytes, offset: at, expectedSequence: sequence, previousEnd: previousEnd, header: header,
                    sealOverhead: sealOverhead)
                let rest = try input.read(prefix.restLength, section: .frame(sequence))
                let frame = try prefix.complete(rest, offset: at, header: header)
                for (i, run) in frame.runs.enumerated() where !kinds.account(run, into: &tally.storedPerKind) {
                    throw CheckpointError.field(
                        .frame(sequence), at + UInt64(FrameLayout.fixedLength), "run \(i)",
                        expected: "pages inside segments with references", found: run)
                }
                let payloadAt = at + UInt64(frame.headerLength)
                let padding = CheckpointFormat.padding(after: payloadAt + UInt64(frame.compressedLength) - at)
                if let pipeline {
                    try pipeline.submit(frame, payloadOffset: payloadAt) { payload in
                        try input.read(into: payload, section: .frame(sequence))
                        try readZeroPadding(input, padding, section: .frame(sequence))
                    }
                } else {
                    try input.skip(UInt64(frame.compressedLength), section: .frame(sequence))
                    try readZeroPadding(input, padding, section: .frame(sequence))
                }
                tally.entriesCRC = frame.indexEntry(offset: at).checksum(continuing: tally.entriesCRC)
                previousEnd = frame.runs.last!.end
                tally.storedBytes += UInt64(frame.uncompressedLength)
                tally.count += 1
                if collectFrames {
                    tally.frames.append(frame)
                }
                progress?(CheckpointProgress(bytesDone: tally.storedBytes, bytesTotal: totalBytes))
            }
            try pipeline?.finish()
            return tally
        } catch {
            // An earlier frame's failure on a worker comes first.
            if let earlier = pipeline?.drain() {
                throw earlier
            }
            throw error
        }
    }
}
