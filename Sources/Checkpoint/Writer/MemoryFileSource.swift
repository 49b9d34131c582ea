import PGAlloc

/// A MemoryFile of this process, read through its mappings.
final class MemoryFileSource: SaveSource, @unchecked Sendable {
    let file: MemoryFile
    /// The saved memory's own length, when it is not the file's size (a
    /// flattened raw image's).
    let dataSize: UInt64?

    init(_ file: MemoryFile, dataSize: UInt64? = nil) {
        self.file = file
        self.dataSize = dataSize
    }

    func prepare() throws -> SaveLayout {
        let (fileSize, segments, scan) = try file.prepareForSave()
        precondition(dataSize.map { $0 <= fileSize } ?? true, "MemoryFileSource: data size \(dataSize!) beyond the file's \(fileSize)")
        return SaveLayout(
            fileSize: fileSize, dataSize: dataSize ?? fileSize, segments: segments, scan: scan.rawValue,
            committedBytes: file.knownCommittedBytes)
    }

    func committedRuns(from cursor: UInt64, maxBytes: UInt64) -> [FileRange] {
        file.committedRuns(from: cursor, maxBytes: maxBytes)
    }

    func forEachSlice(of run: FileRange, buffer: UnsafeMutableRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try file.forEachMappedSlice(run) { try body(UnsafeRawBufferPointer($0)) }
    }

    /// Committed pages with nothing in them go back to the host, as gVisor's
    /// save does.
    func decommitZeroPages(_ runs: [FileRange]) throws -> UInt64 {
        try file.decommit(runs)
        return runs.reduce(0) { $0 + $1.length }
    }

    func accountingSnapshot() -> MemoryStats {
        file.accounting.snapshot()
    }

    func accessOrder() -> [UInt64] {
        file.recordedAccessOrder
    }
}
