#if canImport(Glibc)
import Glibc
#endif
import Checkpoint
import PGAlloc

/// Key files on disk, in the text form of `CheckpointKeyFile` (docs/CLI.md,
/// "Key files"): read with their permissions checked, created without
/// ever replacing a file.
enum KeyFiles {
    /// No key file is larger.
    static let maxLength = 4096

    /// A key file that cannot be used as it is: refused with exit status 64.
    struct Problem: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// The text of the key file at `path`: a regular file of at most 4 KiB
    /// that, if it holds a secret, neither its group nor others may read
    /// or write (as ssh refuses such private keys).
    static func read(_ path: String) throws -> String {
        let file = try OwnedFileDescriptor.open(path, flags: O_RDONLY | O_NONBLOCK)
        let st = try file.status()
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw Problem("\(path) is not a regular file: a key file is")
        }
        guard st.st_size <= maxLength else {
            throw Problem("\(path) is \(st.st_size) bytes: not a pgsnap key file (at most \(maxLength) bytes)")
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        let n = try bytes.withUnsafeMutableBytes { try file.descriptor.readAll(into: $0, atAbsoluteOffset: 0, call: "pread \(path)") }
        let text = String(decoding: bytes.prefix(n), as: UTF8.self)
        let (kind, _) = try CheckpointKeyFile.decode(text, name: path)
        if kind.isSecret && st.st_mode & 0o077 != 0 {
            throw Problem(
                "\(path) holds a secret key (\(kind.rawValue)) and can be read or written by others (mode \(octal(st.st_mode & 0o777))): run chmod 600 \(path)")
        }
        return text
    }

    /// Creates `path`, which must not exist, holding `text`, with `mode`
    /// (whatever the umask), and makes it durable; a failure leaves no
    /// file.
    static func create(_ path: String, text: String, mode: mode_t) throws {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST {
                throw Problem("\(path) exists: keygen never replaces a file")
            }
            throw HostError("open \(path)", errno: code)
        }
        let file = OwnedFileDescriptor(owning: fd)
        do {
            guard fchmod(file.rawValue, mode) == 0 else { throw HostError("fchmod \(path)", errno: errno) }
            try Array(text.utf8).withUnsafeBytes { try file.descriptor.writeAll($0, call: "write \(path)") }
            try file.descriptor.sync(call: "fsync \(path)")
        } catch {
            unlink(path)
            throw error
        }
    }

    static func octal(_ mode: mode_t) -> String {
        "0" + String(mode, radix: 8)
    }
}
