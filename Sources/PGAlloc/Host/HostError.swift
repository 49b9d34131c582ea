#if canImport(Glibc)
import Glibc
#endif

/// A failure of the host: a system call that returned an error.
///
/// Its description names the call and the errno, in the form
/// `fallocate: Operation not supported (errno 95)`.
public struct HostError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The system call (or libc function) that failed.
    public var call: String
    /// The errno it reported.
    public var errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// The host's own text for the errno (`strerror`).
    public var message: String {
        String(cString: strerror(errno))
    }

    public var description: String {
        "\(call): \(message) (errno \(errno))"
    }

    /// Captures the calling thread's current errno for `call`.
    package static func last(_ call: String) -> HostError {
        HostError(call, errno: Glibc.errno)
    }
}

/// Runs a system call that reports failure by returning -1 and setting errno,
/// retrying while it is interrupted by a signal (EINTR). Calls that
/// swift-system wraps (read, write, pread, pwrite) retry EINTR there, and
/// the loops over them are in `FileDescriptor+IO.swift`; every other call
/// retries it here and nowhere else.
///
/// - Returns: the call's non-negative result.
/// - Throws: `HostError` naming `name` and the errno.
@inline(__always)
package func retryingInterrupts<T: BinaryInteger>(_ name: String, _ call: () -> T) throws(HostError) -> T {
    while true {
        let result = call()
        if result >= 0 {
            return result
        }
        let code = Glibc.errno
        if code == EINTR {
            continue
        }
        throw HostError(name, errno: code)
    }
}
