#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import PGAlloc
import SystemPackage

/// Where the bytes of a checkpoint go, in order, once `CheckpointOutput`
/// has gathered them: a descriptor or atomic file (`DescriptorSink`), or a
/// multipart upload (`MultipartUploadSink`).
protocol CheckpointSink: AnyObject {
    /// Takes the next bytes (the output gathers small writes first).
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Starts making what was written durable, in the background, where
    /// that means something (a file's write-back).
    func startDurability() throws
    /// Everything is written: makes it durable and puts it in place.
    func commit() throws
    /// Gives up: nothing appears where the checkpoint was to go.
    func abandon()
}

/// Where a checkpoint is written, in order, never seeking back: a
/// descriptor (a pipe, stdout, an open file), a path written atomically,
/// or an object uploaded in parts.
///
/// Small writes are gathered in a buffer; large ones go straight through.
/// A save that fails calls `abandon()`: a path keeps its old contents, an
/// object its old contents (or stays absent), and the upload is aborted.
final class CheckpointOutput {
    private let sink: CheckpointSink
    private var buffer: [UInt8] = []
    /// Bytes written so far, buffered ones included.
    private(set) var bytesWritten: UInt64 = 0
    /// Hashes what is written, between `beginPart` and `endPart`: a part
    /// of the checkpoint's manifest.
    private var part: PartHasher?

    /// Opens `location` for writing.
    static func open(_ location: CheckpointLocation) throws -> CheckpointOutput {
        switch location {
        case .path(let path):
            return CheckpointOutput(try DescriptorSink(atomic: try AtomicFile(path: path), name: path))
        case .descriptor(let fd, let name):
            return CheckpointOutput(DescriptorSink(descriptor: FileDescriptor(rawValue: fd), name: name))
        case .object(let object):
            return CheckpointOutput(try MultipartUploadSink(object))
        }
    }

    private init(_ sink: CheckpointSink) {
        self.sink = sink
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
            try sink.write(bytes)
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
            try buffer.withUnsafeBytes { try sink.write($0) }
            buffer.removeAll(keepingCapacity: true)
        }
    }

    /// Hands everything written so far to the sink and starts making it
    /// durable; the save does this before punching zero pages so that the
    /// disk works meanwhile.
    func startDurability() throws {
        try flush()
        try sink.startDurability()
    }

    /// Writes what is buffered and puts the checkpoint in place: a path
    /// durable and renamed, an object's upload completed.
    func finish() throws {
        try flush()
        try sink.commit()
    }

    /// Gives up: a path keeps its old contents, an upload is aborted.
    func abandon() {
        sink.abandon()
    }
}

/// A descriptor, or a path written atomically.
final class DescriptorSink: CheckpointSink {
    private let fd: FileDescriptor
    private let atomic: AtomicFile?
    private let name: String
    /// Bytes handed to the file.
    private var bytesFlushed: UInt64 = 0
    /// Bytes written when the last background sync was asked for.
    private var bytesSyncRequested: UInt64 = 0
    /// Syncs a path's file while the save goes on; nil for a descriptor.
    private var sync: BackgroundSync?
    /// A background sync is asked for every so many bytes.
    static let syncStep: UInt64 = 32 << 20

    init(descriptor fd: FileDescriptor, name: String) {
        self.fd = fd
        self.atomic = nil
        self.name = name
    }

    init(atomic file: AtomicFile, name: String) throws {
        fd = file.descriptor
        atomic = file
        self.name = name
        sync = try BackgroundSync(descriptor: fd, name: name)
    }

    deinit {
        try? sync?.finish()
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try fd.writeAll(bytes, call: "write \(name)")
        bytesFlushed += UInt64(bytes.count)
        if let sync, bytesFlushed - bytesSyncRequested >= DescriptorSink.syncStep {
            sync.request()
            bytesSyncRequested = bytesFlushed
        }
    }

    func startDurability() throws {
        if let sync, bytesFlushed > bytesSyncRequested {
            sync.request()
            bytesSyncRequested = bytesFlushed
        }
    }

    /// For a path, makes the file durable and puts it in place: the
    /// background syncs end first (their failure is this commit's), then
    /// the final fsync has only the last bytes to write.
    func commit() throws {
        try sync?.finish()
        try atomic?.commit()
    }

    func abandon() {
        try? sync?.finish()
        atomic?.abandon()
    }
}
