import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import Workloads
import CLinuxShim

/// A directory of its own for one test, removed afterwards.
func makeTemporaryDirectory(_ name: String = "pgsnap-test") throws -> String {
    let path = NSTemporaryDirectory() + "\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// The bytes of `range` of `fd`, read with pread (which commits nothing).
///
/// - Precondition: the range is small (it is read into one array).
func readBytes(_ fd: Int32, _ range: FileRange) throws -> [UInt8] {
    precondition(range.length <= 256 << 20, "readBytes: \(range) is too large to read at once")
    var out = [UInt8](repeating: 0, count: Int(range.length))
    try out.withUnsafeMutableBytes { try preadFully(fd, $0, at: range.start) }
    return out
}

/// pread until `buffer` is full; zeros past the end of the file.
func preadFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
    var done = 0
    while done < buffer.count {
        let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
        if n < 0 { throw HostError.last("pread") }
        if n == 0 {
            memset(buffer.baseAddress! + done, 0, buffer.count - done)
            return
        }
        done += n
    }
}

/// The data extents of `fd` inside `range` (SEEK_DATA/SEEK_HOLE): outside
/// them the file reads as zero.
func dataExtents(_ fd: Int32, in range: FileRange) throws -> [FileRange] {
    var out: [FileRange] = []
    var offset = range.start
    while offset < range.end {
        guard let start = try SparseFile.nextData(fd, from: offset), start < range.end else { break }
        let end = min(try SparseFile.nextHole(fd, from: start) ?? range.end, range.end)
        out.append(FileRange(start: start, end: end))
        offset = end
    }
    return out
}

/// Whether `range` of the two files holds the same bytes, looking only
/// where either file has data, in chunks of at most 4 MiB.
func sameContents(_ a: Int32, _ b: Int32, in range: FileRange) throws -> Bool {
    let chunk = 4 << 20
    let x = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
    let y = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
    defer {
        x.deallocate()
        y.deallocate()
    }
    for extent in try dataExtents(a, in: range) + dataExtents(b, in: range) {
        var at = extent.start
        while at < extent.end {
            let n = Int(min(UInt64(chunk), extent.end - at))
            try preadFully(a, UnsafeMutableRawBufferPointer(rebasing: x[..<n]), at: at)
            try preadFully(b, UnsafeMutableRawBufferPointer(rebasing: y[..<n]), at: at)
            if memcmp(x.baseAddress!, y.baseAddress!, n) != 0 {
                return false
            }
            at += UInt64(n)
        }
    }
    return true
}

/// The usage set as a checkpoint sees it: segments merged where kind and
/// references are equal, committed-ness ignored.
func savedShape(_ usage: UsageSet) -> [SegmentRecord] {
    var out: [SegmentRecord] = []
    for (range, info) in usage.segments {
        if let last = out.last, last.range.end == range.start, last.kind == info.kind, last.refs == info.refs {
            out[out.count - 1].range.end = range.end
        } else {
            out.append(SegmentRecord(range: range, refs: info.refs, kind: info.kind))
        }
    }
    return out
}

/// The known-committed ranges of a usage set, touching ones joined.
func knownCommittedRanges(_ usage: UsageSet) -> [FileRange] {
    var out: [FileRange] = []
    for (range, info) in usage.segments where info.knownCommitted {
        if let last = out.last, last.end == range.start {
            out[out.count - 1].end = range.end
        } else {
            out.append(range)
        }
    }
    return out
}

/// The non-zero pages of the referenced segments of `usage` in `fd`, as
/// joined ranges, and their bytes per kind of the segment each lies in.
func nonZeroPages(_ fd: Int32, _ usage: UsageSet) throws -> (ranges: [FileRange], perKind: MemoryStats) {
    var out: [FileRange] = []
    var perKind = MemoryStats()
    let chunk = 4 << 20
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
    defer { buffer.deallocate() }
    for (range, info) in usage.segments where info.refs > 0 {
        for extent in try dataExtents(fd, in: range) {
            var at = extent.start
            while at < extent.end {
                let n = Int(min(UInt64(chunk), extent.end - at))
                try preadFully(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[..<n]), at: at)
                for p in 0..<(n / 4096) where pg_is_zero(buffer.baseAddress! + p * 4096, 4096) == 0 {
                    let r = FileRange(start: at + UInt64(p * 4096), end: at + UInt64((p + 1) * 4096))
                    if let last = out.last, last.end == r.start {
                        out[out.count - 1].end = r.end
                    } else {
                        out.append(r)
                    }
                    perKind[info.kind] += 4096
                }
                at += UInt64(n)
            }
        }
    }
    return (out, perKind)
}

