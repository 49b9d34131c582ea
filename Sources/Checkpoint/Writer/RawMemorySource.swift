#if canImport(Glibc)
import Glibc
#endif
import PGAlloc
import SystemPackage

/// Memory this process did not allocate: a raw memory image (a sparse
/// regular file) or a memfd of another process (`/proc/PID/fd/N`). Its data
/// extents (SEEK_DATA/SEEK_HOLE), rounded out to whole pages, become
/// allocated segments of one kind; its holes stay holes. It is read with
/// `pread`, which neither changes it nor commits its holes.
final class RawMemorySource: SaveSource, @unchecked Sendable {
    private let fd: FileDescriptor
    private let name: String
    private let kind: MemoryKind
    private var extents: [FileRange] = []
    private var dataSize: UInt64 = 0

    /// Reads from `fd`, which must stay open until the save ends.
    init(descriptor fd: FileDescriptor, name: String, kind: MemoryKind) {
        self.fd = fd
        self.name = name
        self.kind = kind
    }

    func prepare() throws -> SaveLayout {
        let st = try fd.status(call: "fstat \(name)")
        let type = st.st_mode & S_IFMT
        guard type == S_IFREG else {
            throw CheckpointUsageError("\(name) is not a regular file or memfd (a device, pipe or directory cannot be saved)")
        }
        dataSize = UInt64(st.st_size)
        let page = CheckpointFormat.pageSize
        let chunk = CheckpointFormat.chunkSize
        guard dataSize <= CheckpointFormat.maxFileSize else {
            throw CheckpointUsageError("\(name) is \(dataSize) bytes, larger than a checkpoint can hold")
        }
        let fileSize = (dataSize + chunk - 1) / chunk * chunk
        var offset: UInt64 = 0
        while offset < dataSize {
            guard let start = try fd.nextData(from: offset, name: name), start < dataSize else { break }
            let end = try fd.nextHole(from: start, name: name) ?? dataSize
            let range = FileRange(start: start / page * page, end: (min(end, dataSize) + page - 1) / page * page)
            append(range, to: &extents)
            offset = max(end, start + 1)
        }
        let segments = extents.map { SegmentRecord(range: $0, refs: 1, kind: kind) }
        let bytes = extents.reduce(0) { $0 + $1.length }
        return SaveLayout(fileSize: fileSize, dataSize: dataSize, segments: segments, scan: "seekData", committedBytes: bytes)
    }

    func committedRuns(from cursor: UInt64, maxBytes: UInt64) -> [FileRange] {
        var out: [FileRange] = []
        var total: UInt64 = 0
        // Extents are sorted: find the first one ending after the cursor.
        var lo = 0
        var hi = extents.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if extents[mid].end <= cursor { lo = mid + 1 } else { hi = mid }
        }
        var i = lo
        while i < extents.count && total < maxBytes {
            var r = extents[i]
            r.start = max(r.start, cursor)
            if r.length > maxBytes - total {
                r.end = r.start + (maxBytes - total)
            }
            out.append(r)
            total += r.length
            i += 1
        }
        return out
    }

    func forEachSlice(of run: FileRange, buffer: UnsafeMutableRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var at = run.start
        while at < run.end {
            let want = Int(min(UInt64(buffer.count), run.end - at))
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[..<want])
            let n = try fd.readAll(into: slice, atAbsoluteOffset: at, call: "pread \(name)")
            // Past the end of the image (its last, partial page): zeros, as
            // a memory file would read.
            _ = UnsafeMutableRawBufferPointer(rebasing: slice[n...]).initializeMemory(as: UInt8.self, repeating: 0)
            try body(UnsafeRawBufferPointer(rebasing: buffer[..<want]))
            at += UInt64(want)
        }
    }

    /// The source is never modified.
    func decommitZeroPages(_ runs: [FileRange]) throws -> UInt64 { 0 }

    /// An image has no record of how it was used.
    func accessOrder() -> [UInt64] { [] }

    func accountingSnapshot() -> MemoryStats {
        var stats = MemoryStats()
        stats[kind] = extents.reduce(0) { $0 + $1.length }
        return stats
    }
}
