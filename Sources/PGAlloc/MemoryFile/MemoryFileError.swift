/// A failure of the allocator that is not a failed host call.
public enum MemoryFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No range of a file of any size can hold the allocation (ENOMEM).
    case outOfMemory(length: UInt64)
    /// Internal mappings are never executable (EACCES).
    case executeAccessDenied(FileRange)
    /// Memory-pressure notification was asked for and the host offers none.
    case pressureNotificationUnavailable(String)
    /// A save found evictable ranges: evictions must run first.
    case evictionsPending(users: Int)

    public var description: String {
        switch self {
        case .outOfMemory(let length):
            "allocate(0x\(String(length, radix: 16))): ENOMEM: no range of the file can hold it"
        case .executeAccessDenied(let fr):
            "mapInternal(\(fr)): EACCES: internal mappings cannot be executable"
        case .pressureNotificationUnavailable(let why):
            "memory-pressure notification unavailable: \(why)"
        case .evictionsPending(let users):
            "save: evictable memory of \(users) user(s) is pending: call startEvictions() and waitForEvictions() first"
        }
    }
}
