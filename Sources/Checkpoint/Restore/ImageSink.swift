#if canImport(Glibc)
import Glibc
#endif
import PGAlloc
import SystemPackage

/// Writes restored frames into a new image file, placed at its path
/// atomically once complete: the stored pages, holes elsewhere, cut at the
/// saved memory's own length (`dataSize`).
final class ImageSink: RestoreSink, @unchecked Sendable {
    private let path: String
    private var file: AtomicFile?
    private var dataSize: UInt64 = 0
    private(set) var target: RestoreTarget = NoTarget()

    init(path: String) {
        self.path = path
    }

    func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws {
        let f = try AtomicFile(path: path, mode: 0o600)
        file = f
        dataSize = header.dataSize
        try f.descriptor.truncate(to: header.dataSize, call: "ftruncate \(path)")
        target = ImageTarget(fd: f.descriptor, path: path, dataSize: header.dataSize)
    }

    func referencesRestored(_ ranges: [FileRange]) {}

    func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws {
        var off = 0
        for run in frame.runs {
            try target.write(UnsafeRawBufferPointer(rebasing: data[off..<off + Int(run.length)]), at: run.start)
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

/// An image file being restored: pages written with `pwrite`, cut at the
/// image's length (its last page may reach past it), and read back.
final class ImageTarget: RestoreTarget, @unchecked Sendable {
    let fd: FileDescriptor
    let path: String
    let dataSize: UInt64

    init(fd: FileDescriptor, path: String, dataSize: UInt64) {
        self.fd = fd
        self.path = path
        self.dataSize = dataSize
    }

    func write(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws {
        let end = min(address + UInt64(bytes.count), dataSize)
        guard end > address else { return }
        try fd.writeAll(UnsafeRawBufferPointer(rebasing: bytes[..<Int(end - address)]), atAbsoluteOffset: address, call: "pwrite \(path)")
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at address: UInt64) throws {
        let n = try fd.readAll(into: buffer, atAbsoluteOffset: address, call: "pread \(path)")
        // Past the image's end: zeros, as the page was saved.
        _ = UnsafeMutableRawBufferPointer(rebasing: buffer[n...]).initializeMemory(as: UInt8.self, repeating: 0)
    }
}

/// The target of a sink before `begin`: never written.
final class NoTarget: RestoreTarget {
    func write(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws {
        preconditionFailure("NoTarget: written before the restore began")
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at address: UInt64) throws {
        preconditionFailure("NoTarget: read before the restore began")
    }
}
