import CLinuxShim
import PGAlloc

extension MemoryFile {
    /// Saves the file to a checkpoint at `path`, atomically: the path holds
    /// either its old contents or the whole new checkpoint, never a part.
    ///
    /// The caller must keep other threads from changing the file while it
    /// is saved (as gVisor pauses the sandbox): save waits until reclaim is
    /// idle, refuses pending evictions, and decommits committed pages it
    /// finds all zero.
    ///
    /// - Throws: `MemoryFileError.evictionsPending` (call
    ///   `startEvictions()` and `waitForEvictions()` first);
    ///   `CheckpointUsageError` for bad options; `HostError` for failed
    ///   reads, writes or syscalls (`ENOSPC` included); `ZstdError`.
    public func save(to path: String, options: SaveOptions = SaveOptions()) throws -> SaveReport {
        let options = try options.validated()
        let output = try CheckpointOutput(atomicPath: path)
        do {
            let report = try CheckpointWriter(source: MemoryFileSource(self), options: options).write(to: output)
            try output.finish()
            return report
        } catch {
            output.abandon()
            throw error
        }
    }

    /// Saves the file to a checkpoint written in order to `descriptor` (a
    /// pipe, stdout, an open file), which stays the caller's. Never seeks.
    /// See `save(to:options:)`.
    public func save(toDescriptor descriptor: Int32, options: SaveOptions = SaveOptions()) throws -> SaveReport {
        let options = try options.validated()
        let output = CheckpointOutput(descriptor: descriptor, name: "descriptor \(descriptor)")
        let report = try CheckpointWriter(source: MemoryFileSource(self), options: options).write(to: output)
        try output.finish()
        return report
    }
}

/// A worker's own compression context and buffers.
final class SaveWorkerContext {
    var compressor: ZstdCompressor
    /// The data pages of a unit, gathered.
    let gatherBuffer: PageBuffer
    /// Where sources that cannot lend their memory read it.
    let readBuffer: PageBuffer

    var gather: UnsafeMutableRawBufferPointer { gatherBuffer.bytes }
    var read: UnsafeMutableRawBufferPointer { readBuffer.bytes }

    init(level: Int32, frameSize: Int) throws {
        compressor = try ZstdCompressor(level: level)
        gatherBuffer = try PageBuffer(capacity: frameSize)
        readBuffer = try PageBuffer(capacity: 1 << 20)
    }
}

/// What a worker made of one unit of committed runs.
struct SaveUnitResult {
    /// Runs of pages with data: the frame's runs. Empty if every page was
    /// zero.
    var runs: [FileRange]
    var uncompressedLength: Int
    var compressedLength: Int
    var payloadCRC: UInt32
    var payload: PageBuffer
    var unitBytes: UInt64
    /// Runs of committed pages found all zero.
    var zeros: [FileRange]
    var zeroBytes: UInt64
}

/// Zero pages a save found, given back to the source in batches by the
/// writer rather than by each worker as it finds them: on this 2-core
/// machine, punching tens of thousands of single pages while the workers
/// compress costs a TLB-flush IPI and inode-lock contention each, and
/// doubled the time of a dense 1 GiB save; punched by one thread after
/// the workers are done, the same pages cost about a third of that (see
/// BENCHMARKS.md). The batch is bounded so that memory stays small for any
/// file size.
struct ZeroPageBatch {
    let limit: Int
    var runs: [FileRange] = []

    mutating func add(_ found: [FileRange], source: SaveSource) throws {
        runs += found
        if runs.count >= limit {
            try flush(source)
        }
    }

    mutating func flush(_ source: SaveSource) throws {
        guard !runs.isEmpty else { return }
        try source.dropZeroPages(runs)
        runs.removeAll(keepingCapacity: true)
    }
}

/// Writes one checkpoint of one source.
struct CheckpointWriter {
    let source: SaveSource
    let options: SaveOptions

