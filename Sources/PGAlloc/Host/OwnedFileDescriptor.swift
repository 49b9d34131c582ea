#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import SystemPackage

/// An open file descriptor with a single owner, closed when the owner goes
/// away. It lends a borrowed `SystemPackage.FileDescriptor` (`descriptor`)
/// for I/O: the full-read and full-write loops live there (see
/// `FileDescriptor+IO.swift`), once.
public struct OwnedFileDescriptor: ~Copyable, Sendable {
    /// The descriptor number. Valid for as long as this owner lives.
    public let rawValue: Int32

    /// Takes ownership of `rawValue`.
    public init(owning rawValue: Int32) {
        precondition(rawValue >= 0, "OwnedFileDescriptor(owning: \(rawValue)): not a descriptor")
        self.rawValue = rawValue
    }

    deinit {
        _ = Glibc.close(rawValue)
    }

    /// The descriptor, borrowed: valid for as long as this owner lives.
    public var descriptor: FileDescriptor { FileDescriptor(rawValue: rawValue) }

    /// Gives up ownership without closing; the caller becomes responsible
    /// for the descriptor.
    public consuming func release() -> Int32 {
        let fd = rawValue
        discard self
        return fd
    }

    /// Creates an anonymous memory file (`memfd_create(2)`) that is closed on
    /// exec.
    public static func memfd(name: String, allowSealing: Bool = false) throws(HostError) -> OwnedFileDescriptor {
        var flags = pg_MFD_CLOEXEC
        if allowSealing {
            flags |= pg_MFD_ALLOW_SEALING
        }
        let fd = try retryingInterrupts("memfd_create") { pg_memfd_create(name, flags) }
        return OwnedFileDescriptor(owning: fd)
    }

    /// Opens `path` (`open(2)`, always with `O_CLOEXEC`). `O_NONBLOCK` is
    /// worth adding where `path` may be a FIFO, whose open would otherwise
    /// wait for the other end.
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws(HostError) -> OwnedFileDescriptor {
        let fd = try retryingInterrupts("open \(path)") { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return OwnedFileDescriptor(owning: fd)
    }

    /// Duplicates the descriptor (`fcntl(F_DUPFD_CLOEXEC)`).
    public func duplicate() throws(HostError) -> OwnedFileDescriptor {
        let fd = try retryingInterrupts("fcntl(F_DUPFD_CLOEXEC)") { fcntl(rawValue, F_DUPFD_CLOEXEC, 0) }
        return OwnedFileDescriptor(owning: fd)
    }

    /// `ftruncate(2)`.
    public func truncate(to size: UInt64) throws(HostError) {
        try descriptor.truncate(to: size)
    }

    /// `fstat(2)`.
    public func status() throws(HostError) -> Glibc.stat {
        try descriptor.status()
    }

    /// The bytes the host spends on the file, counting swapped pages:
    /// `st_blocks * 512`.
    public func allocatedBytes() throws(HostError) -> UInt64 {
        UInt64(try status().st_blocks) * 512
    }

    /// `fallocate(2)` with `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`: the
    /// range reads as zeroes afterwards and no longer holds memory.
    public func punchHole(offset: UInt64, length: UInt64) throws(HostError) {
        _ = try retryingInterrupts("fallocate") {
            pg_fallocate(
                rawValue, pg_FALLOC_FL_PUNCH_HOLE | pg_FALLOC_FL_KEEP_SIZE,
                Int64(bitPattern: offset), Int64(bitPattern: length))
        }
    }

    /// `fsync(2)`.
    public func sync() throws(HostError) {
        try descriptor.sync()
    }
}
