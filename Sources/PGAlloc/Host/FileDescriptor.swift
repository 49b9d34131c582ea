#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim

/// An open file descriptor with a single owner, closed when the owner goes
/// away.
public struct FileDescriptor: ~Copyable, Sendable {
    /// The descriptor number. Valid for as long as this owner lives.
    public let rawValue: Int32

    /// Takes ownership of `rawValue`.
    public init(owning rawValue: Int32) {
        precondition(rawValue >= 0, "FileDescriptor(owning: \(rawValue)): not a descriptor")
        self.rawValue = rawValue
    }

    deinit {
        _ = Glibc.close(rawValue)
    }

    /// Gives up ownership without closing; the caller becomes responsible
    /// for the descriptor.
    public consuming func release() -> Int32 {
        let fd = rawValue
        discard self
        return fd
    }

    /// Creates an anonymous memory file (`memfd_create(2)`) that is closed on
    /// exec.
    public static func memfd(name: String, allowSealing: Bool = false) throws(HostError) -> FileDescriptor {
        var flags = pg_MFD_CLOEXEC
        if allowSealing {
            flags |= pg_MFD_ALLOW_SEALING
        }
        let fd = try retryingInterrupts("memfd_create") { pg_memfd_create(name, flags) }
        return FileDescriptor(owning: fd)
    }

    /// Opens `path` (`open(2)`, always with `O_CLOEXEC`).
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws(HostError) -> FileDescriptor {
        let fd = try retryingInterrupts("open \(path)") { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(owning: fd)
    }

    /// Duplicates the descriptor (`fcntl(F_DUPFD_CLOEXEC)`).
    public func duplicate() throws(HostError) -> FileDescriptor {
        let fd = try retryingInterrupts("fcntl(F_DUPFD_CLOEXEC)") { fcntl(rawValue, F_DUPFD_CLOEXEC, 0) }
        return FileDescriptor(owning: fd)
    }

    /// `ftruncate(2)`.
    public func truncate(to size: UInt64) throws(HostError) {
        _ = try retryingInterrupts("ftruncate") { ftruncate(rawValue, off_t(Int64(bitPattern: size))) }
    }

    /// `fstat(2)`.
    public func status() throws(HostError) -> stat {
        var st = stat()
        _ = try retryingInterrupts("fstat") { fstat(rawValue, &st) }
        return st
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
        _ = try retryingInterrupts("fsync") { fsync(rawValue) }
    }

    /// `pread(2)` until `buffer` is full or end of file; returns the bytes
    /// read.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(HostError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try retryingInterrupts("pread") {
                pread(rawValue, buffer.baseAddress! + done, buffer.count - done, off_t(Int64(bitPattern: offset + UInt64(done))))
            }
            if n == 0 {
                break
            }
            done += n
        }
        return done
    }

    /// `pwrite(2)` of all of `buffer` at `offset`.
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(HostError) {
        var done = 0
        while done < buffer.count {
            let n = try retryingInterrupts("pwrite") {
                pwrite(rawValue, buffer.baseAddress! + done, buffer.count - done, off_t(Int64(bitPattern: offset + UInt64(done))))
            }
            done += n
        }
    }

    /// `read(2)` at the current offset until `buffer` is full or end of
    /// input; returns the bytes read. Works on pipes.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(HostError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try retryingInterrupts("read") {
                Glibc.read(rawValue, buffer.baseAddress! + done, buffer.count - done)
            }
            if n == 0 {
                break
            }
            done += n
        }
        return done
    }

    /// `write(2)` of all of `buffer` at the current offset. Works on pipes.
    public func write(_ buffer: UnsafeRawBufferPointer) throws(HostError) {
        var done = 0
        while done < buffer.count {
            let n = try retryingInterrupts("write") {
                Glibc.write(rawValue, buffer.baseAddress! + done, buffer.count - done)
            }
            done += n
        }
    }

    /// The start of the first data extent at or after `offset`
    /// (`lseek(SEEK_DATA)`), or nil if there is no data after it.
    public func nextData(from offset: UInt64) throws(HostError) -> UInt64? {
        try SparseFile.nextData(rawValue, from: offset)
    }

    /// The start of the first hole at or after `offset` (`lseek(SEEK_HOLE)`);
    /// the end of the file counts as a hole.
    public func nextHole(from offset: UInt64) throws(HostError) -> UInt64? {
        try SparseFile.nextHole(rawValue, from: offset)
    }
}

/// Finding the data and the holes of a sparse file. Unlike mincore, this
/// sees pages of a memfd that the host swapped out.
package enum SparseFile {
    /// The start of the first data extent of `fd` at or after `offset`, or
    /// nil if none.
    package static func nextData(_ fd: Int32, from offset: UInt64, name: String = "") throws(HostError) -> UInt64? {
        try seek(fd, offset, whence: pg_SEEK_DATA, call: "lseek(SEEK_DATA)" + (name.isEmpty ? "" : " \(name)"))
    }

    /// The start of the first hole of `fd` at or after `offset` (the end of
    /// the file counts as one), or nil if `offset` is past the end.
    package static func nextHole(_ fd: Int32, from offset: UInt64, name: String = "") throws(HostError) -> UInt64? {
        try seek(fd, offset, whence: pg_SEEK_HOLE, call: "lseek(SEEK_HOLE)" + (name.isEmpty ? "" : " \(name)"))
    }

    private static func seek(_ fd: Int32, _ offset: UInt64, whence: Int32, call: String) throws(HostError) -> UInt64? {
        while true {
            let r = pg_lseek(fd, Int64(bitPattern: offset), whence)
            if r >= 0 {
                return UInt64(r)
            }
            switch Glibc.errno {
            case EINTR:
                continue
            case ENXIO:
                return nil
            case let code:
                throw HostError(call, errno: code)
            }
        }
    }
}
