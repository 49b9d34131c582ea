/// How far a MemoryFile may put off evicting evictable allocations; the
/// seed's `DelayedEvictionType`.
public enum DelayedEviction: Sendable, Hashable {
    /// Unspecified; becomes `.enabled`.
    case `default`
    /// Evict as soon as a range is marked evictable.
    case disabled
    /// Delay evictions until they look necessary: until the host reports
    /// memory pressure if `useHostMemcgPressure` is set, otherwise until the
    /// reclaimer runs out of work.
    case enabled
    /// Evict only when `startEvictions()` is called. Dangerous outside
    /// tests.
    case manual
}

/// Options of a MemoryFile; the seed's `MemoryFileOpts`.
public struct MemoryFileOptions: Sendable {
    /// See `DelayedEviction`.
    public var delayedEviction: DelayedEviction = .default

    /// Start evictions when the host reports memory pressure on the memory
    /// cgroup (cgroup v1 `memory.pressure_level`, or a cgroup v2 PSI
    /// trigger). Only has an effect with `delayedEviction == .enabled`.
    public var useHostMemcgPressure: Bool = false

    /// The memory cgroup directory to watch for pressure, instead of the
    /// process's own (found through /proc/self/cgroup).
    public var memoryCgroupDirectory: String? = nil

    /// Do not assume that pages new from the host read as zero: zero them
    /// by hand when allocated, and when decommitted.
    public var manualZeroing: Bool = false

    /// The accounting this file charges; a new one of its own if nil.
    public var accounting: MemoryAccounting? = nil

    /// The name of the memfd (shown in /proc/PID/fd and /proc/PID/maps).
    public var name: String = "pgalloc"

    /// Test hook: when set, consulted before each punch-hole `fallocate`;
    /// a non-nil errno makes that call fail with it.
    var fallocateFailure: (@Sendable (FileRange) -> Int32?)? = nil

    /// Test hook: mincore reports no page resident, as if the host had
    /// swapped every page out.
    var hideResidency = false

    public init() {}
}

/// Which end of the file an allocation is taken from.
public enum AllocationDirection: Sendable, Hashable, CustomStringConvertible {
    /// From lower offsets upward.
    case bottomUp
    /// From the end of the file downward: the seed's default.
    case topDown

    public var description: String {
        switch self {
        case .bottomUp: "up"
        case .topDown: "down"
        }
    }
}

/// How a caller will use a mapping of the file.
public struct AccessType: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let read = AccessType(rawValue: 1)
    public static let write = AccessType(rawValue: 2)
    public static let execute = AccessType(rawValue: 4)
    public static let readWrite: AccessType = [.read, .write]
}