    func write(to output: CheckpointOutput) throws -> SaveReport {
        let layout = try source.prepare()
        let segments = layout.segments
        let total = layout.committedBytes

        // Header and metadata: all known before any page is read.
        var header = CheckpointHeader(
            frameLimit: UInt32(options.frameSize), fileSize: layout.fileSize, dataSize: layout.dataSize,
            segmentCount: UInt64(segments.count))
        try output.write(header.encoded())
        var metadataCRC: UInt32 = 0
        var start = 0
        while start < segments.count {
            let end = min(segments.count, start + 65536)
            var w = ByteWriter(capacity: (end - start) * Int(CheckpointFormat.segmentRecordLength))
            for s in segments[start..<end] {
                s.encode(into: &w)
            }
            metadataCRC = w.bytes.withUnsafeBytes { CRC32C.checksum($0, continuing: metadataCRC) }
            try output.write(w.bytes)
            start = end
        }
        var tail = ByteWriter(capacity: 8)
        tail.u32(metadataCRC)
        tail.u32(0)
        try output.write(tail.bytes)

        // Frames: units of at most frameSize committed bytes, compressed by
        // the workers, written in order.
        let frameSize = options.frameSize
        let level = options.level
        let maxInFlight = options.threads + 2
        let queue = try WorkQueue<SaveWorkerContext, SaveUnitResult>(
            threads: options.threads, maxInFlight: maxInFlight, name: "pgsnap-save"
        ) {
            try SaveWorkerContext(level: level, frameSize: frameSize)
        }
        defer { queue.shutDown() }
        // One payload buffer per frame in flight, reused.
        var freeBuffers = try (0..<maxInFlight).map { _ in
            try PageBuffer(capacity: ZstdCompressor.compressBound(frameSize))
        }

        var cursor: UInt64 = 0
        var producing = true
        var sequence: UInt64 = 0
        var entries: [IndexEntry] = []
        var totals = IndexTotals()
        var kinds = KindCursor(segments: segments)
        var done: UInt64 = 0
        var zeroBytes: UInt64 = 0
        var zeroPages = ZeroPageBatch(limit: options.zeroPageBatchLimit)
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
                    queue.submit { context in
                        try compressUnit(runs, of: source, into: buffer, context: context)
                    }
                }
                guard let result = try queue.nextResult() else { break }
                if !result.runs.isEmpty {
                    var frame = FrameHeader(
                        sequence: sequence, uncompressedLength: UInt32(result.uncompressedLength),
                        compressedLength: UInt32(result.compressedLength), payloadCRC: result.payloadCRC,
                        runs: result.runs)
                    let offset = output.bytesWritten
                    let headerBytes = frame.encoded()
                    try output.write(headerBytes)
                    try output.write(UnsafeRawBufferPointer(rebasing: result.payload.bytes[..<result.compressedLength]))
                    try output.zeros(CheckpointFormat.padding(after: UInt64(headerBytes.count + result.compressedLength)))
                    entries.append(frame.indexEntry(offset: offset))
                    for run in result.runs {
                        kinds.account(run, into: &totals.storedPerKind)
                    }
                    totals.storedBytes += UInt64(result.uncompressedLength)
                    sequence += 1
                }
                try zeroPages.add(result.zeros, source: source)
                freeBuffers.append(result.payload)
                done += result.unitBytes
                zeroBytes += result.zeroBytes
                options.progress?(CheckpointProgress(bytesDone: done, bytesTotal: total))
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

        // Index and trailer.
        totals.frameCount = sequence
        totals.accounting = source.accountingSnapshot()
        let indexOffset = output.bytesWritten
        var w = ByteWriter(capacity: Int(CheckpointFormat.indexLength(frameCount: sequence)))
        totals.encode(into: &w)
        for e in entries {
            e.encode(into: &w)
        }
        w.crc(from: 0)
        w.u32(0)
        try output.write(w.bytes)
        let indexLength = UInt64(w.bytes.count)
        let trailer = CheckpointTrailer(
            indexOffset: indexOffset, indexLength: indexLength,
            checkpointLength: indexOffset + indexLength + UInt64(CheckpointFormat.trailerLength),
            frameCount: sequence, storedBytes: totals.storedBytes, headerCRC: header.crc)
        try output.write(trailer.encoded())

