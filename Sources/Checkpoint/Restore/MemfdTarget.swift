import PGAlloc
import SystemPackage

/// A restored MemoryFile's memfd, written with `pwrite` (and read back
/// with `pread`).
final class MemfdTarget: RestoreTarget, @unchecked Sendable {
    let fd: FileDescriptor

    init(fd: FileDescriptor) {
        self.fd = fd
    }

    func write(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws {
        try fd.writeAll(bytes, atAbsoluteOffset: address, call: "pwrite into the restored memfd")
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at address: UInt64) throws {
        let n = try fd.readAll(into: buffer, atAbsoluteOffset: address, call: "pread from the restored memfd")
        precondition(n == buffer.count, "MemfdTarget: \(n) of \(buffer.count) bytes at \(address)")
    }
}
