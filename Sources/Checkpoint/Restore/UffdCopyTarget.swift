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
/// under `perf`). UFFDIO_COPY puts the pages into the page cache and the
/// mapping without that lock: writing 1.26 GB into a new memfd from two
/// threads took 0.41-0.43 s this way against 0.73-0.81 s with `pwrite`,
/// which two threads did not make faster than one (BENCHMARKS.md,
/// "Restore writes").
///
/// Each chunk is registered in missing mode when the first write reaches it
/// (a checkpoint may claim a file of exabytes and store one page: only the
/// chunks written are mapped), until the restore ends; nothing touches the
/// new file's memory meanwhile, and a stray access would raise SIGBUS
/// (`UFFD_FEATURE_SIGBUS`) rather than wait for a fault handler there is
/// none of. `finish()` (or deinit) ends the registrations: pages never
/// written then read as zero, as in any memfd.
final class UffdCopyTarget: RestoreTarget, @unchecked Sendable {
    private let file: MemoryFile
    /// Reads, writes over pages already there, and every write once the
    /// kernel has refused a registration.
    private let memfd: MemfdTarget
    private let uffd: Int32

    private struct State {
        /// The chunks registered, by first file offset.
        var chunks: [UInt64: UffdMapping] = [:]
        /// The file's chunk size, once a chunk is registered.
        var chunkLength: UInt64 = 0
        /// The kernel refused to register a chunk: the writes use pwrite.
        var refused = false
        var finished = false
    }
    private let state = StateLock(State())

    /// Nil when this process may not use userfaultfd or the kernel lacks
    /// missing faults on shmem (the caller then writes with `pwrite`).
    init?(file: MemoryFile) {
        let u = pg_uffd_open(O_CLOEXEC | pg_UFFD_USER_MODE_ONLY)
        guard u >= 0 else { return nil }
        let wanted = pg_UFFD_FEATURE_MISSING_SHMEM | pg_UFFD_FEATURE_SIGBUS
        var granted: UInt64 = 0
        guard pg_uffd_api(u, wanted, &granted, nil) == 0, granted & wanted == wanted else {
            close(u)
            return nil
        }
        self.file = file
        memfd = MemfdTarget(fd: FileDescriptor(rawValue: file.fileDescriptor))
        uffd = u
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
            guard let chunk = try registeredChunk(holding: at) else {
                try memfd.write(UnsafeRawBufferPointer(rebasing: bytes[done...]), at: at)
                return
            }
            let n = Int(min(UInt64(bytes.count - done), chunk.offset + chunk.length - at))
            let end = try uffdCopy(
                uffd, UnsafeRawBufferPointer(rebasing: bytes[done..<done + n]), at: at,
                call: "ioctl(UFFDIO_COPY) into the restored memfd", mapping: { _ in chunk }
            ) {
                // A page written before (a restore writes each page once,
                // but a write must replace, as pwrite would).
                page, at in try memfd.write(page, at: at)
            }
            if end == .ownerGone {
                // The file's own mapping cannot go while the file lives.
                throw HostError("ioctl(UFFDIO_COPY) into the restored memfd", errno: ENOENT)
            }
            done += n
        }
    }

    /// The chunk holding `offset`, mapped and registered first if it is
    /// not yet; nil once the kernel has refused a registration.
    private func registeredChunk(holding offset: UInt64) throws -> UffdMapping? {
        // A chunk already registered, or a refusal, is known without
        // asking the file (whose state lock the other writers and the
        // usage updates take).
        let known = state.withLock { s -> UffdMapping?? in
            precondition(!s.finished, "UffdCopyTarget.write: called after finish()")
            if s.refused {
                return .some(nil)
            }
            guard s.chunkLength > 0, let chunk = s.chunks[offset & ~(s.chunkLength - 1)] else { return nil }
            return chunk
        }
        if let known {
            return known
        }
        let (base, first, length) = try file.chunkMapping(holding: offset)
        return state.withLock { s -> UffdMapping? in
            precondition(!s.finished, "UffdCopyTarget.write: called after finish()")
            if let chunk = s.chunks[first] {
                return chunk
            }
            if s.refused {
                return nil
            }
            let chunk: UffdMapping = (UInt64(UInt(bitPattern: base)), first, UInt64(length))
            guard pg_uffd_register(uffd, chunk.base, chunk.length, pg_UFFDIO_REGISTER_MODE_MISSING, nil) == 0 else {
                s.refused = true
                return nil
            }
            s.chunks[first] = chunk
            s.chunkLength = UInt64(length)
            return chunk
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at address: UInt64) throws {
        try memfd.read(into: buffer, at: address)
    }

    /// Ends the registrations (closing the userfaultfd drops them all); the
    /// memory behaves as any mapping of the memfd from now on. Call once
    /// every write has returned.
    func finish() {
        let first = state.withLock { s in
            defer { s.finished = true }
            return !s.finished
        }
        if first {
            close(uffd)
        }
    }
}
