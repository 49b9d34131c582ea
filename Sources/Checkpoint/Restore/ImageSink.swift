#if canImport(Glibc)
import Glibc
#endif
import PGAlloc
import SystemPackage

/// Writes restored frames into a new image file, placed at its path
/// atomically once complete: the stored pages, holes elsewhere, cut at the
/// saved memory's own length (`dataSize`).
final class ImageSink: FrameSink, @unchecked Sendable {
    private let path: String
    private var file: AtomicFile?
    private var dataSize: UInt64 = 0

    init(path: String) {
        self.path = path
    }

    func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws {
        let f = try AtomicFile(path: path, mode: 0o600)
        file = f
        dataSize = header.dataSize
        try f.descriptor.truncate(to: header.dataSize, call: "ftruncate \(path)")
    }

    func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws {
        let fd = file!.descriptor
        var off = 0
        for run in frame.runs {
            // The last page of an image may reach past its end.
            let end = min(run.end, dataSize)
            let length = end > run.start ? Int(end - run.start) : 0
            try fd.writeAll(UnsafeRawBufferPointer(rebasing: data[off..<off + length]), atAbsoluteOffset: run.start, call: "pwrite \(path)")
            off += Int(run.length)
        }
    }

    func finish() throws {
        try file?.commit()
    }

    func abandon() {
        file?.abandon()
    }
}
