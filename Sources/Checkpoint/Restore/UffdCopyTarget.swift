#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import PGAlloc
import SystemPackage

/// A new MemoryFile's memfd written with UFFDIO_COPY through the file's
/// own mappings, for an eager restore.
///
/// A `pwrite` into a memfd holds the file's inode lock while it allocates
/// and fills each page, so the restore's workers write one at a time and
/// the others spin on the lock (16-19% of a dense restore's CPU samples
/// under `perf`). UFFDIO_COPY puts the pages into the page cache and the mapping without that lock:
/// writing 1.26 GB into a new memfd from two threads took 0.41-0.43 s
/// this way against 0.73-0.81 s with `pwrite`, which two threads did not
/// make faster than one (BENCHMARKS.md, "Restore writes").
///
/// The chunks are registered in missing mode only while the restore
/// writes; nothing touches the new file's memory meanwhile, and a stray
/// access would raise SIGBUS (`UFFD_FEATURE_SIGBUS`) rather than wait for
/// a fault handler there is none of. `finish()` (or deinit) unregisters:
/// pages never written then read as zero, as in any memfd.
final class UffdCopyTarget: RestoreTarget, @unchecked Sendable {
    /// Reads, and writes over pages already there.
    private let memfd: MemfdTarget
    private var uffd: Int32
    /// Each chunk's address, file offset and length, by offset.
    private let chunks: [(base: UInt64, offset: UInt64, length: UInt64)]

    /// Registers every chunk of `file`; nil when this process may not use
    /// userfaultfd, the kernel lacks missing faults on shmem or refuses the
    /// registration (the caller then writes with `pwrite`).
    ///
    /// - Throws: `HostError` if a chunk cannot be mapped.
    init?(file: MemoryFile) throws {
        let u = pg_uffd_open(O_CLOEXEC | pg_UFFD_USER_MODE_ONLY)
        guard u >= 0 else { return nil }
        let wanted = pg_UFFD_FEATURE_MISSING_SHMEM | pg_UFFD_FEATURE_SIGBUS
        var granted: UInt64 = 0
        guard pg_uffd_api(u, wanted, &granted, nil) == 0, granted & wanted == wanted else {
            close(u)
            return nil
        }
        var found: [(base: UInt64, offset: UInt64, length: UInt64)] = []
        var registered = true
        do {
            try file.forEachChunkMapping { base, offset, length in
                let address = UInt64(UInt(bitPattern: base))
                if registered && pg_uffd_register(u, address, UInt64(length), pg_UFFDIO_REGISTER_MODE_MISSING, nil) != 0 {
                    registered = false
                }
                found.append((address, offset, UInt64(length)))
            }
        } catch {
            // Closing the userfaultfd drops every registration.
            close(u)
            throw error
        }
        guard registered else {
            close(u)
            return nil
        }
        memfd = MemfdTarget(fd: FileDescriptor(rawValue: file.fileDescriptor))
        uffd = u
        chunks = found
    }

    deinit {
        finish()
    }

    func write(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws {
        precondition(
            address % 4096 == 0 && bytes.count % 4096 == 0,
            "UffdCopyTarget.write: \(bytes.count) bytes at \(hex(address)) are not whole pages")
        var done = 0
        while done < bytes.count {
            let at = address + UInt64(done)
            // Chunks are equal and in order from offset 0.
            let i = chunks.isEmpty ? 0 : Int(at / chunks[0].length)
            precondition(i < chunks.count, "UffdCopyTarget.write: address \(hex(at)) beyond the restored file")
            let c = chunks[i]
            let length = min(UInt64(bytes.count - done), c.offset + c.length - at)
            var copied: Int64 = 0
            if pg_uffd_copy(uffd, c.base + (at - c.offset), bytes.baseAddress! + done, length, &copied) == 0 {
                done += Int(length)
                continue
            }
            let code = errno
            if copied > 0 {
                done += Int(copied)
            } else if code == EEXIST {
                // A page written before (a restore writes each page once,
                // but a write must replace, as pwrite would).
                try memfd.write(UnsafeRawBufferPointer(rebasing: bytes[done..<done + 4096]), at: at)
                done += 4096
            } else if code != EAGAIN {
                throw HostError("ioctl(UFFDIO_COPY) into the restored memfd", errno: code)
            }
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at address: UInt64) throws {
        try memfd.read(into: buffer, at: address)
    }

    /// Ends the registrations; the memory behaves as any mapping of the
    /// memfd from now on. Call once every write has returned.
    func finish() {
        guard uffd >= 0 else { return }
        close(uffd)
        uffd = -1
    }
}
