#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import PGAlloc

/// Where a range of checkpoint addresses is mapped in memory registered on
/// a userfaultfd.
typealias UffdMapping = (base: UInt64, offset: UInt64, length: UInt64)

/// How `uffdCopy` ended.
enum UffdCopyEnd {
    case copied
    /// The memory's owner went away (ENOENT, ESRCH): nothing more can be
    /// copied.
    case ownerGone
}

/// Copies `bytes` to checkpoint address `offset` with UFFDIO_COPY, split at
/// the ends of the mappings `mapping` gives for an address (the next may
/// lie elsewhere); the kernel wakes the threads waiting on the pages. Each
/// page already there (EEXIST) goes to `existing` with its address, which
/// decides what becomes of it.
///
/// - Throws: `HostError` naming `call` for any other failure, or for an
///   address `mapping` has no mapping for.
func uffdCopy(
    _ uffd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, call: String,
    mapping: (UInt64) -> UffdMapping?, existing: (UnsafeRawBufferPointer, UInt64) throws -> Void
) throws -> UffdCopyEnd {
    var done = 0
    while done < bytes.count {
        let at = offset + UInt64(done)
        guard let m = mapping(at) else {
            throw HostError("\(call) at \(hex(at)): outside the registered memory", errno: EFAULT)
        }
        let length = min(UInt64(bytes.count - done), m.offset + m.length - at)
        var copied: Int64 = 0
        if pg_uffd_copy(uffd, m.base + (at - m.offset), bytes.baseAddress! + done, length, &copied) == 0 {
            done += Int(length)
            continue
        }
        let code = errno
        if copied > 0 {
            done += Int(copied)
        } else if code == EEXIST || copied == -Int64(EEXIST) {
            try existing(UnsafeRawBufferPointer(rebasing: bytes[done..<done + 4096]), at)
            done += 4096
        } else if code == EAGAIN {
            continue
        } else if code == ENOENT || code == ESRCH {
            return .ownerGone
        } else {
            throw HostError(call, errno: code)
        }
    }
    return .copied
}
