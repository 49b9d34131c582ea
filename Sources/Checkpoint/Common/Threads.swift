#if canImport(Glibc)
import Glibc
#endif

/// The number of online CPUs.
public func defaultThreadCount() -> Int {
    max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}

/// The thread counts save, restore and verify accept.
public let threadCountRange = 1...1024

/// Throws unless `threads` is in `threadCountRange`.
func checkThreadCount(_ threads: Int) throws(CheckpointUsageError) {
    guard threadCountRange.contains(threads) else {
        throw CheckpointUsageError("thread count \(threads) must be from 1 to 1024")
    }
}
