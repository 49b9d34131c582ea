#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import PGAlloc
import SystemPackage

/// Where a checkpoint is written, in order, never seeking back: a
/// descriptor (a pipe, stdout, an open file) or a path written atomically.
///
/// Small writes are gathered in a buffer; large ones go straight through.
/// A save that fails calls `abandon()`: a path keeps its old contents.
final class CheckpointOutput {
    private let fd: FileDescriptor
    private let atomic: AtomicFile?
    private let name: String
    private var buffer: [UInt8] = []
    /// Bytes written so far, buffered ones included.
    private(set) var bytesWritten: UInt64 = 0
    /// Bytes handed to the file (not buffered).
    private var bytesFlushed: UInt64 = 0
    /// Bytes whose write-back has been started (paths only).
    private var bytesWrittenBack: UInt64 = 0
    /// Write-back is started every so many bytes.
    private static let writebackStep: UInt64 = 32 << 20
    /// Hashes what is written, between `beginPart` and `endPart`: a part
    /// of the checkpoint's manifest.
    private var part: PartHasher?

    /// Opens `location` for writing.
    static func open(_ location: CheckpointLocation) throws -> CheckpointOutput {
        switch location {
        case .path(let path):
            return try CheckpointOutput(atomic: AtomicFile(path: path), name: path)
        case .descriptor(let fd, let name):
            return CheckpointOutput(descriptor: FileDescriptor(rawValue: fd), name: name)
        }
    }

    private init(descriptor fd: FileDescriptor, name: String) {
        self.fd = fd
        self.atomic = nil
        self.name = name
        buffer.reserveCapacity(1 << 20)
    }

    private init(atomic file: AtomicFile, name: String) {
        fd = file.descriptor
        atomic = file
        self.name = name
        buffer.reserveCapacity(1 << 20)
    }

    /// Starts hashing what is written, as a part of the manifest.
    func beginPart() {
        precondition(part == nil, "CheckpointOutput.beginPart: a part is being hashed")
        part = PartHasher()
    }

    /// The part hashed since `beginPart`.
    func endPart() -> ManifestPart {
        defer { part = nil }
        return part!.finish()
    }

    /// Appends bytes; small ones are buffered, large ones written through.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        bytesWritten += UInt64(bytes.count)
        part?.add(bytes)
        if buffer.count + bytes.count <= buffer.capacity {
            buffer.append(contentsOf: bytes)
            return
        }
        try flush()
        if bytes.count >= buffer.capacity / 2 {
            try writeThrough(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    func zeros(_ count: Int) throws {
        if count > 0 {
            try write([UInt8](repeating: 0, count: count))
        }
    }

    private func flush() throws {
        if !buffer.isEmpty {
            try buffer.withUnsafeBytes { try writeThrough($0) }
            buffer.removeAll(keepingCapacity: true)
        }
    }

    private func writeThrough(_ bytes: UnsafeRawBufferPointer) throws {
        try fd.writeAll(bytes, call: "write \(name)")
        bytesFlushed += UInt64(bytes.count)
        if atomic != nil && bytesFlushed - bytesWrittenBack >= CheckpointOutput.writebackStep {
            startWriteback()
        }
    }

    /// Starts the disk writes of what the file has so far, so that the
    /// fsync of `finish()` does not wait for all of it at the end. Only an
    /// optimization: a failure here shows up at that fsync.
    private func startWriteback() {
        _ = pg_start_writeback(fd.rawValue, Int64(bytesWrittenBack), Int64(bytesFlushed - bytesWrittenBack))
        bytesWrittenBack = bytesFlushed
    }

    /// Hands everything written so far to the file and, for a path,
    /// starts its write-back; the save does this before punching zero
    /// pages so that the disk works meanwhile.
    func startDurability() throws {
        try flush()
        if atomic != nil && bytesFlushed > bytesWrittenBack {
            startWriteback()
        }
    }

    /// Writes what is buffered and, for a path, makes the file durable and
    /// puts it in place.
    func finish() throws {
        try flush()
        try atomic?.commit()
    }

    /// Gives up: a path keeps its old contents.
    func abandon() {
        atomic?.abandon()
    }
}
