import PGAlloc

extension CheckpointWriter {
    /// Phase 2: units of at most `frameSize` committed bytes, compressed by
    /// the workers, written in order as frames; committed pages found all
    /// zero go back to the source in batches unless the options say not to.
    func writeFrames(layout: SaveLayout, to output: CheckpointOutput) throws -> WrittenFrames {
        let frameSize = options.frameSize
        let level = options.level
        let maxInFlight = options.threads + 2
        let queue = try WorkQueue<SaveWorkerContext, SaveUnitResult>(
            threads: options.threads, maxInFlight: maxInFlight, name: "pgsnap-save"
        ) {
            try SaveWorkerContext(level: level, frameSize: frameSize)
        }
        defer { queue.shutDown() }
        let sealer = security.frameSealer
        let decisions = try PageDecisions(parent: parent, expectedPages: layout.committedBytes / CheckpointFormat.pageSize)
        var unit = 0
        // One payload buffer per frame in flight, reused.
        let payloadCapacity = ZstdCompressor.compressBound(frameSize)
        var freeBuffers = try (0..<maxInFlight).map { _ in
            try PageBuffer(capacity: payloadCapacity + (sealer?.overhead(plain: payloadCapacity) ?? 0))
        }

        var written = WrittenFrames()
        var cursor: UInt64 = 0
        var producing = true
        var kinds = KindCursor(segments: layout.segments)
        var done: UInt64 = 0
        var zeroPages = ZeroPageBatch(enabled: options.decommitZeroPages, limit: options.zeroPageBatchLimit)
        do {
            while true {
                while producing && !queue.isFull {
                    let runs = try source.committedRuns(from: cursor, maxBytes: UInt64(frameSize))
                    guard let last = runs.last else {
                        producing = false
                        break
                    }
                    cursor = last.end
                    let buffer = freeBuffers.removeLast()
                    let source = self.source
                    let n = unit
                    unit += 1
                    queue.submit { context in
                        try compressUnit(
                            n, runs: runs, of: source, decisions: decisions, into: buffer, context: context, sealer: sealer)
                    }
                }
                guard let result = try queue.nextResult() else { break }
                if !result.runs.isEmpty {
                    var frame = FrameHeader(
                        sequence: UInt64(written.entries.count), uncompressedLength: UInt32(result.uncompressedLength),
                        compressedLength: UInt32(result.compressedLength), payloadCRC: result.payloadCRC,
                        runs: result.runs)
                    let offset = output.bytesWritten
                    let headerBytes = frame.encoded()
                    try output.write(headerBytes)
                    try output.write(UnsafeRawBufferPointer(rebasing: result.payload.bytes[..<result.compressedLength]))
                    try output.zeros(CheckpointFormat.padding(after: UInt64(headerBytes.count + result.compressedLength)))
                    written.entries.append(
                        frame.indexEntry(offset: offset, digest: security.frameDigest(header: headerBytes, payloadDigest: result.payloadDigest)))
                    for run in result.runs {
                        kinds.account(run, into: &written.storedPerKind)
                    }
                    written.storedBytes += UInt64(result.uncompressedLength)
                    for run in result.runs {
                        written.storedPages.add(run)
                    }
                    written.digests.append(contentsOf: result.digests)
                }
                for reference in result.references {
                    written.references.add(reference)
                    if reference.link == 0 {
                        written.duplicateBytes += reference.destination.length
                    } else {
                        written.referencedBytes += reference.destination.length
                    }
                }
                try zeroPages.add(result.zeros, source: source)
                freeBuffers.append(result.payload)
                done += result.unitBytes
                written.zeroBytes += result.zeroBytes
                options.progress?(CheckpointProgress(bytesDone: done, bytesTotal: layout.committedBytes))
            }
        } catch {
            _ = queue.drain()
            throw error
        }

        // The workers are idle now: no other CPU runs this process, so
        // punching the zero pages needs no cross-CPU TLB flushes. The disk
        // writes the frames meanwhile.
        queue.shutDown()
        try output.startDurability()
        try zeroPages.flush(source)
        written.zeroBytesDecommitted = zeroPages.decommittedBytes
        return written
    }
}
