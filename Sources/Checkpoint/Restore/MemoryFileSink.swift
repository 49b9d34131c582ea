import PGAlloc
import SystemPackage

/// Writes restored frames into a new MemoryFile.
///
/// Each worker decompresses a frame into its own buffer and writes the
/// runs into the memfd with pwrite, rather than copying them through the
/// file's mappings: the kernel then fills each new page in one go instead of
/// taking a page fault per page. Measured on the dense W-save restore:
/// 0.74 s of CPU with pwrite against 1.1-1.6 s through the mappings.
final class MemoryFileSink: RestoreSink, @unchecked Sendable {
    let options: MemoryFileOptions
    private(set) var file: MemoryFile?
    private(set) var target: RestoreTarget = NoTarget()

    init(options: MemoryFileOptions) {
        self.options = options
    }

    func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws {
        let f = try MemoryFile(options: options)
        file = f
        target = MemfdTarget(fd: FileDescriptor(rawValue: f.fileDescriptor))
        try f.installRestoredLayout(fileSize: header.fileSize, segments: segments)
    }

    func referencesRestored(_ ranges: [FileRange]) {
        file!.markRestoredCommitted(ranges)
    }

    func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws {
        let f = file!
        let fd = FileDescriptor(rawValue: f.fileDescriptor)
        var off = 0
        for run in frame.runs {
            let length = Int(run.length)
            try fd.writeAll(
                UnsafeRawBufferPointer(rebasing: data[off..<off + length]), atAbsoluteOffset: run.start,
                call: "pwrite into the restored memfd")
            off += length
        }
        f.markRestoredCommitted(frame.runs)
    }

    /// Destroys the half-restored file.
    func abandon() {
        file?.destroy()
        file = nil
    }
}
