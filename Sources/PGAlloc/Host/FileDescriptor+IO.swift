#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import SystemPackage

// The I/O loops over a borrowed descriptor, written once: swift-system
// retries EINTR and reports a typed `Errno`; these add the loops that
// fill or drain a whole buffer and turn the errno into a `HostError` that
// names the call (and, through `call`, the file).

extension FileDescriptor {
    /// Reads at `offset` (`pread(2)`) until `buffer` is full or the file
    /// ends; returns the bytes read.
    public func readAll(
        into buffer: UnsafeMutableRawBufferPointer, atAbsoluteOffset offset: UInt64, call: @autoclosure () -> String = "pread"
    ) throws(HostError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try host(call()) {
                try read(
                    fromAbsoluteOffset: Int64(bitPattern: offset &+ UInt64(done)),
                    into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            }
            if n == 0 {
                break
            }
            done += n
        }
        return done
    }

    /// Reads at the current offset (`read(2)`) until `buffer` is full or
    /// the input ends; returns the bytes read. Works on pipes.
    public func readAll(into buffer: UnsafeMutableRawBufferPointer, call: @autoclosure () -> String = "read") throws(HostError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try host(call()) { try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...])) }
            if n == 0 {
                break
            }
            done += n
        }
        return done
    }

    /// One `read(2)` at the current offset: what the input has now, at
    /// most `buffer.count` bytes, 0 at its end.
    public func readSome(into buffer: UnsafeMutableRawBufferPointer, call: @autoclosure () -> String = "read") throws(HostError) -> Int {
        try host(call()) { try read(into: buffer) }
    }

    /// Writes all of `buffer` at `offset` (`pwrite(2)`).
    public func writeAll(
        _ buffer: UnsafeRawBufferPointer, atAbsoluteOffset offset: UInt64, call: @autoclosure () -> String = "pwrite"
    ) throws(HostError) {
        _ = try host(call()) { try writeAll(toAbsoluteOffset: Int64(bitPattern: offset), buffer) }
    }

    /// Writes all of `buffer` at the current offset (`write(2)`). Works on
    /// pipes.
    public func writeAll(_ buffer: UnsafeRawBufferPointer, call: @autoclosure () -> String) throws(HostError) {
        _ = try host(call()) { try writeAll(buffer) }
    }

    /// `ftruncate(2)`.
    public func truncate(to size: UInt64, call: @autoclosure () -> String = "ftruncate") throws(HostError) {
        _ = try retryingInterrupts(call()) { ftruncate(rawValue, off_t(Int64(bitPattern: size))) }
    }

    /// `fstat(2)`.
    public func status(call: @autoclosure () -> String = "fstat") throws(HostError) -> Glibc.stat {
        var st = Glibc.stat()
        _ = try retryingInterrupts(call()) { fstat(rawValue, &st) }
        return st
    }

    /// `fsync(2)`.
    public func sync(call: @autoclosure () -> String = "fsync") throws(HostError) {
        _ = try retryingInterrupts(call()) { fsync(rawValue) }
    }

    /// The start of the first data extent at or after `offset`
    /// (`lseek(SEEK_DATA)`), or nil if there is no data after it.
    public func nextData(from offset: UInt64, name: String = "") throws(HostError) -> UInt64? {
        try SparseFile.nextData(rawValue, from: offset, name: name)
    }

    /// The start of the first hole at or after `offset` (`lseek(SEEK_HOLE)`);
    /// the end of the file counts as a hole.
    public func nextHole(from offset: UInt64, name: String = "") throws(HostError) -> UInt64? {
        try SparseFile.nextHole(rawValue, from: offset, name: name)
    }
}

/// Runs a swift-system call, turning its `Errno` into a `HostError` that
/// names `call`.
@inline(__always)
func host<T>(_ call: @autoclosure () -> String, _ body: () throws -> T) throws(HostError) -> T {
    do {
        return try body()
    } catch let e as Errno {
        throw HostError(call(), errno: e.rawValue)
    } catch {
        preconditionFailure("swift-system threw \(error) from \(call())")
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
        do {
            return UInt64(try retryingInterrupts(call) { pg_lseek(fd, Int64(bitPattern: offset), whence) })
        } catch where error.errno == ENXIO {
            return nil
        }
    }
}
