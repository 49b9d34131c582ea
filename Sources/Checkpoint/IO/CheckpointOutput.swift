#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import PGAlloc

/// Where a checkpoint is written: a descriptor written in order (a pipe,
/// stdout, any file), or a path written atomically.
///
/// Writing to a path goes to an unnamed file in the path's directory
/// (`O_TMPFILE`; a named temporary where the file system lacks it), which is
/// fsync'd, given a temporary name, renamed over the path, and the
/// directory fsync'd. A save that fails or is killed leaves the path as it
/// was: with `O_TMPFILE` nothing at all is left behind.
final class CheckpointOutput {
    private enum Target {
        case descriptor
        case unnamed(path: String, directory: String)
        case named(path: String, temporary: String, directory: String)
    }

    private var owned: FileDescriptor?
    private let fd: Int32
    private let target: Target
    private let name: String
    private var buffer: [UInt8] = []
    private var finished = false
    /// Bytes written so far, buffered ones included.
    private(set) var bytesWritten: UInt64 = 0

    /// Writes to `fd` (which stays the caller's) in order, from its
    /// current position.
    init(descriptor fd: Int32, name: String) {
        self.fd = fd
        self.owned = nil
        self.target = .descriptor
        self.name = name
        buffer.reserveCapacity(1 << 20)
    }

    /// Writes to a new file that replaces `path` when `finish()` succeeds.
    init(atomicPath path: String) throws {
        let directory = CheckpointOutput.directory(of: path)
        name = path
        let unnamed = Glibc.open(directory, pg_O_TMPFILE | O_WRONLY | O_CLOEXEC, 0o600)
        if unnamed >= 0 {
            fd = unnamed
            owned = FileDescriptor(owning: unnamed)
            target = .unnamed(path: path, directory: directory)
        } else {
            let code = errno
            guard code == EOPNOTSUPP || code == EISDIR || code == EINVAL else {
                throw HostError("open O_TMPFILE in \(directory)", errno: code)
            }
            let temporary = CheckpointOutput.temporaryName(for: path)
            let file = try FileDescriptor.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
            fd = file.rawValue
            owned = consume file
            target = .named(path: path, temporary: temporary, directory: directory)
        }
        buffer.reserveCapacity(1 << 20)
    }

    deinit {
        if !finished {
            abandon()
        }
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let dir = String(path[..<slash])
        return dir.isEmpty ? "/" : dir
    }

    private static func temporaryName(for path: String) -> String {
        let dir = directory(of: path)
        let base = path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
        return "\(dir)/.\(base).pgsnap-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Appends bytes; small ones are buffered, large ones written through.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        bytesWritten += UInt64(bytes.count)
        if buffer.count + bytes.count <= buffer.capacity {
            buffer.append(contentsOf: bytes)
            return
        }
        try flush()
        if bytes.count >= buffer.capacity / 2 {
            try writeAll(bytes)
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
            try buffer.withUnsafeBytes { try writeAll($0) }
            buffer.removeAll(keepingCapacity: true)
        }
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = try retryingInterrupts("write \(name)") {
                Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            }
            done += n
        }
    }

    /// Writes what is buffered and, for a path, makes the file durable and
    /// puts it in place.
    func finish() throws {
        try flush()
        switch target {
        case .descriptor:
            break
        case let .unnamed(path, directory):
            _ = try retryingInterrupts("fsync \(path)") { fsync(fd) }
            // An unnamed file cannot be renamed over a path: link it under a
            // temporary name, then rename that.
            let temporary = CheckpointOutput.temporaryName(for: path)
            _ = try retryingInterrupts("linkat \(temporary)") {
                linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, temporary, pg_AT_SYMLINK_FOLLOW)
            }
            if rename(temporary, path) != 0 {
                let e = HostError.last("rename \(temporary) to \(path)")
                unlink(temporary)
                throw e
            }
            try CheckpointOutput.syncDirectory(directory)
        case let .named(path, temporary, directory):
            _ = try retryingInterrupts("fsync \(temporary)") { fsync(fd) }
            if rename(temporary, path) != 0 {
                throw HostError.last("rename \(temporary) to \(path)")
            }
            try CheckpointOutput.syncDirectory(directory)
        }
        finished = true
        owned = nil
    }

    /// Gives up: a path keeps its old contents, and any temporary file is
    /// removed.
    func abandon() {
        finished = true
        if case let .named(_, temporary, _) = target {
            unlink(temporary)
        }
        owned = nil
    }

    private static func syncDirectory(_ directory: String) throws {
        let dir = try FileDescriptor.open(directory, flags: O_RDONLY | O_DIRECTORY)
        _ = try retryingInterrupts("fsync \(directory)") { fsync(dir.rawValue) }
    }
}
