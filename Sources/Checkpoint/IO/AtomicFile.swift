#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import PGAlloc
import SystemPackage

/// A new file that replaces `path` only when committed: until then it is an
/// unnamed file in the same directory (`O_TMPFILE`; a hidden temporary name
/// where the file system lacks it). Commit fsyncs it, links it under a
/// temporary name, renames that over the path and fsyncs the directory. A
/// failed or killed writer leaves the path as it was.
final class AtomicFile {
    let path: String
    /// The file, valid until commit or abandon.
    let descriptor: FileDescriptor
    private var owned: OwnedFileDescriptor?
    private let directory: String
    /// The temporary name, when the file has one before commit.
    private let temporary: String?
    private var done = false

    init(path: String, mode: mode_t = 0o600) throws {
        self.path = path
        directory = AtomicFile.directory(of: path)
        let unnamed = Glibc.open(directory, pg_O_TMPFILE | O_RDWR | O_CLOEXEC, mode)
        if unnamed >= 0 {
            descriptor = FileDescriptor(rawValue: unnamed)
            owned = OwnedFileDescriptor(owning: unnamed)
            temporary = nil
        } else {
            let code = errno
            guard code == EOPNOTSUPP || code == EISDIR || code == EINVAL else {
                throw HostError("open(O_TMPFILE) in \(directory)", errno: code)
            }
            let name = AtomicFile.temporaryName(for: path)
            let file = try OwnedFileDescriptor.open(name, flags: O_RDWR | O_CREAT | O_EXCL, mode: mode)
            descriptor = file.descriptor
            owned = consume file
            temporary = name
        }
    }

    deinit {
        if !done {
            abandon()
        }
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let dir = String(path[..<slash])
        return dir.isEmpty ? "/" : dir
    }

    private static func temporaryName(for path: String) -> String {
        let base = path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
        return "\(directory(of: path))/.\(base).pgsnap-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Makes the file durable and puts it at `path`.
    func commit() throws {
        try descriptor.sync(call: "fsync \(path)")
        let name: String
        if let temporary {
            name = temporary
        } else {
            // An unnamed file cannot be renamed over a path: link it under a
            // temporary name first.
            name = AtomicFile.temporaryName(for: path)
            _ = try retryingInterrupts("linkat \(name)") {
                linkat(AT_FDCWD, "/proc/self/fd/\(descriptor.rawValue)", AT_FDCWD, name, pg_AT_SYMLINK_FOLLOW)
            }
        }
        if rename(name, path) != 0 {
            let e = HostError.last("rename \(name) to \(path)")
            unlink(name)
            throw e
        }
        done = true
        owned = nil
        let dir = try OwnedFileDescriptor.open(directory, flags: O_RDONLY | O_DIRECTORY)
        try dir.descriptor.sync(call: "fsync \(directory)")
    }

    /// Drops the file; `path` keeps what it had.
    func abandon() {
        done = true
        if let temporary {
            unlink(temporary)
        }
        owned = nil
    }
}
