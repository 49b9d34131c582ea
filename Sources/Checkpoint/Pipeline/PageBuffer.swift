#if canImport(Glibc)
import Glibc
#endif
import PGAlloc

/// A large buffer of its own anonymous mapping: its memory is committed as
/// it is touched and returned to the host when the buffer goes away,
/// whatever malloc's thresholds. The pipelines' frame, gather and scratch
/// buffers are these.
final class PageBuffer: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer

    init(capacity: Int) throws {
        let length = max(capacity, 1)
        let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if p == MAP_FAILED || p == nil {
            throw HostError.last("mmap \(length) bytes")
        }
        bytes = UnsafeMutableRawBufferPointer(start: p, count: length)
    }

    deinit {
        munmap(bytes.baseAddress, bytes.count)
    }
}