        return SaveReport(
            fileSize: layout.fileSize, dataSize: layout.dataSize, segments: segments.count, storedBytes: totals.storedBytes,
            zeroBytesDropped: zeroBytes, frames: sequence, checkpointBytes: output.bytesWritten,
            scan: layout.scan)
    }
}

/// Finds the data pages of a unit's runs and gathers them, compresses them
/// as one frame into `buffer`, and reports which pages were zero.
private func compressUnit(
    _ runs: [FileRange], of source: SaveSource, into buffer: PageBuffer, context: SaveWorkerContext
) throws -> SaveUnitResult {
    let page = Int(CheckpointFormat.pageSize)
    var data: [FileRange] = []
    var zeros: [FileRange] = []
    var unitBytes: UInt64 = 0
    var filled = 0
    let gather = context.gather.baseAddress!

    for run in runs {
        unitBytes += run.length
        var address = run.start
        try source.forEachSlice(of: run, buffer: context.read) { slice in
            guard let base = slice.baseAddress, slice.count > 0 else { return }
            var off = 0
            // Each page is looked at once: the page that ends a stretch
            // starts the next one with what was found.
            var zero = pg_is_zero(base, page) != 0
            while off < slice.count {
                // A stretch of pages that are all zero or all not.
                var end = off + page
                var nextZero = zero
                while end < slice.count {
                    nextZero = pg_is_zero(base + end, page) != 0
                    if nextZero != zero {
                        break
                    }
                    end += page
                }
                let range = FileRange(start: address, end: address + UInt64(end - off))
                if zero {
                    append(range, to: &zeros)
                } else {
                    append(range, to: &data)
                    (gather + filled).copyMemory(from: base + off, byteCount: end - off)
                    filled += end - off
                }
                address += UInt64(end - off)
                off = end
                zero = nextZero
            }
        }
    }

    var result = SaveUnitResult(
        runs: data, uncompressedLength: filled, compressedLength: 0, payloadCRC: 0, payload: buffer,
        unitBytes: unitBytes, zeros: zeros, zeroBytes: zeros.reduce(0) { $0 + $1.length })
    if filled > 0 {
        let compressed = try context.compressor.compress(
            UnsafeRawBufferPointer(rebasing: context.gather[..<filled]), into: buffer.bytes)
        result.compressedLength = compressed
        result.payloadCRC = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buffer.bytes[..<compressed]))
    }
    return result
}

/// Appends `range` to `runs`, joining it to the last run if they touch.
@inline(__always)
func append(_ range: FileRange, to runs: inout [FileRange]) {
    if let last = runs.last, last.end == range.start {
        runs[runs.count - 1].end = range.end
    } else {
        runs.append(range)
    }
}

/// Walks the saved segments alongside runs in address order, to add each
/// run's bytes to the kind of the segments it lies in.
struct KindCursor {
    let segments: [SegmentRecord]
    var index = 0

    init(segments: [SegmentRecord]) {
        self.segments = segments
    }

    /// Adds the bytes of `run` per kind to `stats`; returns false if part of
    /// the run lies outside every segment or in one without references.
    @discardableResult
    mutating func account(_ run: FileRange, into stats: inout MemoryStats) -> Bool {
        var at = run.start
        while at < run.end {
            while index < segments.count && segments[index].range.end <= at {
                index += 1
            }
            guard index < segments.count, segments[index].range.start <= at, segments[index].refs > 0 else {
                return false
            }
            let end = min(run.end, segments[index].range.end)
            stats[segments[index].kind] += end - at
            at = end
        }
        return true
    }
}