/// The committed pages of the referenced segments of `usage` in `fd`
/// (zero ones included), as joined ranges, and their bytes per kind.
func committedPages(_ fd: Int32, _ usage: UsageSet) throws -> (ranges: [FileRange], perKind: MemoryStats) {
    var out: [FileRange] = []
    var perKind = MemoryStats()
    for (range, info) in usage.segments where info.refs > 0 {
        for extent in try dataExtents(fd, in: range) {
            if let last = out.last, last.end == extent.start {
                out[out.count - 1].end = extent.end
            } else {
                out.append(extent)
            }
            perKind[info.kind] += extent.length
        }
    }
    return (out, perKind)
}

/// Writes `bytes` at `offset` of a MemoryFile through its mappings.
func writeThroughMapping(_ file: MemoryFile, at offset: UInt64, _ bytes: [UInt8]) throws {
    var done = 0
    try file.forEachMappedSlice(FileRange(start: offset, end: offset + UInt64(bytes.count))) { slice in
        bytes.withUnsafeBytes { src in
            slice.baseAddress!.copyMemory(from: src.baseAddress! + done, byteCount: slice.count)
        }
        done += slice.count
    }
}

/// The seed of a randomized test: PGALLOC_TEST_SEED if set, else `fixed`;
/// printed so that a failure can be replayed.
func testSeed(_ fixed: UInt64, _ name: String) -> UInt64 {
    let seed = ProcessInfo.processInfo.environment["PGALLOC_TEST_SEED"].flatMap { UInt64($0) } ?? fixed
    print("\(name) seed: \(seed)")
    return seed
}

/// Writes a checkpoint by hand, through the format's own encoders: the
/// given segments, and one frame per entry of `pages` (a page at that
/// address filled with that byte). For tests of what a restore makes of
/// checkpoints a MemoryFile would not write.
func writeCheckpoint(path: String, fileSize: UInt64, segments: [SegmentRecord], pages: [UInt64: UInt8]) throws {
    var out = ByteWriter()
    var header = CheckpointHeader(version: 1, frameLimit: 1 << 20, fileSize: fileSize, dataSize: fileSize, segmentCount: UInt64(segments.count))
    out.raw(header.encoded())
    let metaStart = out.bytes.count
    for s in segments {
        s.encode(into: &out)
    }
    out.crc(from: metaStart)
    out.u32(0)
    var compressor = try ZstdCompressor(level: 1)
    var totals = IndexTotals()
    var entries: [IndexEntry] = []
    var kinds = KindCursor(segments: segments)
    for (sequence, address) in pages.keys.sorted().enumerated() {
        let data = [UInt8](repeating: pages[address]!, count: 4096)
        var payload = [UInt8](repeating: 0, count: ZstdCompressor.compressBound(4096))
        let n = try data.withUnsafeBytes { src in
            try payload.withUnsafeMutableBytes { dst in try compressor.compress(src, into: dst) }
        }
        payload.removeLast(payload.count - n)
        let run = FileRange(start: address, end: address + 4096)
        var frame = FrameHeader(
            sequence: UInt64(sequence), uncompressedLength: 4096, compressedLength: UInt32(n),
            payloadCRC: CRC32C.checksum(payload), runs: [run])
        let offset = UInt64(out.bytes.count)
        let headerBytes = frame.encoded()
        out.raw(headerBytes)
        out.raw(payload)
        out.zeros(CheckpointFormat.padding(after: UInt64(headerBytes.count + n)))
        entries.append(frame.indexEntry(offset: offset))
        kinds.account(run, into: &totals.storedPerKind)
        totals.storedBytes += 4096
    }
    totals.frameCount = UInt64(entries.count)
    totals.accounting = totals.storedPerKind
    let indexOffset = UInt64(out.bytes.count)
    totals.encodeVersion1(into: &out)
    for e in entries {
        e.encode(into: &out)
    }
    out.crc(from: Int(indexOffset))
    out.u32(0)
    let indexLength = UInt64(out.bytes.count) - indexOffset
    let trailer = CheckpointTrailer(
        version: 1, indexOffset: indexOffset, indexLength: indexLength,
        checkpointLength: UInt64(out.bytes.count) + 64, frameCount: totals.frameCount,
        storedBytes: totals.storedBytes, headerCRC: header.crc)
    out.raw(trailer.encoded())
    try Data(out.bytes).write(to: URL(fileURLWithPath: path))
}

extension SplitMix64 {
    /// `count` bytes from the generator, eight per output, little-endian.
    mutating func bytes(_ count: Int) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = next()
            for offset in index..<min(index + 8, count) {
                result[offset] = UInt8(truncatingIfNeeded: word)
                word >>= 8
            }
            index += 8
        }
        return result
    }
}
