import CLinuxShim
import PGAlloc

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
    /// The SHA-256 of the payload as stored, for a signed checkpoint.
    var payloadDigest: [UInt8]? = nil
    var payload: PageBuffer
    var unitBytes: UInt64
    /// Runs of committed pages found all zero.
    var zeros: [FileRange]
    var zeroBytes: UInt64
}

/// Finds the data pages of a unit's runs and gathers them, compresses them
/// as one frame into `buffer` (sealed and hashed by `sealer`, if any), and
/// reports which pages were zero.
func compressUnit(
    _ runs: [FileRange], of source: SaveSource, into buffer: PageBuffer, context: SaveWorkerContext, sealer: FrameSealer?
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
        let stored = try sealer?.seal(buffer.bytes, plainLength: compressed, runs: data, uncompressedLength: filled) ?? compressed
        let payload = UnsafeRawBufferPointer(rebasing: buffer.bytes[..<stored])
        result.compressedLength = stored
        result.payloadCRC = CRC32C.checksum(payload)
        result.payloadDigest = sealer?.payloadDigest(payload)
    }
    return result
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
