#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim

/// Memory-mapping calls: `mmap(2)`, `munmap(2)`, `mincore(2)`,
/// `madvise(2)`.
enum HostMapping {
    /// Maps `length` bytes of `fd` at `offset`, shared.
    static func mapShared(fd: Int32, offset: UInt64, length: Int, protection: Int32) throws(HostError) -> UnsafeMutableRawPointer {
        let p = mmap(nil, length, protection, MAP_SHARED, fd, off_t(Int64(bitPattern: offset)))
        if p == MAP_FAILED || p == nil {
            throw HostError.last("mmap")
        }
        return p!
    }

    static func unmap(_ address: UnsafeMutableRawPointer, length: Int) throws(HostError) {
        if munmap(address, length) != 0 {
            throw HostError.last("munmap")
        }
    }

    /// One byte per page of `[address, address + length)`; bit 0 set if the
    /// page is resident. `vector` must hold `length / pageSize` bytes.
    static func residency(_ address: UnsafeMutableRawPointer, length: Int, into vector: UnsafeMutablePointer<UInt8>) throws(HostError) {
        _ = try retryingInterrupts("mincore") { pg_mincore(address, length, vector) }
    }

    static func advise(_ address: UnsafeMutableRawPointer, length: Int, _ advice: Int32, name: String) throws(HostError) {
        _ = try retryingInterrupts(name) { madvise(address, length, advice) }
    }
}

/// The host's page size, and the huge page size the allocator aligns large
/// allocations to.
public enum PageSize {
    public static let base: UInt64 = 4096
    public static let huge: UInt64 = 2 << 20

    /// Rounds `x` down to a page boundary.
    @inlinable public static func roundDown(_ x: UInt64) -> UInt64 { x & ~(base - 1) }
    /// Rounds `x` up to a page boundary, or nil on overflow.
    @inlinable public static func roundUp(_ x: UInt64) -> UInt64? {
        let (r, o) = x.addingReportingOverflow(base - 1)
        return o ? nil : r & ~(base - 1)
    }
}
